"""Turning pool prompts into token ids and length-bucketed batches (no model needed).

The driver does this once, with the tokenizer only: prompts are rendered with
``labelwise.prompting`` (the same text training and evaluation use), checked against the
prompt length limit (``prompting.prompt_limit``; truncated, keeping the end, or rejected per
``score.overlong``), sorted by length and cut into batches. The batches depend only on the pool and the settings, so a rerun
after a crash plans exactly the same batches and recomputes exactly the same numbers.
"""

from __future__ import annotations

import dataclasses

from labelwise.prompting import prompt_ids


@dataclasses.dataclass
class Encoded:
    id: str
    task: str
    input_ids: list[int] | None  # None when the prompt cannot be scored
    error: str | None = None
    truncated: bool = False


def encode_prompt(tokenizer, id_, task, prompt, *, chat_template, limit, overlong) -> Encoded:
    ids = prompt_ids(tokenizer, prompt, chat_template)
    if len(ids) <= limit:
        return Encoded(id_, task, ids)
    if overlong == "reject":
        return Encoded(id_, task, None, f"overlong: prompt is {len(ids)} tokens, the limit is {limit}")
    # Truncate: cut the start of the prompt text and keep its end, where the question usually
    # is (as training does); never the template around it. Then re-render.
    body = tokenizer(prompt, add_special_tokens=False).input_ids
    keep = len(body) - (len(ids) - limit)
    for _ in range(8):  # re-tokenizing a cut text can shift by a token or two
        if keep <= 0:
            break
        cut = tokenizer.decode(body[len(body) - keep:])
        ids = prompt_ids(tokenizer, cut, chat_template)
        if len(ids) <= limit:
            return Encoded(id_, task, ids, truncated=True)
        keep -= len(ids) - limit
    return Encoded(
        id_, task, None, f"overlong: the prompt template alone does not fit in {limit} tokens"
    )


def encode_prompts(tokenizer, ids, tasks, prompts, *, chat_template, limit, overlong) -> list[Encoded]:
    return [
        encode_prompt(tokenizer, i, t, p, chat_template=chat_template, limit=limit, overlong=overlong)
        for i, t, p in zip(ids, tasks, prompts)
    ]


def plan_batches(lengths: list[int], batch_size: int, max_batch_tokens: int | None = None) -> list[list[int]]:
    """Indices into ``lengths`` cut into batches of similar length (shortest first).

    A batch holds at most ``batch_size`` prompts and, when ``max_batch_tokens`` is set, at most
    that many padded tokens (batch size x longest prompt; a single prompt always fits).
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        too_many = len(current) >= batch_size
        too_wide = (
            max_batch_tokens is not None and current and (len(current) + 1) * lengths[i] > max_batch_tokens
        )
        if current and (too_many or too_wide):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
