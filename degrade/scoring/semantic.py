"""The thesis's two measures that need data no package ships: mean WordNet depth, consecutive-sentence similarity.

Both are off unless the user points at the data they need, and a record keeps null where one is off:

- ``wordnet_depth`` (``measures.wordnet=DIR``): the mean, over the words of the text that have a noun
  sense in WordNet, of the depth of their first (most frequent) noun sense: the fewest hypernym links
  to WordNet's root (NLTK's ``Synset.min_depth``; *entity* is 0, *dog* 8). Function words are left
  out, and no part-of-speech tagger is run: a verb with a noun sense ("run") counts. A vocabulary
  turning generic (*thing*, *place*) gives shallower words. ``DIR`` holds WordNet's database files
  (``index.noun``, ``data.noun``, …), read with NLTK's WordNet reader; English only.
- ``sentence_similarity`` (``measures.sentence_model=DIR``): the mean cosine similarity between the
  embeddings of consecutive sentences (first-order coherence), with a sentence-transformers model
  saved in ``DIR``, run on the CPU; null for a text of fewer than two sentences.

Both read the text with its repetition loops cut, as the other text measures do
(:func:`degrade.scoring.textmeasures.split`). Each data dir is keyed by a digest of its files' names
and contents, so the records of one job dir never mix two WordNets or two models: a change rescores
them (``scoring.wordnet``, ``scoring.sentence_model`` in :mod:`degrade.job.settings`). They need the
``semantic`` extra (``pip install -e '.[semantic]'``: NLTK and sentence-transformers).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from degrade.errors import DegradeError
from degrade.scoring import textmeasures
from degrade.scoring.measures import SEMANTIC_INSTALL

COLUMNS = ("wordnet_depth", "sentence_similarity")


def digest(path: str) -> str:
    """A digest of every file under ``path``: its relative name and its content (what the measure reads)."""
    root, h = Path(path), hashlib.blake2b(digest_size=16)
    for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(file.relative_to(root).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class Semantic:
    """The two measures as a job's settings turn them on: each a data dir, or None (off).

    Each dir's digest is taken once, when the job starts; what is loaded is loaded for that digest, so a dir
    rewritten between two jobs of one process is read again.
    """

    wordnet: str | None = None
    sentence_model: str | None = None
    digests: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        on = {"scoring.wordnet": self.wordnet, "scoring.sentence_model": self.sentence_model}
        self.digests = {key: digest(path) for key, path in on.items() if path is not None}

    def load(self) -> None:
        """Read each measure's data now (once per process and digest), so a job stops before generating if it cannot.

        Raises:
            DegradeError: a package of the ``semantic`` extra is missing, or the data cannot be read.
        """
        if self.wordnet is not None:
            _loaded("measures.wordnet", "nltk", wordnet_reader, self.wordnet, self.digests["scoring.wordnet"])
        if self.sentence_model is not None:
            model, version = self.sentence_model, self.digests["scoring.sentence_model"]
            _loaded("measures.sentence_model", "sentence_transformers", sentence_encoder, model, version)

    def settings(self) -> dict[str, str]:
        """The record-shaping settings: each data dir's digest, keyed only when on (older job dirs keep their hash)."""
        return dict(self.digests)

    def measure(self, text: str) -> dict[str, Any]:
        """``wordnet_depth`` and ``sentence_similarity`` of ``text`` (None where off, or the text has too little)."""
        out: dict[str, Any] = dict.fromkeys(COLUMNS)
        if self.wordnet is None and self.sentence_model is None:
            return out
        parts = textmeasures.split(text)
        if self.wordnet is not None:
            reader = wordnet_reader(self.wordnet, self.digests["scoring.wordnet"])
            out["wordnet_depth"] = wordnet_depth(reader, parts.words)
        if self.sentence_model is not None:
            model = sentence_encoder(self.sentence_model, self.digests["scoring.sentence_model"])
            out["sentence_similarity"] = sentence_similarity(model, parts.sentences)
        return out


def wordnet_depth(reader: Any, words: list[str]) -> float | None:
    """The mean depth of the first noun sense of each word that has one (function words left out)."""
    skip = textmeasures.function_words("en") or frozenset()
    depths = []
    for word in words:
        if word in skip:
            continue
        senses = reader.synsets(word, pos="n")
        if senses:
            depths.append(senses[0].min_depth())
    return sum(depths) / len(depths) if depths else None


def sentence_similarity(model: Any, sentences: list[str]) -> float | None:
    """The mean cosine similarity of each sentence's embedding with the next one's; None below two sentences."""
    if len(sentences) < 2:
        return None
    embeddings = model.encode(
        [s.strip() for s in sentences], normalize_embeddings=True, convert_to_tensor=True, show_progress_bar=False
    )
    return float((embeddings[:-1] * embeddings[1:]).sum(dim=-1).mean())


def _loaded(key: str, package: str, load: Any, path: str, version: str) -> Any:
    """``load(path, version)``, its failures one line naming ``key``."""
    try:
        return load(path, version)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == package:
            raise DegradeError(f"{key}: needs the semantic extra ({SEMANTIC_INSTALL})") from None
        raise
    except (OSError, ValueError) as exc:  # NLTK refuses files others may write (PermissionError) with its reason
        raise DegradeError(f"{key}: {path} cannot be read ({str(exc).splitlines()[0][:300]})") from None


@functools.lru_cache(maxsize=2)
def wordnet_reader(path: str, version: str) -> Any:
    """NLTK's WordNet reader on ``path`` at ``version`` (its digest), once per process (on NLTK's data path)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            # NLTK maps a WordNet other than its own download to that one, for the Open Multilingual Wordnet;
            # English synsets need no map, and NLTK's own download is not there to map to.
            return None

    root = str(Path(path).resolve())
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    with warnings.catch_warnings():  # "multilingual functions are not available": no Open Multilingual Wordnet given
        warnings.simplefilter("ignore", UserWarning)
        return EnglishWordNet(root, None)


@functools.lru_cache(maxsize=2)
def sentence_encoder(path: str, version: str) -> Any:
    """The sentence-transformers model saved in ``path`` at ``version`` (its digest), on the CPU, once per process."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(Path(path).resolve()), device="cpu", local_files_only=True)
