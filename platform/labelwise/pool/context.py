"""Prompts longer than the scorer can take, found when the pool is built (issue 15).

A prompt longer than the model's context (minus ``score.max_new_tokens``, or
``score.max_prompt_tokens``) is cut or rejected at scoring (``score.overlong``); the pool stage
warns about them first, with counts per task, so a 5 MB prompt is not a surprise later.
Only prompts that could be that long are tokenized (a token holds at least one byte of text,
and the bound below is twice as generous), so ordinary pools cost next to nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable


def overlong_by_task(job, prompts: Iterable[str], tasks: Iterable[str]) -> tuple[int, Counter]:
    """(prompt token limit of the scorer, number of prompts over it per task)."""
    from transformers import AutoConfig

    from labelwise.models import load_tokenizer, resolve
    from labelwise.prompting import prompt_ids, prompt_limit

    tokenizer = load_tokenizer(job.model)
    model_cfg = AutoConfig.from_pretrained(resolve(job.model.name), trust_remote_code=job.model.trust_remote_code)
    context = getattr(model_cfg, "max_position_embeddings", None)
    limit = prompt_limit(job.score.max_prompt_tokens, context, job.score.max_new_tokens)
    chat = job.model.chat_template
    overhead = len(prompt_ids(tokenizer, "", chat))
    counts: Counter = Counter()
    for prompt, task in zip(prompts, tasks):
        if 2 * len(prompt.encode("utf-8")) + overhead <= limit:
            continue
        if len(prompt_ids(tokenizer, prompt, chat)) > limit:
            counts[task] += 1
    return limit, counts


def warn_overlong(job, pool, log=print) -> Counter:
    """Log a warning naming how many prompts per task the scorer will cut (or reject); a
    model that cannot be loaded here is said, not an error (the pool does not need it). A job
    without model and score sections (build_pool needs only run_dir and pool) is not checked."""
    if not (hasattr(job, "model") and hasattr(job, "score")):
        return Counter()
    try:
        limit, counts = overlong_by_task(job, pool["prompt"].tolist(), pool["task"].tolist())
    except Exception as e:  # a hub model offline, a missing tokenizer...
        log(f"pool: prompt lengths not checked against model {job.model.name} ({type(e).__name__}: {e})")
        return Counter()
    if counts:
        action = "cut its start and keep the end" if job.score.overlong == "truncate" else "reject them"
        per_task = ", ".join(f"{task} {n}" for task, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        log(
            f"pool: warning: {sum(counts.values())} prompts are longer than the {limit} tokens the scorer "
            f"takes with model {job.model.name} (score.overlong={job.score.overlong} will {action}); "
            f"per task: {per_task}"
        )
    return counts
