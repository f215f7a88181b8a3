"""A judge: rate every record of a run against a rubric with a language model, locally or over HTTP.

``scripts/judge.py`` composes :class:`~degrade.judge.config.JudgeAppConfig` and calls
:func:`~degrade.judge.runner.judge_run`; :mod:`degrade.judge.frame` joins the judgments to the
records for the report. See ``docs/judge.md``.
"""
