"""The one staged-build helper of the cache: an entry appears complete with its manifest, or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench._errors import RUN_FAILED, RunFailed
from workbench.toolchain.cache import BuildArea, BuildFailed, read_json

STAGING = ".build-test-"


def area_in(root: Path) -> BuildArea:
    return BuildArea(root, lock_name="test.lock", staging_prefix=STAGING, manifest_name="manifest.json")


def staging_dirs(root: Path) -> list[Path]:
    return sorted(root.glob(f"{STAGING}*"))


def write_artifact(staging: Path, log: Path) -> int:
    (staging / "artifact.bin").write_bytes(b"\x5a" * 4099)
    log.write_text("compiling artifact.bin\nlinked 4099 bytes\n", encoding="utf-8")
    return 4099


def test_success_publishes_the_entry_with_its_manifest_and_leaves_no_staging_dir(tmp_path: Path) -> None:
    entry = tmp_path / "entry-1"
    with area_in(tmp_path).locked() as locked:
        size = locked.build(entry, write_artifact, manifest=lambda n: json.dumps({"size_bytes": n}))
    assert size == 4099
    assert (entry / "artifact.bin").read_bytes() == b"\x5a" * 4099
    assert (entry / "build.log").read_text(encoding="utf-8").splitlines()[-1] == "linked 4099 bytes"
    assert read_json(entry / "manifest.json") == {"size_bytes": 4099}
    assert staging_dirs(tmp_path) == []
    assert not list(tmp_path.glob("failed-*.log"))
    assert entry.stat().st_mode & 0o777 == 0o755  # readable by a worker run as another user


def test_the_manifest_is_written_after_the_entry_is_in_place(tmp_path: Path) -> None:
    entry = tmp_path / "entry-1"
    seen: list[bool] = []

    def manifest(result: int) -> str:
        seen.append((entry / "artifact.bin").is_file() and not (entry / "manifest.json").exists())
        return str(result)

    with area_in(tmp_path).locked() as locked:
        locked.build(entry, write_artifact, manifest=manifest)
    assert seen == [True]
    assert (entry / "manifest.json").read_text(encoding="utf-8") == "4099"


def test_a_failing_build_raises_run_failed_naming_the_kept_log_and_its_last_line(tmp_path: Path) -> None:
    entry = tmp_path / "entry-1"

    def fail(staging: Path, log: Path) -> int:
        (staging / "half-written.o").write_bytes(b"\0" * 17)
        log.write_text("".join(f"line {n}\n" for n in range(40)) + "error: deliberately broken at 0x1f\n",
                       encoding="utf-8")
        raise BuildFailed("building the test entry failed (exit 7)")

    with area_in(tmp_path).locked() as locked, pytest.raises(RunFailed) as raised:
        locked.build(entry, fail, manifest=str)
    kept = tmp_path / "failed-entry-1.log"
    message = raised.value.message
    assert raised.value.exit_code == RUN_FAILED
    assert message.startswith(f"building the test entry failed (exit 7) (full log: {kept}):\n")
    assert message.splitlines()[-1] == "error: deliberately broken at 0x1f"
    assert "line 25" not in message and "line 26" in message  # the last 15 lines of 41
    assert kept.read_text(encoding="utf-8").endswith("error: deliberately broken at 0x1f\n")
    assert not entry.exists()
    assert staging_dirs(tmp_path) == []


def test_an_unexpected_error_propagates_and_leaves_no_entry_and_no_staging_dir(tmp_path: Path) -> None:
    def crash(staging: Path, log: Path) -> int:
        raise KeyboardInterrupt

    with area_in(tmp_path).locked() as locked, pytest.raises(KeyboardInterrupt):
        locked.build(tmp_path / "entry-1", crash)
    assert not (tmp_path / "entry-1").exists() and staging_dirs(tmp_path) == []
    assert not list(tmp_path.glob("failed-*.log"))


def test_an_abandoned_staging_dir_is_removed_on_the_next_build(tmp_path: Path) -> None:
    # What a build killed with SIGKILL leaves: a staging dir with half its output.
    abandoned = tmp_path / f"{STAGING}killed"
    abandoned.mkdir()
    (abandoned / "artifact.bin").write_bytes(b"\x5a" * 100)
    other_kind = tmp_path / ".build-other-kept"
    other_kind.mkdir()
    with area_in(tmp_path).locked() as locked:
        assert not abandoned.exists()
        locked.build(tmp_path / "entry-1", write_artifact)
    assert staging_dirs(tmp_path) == []
    assert other_kind.is_dir()  # another kind of entry's build, under its own lock, is left alone


def test_an_unfinished_entry_is_replaced(tmp_path: Path) -> None:
    entry = tmp_path / "entry-1"
    entry.mkdir()
    (entry / "stale.bin").write_bytes(b"\1")
    with area_in(tmp_path).locked() as locked:
        locked.build(entry, write_artifact, manifest=str)
    assert sorted(p.name for p in entry.iterdir()) == ["artifact.bin", "build.log", "manifest.json"]


def test_a_built_librarys_checksum_is_read_again_only_when_its_file_changed(tmp_path: Path) -> None:
    """The lookup of a built allocator (every run and exec) hashes the library only when its file status (inode,
    size, modification and inode-change times) differs from the last time its checksum was read."""
    import hashlib
    import os
    import time

    from workbench.toolchain.source_build import _library_sha256

    library = tmp_path / "libx.so"
    verified = tmp_path / "verified.json"
    library.write_bytes(b"\x7fELF" + b"\x01" * 100_000)
    first = hashlib.sha256(library.read_bytes()).hexdigest()
    # Changed less than a second ago: hashed, not recorded (a write in the same clock tick would go unseen).
    assert _library_sha256(library, verified) == first
    assert not verified.exists()
    time.sleep(1.1)
    assert _library_sha256(library, verified) == first
    record = read_json(verified)
    assert record is not None and record["sha256"] == first and record["status"]["size"] == 100_004
    # The record is what answers while the file is unchanged (a stand-in checksum proves it was not hashed)...
    verified.write_text(json.dumps({**record, "sha256": "0" * 64}), encoding="utf-8")
    assert _library_sha256(library, verified) == "0" * 64
    # ...and a write of the same size with the modification time set back is still seen: the inode change time moved.
    before = library.stat()
    with library.open("r+b") as out:
        out.seek(50)
        out.write(b"\x02")
    os.utime(library, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert library.stat().st_size == before.st_size and library.stat().st_mtime_ns == before.st_mtime_ns
    assert _library_sha256(library, verified) == hashlib.sha256(library.read_bytes()).hexdigest() != first
