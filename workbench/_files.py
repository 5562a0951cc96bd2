"""Files written whole or not at all, and the one place where a failed write becomes a one-line error.

Every file the workbench writes goes through here: whole files (``write_atomically``, ``write_with``) are written to
a temporary ``.<name>.<pid>-<random>.partial`` beside the target and renamed over it, so a reader never sees half a
file and a killed run leaves at most a ``*.partial`` that nothing reads as output (the next write of the same target
removes those of dead processes); appended files (``appending``) get whole lines only.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench._errors import BadInput, RunFailed

PARTIAL_SUFFIX = ".partial"
_PREFIX_BYTES = 80  # of the target's name in its temporary's name, which must stay within NAME_MAX itself


class WriteFailed(RunFailed):
    """A file could not be written (disk full, read-only, quota, name too long, ...): exit 3, naming the file and
    the system's reason."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.errno = error.errno
        super().__init__(f"cannot write {path}: {os_reason(error)}")


def os_reason(error: OSError) -> str:
    """The system's words for an OSError (``No space left on device``), also for pyarrow's, whose strerror is a
    sentence of its own around the errno."""
    if error.errno:
        return os.strerror(error.errno)
    return error.strerror or str(error)


class NotRead(Exception):
    """Why ``read_regular`` refused a file: ``kind`` is "error" (``detail``: the system's reason), "not-regular"
    (a FIFO, a device, a directory), or "size" (``detail``: "N bytes" or "more than N bytes")."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


def read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit`` of them: a FIFO, a device or /dev/zero is refused before anything
    is read from it, and a file that grows while it is read is refused at ``limit`` + 1 bytes. NotRead otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise NotRead("error", exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRead("not-regular")
        if info.st_size > limit:
            raise NotRead("size", f"{info.st_size:,} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:  # EISDIR and the like
        raise NotRead("error", exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > limit:
        raise NotRead("size", f"more than {limit:,} bytes")
    return b"".join(chunks)


def read_text(path: Path, what: str, limit: int) -> str:
    """A regular file's UTF-8 text, at most ``limit`` bytes (a FIFO or a device is refused before reading); BadInput
    otherwise, one line naming the file and ``what`` was expected (e.g. "a workbench report.json")."""
    try:
        data = read_regular(path, limit)
    except NotRead as refused:
        if refused.kind == "error":
            raise BadInput(f"{path}: cannot read {what}: {refused.detail}") from None
        if refused.kind == "not-regular":
            raise BadInput(f"{path}: not a regular file (expected {what})") from None
        raise BadInput(f"{path}: {refused.detail} (expected {what} of at most {limit:,} bytes)") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}; expected {what})") from None


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's content."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text as UTF-8) whole or not at all; WriteFailed when it cannot be."""
    data = content.encode("utf-8") if isinstance(content, str) else content

    def write(partial: Path) -> None:
        with partial.open("wb") as out:
            out.write(data)

    write_with(path, write)


def write_with(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` writes the file at a temporary path beside ``path`` (e.g. ``pq.write_table``), which then
    replaces ``path``; on any failure the temporary is removed and ``path`` is left as it was. OSError (pyarrow's
    included) becomes WriteFailed naming ``path``."""
    remove_stale_partials(path)
    try:
        fd, name = tempfile.mkstemp(prefix=_partial_prefix(path), suffix=PARTIAL_SUFFIX, dir=path.parent)
    except OSError as error:
        raise WriteFailed(path, error) from None
    os.close(fd)
    partial = Path(name)
    try:
        write(partial)
        os.chmod(partial, 0o666 & ~_UMASK)
        os.replace(partial, path)
    except OSError as error:
        _unlink_quietly(partial)
        raise WriteFailed(path, error) from None
    except BaseException:
        _unlink_quietly(partial)
        raise


def write_unnamed(path: Path, write: Callable[[int], None]) -> None:
    """``write(fd)`` writes a file that appears at ``path`` whole or not at all, as ``write_with``, but without a
    temporary name where the file system has unnamed files (``O_TMPFILE``: ext4, XFS, btrfs, tmpfs): the file is
    written unnamed in ``path``'s directory and linked in when complete, so a process killed mid-write leaves
    nothing behind and no directory is searched for stale temporaries. A file already at ``path`` is replaced through
    a temporary name. For the worker's raw files, a handful at every snapshot: 0.03-0.05 ms a file where
    ``write_with`` takes 0.24-0.36 ms (benchmarks/bench_foundation.py)."""
    try:
        fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)  # the umask applies
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise WriteFailed(path, error) from None

        def into(partial: Path) -> None:  # no unnamed files here: a named temporary, renamed
            fd = os.open(partial, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            try:
                write(fd)
            finally:
                os.close(fd)

        write_with(path, into)
        return
    try:
        write(fd)
        try:
            # linkat(AT_SYMLINK_FOLLOW) through /proc/self/fd links an unnamed file (without CAP_DAC_READ_SEARCH,
            # which AT_EMPTY_PATH needs). os.link calls linkat only when given a directory fd; with an absolute
            # source path linkat ignores it, so the file's own descriptor serves.
            os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)
        except FileExistsError:
            partial = path.with_name(f"{_partial_prefix(path)}{os.urandom(4).hex()}{PARTIAL_SUFFIX}")
            os.link(f"/proc/self/fd/{fd}", partial, src_dir_fd=fd, follow_symlinks=True)
            try:
                os.replace(partial, path)
            except OSError:
                _unlink_quietly(partial)
                raise
    except OSError as error:
        raise WriteFailed(path, error) from None
    finally:
        os.close(fd)


class LineLog:
    """A file appended to one line at a time (samples.jsonl): each line is on disk when ``write_line`` returns, and a
    line that does not fit is cut off again, so the file holds whole lines only."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def write_line(self, text: str) -> None:
        data = (text + "\n").encode("utf-8")
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as error:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            raise WriteFailed(self.path, error) from None


@contextmanager
def appending(path: Path) -> Iterator[LineLog]:
    """``path`` opened for appending whole lines (created if missing); WriteFailed when it cannot be opened or a line
    cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as error:
        raise WriteFailed(path, error) from None
    try:
        yield LineLog(path, fd)
    finally:
        os.close(fd)


def open_output(path: Path) -> int:
    """A new (or emptied) file for a child process's output (the worker's log), as a file descriptor; WriteFailed
    when it cannot be created."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError as error:
        raise WriteFailed(path, error) from None


def creatable_problem(path: Path) -> str | None:
    """Why a file could not be created at ``path`` (``File name too long``, ``Read-only file system``, ...), found
    by creating and removing a temporary beside it; None when it can. Nothing at ``path`` is touched."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if len(os.fsencode(path.name)) > os.pathconf(parent, "PC_NAME_MAX"):
            return os.strerror(errno.ENAMETOOLONG)
        fd, name = tempfile.mkstemp(prefix=_partial_prefix(path), suffix=PARTIAL_SUFFIX, dir=parent)
    except OSError as error:
        return os_reason(error)
    os.close(fd)
    _unlink_quietly(Path(name))
    return None


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the temporaries of writes of ``path`` whose process is gone (killed mid-write); returns them."""
    prefix = _partial_prefix(path, own=False)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(PARTIAL_SUFFIX)):
            continue
        pid, _, _ = entry.name[len(prefix):].partition("-")
        if pid.isdigit() and not pid_alive(int(pid)):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_partial(name: str) -> bool:
    """A temporary of an unfinished write (never output)."""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def _partial_prefix(path: Path, own: bool = True) -> str:
    """``.<name>.<pid>-`` (``.<name>.`` for any process), the name cut to fit within NAME_MAX."""
    base = f".{os.fsdecode(os.fsencode(path.name)[:_PREFIX_BYTES])}."
    return f"{base}{os.getpid()}-" if own else base


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which would race with threads creating files.
_UMASK = _umask()
