"""docs/SECURITY.md names the tests that hold each claim: every one it names exists."""

from __future__ import annotations

import re

from tests.harness import ROOT

NAMED = re.compile(r"tests/([\w/]+\.py)::(\w+)")


def test_every_test_the_security_doc_names_exists() -> None:
    text = (ROOT / "docs" / "SECURITY.md").read_text()
    named = set(NAMED.findall(text))
    assert len(named) > 20
    missing = [
        f"tests/{path}::{name}"
        for path, name in sorted(named)
        if not (ROOT / "tests" / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / "tests" / path).read_text(), re.M)
    ]
    assert missing == []
