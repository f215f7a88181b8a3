"""degrade: controlled damage to the weights of language models, swept with Hydra."""

from __future__ import annotations

__version__ = "0.1.0"
