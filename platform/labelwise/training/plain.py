"""A plain single-process training loop (no Ray), on the same numerics as the Ray workers.

The baseline of ``labelwise bench train`` and a reference for tests: same encoding, same
global batches, same loss normalisation and seeding as :mod:`labelwise.training.worker`.
"""

from __future__ import annotations

import time

from labelwise.training import loop
from labelwise.training.data import encode, micro_batches, steps_per_epoch


def train_plain(model_cfg, train_cfg, rows: list[dict], seed: int, device: str | None = None, threads: int | None = None, max_steps: int | None = None):
    """Train a LoRA adapter in this process; returns (peft model, tokenizer, log rows, stats)."""
    import torch

    from labelwise.models import load_model, pick_device

    if threads:
        torch.set_num_threads(threads)
    device = pick_device(device or model_cfg.device)
    model, tok = load_model(model_cfg, device=device)
    n_params = loop.count_parameters(model)
    model = loop.attach_lora(model, train_cfg, seed)
    model.train()
    examples = encode(tok, rows, train_cfg.max_length, model_cfg.chat_template)
    lr = train_cfg.lr or loop.auto_lr(n_params)
    optimizer = loop.make_optimizer(model, lr, train_cfg.weight_decay)
    spe = steps_per_epoch(len(examples), train_cfg.batch_size)
    total = spe * train_cfg.epochs
    log = []
    start = time.perf_counter()
    for step, epoch, i, batch in loop.step_plan(examples, train_cfg, seed):
        if max_steps is not None and step >= max_steps:
            break
        torch.manual_seed(loop.step_seed(seed, step, 0))
        micro = [[examples[j] for j in mb] for mb in micro_batches(batch, batch, 1, train_cfg.micro_batch_size)]
        rate = loop.lr_at(step, total, lr, train_cfg.lr_schedule, train_cfg.warmup_steps)
        s = loop.train_step(model, optimizer, micro, tok.pad_token_id, device, rate)
        log.append({"step": step + 1, "epoch": epoch + (i + 1) / spe, "loss": s.loss, "lr": rate, "examples": s.examples, "tokens": s.tokens, "seconds": s.seconds})
    wall = time.perf_counter() - start
    stats = {"lr": lr, "n_params": n_params, "wall_seconds": wall, "tokens": sum(r["tokens"] for r in log)}
    return model, tok, log, stats
