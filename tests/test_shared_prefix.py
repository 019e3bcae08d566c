"""loglik units that begin alike are prefilled once (evaluation/shared_prefix.py): which units
are grouped, and the log-likelihoods equal those of full forward passes."""

from __future__ import annotations

import pytest

from labelwise.evaluation import shared_prefix
from labelwise.evaluation.tokens import Unit


def unit(request: int, ids: list[int], first_target: int | None = None) -> Unit:
    pos = len(ids) - 1 if first_target is None else first_target
    return Unit(request, ids, [[(pos, 7)]], [0])


def test_units_that_begin_alike_are_grouped_and_others_left_alone():
    head = list(range(100, 150))  # 50 tokens in common
    units = [unit(0, head + [1, 2]), unit(1, [9] * 60), unit(2, head + [3]), unit(3, head + [1, 5, 6])]
    groups, alone = shared_prefix.groups(units, min_shared=32)
    assert [(n, sorted(u.request for u in g)) for n, g in groups] == [(50, [0, 2, 3])]
    assert [u.request for u in alone] == [1]


def test_a_shared_prefix_stops_before_the_first_scored_position():
    head = list(range(100, 150))
    # request 1's continuation starts at position 40: its logits there need the second pass
    groups, _ = shared_prefix.groups([unit(0, head + [1]), unit(1, head + [2], first_target=40)], min_shared=32)
    assert groups[0][0] == 40
    groups, alone = shared_prefix.groups([unit(0, head + [1]), unit(1, head + [2], first_target=20)], min_shared=32)
    assert groups == [] and len(alone) == 2


def test_a_unit_that_would_cut_a_long_shared_prefix_short_is_not_added():
    long_head, short_head = list(range(100, 300)), list(range(100, 140))
    units = [unit(i, long_head + [i]) for i in range(3)] + [unit(9, short_head + [1] * 200)]
    groups, alone = shared_prefix.groups(units, min_shared=32)
    # adding unit 9 would save 40 tokens and cost the other three 2 x 160
    assert [(n, len(g)) for n, g in groups] == [(200, 3)] and [u.request for u in alone] == [9]


@pytest.mark.slow
def test_loglik_with_shared_prefixes_equals_full_forward_passes(tiny_model_dir):
    from labelwise.evaluation.runner import ModelRunner, ModelSpec, RunSettings
    from labelwise.models import ModelConfig

    plain = ModelRunner.load(ModelSpec(ModelConfig(name=str(tiny_model_dir), device="cpu", dtype="float32")),
                             RunSettings(batch_size=4, shared_prefix=False))
    shared = ModelRunner(plain.model, plain.tokenizer, RunSettings(batch_size=4, shared_prefix=True))
    intro = "Read the passage and answer the question about it. " * 4
    payloads = [{"context": f"{intro}Question {i}: is {w} a colour?\nAnswer:", "continuations": [" yes", " no"]}
                for i, w in enumerate(["red", "table", "blue", "seven", "green", "a", "teal"])]
    payloads += [{"context": f"{intro}Name a colour.\nAnswer:", "continuations": [" red", " dark blue", " a light green"]},
                 {"context": "Unrelated short context:", "continuations": [" x"]}]
    prefills = []
    real = shared._prefill
    shared._prefill = lambda ids: prefills.append(len(ids)) or real(ids)
    got, want = shared.loglik(payloads), plain.loglik(payloads)
    assert prefills and min(prefills) >= shared_prefix.MIN_SHARED  # the shared path ran
    for g, w in zip(got, want):
        assert g["n_tokens"] == w["n_tokens"]
        assert g["logprobs"] == pytest.approx(w["logprobs"], abs=1e-5)
