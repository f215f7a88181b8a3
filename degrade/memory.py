"""How full the memory that limits generation is: the GPU's under CUDA, the host's otherwise."""

from __future__ import annotations

import psutil
import torch


def usage_percent(device: torch.device) -> float:
    """Used share of the device's memory (CUDA) or of host RAM (CPU), in percent."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return round(100.0 * (total - free) / total, 2)
    return round(psutil.virtual_memory().percent, 2)
