"""Loading a model, its parameter groups, restoring clean weights, tiny models and 4-bit storage."""
