"""``generate_efficiency``: degrade's generation tokens/s ÷ raw ``model.generate`` on the same batch."""

from __future__ import annotations

import copy
from statistics import median
from typing import Any

import torch

from degrade.benchmark.context import Context
from degrade.benchmark.timing import median_ratio, result, rounded, timed
from degrade.config.compose import compose_config
from degrade.generation import text


def hand_batch(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input ids and attention mask, built independently of degrade.generation.text."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    return ids, mask


def raw_config(model: Any, pad: int, tokens: int) -> Any:
    """Greedy, fixed length: the model's generation config with exactly what degrade sets for greedy."""
    config = copy.deepcopy(model.generation_config)
    config.update(
        do_sample=False, max_new_tokens=tokens, min_new_tokens=tokens, repetition_penalty=1.0, pad_token_id=pad
    )
    return config


def measure(ctx: Context) -> dict[str, Any]:
    """degrade.generation.text.generate as the cells call it vs model.generate alone: interleaved pairs, medians."""
    loaded, n = ctx.loaded, ctx.sizes.gen_tokens
    cfg = compose_config(f"generation.max_new_tokens={n}")
    model, tok = loaded.model, loaded.tokenizer
    params = text.effective_params(model, cfg.generation)
    encoded = [text.encode(tok, p.text) for p in cfg.experiment.selected[: ctx.sizes.gen_prompts]]
    pad = text.pad_id(tok)
    ids, mask = hand_batch(encoded, pad)
    config = raw_config(model, pad, n)

    def ours() -> list[text.Sample]:
        # with a progress criterion, as the cells run it (it reports only every 15 s)
        progress = text.Progress(n, lambda *_: None)
        return text.generate(model, tok, encoded, params, loaded.device, min_new_tokens=n, progress=progress)

    @torch.inference_mode()
    def raw() -> torch.Tensor:
        return model.generate(
            input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device), generation_config=config
        )

    ctx.progress.doing("warm-up")
    ours(), raw()  # warm-up
    ctx.progress.step("warm-up done")
    t_ours, t_raw, same = [], [], True
    for index in range(ctx.sizes.gen_pairs):
        ctx.progress.doing(f"pair {index + 1}/{ctx.sizes.gen_pairs}")
        seconds, samples = timed(ours)
        t_ours.append(seconds)
        seconds, out = timed(raw)
        t_raw.append(seconds)
        texts = [tok.decode(row[ids.shape[1] :], skip_special_tokens=True).strip() for row in out.tolist()]
        same &= [s.text for s in samples] == texts
        ctx.progress.step(f"pair {index + 1}/{ctx.sizes.gen_pairs}: degrade {t_ours[-1]:.2f} s, raw {t_raw[-1]:.2f} s")
    tokens_ours = sum(s.tokens_out for s in samples)
    tokens_raw = int(out[:, ids.shape[1] :].numel())
    # tokens/s ÷ tokens/s = (tokens_ours / tokens_raw) × (raw seconds ÷ degrade seconds)
    ratio = tokens_ours / tokens_raw * median_ratio(t_raw, t_ours)
    return result(
        "generate_efficiency",
        ratio,
        {
            "prompts": len(encoded),
            "prompt_width": int(ids.shape[1]),
            "max_new_tokens": n,
            "tokens_degrade": tokens_ours,
            "tokens_raw": tokens_raw,
            "repeats": ctx.sizes.gen_pairs,
            "seconds_degrade": rounded(t_ours),
            "seconds_raw": rounded(t_raw),
            "median_s_degrade": round(median(t_ours), 4),
            "median_s_raw": round(median(t_raw), 4),
            "tokens_per_s_degrade": round(tokens_ours / median(t_ours), 2),
            "tokens_per_s_raw": round(tokens_raw / median(t_raw), 2),
            "same_text": same,
        },
    )
