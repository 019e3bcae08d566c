"""judge.mode: choice: fixed options scored by log-likelihood (judging/choice.py).

* The stage on a tiny random-weight model, checked against a direct forward pass of the same
  options: option probabilities and expected values to 1e-6.
* The endpoint path against a real local HTTP server speaking the OpenAI chat API with
  ``logprobs`` / ``top_logprobs``: scores from the returned alternatives, a reply without
  logprobs recorded as an error and asked again by the next run.
"""

from __future__ import annotations

import http.server
import json
import math
import re
import threading

import numpy as np
import pandas as pd
import pytest

from labelwise import config, contracts
from labelwise.job import JobConfig
from labelwise.judging import choice, schema
from labelwise.judging.stage import judge_pool

PROMPTS = ["Prove that the square root of 2 is irrational.", "What is the capital of France?",
           "Write a short poem about the sea."]


def write_pool(run, prompts):
    run.mkdir(parents=True, exist_ok=True)
    ids = [f"q{i}" for i in range(len(prompts))]
    pd.DataFrame({"id": ids, "task": [f"t{i % 2}" for i in range(len(prompts))], "prompt": prompts,
                  "response": "", "source": "test"}).to_parquet(run / contracts.POOL, index=False)
    return ids


# ---- pure parts ------------------------------------------------------------------------------

def test_expected_values_and_the_mapping_of_the_options():
    n = len(choice.discipline_names())
    lp = {"bloom": [math.log(p) for p in (0.1, 0.2, 0.3, 0.2, 0.1, 0.1)],
          "quality": [0.0] * 10,  # uniform: E = 4.5 -> 0.5
          **{f"discipline:{d}": [0.0, -math.inf] if i < 2 else [-1.0, 0.0] for i, d in enumerate(choice.discipline_names())}}
    out = choice.judge_from_logprobs(lp, embeddings=None)
    assert out["bloom_score"] == pytest.approx(0.1 * 2 + 0.2 * 5 + 0.3 * 8 + 0.2 * 11 + 0.1 * 14 + 0.1 * 18.5, abs=1e-12)
    assert out["bloom_expected_level"] == pytest.approx(3.3) and out["bloom_level"] == "Apply"
    assert out["quality"] == pytest.approx(0.5)
    assert out["discipline_count"] == 2 and out["disciplines"] == choice.discipline_names()[:2]
    assert len(out["discipline_probs"]) == n and out["discipline_probs"][0] == 1.0
    assert out["discipline_probs"][5] == pytest.approx(1 / (1 + math.e))
    assert sum(out["bloom_probs"]) == pytest.approx(1.0) and len(out["quality_probs"]) == 10
    with pytest.raises(ValueError, match="no option"):
        choice.softmax([-math.inf, -math.inf])


def test_options_from_an_endpoints_top_tokens():
    top = [(" 3", -0.5), ("3", -2.0), ("4", -1.5), ("The", -3.0)]
    lp = choice.options_from_top(top, choice.BLOOM_OPTIONS)
    assert lp[2] == pytest.approx(np.logaddexp(-0.5, -2.0)) and lp[3] == -1.5
    assert lp[0] == -3.0  # absent: the k-th log-probability, an upper bound
    assert choice.options_from_top([("yes", -0.1), (" NO", -2.3)], choice.YES_NO) == [-0.1, -2.3]
    with pytest.raises(ValueError, match="none of the options 1/2/3/4/5/6"):
        choice.options_from_top([("The", -0.1)], choice.BLOOM_OPTIONS)


def test_the_shipped_discipline_list_records_its_source_and_the_mode_is_validated():
    data = choice.discipline_list()
    assert "Frascati" in data["source"] and len(data["disciplines"]) >= 12
    assert all(d["description"].strip() for d in data["disciplines"])
    from labelwise.config import ConfigError

    with pytest.raises(ConfigError, match=r"judge\.mode"):
        config.build(JobConfig, {"judge": {"mode": "choose"}}, "job.yaml")
    free = config.build(JobConfig, {"judge": {}}, "job.yaml").judge
    chosen = config.build(JobConfig, {"judge": {"mode": "choice"}}, "job.yaml").judge
    assert free.mode == "free" and "mode" not in free.settings()  # free mode's cache key is unchanged
    assert chosen.settings()["mode"] == "choice" and "max_new_tokens" not in chosen.settings()


# ---- the local engine against a direct forward pass -----------------------------------------

def direct_option_probs(model, tokenizer, text: str, options) -> np.ndarray:
    """softmax over the options of the next-token log-probs after the rendered instruction (a
    float32 log-softmax over the vocabulary, as every engine computes it, then float64)."""
    import torch

    from labelwise.prompting import render_prompt

    context = render_prompt(tokenizer, text, True)
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    option_ids = []
    for o in options:
        whole = tokenizer(context + o, add_special_tokens=False)["input_ids"]
        assert whole[: len(ids)] == ids and len(whole) == len(ids) + 1, o
        option_ids.append(whole[-1])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    lp = torch.log_softmax(logits, dim=-1)[option_ids].double().numpy()
    return np.exp(lp - lp.max()) / np.exp(lp - lp.max()).sum()


@pytest.mark.parametrize("use_ray", [False, pytest.param(True, marks=[pytest.mark.ray, pytest.mark.slow])],
                         ids=["in-process", "ray-data"])
def test_choice_judgments_match_a_direct_forward_pass(tmp_path, tiny_model_dir, use_ray, request):
    """In this process and on Ray Data model actors (requests in text order, so that a prompt's
    discipline questions share their prefill inside an actor's batch)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if use_ray:
        request.getfixturevalue("local_ray")
    run = tmp_path / "run"
    ids = write_pool(run, PROMPTS)
    job = config.build(JobConfig, {"run_dir": str(run), "model": {"device": "cpu", "dtype": "float32"},
                                   "judge": {"kind": "local", "model": str(tiny_model_dir), "mode": "choice",
                                             "use_ray": use_ray, "batch_size": 8}}, "job.yaml")
    judge_pool(job, log=lambda *a: None)

    j = pd.read_parquet(run / contracts.JUDGMENTS).set_index("id")
    assert list(j.index) == ids and j["error"].isna().all() and (j["mode"] == "choice").all()
    assert j["judge"].str.startswith("local:").all()
    assert schema.read_judgments(run / contracts.JUDGMENTS)["id"].tolist() == ids  # the contract reader still reads it
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32").eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    names = choice.discipline_names()
    for i, prompt in zip(ids, PROMPTS):
        qs = {k: (text, opts) for k, text, opts in choice.questions(prompt, 4000)}
        bloom = direct_option_probs(model, tok, *qs["bloom"])
        quality = direct_option_probs(model, tok, *qs["quality"])
        yes = [direct_option_probs(model, tok, *qs[f"discipline:{n}"])[0] for n in names]
        np.testing.assert_allclose(j.loc[i, "bloom_probs"], bloom, atol=1e-6)
        np.testing.assert_allclose(j.loc[i, "quality_probs"], quality, atol=1e-6)
        np.testing.assert_allclose(j.loc[i, "discipline_probs"], yes, atol=1e-6)
        assert j.loc[i, "bloom_score"] == pytest.approx(float(bloom @ np.array(choice.BLOOM_MIDPOINTS)), abs=1e-6)
        assert j.loc[i, "quality"] == pytest.approx(float(quality @ np.arange(10)) / 9, abs=1e-6)
        chosen = [n for n, p in zip(names, yes) if p >= 0.5]
        assert list(j.loc[i, "disciplines"]) == chosen and j.loc[i, "discipline_count"] == len(chosen)
        assert (j.loc[i, "discipline_spread"] == 0.0) == (len(chosen) <= 1)
    summary = json.loads((run / contracts.JUDGE_SUMMARY).read_text())
    assert summary["mode"] == "choice" and summary["parsed"]["all"] == 3 and summary["request_errors"] == 0
    assert summary["run"]["where"] == (["ray data"] if use_ray else ["in process"])
    disc = schema.read_disciplines(run / contracts.DISCIPLINES)
    assert list(disc["discipline"]) == names and {len(e) for e in disc["embedding"]} == {384}


# ---- an OpenAI-compatible endpoint with logprobs --------------------------------------------

BLOOM_TOP = [("4", -0.4), (" 4", -2.0), ("5", -1.4), ("Sure", -3.0)]
QUALITY_TOP = [("8", -0.2), ("7", -1.9), ("9", -2.6)]


class LogprobServer(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][0]["content"]
        srv = self.server
        with srv.lock:
            srv.bodies.append(body)
        if "Bloom's taxonomy" in text:
            top = BLOOM_TOP
        elif "Judge the quality" in text:
            top = QUALITY_TOP
        else:
            top = [("Yes", -0.3), ("No", -1.35)] if "mathematics?" in text else [("No", -0.1), ("yes", -2.4)]
        if "NOLOGPROBS" in text and srv.bare:
            reply = {"choices": [{"message": {"role": "assistant", "content": "4"}}]}
        else:
            reply = {"choices": [{"message": {"role": "assistant", "content": top[0][0]},
                                  "logprobs": {"content": [{"token": top[0][0], "logprob": top[0][1],
                                                            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}}]}
        out = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture
def logprob_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LogprobServer)
    srv.bodies, srv.lock, srv.bare = [], threading.Lock(), True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_endpoint_choice_scores_from_top_logprobs(tmp_path, logprob_server, monkeypatch):
    monkeypatch.setenv("LW_TEST_API_KEY", "sk-test")
    run = tmp_path / "run"
    ids = write_pool(run, ["Add 2 and 3.", "NOLOGPROBS: name a colour."])
    data = {"run_dir": str(run), "judge": {"kind": "openai", "model": "judge-m", "api_key_env": "LW_TEST_API_KEY",
                                          "base_url": f"http://127.0.0.1:{logprob_server.server_port}/v1",
                                          "mode": "choice", "top_logprobs": 5, "max_retries": 0}}
    job = config.build(JobConfig, data, "job.yaml")
    judge_pool(job, log=lambda *a: None)

    n_q = 2 + len(choice.discipline_names())
    assert len(logprob_server.bodies) == 2 * n_q
    assert all(b["max_tokens"] == 1 and b["logprobs"] is True and b["top_logprobs"] == 5 and b["temperature"] == 0
               for b in logprob_server.bodies)
    j = pd.read_parquet(run / contracts.JUDGMENTS).set_index("id")
    ok, bad = j.loc[ids[0]], j.loc[ids[1]]
    assert ok["mode"] == "choice" and pd.isna(ok["error"])
    # bloom: "4" and " 4" add up; "1", "2", "3", "6" are absent and get the floor -3.0
    lp = np.array([-3.0, -3.0, -3.0, np.logaddexp(-0.4, -2.0), -1.4, -3.0])
    p = np.exp(lp) / np.exp(lp).sum()
    np.testing.assert_allclose(ok["bloom_probs"], p, atol=1e-12)
    assert ok["bloom_score"] == pytest.approx(float(p @ np.array(choice.BLOOM_MIDPOINTS)))
    assert ok["bloom_level"] == "Analyze"
    q = np.full(10, -2.6)
    q[7], q[8] = -1.9, -0.2
    pq_ = np.exp(q) / np.exp(q).sum()
    assert ok["quality"] == pytest.approx(float(pq_ @ np.arange(10)) / 9)
    assert list(ok["disciplines"]) == ["mathematics"] and ok["discipline_count"] == 1 and ok["discipline_spread"] == 0.0
    assert ok["discipline_probs"][0] == pytest.approx(1 / (1 + math.exp(-1.05)))
    assert ok["discipline_probs"][1] == pytest.approx(1 / (1 + math.exp(2.3)))  # "yes" folded, below "No"
    assert re.match(r"bloom: request failed: ReplyError: judge endpoint .* returned no logprobs", bad["error"])
    assert pd.isna(bad["bloom_score"]) and bad["bloom_probs"] is None
    summary = json.loads((run / contracts.JUDGE_SUMMARY).read_text())
    assert summary["request_errors"] == 1 and summary["parsed"]["all"] == 1

    # the next run asks again only the prompt whose requests failed
    logprob_server.bodies.clear()
    logprob_server.bare = False
    judge_pool(job, log=lambda *a: None)
    assert len(logprob_server.bodies) == n_q and all("NOLOGPROBS" in b["messages"][0]["content"] for b in logprob_server.bodies)
    j = pd.read_parquet(run / contracts.JUDGMENTS).set_index("id")
    assert j["error"].isna().all() and j.loc[ids[1], "bloom_score"] == pytest.approx(ok["bloom_score"])
