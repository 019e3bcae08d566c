"""The engine choice and the vLLM output conversion, without starting an engine."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelwise import engines
from labelwise.config import ConfigError, build
from labelwise.scoring.config import ScoreConfig
from labelwise.scoring.vllm_scorer import score_row, step_stats


def test_vllm_asked_for_but_missing_names_the_setting(monkeypatch):
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    monkeypatch.delenv(engines.ENV, raising=False)
    assert engines.resolve("auto", "score.engine") == "hf"
    with pytest.raises(ValueError, match=r"score.engine: vllm is not installed"):
        engines.resolve("vllm", "score.engine")
    with pytest.raises(ValueError, match="evaluate.engine"):
        engines.resolve("tgi", "evaluate.engine")


def test_score_config_checks_the_engine_fields():
    with pytest.raises(ConfigError, match="engine: expected one of 'auto', 'hf', 'vllm'"):
        build(ScoreConfig, {"engine": "tgi"}, "score")
    with pytest.raises(ConfigError, match="top_logprobs: must be between 2 and 100"):
        build(ScoreConfig, {"top_logprobs": 1}, "score")


def test_engine_kwargs_cpu_defaults_under_the_users():
    kw = engines.engine_kwargs({"kv_cache_memory_bytes": 2 << 30}, device="cpu", dtype="float32", extra={"max_logprobs": 20})
    assert kw == {"dtype": "float32", "enable_prefix_caching": True, "enforce_eager": True,
                  "kv_cache_memory_bytes": 2 << 30, "max_logprobs": 20}
    assert "enforce_eager" not in engines.engine_kwargs({}, device="cuda", dtype="bfloat16")


def _top(logits, k):
    lp = logits - np.log(np.exp(logits).sum())
    idx = np.argsort(-lp)[:k]
    return lp, {int(i): {"logprob": float(lp[i]), "rank": r + 1} for r, i in enumerate(idx)}


def test_step_stats_are_exact_when_the_top_k_holds_every_token():
    lp, top = _top(np.array([2.0, 1.0, 0.5, -1.0]), 4)
    chosen, entropy, margin = step_stats(0, top)
    p = np.exp(lp)
    assert chosen == pytest.approx(lp[0])
    assert entropy == pytest.approx(float(-(p * lp).sum()), abs=1e-12)
    assert margin == pytest.approx(p[0] - p[1])


@pytest.mark.parametrize("seed", range(20))
def test_the_entropy_estimate_is_a_lower_bound_and_margin_and_logprob_are_exact(seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_t(3, size=500) * rng.uniform(0.5, 4)
    lp, top = _top(logits, 20)
    p = np.exp(lp)
    token = int(np.argmax(lp))
    chosen, entropy, margin = step_stats(token, {str(k): v for k, v in top.items()})  # keys may come back as str
    exact = float(-(p * lp).sum())
    assert chosen == pytest.approx(lp[token], abs=1e-12)
    assert margin == pytest.approx(np.sort(p)[-1] - np.sort(p)[-2], abs=1e-12)
    assert entropy <= exact + 1e-9
    assert entropy >= float(-(np.sort(p)[::-1][:20] * np.sort(lp)[::-1][:20]).sum()) - 1e-9


def test_score_row_sums_the_chosen_tokens_and_finds_the_stop_token():
    steps = []
    for token in (5, 7, 2):
        _, top = _top(np.linspace(3, 0, 10), 4)
        top.setdefault(token, {"logprob": -3.0})
        steps.append(top)
    row = score_row({"id": "a", "task": "t", "generated_tokens": [5, 7, 2], "logprobs": steps,
                     "generated_text": "x y", "input_ids": [1, 2]}, stop_ids=[2], keep_ids=False)
    expected = sum(step_stats(t, s)[0] for t, s in zip((5, 7, 2), steps))
    assert row["logconf"] == pytest.approx(expected) and row["n_tokens"] == 3 and row["eos"] is True
    assert row["mean_logprob"] == pytest.approx(expected / 3) and "input_ids" not in row
    assert math.isfinite(row["min_margin"]) and row["answer_tokens"] == [5, 7, 2]  # the driver decodes them
    with pytest.raises(ValueError, match="prompt a: 3 tokens but 2 log-prob entries"):
        score_row({"id": "a", "task": "t", "generated_tokens": [5, 7, 2], "logprobs": steps[:2]}, stop_ids=[2], keep_ids=False)
