"""``labelwise train``: LoRA-finetune the base model on labeled.jsonl with Ray Train.

    labelwise train CONFIG [--set train.num_workers=2 ...]

A TorchTrainer (Train V2) runs :func:`labelwise.training.worker.train_loop_per_worker` on
``train.num_workers`` workers. Checkpoints (adapter only) go to RayConfig.storage or
run_dir/ray, under a run name derived from model, data, settings and seed (or
``train.name``): starting the same job again resumes from the last checkpoint, and a worker
that dies is replaced and continues from it (``train.max_failures``). The result:
run_dir/adapter (loads with PeftModel.from_pretrained), train_log.csv, loss.png and
train_summary.json. A run folder whose adapter is finished is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from labelwise import runio
from labelwise.training.outputs import SUMMARY, adapter_done


def run_name(job, labeled: Path) -> str:
    """A name that changes whenever the model, the data, the settings or the seed change."""
    from labelwise import config
    from labelwise.models import fingerprint

    settings = config.to_dict(job.train)
    for key in ("name", "max_failures", "cpus_per_worker"):
        settings.pop(key, None)
    h = hashlib.sha256()
    h.update(fingerprint(job.model).encode())
    h.update(json.dumps([settings, job.seed, job.model.chat_template], sort_keys=True).encode())
    h.update(labeled.read_bytes())
    return f"train-{h.hexdigest()[:12]}"


def _resources(job, ray) -> tuple[bool, dict, int]:
    """(use_gpu, resources per worker, torch threads per worker)."""
    cfg = job.train
    device = job.model.device
    gpus = ray.cluster_resources().get("GPU", 0)
    if device == "cuda" and not gpus:
        raise RuntimeError("model.device is cuda but the Ray cluster has no GPU")
    use_gpu = device == "cuda" or (device == "auto" and gpus > 0)
    if cfg.cpus_per_worker is not None:
        cpus = cfg.cpus_per_worker
    elif use_gpu:
        cpus = 1
    else:
        free = int(ray.available_resources().get("CPU", 1))
        cpus = max(1, free // cfg.num_workers)
        if free < cfg.num_workers:
            print(
                f"train: warning: {cfg.num_workers} workers need {cfg.num_workers} CPUs but only "
                f"{free} are free; training waits until they are",
                file=sys.stderr,
            )
    resources = {"CPU": cpus}
    if use_gpu:
        resources["GPU"] = 1
    return use_gpu, resources, cpus


def train(job, hooks: dict | None = None) -> Path:
    """Train (or resume) the LoRA adapter of this run; returns run_dir/adapter.

    ``hooks`` are for tests only (fault injection, recording which ids each worker saw).
    """
    from labelwise.ray_start import init_ray
    from labelwise.training.data import read_labeled

    run_dir = Path(job.run_dir).resolve()
    out = run_dir / runio.ADAPTER
    if adapter_done(run_dir):
        print(f"train: {out} is already trained (delete it to train again)", file=sys.stderr)
        return out
    labeled = run_dir / runio.LABELED
    rows = read_labeled(labeled)
    stats = _truncation(job, rows)
    if stats["n_truncated"]:
        print(
            f"train: {stats['n_truncated']} of {stats['n_examples']} examples are longer than "
            f"max_length={job.train.max_length} tokens and are cut ({stats['n_no_response_tokens']} "
            "lose their whole response)",
            file=sys.stderr,
        )
    ray = init_ray(job.ray)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from labelwise import config
    from labelwise.training.worker import train_loop_per_worker

    use_gpu, resources, threads = _resources(job, ray)
    name = job.train.name or run_name(job, labeled)
    storage = job.ray.storage or str(run_dir / "ray")
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "model": config.to_dict(job.model),
            "train": config.to_dict(job.train),
            "labeled": str(labeled),
            "seed": job.seed,
            "use_gpu": use_gpu,
            "threads": threads,
            "hooks": hooks or {},
        },
        scaling_config=ScalingConfig(num_workers=job.train.num_workers, use_gpu=use_gpu, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=job.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    print(
        f"train: {len(rows)} examples, {job.train.num_workers} worker(s) ({'GPU' if use_gpu else f'CPU x{threads}'}), "
        f"run {name} in {storage}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - start
    return _finish(job, run_dir, result, name, storage, stats, wall, use_gpu)


def _truncation(job, rows) -> dict:
    from labelwise.models import load_tokenizer
    from labelwise.training.data import encode, truncation_stats

    tok = load_tokenizer(job.model)
    return truncation_stats(encode(tok, rows, job.train.max_length, job.model.chat_template))


def _finish(job, run_dir: Path, result, name: str, storage: str, stats: dict, wall: float, use_gpu: bool) -> Path:
    from labelwise import config
    from labelwise.training.outputs import install_adapter, plot_loss, write_log
    from labelwise.training.worker import STATE

    if result.checkpoint is None:
        raise RuntimeError(f"training run {name} finished without a checkpoint ({storage})")
    with result.checkpoint.as_directory() as folder:
        folder = Path(folder)
        state = json.loads((folder / STATE).read_text())
        adapter = install_adapter(folder, run_dir)
        checkpoint_path = result.checkpoint.path
    log = state["log"]
    write_log(run_dir, log)
    plot_loss(run_dir, log, f"LoRA training loss, {len(log)} steps, {job.train.num_workers} worker(s)")
    step_seconds = sum(r["seconds"] for r in log)
    tokens = sum(r["tokens"] for r in log)
    first = log[: max(1, len(log) // 10)]
    last = log[-max(1, len(log) // 10):]
    summary = {
        "adapter": str(adapter),
        "model": job.model.name,
        "n_params": state.get("n_params"),
        "lr": state.get("lr"),
        "lr_source": "train.lr" if job.train.lr else "by model size (train.lr: null)",
        "seed": job.seed,
        "num_workers": job.train.num_workers,
        "device": "cuda" if use_gpu else "cpu",
        **stats,
        "steps": state["step"],
        "epochs": job.train.epochs,
        "first_loss": sum(r["loss"] for r in first) / len(first),
        "last_loss": sum(r["loss"] for r in last) / len(last),
        "tokens_trained": tokens,
        "train_tokens_per_s": tokens / step_seconds if step_seconds else None,
        "fit_wall_seconds": wall,
        "resumed_from_steps": state.get("resumed_from", []),
        "ray_run": {"name": name, "storage": storage, "checkpoint": checkpoint_path},
        "config": config.to_dict(job.train),
    }
    runio.write_json(run_dir / SUMMARY, summary)
    print(
        f"train: done, {state['step']} steps, loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f}; "
        f"adapter in {adapter}",
        file=sys.stderr,
    )
    return adapter


def main(job, args) -> int:
    train(job)
    return 0
