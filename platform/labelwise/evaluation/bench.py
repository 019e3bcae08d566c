"""``labelwise bench eval``: held-out evaluation from one prefill against the two separate passes.

The held-out benchmark needs, per prompt, the gold response's log-likelihood and (for short
responses) the greedy answer. The baseline is what the evaluate stage did before the
``answer`` request: a ``loglik`` pass and a ``generate`` pass, each prefilling the prompt.
Both methods run on the same loaded model and the same rows (gold answers of the packaged pool
``builtin:multitask``, the last ``--per-task`` of each task, rendered as the held-out benchmark
renders them), interleaved and repeated; the median wall time of each is reported, with the
ratio baseline / one-prefill and whether the held-out metrics agree to 4 decimals.

    labelwise bench eval                          # packaged SmolLM2-135M on CPU, 21 tasks x 4 rows
    labelwise bench eval --random 1b --device cuda --dtype bfloat16 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def parse_args(argv):
    from labelwise.scoring.bench import add_model_arguments

    p = argparse.ArgumentParser(prog="labelwise bench eval", description=__doc__.split("\n\n")[0])
    add_model_arguments(p)
    p.add_argument("--per-task", type=int, default=4, help="rows per task of the packaged pool (default 4)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32, help="greedy tokens for exact match (the held-out default)")
    p.add_argument("--em-max-words", type=int, default=5, help="exact match on gold answers of at most this many words")
    p.add_argument("--repeats", type=int, default=2, help="interleaved timing repeats (median reported)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    for name in ("per_task", "batch_size", "max_new_tokens", "em_max_words", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def held_out_rows(per_task: int) -> list[dict]:
    """The last ``per_task`` rows of every task of the packaged pool, in task order."""
    from labelwise.pool.multitask import records

    by_task: dict[str, list[dict]] = {}
    for raw in records()[0]:
        by_task.setdefault(raw.task, []).append({"task": raw.task, "prompt": raw.prompt, "response": raw.response})
    return [row for task in sorted(by_task) for row in by_task[task][-per_task:]]


def main(argv=None) -> int:
    from labelwise.evaluation.answer import separately
    from labelwise.evaluation.benchmarks import heldout
    from labelwise.evaluation.config import HeldoutConfig
    from labelwise.evaluation.runner import ModelRunner, RunSettings
    from labelwise.scoring.bench import load

    args = parse_args(argv)
    model, tok, device = load(args)
    runner = ModelRunner(model, tok, RunSettings(batch_size=args.batch_size))
    rows = held_out_rows(args.per_task)
    cfg = HeldoutConfig(max_new_tokens=args.max_new_tokens, em_max_words=args.em_max_words)
    payloads, gen_rows = heldout.build_requests(cfg, rows, tok, True)
    methods = {"loglik + generate": lambda: separately(runner, payloads), "answer (one prefill)": lambda: runner.run("answer", payloads)}
    times: dict[str, list[float]] = {name: [] for name in methods}
    results: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    base, new = (results[name] for name in methods)
    metrics = {name: heldout.summarize(rows, r, [r[i] for i in gen_rows], gen_rows) for name, r in results.items()}
    keys = ("nll_macro", "nll_micro", "em_macro", "em_micro")
    same = all(_round(metrics[n][k]) == _round(metrics[next(iter(methods))][k]) for n in methods for k in keys)
    median = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "device": device,
        "model": args.random or args.model,
        "rows": len(rows),
        "tasks": len({r["task"] for r in rows}),
        "exact_match_rows": len(gen_rows),
        "seconds": median,
        "ratio": median["loglik + generate"] / median["answer (one prefill)"],
        "metrics": {name: {k: metrics[name][k] for k in keys} for name in methods},
        "same_metrics_4_decimals": same,
        "max_abs_logprob_difference": max(abs(a["logprobs"][0] - b["logprobs"][0]) for a, b in zip(base, new)),
        "different_greedy_texts": sum(a["text"] != b["text"] for a, b in zip(base, new)),
    }
    print(
        f"held-out evaluation of {report['rows']} rows ({report['tasks']} tasks, {report['exact_match_rows']} with exact match), "
        f"{report['model']} on {device}, batch {args.batch_size}, median of {args.repeats}"
    )
    for name in methods:
        m = report["metrics"][name]
        print(f"  {name:<22} {median[name]:7.1f} s   " + "  ".join(f"{k}={_fmt(m[k])}" for k in keys))
    print(f"  ratio (loglik + generate) / answer: {report['ratio']:.2f}x")
    print(
        f"  same metrics to 4 decimals: {'yes' if same else 'NO'} (largest log-prob difference "
        f"{report['max_abs_logprob_difference']:.1e}; greedy texts that differ: {report['different_greedy_texts']})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if same else 1


def _round(v):
    return None if v is None else round(v, 4)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"
