"""Scores of an answer: accepted answers, picture units, text measures, perplexity."""

# Bump when a change here gives a stored output other scores (a new rule, a fixed normalisation): job dirs
# scored under the old rules are rescored from their outputs the next time they run (degrade.job.resume).
RULES_VERSION = 2  # 2: the thesis's lexical measures (type-lemma ratio without stopwords, Zipf per lemma)
