"""The workbench Java agent's socket: any JVM started with ``-javaagent:<the kernels jar>`` answers ``stats``.

The agent (jvm/src/main/java/workbench/agent/) serves ``<dir>/agent-<pid>.sock``; a client sends one line and
reads one JSON line. The directory lookup here must stay identical to ProbeDirectory.java's.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from workbench.probes._socket import ask, socket_dir
from workbench.probes.nmt import NmtSummary, parse_summary

_MAX_REPLY_BYTES = 16 * 1024 * 1024


class AgentUnavailable(Exception):
    """No agent answered: no socket, nobody listening on it, a dropped connection, or no reply in time."""


def agent_socket(pid: int, directory: Path | None = None) -> Path:
    """Where the agent of the JVM with this pid listens (for an agent started with ``=dir=<directory>``, pass it)."""
    return (directory or socket_dir()) / f"agent-{pid}.sock"


def query_agent(pid: int, command: str = "stats", timeout: float | None = 2.0,
                directory: Path | None = None) -> dict[str, Any]:
    """The agent's JSON reply to one command (``stats`` or ``ping``); AgentUnavailable when none answers in time."""
    path = agent_socket(pid, directory)
    try:
        reply = ask(path, command, timeout, _MAX_REPLY_BYTES)
    except OSError as e:  # missing socket, refused, reset, timed out, or a JVM that went away
        raise AgentUnavailable(f"no workbench agent answered at {path}: {e}") from e
    if not reply:
        raise AgentUnavailable(f"the workbench agent at {path} closed without a reply")
    answer: dict[str, Any] = json.loads(reply)
    return answer


def await_exit(pid: int, directory: Path | None = None) -> socket.socket:
    """Ask the agent to tell when the JVM starts to exit (and to hold the exit for us); the request is sent when this
    returns, so a command sent after it (``release``) reaches the agent after it. Read the reply from the socket."""
    path = agent_socket(pid, directory)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(2.0)
        connection.connect(str(path))
        connection.sendall(b"await-exit\n")
        connection.settimeout(None)
    except OSError as e:
        connection.close()
        raise AgentUnavailable(f"no workbench agent answered at {path}: {e}") from e
    return connection


def exit_reply(connection: socket.socket) -> dict[str, Any]:
    """The agent's reply to ``await-exit`` ({"exiting": true}), read until the JVM starts to exit; AgentUnavailable
    when the JVM went away without exiting (a signal, a crash)."""
    reply = b""
    with connection:
        try:
            while b"\n" not in reply:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except OSError as e:
            raise AgentUnavailable(f"the workbench agent went away: {e}") from e
    if not reply:
        raise AgentUnavailable("the workbench agent closed without a reply")
    answer: dict[str, Any] = json.loads(reply)
    return answer


def nmt_of(stats: dict[str, Any]) -> NmtSummary | None:
    """The parsed NMT summary of a ``stats`` reply, or None when the JVM runs without NMT."""
    text = stats.get("nmt")
    return parse_summary(text) if text is not None else None
