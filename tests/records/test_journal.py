"""The one journal protocol (degrade/records/journal.py), on real files, with real kills where a crash is the point.

Appends are whole lines, synced; a torn last line is kept aside byte for byte and cut; a complete last
line without its newline is kept; any other unreadable line stops with its number and changes nothing;
a view is renamed into place whole; ``DEGRADE_FAULT`` kills a child process at the named instant.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from degrade.errors import DegradeError
from degrade.records import journal


def entry(line):
    """Journal entries of these tests: objects holding an ``n``."""
    return line if isinstance(line, dict) and "n" in line else None


def child(code: str, fault: str) -> int:
    """Run ``code`` in a child Python with ``DEGRADE_FAULT=fault``; return its exit status."""
    env = {**os.environ, "DEGRADE_FAULT": fault}
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode


def test_appended_batches_are_whole_lines_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal.append(path, journal.encode([{"n": 1}, {"n": 2, "text": "é\nnot a line break"}]), fault="t")
    journal.append(path, journal.encode([{"n": 3}]), fault="t")
    assert path.read_bytes().count(b"\n") == 3
    lines = journal.read(path, entry)
    assert [e["n"] for e in lines.entries] == [1, 2, 3] and lines.tail == b""
    assert lines.entries[1]["text"] == "é\nnot a line break"


def test_an_unreadable_line_before_the_last_stops_with_its_number_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2\n{"n": 3}\n{"other": 4}\n')
    before = path.read_bytes()
    with pytest.raises(DegradeError, match=r"j.jsonl: line 2 is unreadable and is not the last line"):
        journal.read(path, entry)
    path.write_bytes(b'{"n": 1}\n{"other": 4}\n')  # JSON, but not an entry
    with pytest.raises(DegradeError, match=r"line 2 is unreadable"):
        journal.read(path, entry)
    path.write_bytes(b"[" * 100_000 + b"\n" + b'{"n": 1}\n')  # nested past the parser's depth: unreadable too
    with pytest.raises(DegradeError, match=r"line 1 is unreadable"):
        journal.read(path, entry)
    assert list(tmp_path.iterdir()) == [path] and before != path.read_bytes()


def test_a_torn_last_line_is_kept_aside_byte_for_byte_and_cut(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2, "te')
    lines = journal.read(path, entry)
    assert [e["n"] for e in lines.entries] == [1] and lines.tail == b'{"n": 2, "te'
    assert journal.mend(path, lines, entry, fault="t") is None
    assert path.read_bytes() == b'{"n": 1}\n'
    (aside,) = tmp_path.glob("j.jsonl.torn-*")
    assert aside.read_bytes() == b'{"n": 2, "te'

    path.write_bytes(b'{"n": 1}\n{"n"')  # torn again within the same second: a new file, the first one kept
    journal.mend(path, journal.read(path, entry), entry, fault="t")
    kept = sorted(p.read_bytes() for p in tmp_path.glob("j.jsonl.torn-*"))
    assert kept == [b'{"n"', b'{"n": 2, "te'] and path.read_bytes() == b'{"n": 1}\n'


def test_a_complete_last_entry_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2}')
    lines = journal.read(path, entry)
    assert journal.tail_entry(lines, entry) == {"n": 2}
    assert journal.mend(path, lines, entry, fault="t") == {"n": 2}
    assert path.read_bytes() == b'{"n": 1}\n{"n": 2}\n' and not list(tmp_path.glob("*.torn-*"))


def test_a_kill_halfway_through_an_append_leaves_the_journal_readable(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    code = (
        "from pathlib import Path\nfrom degrade.records import journal\n"
        f"p = Path({str(path)!r})\n"
        "for n in range(3):\n"
        "    batch = [{'n': 2 * n, 'pad': 'x' * 20}, {'n': 2 * n + 1}]\n"
        "    journal.append(p, journal.encode(batch), fault='unit-append')\n"
    )
    assert child(code, "unit-append:2") == -signal.SIGKILL
    second = journal.encode([{"n": 2, "pad": "x" * 20}, {"n": 3}])
    lines = journal.read(path, entry)
    assert [e["n"] for e in lines.entries] == [0, 1] and lines.tail == second[: len(second) // 2]
    journal.mend(path, lines, entry, fault="unit-append")
    assert [e["n"] for e in journal.read(path, entry).entries] == [0, 1]
    assert [p.read_bytes() for p in tmp_path.glob("j.jsonl.torn-*")] == [second[: len(second) // 2]]


def test_a_kill_between_a_views_write_and_its_rename_leaves_the_old_view_whole(tmp_path: Path) -> None:
    view = tmp_path / "view.json"
    view.write_text(json.dumps({"old": True}))
    code = (
        "from pathlib import Path\nfrom degrade.records import journal\n"
        f"p = Path({str(view)!r})\n"
        "journal.write_atomic(p, lambda t: t.write_text('{\"new\": true}'), crash_point='unit-view')\n"
    )
    assert child(code, "unit-view:1") == -signal.SIGKILL
    assert json.loads(view.read_text()) == {"old": True}
    assert json.loads((tmp_path / ".view.json.tmp").read_text()) == {"new": True}
    assert child(code, "") == 0  # the same write, not killed: renamed into place, the stale tmp replaced
    assert json.loads(view.read_text()) == {"new": True} and not (tmp_path / ".view.json.tmp").exists()
