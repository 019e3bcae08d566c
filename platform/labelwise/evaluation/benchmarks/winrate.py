"""Pairwise win rate of model A (the model being evaluated) against reference B.

Each prompt is judged twice, once with A's answer shown first and once with B's first, so a
judge's preference for a position cancels out. Per prompt, A's score is the mean of its two
results (win 1, tie 0.5, loss 0): 1 = a win, 0.5 = a tie (including the judge disagreeing
with itself across orders), 0 = a loss.

* ``win_rate``: mean score over prompts (ties count half); ``wins`` / ``ties`` / ``losses``:
  fractions of prompts; ``position_consistency``: fraction of prompts where both orders agree;
* ``len_a_chars`` / ``len_b_chars`` (and words): mean answer lengths;
* ``lc_win_rate``: a length-controlled win rate in the spirit of AlpacaEval 2: a logistic
  model p(A preferred) = sigmoid(theta + phi * tanh(dlen / sd(dlen))) fitted to the judgments
  (dlen = characters of A - characters of B, soft labels, small L2 penalty), read at dlen = 0:
  sigmoid(theta). It says how often A would win were both answers equally long.

Model B is the prompt file's own outputs (``reference: dataset``), the base model or a named
model, each model answering in its own prompt format; the per-prompt answers and verdicts go
to run_dir/winrate_<label>.jsonl (``contracts.winrate_file``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from labelwise import contracts
from labelwise.evaluation.data import file_hash, missing, sample, text_hash

LC_METHOD = "logistic sigmoid(theta + phi*tanh(dchars/sd)), soft labels, L2=0.01, LC = sigmoid(theta)"
SCORE = {"first": 1.0, "tie": 0.5, "second": 0.0}  # A's score when A is shown first


def read_prompts(path: Path) -> list[dict]:
    """Rows {instruction, output?} from a JSON list or a JSONL file."""
    if not path.exists():
        raise missing("winrate", path)
    text = path.read_text()
    if path.suffix == ".jsonl":
        from labelwise.textio import read_jsonl

        rows = read_jsonl(path)
    else:
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty list of {{instruction, output}} records")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
            where = f"line {i + 1}" if path.suffix == ".jsonl" else f"[{i}]"
            raise ValueError(f"{path}: {where}: needs a non-empty string field 'instruction'")
    return rows


def a_scores(first_pass: list[str], second_pass: list[str]) -> list[float]:
    """Per prompt, A's mean score from (A shown first) and (B shown first) verdicts."""
    return [(SCORE[v1] + 1.0 - SCORE[v2]) / 2 for v1, v2 in zip(first_pass, second_pass)]


def length_controlled(first_pass: list[str], second_pass: list[str], len_a: list[int], len_b: list[int], l2: float = 0.01) -> dict:
    """Fit the length model on the 2n judgments; returns theta, phi and lc_win_rate."""
    deltas = [a - b for a, b in zip(len_a, len_b)]
    n = len(deltas)
    mean = sum(deltas) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in deltas) / n) or 1.0
    xs, ys = [], []
    for d, v1, v2 in zip(deltas, first_pass, second_pass):
        x = math.tanh(d / sd)
        xs += [x, x]
        ys += [SCORE[v1], 1.0 - SCORE[v2]]
    theta = phi = 0.0
    for _ in range(100):  # Newton's method on the penalized log-loss (convex)
        g0 = g1 = 0.0
        h00 = h01 = h11 = 0.0
        for x, y in zip(xs, ys):
            p = 1.0 / (1.0 + math.exp(-(theta + phi * x)))
            g0 += p - y
            g1 += (p - y) * x
            w = p * (1 - p)
            h00 += w
            h01 += w * x
            h11 += w * x * x
        g0 += l2 * theta
        g1 += l2 * phi
        h00 += l2
        h11 += l2
        det = h00 * h11 - h01 * h01
        step0 = (h11 * g0 - h01 * g1) / det
        step1 = (h00 * g1 - h01 * g0) / det
        theta -= step0
        phi -= step1
        if abs(step0) + abs(step1) < 1e-10:
            break
    return {"lc_win_rate": 1.0 / (1.0 + math.exp(-theta)), "lc_theta": theta, "lc_phi": phi}


def summarize(first_pass: list[str], second_pass: list[str], answers_a: list[str], answers_b: list[str], invalid: int = 0) -> dict:
    scores = a_scores(first_pass, second_pass)
    n = len(scores)
    len_a = [len(a) for a in answers_a]
    len_b = [len(b) for b in answers_b]
    out = {
        "win_rate": sum(scores) / n,
        "wins": sum(s > 0.5 for s in scores) / n,
        "ties": sum(s == 0.5 for s in scores) / n,
        "losses": sum(s < 0.5 for s in scores) / n,
        "position_consistency": sum(
            (v1 == "tie" and v2 == "tie") or (v1 != "tie" and v2 != "tie" and v1 != v2)
            for v1, v2 in zip(first_pass, second_pass)
        )
        / n,
        "len_a_chars": sum(len_a) / n,
        "len_b_chars": sum(len_b) / n,
        "len_a_words": sum(len(a.split()) for a in answers_a) / n,
        "len_b_words": sum(len(b.split()) for b in answers_b) / n,
        "n": n,
        "invalid_judgments": invalid,
    }
    out.update(length_controlled(first_pass, second_pass, len_a, len_b))
    return out


# ---- the benchmark: A's and B's answers, judged in both orders ------------------------------


def prompts_path(ctx) -> Path:
    w = ctx.cfg.winrate
    return Path(w.prompts) if w.prompts else ctx.root / "alpaca_eval" / "gpt4_model_outputs.json"


def details_path(ctx, label: str) -> Path:
    """Where the run keeps its per-prompt details until the stage commits them."""
    from labelwise.evaluation.metrics_file import cache_path

    return cache_path(ctx.job.run_path, label, "winrate").with_suffix(".jsonl")


def inputs(ctx) -> dict:
    from labelwise.models import resolve

    reference = ctx.cfg.winrate.reference
    return {} if reference in ("dataset", "base") else {"winrate.reference": resolve(reference)}


def outputs(ctx, label: str) -> dict:
    return {contracts.winrate_file(label): details_path(ctx, label)}


def protocol(ctx) -> dict:
    from labelwise.evaluation.judge import TEMPLATE

    w, chat = ctx.cfg.winrate, ctx.job.model.chat_template
    path = prompts_path(ctx)
    judge = {"kind": w.judge.kind, "model": w.judge.model, "template": text_hash(TEMPLATE)}
    if w.judge.kind == "openai":
        judge["base_url"] = w.judge.base_url or "$OPENAI_BASE_URL"
    else:
        judge["tie_margin"] = w.judge.tie_margin
        judge["chat_template"] = w.judge.chat_template
    reference = w.reference
    if reference not in ("dataset", "base"):
        reference = {"model": reference}
    return {
        "prompts": str(path),
        "prompts_sha256": file_hash(path) if path.exists() else None,
        "max_prompts": w.max_prompts,
        "sample_seed": ctx.job.seed if w.max_prompts else None,
        "reference": reference,
        "max_new_tokens": w.max_new_tokens,
        "decoding": "greedy",
        "prompt_format": "chat template" if chat else "plain template",
        "reference_prompt_format": (
            None if w.reference == "dataset" else ("its own tokenizer's chat template" if chat else "plain template")
        ),
        "judge": judge,
        "max_answer_chars": w.judge.max_answer_chars,
        "orders": "both (A first, B first); per prompt A's score = mean",
        "length_control": LC_METHOD,
    }


def reference_model(ctx):
    """Model B's config: the job's base model, or the named model (its own revision: none)."""
    import dataclasses

    w = ctx.cfg.winrate
    if w.reference == "base":
        return ctx.job.model
    return dataclasses.replace(ctx.job.model, name=w.reference, revision=None)


def run(ctx, label: str) -> dict:
    from labelwise.evaluation.judge import judge_prompt, make_judge
    from labelwise.evaluation.runner import ModelSpec
    from labelwise.models import load_tokenizer
    from labelwise.prompting import render_prompt
    from labelwise.runio import write_jsonl

    w = ctx.cfg.winrate
    path = prompts_path(ctx)
    rows = sample(read_prompts(path), w.max_prompts, ctx.job.seed, "winrate")

    def gen(tokenizer, chat_template: bool) -> list[dict]:
        # each model answers in its own prompt format: its tokenizer's chat template
        return [
            {"prompt": render_prompt(tokenizer, r["instruction"], chat_template),
             "max_new_tokens": w.max_new_tokens, "stop": []}
            for r in rows
        ]

    answers_a = [r["text"].strip() for r in ctx.requests("generate", gen(ctx.tokenizer, ctx.job.model.chat_template), "winrate answers A")]
    if w.reference == "dataset":
        lacking = [i for i, r in enumerate(rows) if not isinstance(r.get("output"), str)]
        if lacking:
            raise ValueError(f"{path}: reference 'dataset' needs an 'output' string on every prompt (missing in {len(lacking)}, e.g. {rows[lacking[0]]['instruction'][:60]!r})")
        answers_b = [r["output"].strip() for r in rows]
    else:
        ref_model = reference_model(ctx)
        ref_tokenizer = ctx.tokenizer if w.reference == "base" else load_tokenizer(ref_model)
        payloads_b = gen(ref_tokenizer, ref_model.chat_template)
        answers_b = [r["text"].strip() for r in ctx.requests("generate", payloads_b, "winrate answers B", spec=ModelSpec(ref_model, None))]
    cut = w.judge.max_answer_chars
    prompts = [judge_prompt(r["instruction"], a, b, cut) for r, a, b in zip(rows, answers_a, answers_b)]
    prompts += [judge_prompt(r["instruction"], b, a, cut) for r, a, b in zip(rows, answers_a, answers_b)]
    judge = make_judge(w.judge, ctx.job.model, ctx.settings, ctx.run_options(len(prompts)))
    verdicts = judge.judge(prompts)
    n = len(rows)
    first = [v["verdict"] for v in verdicts[:n]]
    second = [v["verdict"] for v in verdicts[n:]]
    invalid = sum(bool(v.get("invalid")) for v in verdicts)
    result = summarize(first, second, answers_a, answers_b, invalid)
    scores = a_scores(first, second)
    write_jsonl(details_path(ctx, label), [
        {"instruction": r["instruction"], "answer_a": a, "answer_b": b, "a_first": v1, "b_first": v2, "score_a": s}
        for r, a, b, v1, v2, s in zip(rows, answers_a, answers_b, verdicts[:n], verdicts[n:], scores)
    ])
    result["details"] = str(ctx.job.run_path / contracts.winrate_file(label))
    return result
