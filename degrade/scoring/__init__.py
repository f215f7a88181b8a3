"""Scores of an answer: accepted answers, picture units, text measures, perplexity."""

# Bump when a change here gives a stored output other scores (a new rule, a fixed normalisation): job dirs
# scored under the old rules are rescored from their outputs the next time they run (degrade.job.resume).
# 2: the thesis's lexical measures (type-lemma ratio without stopwords, Zipf per lemma); 3: an answer the prompt holds
# is not credited where the output only copies it from the prompt ("144 divided by 12 is 1.44" for 12)
RULES_VERSION = 3
