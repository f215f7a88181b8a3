"""The original study's text measures: loop truncation, word frequency, lemmas, lexical density, sentences.

A damaged model often falls into a loop ("fantasin... fantasin... fantasin..."); the study cut
such loops before measuring, so a text is not scored on hundreds of copies of one phrase. Here a
loop is a run of 1 to ``MAX_PERIOD`` words repeated at least ``MIN_REPEATS`` times in a row,
covering at least ``MIN_LOOP_WORDS`` words; the text is cut after its first copy and the record
says so (``loop_truncated``).

The two lexical measures are taken as the thesis took them, as far as maintained packages give them:
the type-lemma ratio over the words that are no stopwords (``stopwordsiso``'s list for the language),
lemmas from ``simplemma``; the Zipf frequency (``wordfreq``) of each word's lemma. They need the ``nlp``
extra (``pip install -e '.[nlp]'``), whose word lists install from the package registry with it (nothing
is downloaded at run time); without it they are None. The others need no package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_PERIOD = 20  # longest repeated phrase, in words
MIN_REPEATS = 3  # copies in a row that make a loop
MIN_LOOP_WORDS = 6  # a loop covers at least this many words ("no, no, no" is not one)

# The columns measure() fills besides loop_truncated; their direction and what they need are the registry's
# (degrade.scoring.measures), the one place that says so.
COLUMNS = ("zipf_frequency", "type_lemma_ratio", "lexical_density", "n_sentences", "mean_sentence_length")

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")  # letters (a hyphen splits: "C-C-C" is three words)
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)|\n\s*\n")

# Closed-class (function) words; lexical density is the share of the other words. One entry per language.
_FUNCTION_WORDS = {
    "en": frozenset(
        """a an the this that these those some any no every each either neither all both few many much more most
        several such what which whose whatever whichever i me my mine myself you your yours yourself yourselves he
        him his himself she her hers herself it its itself we us our ours ourselves they them their theirs
        themselves who whom one ones someone anyone everyone nobody somebody anybody everybody something anything
        everything nothing there here and or but nor so yet for if then than because although though while whereas
        unless until since as whether once when where why how about above across after against along among around
        at before behind below beneath beside between beyond by down during except from in inside into like near
        of off on onto out outside over past through throughout to toward towards under underneath up upon with
        within without be am is are was were been being have has had having do does did doing done will would
        shall should can could may might must ought not n't 's 're 've 'd 'll 'm s t don didn doesn isn wasn aren
        weren hasn haven hadn won wouldn couldn shouldn can't cannot very too also just only even still again
        ever never always often then now yes oh well""".split()
    ),
}


@dataclass(frozen=True)
class Parts:
    """A text as the measures read it: its loops cut (``truncated`` says so), its words lower-cased, its sentences."""

    truncated: bool
    words: list[str]
    sentences: list[str]


def split(text: str) -> Parts:
    """``text`` with its first repetition loop cut, in words and sentences."""
    kept, truncated = truncate_loops(text)
    return Parts(truncated, [w.lower() for w in _WORD.findall(kept)], _sentences(kept))


def function_words(language: str) -> frozenset[str] | None:
    """The closed-class words of ``language`` (None where there is no list for it)."""
    return _FUNCTION_WORDS.get(language)


def nlp_available() -> bool:
    """Whether the ``nlp`` extra (wordfreq, simplemma and stopwordsiso) can be imported."""
    try:
        import simplemma  # noqa: F401
        import stopwordsiso  # noqa: F401
        import wordfreq  # noqa: F401
    except ImportError:
        return False
    return True


def truncate_loops(text: str) -> tuple[str, bool]:
    """``text`` cut after the first copy of its first repetition loop, and whether it was cut.

    Words are compared lower-cased; the cut keeps everything up to the end of the loop's first copy.
    """
    spans = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
    words = [w for _, _, w in spans]
    for start in range(len(words)):
        for period in range(1, min(MAX_PERIOD, (len(words) - start) // MIN_REPEATS) + 1):
            block = words[start : start + period]
            repeats = 1
            while words[start + repeats * period : start + (repeats + 1) * period] == block:
                repeats += 1
            if repeats >= MIN_REPEATS and repeats * period >= MIN_LOOP_WORDS:
                return text[: spans[start + period - 1][1]], True
    return text, False


def _sentences(text: str) -> list[str]:
    """The sentences of ``text``, each with its end mark, stripped; a piece without a word is none."""
    parts, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        parts.append(text[start : end.end()])
        start = end.end()
    parts.append(text[start:])
    return [p.strip() for p in parts if _WORD.search(p)]


def measure(text: str, *, language: str = "en") -> dict[str, Any]:
    """Every measure of this module for one generated text, loops cut first.

    Args:
        text: The generated text.
        language: Two-letter code for the word lists (wordfreq, simplemma and the function words).

    Returns:
        ``loop_truncated``; ``zipf_frequency`` (mean Zipf frequency of the words' lemmas, 0 for one the
        language does not have) and ``type_lemma_ratio`` (distinct lemmas / words, stopwords left out), None
        without the ``nlp`` extra; ``lexical_density`` (share of words that are not function words, None without
        a function-word list for ``language``); ``n_sentences``; ``mean_sentence_length`` (words per
        sentence). The ratios are None for a text without words.
    """
    parts = split(text)
    words, sentences = parts.words, parts.sentences
    out: dict[str, Any] = {
        "loop_truncated": parts.truncated,
        "zipf_frequency": None,
        "type_lemma_ratio": None,
        "lexical_density": None,
        "n_sentences": len(sentences),
        "mean_sentence_length": len(words) / len(sentences) if sentences else None,
    }
    if not words:
        return out
    closed = function_words(language)
    if closed is not None:
        out["lexical_density"] = sum(w not in closed for w in words) / len(words)
    if nlp_available():
        out.update(_lexical(words, language))
    return out


def _lexical(words: list[str], language: str) -> dict[str, float | None]:
    """The thesis's two lexical measures: Zipf frequency per lemma, type-lemma ratio without stopwords."""
    import simplemma
    import stopwordsiso
    import wordfreq

    lemmas = [simplemma.lemmatize(w, lang=language).lower() for w in words]
    stop = stopwordsiso.stopwords(language) if stopwordsiso.has_lang(language) else set()
    # a stopword as written or as its lemma ("were": "be"), as a tagger's lemmas would be checked
    content = [lemma for w, lemma in zip(words, lemmas) if w not in stop and lemma not in stop]
    return {
        "zipf_frequency": sum(wordfreq.zipf_frequency(lemma, language) for lemma in lemmas) / len(lemmas),
        # None when every word is a stopword: no content word to count
        "type_lemma_ratio": len(set(content)) / len(content) if content else None,
    }
