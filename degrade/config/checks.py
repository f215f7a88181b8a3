"""Checks of the run's config that need more than a comparison: seeds, file names, numbers, patterns, the image.

Each raises :class:`ConfigError` naming the key and what is allowed, when the config becomes typed
objects (before any model loads and before anything is written), where a bad value would
otherwise fail later with a traceback: NumPy refusing a seed in the first cell, the file system
refusing a result file's name, a JSON reader refusing ``Infinity`` in the records, ``re``
refusing a pattern while the group resolves, PIL refusing a decompression bomb.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from degrade.errors import ConfigError, require

SEED_MAX = 2**32 - 1  # NumPy's seeds run from 0 to 2**32 - 1; repetition r uses seed + r
NAME_BYTES = 200  # a file name's bytes: file systems take 255, and a name gets .tmp or .unreadable-<time> added


def safe_name(text: str) -> str:
    """``text`` as part of a file name: ``/`` and ``|`` become ``-``."""
    return text.replace("/", "-").replace("|", "-")


def view_name(method: str, model_name: str, name_suffix: str) -> str:
    """The original study's file name: ``outputs_{method}_{model}_{name_suffix}.json``."""
    return f"outputs_{method}_{safe_name(model_name)}_{safe_name(name_suffix)}.json"


def check_view_name(method: str, model_name: str, name_suffix: str) -> None:
    """Refuse a result file name the file system would refuse (a long ``name_suffix`` or ``model.name``)."""
    name = view_name(method, model_name, name_suffix)
    size = len(name.encode("utf-8", "surrogatepass"))
    key = "name_suffix" if len(name_suffix) >= len(model_name) else "model.name"
    require(
        size <= NAME_BYTES,
        key,
        f"the result file's name {name[:40]}… would be {size} bytes, and a file name may have {NAME_BYTES} "
        f"here; give a shorter {key}",
    )


def check_seeds(key: str, seed: int, n_rep: int) -> None:
    """Refuse seeds outside NumPy's range: repetition r is seeded with ``seed + r``, r < ``n_rep``."""
    last = seed + n_rep - 1
    require(
        0 <= seed and last <= SEED_MAX,
        key,
        f"{seed}; seeds run from 0 to {SEED_MAX} (2**32 - 1), and repetition r is seeded with {key} + r, up to {last}",
    )


def check_finite(key: str, value: Any) -> None:
    """Refuse ``inf`` and ``nan``: they would be written as ``Infinity`` and ``NaN``, which JSON readers reject."""
    if isinstance(value, float):
        require(math.isfinite(value), key, f"{value}; must be a finite number")


def check_options_finite(prefix: str, options: dict[str, Any]) -> None:
    """:func:`check_finite` on every number of a method's options (lists of numbers too)."""
    for name, value in options.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            check_finite(f"{prefix}.{name}", item)


def check_patterns(key: str, patterns: Iterable[str]) -> None:
    """Refuse a pattern that is not a regular expression."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(key, f"{pattern!r} is not a regular expression ({exc})") from None


def check_image(key: str, path: str) -> None:
    """Refuse an image PIL cannot open, or one of more pixels than PIL's guard against decompression bombs.

    Only the header is read (PIL's ``open`` is lazy): a bomb is refused before it is decoded.
    """
    from PIL import Image

    found = Path(path).expanduser()
    require(found.is_file(), key, f"{path}: no such file")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(found) as image:
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ConfigError(
            key, f"{path}: more than {limit:,} pixels, which PIL refuses as a possible decompression bomb"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever PIL raises, the file is not an image it can show
        raise ConfigError(key, f"{path}: not an image PIL can read ({str(exc).splitlines()[0][:100]})") from None


# The data of the optional measures (degrade/scoring/semantic.py): what NLTK's WordNet reader and sentence-transformers
# need in the dirs the user gives.
WORDNET_FILES = ("lexnames", "index.noun", "data.noun", "index.verb", "data.verb", "index.adj", "data.adj")
SENTENCE_MODEL_FILES = ("modules.json", "config.json")  # what sentence-transformers saves in a model dir


def wordnet_problem(path: str) -> str | None:
    """Why ``path`` is no WordNet database dir NLTK can read; None when it is one."""
    if not Path(path).is_dir():
        return f"{path} is no dir"
    missing = [name for name in WORDNET_FILES if not (Path(path) / name).is_file()]
    if missing:
        return f"{path} lacks {', '.join(missing)}: give a dir of WordNet's database files (index.noun, data.noun, …)"
    with open(Path(path) / "data.noun", "rb") as f:
        if b"\r\n" in f.read(1 << 16):
            # the files address each synset by its byte offset, counted with one byte per line end
            return (
                f"{path}/data.noun has Windows line ends (CRLF), which move every synset off its byte offset; "
                "convert the files to plain line ends (dos2unix, or tr -d '\\r') into a dir of their own"
            )
    return None


def sentence_model_problem(path: str) -> str | None:
    """Why ``path`` is no saved sentence-transformers model; None when it is one."""
    if not Path(path).is_dir():
        return f"{path} is no dir"
    missing = [name for name in SENTENCE_MODEL_FILES if not (Path(path) / name).is_file()]
    if missing:
        return f"{path} lacks {', '.join(missing)}: give the dir of a saved sentence-transformers model"
    return None
