"""degrade's submitit launchers: Hydra's, collecting every job of a sweep (see ``launchers``).

Hydra finds them by scanning the ``hydra_plugins`` namespace package; ``hydra/launcher=slurm_cpu``,
``slurm_gpu`` and ``local_gpu`` name them. They need the ``cluster`` extra (hydra-submitit-launcher).
"""
