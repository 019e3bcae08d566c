"""Score stage, model-level: streamed metrics equal a naive full-logits reference (tiny model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.scoring.greedy import greedy_score, step_metrics
from labelwise.prompting import prompt_limit
from labelwise.scoring.plan import encode_prompt, plan_batches

PROMPTS = [
    "What is the capital of France?",
    "Hi",
    "Write a long story about a dragon who learns to paint with watercolors in the rain.",
    "List three prime numbers.",
    "Translate 'good morning' to German, please, and explain the grammar.",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from labelwise.models import ModelConfig, load_model

    torch.manual_seed(0)
    model, tok = load_model(ModelConfig(name=str(tiny_model_dir), device="cpu"))
    return model, tok


def token_ids(tok, prompts):
    from labelwise.prompting import prompt_ids

    return [prompt_ids(tok, p, True) for p in prompts]


def naive_reference(model, prompt_ids, answer):
    """Metrics from the full [T, V] logits of one unpadded teacher-forced forward pass."""
    ids = torch.tensor([prompt_ids + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits, -1)[len(prompt_ids) - 1 : len(prompt_ids) - 1 + len(answer)]
    p = logp.exp()
    lp = torch.stack([logp[j, t] for j, t in enumerate(answer)])
    ent = -(p * logp).sum(-1)
    top = torch.sort(p, -1, descending=True).values
    margin = top[:, 0] - top[:, 1]
    return {
        "logconf": lp.sum().item(),
        "mean_logprob": lp.mean().item(),
        "mean_entropy": ent.mean().item(),
        "mean_margin": margin.mean().item(),
        "min_margin": margin.min().item(),
        "argmax_gap": (logp.max(-1).values - lp).max().item(),  # chosen token is the argmax
    }


def test_step_metrics_match_full_softmax():
    torch.manual_seed(1)
    logits = torch.randn(4, 1000) * 3
    logits[0, 5] = 20.0  # a confident row
    logits[1, :] = 0.0
    logits[1, 7] = 1e-3  # nearly uniform row
    logits[2, 10:] = float("-inf")  # masked vocabulary must not give NaN entropy
    token, lp, ent, mar = step_metrics(logits)
    logp = torch.log_softmax(logits.double(), -1)
    p = logp.exp()
    ref_ent = -(torch.where(p > 0, p * logp, torch.zeros(())).sum(-1))
    top = torch.sort(p, -1, descending=True).values
    assert token.tolist() == torch.argmax(logits, -1).tolist()
    assert token[0] == 5 and token[1] == 7
    np.testing.assert_allclose(lp.numpy(), logp.max(-1).values.numpy(), atol=1e-5)
    np.testing.assert_allclose(ent.numpy(), ref_ent.numpy(), atol=1e-4)
    np.testing.assert_allclose(mar.numpy(), (top[:, 0] - top[:, 1]).numpy(), atol=1e-6)
    assert ent[1] == pytest.approx(math.log(1000), abs=1e-3)
    assert ent[2] <= math.log(10) + 1e-5 and not torch.isnan(ent).any()


def test_batched_greedy_metrics_equal_naive_reference(tiny):
    model, tok = tiny
    ids = token_ids(tok, PROMPTS)
    assert len({len(s) for s in ids}) > 1  # real left padding happens
    r = greedy_score(model, ids, max_new_tokens=7, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    for k, prompt in enumerate(ids):
        assert r.n_tokens[k] == len(r.tokens[k]) == 7
        ref = naive_reference(model, prompt, r.tokens[k])
        assert ref["argmax_gap"] < 1e-4, "a generated token is not the greedy choice"
        for name in ("logconf", "mean_logprob", "mean_entropy", "mean_margin", "min_margin"):
            assert getattr(r, name)[k] == pytest.approx(ref[name], abs=2e-4), (k, name)
        assert r.logconf[k] == pytest.approx(r.mean_logprob[k] * r.n_tokens[k], abs=1e-9)


def test_tokens_equal_model_generate(tiny):
    model, tok = tiny
    ids = token_ids(tok, PROMPTS)
    r = greedy_score(model, ids, max_new_tokens=6, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    for k, prompt in enumerate(ids):
        out = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, min_new_tokens=0)
        assert out[0, len(prompt) :].tolist()[: r.n_tokens[k]] == r.tokens[k]


def test_stop_token_ends_one_row_and_counts(tiny):
    model, tok = tiny
    ids = token_ids(tok, PROMPTS)
    free = greedy_score(model, ids, max_new_tokens=6, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    row0 = free.tokens[0]
    # pretend the first token of row 0 that is new after its start is an EOS
    cut = next((j for j in range(1, len(row0)) if row0[j] not in row0[:j]), 0)
    stop = row0[cut]
    r = greedy_score(model, ids, max_new_tokens=6, stop_ids=[tok.eos_token_id, stop], pad_id=tok.pad_token_id)
    for k in range(len(ids)):
        expect = free.tokens[k]
        if stop in expect:
            expect = expect[: expect.index(stop) + 1]
        assert r.tokens[k] == expect
        assert bool(r.eos[k]) == (stop in free.tokens[k])
        ref = naive_reference(model, ids[k], r.tokens[k])
        assert r.logconf[k] == pytest.approx(ref["logconf"], abs=2e-4)
        assert r.min_margin[k] == pytest.approx(ref["min_margin"], abs=2e-4)
    assert r.n_tokens[0] == cut + 1 and r.eos[0]
    assert any(not e for e in r.eos) or cut == 0  # other rows kept going


def test_embedding_is_pooled_penultimate_layer_of_the_prefill(tiny):
    model, tok = tiny
    ids = token_ids(tok, PROMPTS[:3])
    r = greedy_score(
        model, ids, max_new_tokens=2, stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id, embeddings=True
    )
    assert r.embedding.shape == (3, model.config.hidden_size) and r.embedding.dtype == np.float32
    for k, prompt in enumerate(ids):
        with torch.no_grad():
            hs = model(input_ids=torch.tensor([prompt]), output_hidden_states=True).hidden_states
        np.testing.assert_allclose(r.embedding[k], hs[-2][0].mean(0).numpy(), atol=1e-4)


def test_encode_truncates_or_rejects_overlong(tiny):
    _, tok = tiny
    long = "word " * 300
    ok = encode_prompt(tok, "a", "t", "short", chat_template=True, limit=50, overlong="reject")
    assert ok.error is None and len(ok.input_ids) <= 50 and not ok.truncated
    rej = encode_prompt(tok, "b", "t", long, chat_template=True, limit=50, overlong="reject")
    assert rej.input_ids is None and rej.error.startswith("overlong: prompt is ")
    cut = encode_prompt(tok, "c", "t", long, chat_template=True, limit=50, overlong="truncate")
    assert cut.truncated and cut.error is None and 40 <= len(cut.input_ids) <= 50
    # the template's end (the assistant turn) survives the cut
    full = token_ids(tok, ["word"])[0]
    assert cut.input_ids[-3:] == full[-3:]
    # the start of the prompt is cut, its end (where the question is) kept
    question = "words " * 300 + "QUESTION: what is two plus two?"
    kept = tok.decode(encode_prompt(tok, "e", "t", question, chat_template=True, limit=50, overlong="truncate").input_ids)
    assert "QUESTION: what is two plus two?" in kept and kept.count("words") < 40
    tiny_limit = encode_prompt(tok, "d", "t", long, chat_template=True, limit=3, overlong="truncate")
    assert tiny_limit.input_ids is None and "template alone" in tiny_limit.error


def test_prompt_limit():
    assert prompt_limit(None, 512, 32) == 480
    assert prompt_limit(100, 512, 32) == 100
    assert prompt_limit(1000, 512, 32) == 480
    with pytest.raises(ValueError, match="no room"):
        prompt_limit(None, 16, 32)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 300), max_size=60),
    st.integers(1, 9),
    st.one_of(st.none(), st.integers(1, 2000)),
)
def test_plan_batches_partition_and_bucket(lengths, batch_size, max_tokens):
    batches = plan_batches(lengths, batch_size, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every prompt exactly once
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first: similar lengths together
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert len(b) * max(lengths[i] for i in b) <= max_tokens
    assert plan_batches(lengths, batch_size, max_tokens) == batches  # deterministic


def test_config_errors_name_the_field():
    from labelwise.config import ConfigError, build
    from labelwise.scoring.config import ScoreConfig

    with pytest.raises(ConfigError, match=r"score.overlong: expected one of"):
        build(ScoreConfig, {"overlong": "drop"}, "job.yaml: score")
    with pytest.raises(ConfigError, match=r"score.max_actors: must be positive"):
        build(ScoreConfig, {"max_actors": 0}, "job.yaml: score")
    with pytest.raises(ConfigError, match=r"score.use_ray: expected bool or one of 'auto', got 'yes'"):
        build(ScoreConfig, {"use_ray": "yes"}, "job.yaml: score")


def test_truncation_keeps_the_end_and_says_so():
    from labelwise.scoring.config import ScoreConfig
    from labelwise.scoring.summary import format_summary

    assert "truncated 2 (their start cut, the end kept)" in format_summary([], {"truncated": 2})
    assert "truncated 0, rejected" in format_summary([], {})
    # scores cached when truncation cut the end of a prompt are not reused
    assert ScoreConfig().settings()["overlong"] == "truncate-keep-end"
    assert ScoreConfig(overlong="reject").settings()["overlong"] == "reject"
