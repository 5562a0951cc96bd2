"""Every test runs the checkout it belongs to: a tool started in a subprocess (`python -m workbench ...`) imports
this tree's package, not whatever copy the virtualenv has installed (several checkouts may share one .venv)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
