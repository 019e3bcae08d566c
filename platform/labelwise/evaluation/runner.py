"""One loaded model answering evaluation requests, in plain Python (no Ray).

Two request kinds cover every benchmark:

* ``loglik``: ``{"context": str, "continuations": [str, ...]}`` -> ``{"logprobs": [float, ...],
  "n_tokens": [int, ...]}`` (sum of the continuation tokens' log-probabilities);
* ``generate``: ``{"prompt": str, "max_new_tokens": int, "stop": [str, ...]}`` -> ``{"text": str}``
  (greedy; the text is cut before the first stop string);
* ``answer``: both of the above for one prompt from a single prefill (``labelwise.evaluation.answer``).

Prompts arrive fully rendered (chat template or plain text); the runner only tokenizes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from labelwise import config as config_mod
from labelwise import contracts
from labelwise.evaluation import shared_prefix
from labelwise.evaluation import tokens as tok_mod
from labelwise.models import ModelConfig
from labelwise.progress import BatchProgress


@dataclasses.dataclass
class ModelSpec:
    """Which weights answer the requests: a model config and an optional LoRA adapter."""

    model: ModelConfig
    adapter: str | None = None

    def to_dict(self) -> dict:
        return {"model": config_mod.to_dict(self.model), "adapter": self.adapter}

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        return cls(ModelConfig(**data["model"]), data.get("adapter"))


@dataclasses.dataclass
class RunSettings:
    batch_size: int = 8
    max_batch_tokens: int = 16384
    max_length: int | None = None
    shared_prefix: bool = True  # loglik units that begin alike are prefilled once (shared_prefix.py)


class ModelRunner:
    def __init__(self, model, tokenizer, settings: RunSettings | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings or RunSettings()
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_length = min(self.settings.max_length or limit, limit)
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, spec: ModelSpec, settings: RunSettings | None = None, device: str | None = None):
        from labelwise.models import load_model

        model, tokenizer = load_model(spec.model, device=device, adapter=spec.adapter)
        return cls(model, tokenizer, settings)

    def run(self, kind: str, payloads: list[dict], progress: str | None = None) -> list[dict]:
        if kind == "loglik":
            return self.loglik(payloads, progress)
        if kind == "generate":
            return self.generate(payloads, progress)
        if kind == "answer":
            from labelwise.evaluation.answer import answer

            return answer(self, payloads, progress)
        raise ValueError(f"unknown request kind {kind!r} (known: loglik, generate, answer)")

    # ---- log-likelihood -------------------------------------------------------------------
    def loglik(self, payloads: list[dict], progress: str | None = None) -> list[dict]:
        units = []
        for i, p in enumerate(payloads):
            units += tok_mod.build_units(self.tokenizer, i, p["context"], list(p["continuations"]), self.max_length)
        out = [
            {"logprobs": [None] * len(p["continuations"]), "n_tokens": [0] * len(p["continuations"])}
            for p in payloads
        ]
        groups, alone = shared_prefix.groups(units) if self.settings.shared_prefix else ([], units)
        batches = [(0, b) for b in tok_mod.pack(alone, self.settings.batch_size, self.settings.max_batch_tokens)]
        for shared, group in groups:  # each batch of a group runs on a copy of the group's cache
            batches += [(shared, b) for b in tok_mod.pack(group, self.settings.batch_size, self.settings.max_batch_tokens)]
        ticker = BatchProgress(progress, len(batches))
        cache, cached_ids = None, None
        for shared, batch in batches:
            if shared and batch[0].ids[:shared] != cached_ids:
                cached_ids = batch[0].ids[:shared]
                cache = self._prefill(cached_ids)
            for unit, sums in zip(batch, self._forward(batch, (shared, cache) if shared else None)):
                for j, total, targets in zip(unit.continuations, sums, unit.targets):
                    out[unit.request]["logprobs"][j] = total
                    out[unit.request]["n_tokens"][j] = len(targets)
            ticker.step()
        return out

    def _prefill(self, ids: list[int]):
        """The KV cache of ``ids`` (one row), for the units that begin with them."""
        import torch

        from labelwise.scoring.greedy import kv_cache_of

        with torch.no_grad():
            return kv_cache_of(self.model(
                input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1,
            ))

    def _forward(self, batch: list[tok_mod.Unit], prefix=None) -> list[list[float]]:
        """Per unit, per target list: the summed log-probs (right padding, one forward pass).
        ``prefix``: (n, cache) when every unit begins with the n tokens held in ``cache``
        (shared_prefix.py): only the tokens after them are run, on a copy of the cache."""
        import copy

        import torch

        from labelwise.scoring.greedy import kv_cache_argument

        start = prefix[0] if prefix else 0
        width = max(len(u.ids) for u in batch) - start
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        keep = torch.zeros((len(batch), width), dtype=torch.bool)
        for b, u in enumerate(batch):
            ids[b, : len(u.ids) - start] = torch.tensor(u.ids[start:])
            mask[b, : len(u.ids) - start] = 1
            for targets in u.targets:
                for pos, _ in targets:
                    keep[b, pos - start] = True
        # Logits only at the columns some row needs: a 1-D index tensor for logits_to_keep
        # works on every transformers release that has the argument (a 2-D mask does not).
        cols = keep.any(dim=0).nonzero().flatten()
        col_of = {int(c): j for j, c in enumerate(cols.tolist())}
        extra = {}
        if prefix:
            cache = copy.deepcopy(prefix[1])
            cache.batch_repeat_interleave(len(batch))
            extra = {kv_cache_argument(self.model): cache, "use_cache": True,
                     "position_ids": (start + torch.arange(width)).expand(len(batch), -1).to(self.device)}
            mask = torch.cat([torch.ones((len(batch), start), dtype=torch.long), mask], dim=1)
        with torch.no_grad():
            logits = self.model(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                logits_to_keep=cols.to(self.device),
                **extra,
            ).logits
        if logits.shape[1] != len(cols):  # a model that ignores logits_to_keep: all positions
            logits = logits[:, cols.to(logits.device)]
        pairs = keep.nonzero().tolist()  # (batch row, position), row-major
        row_of = {(b, p): r for r, (b, p) in enumerate(pairs)}
        index = torch.tensor([[b, col_of[p]] for b, p in pairs], dtype=torch.long, device=logits.device)
        logits = logits[index[:, 0], index[:, 1]]
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        result = []
        for b, u in enumerate(batch):
            result.append(
                [float(sum(logprobs[row_of[(b, p - start)], t].item() for p, t in targets)) for targets in u.targets]
            )
        return result

    # ---- generation -----------------------------------------------------------------------
    def generate(self, payloads: list[dict], progress: str | None = None) -> list[dict]:
        encoded = [tok_mod.encode(self.tokenizer, p["prompt"]) for p in payloads]
        order = sorted(range(len(payloads)), key=lambda i: len(encoded[i]), reverse=True)
        batches, current = [], []
        for i in order:
            width = len(encoded[current[0]]) if current else len(encoded[i])
            if current and (
                len(current) >= self.settings.batch_size
                or (len(current) + 1) * (width + int(payloads[i]["max_new_tokens"])) > self.settings.max_batch_tokens
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        out: list[dict | None] = [None] * len(payloads)
        ticker = BatchProgress(progress, len(batches))
        for batch in batches:
            texts = self._generate_batch([encoded[i] for i in batch], [payloads[i] for i in batch])
            for i, text in zip(batch, texts):
                out[i] = {"text": text}
            ticker.step()
        return out

    def _generate_batch(self, encoded: list[list[int]], payloads: list[dict]) -> list[str]:
        import torch

        max_new = max(int(p["max_new_tokens"]) for p in payloads)
        keep_len = max(1, self.max_length - max_new)
        encoded = [e[-keep_len:] for e in encoded]
        width = max(len(e) for e in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for b, e in enumerate(encoded):  # left padding: every row ends where generation starts
            ids[b, width - len(e):] = torch.tensor(e)
            mask[b, width - len(e):] = 1
        stops = sorted({s for p in payloads for s in (p.get("stop") or [])})
        kwargs = {"stop_strings": stops, "tokenizer": self.tokenizer} if stops else {}
        with torch.no_grad():
            generated = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max_new,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
                **kwargs,
            )
        texts = []
        for b, p in enumerate(payloads):
            new = generated[b, width:][: int(p["max_new_tokens"])].tolist()
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            texts.append(tok_mod.cut_at_stop(text, p.get("stop") or []))
        return texts


def resolve_adapter(adapter) -> str | None:
    if adapter is None:
        return None
    path = Path(adapter)
    if not (path / contracts.ADAPTER_CONFIG).exists():
        raise FileNotFoundError(f"adapter {path}: no {contracts.ADAPTER_CONFIG} (expected a PEFT LoRA adapter folder)")
    return str(path.resolve())
