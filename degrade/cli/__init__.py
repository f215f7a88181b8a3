"""Hydra glue: the command callback, the sweep summary and the job log handler."""
