"""The tests' own layout: one basename per test module, since tests/<package>/ folders are not packages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_two_test_modules_share_a_name() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert not [name for name, n in names.items() if n > 1]
