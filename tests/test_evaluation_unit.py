"""Evaluation without a model: prompts, parsing, averaging, sampling, judges, metrics.json."""

from __future__ import annotations

import http.server
import json
import math
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise import contracts, runio
from labelwise.config import ConfigError, build
from labelwise.evaluation import metrics_file
from labelwise.evaluation.benchmarks import bbh, heldout, mmlu, winrate
from labelwise.evaluation.config import BBHConfig, EvaluateConfig, JudgeConfig, MMLUConfig
from labelwise.evaluation.data import sample
from labelwise.evaluation.judge import OpenAIJudge, judge_prompt, verdict_from_logprobs, verdict_from_text
from labelwise.evaluation.tokens import Unit, pack

# ---- config ----------------------------------------------------------------------------


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(ConfigError) as e:
        build(EvaluateConfig, {"benchmarks": ["heldout", "gsm8k"]}, "job.yaml: evaluate")
    msg = str(e.value)
    assert "job.yaml: evaluate.benchmarks" in msg and "'gsm8k'" in msg
    assert "known: heldout, mmlu, bbh, winrate" in msg


def test_config_checks_values_and_accepts_use_ray_forms():
    with pytest.raises(ConfigError, match="evaluate.mmlu.shots: must be between 0 and 5"):
        build(EvaluateConfig, {"mmlu": {"shots": 6}}, "job.yaml: evaluate")
    with pytest.raises(ConfigError, match="evaluate.use_ray"):
        build(EvaluateConfig, {"use_ray": "sometimes"}, "job.yaml: evaluate")
    for value in ("auto", True, False):
        assert build(EvaluateConfig, {"use_ray": value}, "e").use_ray == value
    assert BBHConfig(cot=True).generation_tokens == 256 and BBHConfig(cot=False).generation_tokens == 32


# ---- missing data shows the layout -----------------------------------------------------


def test_missing_mmlu_folder_shows_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        mmlu.build_requests(MMLUConfig(), tmp_path / "nowhere", 0, lambda t: t)
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg
    assert "dev/<subject>_dev.csv" in msg and "question,choice0,choice1,choice2,choice3,answer" in msg


def test_missing_bbh_and_winrate_data_show_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cot-prompts/<task>.txt"):
        bbh.build_requests(BBHConfig(), tmp_path, 0, lambda t: t)
    with pytest.raises(FileNotFoundError, match=r"instruction"):
        winrate.read_prompts(tmp_path / "prompts.json")


def test_bad_mmlu_csv_names_file_and_line(tmp_path):
    for split in ("dev", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / f"x_{split}.csv").write_text(
            "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,1\nq2,a,b,c,d,7\n"
        )
    with pytest.raises(ValueError, match=r"x_dev.csv:3: expected a question, 4 choices and an answer index 0-3"):
        mmlu.build_requests(MMLUConfig(shots=1), tmp_path, 0, lambda t: t)


def test_mmlu_reads_the_hub_layout(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for subject in ("anatomy", "virology", "all"):
        (tmp_path / subject).mkdir()
        for split, n in (("dev", 5), ("test", 3)):
            table = pa.table({
                "question": [f"{subject} {split} q{i}" for i in range(n)],
                "subject": [subject] * n,
                "choices": [["w", "x", "y", "z"]] * n,
                "answer": [i % 4 for i in range(n)],
            })
            pq.write_table(table, tmp_path / subject / f"{split}-00000-of-00001.parquet")
    assert mmlu.subjects_in(tmp_path) == ["anatomy", "virology"]
    items, payloads = mmlu.build_requests(MMLUConfig(shots=2), tmp_path, 0, lambda t: t)
    assert [i["answer"] for i in items] == [0, 1, 2, 0, 1, 2]
    assert payloads[0]["context"].startswith("The following are multiple choice questions (with answers) about anatomy.\n\nanatomy dev q0\nA. w")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="network is off"):
        mmlu.resolve_folder("hf:cais/mmlu")


def test_unknown_subject_and_task_list_the_known_ones(shared_data):
    with pytest.raises(ValueError, match=r"unknown subject 'astrology' \(known: abstract_algebra, anatomy"):
        mmlu.build_requests(MMLUConfig(subjects=["astrology"]), shared_data / "mmlu", 0, lambda t: t)
    with pytest.raises(ValueError, match=r"unknown task 'chess' \(known: boolean_expressions"):
        bbh.build_requests(BBHConfig(tasks=["chess"]), shared_data / "bbh", 0, lambda t: t)


# ---- MMLU ------------------------------------------------------------------------------

ROW = {"question": " What is 1+1? ", "choices": ["1", "2", "3", "4"], "answer": 1}


def test_mmlu_prompt_is_the_harness_format():
    shot = {"question": "Pick B.", "choices": ["w", "x", "y", "z"], "answer": 1}
    text = mmlu.build_prompt("college_math", [shot], ROW)
    assert text == (
        "The following are multiple choice questions (with answers) about college math.\n\n"
        "Pick B.\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n"
        "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"
    )


def test_mmlu_requests_on_real_data_count_per_subject(shared_data):
    cfg = MMLUConfig(shots=2, per_subject_cap=3, subjects=["anatomy", "virology"])
    items, payloads = mmlu.build_requests(cfg, shared_data / "mmlu", 7, lambda t: t)
    assert [i["subject"] for i in items] == ["anatomy"] * 3 + ["virology"] * 3
    assert all(p["continuations"] == [" A", " B", " C", " D"] for p in payloads)
    assert all(p["context"].count("\nAnswer:") == 3 and p["context"].endswith("Answer:") for p in payloads)
    again, _ = mmlu.build_requests(cfg, shared_data / "mmlu", 7, lambda t: t)
    assert again == items


def test_mmlu_summary_micro_and_per_subject():
    items = [{"subject": "a", "answer": 0}, {"subject": "a", "answer": 1}, {"subject": "b", "answer": 2}]
    results = [{"logprobs": [-1, -2, -3, -4]}, {"logprobs": [-1, -2, -3, -4]}, {"logprobs": [-5, -4, -0.5, -2]}]
    s = mmlu.summarize(items, results)
    assert s["per_subject"] == {"a": {"acc": 0.5, "n": 2}, "b": {"acc": 1.0, "n": 1}}
    assert s["acc"] == pytest.approx(2 / 3) and s["acc_macro"] == pytest.approx(0.75) and s["n"] == 3


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), cap=st.one_of(st.none(), st.integers(1, 50)), seed=st.integers(0, 5))
def test_sample_is_a_seeded_ordered_subset(n, cap, seed):
    rows = [{"k": i} for i in range(n)]
    got = sample(rows, cap, seed, "subject")
    assert len(got) == (n if cap is None else min(cap, n))
    keys = [r["k"] for r in got]
    assert keys == sorted(set(keys)) and set(keys) <= set(range(n))
    assert sample(rows, cap, seed, "subject") == got


# ---- BBH -------------------------------------------------------------------------------


def test_all_27_standard_prompts_parse(shared_data):
    tasks = bbh.tasks_in(shared_data / "bbh")
    assert len(tasks) == bbh.N_TASKS
    for task in tasks:
        description, shots = bbh.read_cot_prompt(shared_data / "bbh", task)
        assert description and "canary" not in description.lower()
        assert len(shots) == 3, task
        for s in shots:
            assert s["answer"] and not s["answer"].endswith(".")
            assert bbh.is_correct(bbh.extract_answer(s["rationale"], cot=True), s["answer"]), (task, s["answer"])


def test_bbh_prompt_formats(shared_data):
    description, shots = bbh.read_cot_prompt(shared_data / "bbh", "boolean_expressions")
    cot = bbh.build_prompt(description, shots, "True and False is", cot=True)
    direct = bbh.build_prompt(description, shots, "True and False is", cot=False)
    assert cot.startswith("Evaluate the result of a random Boolean expression.\n\nQ: not ( ( not not True ) ) is\nA: Let's think step by step.\n")
    assert cot.endswith("\n\nQ: True and False is\nA: Let's think step by step.")
    assert direct.count("Let's think") == 0 and "\nA: False\n\nQ:" in direct
    assert direct.endswith("\n\nQ: True and False is\nA:")


@pytest.mark.parametrize(
    "text,cot,target,ok",
    [
        (" A is true. So the answer is (B).", True, "(B)", True),
        (" So the answer is B.", True, "(B)", True),
        (" So the answer is (C).", True, "(B)", False),
        (" Many steps, no conclusion", True, "True", False),
        (" so the answer is yes.", True, "yes", True),
        (" So the answer is Yes.", True, "yes", True),
        (" So the answer is ] } ].", True, "] } ]", True),
        (" (A) 12/14/1937\nmore", False, "(A)", True),
        (" False\nQ: next", False, "False", True),
        (" Valid", False, "invalid", False),
        (" 42", False, "42", True),
    ],
)
def test_bbh_answer_extraction_and_match(text, cot, target, ok):
    assert bbh.is_correct(bbh.extract_answer(text, cot), target) is ok


def test_bbh_summary_is_macro_over_tasks():
    items = [{"task": "t1", "target": "(A)"}] * 3 + [{"task": "t2", "target": "no"}]
    results = [{"text": " So the answer is (A)."}, {"text": "So the answer is (B)."}, {"text": "?"}, {"text": "the answer is no."}]
    s = bbh.summarize(items, results, cot=True)
    assert s["per_task"]["t1"] == {"em": pytest.approx(1 / 3), "n": 3, "no_answer": 1}
    assert s["em"] == pytest.approx((1 / 3 + 1) / 2) and s["em_micro"] == pytest.approx(2 / 4)


# ---- held-out ----------------------------------------------------------------------------


def test_heldout_summary_macro_and_micro():
    rows = [
        {"task": "a", "response": "Paris"},
        {"task": "a", "response": "a long answer with many more words than five"},
        {"task": "b", "response": "4"},
    ]
    nll = [{"logprobs": [-2.0], "n_tokens": [2]}, {"logprobs": [-6.0], "n_tokens": [10]}, {"logprobs": [-3.0], "n_tokens": [1]}]
    gen = [{"text": "paris."}, {"text": "five"}]
    s = heldout.summarize(rows, nll, gen, [0, 2])
    assert s["per_task"]["a"] == {"nll": pytest.approx(8 / 12), "n": 2, "n_tokens": 12, "em": 1.0, "n_em": 1}
    assert s["per_task"]["b"]["nll"] == pytest.approx(3.0) and s["per_task"]["b"]["em"] == 0.0
    assert s["nll_macro"] == pytest.approx((8 / 12 + 3) / 2) and s["nll_micro"] == pytest.approx(11 / 13)
    assert s["em_macro"] == pytest.approx(0.5) and s["em_micro"] == pytest.approx(0.5)
    assert heldout.normalize("  The Answer: Paris!") == "answer paris"
    assert heldout.short("one two", 5) and not heldout.short("", 5)


def test_heldout_bad_test_file_names_the_column(tmp_path):
    import pandas as pd

    path = tmp_path / "test.parquet"
    pd.DataFrame({"id": ["1"], "task": ["t"], "prompt": ["p"]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"test.parquet: missing column 'response'"):
        heldout.read_test(path, None, 0)
    with pytest.raises(FileNotFoundError, match="labelwise pool"):
        heldout.read_test(tmp_path / "absent.parquet", None, 0)


# ---- win rate ----------------------------------------------------------------------------


def test_win_rate_cancels_position_bias():
    # a judge that always prefers the answer shown first: every prompt is a tie
    s = winrate.summarize(["first"] * 4, ["first"] * 4, ["a"] * 4, ["b"] * 4)
    assert s["win_rate"] == 0.5 and s["ties"] == 1.0 and s["position_consistency"] == 0.0
    # A preferred in both orders on 3 of 4 prompts, B in both orders on the last
    s = winrate.summarize(["first"] * 3 + ["second"], ["second"] * 3 + ["first"], ["x" * 10] * 4, ["y" * 30] * 4)
    assert s["win_rate"] == 0.75 and s["wins"] == 0.75 and s["losses"] == 0.25 and s["position_consistency"] == 1.0
    assert s["len_a_chars"] == 10 and s["len_b_chars"] == 30


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["first", "second", "tie"]), st.sampled_from(["first", "second", "tie"])), min_size=1, max_size=30))
def test_a_scores_are_bounded_and_antisymmetric(pairs):
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    scores = winrate.a_scores(first, second)
    assert all(0 <= s <= 1 for s in scores)
    # B's view: the pass showing B first is B's "first" pass, and "first" still names the winner
    b_scores = winrate.a_scores(second, first)
    assert all(math.isclose(a + b, 1.0) for a, b in zip(scores, b_scores))


def test_length_control_discounts_wins_that_come_from_length():
    # A wins exactly when its answer is longer: the length term explains the wins
    n = 40
    len_a = [100 + (50 if i % 2 == 0 else -50) for i in range(n)]
    first = ["first" if i % 2 == 0 else "second" for i in range(n)]
    second = ["second" if i % 2 == 0 else "first" for i in range(n)]
    # on top of that A wins 4 extra prompts where it is shorter -> raw 0.6
    for i in (1, 3, 5, 7):
        first[i], second[i] = "first", "second"
    s = winrate.summarize(first, second, ["a" * k for k in len_a], ["b" * 100] * n)
    assert s["win_rate"] == pytest.approx(0.6)
    assert s["lc_phi"] > 1 and 0.5 < s["lc_win_rate"] < 0.95
    # equal lengths: the fit reduces to the raw rate (up to the small L2 penalty)
    same = winrate.summarize(first, second, ["a"] * n, ["b"] * n)
    assert same["lc_win_rate"] == pytest.approx(0.6, abs=0.01)


def test_judge_parsing_and_prompt():
    assert verdict_from_text("A") == "first" and verdict_from_text("Answer B is better") == "second"
    assert verdict_from_text("It's a tie.") == "tie" and verdict_from_text("a nice answer") is None
    assert verdict_from_logprobs(-1.0, -2.0, 0.0) == "first" and verdict_from_logprobs(-1.0, -1.05, 0.1) == "tie"
    p = judge_prompt("Do X", "one", "two" * 10, max_chars=5)
    assert "# Answer A\none\n" in p and "# Answer B\ntwotw [...]" in p


class _FakeChat(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeChat.seen.append((self.path, self.headers.get("Authorization"), body))
        prompt = body["messages"][0]["content"]
        first = prompt.split("# Answer A\n", 1)[1].split("\n\n# Answer B", 1)[0]
        reply = "A" if "good" in first else ("tie" if "meh" in first else "B")  # prefers "good"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_openai_judge_against_a_local_endpoint(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("LW_TEST_JUDGE_API_KEY", "sk-test")
        cfg = JudgeConfig(kind="openai", model="judge-1", base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key_env="LW_TEST_JUDGE_API_KEY")
        answers_a, answers_b = ["good", "bad", "meh"], ["bad", "good", "bad"]
        prompts = [judge_prompt("q", a, b, 100) for a, b in zip(answers_a, answers_b)]
        prompts += [judge_prompt("q", b, a, 100) for a, b in zip(answers_a, answers_b)]
        verdicts = OpenAIJudge(cfg).judge(prompts)
        first = [v["verdict"] for v in verdicts[:3]]
        second = [v["verdict"] for v in verdicts[3:]]
        assert first == ["first", "second", "tie"] and second == ["second", "first", "second"]
        s = winrate.summarize(first, second, answers_a, answers_b)
        # prompt 1 won twice, prompt 2 lost twice, prompt 3 tie + win = 0.75 -> a win
        assert s["wins"] == pytest.approx(2 / 3) and s["losses"] == pytest.approx(1 / 3)
        assert s["win_rate"] == pytest.approx((1 + 0 + 0.75) / 3)
        path, auth, body = _FakeChat.seen[0]
        assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
        assert body["model"] == "judge-1" and body["temperature"] == 0
    finally:
        server.shutdown()


def test_openai_judge_needs_an_endpoint(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="base_url"):
        OpenAIJudge(JudgeConfig(kind="openai", model="m"))


# ---- packing and metrics.json -----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.integers(1, 8), st.integers(1, 200))
def test_pack_keeps_every_unit_once_within_limits(lengths, batch_size, max_tokens):
    units = [Unit(i, [0] * n, [[(n - 1, 1)]], [0]) for i, n in enumerate(lengths)]
    batches = pack(units, batch_size, max_tokens)
    assert sorted(u.request for b in batches for u in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= batch_size
        assert len(b) == 1 or len(b) * max(len(u.ids) for u in b) <= max_tokens


def test_metrics_file_caches_by_protocol_and_gathers_labels(tmp_path):
    proto = {"shots": 5, "subjects": ("a", "b")}
    metrics_file.store(tmp_path, "base", "mmlu", {"acc": 0.3, "protocol": proto})
    assert metrics_file.cached(tmp_path, "base", "mmlu", proto) == {"acc": 0.3, "protocol": {"shots": 5, "subjects": ["a", "b"]}}
    assert metrics_file.cached(tmp_path, "base", "mmlu", {**proto, "shots": 0}) is None
    assert metrics_file.cached(tmp_path, "other", "mmlu", proto) is None
    runio.write_json(tmp_path / contracts.metrics_file("base"), {"mmlu": {"acc": 0.3}})
    runio.write_json(tmp_path / contracts.metrics_file("adapted"), {"mmlu": {"acc": 0.4}})
    data = metrics_file.gather(tmp_path)
    assert data == {"adapted": {"mmlu": {"acc": 0.4}}, "base": {"mmlu": {"acc": 0.3}}}
    assert json.loads((tmp_path / "metrics.json").read_text()) == data
    path = tmp_path / "metrics.json"
    path.write_text("{broken")
    with pytest.raises(ValueError, match="metrics.json: not valid JSON"):
        metrics_file.read(path)


# ---- protocol: data digests, mmlu dev split ------------------------------------------------


def _job(run_dir, evaluate: dict, model: str = "smollm2-135m-instruct"):
    from labelwise.job import JobConfig
    from labelwise.models import ModelConfig
    from labelwise.ray_start import RayConfig

    return JobConfig(
        run_dir=str(run_dir), seed=0, ray=RayConfig(), model=ModelConfig(name=str(model)),
        evaluate=build(EvaluateConfig, evaluate, "test: evaluate"),
        pool=None, score=None, select=None, annotate=None, train=None, sweep=None,
    )


def _mmlu_folder(root: Path, subjects=("alpha", "beta")) -> Path:
    for split in ("dev", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for s in subjects:
            (root / split / f"{s}_{split}.csv").write_text(
                "question,choice0,choice1,choice2,choice3,answer\n" + "".join(f"{s} {split} q{i},a,b,c,d,{i % 4}\n" for i in range(5))
            )
    return root


def test_mmlu_protocol_has_a_digest_of_the_files_it_reads(tmp_path):
    from labelwise.evaluation.context import Context
    from labelwise.evaluation.runner import ModelSpec

    folder = _mmlu_folder(tmp_path / "mmlu")

    def digest(**mmlu_cfg):
        job = _job(tmp_path / "run", {"benchmarks": ["mmlu"], "mmlu": {"path": str(folder), **mmlu_cfg}})
        proto = mmlu.protocol(Context(job, ModelSpec(job.model)))
        assert proto["data"] == str(folder)
        return proto["data_sha256"]

    first = digest(shots=2, subjects=["alpha"])
    assert first and digest(shots=2, subjects=["alpha"]) == first
    with open(folder / "test" / "alpha_test.csv", "a") as f:  # the evaluated questions change
        f.write("one more,a,b,c,d,0\n")
    second = digest(shots=2, subjects=["alpha"])
    assert second != first
    with open(folder / "dev" / "alpha_dev.csv", "a") as f:  # the shots change
        f.write("extra,a,b,c,d,1\n")
    third = digest(shots=2, subjects=["alpha"])
    assert third != second
    assert digest(shots=0, subjects=["alpha"]) != third  # zero-shot does not read dev
    with open(folder / "test" / "beta_test.csv", "a") as f:  # a subject not evaluated
        f.write("other,a,b,c,d,2\n")
    assert digest(shots=2, subjects=["alpha"]) == third
    all_subjects = digest(shots=2)
    (folder / "test" / "gamma_test.csv").write_text((folder / "test" / "beta_test.csv").read_text())
    (folder / "dev" / "gamma_dev.csv").write_text((folder / "dev" / "beta_dev.csv").read_text())
    assert digest(shots=2) != all_subjects  # a new subject file is picked up


def test_bbh_protocol_has_a_digest_of_the_files_it_reads(tmp_path):
    from labelwise.evaluation.context import Context
    from labelwise.evaluation.runner import ModelSpec

    folder = tmp_path / "bbh"
    (folder / "tasks").mkdir(parents=True)
    (folder / "cot-prompts").mkdir()
    (folder / "tasks" / "t1.json").write_text(json.dumps({"examples": [{"input": "q", "target": "a"}]}))
    (folder / "cot-prompts" / "t1.txt").write_text("Describe.\n\nQ: x\nA: Let's think step by step.\nSo the answer is y.")
    job = _job(tmp_path / "run", {"benchmarks": ["bbh"], "bbh": {"path": str(folder)}})
    proto = lambda: bbh.protocol(Context(job, ModelSpec(job.model)))  # noqa: E731
    before = proto()["data_sha256"]
    (folder / "cot-prompts" / "t1.txt").write_text("Describe it.\n\nQ: x\nA: Let's think step by step.\nSo the answer is y.")
    assert proto()["data_sha256"] != before


def test_mmlu_dev_split_with_shots_is_a_config_error():
    with pytest.raises(ConfigError, match=r"evaluate.mmlu.split: dev with shots=5.*own answers"):
        build(EvaluateConfig, {"mmlu": {"split": "dev"}}, "job.yaml: evaluate")
    assert build(EvaluateConfig, {"mmlu": {"split": "dev", "shots": 0}}, "e").mmlu.split == "dev"


def test_mmlu_dev_split_zero_shot_evaluates_every_dev_question(tmp_path):
    folder = _mmlu_folder(tmp_path / "mmlu")
    items, payloads = mmlu.build_requests(MMLUConfig(split="dev", shots=0, subjects=["alpha"]), folder, 0, lambda t: t)
    assert len(items) == 5 and all("Answer: " not in p["context"] for p in payloads)


# ---- winrate: each model in its own prompt format -------------------------------------------

OTHER_TEMPLATE = (
    "{% for m in messages %}[USER] {{ m['content'] }}{% endfor %}{% if add_generation_prompt %} [BOT]{% endif %}"
)


def test_winrate_reference_model_gets_its_own_chat_template(tmp_path, tiny_model_dir, monkeypatch):
    """Model B answers prompts rendered by B's tokenizer and chat template, not A's."""
    import shutil

    from transformers import AutoTokenizer

    from labelwise.evaluation import execute, judge, stage
    from labelwise.prompting import render_prompt

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    tok_b = AutoTokenizer.from_pretrained(other)
    tok_b.chat_template = OTHER_TEMPLATE
    for f in other.glob("chat_template.*"):
        f.unlink()
    tok_b.save_pretrained(other)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([{"instruction": "Name a colour."}, {"instruction": "Name a fruit."}]))

    calls = []

    def fake_run_requests(kind, payloads, spec, settings, **kw):
        calls.append((kind, spec.model.name, [p.get("prompt") for p in payloads]))
        return [{"text": f"answer of {Path(spec.model.name).name}"} for _ in payloads]

    class FakeJudge:
        def judge(self, judge_prompts):
            return [{"verdict": "tie"} for _ in judge_prompts]

    monkeypatch.setattr(execute, "run_requests", fake_run_requests)
    monkeypatch.setattr(judge, "make_judge", lambda *a, **k: FakeJudge())
    job = _job(tmp_path / "run", {
        "benchmarks": ["winrate"], "use_ray": False,
        "winrate": {"prompts": str(prompts), "max_prompts": None, "reference": str(other)},
    }, model=tiny_model_dir)
    got = stage.evaluate(job)["winrate"]
    assert got["n"] == 2 and got["ties"] == 1.0

    (kind_a, name_a, prompts_a), (kind_b, name_b, prompts_b) = calls
    assert (kind_a, kind_b) == ("generate", "generate") and name_a == str(tiny_model_dir) and name_b == str(other)
    tok_a = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert prompts_a == [render_prompt(tok_a, i, True) for i in ("Name a colour.", "Name a fruit.")]
    assert prompts_a[0].startswith("<|im_start|>")
    assert prompts_b == ["[USER] Name a colour. [BOT]", "[USER] Name a fruit. [BOT]"]
    assert got["protocol"]["reference_prompt_format"] == "its own tokenizer's chat template"


# ---- evaluation actors: fault tolerance options ------------------------------------------------


def test_evaluation_ray_options_reach_the_actor_pool(monkeypatch):
    """max_restarts / max_task_retries go to map_batches, as in the scoring stage."""
    import types

    from labelwise import actor_pool, ray_start
    from labelwise.evaluation import execute
    from labelwise.evaluation.runner import ModelSpec, RunSettings
    from labelwise.models import ModelConfig

    seen = {}

    class FakeDataset:
        def map_batches(self, fn, **kw):
            seen.update(kw, fn=fn)
            return self

        def iter_rows(self):
            return iter([{"i": 0, "result": json.dumps({"text": "x"})}])

    fake_ray = types.SimpleNamespace(data=types.SimpleNamespace(from_items=lambda rows, override_num_blocks: FakeDataset()))
    monkeypatch.setattr(ray_start, "init_ray", lambda cfg: fake_ray)
    plan = actor_pool.ActorPlan("cpu", 0.0, 1.0, 1, 1, threads=1)
    monkeypatch.setattr(actor_pool, "plan_actors", lambda device, max_actors: plan)
    monkeypatch.setattr(actor_pool.ActorPlan, "map_batches_kwargs", lambda self: {"num_cpus": 1.0})
    payload = [{"prompt": "p", "max_new_tokens": 1, "stop": []}]
    out = execute.run_requests("generate", payload, ModelSpec(ModelConfig()), RunSettings(), use_ray=True, max_restarts=5, max_task_retries=7)
    assert out == [{"text": "x"}]
    assert seen["max_restarts"] == 5 and seen["max_task_retries"] == 7 and seen["fn"] is execute.EvalActor
    with pytest.raises(ConfigError, match="max_restarts: must be >= -1"):
        build(EvaluateConfig, {"max_restarts": -2}, "job.yaml: evaluate")


def test_evaluate_stage_passes_its_retry_settings(tmp_path, monkeypatch):
    from labelwise.evaluation import execute
    from labelwise.evaluation.context import Context
    from labelwise.evaluation.runner import ModelSpec

    job = _job(tmp_path, {"use_ray": True, "max_restarts": 2, "max_task_retries": 1})
    ctx = Context(job, ModelSpec(job.model))
    seen = {}

    def fake(kind, payloads, spec, settings, **kw):
        seen.update(kw)
        return [{"text": ""} for _ in payloads]

    monkeypatch.setattr(execute, "run_requests", fake)
    ctx.requests("generate", [{"prompt": "p", "max_new_tokens": 1, "stop": []}], "test")
    assert seen["use_ray"] is True and (seen["max_restarts"], seen["max_task_retries"]) == (2, 1)
    options = ctx.run_options(1)  # what the local judge passes to run_requests
    assert (options["max_restarts"], options["max_task_retries"]) == (2, 1)
