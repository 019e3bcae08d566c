"""Training data: labeled.jsonl -> token ids with a response mask, and who sees what.

* :func:`encode` renders each example with :func:`labelwise.prompting.render_example` (the
  text scoring and evaluation use), tokenizes prompt and response separately so the mask is
  exact, and cuts at ``max_length`` (counted: ``truncated``; an example whose response is cut
  away entirely still takes no loss and is counted too).
* :func:`epoch_batches` / :func:`worker_share`: each epoch is one seeded permutation cut
  into global batches; worker ``r`` of ``W`` takes ``batch[r::W]``. Every example is seen
  exactly once per epoch over all workers (no duplicated padding), and 1 and W workers step
  through the same global batches.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

IGNORE = -100


@dataclasses.dataclass(frozen=True)
class Encoded:
    id: str
    input_ids: list[int]
    n_prompt: int  # tokens before the response (masked out of the loss)
    truncated: bool  # cut at max_length

    @property
    def n_response(self) -> int:
        return max(0, len(self.input_ids) - self.n_prompt)


def read_labeled(path: str | Path) -> list[dict]:
    from labelwise import runio

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `labelwise annotate` first")
    rows = runio.read_jsonl(path)
    for i, row in enumerate(rows, 1):
        for key in ("id", "prompt", "response"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{path}: record {i}: {key} must be a string")
    if not rows:
        raise ValueError(f"{path}: no labeled examples to train on")
    return rows


def encode(tokenizer, rows: list[dict], max_length: int, chat_template: bool = True) -> list[Encoded]:
    from labelwise.prompting import render_example

    out = []
    for row in rows:
        head, full = render_example(tokenizer, row["prompt"], row["response"], chat_template)
        prompt_ids = tokenizer(head)["input_ids"]
        response_ids = tokenizer(full[len(head):], add_special_tokens=False)["input_ids"]
        ids = list(prompt_ids) + list(response_ids)
        truncated = len(ids) > max_length
        out.append(Encoded(str(row["id"]), ids[:max_length], min(len(prompt_ids), max_length), truncated))
    return out


def truncation_stats(examples: list[Encoded]) -> dict:
    return {
        "n_examples": len(examples),
        "n_truncated": sum(e.truncated for e in examples),
        "n_no_response_tokens": sum(e.n_response == 0 for e in examples),
        "tokens_per_epoch": sum(len(e.input_ids) for e in examples),
        "response_tokens_per_epoch": sum(e.n_response for e in examples),
    }


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Global batches of example indices for one epoch (the last may be short)."""
    order = epoch_order(n, seed, epoch)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def worker_share(batch: list[int], rank: int, world_size: int) -> list[int]:
    """The part of a global batch that worker ``rank`` computes (may be empty)."""
    return batch[rank::world_size]


def micro_batches(share: list[int], batch: list[int], world_size: int, micro: int | None) -> list[list[int]]:
    """Cut a worker's share into micro batches; every worker gets the same count (some may be
    empty), so that gradient synchronisation lines up across workers."""
    largest = -(-len(batch) // world_size)
    micro = micro or max(1, largest)
    count = max(1, -(-largest // micro))
    return [share[i * micro : (i + 1) * micro] for i in range(count)]


def collate(examples: list[Encoded], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels (prompt and padding = -100)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, e.n_prompt : n] = torch.tensor(e.input_ids[e.n_prompt :], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
