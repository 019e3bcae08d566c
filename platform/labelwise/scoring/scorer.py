"""The scorer: one loaded model that turns planned batches into score rows.

Used in-process (``Scorer(...).score_batch(batch)``) and as a Ray Data ``map_batches``
callable class (``Scorer.__call__``): the model is loaded once per actor in ``__init__``.
A Ray input row is one planned batch, serialized as JSON in the ``payload`` column, so the
model always sees exactly the batches the driver planned, however Ray cuts its blocks; the
output is a pyarrow table with one row per prompt in the scores.parquet schema.
"""

from __future__ import annotations

import json
import logging

from labelwise.scoring.schema import error_row, to_table

log = logging.getLogger(__name__)


def make_batch(ids: list[str], tasks: list[str], input_ids: list[list[int]]) -> dict:
    return {"ids": list(ids), "tasks": list(tasks), "input_ids": [list(map(int, s)) for s in input_ids]}


class Scorer:
    def __init__(
        self,
        model: dict,
        max_new_tokens: int,
        embeddings: bool = True,
        answers: bool = True,
        threads: int | None = None,
        device: str | None = None,
        expect_device: str | None = None,
        adapter: str | None = None,
    ):
        import torch

        from labelwise.config import build
        from labelwise.models import ModelConfig, load_model

        if threads:
            torch.set_num_threads(threads)
        cfg = build(ModelConfig, model, "model")
        # a LoRA adapter (PeftModel.from_pretrained on the base): loaded here, once per actor
        self.model, self.tokenizer = load_model(cfg, device=device, adapter=adapter)
        self.max_new_tokens = max_new_tokens
        self.embeddings = embeddings
        self.answers = answers
        self.stop_ids = stop_token_ids(self.model, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        self.device = str(next(self.model.parameters()).device.type)
        self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        if expect_device and self.device != expect_device:
            # e.g. a node that declares a GPU it does not have: the dtype is pinned by the
            # caller (the cache key's), so only the device differs from the plan.
            log.warning(
                "scorer runs on %s (%s), not on the planned %s", self.device, self.dtype, expect_device
            )

    def score_batch(self, batch: dict) -> list[dict]:
        """Score one planned batch; a failure is retried prompt by prompt, then becomes an error row."""
        try:
            return self._score(batch["ids"], batch["tasks"], batch["input_ids"])
        except Exception as e:  # e.g. out of memory: isolate the prompt that cannot be scored
            # The error row is cached until the next run only (schema.is_final): a rerun
            # scores the prompt again.
            _free_accelerator_memory()
            if len(batch["ids"]) == 1:
                log.warning("prompt %s could not be scored: %r", batch["ids"][0], e)
                return [error_row(batch["ids"][0], batch["tasks"][0], f"{type(e).__name__}: {e}")]
            log.warning("batch of %d failed (%r); scoring its prompts one by one", len(batch["ids"]), e)
            rows = []
            for i, t, s in zip(batch["ids"], batch["tasks"], batch["input_ids"]):
                rows.extend(self.score_batch({"ids": [i], "tasks": [t], "input_ids": [s]}))
            return rows

    def _score(self, ids, tasks, input_ids) -> list[dict]:
        from labelwise.scoring.greedy import greedy_score

        r = greedy_score(
            self.model,
            input_ids,
            max_new_tokens=self.max_new_tokens,
            stop_ids=self.stop_ids,
            pad_id=self.pad_id,
            embeddings=self.embeddings,
        )
        rows = []
        for k, (id_, task) in enumerate(zip(ids, tasks)):
            answer = ""
            if self.answers:
                answer = self.tokenizer.decode(r.tokens[k], skip_special_tokens=True)
            rows.append(
                {
                    "id": id_,
                    "task": task,
                    "logconf": float(r.logconf[k]),
                    "n_tokens": int(r.n_tokens[k]),
                    "mean_logprob": float(r.mean_logprob[k]),
                    "mean_entropy": float(r.mean_entropy[k]),
                    "mean_margin": float(r.mean_margin[k]),
                    "min_margin": float(r.min_margin[k]),
                    "eos": bool(r.eos[k]),
                    "answer": answer,
                    "error": None,
                    "embedding": None if r.embedding is None else r.embedding[k].tolist(),
                }
            )
        return rows

    def __call__(self, table):
        """Ray Data entry: rows are planned batches (``payload`` JSON) -> one row per prompt."""
        rows = []
        for payload in table.column("payload").to_pylist():
            rows.extend(self.score_batch(json.loads(payload)))
        return to_table(rows, self.embeddings)


def _free_accelerator_memory() -> None:
    """After a failure (often CUDA out of memory), give cached blocks back before retrying."""
    import torch

    if torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except Exception:  # a broken device: the retry will say so
            pass


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS ids from the generation config and the tokenizer (an answer stops at any of them)."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if not ids:
        raise ValueError("the model has no EOS token: cannot tell where an answer ends")
    return sorted(ids)
