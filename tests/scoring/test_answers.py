"""Answer matching, Cookie Theft units and lexical measures, against hand-checked values."""

from __future__ import annotations

import pytest

from degrade.scoring.answers import INFO_UNITS, info_units, iq_correct, normalize, score_output, text_metrics

DESCRIPTION = (
    "The boy is standing on a stool that is tipping over, and he is stealing cookies from the cookie jar "
    "in the cupboard. His sister is reaching up for one. The mother is drying a plate at the sink while "
    "the water overflows onto the floor. Through the window you can see the garden."
)


def test_normalize_case_accents_punctuation_articles_numbers() -> None:
    assert normalize("  The Twenty-One  Cafés!! ") == "21 cafes"
    assert normalize("one hundred and five, a thousand") == "105 1000"
    assert normalize("one two three") == "1 2 3"
    assert normalize("Washington, D.C., 1,000 and 3.50") == "washington dc 1000 and 3.5"


def test_iq_exact_answer() -> None:
    assert iq_correct("Paris", ["Paris"]) == 1


def test_iq_wrong_answer() -> None:
    assert iq_correct("London", ["Paris"]) == 0


def test_iq_number_is_not_matched_inside_another() -> None:
    assert iq_correct("13", ["3"]) == 0
    assert iq_correct("The answer is 3.", ["13"]) == 0
    assert iq_correct("-3", ["3"]) == 0


def test_iq_word_is_not_matched_inside_another() -> None:
    assert iq_correct("I love Parisian food.", ["Paris"]) == 0


def test_iq_answer_embedded_in_sentence() -> None:
    assert iq_correct("The answer is Paris.", ["Paris"]) == 1


def test_iq_number_word_output_digit_answer() -> None:
    assert iq_correct("The answer is twelve.", ["12"]) == 1


def test_iq_digit_output_number_word_answer() -> None:
    assert iq_correct("12 apples", ["twelve"]) == 1


def test_iq_compound_number_words() -> None:
    assert iq_correct("It is twenty-one.", ["21"]) == 1
    assert iq_correct("It is twenty one.", ["21"]) == 1
    assert iq_correct("21", ["twenty-one"]) == 1
    # The compound is one number, so neither of its parts counts on its own.
    assert iq_correct("twenty-one", ["20"]) == 0
    assert iq_correct("twenty-one", ["1"]) == 0


def test_iq_a_number_copied_from_the_question_is_no_answer() -> None:
    question = "What is 144 / 12?"
    # 12 sits beside 144 as in the question: a copy of it, and the answer given is 1.44
    assert iq_correct("144 divided by 12 is 1.44", ["12"], question) == 0
    assert iq_correct("144 divided by 12 is 1.44", ["12"]) == 1  # without the question every 12 counts
    assert iq_correct("144 / 12 = 12", ["12"], question) == 1
    assert iq_correct("12", ["12"], question) == 1
    assert iq_correct("The answer is twelve.", ["12"], question) == 1
    # an answer the question does not hold counts wherever it is, a completed sequence included
    assert iq_correct("93, 94, 95, 96, 97", ["96"], "What number completes the sequence: 93, 94, 95, __, 97?") == 1


def test_iq_an_option_copied_with_its_list_is_no_answer() -> None:
    question = "Which word does not belong: carrot, apple, banana, grape"
    assert iq_correct("carrot, apple, banana, grape", ["carrot"], question) == 0
    assert iq_correct("The odd one out is carrot.", ["carrot"], question) == 1
    choice = "Which word is closest in meaning to 'enormous'? A) huge B) small C) narrow D) little"
    assert iq_correct("A) huge B) small C) narrow D) little", ["huge", "A"], choice) == 0
    assert iq_correct("The answer is A.", ["huge", "A"], choice) == 1
    assert iq_correct("huge", ["huge", "A"], choice) == 1


def test_iq_case_punctuation_and_articles() -> None:
    assert iq_correct("THE ANSWER: Paris!!", ["paris"]) == 1
    assert iq_correct("It is the Pacific Ocean", ["Pacific Ocean"]) == 1


def test_iq_multi_word_answer_must_be_contiguous() -> None:
    assert iq_correct("It was George Washington.", ["George Washington"]) == 1
    assert iq_correct("Washington, not George.", ["George Washington"]) == 0


def test_iq_decimals() -> None:
    assert iq_correct("The probability is 0.5.", ["0.5"]) == 1
    assert iq_correct("It is 0.50", ["0.5"]) == 1
    assert iq_correct("It is 5", ["0.5"]) == 0


def test_iq_any_accepted_answer_and_accents() -> None:
    assert iq_correct("It is a dog", ["cat", "dog"]) == 1
    assert iq_correct("Sao Paulo", ["São Paulo"]) == 1
    assert iq_correct("It is Washington DC.", ["Washington, D.C."]) == 1


def test_iq_multiple_choice_letter() -> None:
    assert iq_correct("The answer is (B).", ["B"]) == 1
    assert iq_correct("Answer: A", ["A"]) == 1
    assert iq_correct("Answer: C", ["B"]) == 0


def test_iq_empty_output() -> None:
    assert iq_correct("", ["Paris"]) == 0
    assert iq_correct("   ", ["0"]) == 0


def test_info_units_canonical_names_unique_snake_case() -> None:
    assert len(INFO_UNITS) == 23
    assert all(name.isidentifier() and name == name.lower() for name in INFO_UNITS)


def test_info_units_on_hand_written_description() -> None:
    assert info_units(DESCRIPTION) == [
        "boy",
        "girl",
        "mother",
        "exterior",
        "cookie",
        "jar",
        "stool",
        "sink",
        "plate",
        "water",
        "window",
        "cupboard",
        "stealing",
        "stool_tipping",
        "girl_reaching",
        "drying_dishes",
        "water_overflowing",
        "water_on_floor",
    ]


def test_info_units_not_mentioned_are_absent() -> None:
    found = info_units(DESCRIPTION)
    for unit in ("kitchen", "curtains", "counter", "dishcloth", "mother_unaware"):
        assert unit not in found
    assert info_units("The woman is washing dishes.") == ["mother", "plate", "drying_dishes"]


def test_info_units_plurals() -> None:
    assert info_units("cookies") == ["cookie"]
    assert info_units("curtains") == ["curtains"]
    assert info_units("shelves") == ["cupboard"]
    assert info_units("two women") == ["mother"]


def test_info_units_verb_inflections() -> None:
    for text in ("overflow", "overflows", "overflowing", "spilled", "running over"):
        assert info_units(text) == ["water_overflowing"], text
    for text in ("dry", "dries", "dried", "drying", "wiping"):
        assert info_units(text) == ["drying_dishes"], text
    for text in ("fall", "falling", "tipped", "wobbly"):
        assert info_units(text) == ["stool_tipping"], text
    assert info_units("She doesn't notice") == ["mother_unaware"]


def test_info_units_whole_words_only() -> None:
    assert info_units("a boycott of the sinkhole and the cookiecutter") == []
    assert info_units("") == []


def test_info_units_dish_towel_is_the_towel_not_the_plate() -> None:
    assert info_units("with a dish towel") == ["dishcloth"]


def test_info_units_picture_name_is_not_an_action() -> None:
    # A model echoing the prompt's "Cookie Theft" mentions the cookie but describes no stealing.
    assert info_units("This is the Cookie Theft picture.") == ["cookie"]


def test_text_metrics_repeated_bigram() -> None:
    metrics = text_metrics("the cat the cat the cat")
    assert metrics["n_words"] == 6
    assert metrics["ttr"] == pytest.approx(2 / 6)
    # Trigrams: (the cat the), (cat the cat), (the cat the), (cat the cat): 4 total, 2 distinct.
    assert metrics["repetition_rate"] == pytest.approx(0.5)


def test_mattr_is_none_below_the_window() -> None:
    """A 10-word answer (what the embedded model gives at σ = 0.4) has no 50-word window: no MATTR, not its TTR."""
    metrics = text_metrics("You. Isn. Is. Ass. Im im fab C C P")
    assert metrics["n_words"] == 10
    assert metrics["mattr"] is None
    # The TTR is still there, length-sensitive as it is: 8 types (im and c twice) among 10 words.
    assert metrics["ttr"] == pytest.approx(8 / 10)
    assert text_metrics(" ".join(f"w{i}" for i in range(49)))["mattr"] is None


def test_mattr_of_exactly_one_window_is_its_ttr() -> None:
    """50 words are one window: the MATTR is that window's TTR."""
    words = [f"w{i}" for i in range(40)] + ["again"] * 10
    metrics = text_metrics(" ".join(words))
    assert metrics["mattr"] == pytest.approx(41 / 50)
    assert metrics["ttr"] == pytest.approx(41 / 50)


def test_mattr_of_60_words_is_the_moving_average() -> None:
    """50 distinct words then "again" 10 times: 11 windows of 50, counted by hand."""
    words = [f"w{i}" for i in range(50)] + ["again"] * 10
    metrics = text_metrics(" ".join(words))
    assert metrics["n_words"] == 60
    assert metrics["ttr"] == pytest.approx(51 / 60)
    # Window k (k = 0..10) holds w_k..w_49 (50 - k types) and k copies of "again" (one more type when k ≥ 1):
    # k = 0 and 1 hold 50 types, k = 2..10 hold 49, 48, ..., 41.
    per_window = [50, 50, *range(49, 40, -1)]
    assert len(per_window) == 11
    assert metrics["mattr"] == pytest.approx(sum(per_window) / 50 / 11)  # 505 / 550 ≈ 0.918


def test_text_metrics_mattr_small_window() -> None:
    # Windows of 2: (a a) 1/2, (a b) 2/2, (b b) 1/2 -> mean 2/3, while the whole-text TTR is 1/2.
    metrics = text_metrics("a a b b", window=2)
    assert metrics["mattr"] == pytest.approx(2 / 3)
    assert metrics["ttr"] == pytest.approx(0.5)
    # Every window of 3 in "the cat the cat the cat" holds 2 types.
    assert text_metrics("the cat the cat the cat", window=3)["mattr"] == pytest.approx(2 / 3)


def test_text_metrics_case_punctuation_and_no_repetition() -> None:
    metrics = text_metrics("Dog, dog. DOG! A cat sat.", n=2)
    assert metrics["n_words"] == 6
    assert metrics["ttr"] == pytest.approx(4 / 6)
    # Bigrams: (dog dog) twice among 5 -> 1 repeat.
    assert metrics["repetition_rate"] == pytest.approx(1 / 5)
    assert text_metrics("one two three four")["repetition_rate"] == 0.0


def test_text_metrics_short_and_empty_texts() -> None:
    assert text_metrics("") == {"n_words": 0, "ttr": 0.0, "mattr": None, "repetition_rate": 0.0}
    assert text_metrics("hello world") == {"n_words": 2, "ttr": 1.0, "mattr": None, "repetition_rate": 0.0}


def test_text_metrics_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        text_metrics("a b c", window=0)
    with pytest.raises(ValueError):
        text_metrics("a b c", n=0)


def test_score_output_without_answers_or_cookie_theft() -> None:
    scores = score_output("the cat the cat the cat")
    assert set(scores) == {"n_words", "ttr", "mattr", "repetition_rate", "correct", "info_units", "info_units_list"}
    assert scores["correct"] is None
    assert scores["info_units"] is None and scores["info_units_list"] is None
    assert scores["repetition_rate"] == pytest.approx(0.5)
    assert scores["mattr"] is None  # 6 words, under the 50-word window
    assert score_output("Paris", answers=[])["correct"] is None
    long = " ".join([f"w{i}" for i in range(50)] + ["again"] * 10)
    assert score_output(long)["mattr"] == text_metrics(long)["mattr"] == pytest.approx(505 / 550)


def test_score_output_with_answers_and_cookie_theft() -> None:
    assert score_output("The answer is Paris.", answers=["Paris"])["correct"] == 1
    assert score_output("The answer is Rome.", answers=["Paris"])["correct"] == 0
    scores = score_output(DESCRIPTION, cookie_theft=True)
    assert scores["info_units_list"] == info_units(DESCRIPTION)
    assert scores["info_units"] == 18
