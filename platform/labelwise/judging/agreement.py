"""``labelwise bench judge-agreement``: how well the judge's Bloom levels agree with a small
hand-labelled set, in choice and free mode, beside prompt length as a trivial baseline.

The labelled set (tests/data/bloom_labels.jsonl in the repository: id, source, task, prompt,
bloom 1-6, reason) was written by the project's developers from ../shared/data; see
tests/data/bloom_labels.md. Per method:

* Spearman's rho between the method's score and the label (choice: the expected level under
  the options' softmax; free: the parsed 1-21 score; length: the prompt's characters), with a
  bootstrap 95% interval (1000 resamples of the prompts, seed 0);
* exact-level accuracy (choice: the most probable level; free: the parsed level; length: the
  prompt's length rank cut into levels with the labels' own level counts, a classifier that
  knows the label distribution and nothing else) and within-one accuracy;
* free mode: how many replies parse; unparsed replies count as wrong for accuracy, and rho is
  over the parsed ones only (n says how many).

The majority level's accuracy is printed too (always answering the most common label).

    labelwise bench judge-agreement                        # SmolLM2-135M, both modes
    labelwise bench judge-agreement --modes choice --json agreement.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_LABELS = Path(__file__).resolve().parents[3] / "tests" / "data" / "bloom_labels.jsonl"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="labelwise bench judge-agreement", description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", default=str(DEFAULT_LABELS), help="the labelled JSONL (id, prompt, bloom, ...)")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--modes", default="choice,free", help="comma-separated: choice, free")
    p.add_argument("--max-new-tokens", type=int, default=128, help="free mode: longest Bloom reply")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="also write the results (and per-prompt predictions) here")
    return p.parse_args(argv)


def read_labels(path: str | Path) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        missing = [k for k in ("id", "source", "task", "prompt", "bloom", "reason") if k not in r]
        if missing or r.get("bloom") not in range(1, 7):
            raise ValueError(f"{path}: record {r.get('id')!r}: lacks {missing} or bloom is not 1-6")
    return rows


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def bootstrap_ci(x, y, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(x), len(x))
        v = spearman(x[i], y[i])
        if np.isfinite(v):
            vals.append(v)
    return (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if vals else (float("nan"), float("nan"))


def length_levels(lengths, gold) -> np.ndarray:
    """Levels from length ranks: the shortest prompts get level 1, as many as the labels have
    level 1, and so on (ties broken by order)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    counts = np.bincount(np.asarray(gold), minlength=7)[1:]
    levels = np.repeat(np.arange(1, 7), counts)
    out = np.empty(len(order), dtype=int)
    out[order] = levels
    return out


def row(name, score, pred, gold, n_all, note="") -> dict:
    """A table row: rho over the scored prompts, accuracies over all ``n_all``."""
    score, gold_s = [s for s in score if s is not None], [g for s, g in zip(score, gold) if s is not None]
    ok = [p is not None and p == g for p, g in zip(pred, gold)]
    near = [p is not None and abs(p - g) <= 1 for p, g in zip(pred, gold)]
    lo, hi = bootstrap_ci(score, gold_s)
    return {"method": name, "n_scored": len(score), "n": n_all, "spearman": spearman(score, gold_s),
            "spearman_ci95": [lo, hi], "exact": sum(ok) / n_all, "within_one": sum(near) / n_all, "note": note}


def format_table(rows: list[dict]) -> str:
    lines = ["| method | scored | Spearman rho [95% CI] | exact level | within one | note |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["spearman_ci95"]
        lines.append(f"| {r['method']} | {r['n_scored']}/{r['n']} | {r['spearman']:+.2f} [{lo:+.2f}, {hi:+.2f}] | "
                     f"{r['exact']:.2f} | {r['within_one']:.2f} | {r['note']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from labelwise.judging.bench import choice_logprobs, free_replies, load_runner
    from labelwise.judging.parse import LEVELS, parse_bloom

    args = parse_args(argv if argv is not None else sys.argv[1:])
    labels = read_labels(args.labels)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"choice", "free"}
    if unknown:
        raise SystemExit(f"--modes: unknown {sorted(unknown)} (known: choice, free)")
    gold = [r["bloom"] for r in labels]
    prompts = [r["prompt"] for r in labels]
    n = len(labels)
    counts = np.bincount(gold, minlength=7)[1:]
    majority = int(np.argmax(counts)) + 1
    rows, per_prompt, timing = [], {r["id"]: {"bloom": r["bloom"]} for r in labels}, {}

    lengths = [len(p) for p in prompts]
    rows.append(row("prompt length (chars)", lengths, list(length_levels(lengths, gold)), gold, n,
                    "levels: length ranks cut at the labels' level counts"))
    rows.append(row(f"majority level ({LEVELS[majority - 1]})", [None] * n, [majority] * n, gold, n, "no ranking"))

    runner = None
    if modes:
        runner, _ = load_runner(args.model, args.device, args.dtype, args.batch_size, args.threads)
    if "choice" in modes:
        t0 = time.perf_counter()
        lps = choice_logprobs(runner, prompts, keys={"bloom"})
        timing["choice_seconds"] = round(time.perf_counter() - t0, 2)
        exp_level, pred = [], []
        for r, lp in zip(labels, lps):
            probs = np.exp(np.asarray(lp["bloom"]) - np.max(lp["bloom"]))
            probs /= probs.sum()
            e = float(probs @ np.arange(1, 7))
            exp_level.append(e)
            pred.append(int(np.argmax(probs)) + 1)
            per_prompt[r["id"]]["choice"] = {"expected_level": e, "level": pred[-1], "probs": probs.tolist()}
        rows.append(row(f"{args.model}, choice", exp_level, pred, gold, n, "score: expected level; level: most probable"))
    if "free" in modes:
        t0 = time.perf_counter()
        replies = free_replies(runner, prompts, ("bloom",), args.max_new_tokens)
        timing["free_seconds"] = round(time.perf_counter() - t0, 2)
        score, pred = [], []
        for r, rep in zip(labels, replies):
            value, error = parse_bloom(rep["bloom"])
            score.append(None if error else value["score"])
            pred.append(None if error else LEVELS.index(value["level"]) + 1)
            per_prompt[r["id"]]["free"] = {"reply": rep["bloom"], "error": error, "score": score[-1], "level": pred[-1]}
        parsed = sum(s is not None for s in score)
        rows.append(row(f"{args.model}, free", score, pred, gold, n,
                        f"parsed {parsed}/{n}; unparsed count as wrong; rho over parsed"))

    print(f"labels: {args.labels}: {n} prompts, {len({r['task'] for r in labels})} tasks, levels 1-6: "
          + ", ".join(str(int(c)) for c in counts))
    print(format_table(rows))
    if timing:
        print("seconds: " + ", ".join(f"{k.split('_')[0]} {v}" for k, v in timing.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"labels": str(args.labels), "model": args.model, "rows": rows, "timing": timing,
                       "per_prompt": per_prompt}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
