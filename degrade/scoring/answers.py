"""Scores for one generated text: answer correctness, Cookie Theft information units, lexical measures.

The Cookie Theft units are 23 (3 subjects, 2 places, 11 objects, 7 actions), after the information-unit
lists common in aphasia and dementia research; "dishes" is folded into ``plate``.
Subjects: ``boy``, ``girl``, ``mother``.
Places: ``kitchen``, ``exterior`` (garden seen through the window). Objects: ``cookie``, ``jar``,
``stool``, ``sink``, ``plate``, ``dishcloth``, ``water``, ``window``, ``curtains``, ``cupboard``,
``counter``. Actions: ``stealing``, ``stool_tipping`` (stool or boy falling), ``girl_reaching``
(reaching/asking), ``drying_dishes``, ``water_overflowing``, ``mother_unaware``, ``water_on_floor``
(any mention of the floor or a puddle). Actions are credited from key verb forms alone, so the agent
is not checked ("the boy is reaching" credits ``girl_reaching``); words that fit several units
("kids", "children") credit none.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

# Phrases, comma-separated, pass through normalize(), so articles and apostrophes in them are harmless; a
# trailing "*" makes a word a prefix ("wobbl*": wobble, wobbly). No "theft": models echo the picture's name.
_PHRASES = {
    "boy": "boy, son, brother, lad",
    "girl": "girl, daughter, sister",
    "mother": "mother, mom, mum, mommy, mummy, mama, woman, women, lady, housewife",
    "kitchen": "kitchen",
    "exterior": "outside, outdoors, exterior, garden, yard, backyard, lawn, grass, tree, bush, shrub, path, walkway",
    "cookie": "cookie, biscuit",
    "jar": "jar, canister, container",
    "stool": "stool, chair",
    "sink": "sink, basin",
    "plate": "plate, dish, saucer",
    "dishcloth": "dishcloth, dishtowel, dishrag, teatowel, towel, cloth, rag",
    "water": "water",
    "window": "window, windowsill",
    "curtains": "curtain, drape, drapery",
    "cupboard": "cupboard, cabinet, shelf",
    "counter": "counter, countertop, worktop",
    "stealing": "steal, stole, stolen, thief, taking, took, take cookie, get cookie, grab, snatch, sneak, pilfer",
    "stool_tipping": "tip, tilt, topple, teeter, wobbl*, fall, fell, fallen, balance, unstable",
    "girl_reaching": "reach, ask, beg, request, hold out, held out, shush, hush",
    "drying_dishes": "dry, wipe, wash, do the dishes",
    "water_overflowing": "overflow, spill, spilt, run over, ran over, flood, pour, splash, gush, brim",
    "mother_unaware": (
        "unaware, not aware, oblivious, not notice, doesn't notice, didn't notice, don't notice, never notice, "
        "fail to notice, unnoticed, ignore, daydream, distracted, preoccupied, unconcerned, absentminded, "
        "absent minded, not pay attention, not see, doesn't see, didn't see, not look"
    ),
    "water_on_floor": "floor, puddle",
}
INFO_UNITS: dict[str, tuple[str, ...]] = {unit: tuple(_PHRASES[unit].split(", ")) for unit in _PHRASES}
_ACTIONS = frozenset(
    "stealing stool_tipping girl_reaching drying_dishes water_overflowing mother_unaware water_on_floor".split()
)
# Function words in action phrases stay fixed, or "not" would also match "noted".
_FIXED = frozenset({"not", "to", "over", "out", "never", "doesnt", "didnt", "dont"})
# Merged before matching so that "dish towel" credits the towel, not the plate.
_COMPOUNDS = {"dish towel": "dishtowel", "dish cloth": "dishcloth", "dish rag": "dishrag", "tea towel": "teatowel"}

_ARTICLES = frozenset({"a", "an", "the"})
_UNITS = "one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = (
    {"zero": 0, "hundred": 100, "thousand": 1000}
    | {w: i + 1 for i, w in enumerate(_UNITS)}
    | {w: i + 10 for i, w in enumerate(_TEENS)}
    | {w: 10 * i + 20 for i, w in enumerate(_TENS)}
)
# Each token becomes one class letter, and a regex over the letters finds well-formed number phrases,
# so "one two three" stays three numbers instead of summing to six.
_NUMBER_CLASS = (
    {"zero": "z", "hundred": "h", "thousand": "k", "and": "&"}
    | dict.fromkeys(_UNITS, "u")
    | dict.fromkeys(_TEENS, "t")
    | dict.fromkeys(_TENS, "x")
)
_B100 = "(?:xu?|t|u)"
_B1000 = rf"(?:[ut]?h(?:&?{_B100})?|{_B100})"
_NUMBER_PHRASE = re.compile(rf"z|{_B1000}(?:k(?:&?{_B1000})?)?|k(?:&?{_B1000})?")
_ACRONYM = re.compile(r"(?<!\w)[a-z](?:\.[a-z])+\.?(?!\w)")
_PUNCT = re.compile(r"(?P<keep>(?<=\d)\.(?=\d)|(?<!\S)-(?=\d))|[^\w\s]|_")
_BREAK = "\x00"
_WORD = re.compile(r"\w+(?:['.-]\w+)*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _fold(text: str) -> str:
    """Lower-case and strip accents, the part of normalisation that text_metrics shares."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("\u2019", "'")


def _replace_punct(match: re.Match[str]) -> str:
    if match.group("keep"):
        return match.group()
    # Punctuation other than hyphens leaves a marker token, so "five, a thousand" stays two numbers.
    return " " if match.group() in "-_" else f" {_BREAK} "


def _number_value(words: list[str]) -> int:
    total = current = 0
    for value in (_NUMBER_WORDS[w] for w in words if w != "and"):
        if value == 1000:
            total, current = total + (current or 1) * 1000, 0
        else:
            current = (current or 1) * 100 if value == 100 else current + value
    return total + current


def _tokens(text: str, *, drop_articles: bool = True) -> list[str]:
    text = re.sub(r"['`\u2018]", "", _fold(text).replace("\u2212", "-"))
    text = _ACRONYM.sub(lambda m: m.group().replace(".", ""), text)  # D.C. -> dc
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,000 -> 1000
    words = [w for w in _PUNCT.sub(_replace_punct, text).split() if not (drop_articles and w in _ARTICLES)]
    out: list[str] = []
    pos = 0
    for match in _NUMBER_PHRASE.finditer("".join(_NUMBER_CLASS.get(w, ".") for w in words)):
        out += words[pos : match.start()]
        out.append(str(_number_value(words[match.start() : match.end()])))
        pos = match.end()
    out += words[pos:]
    # "12.0" and "0.50" are the same numbers as "12" and "0.5".
    return [w.rstrip("0").rstrip(".") if re.fullmatch(r"-?\d+\.\d+", w) else w for w in out if w != _BREAK]


def normalize(text: str) -> str:
    """Canonical form of a text for answer and unit matching.

    Lower-cases, strips accents and apostrophes, joins dotted acronyms ("D.C." -> "dc"), turns other
    punctuation into spaces (keeping a decimal point and a leading minus sign), drops the articles
    a/an/the, converts number words to digits ("twenty-one" -> "21", "one hundred and five" -> "105",
    "a thousand" -> "1000"), trims trailing decimal zeros and returns the tokens joined by single spaces.
    """
    return " ".join(_tokens(text))


def _starts(haystack: list[str], needle: list[str]) -> list[int]:
    width = len(needle)
    return [i for i in range(len(haystack) - width + 1) if needle and haystack[i : i + width] == needle]


def _neighbours(tokens: list[str], start: int, width: int) -> tuple[str | None, str | None]:
    return (tokens[start - 1] if start > 0 else None, tokens[start + width] if start + width < len(tokens) else None)


def _given(output: list[str], needle: list[str], prompt: list[str] | None) -> bool:
    """Whether ``needle`` occurs in ``output`` other than as part of a copy of the prompt that holds it.

    An occurrence copies the prompt when its neighbour on either side is the neighbour the needle has in
    the prompt: for a number, among the numbers alone ("144 divided by 12 is 1.44" copies "144 / 12"), else
    among all tokens ("carrot, apple, banana" copies the list it was picked from).
    """
    if prompt is None or not _starts(prompt, needle):
        return bool(_starts(output, needle))
    if len(needle) == 1 and _NUMBER.fullmatch(needle[0]):
        output, prompt = [t for t in output if _NUMBER.fullmatch(t)], [t for t in prompt if _NUMBER.fullmatch(t)]
    width = len(needle)
    copied = {side for i in _starts(prompt, needle) for side in enumerate(_neighbours(prompt, i, width))}
    return any(
        not any((side, token) in copied for side, token in enumerate(_neighbours(output, i, width)) if token)
        for i in _starts(output, needle)
    )


def iq_correct(output: str, answers: Sequence[str], prompt: str | None = None) -> int:
    """Whether an accepted answer occurs in the output as whole tokens, after normalize() on both.

    An answer that is only an article ("A" in a multiple-choice item) would normalise to nothing, so
    it is matched with articles kept on both sides instead, and then any "a" in the output counts.
    An answer the prompt itself holds ("What is 144 / 12?", answer 12; an odd one out among a list)
    counts only where the output does not merely copy it from the prompt: an occurrence whose neighbour
    on either side is the one it has in the prompt (among the numbers alone, for a number) is a copy.

    Args:
        output: The generated text.
        answers: Accepted answers; a bare string counts as one answer.
        prompt: The question, for telling a copy of it from an answer; None: every occurrence counts.

    Returns:
        1 if any answer occurs as a contiguous token sequence, other than as a copy of the prompt, else 0.
    """
    answers = [answers] if isinstance(answers, str) else answers
    for articles in (False, True):  # an answer that is only an article is matched with articles kept
        tokens = _tokens(output, drop_articles=not articles)
        question = _tokens(prompt, drop_articles=not articles) if prompt is not None else None
        for answer in answers:
            needle = _tokens(answer, drop_articles=not articles)
            if (not articles or not _tokens(answer)) and _given(tokens, needle, question):
                return 1
    return 0


def _inflected(word: str, verb: bool) -> str:
    """Regex for a word with its plural or, for action words, its verb forms."""
    if word.endswith("*"):
        return re.escape(word[:-1]) + r"\S*"
    if verb and word in _FIXED:
        return re.escape(word)
    stem = re.escape(word[:-1])
    if re.search(r"[^aeiou]y$", word):
        return stem + ("(?:y|ies|ied|ying)" if verb else "(?:y|ies)")
    if not verb:
        if word.endswith("f"):
            return stem + "(?:f|fs|ves)"
        if word.endswith("fe"):
            return re.escape(word[:-2]) + "(?:fe|fes|ves)"
        # "es" only where English needs it, so "cloth" does not also match "clothes".
        return re.escape(word) + ("(?:es)?" if re.search(r"(?:s|x|z|ch|sh)$", word) else "s?")
    if word.endswith("e") and not word.endswith("ee"):
        return stem + "(?:e|es|ed|ing)"
    # Consonant-vowel-consonant endings may double before a suffix: tip -> tipping, grab -> grabbed.
    double = f"{re.escape(word[-1])}?" if re.search(r"(?:^|[^aeiou])[aeiou][^aeiouwxy]$", word) else ""
    return re.escape(word) + double + "(?:s|es|ed|ing)?"


def _unit_pattern(unit: str, phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = []
    for phrase in phrases:
        words: list[str] = []
        for raw in phrase.split():
            normed = _tokens(raw.rstrip("*"))
            words += [w + "*" for w in normed] if raw.endswith("*") else normed
        alternatives.append(" ".join(_inflected(w, unit in _ACTIONS) for w in words))
    return re.compile(r"(?<!\S)(?:" + "|".join(alternatives) + r")(?!\S)")


_UNIT_PATTERNS = {unit: _unit_pattern(unit, phrases) for unit, phrases in INFO_UNITS.items()}


def info_units(text: str) -> list[str]:
    """Canonical names of the Cookie Theft units a text mentions (whole normalised words), in INFO_UNITS order."""
    normalized = normalize(text)
    for compound, merged in _COMPOUNDS.items():
        normalized = re.sub(rf"(?<!\S){compound}(s?)(?!\S)", rf"{merged}\1", normalized)
    return [unit for unit, pattern in _UNIT_PATTERNS.items() if pattern.search(normalized)]


def text_metrics(text: str, *, window: int = 50, n: int = 3) -> dict[str, float | int | None]:
    """Lexical diversity and repetition of a text, on lower-cased word tokens (articles kept).

    ``ttr`` falls as a text grows (common words return), so it only compares texts of similar
    length: a damaged model's short outputs score a higher TTR than the clean model's long ones.
    ``mattr`` averages the TTR over windows of a fixed size, which removes that dependence; a text
    shorter than one window has no such window, so its ``mattr`` is None rather than a TTR in disguise.

    Args:
        text: Any text.
        window: Token window of the moving-average type-token ratio (MATTR).
        n: N-gram length for the repetition rate.

    Returns:
        ``n_words``; ``ttr`` (types / tokens, 0.0 for an empty text); ``mattr`` (mean TTR over every
        run of ``window`` consecutive tokens; None when the text has fewer than ``window`` tokens);
        ``repetition_rate`` ((n-grams - distinct n-grams) / n-grams, 0.0 with fewer than n tokens).

    Raises:
        ValueError: If window or n is below 1.
    """
    if window < 1 or n < 1:
        raise ValueError(f"window and n must be at least 1, got window={window}, n={n}")
    tokens = _WORD.findall(_fold(text))
    count = len(tokens)
    ttr = len(set(tokens)) / count if count else 0.0
    mattr = None
    if count >= window:
        starts = range(count - window + 1)
        mattr = sum(len(set(tokens[i : i + window])) for i in starts) / window / len(starts)
    grams = [tuple(tokens[i : i + n]) for i in range(count - n + 1)]
    repetition = (len(grams) - len(set(grams))) / len(grams) if grams else 0.0
    return {"n_words": count, "ttr": ttr, "mattr": mattr, "repetition_rate": repetition}


def score_output(
    output: str, *, answers: Sequence[str] | None = None, cookie_theft: bool = False, prompt: str | None = None
) -> dict[str, Any]:
    """Every score for one generated text, as the record writer stores them.

    Args:
        output: The generated text.
        answers: Accepted answers of a question item; None or empty for free generation.
        cookie_theft: Whether the prompt asked for a Cookie Theft description.
        prompt: The prompt's text, so a copy of it is no answer (:func:`iq_correct`).

    Returns:
        The text_metrics keys (``mattr`` None below its 50-word window) plus ``correct`` (0/1; None
        without answers), ``info_units`` (count) and ``info_units_list`` (names), both None unless
        cookie_theft.
    """
    units = info_units(output) if cookie_theft else None
    return {
        **text_metrics(output),
        "correct": iq_correct(output, answers, prompt) if answers else None,
        "info_units": None if units is None else len(units),
        "info_units_list": units,
    }
