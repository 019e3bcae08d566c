"""``labelwise bench judge``: prompts/s of the judge in choice mode against free-text mode, same
model, same prompts, one process.

* free: the three requests the free mode sends per prompt (Bloom, disciplines, quality;
  judging/prompts.py), answered by greedy generation up to ``--max-new-tokens`` (the stage's
  default, 256). The discipline descriptions the free mode then asks for are not counted, so
  free mode is slower than shown.
* choice: the 2 + D questions of judging/choice.py (Bloom 1-6, quality 0-9, one yes/no per
  shipped discipline), the evaluation runner's ``loglik`` requests: questions that begin alike
  (a prompt's D discipline questions; the Bloom and quality instructions) are prefilled once
  (evaluation/shared_prefix.py). On the free mode's prompts, choice mode also runs with every
  question prefilled on its own, the plain baseline of that sharing.

Both run in this process on one loaded model (the stage's in-process path), on the first
``--prompts`` prompts of the packaged pool ``builtin:multitask`` spread over its tasks
(``--free-prompts`` of them, spread over the list, for the slow free mode); the ratio is choice /
free prompts/s, overall and on the free mode's prompts alone.

    labelwise bench judge                                  # SmolLM2-135M on this machine's CPU
    labelwise bench judge --prompts 40 --free-prompts 8 --json judge_bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(prog="labelwise bench judge", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="judge model (a folder or packaged alias)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--prompts", type=int, default=40, help="pool prompts judged in choice mode")
    p.add_argument("--free-prompts", type=int, default=None, help="of those, how many free mode judges (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="free mode: longest reply per part (the stage's default)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p.parse_args(argv)


def pool_prompts(n: int) -> list[dict]:
    """``n`` prompts of builtin:multitask, round robin over its tasks (file order inside a
    task), so that every task is represented: dicts with id, task, prompt."""
    from labelwise.pool.multitask import records

    rows, _ = records()
    by_task: dict[str, list] = {}
    for i, r in enumerate(rows):
        by_task.setdefault(r.task, []).append({"id": f"m{i:04d}", "task": r.task, "prompt": r.prompt})
    out, depth = [], 0
    while len(out) < n and any(len(v) > depth for v in by_task.values()):
        for task in sorted(by_task):
            if len(by_task[task]) > depth and len(out) < n:
                out.append(by_task[task][depth])
        depth += 1
    return out


def load_runner(model: str, device: str, dtype: str, batch_size: int, threads: int | None = None):
    """(ModelRunner, tokenizer) of a judge model, loaded in this process."""
    import torch

    from labelwise.evaluation.runner import ModelRunner, ModelSpec, RunSettings
    from labelwise.models import ModelConfig

    if threads:
        torch.set_num_threads(threads)
    spec = ModelSpec(ModelConfig(name=model, device=device, dtype=dtype), None)
    runner = ModelRunner.load(spec, RunSettings(batch_size=batch_size))
    return runner, runner.tokenizer


def choice_logprobs(runner, prompts: list[str], keys=None, max_chars: int = 4000, chat_template: bool = True) -> list[dict]:
    """Per prompt {question key: option log-probs} (``keys``: only these questions)."""
    from labelwise.judging.choice import questions
    from labelwise.prompting import render_prompt

    asks = []
    for i, p in enumerate(prompts):
        for key, text, options in questions(p, max_chars):
            if keys is None or key in keys:
                asks.append((i, key, {"context": render_prompt(runner.tokenizer, text, chat_template),
                                      "continuations": list(options)}))
    results = runner.run("loglik", [a[2] for a in asks])
    out = [dict() for _ in prompts]
    for (i, key, _), r in zip(asks, results):
        out[i][key] = r["logprobs"]
    return out


def free_replies(runner, prompts: list[str], parts, max_new_tokens: int, max_chars: int = 4000,
                 chat_template: bool = True) -> list[dict]:
    """Per prompt {part: the judge's free-text reply} (the stage's free-mode requests)."""
    from labelwise.judging.prompts import part_prompt
    from labelwise.prompting import render_prompt

    asks = [(i, part, {"prompt": render_prompt(runner.tokenizer, part_prompt(part, p, max_chars), chat_template),
                       "max_new_tokens": max_new_tokens, "stop": []})
            for i, p in enumerate(prompts) for part in parts]
    results = runner.run("generate", [a[2] for a in asks])
    out = [dict() for _ in prompts]
    for (i, part, _), r in zip(asks, results):
        out[i][part] = r["text"]
    return out


def main(argv=None) -> int:
    from labelwise.judging.choice import discipline_names, judge_from_logprobs
    from labelwise.judging.parse import parse_bloom, parse_disciplines, parse_quality
    from labelwise.judging.prompts import PARTS

    args = parse_args(argv if argv is not None else sys.argv[1:])
    rows = pool_prompts(args.prompts)
    prompts = [r["prompt"] for r in rows]
    n_free = len(prompts) if args.free_prompts is None else min(args.free_prompts, len(prompts))
    if n_free < 1:
        raise SystemExit("--prompts and --free-prompts must be at least 1")
    t0 = time.perf_counter()
    runner, _ = load_runner(args.model, args.device, args.dtype, args.batch_size, args.threads)
    load_s = time.perf_counter() - t0
    print(f"[bench judge] {args.model} on {runner.device}, loaded in {load_s:.1f}s; {len(prompts)} prompts of "
          f"builtin:multitask over {len({r['task'] for r in rows})} tasks", file=sys.stderr)

    # free mode judges a subset spread over the list (so over the tasks); choice mode times that
    # subset first, then the rest, so that both modes are also compared on the same prompts
    step = len(prompts) / max(1, n_free)
    subset = sorted({int(i * step) for i in range(n_free)})
    rest = [i for i in range(len(prompts)) if i not in set(subset)]
    t0 = time.perf_counter()
    lps = choice_logprobs(runner, [prompts[i] for i in subset])
    choice_subset_s = time.perf_counter() - t0
    print(f"[bench judge] choice: {len(subset)} prompts in {choice_subset_s:.1f}s", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    lps += choice_logprobs(runner, [prompts[i] for i in rest])
    choice_s = choice_subset_s + time.perf_counter() - t0
    print(f"[bench judge] choice: {len(prompts)} prompts in {choice_s:.1f}s", file=sys.stderr, flush=True)
    judged = [judge_from_logprobs(lp) for lp in lps]
    runner.settings.shared_prefix = False
    t0 = time.perf_counter()
    alone = choice_logprobs(runner, [prompts[i] for i in subset])
    alone_s = time.perf_counter() - t0
    runner.settings.shared_prefix = True
    gap = max(abs(a - b) for x, y in zip(lps, alone) for k in x for a, b in zip(x[k], y[k]))
    print(f"[bench judge] choice, each question prefilled alone: {len(subset)} prompts in {alone_s:.1f}s",
          file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    replies = free_replies(runner, [prompts[i] for i in subset], PARTS, args.max_new_tokens)
    free_s = time.perf_counter() - t0
    parsers = {"bloom": parse_bloom, "disciplines": parse_disciplines, "quality": parse_quality}
    parsed = {p: sum(parsers[p](r[p])[1] is None for r in replies) for p in PARTS}
    parsed["all"] = sum(all(parsers[p](r[p])[1] is None for p in PARTS) for r in replies)

    choice_rate, free_rate = len(prompts) / choice_s, n_free / free_s
    result = {
        "model": args.model, "device": str(runner.device), "threads": __import__("torch").get_num_threads(),
        "pool": "builtin:multitask", "load_seconds": round(load_s, 2),
        "choice": {"prompts": len(prompts), "seconds": round(choice_s, 2), "prompts_per_second": choice_rate,
                   "questions_per_prompt": 2 + len(discipline_names()), "judged": len(judged)},
        "free": {"prompts": n_free, "seconds": round(free_s, 2), "prompts_per_second": free_rate,
                 "requests_per_prompt": len(PARTS), "max_new_tokens": args.max_new_tokens, "parsed": parsed,
                 "note": "without the discipline-description requests free mode also makes"},
        "ratio_choice_over_free": choice_rate / free_rate,
        "shared_prefixes": {"prompts": len(subset), "seconds": round(choice_subset_s, 2),
                            "each_alone_seconds": round(alone_s, 2), "ratio": alone_s / choice_subset_s,
                            "max_abs_logprob_difference": gap},
        "same_prompts": {"prompts": len(subset), "choice_seconds": round(choice_subset_s, 2),
                         "free_seconds": round(free_s, 2), "ratio_choice_over_free": free_s / choice_subset_s},
    }
    print(f"choice: {len(prompts)} prompts in {choice_s:.1f}s = {choice_rate:.3f} prompts/s "
          f"({2 + len(discipline_names())} questions a prompt; every prompt judged)")
    print(f"free:   {n_free} prompts in {free_s:.1f}s = {free_rate:.4f} prompts/s "
          f"(3 replies of up to {args.max_new_tokens} tokens; fully parsed {parsed['all']}/{n_free}: "
          f"bloom {parsed['bloom']}, disciplines {parsed['disciplines']}, quality {parsed['quality']}; "
          "descriptions not counted)")
    print(f"choice, shared prefixes against each question prefilled alone, same {len(subset)} prompts: "
          f"{alone_s / choice_subset_s:.2f}x (option log-probs within {gap:.1e})")
    print(f"ratio choice / free: {result['ratio_choice_over_free']:.1f}x; on the same {len(subset)} prompts: "
          f"{result['same_prompts']['ratio_choice_over_free']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
