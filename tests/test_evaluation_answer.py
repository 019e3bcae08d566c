"""The ``answer`` request (one prefill for the gold log-likelihood and the greedy answer) gives
what the two separate requests give: the same log-likelihood to float rounding, the same text."""

from __future__ import annotations

import pytest

from labelwise.evaluation import answer as answer_mod
from labelwise.evaluation.runner import ModelRunner, ModelSpec, RunSettings
from labelwise.models import ModelConfig

PROMPTS = [
    ("What is the capital of France?", "Paris"),
    ("Add 2 and 3.", "5"),
    ("Write one sentence about the sea and the ships that sail on it at night.", "The sea is dark and the ships carry lanterns."),
    ("Yes or no: is ice cold?", "yes"),
    ("Name a colour.", "blue"),
    ("A much longer prompt " * 12 + "so the batch pads the others on the left.", "ok"),
    ("Q", "a fairly long gold answer that is teacher forced over many tokens in one pass"),
]


def _payloads(runner, generate_every: int = 2, stop=()):
    from labelwise.prompting import render_example

    out = []
    for i, (prompt, response) in enumerate(PROMPTS):
        head, full = render_example(runner.tokenizer, prompt, response, True)
        out.append({"context": head, "continuation": full[len(head):], "generate": i % generate_every == 0,
                    "max_new_tokens": 6 + i, "stop": list(stop)})
    return out


def _reference(runner, payloads):
    """(log-likelihood, tokens, greedy text) per payload from a loglik and a generate pass."""
    return [(r["logprobs"][0], r["n_tokens"][0], r["text"]) for r in answer_mod.separately(runner, payloads)]


@pytest.fixture(scope="module")
def tiny_runner(tiny_model_dir):
    return ModelRunner.load(ModelSpec(ModelConfig(name=str(tiny_model_dir))), RunSettings(batch_size=3, max_batch_tokens=4096))


@pytest.mark.parametrize("stop", [(), ("e",)])
def test_answer_equals_loglik_and_generate(tiny_runner, stop):
    payloads = _payloads(tiny_runner, stop=stop)
    got = tiny_runner.run("answer", payloads)
    want = _reference(tiny_runner, payloads)
    assert len(got) == len(payloads)
    for g, (logprob, n_tokens, text) in zip(got, want):
        assert g["logprobs"][0] == pytest.approx(logprob, abs=1e-4, rel=1e-5)
        assert g["n_tokens"] == [n_tokens]
        assert g["text"] == text
    assert any(t for _, _, t in want)  # some greedy text was compared
    if stop:
        assert all("e" not in g["text"] for g in got if g["text"] is not None)


def test_answer_falls_back_where_one_prefill_cannot_serve(tiny_runner):
    """A prompt that generation would truncate differently is answered as two requests."""
    short = RunSettings(batch_size=4, max_batch_tokens=4096, max_length=60)
    runner = ModelRunner(tiny_runner.model, tiny_runner.tokenizer, short)
    payloads = _payloads(runner, generate_every=1)
    planned = [answer_mod._plan(runner, i, p) for i, p in enumerate(payloads)]
    assert any(p is None for p in planned) and any(p is not None for p in planned)  # both paths run
    got = runner.run("answer", payloads)
    want = _reference(runner, payloads)
    for g, (logprob, n_tokens, text) in zip(got, want):
        assert g["logprobs"][0] == pytest.approx(logprob, abs=1e-4, rel=1e-5)
        assert g["text"] == text


@pytest.mark.slow
def test_answer_matches_on_the_packaged_model():
    """The real model: same greedy answers and log-likelihoods (what held-out exact match and NLL read)."""
    runner = ModelRunner.load(ModelSpec(ModelConfig()), RunSettings(batch_size=4))
    payloads = _payloads(runner, generate_every=1)
    got = runner.run("answer", payloads)
    for g, (logprob, _, text) in zip(got, _reference(runner, payloads)):
        assert g["logprobs"][0] == pytest.approx(logprob, abs=1e-3, rel=1e-5)
        assert g["text"] == text
