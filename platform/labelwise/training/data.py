"""Training data: labeled.jsonl -> token ids with a response mask, and who sees what.

* :func:`encode` renders each example with :func:`labelwise.prompting.render_example` (the
  text scoring and evaluation use), tokenizes prompt and response separately so the mask is
  exact, and fits it into ``max_length`` without losing the answer (:func:`fit`): the
  prompt's text is cut from its left, between the template's head (system turn, user
  marker) and its tail (the assistant marker), so the whole response stays; only a response
  that cannot fit beside the template frame is cut, keeping its start. Each kind of cut is
  counted (:func:`truncation_stats`, reported in train_summary.json).
* :func:`epoch_batches` / :func:`worker_share`: each epoch is one seeded permutation cut
  into global batches; worker ``r`` of ``W`` takes ``batch[r::W]``. Every example is seen
  exactly once per epoch over all workers (no duplicated padding), and 1 and W workers step
  through the same global batches. ``train.length_grouping`` sorts windows of the permutation
  by length before cutting them, so batches waste less compute on padding.
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
    truncated: bool  # cut to fit max_length (prompt, response or both)
    prompt_trimmed: bool = False  # prompt text cut from its left (the template frame kept)
    response_trimmed: bool = False  # response cut at its end (it did not fit on its own)
    n_cut: int = 0  # tokens dropped

    @property
    def n_response(self) -> int:
        return max(0, len(self.input_ids) - self.n_prompt)


def read_labeled(path: str | Path) -> list[dict]:
    """labeled.jsonl (labelwise.contracts), which must hold at least one example."""
    from labelwise import contracts

    rows = contracts.read_labeled(path)
    if not rows:
        raise ValueError(f"{path}: no labeled examples to train on")
    return rows


SENTINEL = "\u2063LABELWISE_PROMPT\u2063"  # stands for the prompt text when locating the template frame


def template_frame(tokenizer, chat_template: bool = True) -> tuple[str, str] | None:
    """(head, tail): the rendered prompt's text before and after the user's prompt text, or
    None when the template does not show the text verbatim exactly once."""
    from labelwise.prompting import render_prompt

    text = render_prompt(tokenizer, SENTINEL, chat_template)
    if text.count(SENTINEL) != 1:
        return None
    head, tail = text.split(SENTINEL)
    return head, tail


def fit(
    prompt_ids: list[int],
    response_ids: list[int],
    max_length: int,
    frame: tuple[list[int], list[int]] | None = None,
    content_ids: list[int] | None = None,
) -> tuple[list[int], list[int], bool, bool]:
    """Cut an example to ``max_length`` tokens; returns (prompt, response, prompt_trimmed,
    response_trimmed).

    The response has priority. With ``frame`` (the template's head and tail tokens) and
    ``content_ids`` (the prompt text's tokens), the prompt becomes head + the last tokens of
    the text that fit + tail, so the model still sees the template and the assistant
    marker right before the answer. When the response does not fit beside the frame, the
    prompt is the frame alone and the response keeps its first tokens. Without a usable frame
    (the template rewrites the text, or the frame alone fills max_length) the prompt is
    left-trimmed, keeping at least its last max_length // 4 tokens when the response is too
    long (and the whole response whenever it fits beside those)."""
    if len(prompt_ids) + len(response_ids) <= max_length:
        return list(prompt_ids), list(response_ids), False, False
    if frame is not None and content_ids is not None and len(frame[0]) + len(frame[1]) < max_length:
        head, tail = list(frame[0]), list(frame[1])
        room = max_length - len(head) - len(tail)  # for prompt text and response
        if len(response_ids) <= room:
            keep = min(room - len(response_ids), len(content_ids))
            kept = list(content_ids[len(content_ids) - keep :]) if keep else []
            return head + kept + tail, list(response_ids), keep < len(content_ids), False
        return head + tail, list(response_ids[:room]), len(content_ids) > 0, True
    reserve = min(len(prompt_ids), max_length // 4)
    keep = min(len(prompt_ids), max(max_length - len(response_ids), reserve))
    prompt = list(prompt_ids[len(prompt_ids) - keep :]) if keep else []
    response = list(response_ids[: max_length - keep])
    return prompt, response, keep < len(prompt_ids), len(response) < len(response_ids)


def encode(tokenizer, rows: list[dict], max_length: int, chat_template: bool = True) -> list[Encoded]:
    from labelwise.prompting import render_example

    frame_text = template_frame(tokenizer, chat_template)
    frame_ids = None
    if frame_text is not None:
        frame_ids = (
            list(tokenizer(frame_text[0])["input_ids"]),
            list(tokenizer(frame_text[1], add_special_tokens=False)["input_ids"]),
        )
    out = []
    for row in rows:
        head, full = render_example(tokenizer, row["prompt"], row["response"], chat_template)
        prompt_ids = list(tokenizer(head)["input_ids"])
        response_ids = list(tokenizer(full[len(head):], add_special_tokens=False)["input_ids"])
        total = len(prompt_ids) + len(response_ids)
        if total <= max_length:
            out.append(Encoded(str(row["id"]), prompt_ids + response_ids, len(prompt_ids), False))
            continue
        content_ids = None
        if frame_text is not None and head == frame_text[0] + row["prompt"] + frame_text[1]:
            content_ids = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        prompt, response, p_cut, r_cut = fit(
            prompt_ids, response_ids, max_length, frame_ids if content_ids is not None else None, content_ids
        )
        ids = prompt + response
        out.append(Encoded(str(row["id"]), ids, len(prompt), p_cut or r_cut, p_cut, r_cut, max(0, total - len(ids))))
    return out


def truncation_stats(examples: list[Encoded]) -> dict:
    return {
        "n_examples": len(examples),
        "n_truncated": sum(e.truncated for e in examples),
        "n_prompt_trimmed": sum(e.prompt_trimmed for e in examples),
        "n_response_trimmed": sum(e.response_trimmed for e in examples),
        "n_no_response_tokens": sum(e.n_response == 0 for e in examples),
        "tokens_cut": sum(e.n_cut for e in examples),
        "tokens_per_epoch": sum(len(e.input_ids) for e in examples),
        "response_tokens_per_epoch": sum(e.n_response for e in examples),
    }


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: list[int] | None = None, grouping: int = 0
) -> list[list[int]]:
    """Global batches of example indices for one epoch (one may be short).

    ``grouping`` 0: consecutive cuts of the epoch's permutation. ``grouping`` k > 0 (with
    ``lengths``): the permutation is cut into windows of k batches, each window is sorted by
    length (longest first) before it is cut, and the batches' order is then shuffled, so that
    a batch pads to a length close to its own examples' (fewer padded tokens, less random
    batches). Either way every index appears exactly once.
    """
    order = epoch_order(n, seed, epoch)
    if grouping <= 0 or lengths is None:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(lengths) != n:
        raise ValueError(f"lengths has {len(lengths)} entries for {n} examples")
    window = batch_size * grouping
    batches = []
    for w in range(0, n, window):
        part = sorted(order[w : w + window], key=lambda i: -lengths[i])  # stable: ties keep the permutation's order
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    shuffled = epoch_order(len(batches), seed + 1, epoch)
    return [batches[i] for i in shuffled]


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
