"""``labelwise train``: LoRA-finetune the base model on labeled.jsonl with Ray Train.

    labelwise train CONFIG [--set train.num_workers=2 ...]

A TorchTrainer (Train V2) runs :func:`labelwise.training.worker.train_loop_per_worker` on
``train.num_workers`` workers. Checkpoints (adapter only) go to RayConfig.storage or
run_dir/ray, under a run name derived from model, data, settings and seed (or
``train.name``): starting the same job again resumes from the last checkpoint, and a worker
that dies is replaced and continues from it (``train.max_failures``). The result:
run_dir/adapter (loads with PeftModel.from_pretrained), train_log.csv, loss.png and
train_summary.json, staged and committed as one unit with a manifest (labelwise.manifest). A
run folder whose manifest matches labeled.jsonl, the model's files, the settings that change
what is learned and the seed is left as it is; anything else trains again, and stderr says
what changed (the old adapter stays in place until the new one is committed).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path

from labelwise import contracts, runio
from labelwise.contracts import TRAIN_DATA


# train.* keys that do not change what is learned (where and how robustly it runs)
NOT_IN_FINGERPRINT = ("name", "max_failures", "cpus_per_worker", "threads")

HELP = "LoRA-finetune the base model on labeled.jsonl with Ray Train"  # the command's one-line help


def run_name(job, labeled: Path, init_adapter: Path | None = None) -> str:
    """A name that changes whenever the model, the data, the settings or the seed change.

    It is also the run's fingerprint in train_summary.json (recorded even when ``train.name``
    names the Ray run), which tells a finished adapter of these inputs from a stale one."""
    from labelwise import config
    from labelwise.models import fingerprint

    settings = config.to_dict(job.train)
    for key in NOT_IN_FINGERPRINT:
        settings.pop(key, None)
    h = hashlib.sha256()
    h.update(fingerprint(job.model).encode())
    h.update(json.dumps([settings, job.seed, job.model.chat_template], sort_keys=True).encode())
    h.update(labeled.read_bytes())
    if init_adapter is not None:  # a warm start (rounds.training: continue) learns something else
        from labelwise.manifest import digest

        h.update(f"init_adapter {digest(init_adapter)}".encode())
    return f"train-{h.hexdigest()[:12]}"


def loss_windows(log: list[dict]) -> tuple[list[dict], list[dict], str]:
    """The steps whose mean loss is reported as first and last: the first and the last epoch
    (one step's loss swings with its batch), or the first and last tenth of a one-epoch run."""
    epoch = [math.ceil(r["epoch"] - 1e-9) for r in log]  # a step ending epoch e (1-based) belongs to e
    if len(set(epoch)) >= 2:
        first = [r for r, e in zip(log, epoch) if e == min(epoch)]
        last = [r for r, e in zip(log, epoch) if e == max(epoch)]
        return first, last, "mean over the first and the last epoch"
    k = max(1, len(log) // 10)
    return log[:k], log[-k:], f"mean over the first and the last {k} step(s)"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def check_checkpoints(storage: str, name: str, fingerprint: str) -> None:
    """Refuse to resume Ray run ``name`` from checkpoints of other inputs.

    A derived name is the fingerprint itself, so only an explicit ``train.name`` can meet
    checkpoints of a different model, data or settings; starting from them would quietly mix
    two trainings. Only a local storage folder can be looked into."""
    from labelwise.training.worker import STATE

    if "://" in storage:
        return
    folder = Path(storage) / name
    if not folder.is_dir():
        return
    found = []
    for state in folder.glob(f"checkpoint_*/{STATE}"):
        try:
            found.append(json.loads(state.read_text()))
        except (OSError, ValueError):
            continue
    if not found:
        return
    latest = max(found, key=lambda st: st.get("step", 0))
    recorded = latest.get("fingerprint")
    if recorded is None:
        print(
            f"train: warning: run {name} in {storage} has checkpoints that do not record their "
            "inputs; resuming from them as they are",
            file=sys.stderr,
        )
    elif recorded != fingerprint:
        raise RuntimeError(
            f"train.name={name!r}: {folder} holds checkpoints of another training ({recorded}; this "
            f"model, data and settings are {fingerprint}). Resuming would mix the two: choose another "
            "train.name, set it to null (a name derived from the inputs), or delete that folder"
        )


def _resources(job, ray) -> tuple[bool, dict, int]:
    """(use_gpu, resources per worker, torch threads per worker) on the running cluster."""
    from labelwise.ray_start import started_locally

    return worker_resources(
        job.train,
        job.model.device,
        gpus=ray.cluster_resources().get("GPU", 0),
        free_cpus=int(ray.available_resources().get("CPU", 1)),
        can_grow=not started_locally(),
    )


def worker_resources(cfg, device: str, gpus: float, free_cpus: int, can_grow: bool) -> tuple[bool, dict, int]:
    """(use_gpu, resources per worker, torch threads per worker).

    ``device: auto`` trains on GPUs when the cluster has one per worker, else on CPU;
    ``cuda`` always asks for GPUs: on a cluster that can grow the autoscaler adds GPU nodes
    for the pending workers; on a local Ray without any it is an error at once."""
    if device == "cuda" and not gpus and not can_grow:
        raise RuntimeError("model.device is cuda but this local Ray has no GPU")
    use_gpu = device == "cuda" or (device == "auto" and gpus >= cfg.num_workers)
    if device == "auto" and 0 < gpus < cfg.num_workers:
        print(
            f"train: {cfg.num_workers} workers but {gpus:g} GPU(s) in the cluster: training on CPU "
            "(set model.device: cuda to wait for GPU nodes instead)",
            file=sys.stderr,
        )
    if cfg.cpus_per_worker is not None:
        cpus = cfg.cpus_per_worker
    elif use_gpu:
        cpus = 1
    else:
        cpus = max(1, free_cpus // cfg.num_workers)
        if free_cpus < cfg.num_workers:
            print(
                f"train: warning: {cfg.num_workers} workers need {cfg.num_workers} CPUs but only "
                f"{free_cpus} are free; training waits until they are",
                file=sys.stderr,
            )
    resources = {"CPU": cpus}
    if use_gpu:
        resources["GPU"] = 1
    return use_gpu, resources, cfg.threads or cpus


STAGE = "train"


def outputs(labeled: dict | None = None) -> list[str]:
    """With ``labeled`` files given (a round), the labels trained on are an output too."""
    return [contracts.ADAPTER, contracts.TRAIN_LOG, contracts.LOSS_PNG, contracts.TRAIN_SUMMARY] + ([TRAIN_DATA] if labeled is not None else [])


def inputs(job, labeled: dict | None = None, init_adapter: Path | None = None) -> dict:
    """labeled.jsonl (or the ``labeled`` files), the model's local folder (a hub name has
    none: see settings) and the adapter a warm start begins from."""
    from labelwise.models import model_inputs

    found = dict(labeled) if labeled is not None else {contracts.LABELED: Path(job.run_dir) / contracts.LABELED}
    found.update(model_inputs(job.model.name))
    return {**found, "init_adapter": Path(init_adapter)} if init_adapter is not None else found


def settings(job) -> dict:
    """What changes the adapter: the train settings (without those of NOT_IN_FINGERPRINT),
    the seed and the model settings (its files are an input)."""
    from labelwise import config

    train = {k: v for k, v in config.to_dict(job.train).items() if k not in NOT_IN_FINGERPRINT}
    model = {k: v for k, v in config.to_dict(job.model).items() if k != "device"}
    return {"train": train, "seed": job.seed, "model": model}


def _stderr(*args) -> None:
    print(*args, file=sys.stderr)


def train(job, hooks: dict | None = None, log=_stderr, labeled: dict | None = None,
          init_adapter: Path | None = None) -> Path:
    """Train (or resume) the LoRA adapter of this run; returns run_dir/adapter.

    ``hooks`` are for tests only (fault injection, recording which ids each worker saw).
    A round of labelwise.rounds passes ``labeled`` ({name: labeled.jsonl}, concatenated in
    this order into train_data.jsonl) and, warm-starting, ``init_adapter``.
    """
    from labelwise import manifest

    run_dir = Path(job.run_dir).resolve()
    out = run_dir / contracts.ADAPTER
    kept = manifest.run_stage(run_dir, STAGE, inputs(job, labeled, init_adapter), settings(job), outputs(labeled),
                              lambda staged: fit(job, run_dir, staged, hooks, labeled, init_adapter), log=log) is None
    if kept:
        log(f"train: {out} is already trained on these inputs (delete it to train again)")
    return out


def fit(job, run_dir: Path, out_dir: Path, hooks: dict | None = None, files: dict | None = None,
        init_adapter: Path | None = None) -> None:
    """Train (resuming the Ray run's last checkpoint) and write the outputs into out_dir."""
    from labelwise.ray_start import init_ray
    from labelwise.training.data import read_labeled

    labeled = run_dir / contracts.LABELED
    if files is not None:  # a round: these labels, in this order, are the training data
        labeled = out_dir / TRAIN_DATA
        runio.write_jsonl(labeled, [row for path in files.values() for row in read_labeled(Path(path))])
    rows = read_labeled(labeled)
    fingerprint = run_name(job, labeled, init_adapter)
    name = job.train.name or fingerprint
    storage = job.ray.storage or str(run_dir / "ray")
    check_checkpoints(storage, name, fingerprint)
    stats = _truncation(job, rows)
    if stats["n_truncated"]:
        print(
            f"train: {stats['n_truncated']} of {stats['n_examples']} examples are longer than "
            f"max_length={job.train.max_length} tokens: {stats['n_prompt_trimmed']} lose the start of "
            f"their prompt, {stats['n_response_trimmed']} the end of their response (longer than "
            f"max_length beside the prompt template); {stats['n_no_response_tokens']} have no response "
            f"tokens left ({stats['tokens_cut']} tokens cut in all)",
            file=sys.stderr,
        )
    ray = init_ray(job.ray)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from labelwise import config
    from labelwise.training.worker import train_loop_per_worker

    use_gpu, resources, threads = _resources(job, ray)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "model": config.to_dict(job.model),
            "train": config.to_dict(job.train),
            "labeled": str(labeled),
            "init_adapter": None if init_adapter is None else str(init_adapter),
            "seed": job.seed,
            "fingerprint": fingerprint,
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
    _finish(job, run_dir, out_dir, result, name, storage, stats, wall, use_gpu, fingerprint, labeled, init_adapter)


def _truncation(job, rows) -> dict:
    from labelwise.models import load_tokenizer
    from labelwise.training.data import encode, truncation_stats

    tok = load_tokenizer(job.model)
    return truncation_stats(encode(tok, rows, job.train.max_length, job.model.chat_template))


def _finish(job, run_dir: Path, out_dir: Path, result, name: str, storage: str, stats: dict, wall: float,
            use_gpu: bool, fingerprint: str, labeled: Path, init_adapter: Path | None = None) -> None:
    """The adapter of the last checkpoint, the log, the loss plot and the summary, into out_dir."""
    from labelwise import config, manifest
    from labelwise.models import fingerprint as model_fingerprint
    from labelwise.training.outputs import install_adapter, plot_loss, write_log
    from labelwise.training.worker import STATE

    if result.checkpoint is None:
        raise RuntimeError(f"training run {name} finished without a checkpoint ({storage})")
    with result.checkpoint.as_directory() as folder:
        folder = Path(folder)
        state = json.loads((folder / STATE).read_text())
        if state.get("fingerprint", fingerprint) != fingerprint:
            raise RuntimeError(
                f"training run {name} ended on a checkpoint of other inputs ({state['fingerprint']}, "
                f"expected {fingerprint}); {contracts.ADAPTER} is left as it was"
            )
        install_adapter(folder, out_dir)
        checkpoint_path = result.checkpoint.path
    manifest.fault(STAGE)
    adapter = run_dir / contracts.ADAPTER
    log = state["log"]
    write_log(out_dir, log)
    manifest.fault(STAGE)
    plot_loss(out_dir, log, f"LoRA training loss, {len(log)} steps, {job.train.num_workers} worker(s)")
    manifest.fault(STAGE)
    step_seconds = sum(r["seconds"] for r in log)
    tokens = sum(r["tokens"] for r in log)
    first, last, window = loss_windows(log)
    summary = {
        "adapter": str(adapter),
        "fingerprint": fingerprint,
        "model": job.model.name,
        "model_fingerprint": model_fingerprint(job.model),
        "labeled_sha256": _sha256(labeled),
        "init_adapter": None if init_adapter is None else str(init_adapter),
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
        "loss_window": window,
        "tokens_trained": tokens,
        "train_tokens_per_s": tokens / step_seconds if step_seconds else None,
        "fit_wall_seconds": wall,
        "resumed_from_steps": state.get("resumed_from", []),
        "ray_run": {"name": name, "storage": storage, "checkpoint": checkpoint_path},
        "config": config.to_dict(job.train),
    }
    runio.write_json(out_dir / contracts.TRAIN_SUMMARY, summary)
    manifest.fault(STAGE)
    print(
        f"train: done, {state['step']} steps, loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f} "
        f"({summary['loss_window']}); "
        f"adapter in {adapter}",
        file=sys.stderr,
    )


def main(job, args) -> int:
    train(job)
    return 0
