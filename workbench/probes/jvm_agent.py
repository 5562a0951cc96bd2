"""The workbench Java agent's socket: any JVM started with ``-javaagent:<the kernels jar>`` answers ``stats``.

The agent (jvm/src/main/java/workbench/agent/) serves ``<dir>/agent-<pid>.sock``; a client sends one line and
reads one JSON line. The directory lookup here must stay identical to ProbeDirectory.java's.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from workbench.probes.nmt import NmtSummary, parse_summary

PROBE_DIR_ENV = "WORKBENCH_PROBE_DIR"
_MAX_REPLY_BYTES = 16 * 1024 * 1024


class AgentUnavailable(Exception):
    """No agent answered: no socket, nobody listening on it, a dropped connection, or no reply in time."""


def probe_directory() -> Path:
    """$WORKBENCH_PROBE_DIR, else $XDG_RUNTIME_DIR/workbench, else /tmp/workbench-<uid> (as the agent decides)."""
    if probe_dir := os.environ.get(PROBE_DIR_ENV):
        return Path(probe_dir)
    if runtime_dir := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime_dir) / "workbench"
    return Path("/tmp") / f"workbench-{os.getuid()}"


def agent_socket(pid: int, directory: Path | None = None) -> Path:
    """Where the agent of the JVM with this pid listens (for an agent started with ``=dir=<directory>``, pass it)."""
    return (directory or probe_directory()) / f"agent-{pid}.sock"


def query_agent(pid: int, command: str = "stats", timeout: float = 2.0,
                directory: Path | None = None) -> dict[str, Any]:
    """The agent's JSON reply to one command (``stats`` or ``ping``); AgentUnavailable when none answers in time."""
    path = agent_socket(pid, directory)
    reply = bytearray()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(str(path))
            client.sendall(command.encode() + b"\n")
            while not reply.endswith(b"\n") and len(reply) < _MAX_REPLY_BYTES:
                chunk = client.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except (FileNotFoundError, ConnectionError, TimeoutError) as e:  # refused, reset, or a JVM that went away
        raise AgentUnavailable(f"no workbench agent answered at {path}: {e}") from e
    if not reply:
        raise AgentUnavailable(f"the workbench agent at {path} closed without a reply")
    answer: dict[str, Any] = json.loads(reply)
    return answer


def nmt_of(stats: dict[str, Any]) -> NmtSummary | None:
    """The parsed NMT summary of a ``stats`` reply, or None when the JVM runs without NMT."""
    text = stats.get("nmt")
    return parse_summary(text) if text is not None else None
