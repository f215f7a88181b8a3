"""Units the messages share: bytes in GiB and durations as 1h02m03s, each written one way everywhere."""

from __future__ import annotations

GiB = 1024**3


def hms(seconds: float) -> str:
    """``seconds`` as ``1h02m03s``, or ``2m03s`` under an hour."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
