"""``labelwise bench train``: training tokens/s of Ray Train against a plain loop.

    labelwise bench train [--workers 1 2] [--examples 32] [--max-length 128] [--model NAME]
                          [--random-model 1b] [--data labeled.jsonl] [--length-grouping K]
                          [--out FILE.json]

The same examples, seed and settings are trained (1) in this process by the plain loop of
:mod:`labelwise.training.plain`, then (2) by the train stage's TorchTrainer with each worker
count. Reported: steady-state tokens/s (non-padding tokens over the summed step times, first
step left out as warm-up), end-to-end seconds (model load / worker start included), and the
ratio to the plain loop. ``--random-model 1b`` builds a random-weight 1B-class Llama (GPU
use). ``--data`` trains on a run's labeled.jsonl instead of generated examples of one length;
``--length-grouping K`` also runs the plain loop with ``train.length_grouping: K`` and the Ray
runs with it, so the ratio shows what grouping by length saves on that data's padding.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

WORDS = "apple river stone cloud lamp tiger orange music paper window garden silver".split()


def bench_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = 3 + i % 17, 5 + (i * 7) % 23
        w = WORDS[i % len(WORDS)]
        rows.append(
            {
                "id": f"b{i}",
                "task": "mixed",
                "prompt": f"Add {a} and {b}, then write the word {w} three times and explain briefly.",
                "response": f"The sum of {a} and {b} is {a + b}. {w} {w} {w}. "
                f"I added the two numbers and repeated the word {w} as asked.",
            }
        )
    return rows


def random_llama(size: str, folder: Path, tokenizer_source) -> Path:
    """A random-weight Llama of about ``size`` parameters with the packaged tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    shapes = {"1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4)}
    tok = AutoTokenizer.from_pretrained(tokenizer_source)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **shapes[size])
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def steady_tokens_per_s(log: list[dict]) -> float:
    rows = log[1:] or log
    return sum(r["tokens"] for r in rows) / max(1e-9, sum(r["seconds"] for r in rows))


def bench_job(run: Path, seed: int, model_name: str, train: dict):
    """What the train stage reads of a job (run folder, seed, model, train and ray sections),
    built from the section configs alone, so that a bench does not reach up to labelwise.job."""
    import types

    from labelwise import config
    from labelwise.models import ModelConfig
    from labelwise.ray_start import RayConfig
    from labelwise.training.config import TrainConfig

    return types.SimpleNamespace(
        run_dir=str(run), run_path=Path(run), seed=seed, ray=RayConfig(),
        model=config.build(ModelConfig, {"name": model_name}, "bench: model"),
        train=config.build(TrainConfig, train, "bench: train"),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="labelwise bench train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="model name or folder")
    p.add_argument("--random-model", choices=["1b"], help="train a random-weight model of this size instead")
    p.add_argument("--tokenizer", default="smollm2-135m-instruct", help="tokenizer for --random-model (a model name or folder)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray Train worker counts to run")
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="a labeled.jsonl (id, task, prompt, response) to train on instead of generated examples")
    p.add_argument("--length-grouping", type=int, default=0, metavar="K",
                   help="also run with train.length_grouping K (windows of K batches sorted by length)")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    if args.length_grouping < 0:
        p.error("--length-grouping must be >= 0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import torch

    from labelwise import contracts, runio
    from labelwise.models import ModelConfig, resolve
    from labelwise.ray_start import RayConfig, init_ray
    from labelwise.training.config import TrainConfig
    from labelwise.training.plain import train_plain
    from labelwise.training.stage import train

    work = Path(tempfile.mkdtemp(prefix="lw-bench-train-"))
    model_name = args.model
    if args.random_model:
        model_name = str(random_llama(args.random_model, work / "model", resolve(args.tokenizer)))
    if args.data:
        from labelwise.training.data import read_labeled

        rows = read_labeled(args.data)  # checked as the train stage checks labeled.jsonl
    else:
        rows = bench_rows(args.examples)
    base = {"epochs": args.epochs, "batch_size": args.batch_size, "max_length": args.max_length}
    threads = os.cpu_count() or 1
    results = {"model": args.random_model and f"random-{args.random_model}" or model_name, "examples": len(rows),
               "data": args.data or "generated", "epochs": args.epochs, "batch_size": args.batch_size,
               "max_length": args.max_length, "cuda": torch.cuda.is_available(), "cpu_count": threads, "runs": []}

    plain = None
    for grouping in sorted({0, args.length_grouping}):
        start = time.perf_counter()
        _, _, log, stats = train_plain(ModelConfig(name=model_name), TrainConfig(**base, length_grouping=grouping), rows,
                                       args.seed, threads=threads)
        r = {"runner": "plain loop", "workers": 1, "length_grouping": grouping, "tokens_per_s": steady_tokens_per_s(log),
             "end_to_end_s": time.perf_counter() - start, "final_loss": log[-1]["loss"]}
        if plain is None:
            plain = r
        else:
            r["ratio_vs_plain"] = r["tokens_per_s"] / plain["tokens_per_s"]
            r["end_to_end_ratio_vs_plain"] = plain["end_to_end_s"] / r["end_to_end_s"]
        results["runs"].append(r)
        print(f"plain loop (length_grouping {grouping}): {r['tokens_per_s']:.1f} tokens/s, "
              f"{r['end_to_end_s']:.1f} s end to end", file=sys.stderr)

    from labelwise.contracts import TRAIN_LOG, TRAIN_LOG_COLUMNS, read_train_log

    init_ray(RayConfig())
    for w in args.workers:
        run = work / f"ray-{w}"
        run.mkdir()
        runio.write_jsonl(run / contracts.LABELED, rows)
        job = bench_job(run, args.seed, model_name, {**base, "num_workers": w, "length_grouping": args.length_grouping})
        t0 = time.perf_counter()
        train(job)
        log = read_train_log(run / TRAIN_LOG, TRAIN_LOG_COLUMNS).to_dict("records")
        r = {"runner": "ray train", "workers": w, "length_grouping": args.length_grouping, "tokens_per_s": steady_tokens_per_s(log),
             "end_to_end_s": time.perf_counter() - t0, "final_loss": log[-1]["loss"]}
        r["ratio_vs_plain"] = r["tokens_per_s"] / plain["tokens_per_s"]
        r["end_to_end_ratio_vs_plain"] = plain["end_to_end_s"] / r["end_to_end_s"]
        results["runs"].append(r)

    print(f"\nLoRA training throughput, {results['model']}, {len(rows)} examples ({results['data']}) x {args.epochs} "
          f"epoch(s), batch {args.batch_size}, max_length {args.max_length}, "
          f"{'GPU' if results['cuda'] else f'{threads} CPU cores'}")
    print(f"{'runner':<12}{'workers':>8}{'grouping':>9}{'tokens/s':>11}{'ratio':>8}{'end-to-end s':>14}{'e2e ratio':>11}{'last loss':>11}")
    for r in results["runs"]:
        print(f"{r['runner']:<12}{r['workers']:>8}{r['length_grouping']:>9}{r['tokens_per_s']:>11.1f}"
              f"{r.get('ratio_vs_plain', 1.0):>8.2f}{r['end_to_end_s']:>14.1f}"
              f"{r.get('end_to_end_ratio_vs_plain', 1.0):>11.2f}{r['final_loss']:>11.4f}")
    print("ratio: steady-state tokens/s (non-padding tokens) over the first row's, the plain loop without "
          "length grouping (>1 is faster); e2e ratio: that row's end-to-end time over this row's (includes "
          "worker start and model load).")
    if args.out:
        runio.write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
