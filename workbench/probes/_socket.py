"""What the C probe, the Java agent and `workbench exec` share: the private socket directory and the one-line
protocol (send one command line, read one JSON line back)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from workbench._errors import BadInput
from workbench._files import pid_alive


def socket_dir() -> Path:
    """$WORKBENCH_PROBE_DIR, else $XDG_RUNTIME_DIR/workbench, else /tmp/workbench-<uid>: the same rule as
    native/probe/probe.h and jvm/.../ProbeDirectory.java."""
    if configured := os.environ.get("WORKBENCH_PROBE_DIR"):
        return Path(configured)
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "workbench"
    return Path(f"/tmp/workbench-{os.geteuid()}")


def ask(path: Path, command: str, timeout: float | None, max_bytes: int) -> bytes:
    """Send ``command`` and return the reply up to and including its newline (or what came before the peer closed).

    ``timeout`` None: wait as long as the peer lives (`await-exit`). Raises FileNotFoundError, TimeoutError or another OSError; the callers turn them into their own errors.
    """
    reply = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(path))
        connection.sendall(command.encode() + b"\n")
        while b"\n" not in reply and len(reply) < max_bytes:
            chunk = connection.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


# <kind>-<pid>.sock: the C probe's and the Java agent's in the program, `workbench exec`'s control socket.
SOCKET_KINDS = ("probe", "agent", "exec")


def reclaim_stale(directory: Path, pid: int | None = None) -> list[Path]:
    """Remove the sockets in ``directory`` (only those of ``pid``, when given) whose process is gone: a process
    killed by SIGKILL (or crashed) cannot remove its own. Returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        kind, dash, rest = entry.name.partition("-")
        owner = rest.removesuffix(".sock")
        if kind not in SOCKET_KINDS or not dash or not rest.endswith(".sock") or not owner.isdigit():
            continue
        if (pid is not None and int(owner) != pid) or pid_alive(int(owner)):
            continue
        try:
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def private_dir(directory: Path) -> Path:
    """The per-user socket directory: created 0700, refused when it is a symlink or anyone else can enter it; the
    sockets left in it by processes that are gone (killed by SIGKILL) are removed."""
    if directory.is_symlink():
        raise BadInput(f"{directory}: is a symbolic link; refusing it as the private socket directory")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise BadInput(f"{directory}: must be owned by you with mode 0700 (it holds the probe's sockets)")
    reclaim_stale(directory)
    return directory
