"""degrade's ``bisect`` sweeper: the level where a measure crosses a threshold, found by bisection.

Hydra finds it by scanning the ``hydra_plugins`` namespace package (from a clone, through
``scripts/run.py``'s path; when installed, as a package). Select it with ``hydra/sweeper=bisect``.
"""
