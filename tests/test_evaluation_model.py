"""Evaluation with real models: the packaged SmolLM2 on real benchmark data (small caps), the
tiny random Llama for mechanics (judge, adapters, Ray Data sharding, the CLI entry)."""

from __future__ import annotations

import argparse
import json

import pytest

from labelwise.config import build
from labelwise.evaluation.config import EvaluateConfig
from labelwise.evaluation.execute import EvalActor
from labelwise.job import JobConfig
from labelwise.models import ModelConfig
from labelwise.ray_start import RayConfig

pytestmark = pytest.mark.slow


def make_job(run_dir, evaluate: dict, model: str = "smollm2-135m-instruct", seed: int = 0) -> JobConfig:
    # The evaluate stage reads only run_dir, seed, ray, model and evaluate.
    return JobConfig(
        run_dir=str(run_dir),
        seed=seed,
        ray=RayConfig(),
        model=ModelConfig(name=str(model)),
        evaluate=build(EvaluateConfig, evaluate, "test: evaluate"),
        pool=None, score=None, select=None, annotate=None, train=None, sweep=None,
    )


def write_test_split(run_dir, rows):
    import pandas as pd

    run_dir.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame([{"id": f"id{i}", "source": "test", **r} for i, r in enumerate(rows)])
    df.to_parquet(run_dir / "test.parquet", index=False)


@pytest.fixture(scope="module")
def smol_runner():
    from labelwise.evaluation.runner import ModelRunner, ModelSpec

    return ModelRunner.load(ModelSpec(ModelConfig()))


# ---- the letter log-likelihood, by hand ----------------------------------------------------


def test_letter_loglik_matches_a_hand_computed_forward_pass(smol_runner, shared_data):
    import torch

    from labelwise.evaluation.benchmarks import mmlu
    from labelwise.evaluation.config import MMLUConfig

    items, payloads = mmlu.build_requests(
        MMLUConfig(shots=1, per_subject_cap=1, subjects=["astronomy"]), shared_data / "mmlu", 0, lambda t: t
    )
    extra = {"context": "The capital of France is", "continuations": [" Paris, of course", " Rome"]}
    results = smol_runner.loglik([payloads[0], extra])
    model, tok = smol_runner.model, smol_runner.tokenizer

    def by_hand(context, continuation):
        ids = tok(context + continuation)["input_ids"]
        n_ctx = len(tok(context)["input_ids"])
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        return sum(logp[p - 1, ids[p]].item() for p in range(n_ctx, len(ids)))

    hand = [by_hand(payloads[0]["context"], f" {letter}") for letter in "ABCD"]
    assert results[0]["logprobs"] == pytest.approx(hand, abs=1e-4)
    assert results[0]["n_tokens"] == [1, 1, 1, 1]
    assert mmlu.predict(results[0]["logprobs"]) == max(range(4), key=lambda i: hand[i])
    # several-token continuations, batched with right padding beside a long MMLU prompt
    assert results[1]["logprobs"] == pytest.approx([by_hand(extra["context"], c) for c in extra["continuations"]], abs=1e-4)
    assert results[1]["n_tokens"][0] > 1


# ---- each benchmark on real data, packaged model ---------------------------------------------


def test_mmlu_real_data_counts_and_skip_on_rerun(tmp_path, shared_data, monkeypatch):
    from labelwise.evaluation import stage
    from labelwise.evaluation.runner import ModelRunner

    subjects = ["anatomy", "college_physics", "world_religions"]
    job = make_job(tmp_path, {"benchmarks": ["mmlu"], "use_ray": False, "mmlu": {"shots": 5, "per_subject_cap": 2, "subjects": subjects}})
    got = stage.evaluate(job)["mmlu"]
    assert set(got["per_subject"]) == set(subjects)
    assert all(v["n"] == 2 for v in got["per_subject"].values()) and got["n"] == 6
    assert 0.0 <= got["acc"] <= 1.0
    assert got["acc"] == pytest.approx(sum(v["acc"] * v["n"] for v in got["per_subject"].values()) / 6)
    proto = got["protocol"]
    assert proto["shots"] == 5 and proto["per_subject_cap"] == 2 and "Answer:" in proto["prompt_format"]
    assert proto["model"]["name"] == "smollm2-135m-instruct" and proto["model"]["adapter_sha256"] is None
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["base"]["mmlu"]["acc"] == got["acc"]

    def no_model(*a, **k):
        raise AssertionError("the model must not be loaded for a finished benchmark")

    monkeypatch.setattr(ModelRunner, "load", no_model)
    assert stage.evaluate(job)["mmlu"] == got


BBH_TASKS = ["sports_understanding", "object_counting"]  # the two shortest standard prompts


def test_bbh_real_data_direct_answers_extracted_and_scored(tmp_path, shared_data, monkeypatch):
    """Direct answers with enough tokens: every generation yields an answer, and the stage's
    per-task numbers are those of its own generations extracted and matched here."""
    from labelwise.evaluation import stage
    from labelwise.evaluation.benchmarks import bbh
    from labelwise.evaluation.runner import ModelRunner

    texts = []
    real_generate = ModelRunner.generate

    def recording(self, payloads, progress=None):
        out = real_generate(self, payloads, progress)
        texts.extend(r["text"] for r in out)
        return out

    monkeypatch.setattr(ModelRunner, "generate", recording)
    job = make_job(tmp_path, {"benchmarks": ["bbh"], "use_ray": False, "bbh": {"tasks": BBH_TASKS, "per_task_cap": 2, "cot": False, "max_new_tokens": 8}})
    got = stage.evaluate(job)["bbh"]
    assert got["n_tasks"] == 2 and got["n"] == 4 and got["protocol"]["cot"] is False
    assert got["protocol"]["max_new_tokens"] == 8

    items, _ = bbh.build_requests(job.evaluate.bbh, shared_data / "bbh", job.seed, lambda t: t)
    assert len(texts) == len(items) == 4
    answers = [bbh.extract_answer(t, cot=False) for t in texts]
    assert all(answers), texts  # direct mode: the first line is the answer, never empty
    by_task = {}
    for item, answer in zip(items, answers):
        by_task.setdefault(item["task"], []).append(bbh.is_correct(answer, item["target"]))
    expected = {t: {"em": sum(ok) / len(ok), "n": 2, "no_answer": 0} for t, ok in by_task.items()}
    assert got["per_task"] == expected
    assert got["em"] == pytest.approx(sum(v["em"] for v in expected.values()) / 2)
    sports = [a for item, a in zip(items, answers) if item["task"] == "sports_understanding"]
    assert all(a.lower() in ("yes", "no") for a in sports), sports  # the shots' answer format


def test_bbh_real_data_chain_of_thought_counts_missing_answers(tmp_path, shared_data):
    """8 new tokens are too few for a rationale and 'So the answer is': every example is
    counted as having no answer (and scores 0); a full chain of thought is extracted."""
    from labelwise.evaluation import stage
    from labelwise.evaluation.benchmarks import bbh

    job = make_job(tmp_path, {"benchmarks": ["bbh"], "use_ray": False, "bbh": {"tasks": BBH_TASKS, "per_task_cap": 1, "cot": True, "max_new_tokens": 8}})
    got = stage.evaluate(job)["bbh"]
    assert got["protocol"]["cot"] is True and got["protocol"]["max_new_tokens"] == 8
    assert got["per_task"] == {t: {"em": 0.0, "n": 1, "no_answer": 1} for t in BBH_TASKS}
    assert got["em"] == 0.0 and got["n"] == 2
    # the same items, answered by a chain of thought that does conclude
    items, _ = bbh.build_requests(job.evaluate.bbh, shared_data / "bbh", job.seed, lambda t: t)
    concluded = [{"text": f" Step one. Step two. So the answer is {item['target']}."} for item in items]
    summary = bbh.summarize(items, concluded, cot=True)
    assert summary["em"] == 1.0 and all(v["no_answer"] == 0 for v in summary["per_task"].values())


def test_heldout_nll_is_over_response_tokens_only(tmp_path, smol_runner):
    import torch

    from labelwise.evaluation import stage
    from labelwise.prompting import render_example

    rows = [
        {"task": "capitals", "prompt": "What is the capital of France?", "response": "Paris"},
        {"task": "capitals", "prompt": "What is the capital of Italy?", "response": "Rome"},
        {"task": "explain", "prompt": "Why is the sky blue?", "response": "Because air scatters blue light more than red light, so the sky looks blue to us."},
    ]
    write_test_split(tmp_path, rows)
    job = make_job(tmp_path, {"benchmarks": ["heldout"], "use_ray": False, "heldout": {"max_new_tokens": 8}})
    got = stage.evaluate(job)["heldout"]
    assert got["per_task"]["capitals"]["n"] == 2 and got["per_task"]["explain"]["n"] == 1
    assert got["per_task"]["capitals"]["n_em"] == 2 and got["per_task"]["explain"]["n_em"] == 0
    assert got["per_task"]["explain"]["em"] is None and 0.0 <= got["em_macro"] <= 1.0

    model, tok = smol_runner.model, smol_runner.tokenizer
    head, full = render_example(tok, rows[2]["prompt"], rows[2]["response"], True)
    ids = tok(full, add_special_tokens=False)["input_ids"]
    n_head = len(tok(head, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    nll = -sum(logp[p - 1, ids[p]].item() for p in range(n_head, len(ids))) / (len(ids) - n_head)
    assert got["per_task"]["explain"]["nll"] == pytest.approx(nll, abs=1e-4)
    assert got["per_task"]["explain"]["n_tokens"] == len(ids) - n_head
    assert got["nll_macro"] == pytest.approx((got["per_task"]["capitals"]["nll"] + nll) / 2)


# ---- mechanics on the tiny model -------------------------------------------------------------


def test_winrate_with_a_local_judge(tmp_path, shared_data, tiny_model_dir):
    from labelwise.evaluation import stage

    evaluate = {
        "benchmarks": ["winrate"],
        "use_ray": False,
        "winrate": {"max_prompts": 3, "max_new_tokens": 8, "judge": {"kind": "local", "model": str(tiny_model_dir)}},
    }
    job = make_job(tmp_path, evaluate, model=tiny_model_dir)
    got = stage.evaluate(job)["winrate"]
    assert got["n"] == 3 and 0.0 <= got["win_rate"] <= 1.0 and 0.0 <= got["lc_win_rate"] <= 1.0
    assert got["wins"] + got["ties"] + got["losses"] == pytest.approx(1.0)
    assert got["len_b_chars"] > 100 > got["len_a_chars"] >= 0  # GPT-4 references vs 8 new tokens
    details = [json.loads(line) for line in (tmp_path / "winrate_base.jsonl").read_text().splitlines()]
    assert len(details) == 3
    for d in details:
        assert d["a_first"]["verdict"] in ("first", "second", "tie") and "logprob_a" in d["b_first"]
    assert got["protocol"]["judge"]["kind"] == "local" and got["protocol"]["reference"] == "dataset"

    # reference B generated by a model (the base model here) instead of the dataset outputs
    evaluate["winrate"]["reference"] = "base"
    got = stage.evaluate(make_job(tmp_path / "vs_base", evaluate, model=tiny_model_dir))["winrate"]
    # the same greedy model on both sides: identical answers
    details = [json.loads(line) for line in (tmp_path / "vs_base" / "winrate_base.jsonl").read_text().splitlines()]
    assert all(d["answer_a"] == d["answer_b"] for d in details)


def _random_adapter(tiny_model_dir, out):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(out)
    return out


def test_cli_evaluates_base_and_run_adapter_the_same_way(tmp_path, tiny_model_dir, capsys):
    from labelwise.evaluation import stage

    rows = [{"task": t, "prompt": f"Say {w}.", "response": w} for t in ("a", "b") for w in ("yes", "no")]
    write_test_split(tmp_path, rows)
    _random_adapter(tiny_model_dir, tmp_path / "adapter")
    job = make_job(tmp_path, {"benchmarks": ["heldout"], "use_ray": False, "heldout": {"max_new_tokens": 4}}, model=tiny_model_dir)
    assert stage.main(job, argparse.Namespace(adapter=None, label=None, base=False)) == 0
    out = capsys.readouterr().out
    assert "base       heldout" in out and "adapted    heldout" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    base, adapted = metrics["base"]["heldout"], metrics["adapted"]["heldout"]
    assert base["n"] == adapted["n"] == 4
    assert base["nll_macro"] != pytest.approx(adapted["nll_macro"])  # the adapter changes the model
    assert base["protocol"]["model"]["adapter_sha256"] is None and adapted["protocol"]["model"]["adapter_sha256"]
    # an explicit label and adapter path
    got = stage.evaluate(job, adapter=tmp_path / "adapter", label="mine")
    assert got["heldout"]["nll_macro"] == pytest.approx(adapted["nll_macro"], abs=1e-5)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        stage.evaluate(job, adapter=tmp_path / "nothing")


class DiesOnce(EvalActor):
    """An evaluation actor whose process dies on its first batch (once per flag file)."""

    flag = ""  # set by the test; the class travels to the actor by value

    def __call__(self, batch):
        import os

        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(1)
        return super().__call__(batch)


def test_crashed_evaluation_actor_is_restarted_and_its_batch_retried(tmp_path, tiny_model_dir, local_ray, monkeypatch):
    import sys

    import ray.cloudpickle

    from labelwise.evaluation.execute import run_requests
    from labelwise.evaluation.runner import ModelSpec, RunSettings

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    flag = tmp_path / "died"
    monkeypatch.setattr(DiesOnce, "flag", str(flag))
    spec = ModelSpec(ModelConfig(name=str(tiny_model_dir)))
    settings = RunSettings(batch_size=2)
    loglik = [{"context": f"Question {i}: Answer:", "continuations": [" A", " B"]} for i in range(4)]
    here = run_requests("loglik", loglik, spec, settings, use_ray=False)
    on_ray = run_requests("loglik", loglik, spec, settings, use_ray=True, max_actors=1, max_restarts=2, max_task_retries=2, actor_cls=DiesOnce)
    assert flag.exists()  # an actor really died
    for a, b in zip(here, on_ray):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)


def test_ray_data_sharding_matches_in_process(tiny_model_dir, local_ray):
    from labelwise.evaluation.execute import run_requests
    from labelwise.evaluation.runner import ModelSpec, RunSettings

    spec = ModelSpec(ModelConfig(name=str(tiny_model_dir)))
    settings = RunSettings(batch_size=2)
    loglik = [{"context": f"Question {i}: {'word ' * i}Answer:", "continuations": [" A", " B", " yes indeed"]} for i in range(7)]
    here = run_requests("loglik", loglik, spec, settings, use_ray=False)
    on_ray = run_requests("loglik", loglik, spec, settings, use_ray=True, max_actors=1)
    assert len(on_ray) == len(loglik)
    for a, b in zip(here, on_ray):  # same numbers, back in request order
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)
        assert a["n_tokens"] == b["n_tokens"]
