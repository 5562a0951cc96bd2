"""Which JDK the worker starts: JPype's default JVM found without importing jpype (and numpy) in the CLI process."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_default_jvm_is_jpypes_and_found_without_importing_jpype() -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    probe = (
        "import json, sys\n"
        "from workbench.run.jdk import resolve_jdk\n"
        "jdk = resolve_jdk(None)\n"
        "loaded = sorted(m for m in ('jpype', '_jpype', 'numpy') if m in sys.modules)\n"
        "import jpype, pathlib\n"
        "print(json.dumps([str(jdk.library), str(pathlib.Path(jpype.getDefaultJVMPath()).resolve()), loaded,"
        " jdk.feature_version]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    library, jpypes, loaded, version = json.loads(out.stdout)
    assert library == jpypes
    assert loaded == []
    assert version >= 17
