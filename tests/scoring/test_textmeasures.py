"""The study's text measures: loops cut before measuring, values known by hand, null without the nlp extra."""

from __future__ import annotations

import re
import sys

import pytest

from degrade.scoring import textmeasures
from degrade.scoring.textmeasures import measure, truncate_loops


@pytest.mark.parametrize(
    ("text", "kept", "cut"),
    [
        ("I have a most unusual fantasin... fantasin... fantasin... fantasin... fantasin... fantasin...", 6, True),
        ("I was flying. I was flying. I was flying. Then I woke up.", 3, True),
        ("You. Isn. Imim-fab-C-C-C-C-C-C-P-P", 5, True),
        ("No, no, no, I said.", 5, False),  # three copies of one word: too short to be a loop
        ("The dream was long and strange, and I remember every part of it.", 13, False),
    ],
    ids=["one-word", "phrase", "hyphens", "short-repeat", "no-loop"],
)
def test_loops_are_cut_after_their_first_copy(text: str, kept: int, cut: bool) -> None:
    out, truncated = truncate_loops(text)
    assert truncated is cut
    assert len(re.findall(r"[^\W\d_]+", out)) == kept
    assert text.startswith(out)


def test_measures_of_a_text_known_by_hand() -> None:
    import wordfreq

    m = measure("The cat sat. The cats sat!")
    assert m["loop_truncated"] is False
    assert m["n_sentences"] == 2 and m["mean_sentence_length"] == 3.0
    assert m["lexical_density"] == pytest.approx(4 / 6)  # "the" twice is the only function word
    assert m["type_lemma_ratio"] == pytest.approx(2 / 4)  # cat, sit over cat sat cats sat: "the" is a stopword
    lemmas = "the cat sit the cat sit".split()  # the Zipf frequency of each word's lemma
    assert m["zipf_frequency"] == pytest.approx(sum(wordfreq.zipf_frequency(w, "en") for w in lemmas) / 6)


def test_the_thesis_leaves_stopwords_out_of_the_type_lemma_ratio_and_reads_zipf_per_lemma() -> None:
    import simplemma
    import stopwordsiso
    import wordfreq

    text = "The dogs were running and the dog was barking at the dogs."
    words = [w.lower() for w in re.findall(r"[^\W\d_]+", text)]
    lemmas = [simplemma.lemmatize(w, lang="en").lower() for w in words]
    stop = stopwordsiso.stopwords("en")  # a word is a stopword when it or its lemma ("were": "be") is listed
    content = [lemma for w, lemma in zip(words, lemmas) if w not in stop and lemma not in stop]
    m = measure(text)
    assert m["type_lemma_ratio"] == pytest.approx(len(set(content)) / len(content))
    assert m["type_lemma_ratio"] != pytest.approx(len(set(lemmas)) / len(words))  # not over every word
    assert m["zipf_frequency"] == pytest.approx(sum(wordfreq.zipf_frequency(x, "en") for x in lemmas) / len(lemmas))
    assert measure("the of and")["type_lemma_ratio"] is None  # no content word to count
    spanish = [simplemma.lemmatize(w, lang="es").lower() for w in "los perros corrían y el perro ladraba".split()]
    kept = [x for x in spanish if x not in stopwordsiso.stopwords("es")]
    ratio = measure("Los perros corrían y el perro ladraba.", language="es")["type_lemma_ratio"]
    assert ratio == pytest.approx(len(set(kept)) / len(kept)) and "perro" in kept  # Spanish lists too


def test_a_loop_is_measured_once() -> None:
    looped = measure("I saw a bird. " + "the sky the sky the sky the sky " * 40)
    once = measure("I saw a bird. the sky")
    assert looped["loop_truncated"] is True
    assert {k: looped[k] for k in textmeasures.COLUMNS} == {k: once[k] for k in textmeasures.COLUMNS}


def test_rare_and_invented_words_lower_the_zipf_frequency() -> None:
    plain = measure("I walked to the house and saw my friend.")["zipf_frequency"]
    broken = measure("Imim fabbur walked quenxo the hrrm.")["zipf_frequency"]
    assert plain > 5 > broken


def test_a_text_without_words_has_no_ratios() -> None:
    assert measure("... 123 !!") == {
        "loop_truncated": False,
        "zipf_frequency": None,
        "type_lemma_ratio": None,
        "lexical_density": None,
        "n_sentences": 0,
        "mean_sentence_length": None,
    }


def test_without_the_nlp_extra_its_two_measures_are_null(monkeypatch: pytest.MonkeyPatch) -> None:
    full = measure("The cat sat. The cats sat!")
    monkeypatch.setitem(sys.modules, "wordfreq", None)  # what an environment without the package raises
    assert not textmeasures.nlp_available()
    bare = measure("The cat sat. The cats sat!")
    assert bare["zipf_frequency"] is None and bare["type_lemma_ratio"] is None
    assert {k: bare[k] for k in ("lexical_density", "n_sentences", "mean_sentence_length", "loop_truncated")} == {
        k: full[k] for k in ("lexical_density", "n_sentences", "mean_sentence_length", "loop_truncated")
    }
