"""A corpus of malformed scenario files: each one is refused with file, line, field path and what was expected."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench._errors import BadInput
from workbench.scenario import load_scenario

CORPUS = Path(__file__).parent / "bad_scenarios"
EXPECTED: dict[str, str] = json.loads((CORPUS / "expected.json").read_text())


def test_the_corpus_is_large_enough() -> None:
    assert len(EXPECTED) >= 25 and len(list(CORPUS.glob("*.yaml"))) == len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file_is_refused_with_file_line_and_field(name: str) -> None:
    path = CORPUS / f"{name}.yaml"
    with pytest.raises(BadInput) as info:
        load_scenario(path)
    message = info.value.message
    assert info.value.exit_code == 2
    assert "\n" not in message, message
    assert re.match(rf"^{re.escape(str(path))}(:\d+)?: ", message), message
    assert EXPECTED[name] in message, message
    if path.read_text(errors="replace").strip():
        assert re.match(rf"^{re.escape(str(path))}:\d+: ", message), f"no line number: {message}"
