"""What the C probe, the Java agent and `workbench exec` share: the private socket directory and the one-line
protocol (send one command line, read one JSON line back)."""

from __future__ import annotations

import os
import socket
from pathlib import Path


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
