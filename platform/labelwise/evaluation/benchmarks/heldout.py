"""Held-out pool metrics on run_dir/test.parquet (the pool stage's held-out split).

Per task:
* ``nll``: mean negative log-likelihood per response token of the gold response, on exactly
  the text the training stage learns from (``labelwise.prompting.render_example``: the response
  tokens after the rendered prompt, end-of-sequence token included);
* ``em``: exact match of the greedy answer with the gold response, on examples whose gold
  response has at most ``em_max_words`` words (normalized: lowercase, no punctuation, no
  articles, single spaces; the SQuAD normalization).

Averages: ``*_macro`` (mean over tasks) and ``*_micro`` (pooled over tokens / examples).
"""

from __future__ import annotations

import math
import re
import string
from pathlib import Path

from labelwise import contracts
from labelwise.evaluation.data import file_hash, sample

REQUIRED = ("id", "task", "prompt", "response")


def read_test(path: Path, cap: int | None, seed: int) -> list[dict]:
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(
            f"heldout: {path} not found: run `labelwise pool` first (it writes the held-out split "
            f"test.parquet with columns {', '.join(REQUIRED)})"
        )
    df = pd.read_parquet(path)
    absent = [c for c in REQUIRED if c not in df.columns]
    if absent:
        raise ValueError(f"{path}: missing column {absent[0]!r} (needs {', '.join(REQUIRED)})")
    for col in REQUIRED:
        bad = df[col].map(lambda v: not isinstance(v, str))
        if bad.any():
            raise ValueError(f"{path}: column {col!r} has a non-string value at row {int(bad.idxmax())}")
    if df.empty:
        raise ValueError(f"{path}: the held-out split is empty")
    rows = []
    for task, group in df.groupby("task", sort=True):
        records = group[list(REQUIRED)].to_dict("records")
        rows += sample(records, cap, seed, str(task))
    return rows


def normalize(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def short(response: str, max_words: int) -> bool:
    return 0 < len(response.split()) <= max_words


def build_requests(cfg, rows: list[dict], tokenizer, chat_template: bool):
    """(``answer`` payloads, one per row, and the rows whose payload also asks for the greedy
    answer): the gold response's log-likelihood after the rendered prompt, and greedy
    generation from the same prompt for exact match (one prefill serves both)."""
    from labelwise.prompting import render_example

    payloads, gen_rows = [], []
    for i, row in enumerate(rows):
        head, full = render_example(tokenizer, row["prompt"], row["response"], chat_template)
        generate = bool(cfg.exact_match and short(row["response"], cfg.em_max_words))
        payloads.append({
            "context": head, "continuation": full[len(head):], "generate": generate,
            "max_new_tokens": cfg.max_new_tokens, "stop": [],
        })
        if generate:
            gen_rows.append(i)
    return payloads, gen_rows


def summarize(rows: list[dict], nll_results: list[dict], gen_results: list[dict], gen_rows: list[int]) -> dict:
    per_task: dict[str, dict] = {}
    for row, res in zip(rows, nll_results):
        t = per_task.setdefault(row["task"], {"nll_sum": 0.0, "tokens": 0, "n": 0, "em_hits": 0, "n_em": 0})
        t["nll_sum"] -= res["logprobs"][0]
        t["tokens"] += res["n_tokens"][0]
        t["n"] += 1
    for i, res in zip(gen_rows, gen_results):
        t = per_task[rows[i]["task"]]
        t["n_em"] += 1
        t["em_hits"] += int(normalize(res["text"]) == normalize(rows[i]["response"]))
    table = {}
    for task, t in sorted(per_task.items()):
        table[task] = {
            "nll": t["nll_sum"] / t["tokens"],
            "n": t["n"],
            "n_tokens": t["tokens"],
            "em": t["em_hits"] / t["n_em"] if t["n_em"] else None,
            "n_em": t["n_em"],
        }
    tokens = sum(t["tokens"] for t in per_task.values())
    em_tasks = [v["em"] for v in table.values() if v["em"] is not None]
    n_em = sum(t["n_em"] for t in per_task.values())
    out = {
        "nll_macro": sum(v["nll"] for v in table.values()) / len(table),
        "nll_micro": sum(t["nll_sum"] for t in per_task.values()) / tokens,
        "em_macro": sum(em_tasks) / len(em_tasks) if em_tasks else None,
        "em_micro": sum(t["em_hits"] for t in per_task.values()) / n_em if n_em else None,
        "n": sum(v["n"] for v in table.values()),
        "n_em": n_em,
        "n_tasks": len(table),
        "per_task": table,
    }
    out["ppl_micro"] = math.exp(out["nll_micro"])
    return out


def split_path(ctx) -> Path:
    return ctx.job.run_path / contracts.TEST


def inputs(ctx) -> dict:
    return {contracts.TEST: split_path(ctx)}


def protocol(ctx) -> dict:
    cfg, path = ctx.cfg.heldout, split_path(ctx)
    return {
        "split": str(path),
        "per_task_cap": cfg.per_task_cap,
        "cap_seed": ctx.job.seed if cfg.per_task_cap else None,
        "prompt_format": "labelwise.prompting.render_example (chat template)" if ctx.job.model.chat_template else "labelwise.prompting.render_example (plain template)",
        "nll": "mean per response token (EOS included) of the gold response after the rendered prompt",
        "exact_match": (
            f"greedy, max_new_tokens={cfg.max_new_tokens}, on gold responses of <= {cfg.em_max_words} words, "
            "SQuAD normalization" if cfg.exact_match else None
        ),
        "average": "macro: mean over tasks; micro: pooled over tokens (nll) or examples (em)",
        "split_sha256": file_hash(path) if path.exists() else None,
    }


def run(ctx, label: str) -> dict:
    """One ``answer`` request per row: the gold response's log-likelihood, and the greedy
    answer where exact match applies."""
    cfg = ctx.cfg.heldout
    rows = read_test(split_path(ctx), cfg.per_task_cap, ctx.job.seed)
    payloads, gen_rows = build_requests(cfg, rows, ctx.tokenizer, ctx.job.model.chat_template)
    results = ctx.requests("answer", payloads, "heldout nll and exact match")
    return summarize(rows, results, [results[i] for i in gen_rows], gen_rows)
