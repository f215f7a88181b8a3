"""The analysis report: every record under a run or sweep dir, a summary table and plots.

Jobs write only inside their own dirs (§9); this module aggregates afterwards. A job dir is
any dir holding ``records.parquet`` or ``records.jsonl``; the parquet is read unless the
journal holds more records (a job interrupted mid-cell), since the journal is the source.
"""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from degrade.errors import DegradeError  # noqa: E402
from degrade.records import FIELDS, KEY_FIELDS, SCHEMA  # noqa: E402
from degrade.store import JOURNAL, PARQUET  # noqa: E402

log = logging.getLogger(__name__)

GROUP = ["experiment", "model_name", "degradation_method", "param_group_name", "level_value"]
LINE = ["experiment", "model_name", "degradation_method", "param_group_name"]
# What the level means per method; uni_quant's n is drawn on a log axis, reversed so damage grows rightwards.
X_LABEL = {
    "mult_gauss": "σ (multiplicative Gaussian noise)",
    "ablation": "p (fraction of weights zeroed)",
    "uni_quant": "n quantisation levels (log scale, reversed: larger n = less damage)",
    "none": "level",
}


def _job_dirs(root: Path) -> list[Path]:
    found = {p.parent for name in (PARQUET, JOURNAL) for p in root.rglob(name)}
    return sorted(d for d in found if _is_job(d, root))


def _is_job(path: Path, root: Path) -> bool:
    # previous-*/ holds results that force_run superseded; a report's own parquet carries job_dir.
    if any(part.startswith("previous-") for part in path.relative_to(root).parts):
        return False
    try:
        return not (path / PARQUET).exists() or "job_dir" not in pq.read_schema(path / PARQUET).names
    except (pa.ArrowException, OSError):
        return True  # an unreadable view: _read_job falls back to the journal


def _read_journal(path: Path) -> pd.DataFrame:
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines:
        try:
            json.loads(lines[-1])
        except ValueError:
            log.warning("%s: the last line is torn (an interrupted write); it is left out", path)
            lines.pop()
    if not lines:
        return pd.DataFrame(columns=list(FIELDS))
    try:
        # dtype=False keeps timestamps as text; precise_float keeps the floats the job wrote.
        frame = pd.read_json(io.StringIO("\n".join(lines)), lines=True, dtype=False, precise_float=True)
    except ValueError as exc:
        raise DegradeError(f"{path}: unreadable line before the last one ({exc}); repair or move it aside") from None
    # Through the pinned schema, so journal and parquet jobs concatenate with the same dtypes.
    return pa.Table.from_pandas(frame.reindex(columns=list(FIELDS)), schema=SCHEMA, preserve_index=False).to_pandas()


def _read_job(job: Path) -> pd.DataFrame:
    journal, parquet = job / JOURNAL, job / PARQUET
    if parquet.exists():
        try:
            rows = pq.read_metadata(parquet).num_rows
            if not journal.exists() or journal.read_bytes().count(b"\n") <= rows:
                return pd.read_parquet(parquet)
            log.info("%s: the journal holds more records than the parquet (interrupted job); reading it", job)
        except (pa.ArrowException, OSError) as exc:
            if not journal.exists():
                raise DegradeError(
                    f"{parquet}: unreadable ({str(exc).splitlines()[0][:120]}) and no "
                    f"{JOURNAL} beside it to rebuild from"
                ) from None
            log.warning("%s: unreadable; reading the journal instead", parquet)
    return _read_journal(journal)


def collect(root: Path) -> pd.DataFrame:
    """Every record under ``root``, with a ``job_dir`` column relative to it.

    Args:
        root: A job dir, or a run or sweep dir with job dirs anywhere below it.

    Returns:
        The records of all jobs, in job-dir order.

    Raises:
        DegradeError: ``root`` is not a directory or holds no records.
    """
    root = Path(root)
    if not root.is_dir():
        raise DegradeError(f"{root}: no such directory")
    frames = []
    for job in _job_dirs(root):
        frame = _read_job(job)
        log.info("%s: %d records", job, len(frame))
        if len(frame):
            frames.append(frame.assign(job_dir=job.relative_to(root).as_posix()))
    if not frames:
        raise DegradeError(f"{root}: no records found (looked for {PARQUET} or {JOURNAL} in it and below it)")
    records = pd.concat(frames, ignore_index=True)
    duplicates = int(records.duplicated(list(KEY_FIELDS)).sum())
    if duplicates:
        log.warning("%d records share their key with a record of another job dir; the summary counts both", duplicates)
    return records


def _damage_order(frame: pd.DataFrame) -> pd.Series:
    # uni_quant: 0 is the clean model and larger n is less damage, so 1/n sorts in damage order.
    quant = frame["degradation_method"].eq("uni_quant") & frame["level_value"].gt(0)
    return frame["level_value"].mask(quant, 1 / frame["level_value"])


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, model, method, param group, level): counts and mean scores.

    Columns: n (records), n_rep (distinct repetitions), tokens_out, accuracy (mean of the
    non-null ``correct``; NaN when none), ``accuracy_<category>`` per prompt category with
    scored items, mattr, repetition_rate, and info_units / perplexity when any record has them.

    Args:
        df: Records, as :func:`collect` returns them.

    Returns:
        The summary, in damage order within each (experiment, model, method, param group).
    """
    scored = df[df["correct"].notna()]
    categories = sorted(scored["prompt_category"].dropna().unique())
    grouped = df.groupby(GROUP, sort=False, dropna=False)
    out = grouped.agg(
        n=("prompt_id", "size"),
        n_rep=("repeat_index", "nunique"),
        tokens_out=("tokens_out", "mean"),
        accuracy=("correct", "mean"),
        mattr=("mattr", "mean"),
        repetition_rate=("repetition_rate", "mean"),
    )
    for category in categories:
        out[f"accuracy_{category}"] = scored[scored["prompt_category"] == category].groupby(GROUP)["correct"].mean()
    for column in ("info_units", "perplexity"):
        if df[column].notna().any():
            out[column] = grouped[column].mean()
    out = out.reset_index()
    out["_order"] = _damage_order(out)
    return out.sort_values(LINE + ["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


def _per_repetition(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean ± standard error over repetitions of each repetition's mean."""
    reps = df.groupby(LINE + ["level_value", "repeat_index"])[metric].mean().dropna().reset_index()
    stats = reps.groupby(LINE + ["level_value"])[metric].agg(["mean", "sem", "count"]).reset_index()
    stats.loc[stats["count"] < 2, "sem"] = float("nan")  # one repetition: no spread to show
    return stats


def plot(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per metric against level: a panel per method, a line per param group.

    Args:
        df: Records, as :func:`collect` returns them.
        out_dir: Where the PNGs go (created if missing).

    Returns:
        The PNG paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = ["tokens_out", "mattr", "repetition_rate"] + [
        m for m in ("correct", "info_units", "perplexity") if df[m].notna().any()
    ]
    # Name a line by what varies: the group always, experiment and model only when there are several.
    naming = [c for c in ("experiment", "model_name") if df[c].nunique() > 1] + ["param_group_name"]
    written = []
    for metric in metrics:
        stats = _per_repetition(df, metric)
        # A panel per method that has this metric (perplexity may be enabled in some jobs only).
        methods = [m for m in dict.fromkeys(df["degradation_method"]) if m in set(stats["degradation_method"])]
        fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4), sharey=True, squeeze=False)
        for ax, method in zip(axes[0], methods):
            for key, line in stats[stats["degradation_method"] == method].groupby(LINE):
                _draw(
                    ax,
                    line.sort_values("level_value"),
                    method,
                    " / ".join(str(dict(zip(LINE, key))[c]) for c in naming),
                )
            ax.set_title(method)
            ax.set_xlabel(X_LABEL.get(method, "level"))
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        name = "accuracy" if metric == "correct" else metric
        axes[0][0].set_ylabel(f"{name} (mean ± s.e. over repetitions)")
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _draw(ax: plt.Axes, line: pd.DataFrame, method: str, label: str) -> None:
    if method != "uni_quant":
        ax.errorbar(line["level_value"], line["mean"], yerr=line["sem"], marker="o", capsize=3, label=label)
        return
    # n = 0 (clean) has no place on a log axis: drawn as a reference line instead.
    clean, damaged = line[line["level_value"] == 0], line[line["level_value"] > 0]
    drawn = ax.errorbar(
        damaged["level_value"], damaged["mean"], yerr=damaged["sem"], marker="o", capsize=3, label=label
    )
    for value in clean["mean"]:
        ax.axhline(value, linestyle="--", color=drawn[0].get_color(), alpha=0.6, label=f"{label} (clean, n=0)")
    if len(damaged):
        ax.set_xscale("log", base=2)
        if not ax.xaxis_inverted():
            ax.invert_xaxis()


def _markdown(table: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value).replace("|", "\\|")

    rows = [[str(c) for c in table.columns], ["---"] * len(table.columns)]
    rows += [[cell(v) for v in row] for row in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def write_report(root: Path, out_dir: Path | None = None) -> dict[str, Path | list[Path]]:
    """Collect, summarise and plot every record under ``root``.

    Args:
        root: A job, run or sweep dir.
        out_dir: Where the report goes; ``root/report`` by default.

    Returns:
        ``{"records": ..., "summary_csv": ..., "summary_md": ..., "plots": [...]}``, the paths written.

    Raises:
        DegradeError: ``root`` is not a directory or holds no records.
    """
    root = Path(root)
    records = collect(root)
    out_dir = Path(out_dir) if out_dir is not None else root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(records)
    paths: dict[str, Path | list[Path]] = {
        "records": out_dir / PARQUET,
        "summary_csv": out_dir / "summary.csv",
        "summary_md": out_dir / "summary.md",
    }
    # The pinned schema again: pandas would turn nullable ints into floats and all-null lists into nulls.
    schema = SCHEMA.append(pa.field("job_dir", pa.string()))
    pq.write_table(pa.Table.from_pandas(records[schema.names], schema=schema, preserve_index=False), paths["records"])
    summary.to_csv(paths["summary_csv"], index=False)
    paths["summary_md"].write_text(_markdown(summary), encoding="utf-8")
    paths["plots"] = plot(records, out_dir)
    log.info("report: %d records from %d job dirs → %s", len(records), records["job_dir"].nunique(), out_dir)
    return paths
