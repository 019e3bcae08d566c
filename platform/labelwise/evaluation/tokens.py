"""Tokenization for log-likelihood requests, packing them into forward passes, and cutting
generated text at stop strings.

A log-likelihood request is a context and candidate continuations. As in lm-evaluation-harness,
context + continuation is tokenized as one text, and the continuation's tokens are those after
the first len(tokenize(context)) tokens; the model sees exactly the tokens of the whole text
(the same split the training stage uses for prompt and response).

When every continuation is one token after the same context tokens (MMLU's " A".." D", the
judge's "A" / "B"), one forward pass over the context gives them all (a "unit" with several
targets at its last position); otherwise each continuation is its own unit.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Unit:
    """One sequence to run: ``targets[j]`` lists the (position, token) pairs whose log-probs sum
    to continuation j's log-likelihood (position p predicts the token at p + 1)."""

    request: int
    ids: list[int]
    targets: list[list[tuple[int, int]]]
    continuations: list[int]  # which continuation of the request each target list belongs to


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text``, with the BOS token the tokenizer adds by default (once)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and _adds_bos(tokenizer) and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def _adds_bos(tokenizer) -> bool:
    cached = getattr(tokenizer, "_labelwise_adds_bos", None)
    if cached is None:
        probe = tokenizer("a", add_special_tokens=True)["input_ids"]
        cached = bool(probe) and probe[0] == tokenizer.bos_token_id
        try:
            tokenizer._labelwise_adds_bos = cached
        except AttributeError:
            pass
    return cached


def split_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) of ``context + continuation`` tokenized as one text."""
    whole = encode(tokenizer, context + continuation)
    n_ctx = len(encode(tokenizer, context))
    cont = whole[n_ctx:]
    if not cont:
        raise ValueError(
            f"continuation {continuation!r} has no tokens of its own after context ending "
            f"{context[-40:]!r} (it merged into the context's last token)"
        )
    return whole[:n_ctx], cont


def build_units(tokenizer, request: int, context: str, continuations: list[str], max_length: int) -> list[Unit]:
    """Units for one request; contexts longer than ``max_length`` lose their beginning."""
    if not continuations:
        raise ValueError(f"request {request}: no continuations to score")
    pairs = [split_pair(tokenizer, context, c) for c in continuations]
    first_ctx = pairs[0][0]
    if all(len(cont) == 1 and ctx == first_ctx for ctx, cont in pairs):
        ids = first_ctx[-max_length:]
        last = len(ids) - 1
        return [Unit(request, ids, [[(last, cont[0])] for _, cont in pairs], list(range(len(pairs))))]
    units = []
    for j, (ctx, cont) in enumerate(pairs):
        ids = (ctx + cont)[-(max_length + 1):][:-1]  # the last token is only predicted
        # position start + k predicts continuation token k (start = last context position)
        start = len(ids) - len(cont)
        if start < 0:
            raise ValueError(f"request {request}: continuation longer than max_length={max_length}")
        units.append(Unit(request, ids, [[(start + k, tok) for k, tok in enumerate(cont)]], [j]))
    return units


def pack(units: list[Unit], batch_size: int, max_batch_tokens: int, max_targets: int = 4096) -> list[list[Unit]]:
    """Group units (longest first) into batches with at most ``batch_size`` rows,
    rows x longest <= ``max_batch_tokens`` (at least one row) and at most ``max_targets`` kept positions."""
    order = sorted(units, key=lambda u: len(u.ids), reverse=True)
    batches, current, width, kept = [], [], 0, 0
    for u in order:
        positions = len({p for t in u.targets for p, _ in t})
        new_width = max(width, len(u.ids))
        if current and (
            len(current) + 1 > batch_size
            or new_width * (len(current) + 1) > max_batch_tokens
            or kept + positions > max_targets
        ):
            batches.append(current)
            current, new_width, kept = [], len(u.ids), 0
        current.append(u)
        width, kept = new_width, kept + positions
    if current:
        batches.append(current)
    return batches


def cut_at_stop(text: str, stops: list[str]) -> str:
    """``text`` before the first occurrence of any stop string."""
    cut = len(text)
    for s in stops:
        k = text.find(s)
        if k >= 0:
            cut = min(cut, k)
    return text[:cut]
