"""``labelwise bench score``: the scorer against plain ``model.generate``, same prompts, same batch.

Speed: generated tokens per second of the streamed scorer (greedy + log-prob, entropy and
margin per token + pooled embedding) against ``model.generate`` (greedy, no metrics) on the
same left-padded batches, interleaved and repeated in one process; the ratio is
scorer / generate (target >= 0.9).

Memory: peak memory above the post-load level of each method at two max_new_tokens values,
each measured in a fresh subprocess (CPU: peak RSS, reset through /proc/self/clear_refs;
CUDA: torch.cuda.max_memory_allocated). A third method, ``generate+scores``
(``output_scores=True``, what one would do to get the metrics naively), shows the
[steps, batch, vocab] growth the scorer avoids.

    labelwise bench score                                    # packaged SmolLM2-135M on CPU
    labelwise bench score --random 1b --dtype bfloat16 --device cuda --batch-size 32
    labelwise bench score --engine hf,vllm                   # the score stage on each engine
                                                             # (labelwise/engine_bench.py)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PRESETS = {
    # name: (hidden, layers, heads, kv_heads, intermediate, vocab)
    "tiny": (64, 2, 4, 2, 128, 49152),
    "135m": (576, 30, 9, 3, 1536, 49152),  # SmolLM2-135M
    "1b": (2048, 16, 32, 8, 8192, 128256),  # Llama-3.2-1B
}

PROMPTS = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain why the sky is blue in two sentences.",
    "List three uses of a paperclip.",
    "Translate 'good morning, how are you?' into Spanish.",
    "What is 17 times 23? Show your work.",
    "Summarize the plot of Romeo and Juliet.",
    "Give me a recipe for pancakes.",
    "Is a tomato a fruit or a vegetable? Explain.",
    "Describe the water cycle to a ten-year-old.",
    "Name the planets of the solar system in order.",
    "What are the benefits of regular exercise?",
    "Write a haiku about autumn leaves falling in the park.",
    "How does a refrigerator keep food cold?",
    "Suggest a name for a pet turtle.",
    "What causes earthquakes?",
]


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The options that pick the model :func:`load` loads (the packaged one, or a random shape)."""
    p.add_argument("--model", default="smollm2-135m-instruct", help="model name (ignored with --random)")
    p.add_argument("--random", choices=sorted(PRESETS), help="a random-weight Llama of this shape instead")
    p.add_argument("--vocab", type=int, help="override the random model's vocabulary size")
    p.add_argument("--tokenizer", default="smollm2-135m-instruct", help="tokenizer for --random (a model name or folder)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])


def parse_args(argv):
    p = argparse.ArgumentParser(prog="labelwise bench score", description=__doc__.split("\n\n")[0])
    add_model_arguments(p)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=2, help="batches per timing repeat")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing repeats (median reported)")
    p.add_argument("--max-new-tokens", default="32,128", help="two values: speed uses the first")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--no-embeddings", action="store_true", help="scorer without the pooled embedding")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--engine", help="hf,vllm: instead, run the score stage on each engine side by side "
                   "(labelwise/engine_bench.py; labelwise bench score --engine hf,vllm --help)")
    p.add_argument("--_child", help=argparse.SUPPRESS)  # method:max_new_tokens, internal
    return p.parse_args(argv)


def load(args):
    """(model, tokenizer, device) for the options."""
    import torch

    from labelwise.models import ModelConfig, load_model, load_tokenizer, pick_device, pick_dtype

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.random is None:
        model, tok = load_model(ModelConfig(name=args.model, device=args.device, dtype=args.dtype))
        return model, tok, str(next(model.parameters()).device)
    from transformers import AutoModelForCausalLM, LlamaConfig

    hidden, layers, heads, kv, inter, vocab = PRESETS[args.random]
    tok = load_tokenizer(ModelConfig(name=args.tokenizer))
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    cfg = LlamaConfig(
        vocab_size=args.vocab or vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.eval()
    return model, tok, device


def make_batches(tok, batch_size: int, n: int) -> list[list[list[int]]]:
    from labelwise.prompting import prompt_ids
    from labelwise.scoring.plan import plan_batches

    prompts = [PROMPTS[i % len(PROMPTS)] + (" " + "please " * (i // len(PROMPTS))) for i in range(batch_size * n)]
    ids = [prompt_ids(tok, p, True) for p in prompts]
    return [[ids[i] for i in b] for b in plan_batches([len(s) for s in ids], batch_size)]


class Methods:
    def __init__(self, model, tok, device, embeddings: bool):
        from labelwise.scoring.scorer import stop_token_ids

        self.model, self.tok, self.device, self.embeddings = model, tok, device, embeddings
        self.stop = stop_token_ids(model, tok)
        self.pad = tok.pad_token_id

    def scorer(self, batch, max_new_tokens: int) -> int:
        from labelwise.scoring.greedy import greedy_score

        r = greedy_score(
            self.model, batch, max_new_tokens=max_new_tokens, stop_ids=self.stop, pad_id=self.pad,
            embeddings=self.embeddings,
        )
        return int(r.n_tokens.sum())

    def generate(self, batch, max_new_tokens: int, scores: bool = False) -> int:
        import torch
        from transformers import GenerationConfig

        from labelwise.scoring.greedy import left_pad

        ids, mask = left_pad(batch, self.pad, self.device)
        gc = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self.stop, pad_token_id=self.pad,
            output_scores=scores, return_dict_in_generate=scores,
        )
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
        seqs = out.sequences if scores else out
        new = seqs[:, ids.shape[1] :].tolist()
        total = 0
        for row in new:  # tokens up to and including the first stop token
            n = len(row)
            for j, t in enumerate(row):
                if t in self.stop:
                    n = j + 1
                    break
            total += n
        return total

    def run(self, name: str, batch, max_new_tokens: int) -> int:
        if name == "scorer":
            return self.scorer(batch, max_new_tokens)
        return self.generate(batch, max_new_tokens, scores=name == "generate+scores")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def speed(m: Methods, batches, max_new_tokens: int, repeats: int) -> dict:
    times = {"scorer": [], "generate": []}
    tokens = {}
    for name in times:  # warm up both
        m.run(name, batches[0], max_new_tokens)
    for _ in range(repeats):
        for name in times:
            sync(m.device)
            t = time.perf_counter()
            n = sum(m.run(name, b, max_new_tokens) for b in batches)
            sync(m.device)
            times[name].append(time.perf_counter() - t)
            tokens[name] = n
    out = {}
    for name, ts in times.items():
        out[name] = {"tokens": tokens[name], "seconds": ts, "tokens_per_s": tokens[name] / statistics.median(ts)}
    out["ratio"] = out["scorer"]["tokens_per_s"] / out["generate"]["tokens_per_s"]
    out["ratio_best"] = (tokens["scorer"] / min(times["scorer"])) / (tokens["generate"] / min(times["generate"]))
    return out


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def child(args) -> dict:
    """Run one method once after loading, and report its peak memory above the loaded level."""
    import torch

    method, mnt = args._child.rsplit(":", 1)
    model, tok, device = load(args)
    m = Methods(model, tok, device, not args.no_embeddings)
    batch = make_batches(tok, args.batch_size, 1)[0]
    m.run(method, batch, 2)  # allocator warm-up (small)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        n = m.run(method, batch, int(mnt))
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - base, "tokens": n, "kind": "cuda allocated"}
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak-RSS counter (Linux)
        f.write("5")
    base = _status("VmRSS")
    n = m.run(method, batch, int(mnt))
    return {"peak_bytes": _status("VmHWM") - base, "tokens": n, "kind": "cpu rss"}


def memory(argv, mnts: list[int]) -> dict:
    out = {}
    for method in ["scorer", "generate", "generate+scores"]:
        for mnt in mnts:
            cmd = [sys.executable, "-m", "labelwise.scoring.bench", *argv, "--_child", f"{method}:{mnt}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"memory child {method}:{mnt} failed:\n{proc.stderr[-2000:]}")
            out[f"{method}@{mnt}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args._child:
        print(json.dumps(child(args)))
        return 0
    mnts = [int(x) for x in args.max_new_tokens.split(",")]
    if len(mnts) != 2:
        raise ValueError("--max-new-tokens takes two values, e.g. 32,128")
    model, tok, device = load(args)
    cfg = model.config
    what = args.random and f"random {args.random}" or args.model
    print(
        f"model: {what} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, vocab "
        f"{cfg.vocab_size}, {next(model.parameters()).dtype}) on {device}; batch {args.batch_size}"
    )
    m = Methods(model, tok, device, not args.no_embeddings)
    batches = make_batches(tok, args.batch_size, args.batches)
    s = speed(m, batches, mnts[0], args.repeats)
    print(f"speed at max_new_tokens={mnts[0]} ({args.batches} batches x {args.repeats} interleaved repeats, median):")
    for name in ("scorer", "generate"):
        r = s[name]
        print(f"  {name:<9} {r['tokens']:>6} tokens  {r['tokens_per_s']:8.1f} tokens/s  "
              f"times {', '.join(f'{t:.2f}' for t in r['seconds'])} s")
    print(f"  ratio scorer/generate: {s['ratio']:.3f} (median), {s['ratio_best']:.3f} (best of each)")
    result = {"model": what, "device": device, "batch_size": args.batch_size, "speed": s}
    if not args.no_memory:
        item = next(model.parameters()).element_size()
        del model, m
        mem = memory([a for a in argv if a != "--no-memory"], mnts)
        kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
        print(f"peak memory above the loaded model ({mem['scorer@' + str(mnts[0])]['kind']}), MiB:")
        print(f"  {'method':<16} " + " ".join(f"{'mnt=' + str(x):>10}" for x in mnts) + f" {'growth':>10}")
        for method in ["scorer", "generate", "generate+scores"]:
            a, b = (mem[f"{method}@{x}"]["peak_bytes"] / 2**20 for x in mnts)
            print(f"  {method:<16} {a:10.1f} {b:10.1f} {b - a:10.1f}")
        steps = mnts[1] - mnts[0]
        print(
            f"  for reference over {steps} more steps: KV cache "
            f"{args.batch_size * steps * kv * item / 2**20:.1f} MiB, "
            f"[steps x batch x vocab] float32 scores {steps * args.batch_size * cfg.vocab_size * 4 / 2**20:.1f} MiB"
        )
        result["memory"] = mem
    if args.json:
        from labelwise.runio import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
