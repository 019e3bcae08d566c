"""The training numerics, shared by the Ray Train workers and the plain single-process loop.

One optimizer step (:func:`train_step`) takes a worker's share of a global batch, in micro
batches, and normalises the loss by the number of response tokens in the *global* batch, so
that after DDP's gradient averaging the update equals the single-process update on the whole
batch: 1 and W workers follow the same curve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time

from labelwise.training.data import IGNORE, Encoded, collate

LLAMA_ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


def auto_lr(n_params: int) -> float:
    """Learning rate by model size: 5e-4 under 1B parameters, 2e-4 under 5B, else 1e-4.

    Measured on SmolLM2-135M: 5e-4 moves the model much more than the paper's 1e-4 (which
    was chosen for 7B-class models)."""
    if n_params < 1_000_000_000:
        return 5e-4
    if n_params < 5_000_000_000:
        return 2e-4
    return 1e-4


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def attach_lora(model, cfg, seed: int):
    """Wrap ``model`` with a fresh LoRA adapter (seeded init); only the adapter trains."""
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model

    targets = list(cfg.target_modules or LLAMA_ATTENTION)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    absent = [t for t in targets if t not in names]
    if absent:
        raise ValueError(
            f"train.target_modules: {absent} are not modules of this model "
            f"(set train.target_modules to some of: {sorted(n for n in names if 'proj' in n or 'fc' in n)[:20]})"
        )
    torch.manual_seed(seed)
    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft 0.21 reads the alias transformers 5 deprecated
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        model = get_peft_model(model, lora)
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model


def make_optimizer(model, lr: float, weight_decay: float):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str, warmup: int) -> float:
    """Learning rate for 0-based ``step``: linear warmup, then constant or linear decay."""
    if warmup and step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "linear":
        span = max(1, total_steps - warmup)
        return base_lr * max(0.0, 1.0 - (step - warmup) / span)
    return base_lr


def response_loss_sum(model, batch: dict):
    """(sum of token cross-entropies over response tokens, number of those tokens)."""
    import torch

    labels = batch["labels"]
    # Only positions that predict a response token need logits: from the earliest response
    # start in the batch to the end (the vocabulary projection is a fifth of a small model).
    answered = (labels != IGNORE).any(dim=0).nonzero()
    start = max(0, int(answered[0]) - 1) if len(answered) else labels.size(1) - 2
    keep = torch.arange(start, labels.size(1) - 1, device=labels.device)
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep
    ).logits.float()
    labels = labels[:, start + 1 :]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((labels != IGNORE).sum())


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@dataclasses.dataclass
class StepStats:
    loss: float  # mean response-token loss of the global batch
    examples: int  # over all workers
    tokens: int  # non-padding tokens over all workers
    response_tokens: int
    seconds: float


def train_step(
    model,
    optimizer,
    micro: list[list[Encoded]],
    pad_id: int,
    device,
    lr: float,
    all_reduce=None,
    world_size: int = 1,
) -> StepStats:
    """One optimizer step over this worker's micro batches (some may be empty).

    ``all_reduce(list[float]) -> list[float]`` sums over workers (None: single process).
    ``model`` may be DDP-wrapped; gradients synchronise on the last micro batch only.
    """
    import torch

    start = time.perf_counter()
    reduce = all_reduce or (lambda xs: xs)
    local = [
        float(sum(e.n_response for mb in micro for e in mb)),
        float(sum(len(mb) for mb in micro)),
        float(sum(len(e.input_ids) for mb in micro for e in mb)),
    ]
    global_response, global_examples, global_tokens = reduce(local)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss_sum = 0.0
    if global_response > 0:
        scale = world_size / global_response
        for i, mb in enumerate(micro):
            last = i == len(micro) - 1
            sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
            with sync:
                if mb:
                    loss, _ = response_loss_sum(model, _to(collate(mb, pad_id), device))
                    loss_sum += float(loss.detach())
                    (loss * scale).backward()
                else:  # keep DDP's collectives in step with the other workers
                    dummy = torch.full((1, 1), pad_id, dtype=torch.long, device=device)
                    out = model(input_ids=dummy, attention_mask=torch.ones_like(dummy)).logits
                    (out.float().sum() * 0.0).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    (total_loss,) = reduce([loss_sum])
    return StepStats(
        loss=total_loss / global_response if global_response else float("nan"),
        examples=int(global_examples),
        tokens=int(global_tokens),
        response_tokens=int(global_response),
        seconds=time.perf_counter() - start,
    )


def torch_all_reduce(device):
    """Sum a list of floats over the workers of the default process group."""
    import torch
    import torch.distributed as dist

    def reduce(values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    return reduce


def mean_response_loss(model, examples: list[Encoded], pad_id: int, device="cpu", batch_size: int = 8) -> float:
    """Token-weighted mean loss on the response tokens of ``examples`` (no gradient)."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            chunk = [e for e in examples[i : i + batch_size] if e.n_response]
            if not chunk:
                continue
            loss, n = response_loss_sum(model, _to(collate(chunk, pad_id), device))
            total += float(loss)
            count += n
    model.train(was_training)
    return total / count if count else math.nan


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed for dropout in one step: reproducible, and the same after a resume."""
    return (seed * 1_000_003 + step * 7919 + rank) % (2**63)


def step_plan(examples: list, cfg, seed: int):
    """Yield (global_step, epoch, step_in_epoch, global batch of indices) for the whole run
    over ``examples`` (encoded) with the train config ``cfg``."""
    from labelwise.training.data import epoch_batches

    lengths = [len(e.input_ids) for e in examples]
    step = 0
    for epoch in range(cfg.epochs):
        for i, batch in enumerate(epoch_batches(len(examples), cfg.batch_size, seed, epoch, lengths, cfg.length_grouping)):
            yield step, epoch, i, batch
            step += 1
