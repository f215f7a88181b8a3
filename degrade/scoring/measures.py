"""Every measure's facts in one place: its record column, its label, which way is better, and what it needs.

The scores (:mod:`degrade.scoring.answers`, :mod:`degrade.scoring.textmeasures`), the report's statistics
and plots, and the line that says why a column is null all read this registry, so a measure's direction
is stated once. ``better`` is the direction a healthy model has: a measure where higher is better
declines when it falls; one where lower is better (repetition, perplexity, a rising Zipf frequency, which
the study read as the vocabulary impoverishing) declines when it rises; ``either`` has no good direction
(length), so its trend test is two-sided and both ways count as a change.

A judge's ratings (``judge_<rubric>_<field>`` columns) are measures too: higher is better, except the
fields in :data:`JUDGE_LOWER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower", "either"]
NLP_INSTALL = "pip install -e '.[nlp]'"
SEMANTIC_INSTALL = "pip install -e '.[semantic]'"


@dataclass(frozen=True)
class Measure:
    """A numeric record column the report summarises and the statistics test.

    Attributes:
        column: The record column.
        label: Its name in tables and plots.
        better: ``"higher"``, ``"lower"`` or ``"either"`` (see the module's docstring).
        per_level: One value per level, shared by every record of it (the perplexity of a reference
            text): its repetitions are no samples, so it has no spread and no effect size.
        extra: The package extra that computes it (``"nlp"``, ``"semantic"``), None when it needs none.
        needs: What a user does to get it when it is null in every record (one line), None when it
            needs nothing beyond its own setting.
    """

    column: str
    label: str
    better: Better = "higher"
    per_level: bool = False
    extra: str | None = None
    needs: str | None = None


_NLP = f"the nlp extra ({NLP_INSTALL})"
_SEMANTIC = f"the semantic extra ({SEMANTIC_INSTALL}) and"
_HOW = "(docs/records.md#optional-measures)"
_WORDNET = f"{_SEMANTIC} measures.wordnet=DIR, a dir of WordNet's database files {_HOW}"
_SENTENCES = f"{_SEMANTIC} measures.sentence_model=DIR, a saved sentence-transformers model {_HOW}"
MEASURES: tuple[Measure, ...] = (
    Measure("correct", "accuracy", needs="items with accepted answers (experiment=iq, or experiment.answers_file)"),
    Measure("info_units", "information units", needs="experiment.info_units=true (experiment=cookie_theft)"),
    Measure("mattr", "MATTR"),
    Measure("repetition_rate", "repetition rate", better="lower"),
    Measure("perplexity", "perplexity", better="lower", per_level=True, needs="experiment.perplexity.enabled=true"),
    Measure("tokens_out", "tokens out", better="either"),
    # Fidelity to the clean model (experiment.fidelity): each answer's next-token distributions against the clean ones.
    Measure("kl_to_clean", "KL to clean", better="lower", needs="experiment.fidelity.enabled=true"),
    Measure("top1_agreement", "top-1 agreement", needs="experiment.fidelity.enabled=true"),
    # lm-eval's length-normalised accuracy of a multiple-choice document (experiment=lm_eval); its acc is `correct`.
    Measure("acc_norm", "accuracy (length-normalised)", needs="experiment=lm_eval with a multiple-choice task"),
    # The study's text measures (degrade.scoring.textmeasures), on the text with its loops cut.
    Measure("loop_truncated", "loop truncated", better="lower"),
    Measure("type_lemma_ratio", "type-lemma ratio", extra="nlp", needs=_NLP),
    Measure("lexical_density", "lexical density"),
    # A rise in mean Zipf frequency is more common words: the study's sign of an impoverished vocabulary.
    Measure("zipf_frequency", "Zipf frequency", better="lower", extra="nlp", needs=_NLP),
    Measure("n_sentences", "sentences", better="either"),
    Measure("mean_sentence_length", "mean sentence length", better="either"),
    # The thesis's measures on the user's data (degrade.scoring.semantic); a generic vocabulary is shallower, and
    # consecutive sentences that no longer follow one another are less similar.
    Measure("wordnet_depth", "WordNet depth", extra="semantic", needs=_WORDNET),
    Measure("sentence_similarity", "consecutive-sentence similarity", extra="semantic", needs=_SENTENCES),
)
BY_COLUMN = {m.column: m for m in MEASURES}
JUDGE_PREFIX = "judge_"  # judge_<rubric>_<field>: a rating, higher is better unless listed below
JUDGE_LOWER = ("derailment", "tangentiality")  # the discourse rubric's fields, where more is worse


def judge_measure(column: str) -> Measure:
    """The measure of a judge rating column ``judge_<rubric>_<field>``."""
    better: Better = "lower" if column.endswith(JUDGE_LOWER) else "higher"
    return Measure(column, column.removeprefix(JUDGE_PREFIX).replace("_", " "), better=better)


def measure_of(column: str) -> Measure:
    """The registered measure of ``column`` (a judge rating included).

    Raises:
        KeyError: ``column`` is no measure.
    """
    if column.startswith(JUDGE_PREFIX):
        return judge_measure(column)
    return BY_COLUMN[column]


def of_extra(extra: str) -> list[str]:
    """The columns the package extra ``extra`` computes."""
    return [m.column for m in MEASURES if m.extra == extra]
