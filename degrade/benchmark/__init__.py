"""The benchmark: its ratios against their targets, each measured by its own module.

:mod:`degrade.benchmark.driver` runs them in order; ``scripts/bench.py`` is the command line.
Job steps are timed by what each job writes to its ``metadata.json`` (``timings``), never by
patching the code measured or reading its log.
"""
