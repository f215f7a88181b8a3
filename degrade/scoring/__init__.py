"""Scores of an answer: accepted answers, picture units, text measures, perplexity."""
