"""``bf16_speed``: greedy tokens/s of the clean model in bfloat16 ÷ in float32, and how far bf16 moves it.

bf16 is faster on a CPU with native bf16 (AVX-512 BF16, AMX) and on GPUs, but it changes the numbers.
Beside the speed ratio this part reports what a user weighs it against, on the clean model and the
default prompts: the share of greedy answers that change, and KL(P_fp32 ‖ P_bf16) and top-1 agreement
over the fp32 answer's positions (teacher-forced, as ``experiment.fidelity`` measures damage). The
dtype stays in each job's settings (``model.dtype``): a bf16 run is a configuration of its own.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

from degrade.benchmark.context import Context
from degrade.benchmark.timing import result
from degrade.config.compose import compose_config
from degrade.generation import text
from degrade.scoring.fidelity import answer_logits, compare


def measure(ctx: Context) -> dict[str, Any]:
    loaded, n = ctx.loaded, ctx.sizes.gen_tokens
    cfg = compose_config(f"generation.max_new_tokens={n}", "generation=greedy")
    fp32 = loaded.model
    ctx.progress.doing("a bfloat16 copy of the model")
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    params = text.effective_params(fp32, cfg.generation)
    encoded = [text.encode(loaded.tokenizer, p.text) for p in cfg.experiment.selected[: ctx.sizes.gen_prompts]]

    def answers(model: Any) -> tuple[float, list[text.Sample]]:
        start = time.perf_counter()
        samples = text.generate(model, loaded.tokenizer, encoded, params, loaded.device)
        return time.perf_counter() - start, samples

    answers(fp32), answers(bf16)  # warm-up
    seconds: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    last: dict[str, list[text.Sample]] = {}  # each dtype's answers (greedy: the same every round)
    for _ in range(2):  # interleaved
        for name, model in (("float32", fp32), ("bfloat16", bf16)):
            took, last[name] = answers(model)
            seconds[name].append(took)
    reference, other = last["float32"], last["bfloat16"]
    ctx.progress.step("greedy answers in both dtypes")
    drift = [
        compare(
            answer_logits(fp32, prompt, ref.ids, loaded.device).float(),
            answer_logits(bf16, prompt, ref.ids, loaded.device).float(),
        )
        for prompt, ref in zip(encoded, reference)
        if ref.ids
    ]
    fp32_rate = sum(s.tokens_out for s in reference) / min(seconds["float32"])
    bf16_rate = sum(s.tokens_out for s in other) / min(seconds["bfloat16"])
    positions = sum(d.positions for d in drift)
    return result(
        "bf16_speed",
        bf16_rate / fp32_rate,
        {
            "tokens_per_s": {"float32": round(fp32_rate, 1), "bfloat16": round(bf16_rate, 1)},
            "seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
            "greedy_answers_changed_share": round(
                sum(a.text != b.text for a, b in zip(reference, other)) / len(reference), 4
            ),
            # means over every position of every answer, weighted by the answer's length
            "kl_fp32_to_bf16": round(sum(d.kl_to_clean * d.positions for d in drift) / positions, 6),
            "top1_agreement": round(sum(d.top1_agreement * d.positions for d in drift) / positions, 4),
            "positions": positions,
            "prompts": len(encoded),
            "max_new_tokens": n,
        },
    )
