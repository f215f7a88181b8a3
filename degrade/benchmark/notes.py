"""What each figure of the benchmark report means, written into the report beside them."""

from __future__ import annotations

NOTES = [
    "Wall-clock timings (time.perf_counter) on whatever else the machine runs. raw.foreign_cpu_share is the CPU "
    "other processes took during that part, as a share of all cores (from /proc/stat less this process tree); "
    "load averages at start and end are in `machine`. Above ~0.1 the figures are not trustworthy: torch's two "
    "intra-op threads wait for a preempted partner at every parallel region, so many small operations (restore's "
    "one copy_ per parameter, decoding steps) slow down far more than one large one. The paired in-process ratios "
    "are interleaved A B A B after a warm-up and use medians; the process-level ones run once each.",
    "Nothing measured is patched: job steps are timed by the job itself (metadata.json: `timings` with restore_s, "
    "damage_s, generate_s, record_s, views_s, load_s, total_s and cells; model_load_s, model_cache_hit), and every "
    "job's figures are kept under raw.",
    "generate_efficiency: degrade's side is generation.text.generate as the cells call it (batch tensors built, "
    "generation config deep-copied, a progress criterion, model.generate, decode up to EOS); the raw side is "
    "model.generate alone on input_ids/attention_mask built once by hand, with a config made once. Both greedy with "
    "min_new_tokens = max_new_tokens, so both emit prompts × max_new_tokens tokens; same_text checks that the "
    "outputs agree.",
    "restore_vs_copy: Snapshot.restore() (one copy_ per parameter) vs one dst.copy_(src) of a contiguous tensor "
    "with the same bytes; the headline is param_group=mlp_only, param_group=all is reported beside it.",
    "cell_overhead_share: the default job run by degrade.job.runner.run_job in this process, on the model already "
    "loaded (model_cache_hit true, load_s 0); (restore_s + damage_s + record_s + views_s) ÷ total_s of its "
    "metadata timings. damage_s includes the damaged weights' fingerprint; record_s is building the records and "
    "appending them to the journal; views_s is rebuilding the JSON and Parquet views. other_s is total_s less "
    "every step (the job's start, prepare, seeding, logging, metadata).",
    "multirun_speedup: each process pays interpreter start, imports, Hydra composition and the model load (from the "
    "converted safetensors cache, warm in the page cache after the in-process parts). Each separate run has its own "
    "job dir (a job dir belongs to one configuration and refuses another). The jobs use each preset's own levels, "
    "because a single sweep cannot give uni_quant (n ≥ 2) and the others (σ, p) different level lists. The saving "
    "is fixed per extra job (start, imports, model load), so the speedup falls toward 1 as the jobs' own work "
    "grows. Full runs alternate the two sides twice, in fresh dirs, and take medians; each job's metadata "
    "(model_load_s, model_cache_hit, timings) is kept.",
    "resume_skip_share: both runs are fresh processes with the same command and hydra.run.dir (the full run uses "
    "the default job, what `python scripts/run.py` runs). The rerun loads no model: it starts Python, imports "
    "torch and the library, composes the config, reads the journal and rebuilds the views. first/rerun keep each "
    "run's metadata; rerun_outside_job_s is the rerun's wall time less its own total_s (mostly imports). That "
    "cost is fixed, so the share falls as the job grows and misses the target for jobs shorter than ~20 × the "
    "rerun.",
    "--quick shrinks every size (fewer prompts and tokens), so its ratios, above all cell_overhead_share and "
    "resume_skip_share, are not comparable with a full run's.",
    "vllm_speedup (only where vLLM is installed): the study-shaped sweep (variant=gauss_attn,gauss_mlp,gauss_embed, "
    "generation=study at 64 new tokens, levels 0 and 1.0, the 38 dream prompts) as one --multirun on each backend, "
    "in each dtype. The ratio is generation tokens/s (records' tokens_out ÷ the jobs' generate_s), vLLM over "
    "Transformers, in the first dtype; wall is the whole sweep's wall time, Transformers over vLLM (it pays the "
    "engine's start); reload_over_generate_per_cell is the seconds handing a cell's weights to the engine against "
    "its generation seconds.",
]
