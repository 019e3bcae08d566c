"""The Ray Train worker function: LoRA finetuning with DDP, adapter-only checkpoints.

Runs on every worker of a TorchTrainer. The process group (gloo on CPU, NCCL on GPU) is set
up by Ray Train. Worker ``r`` of ``W`` computes ``batch[r::W]`` of each global batch
(:mod:`labelwise.training.data`). A checkpoint is the LoRA adapter (peft's
save_pretrained), the adapter's optimizer state and ``train_state.json`` (step, epoch,
loss log): never the base weights. On start, the latest checkpoint (from a replaced worker
group or a restarted run of the same name) is loaded and training continues after its step.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

STATE = "train_state.json"
OPTIMIZER = "optimizer.pt"


def train_loop_per_worker(config: dict) -> None:
    import ray.train
    import torch

    from labelwise.models import ModelConfig, load_model
    from labelwise.training import loop
    from labelwise.training.config import TrainConfig
    from labelwise.training.data import encode, micro_batches, read_labeled, steps_per_epoch, worker_share

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(config["threads"])))
    model_cfg = ModelConfig(**config["model"])
    cfg = TrainConfig(**config["train"])
    seed = int(config["seed"])
    hooks = config.get("hooks") or {}

    if config["use_gpu"]:
        import ray.train.torch

        device = ray.train.torch.get_device()
    else:
        device = torch.device("cpu")
    model, tok = load_model(model_cfg, device=device.type)
    n_params = loop.count_parameters(model)
    model = loop.attach_lora(model, cfg, seed)
    if config.get("init_adapter"):  # a warm start (rounds.training: continue): the previous round's adapter
        _load_weights(Path(config["init_adapter"]), model)
    model.to(device)
    model.train()
    lr = cfg.lr or loop.auto_lr(n_params)
    optimizer = loop.make_optimizer(model, lr, cfg.weight_decay)

    examples = encode(tok, read_labeled(config["labeled"]), cfg.max_length, model_cfg.chat_template)
    spe = steps_per_epoch(len(examples), cfg.batch_size)
    total_steps = spe * cfg.epochs
    state = {"step": 0, "log": [], "resumed_from": [], "lr": lr, "n_params": n_params, "fingerprint": config.get("fingerprint")}

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = _load_checkpoint(Path(folder), model, optimizer)
        state["resumed_from"].append(state["step"])

    if world > 1:
        import ray.train.torch

        ddp = ray.train.torch.prepare_model(model, move_to_device=False, parallel_strategy="ddp")
        all_reduce = loop.torch_all_reduce(device)
    else:
        ddp, all_reduce = model, None

    pending = []  # log rows since the last report
    last_line = time.monotonic()
    for step, epoch, i, batch in loop.step_plan(examples, cfg, seed):
        if step < state["step"]:
            continue  # done before the checkpoint we resumed from
        _maybe_fail(hooks, step, rank)
        share = worker_share(batch, rank, world)
        _maybe_record(hooks, rank, epoch, step, [examples[j].id for j in share])
        micro = [[examples[j] for j in mb] for mb in micro_batches(share, batch, world, cfg.micro_batch_size)]
        torch.manual_seed(loop.step_seed(seed, step, rank))
        rate = loop.lr_at(step, total_steps, lr, cfg.lr_schedule, cfg.warmup_steps)
        s = loop.train_step(ddp, optimizer, micro, tok.pad_token_id, device, rate, all_reduce, world)
        row = {
            "step": step + 1,
            "epoch": round(epoch + (i + 1) / spe, 6),
            "loss": s.loss,
            "lr": rate,
            "examples": s.examples,
            "tokens": s.tokens,
            "response_tokens": s.response_tokens,
            "seconds": round(s.seconds, 6),
            "time": time.time(),
        }
        state["log"].append(row)
        pending.append(row)
        state["step"] = step + 1
        end_of_epoch = i == spe - 1
        due = cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0
        if rank == 0 and not (end_of_epoch or due) and time.monotonic() - last_line >= PROGRESS_SECONDS:
            say(f"train: {progress_line(state['log'], state['step'], total_steps)}")
            last_line = time.monotonic()
        if end_of_epoch or due:
            metrics = {
                "step": state["step"],
                "epoch": row["epoch"],
                "loss": sum(r["loss"] for r in pending) / len(pending),
                "tokens_per_s": sum(r["tokens"] for r in pending) / max(1e-9, sum(r["seconds"] for r in pending)),
            }
            pending = []
            if rank == 0:
                say(
                    f"train: epoch {row['epoch']:.2f} done, {progress_line(state['log'], state['step'], total_steps)}, "
                    f"epoch loss {metrics['loss']:.4f}"
                )
                last_line = time.monotonic()
            _report(metrics, model, optimizer, state, rank)


def say(line: str) -> None:
    """One progress line on the worker's stdout, which Ray forwards to the driver. Not plain
    print: Ray Train V2 patches print in its workers to both echo and log each line, so every
    line reached the driver twice."""
    import sys

    sys.__stdout__.write(line + "\n")
    sys.__stdout__.flush()


PROGRESS_SECONDS = 20.0  # a progress line at least this often between epoch ends


def progress_line(log: list[dict], step: int, total: int) -> str:
    """``step 7/30 (23%), loss 3.1200, 65 tokens/s, about 2m05s left`` from the step log
    (the time left from this run's steps so far; steps done before a resume are not timed)."""
    from labelwise.progress import fmt_seconds

    timed = [r for r in log[-50:] if r.get("seconds")]
    per_step = sum(r["seconds"] for r in timed) / len(timed) if timed else 0.0
    rate = sum(r["tokens"] for r in timed) / max(1e-9, sum(r["seconds"] for r in timed)) if timed else 0.0
    loss = log[-1]["loss"] if log else float("nan")
    left = f", about {fmt_seconds(per_step * (total - step))} left" if per_step and step < total else ""
    return f"step {step}/{total} ({100 * step // max(1, total)}%), loss {loss:.4f}, {rate:.0f} tokens/s{left}"


def _report(metrics: dict, model, optimizer, state: dict, rank: int) -> None:
    import ray.train
    import torch

    if rank != 0:  # every worker reports (it is a barrier); rank 0 alone saves
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="lw-ckpt-") as folder:
        model.save_pretrained(folder)
        torch.save(optimizer.state_dict(), os.path.join(folder, OPTIMIZER))
        with open(os.path.join(folder, STATE), "w") as f:
            json.dump(state, f)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(folder),
            checkpoint_dir_name=f"checkpoint_step{state['step']:06d}",
        )


def _load_weights(folder: Path, model) -> None:
    """The LoRA weights of an adapter folder (a checkpoint, or an adapter saved by peft)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))


def _load_checkpoint(folder: Path, model, optimizer) -> dict:
    import torch

    _load_weights(folder, model)
    optimizer.load_state_dict(torch.load(folder / OPTIMIZER, map_location="cpu", weights_only=True))
    return json.loads((folder / STATE).read_text())


def _maybe_fail(hooks: dict, step: int, rank: int) -> None:
    """Test hook: the process of worker ``rank`` dies at ``step`` once (guarded by a marker file).

    ``{"step": N, "rank": R, "marker": PATH, "delay_s": S}`` (sleeps S seconds, then exits)."""
    fail = hooks.get("fail")
    if not fail or fail["step"] != step or fail.get("rank", 0) != rank:
        return
    marker = Path(fail["marker"])
    if marker.exists():
        return
    marker.write_text(f"worker {rank} killed at step {step} (pid {os.getpid()})\n")
    # Ray Train's controller collects reports every couple of seconds; a crash right after
    # a report could beat it to the checkpoint. Real crashes come later than that.
    time.sleep(float(fail.get("delay_s", 0)))
    os._exit(1)


def _maybe_record(hooks: dict, rank: int, epoch: int, step: int, ids: list[str]) -> None:
    """Test hook: append the ids this worker trains on at each step to a per-rank file."""
    folder = hooks.get("record_ids")
    if not folder:
        return
    with open(Path(folder) / f"rank{rank}.jsonl", "a") as f:
        f.write(json.dumps({"epoch": epoch, "step": step, "ids": ids}) + "\n")
