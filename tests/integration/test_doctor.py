"""`workbench doctor`: every JDK and allocator really started or preloaded in a child, problems named with their fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import JDK17, JDK25, run_workbench

pytestmark = [pytest.mark.slow, pytest.mark.jvm]

BACKEND_OF = {"system:jemalloc": "jemalloc", "system:tcmalloc": "tcmalloc", "system:mimalloc": "mimalloc", "glibc": "glibc"}


def doctor_json(env: dict[str, str] | None = None, expect_exit: int = 0) -> dict[str, Any]:
    result = run_workbench("doctor", "--json", env=env)
    assert result.returncode == expect_exit, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["schema"] == "workbench.doctor/1"
    return document


def by_check(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in document["checks"] if not c["check"].endswith("jdk")}


def jdks(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["found"]["home"]: c for c in document["checks"] if c["check"].endswith("jdk") and "home" in c["found"]}


@pytest.fixture(scope="module")
def healthy() -> dict[str, Any]:
    return doctor_json()


def test_doctor_passes_on_this_machine(healthy: dict[str, Any]) -> None:
    assert healthy["problems"] == 0 and healthy["default_run_ok"] is True
    checks = by_check(healthy)
    for name in ("python", "python packages", "maven", "java kernels", "allocator jemalloc", "c toolchain", "/proc"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["/proc"]["found"]["rss_bytes"] > 0


def test_jdk17_starts_under_jpype_with_nmt(healthy: dict[str, Any]) -> None:
    jdk17 = jdks(healthy)[str(JDK17)]
    assert jdk17["status"] == "ok"
    assert jdk17["found"]["nmt"] == "ok"
    assert jdk17["found"]["version"].startswith("17.")


@pytest.mark.skipif(not JDK25.is_dir(), reason=f"{JDK25} is not installed")
def test_temurin25_starts_under_jpype_with_nmt(healthy: dict[str, Any]) -> None:
    jdk25 = jdks(healthy)[str(JDK25)]
    assert jdk25["status"] == "ok"
    assert jdk25["found"]["nmt"] == "ok"
    assert jdk25["found"]["version"].startswith("25")


def test_jdk_symlinks_are_listed_once(healthy: dict[str, Any]) -> None:
    homes = [c["found"]["home"] for c in healthy["checks"] if c["check"].endswith("jdk")]
    assert len(homes) == len(set(homes)) == len({Path(h).resolve() for h in homes})


@pytest.mark.parametrize("name", sorted(BACKEND_OF))
def test_each_allocator_is_detected_when_preloaded(healthy: dict[str, Any], name: str) -> None:
    check = by_check(healthy)[f"allocator {name}"]
    assert check["status"] == "ok", check
    assert check["found"]["backend"] == BACKEND_OF[name]
    assert check["found"]["figures"] >= 1


def test_text_output_ends_with_the_verdict() -> None:
    result = run_workbench("doctor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "0 FAIL, 0 WARN: a default run (workbench run arrow-intvector) can work"
    assert "\x1b[" not in result.stdout  # plain when piped
    assert result.stderr == ""


def test_missing_tools_and_empty_cache_stop_a_default_run(tmp_path: Path) -> None:
    empty_path, cache = tmp_path / "bin", tmp_path / "cache"
    empty_path.mkdir()
    cache.mkdir()
    result = run_workbench("doctor", env={"PATH": str(empty_path), "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 2
    assert "apt-get install maven" in result.stdout
    assert "apt-get install gcc make" in result.stdout
    assert "not built yet: the first run builds it" in result.stdout
    assert result.stderr.strip().splitlines() == ["workbench: doctor found 2 problem(s) that stop a default run"]
    assert not (cache / "workbench").exists()  # it looked, it built nothing


def test_missing_tools_with_empty_cache_in_json(tmp_path: Path) -> None:
    empty_path, cache = tmp_path / "bin", tmp_path / "cache"
    empty_path.mkdir()
    cache.mkdir()
    document = doctor_json({"PATH": str(empty_path), "XDG_CACHE_HOME": str(cache)}, expect_exit=2)
    checks = by_check(document)
    assert document["problems"] == 2
    assert {name for name, c in checks.items() if c["status"] == "FAIL" and c["needed_by_default_run"]} == {
        "maven", "c toolchain"}
    assert checks["maven"]["fix"] == "apt-get install maven"
    assert checks["c toolchain"]["fix"].startswith("apt-get install gcc make")
    assert checks["java kernels"]["status"] == "WARN" and checks["java kernels"]["found"]["cached"] is False
    assert checks["allocator jemalloc"]["status"] == "WARN" and checks["allocator jemalloc"]["found"]["cached"] is False


def test_java_home_that_is_not_a_jdk_fails_the_default_jdk(tmp_path: Path) -> None:
    document = doctor_json({"JAVA_HOME": str(tmp_path)}, expect_exit=2)
    default = next(c for c in document["checks"] if c["check"] == "default jdk")
    assert default["status"] == "FAIL" and default["needed_by_default_run"] is True
    assert f"JAVA_HOME={tmp_path}" in default["detail"]
    assert "JAVA_HOME" in default["fix"]
    assert document["problems"] == 1
    # The JDKs under /usr/lib/jvm are still checked on their own.
    assert jdks(document)[str(JDK17)]["status"] == "ok"


def test_a_jdk_without_c_headers_fails_the_headers_check_with_its_fix(tmp_path: Path) -> None:
    # JDK 17 as a JRE has it: everything but include/ (the probe's native agent is built with jni.h and jvmti.h).
    from workbench.toolchain.probe import ensure_probe

    ensure_probe(quiet=True)  # built with the real JDK's headers, as a first run would have
    jre = tmp_path / "jre"
    jre.mkdir()
    for entry in JDK17.iterdir():
        if entry.name != "include":
            (jre / entry.name).symlink_to(entry)
    checks = by_check(doctor_json({"JAVA_HOME": str(jre)}))
    headers = checks["jdk headers"]
    assert headers["status"] == "FAIL" and headers["found"]["include"] == str(jre / "include")
    assert headers["detail"].startswith(f"building the allocator probe needs a JDK's C headers: {jre}/include/jni.h")
    # The probe is built here already, so a default run does not need them: not a problem, and the fix says why.
    assert headers["needed_by_default_run"] is False
    assert headers["fix"] == "apt-get install openjdk-17-jdk-headless (the probe is built, so runs do not need them)"
