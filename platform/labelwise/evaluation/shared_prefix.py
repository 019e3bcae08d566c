"""Log-likelihood units that begin with the same tokens, prefilled once.

Many ``loglik`` requests repeat a long beginning: the judge's 18 discipline questions about one
prompt differ only after the prompt; its Bloom questions about different prompts share the
whole instruction before them; MMLU's questions of one subject share the few-shot examples.
Sorted by their token ids, such units sit next to each other; :func:`groups` gathers runs of
them whose common beginning is long enough to pay, and the runner prefills that beginning once
(batch 1) into a KV cache, then runs only each unit's remaining tokens on a copy of the cache
(``runner.ModelRunner._forward`` with ``prefix``). The tokens are exactly the units' own, so
the log-probabilities are those of the full forward pass up to float rounding.

A group's shared length stops before its first scored position, so that every logit the units
need comes from the second pass, and every unit keeps at least one token of its own.
"""

from __future__ import annotations

MIN_SHARED = 32  # a shorter common beginning is not worth a prefill pass of its own


def common_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def cap(unit) -> int:
    """The most tokens of ``unit`` a shared prefix may hold: up to its first scored position."""
    return min(p for targets in unit.targets for p, _ in targets)


def groups(units: list, min_shared: int = MIN_SHARED) -> tuple[list[tuple[int, list]], list]:
    """([(shared length, units)], units left alone). Sorted by their ids, neighbours share
    what their "link" says (common beginning, capped as above); a run of units shares its
    weakest link. A run is split at its weakest link when that link is under ``min_shared``,
    or when its two halves, each kept whole, save more tokens than the run does (a group of
    n units sharing s tokens runs (n - 1) x s tokens fewer)."""
    order = sorted(units, key=lambda u: u.ids)
    links = [min(common_length(a.ids, b.ids), cap(a), cap(b)) for a, b in zip(order, order[1:])]

    def saved(lo: int, hi: int) -> int:
        return (hi - lo - 1) * min(links[lo: hi - 1]) if hi - lo > 1 else 0

    out, alone = [], []
    runs = [(0, len(order))]
    while runs:
        lo, hi = runs.pop()
        if hi - lo < 2:
            alone.extend(order[lo:hi])
            continue
        k = min(range(lo, hi - 1), key=links.__getitem__)  # the weakest link: order[k] | order[k + 1]
        if links[k] < min_shared or saved(lo, hi) < saved(lo, k + 1) + saved(k + 1, hi):
            runs += [(lo, k + 1), (k + 1, hi)]
        else:
            out.append((links[k], order[lo:hi]))
    return out, alone

