"""Client of libworkbench-probe.so (native/probe), the allocator probe preloaded into a process we did not start.

The probe serves ``$WORKBENCH_PROBE_DIR/probe-<pid>.sock`` (default ``$XDG_RUNTIME_DIR/workbench``, else
``/tmp/workbench-<uid>``): one command line in, one JSON line out. ``stats`` answers the fields of
:class:`workbench.probes.allocator.AllocatorSnapshot` plus ``pid``, ``version``, ``library`` and ``t_ns``; ``dump``
writes the allocator's full statistics and answers ``{"dump": path}``; ``ping`` answers ``{"pid": N}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.probes._socket import ask, socket_dir
from workbench.probes.allocator import AllocatorSnapshot
from workbench.protocol.replies import ProbeStats, probe_stats

COMMANDS = ("stats", "dump", "ping")
_MAX_ANSWER = 1 << 20


class ProbeUnavailable(Exception):
    """No probe answers for that process: no socket, refused, closed without answering, or timed out."""


def probe_dir() -> Path:
    """Where probes put their sockets; the same rule as the C side (native/probe/probe.h)."""
    return socket_dir()


def socket_path(pid: int, directory: Path | None = None) -> Path:
    """The socket of the probe in process ``pid``."""
    return (directory or probe_dir()) / f"probe-{pid}.sock"


def query(pid: int, command: str = "stats", timeout: float = 2.0, directory: Path | None = None) -> dict[str, Any]:
    """Sends one command to the probe in process ``pid`` and returns its JSON answer.

    An unknown command is answered ``{"error": "unknown command"}`` (returned, not raised). Raises ProbeUnavailable
    when there is no socket, the connection is refused or closed without an answer (another user's probe), or no
    answer comes within ``timeout`` seconds.
    """
    if "\n" in command or "\r" in command:
        raise ValueError(f"a probe command is one line: {command!r}")
    path = socket_path(pid, directory)
    try:
        data = ask(path, command, timeout, _MAX_ANSWER)
    except FileNotFoundError:
        raise ProbeUnavailable(f"no allocator probe in process {pid}: {path} does not exist (is "
                               f"libworkbench-probe.so in its LD_PRELOAD?)") from None
    except TimeoutError:
        raise ProbeUnavailable(f"the allocator probe of process {pid} did not answer within {timeout} s") from None
    except OSError as error:
        raise ProbeUnavailable(f"cannot talk to the allocator probe of process {pid} at {path}: "
                               f"{error.strerror or error}") from None
    if not data.endswith(b"\n"):
        raise ProbeUnavailable(f"the allocator probe of process {pid} closed the connection without an answer "
                               f"(a probe serves only its own user)")
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ProbeUnavailable(f"the allocator probe of process {pid} answered {data[:80]!r}, not a JSON object")
    return answer


def snapshot_from_stats(stats: ProbeStats) -> AllocatorSnapshot:
    """The probe's ``stats`` answer as the snapshot the in-process backends produce."""
    return AllocatorSnapshot(
        backend=stats.backend, allocated_bytes=stats.allocated_bytes, active_bytes=stats.active_bytes,
        metadata_bytes=stats.metadata_bytes, resident_bytes=stats.resident_bytes, mapped_bytes=stats.mapped_bytes,
        retained_bytes=stats.retained_bytes, raw=dict(stats.raw),
    )


def snapshot_from_probe(data: dict[str, Any]) -> AllocatorSnapshot:
    """The probe's ``stats`` answer (JSON) as an allocator snapshot; BadReply when it is not a stats answer."""
    return snapshot_from_stats(probe_stats(data))
