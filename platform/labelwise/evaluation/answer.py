"""The ``answer`` request: a gold continuation's log-likelihood and the greedy answer, from one
prefill of the prompt.

The held-out benchmark asks two things of every prompt: the log-likelihood of the gold
response (teacher forced) and, for short responses, the greedy answer (exact match). Run as a
``loglik`` and a ``generate`` request, the prompt is prefilled twice. Here a batch of prompts
(left padded) is prefilled once, all but its last token, into a KV cache; the teacher-forced
pass and ``generate`` both go on from that cache (a copy for the first), each starting at the
prompt's last token. The tokens are those of the two separate requests, so the results are
the same up to float rounding: the gold text split as :func:`tokens.split_pair` splits it, and
the generation prompt as :func:`tokens.encode` encodes it. A request whose two token lists
disagree at the boundary, or that truncation would cut differently, is answered as the two
separate requests.

    {"context": str, "continuation": str, "generate": bool, "max_new_tokens": int, "stop": [str]}
    -> {"logprobs": [float], "n_tokens": [int], "text": str | None}
"""

from __future__ import annotations

import copy
import dataclasses

from labelwise.evaluation import tokens as tok_mod
from labelwise.progress import BatchProgress
from labelwise.scoring.greedy import kv_cache_argument, kv_cache_of


@dataclasses.dataclass
class _Item:
    index: int
    context: list[int]  # the prompt's tokens, shared by both passes
    continuation: list[int]  # the gold continuation's tokens
    generate: bool
    max_new: int
    stop: list[str]


def answer(runner, payloads: list[dict], progress=None) -> list[dict]:
    """Results for ``payloads`` in order, on ``runner`` (a :class:`runner.ModelRunner`)."""
    out: list[dict | None] = [None] * len(payloads)
    shared, alone = [], []
    for i, p in enumerate(payloads):
        item = _plan(runner, i, p)
        (shared if item is not None else alone).append(item if item is not None else i)
    batches = _batches(shared, runner.settings.batch_size, runner.settings.max_batch_tokens)
    ticker = BatchProgress(progress, len(batches) + (1 if alone else 0))
    for batch in batches:
        for item, result in zip(batch, _answer_batch(runner, batch)):
            out[item.index] = result
        ticker.step()
    if alone:
        for i, result in zip(alone, separately(runner, [payloads[i] for i in alone])):
            out[i] = result
        ticker.step()
    return out


def _plan(runner, i: int, p: dict) -> _Item | None:
    """The request's tokens when one prefill can serve both passes, else None."""
    ctx, cont = tok_mod.split_pair(runner.tokenizer, p["context"], p["continuation"])
    max_new = int(p.get("max_new_tokens") or 0)
    generate = bool(p.get("generate"))
    if len(ctx) < 2 or len(ctx) + len(cont) > runner.max_length + 1:
        return None
    if generate and (tok_mod.encode(runner.tokenizer, p["context"]) != ctx or len(ctx) > runner.max_length - max_new):
        return None
    return _Item(i, ctx, cont, generate, max_new, list(p.get("stop") or []))


def _batches(items: list[_Item], batch_size: int, max_batch_tokens: int) -> list[list[_Item]]:
    """Longest prompts first, generating and non-generating requests apart, each batch within
    ``batch_size`` rows and rows x (prompt + longest continuation or generation) tokens."""
    order = sorted(items, key=lambda it: (not it.generate, -len(it.context)))
    batches, current = [], []
    for it in order:
        rows = current + [it]
        width = max(len(r.context) for r in rows) + max(max(len(r.continuation), r.max_new) for r in rows)
        if current and (len(rows) > batch_size or len(rows) * width > max_batch_tokens or it.generate != current[0].generate):
            batches.append(current)
            current = []
        current.append(it)
    if current:
        batches.append(current)
    return batches


def _answer_batch(runner, batch: list[_Item]) -> list[dict]:
    import torch

    model, tokenizer = runner.model, runner.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(it.context) for it in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, it in enumerate(batch):  # left padding: every prompt ends in the last column
        ids[b, width - len(it.context):] = torch.tensor(it.context)
        mask[b, width - len(it.context):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as generate derives them from the mask
    dev = runner.device
    ids, mask, positions = ids.to(dev), mask.to(dev), positions.to(dev)
    name = kv_cache_argument(model)  # ``cache`` from transformers 5.23, ``past_key_values`` before
    with torch.no_grad():
        cache = kv_cache_of(model(
            input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
            use_cache=True, logits_to_keep=1,
        ))
        gen_cache = copy.deepcopy(cache) if batch[0].generate else None
        logprobs = _teacher_forced(model, batch, ids, mask, positions, {name: cache}, pad)
        texts = _generate(runner, batch, ids, mask, {name: gen_cache}, pad) if batch[0].generate else [None] * len(batch)
    return [
        {"logprobs": [lp], "n_tokens": [len(it.continuation)], "text": text}
        for it, lp, text in zip(batch, logprobs, texts)
    ]


def _teacher_forced(model, batch, ids, mask, positions, cache, pad) -> list[float]:
    """Summed log-probs of each continuation, fed after the prompt's last token (right padded)."""
    import torch

    length = max(len(it.continuation) for it in batch)
    new = torch.full((len(batch), length), pad, dtype=torch.long)
    new_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for b, it in enumerate(batch):
        row = [it.context[-1]] + it.continuation[:-1]
        new[b, : len(row)] = torch.tensor(row)
        new_mask[b, : len(row)] = 1
    new, new_mask = new.to(ids.device), new_mask.to(ids.device)
    new_positions = positions[:, -1:] + torch.arange(length, device=ids.device)
    logits = model(
        input_ids=new, attention_mask=torch.cat([mask[:, :-1], new_mask], dim=1),
        position_ids=new_positions, use_cache=True, **cache,
    ).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    sums = []
    for b, it in enumerate(batch):
        targets = torch.tensor(it.continuation, device=logprobs.device)
        rows = torch.arange(len(it.continuation), device=logprobs.device)
        sums.append(float(logprobs[b, rows, targets].sum().item()))
    return sums


def _generate(runner, batch, ids, mask, cache, pad) -> list[str]:
    """Greedy continuations from the prefilled cache (generate feeds only the last column)."""
    max_new = max(it.max_new for it in batch)
    stops = sorted({s for it in batch for s in it.stop})
    kwargs = {"stop_strings": stops, "tokenizer": runner.tokenizer} if stops else {}
    generated = runner.model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=max_new, **cache,
        do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=pad, **kwargs,
    )
    width = ids.shape[1]
    texts = []
    for b, it in enumerate(batch):
        text = runner.tokenizer.decode(generated[b, width:][: it.max_new].tolist(), skip_special_tokens=True)
        texts.append(tok_mod.cut_at_stop(text, it.stop))
    return texts


def separately(runner, payloads: list[dict]) -> list[dict]:
    """The same results from the two separate requests (a ``loglik`` pass, then a ``generate``
    pass): for requests one prefill cannot serve, and as the baseline of ``labelwise bench eval``."""
    nll = runner.loglik([{"context": p["context"], "continuations": [p["continuation"]]} for p in payloads])
    gen_index = [i for i, p in enumerate(payloads) if p.get("generate")]
    gen = runner.generate([
        {"prompt": payloads[i]["context"], "max_new_tokens": payloads[i]["max_new_tokens"], "stop": payloads[i].get("stop") or []}
        for i in gen_index
    ]) if gen_index else []
    texts = {i: g["text"] for i, g in zip(gen_index, gen)}
    return [{**n, "text": texts.get(i)} for i, n in enumerate(nll)]
