"""What an earlier run left in a job dir, checked before a job writes: its settings, its records, its weights.

A job dir belongs to one configuration (:mod:`degrade.job.settings`). ``metadata.json`` says which,
and every record carries the hash of the settings that made it (``settings_hash``), so the records
are checked as well as the metadata: a dir whose metadata is missing or unreadable is not taken for
an empty one. A job resumes when its settings are those of the dir; when only the scoring settings
differ it rescores the stored outputs (:mod:`degrade.job.rescore`); any other difference is refused,
changing nothing.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from degrade.errors import DegradeError
from degrade.job.settings import SCORING_KEYS, changed_keys, changes
from degrade.model.restore import Snapshot, legacy_fingerprint
from degrade.records.aside import unreadable_aside
from degrade.records.store import JOURNAL, METADATA

log = logging.getLogger(__name__)

# What an earlier run said of its model: still true when this run loads none (nothing left to run).
MODEL_FACTS = ("model", "model_load_s", "model_cache_hit", "device", "device_name", "param_group")
_WAYS_ON = "pass force_run=true to recompute (the old files are kept aside), or another hydra.run.dir"


@dataclass
class Earlier:
    """The metadata an earlier run left: ``meta`` ({} when there is none or it is unreadable)."""

    out_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)
    unreadable: bool = False  # metadata.json is there but is not a JSON object

    @property
    def settings(self) -> dict[str, Any] | None:
        return self.meta.get("settings") if isinstance(self.meta.get("settings"), dict) else None

    def model_facts(self) -> dict[str, Any]:
        return {k: self.meta[k] for k in MODEL_FACTS if k in self.meta}

    def keep_unreadable_aside(self) -> None:
        """Move an unreadable ``metadata.json`` aside before this run writes its own: it is never overwritten."""
        path = self.out_dir / METADATA
        if self.unreadable and path.exists():
            log.warning("%s is unreadable; kept aside as %s", path, unreadable_aside(path).name)


def read_earlier(out_dir: Path, *, fresh: bool = False) -> Earlier:
    """The metadata an earlier run left in ``out_dir`` (none with ``fresh``: force_run sets it all aside)."""
    path = out_dir / METADATA
    if fresh or not path.exists():
        return Earlier(out_dir)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict):
        return Earlier(out_dir, unreadable=True)
    return Earlier(out_dir, meta)


@dataclass(frozen=True)
class Rescoring:
    """The records to rescore (those of ``old_hash``), and which scoring settings changed."""

    old_hash: str
    changed: list[str]


def check(earlier: Earlier, settings: dict[str, Any], new_hash: str, records: list[dict[str, Any]]) -> Rescoring | None:
    """Refuse a dir whose records came from other settings; say what to rescore when only scoring changed.

    Raises:
        DegradeError: a setting that shapes an output changed (each change named), or records carry a
            settings hash that neither this run nor the dir's metadata accounts for.
    """
    old, old_hash = earlier.settings, earlier.meta.get("settings_hash")
    if old is not None and any(k not in SCORING_KEYS for k in changed_keys(old, settings)):
        raise DegradeError(
            f"{earlier.out_dir} holds records of other settings ({'; '.join(changes(old, settings))}): "
            f"nothing was changed; {_WAYS_ON}"
        )
    vouched = {new_hash, old_hash if old is not None else new_hash}
    foreign = Counter(r.get("settings_hash") for r in records if r.get("settings_hash") not in (*vouched, None))
    if foreign:
        (first, count), why = foreign.most_common(1)[0], _why_unaccounted(earlier, old_hash)
        raise DegradeError(
            f"{earlier.out_dir / JOURNAL}: {sum(foreign.values())} records were made with other settings "
            f"({count} of settings hash {first}; this run's is {new_hash}) and {why}: nothing was changed; {_WAYS_ON}"
        )
    if old is None or old_hash == new_hash or not any(r.get("settings_hash") == old_hash for r in records):
        return None
    return Rescoring(old_hash, changes(old, settings))


def _why_unaccounted(earlier: Earlier, old_hash: str | None) -> str:
    if earlier.unreadable:
        return f"{METADATA}, which said which, is unreadable"
    if earlier.settings is None:
        return f"no {METADATA} says which"
    return f"{METADATA} describes others (settings hash {old_hash})"


def refuse_other_weights(earlier: Earlier, fingerprint: str, snapshot: Snapshot) -> None:
    """Refuse a dir whose records came from other clean weights under the same settings (a re-written model dir).

    Job dirs written before the weights' fingerprint was a digest hold the group's sum print (16 hex digits);
    it is computed the old way to compare.

    Raises:
        DegradeError: naming both fingerprints.
    """
    before = earlier.meta.get("model", {}).get("weights_fingerprint")
    if before is None:
        return
    now = legacy_fingerprint(snapshot.clean_tensors) if len(before) == 16 else fingerprint
    if before != now:
        raise DegradeError(
            f"{earlier.out_dir} holds records of other weights (clean fingerprint {before[:12]}, the model loads "
            f"{now[:12]} now): nothing was changed; pass force_run=true to recompute, or another hydra.run.dir"
        )


def log_changed_prompts(records: Iterable[dict[str, Any]], prompts: Iterable[Any]) -> None:
    """Say how many prompts were edited (same id, other text or image) since their records were written."""
    seen: dict[str, set[str]] = {}
    for record in records:
        seen.setdefault(str(record["prompt_id"]), set()).add(record["prompt_hash"])
    changed = [p.id for p in prompts if p.id in seen and p.hash not in seen[p.id]]
    if changed:
        log.info(
            "%d prompts changed since their records were written (same id, new text or image): they run "
            "again, the old records stay: %s",
            len(changed),
            ", ".join(changed[:10]),
        )
