"""The evaluate stage: benchmarks for the base model or a LoRA adapter, into metrics.json.

    labelwise evaluate JOB.yaml                 base model, and run_dir/adapter when it exists
    labelwise evaluate JOB.yaml --base          base model only
    labelwise evaluate JOB.yaml --adapter PATH [--label NAME]

Benchmarks (``evaluate.benchmarks``): heldout, mmlu, bbh, winrate, each a module of
labelwise.evaluation.benchmarks listed in its table. A label's results, each
with its protocol, go to run_dir/metrics_<label>.json, committed with the manifest of stage
``evaluate-<label>`` (labelwise.manifest), and are gathered into run_dir/metrics.json. Each
benchmark's result is also cached as soon as it is done (eval_cache/), so a rerun after a
crash skips a benchmark whose protocol (settings, a digest of the data files read, model
identity) is the same.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from labelwise import contracts, runio
from labelwise.evaluation import benchmarks

HELP = "evaluate the base or adapted model (held-out tasks, MMLU, BBH, win rate)"  # the command's one-line help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", metavar="PATH", help="evaluate this LoRA adapter folder (label: adapted)")
    parser.add_argument("--label", help="label in metrics.json (default: base, or adapted with an adapter)")
    parser.add_argument("--base", action="store_true", help="evaluate the base model only")


def main(job, args) -> int:
    from labelwise.contracts import ADAPTER

    if args.base and args.adapter:
        print("labelwise evaluate: --base and --adapter exclude each other", file=sys.stderr)
        return 2
    runs: list[tuple[str | None, str | None]] = []
    if args.adapter:
        runs.append((args.adapter, args.label))
    else:
        runs.append((None, args.label or "base"))
        default_adapter = job.run_path / ADAPTER
        if not args.base and not args.label and (default_adapter / contracts.ADAPTER_CONFIG).exists():
            runs.append((str(default_adapter), "adapted"))
    results = {}
    for adapter, label in runs:
        label = label or ("adapted" if adapter else "base")
        results[label] = evaluate(job, adapter=adapter, label=label)
    print(format_table(results))
    print(f"metrics: {job.run_path / 'metrics.json'}")
    return 0


def format_table(results: dict) -> str:
    lines = [f"{'label':<10} {'benchmark':<10} metrics"]
    for label, benches in results.items():
        for bench, metrics in benches.items():
            keys = benchmarks.HEADLINE.get(bench, ())
            shown = "  ".join(f"{k}={_fmt(metrics.get(k))}" for k in keys if k in metrics)
            lines.append(f"{label:<10} {bench:<10} {shown}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# ---- the library entry point -----------------------------------------------------------


def _stderr(*args) -> None:
    print(*args, file=sys.stderr)


def evaluate(job, adapter=None, label: str | None = None, log=_stderr) -> dict:
    """Evaluate the base model (or ``adapter``) on ``job.evaluate.benchmarks``; returns
    ``{benchmark: metrics}`` for the label, as gathered into run_dir/metrics.json.

    The stage ``evaluate-<label>`` writes metrics_<label>.json (and winrate_<label>.jsonl) and
    commits them with a manifest: kept while the model's and the adapter's files, test.parquet
    and every benchmark's protocol (settings and a digest of its data) match."""
    from labelwise import manifest
    from labelwise.evaluation import metrics_file
    from labelwise.evaluation.context import Context
    from labelwise.evaluation.runner import ModelSpec, resolve_adapter
    from labelwise.models import resolve

    adapter = resolve_adapter(adapter)
    label = label or ("adapted" if adapter else "base")
    if job.evaluate.threads:
        import torch

        torch.set_num_threads(job.evaluate.threads)
    run = job.run_path
    benches = list(job.evaluate.benchmarks)
    spec = ModelSpec(job.model, adapter)
    ctx = Context(job, spec)
    protocols, identity = {}, None
    for bench in benches:
        protocol = benchmarks.benchmark(bench).protocol(ctx)
        # the engine is part of the protocol when it is vllm (hf protocols stay as they were)
        identity = identity or {**model_identity(spec), **({"engine": "vllm"} if ctx.engine == "vllm" else {})}
        protocols[bench] = {**protocol, "model": identity}
    inputs = {"model": resolve(job.model.name)}
    if adapter:
        inputs["adapter"] = Path(adapter)
    inputs.update(benchmarks.inputs(ctx, benches))
    inputs = {k: v for k, v in inputs.items() if isinstance(v, Path)}  # hub names: in the protocol
    extra = {bench: benchmarks.outputs(ctx, bench, label) for bench in benches}  # name -> where its run leaves it
    outputs = [contracts.metrics_file(label)] + [name for files in extra.values() for name in files]
    stage = f"evaluate-{label}"

    def build(staged: Path) -> None:
        import shutil

        runio.remove_tmp_files(metrics_file.cache_path(run, label, "x").parent)  # killed cache writes
        results = {}
        for bench, protocol in protocols.items():
            result = metrics_file.cached(run, label, bench, protocol)
            if result is not None:
                log(f"evaluate [{label}] {bench}: done earlier with the same protocol ({contracts.EVAL_CACHE}), reused")
            else:
                log(f"evaluate [{label}] {bench} ...")
                result = {**benchmarks.benchmark(bench).run(ctx, label), "protocol": protocol}
                metrics_file.store(run, label, bench, result)
            results[bench] = result
            for name, source in extra[bench].items():
                shutil.copy2(source, staged / name)
        runio.write_json(staged / outputs[0], metrics_file.plain(results))
        manifest.fault(stage)

    manifest.run_stage(run, stage, inputs, {"protocols": protocols}, outputs, build, log=log)
    stored = metrics_file.gather(run).get(label, {})
    return {b: stored[b] for b in benches if b in stored}


def model_identity(spec) -> dict:
    """The model's part of every protocol: its name and fingerprint, and the adapter's hash."""
    from labelwise.models import fingerprint

    return {
        "name": spec.model.name,
        "fingerprint": fingerprint(spec.model),
        "adapter_sha256": _folder_hash(spec.adapter) if spec.adapter else None,
    }


def _folder_hash(folder) -> str:
    """Content hash of an adapter folder's config and weight files."""
    from labelwise.evaluation.data import file_hash

    h = hashlib.sha256()
    for f in sorted(Path(folder).iterdir()):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
            h.update(f.name.encode())
            h.update(file_hash(f).encode())
    return h.hexdigest()[:16]
