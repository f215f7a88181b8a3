"""``restore_vs_copy``: restoring a parameter group ÷ one copy of the same bytes as a single tensor."""

from __future__ import annotations

from statistics import median
from typing import Any

import torch

from degrade.benchmark.context import Context
from degrade.benchmark.timing import median_ratio, result, rounded, timed
from degrade.config.compose import compose_config
from degrade.model.groups import resolve_group
from degrade.model.restore import Snapshot

HEADLINE = "mlp_only"  # the default group
GROUPS = (HEADLINE, "all")


def measure_group(ctx: Context, group_name: str) -> dict[str, Any]:
    """Snapshot.restore() vs dst.copy_(src) of the same bytes as one contiguous tensor, interleaved."""
    loaded, repeats = ctx.loaded, ctx.sizes.restore_repeats
    ctx.progress.doing(group_name)
    group = resolve_group(loaded.model, compose_config(f"param_group={group_name}").param_group)
    snapshot = Snapshot(loaded.model, group.names)
    # Where restore copies from (CPU, pinned under CUDA) to where the weights live, as one tensor.
    cuda = loaded.device.type == "cuda"
    src = torch.cat([s.reshape(-1) for s in snapshot.saved if isinstance(s, torch.Tensor)])
    src = src.pin_memory() if cuda else src
    dst = torch.empty(src.shape, dtype=src.dtype, device=loaded.device)

    def flat_copy() -> None:
        dst.copy_(src, non_blocking=cuda)
        if cuda:
            torch.cuda.synchronize()

    snapshot.restore(), flat_copy()  # warm-up: first touch of every page
    t_restore, t_copy = [], []
    for _ in range(repeats):
        t_restore.append(timed(snapshot.restore)[0])
        t_copy.append(timed(flat_copy)[0])
    nbytes = snapshot.nbytes
    ratio = median_ratio(t_copy, t_restore)
    ctx.progress.step(f"{group_name}: {len(group.names)} tensors, {nbytes / 1e6:.0f} MB, ratio {ratio:.3f}")
    return {
        "param_group": group_name,
        "tensors": len(group.names),
        "bytes": nbytes,
        "copy_bytes": src.numel() * src.element_size(),
        "repeats": repeats,
        "seconds_restore": rounded(t_restore, 5),
        "seconds_copy": rounded(t_copy, 5),
        "restore_bytes_per_s": round(nbytes / median(t_restore)),
        "copy_bytes_per_s": round(nbytes / median(t_copy)),
        "ratio": round(ratio, 4),
    }


def measure(ctx: Context) -> dict[str, Any]:
    """The default group is the headline; ``all`` is measured beside it."""
    groups = [measure_group(ctx, g) for g in GROUPS]
    raw = {"headline_group": f"{HEADLINE} (the default)", "groups": groups}
    return result("restore_vs_copy", groups[0]["ratio"], raw)
