"""Greedy decoding with a manual KV-cache loop that streams uncertainty metrics.

Per generated token we need the chosen token's log-probability, the entropy of the next-token
distribution and the top-1 minus top-2 probability margin. ``model.generate`` with
``output_scores`` would keep a [steps, batch, vocab] tensor; here each step's [batch, vocab]
logits are reduced to four [batch] vectors and dropped, so memory does not grow with
vocab x steps (only the KV cache grows, as in any generation).

Conventions: left padding with explicit position ids (the same positions an unpadded prompt
would get); the answer stops at max_new_tokens or at a stop token (EOS), and the stop token
counts as part of the answer (its probability is the model's confidence that it is done).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


def kv_cache_argument(model) -> str:
    """The forward() keyword of the KV cache: ``cache`` from transformers 5.23 on (where
    ``past_key_values`` is deprecated, and gone in 5.40), ``past_key_values`` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def kv_cache_of(out):
    """The KV cache a forward pass returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def step_metrics(logits: torch.Tensor):
    """Greedy token, its log-prob, the entropy and the top1-top2 margin of [B, V] logits.

    Computed in float32 whatever the model dtype, in a few fused passes over the vocabulary.
    Returns four [B] tensors.
    """
    x = logits.float()
    top2 = torch.topk(x, 2, dim=-1).values
    token = torch.argmax(x, dim=-1)  # the same tie-breaking as generate's greedy search
    # z = x - max: the chosen token has z = 0; -inf logits become -1e4 (exp gives exactly 0).
    z = (x - top2[:, :1]).clamp_(min=-1e4)
    e = torch.exp(z)
    s = e.sum(dim=-1)
    log_s = torch.log(s)
    logprob = -log_s  # log p(chosen) = 0 - logsumexp(z)
    entropy = log_s - torch.linalg.vecdot(e, z) / s  # H = lse - E_p[z]
    margin = (1.0 - torch.exp(top2[:, 1] - top2[:, 0])) / s  # p1 - p2
    return token, logprob, entropy, margin


@dataclasses.dataclass
class GreedyResult:
    """Per-prompt results of one batch (numpy arrays of length B, tokens as lists)."""

    tokens: list[list[int]]
    logconf: np.ndarray
    n_tokens: np.ndarray
    mean_logprob: np.ndarray
    mean_entropy: np.ndarray
    mean_margin: np.ndarray
    min_margin: np.ndarray
    eos: np.ndarray
    embedding: np.ndarray | None  # [B, H] float32


def left_pad(input_ids: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in input_ids)
    ids = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for i, seq in enumerate(input_ids):
        if len(seq) == 0:
            raise ValueError("empty prompt token list")
        ids[i, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[i, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def penultimate_layer(model):
    """The decoder layer whose output is hidden_states[-2] (None when it cannot be found)."""
    try:
        layers = model.get_decoder().layers
    except AttributeError:
        layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or len(layers) < 2:
        return None
    return layers[-2]


@torch.inference_mode()
def greedy_score(
    model,
    input_ids: list[list[int]],
    *,
    max_new_tokens: int,
    stop_ids: list[int],
    pad_id: int,
    embeddings: bool = False,
) -> GreedyResult:
    """Greedy-decode a batch of prompts (token id lists) and score every generated token."""
    device = next(model.parameters()).device
    ids, mask = left_pad(input_ids, pad_id, device)
    batch = ids.shape[0]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)

    captured = {}
    handle = None
    want_hidden = False
    if embeddings:
        layer = penultimate_layer(model)
        if layer is not None:

            def hook(_module, _args, output):
                hidden = output[0] if isinstance(output, (tuple, list)) else output
                m = mask[:, :, None].to(torch.float32)
                captured["emb"] = (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1)

            handle = layer.register_forward_hook(hook)
        else:
            want_hidden = True
    try:
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=want_hidden,
        )
    finally:
        if handle is not None:
            handle.remove()
    if want_hidden:
        hidden = out.hidden_states[-2].float()
        m = mask[:, :, None].to(torch.float32)
        captured["emb"] = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    past = kv_cache_of(out)
    logits = out.logits[:, -1, :]
    del out
    cache_arg = kv_cache_argument(model)

    stop = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    ended = torch.zeros(batch, dtype=torch.bool, device=device)
    n = torch.zeros(batch, dtype=torch.long, device=device)
    sum_lp = torch.zeros(batch, dtype=torch.float64, device=device)
    sum_ent = torch.zeros(batch, dtype=torch.float64, device=device)
    sum_mar = torch.zeros(batch, dtype=torch.float64, device=device)
    min_mar = torch.full((batch,), float("inf"), dtype=torch.float64, device=device)
    pad = torch.full((batch,), pad_id, dtype=torch.long, device=device)
    chosen = []
    next_pos = positions[:, -1:] + 1
    for step in range(max_new_tokens):
        token, lp, ent, mar = step_metrics(logits)
        active = ~done
        token = torch.where(active, token, pad)
        chosen.append(token)
        a = active.to(torch.float64)
        n += active.long()
        sum_lp += lp.double() * a
        sum_ent += ent.double() * a
        sum_mar += mar.double() * a
        min_mar = torch.where(active, torch.minimum(min_mar, mar.double()), min_mar)
        hit = active & torch.isin(token, stop)
        ended |= hit
        done |= hit
        if step == max_new_tokens - 1 or bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_pos,
            use_cache=True,
            **{cache_arg: past},
        )
        past = kv_cache_of(out)
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1

    steps = torch.stack(chosen, dim=1).cpu().numpy()
    n_np = n.cpu().numpy()
    tokens = [steps[i, : n_np[i]].tolist() for i in range(batch)]
    denom = n.clamp(min=1).double()
    emb = captured.get("emb")
    return GreedyResult(
        tokens=tokens,
        logconf=sum_lp.cpu().numpy(),
        n_tokens=n_np.astype(np.int64),
        mean_logprob=(sum_lp / denom).cpu().numpy(),
        mean_entropy=(sum_ent / denom).cpu().numpy(),
        mean_margin=(sum_mar / denom).cpu().numpy(),
        min_margin=min_mar.cpu().numpy(),
        eos=ended.cpu().numpy().astype(bool),
        embedding=None if emb is None else emb.cpu().numpy().astype(np.float32),
    )
