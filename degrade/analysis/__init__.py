"""Reading records back: the report, its statistics and plots, and comparing two runs."""
