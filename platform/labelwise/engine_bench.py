"""``labelwise bench score --engine hf,vllm``: the score stage on each engine, same prompts.

Real prompts of the packaged pool (the first ``--per-task`` of each of its 21 tasks) are
scored by the score stage itself, once per engine, each in a fresh run folder: ``hf`` in this
process (the reference loop, all cores), ``vllm`` through ray.data.llm on a local Ray. Printed
per engine: generated tokens, wall time of the stage, time to the first result (model load or
engine start) and the steady rate after it; then the ratio of steady rates against the first
engine, and how the scores agree with it: identical greedy answers, the largest log-confidence
and margin differences, and the entropy estimate's error and rank correlation (vLLM returns
no entropy: scoring/vllm_scorer.py).

    labelwise bench score --engine hf,vllm                       # packaged SmolLM2-135M, CPU
    labelwise bench score --engine hf,vllm --per-task 8 --batch-size 32 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def parse_args(argv):
    p = argparse.ArgumentParser(prog="labelwise bench score --engine", description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", required=True, help="comma-separated engines, the first is the baseline (hf,vllm)")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--per-task", type=int, default=3, help="prompts per task of the packaged pool (21 tasks)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--embeddings", action="store_true", help="also pool embeddings (vllm: an HF prefill stage)")
    p.add_argument("--set", action="append", default=[], metavar="score.KEY=VALUE",
                   help="more score settings for every engine (e.g. score.engine_kwargs={...})")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    if not args.engines or any(e not in ("hf", "vllm") for e in args.engines):
        p.error("--engine takes hf and/or vllm, comma-separated")
    if args.per_task < 1 or args.max_new_tokens < 1 or args.batch_size < 1:
        p.error("--per-task, --max-new-tokens and --batch-size must be at least 1")
    return args


def bench_pool(per_task: int):
    """The first ``per_task`` prompts of every task of the packaged pool."""
    import pandas as pd

    from labelwise.pool.multitask import records

    rows, seen = [], {}
    for raw in records()[0]:
        n = seen.get(raw.task, 0)
        if n < per_task:
            rows.append({"id": f"{raw.task}-{n}", "task": raw.task, "prompt": raw.prompt, "response": raw.response})
            seen[raw.task] = n + 1
    return pd.DataFrame(rows)


def run_engine(engine: str, args, pool, root: Path) -> dict:
    from labelwise.config import apply_overrides, build
    from labelwise.job import JobConfig
    from labelwise.scoring import stage

    run = root / engine
    run.mkdir(parents=True)
    pool.to_parquet(run / "pool.parquet", index=False)
    data = {
        "run_dir": str(run),
        "model": {"name": args.model},
        "score": {
            "engine": engine,
            "max_new_tokens": args.max_new_tokens,
            "batch_size": args.batch_size,
            "embeddings": args.embeddings,
            "use_ray": False,  # hf: in this process; vllm always runs on Ray Data
        },
    }
    data = apply_overrides(data, args.set)
    job = build(JobConfig, data, "bench")
    start = time.perf_counter()
    stage.score_pool(job)
    wall = time.perf_counter() - start
    summary = json.loads((run / "score_summary.json").read_text())
    r = summary["run"]
    ex = r.get("executor", {})
    first, first_tokens = ex.get("first_result_seconds", 0.0), ex.get("first_result_tokens", 0)
    steady = (r["generated_tokens"] - first_tokens) / max(r["seconds"] - first, 1e-9)
    import pandas as pd

    return {
        "engine": engine,
        "prompts": r["scored_now"],
        "tokens": r["generated_tokens"],
        "wall_seconds": wall,
        "first_result_seconds": first,
        "steady_tokens_per_s": steady,
        "overall_tokens_per_s": r["generated_tokens"] / wall,
        "mean_entropy": summary.get("mean_entropy", "exact"),
        "scores": pd.read_parquet(run / "scores.parquet"),
    }


def agreement(base, other) -> dict:
    """How ``other``'s scores agree with ``base``'s (same ids, same order)."""
    from scipy.stats import spearmanr

    a, b = base.set_index("id"), other.set_index("id").loc[base["id"]]
    same = (a["answer"].to_numpy() == b["answer"].to_numpy()) & (a["n_tokens"].to_numpy() == b["n_tokens"].to_numpy())
    s = same.astype(bool)
    return {
        "same_greedy_answers": int(s.sum()),
        "prompts": int(len(s)),
        "max_logconf_diff_same_answer": float((a["logconf"] - b["logconf"]).abs()[s].max()) if s.any() else None,
        "max_margin_diff_same_answer": float((a["mean_margin"] - b["mean_margin"]).abs()[s].max()) if s.any() else None,
        "entropy_mean_abs_error": float((a["mean_entropy"] - b["mean_entropy"]).abs()[s].mean()) if s.any() else None,
        "entropy_mean_error": float((b["mean_entropy"] - a["mean_entropy"])[s].mean()) if s.any() else None,
        "entropy_spearman": float(spearmanr(a["mean_entropy"][s], b["mean_entropy"][s]).statistic) if s.sum() > 2 else None,
    }


def main(argv) -> int:
    args = parse_args(argv)
    pool = bench_pool(args.per_task)
    results = []
    with tempfile.TemporaryDirectory(prefix="lw-bench-engines-") as tmp:
        for engine in args.engines:
            results.append(run_engine(engine, args, pool, Path(tmp)))
    base = results[0]
    print(
        f"score stage on {len(pool)} prompts of the packaged pool ({pool['task'].nunique()} tasks), "
        f"{args.model}, max_new_tokens {args.max_new_tokens}, batch {args.batch_size}"
        + (", with embeddings" if args.embeddings else "")
    )
    print(f"  {'engine':<6} {'tokens':>7} {'wall s':>8} {'first result s':>15} {'steady tok/s':>13} {'ratio':>6}")
    for r in results:
        r["ratio"] = r["steady_tokens_per_s"] / base["steady_tokens_per_s"]
        print(f"  {r['engine']:<6} {r['tokens']:>7} {r['wall_seconds']:>8.1f} {r['first_result_seconds']:>15.1f} "
              f"{r['steady_tokens_per_s']:>13.1f} {r['ratio']:>5.2f}x")
    for r in results[1:]:
        r["agreement"] = agreement(base["scores"], r["scores"])
        g = r["agreement"]
        print(f"  {r['engine']} against {base['engine']}: same greedy answer on {g['same_greedy_answers']}/{g['prompts']} prompts; "
              f"on those, largest logconf difference {g['max_logconf_diff_same_answer']:.1e}, "
              f"margin {g['max_margin_diff_same_answer']:.1e}; mean_entropy ({r['mean_entropy']}) "
              f"mean abs error {g['entropy_mean_abs_error']:.3f} nats (mean {g['entropy_mean_error']:+.3f}), "
              f"Spearman {g['entropy_spearman']:.3f}")
    if args.json:
        from labelwise.runio import write_json

        write_json(args.json, {"settings": {k: v for k, v in vars(args).items() if k != "set"},
                                "results": [{k: v for k, v in r.items() if k != "scores"} for r in results]})
    return 0
