"""Scoring on vLLM (``score.engine: vllm``) through Ray Data's LLM API.

The driver plans and tokenizes exactly as for the HF scorer (same token ids, same order);
each prompt becomes one greedy request with the top-``score.top_logprobs`` log-probabilities
of every generated token, and ``ray.data.llm.build_processor`` runs the engine replicas. The
outputs are turned back into scores.parquet's columns:

* ``logconf``, ``mean_logprob``, ``n_tokens``, ``eos``, the answer tokens: exact (vLLM returns
  the chosen token's log-probability; the stop token counts, as in the HF loop);
* ``answer``: the answer tokens decoded by the driver with the HF tokenizer, as the HF scorer
  decodes them (vLLM's own detokenizer holds back an incomplete UTF-8 character at the end,
  where the HF decode writes U+FFFD: one answer of the quickstart's 477 differed so);
* ``mean_margin``, ``min_margin``: exact (top1 - top2 probability, from the top-2);
* ``mean_entropy``: an estimate. vLLM returns no entropy; the top-k part is exact, and the
  probability mass left outside the top-k (r) is counted as if spread over tokens as likely as
  the k-th, ``r * -log p_k``: a lower bound of the tail's share. The estimate's kind is
  recorded in the cache key, scores.parquet's metadata and score_summary.json
  (``entropy``), and its measured error in the README;
* ``embedding`` (score.embeddings): vLLM's generate runner returns no hidden states, so a
  Ray Data stage after the engine runs the HF model's prefill on the same token ids and pools
  the penultimate layer exactly as the HF scorer does.

As with the HF scorer, the driver writes a shard as results arrive: a killed run keeps them
and the rerun sends only the prompts no shard holds.
"""

from __future__ import annotations

import functools
import math

ENTROPY = "top{k}-tail-lower-bound"  # the estimate's name (cache key, metadata, summary)


def entropy_kind(top_logprobs: int) -> str:
    return ENTROPY.format(k=top_logprobs)


def request(row: dict, *, max_new_tokens: int, top_logprobs: int, stop_ids: list[int], lora: str | None) -> dict:
    """One prompt -> one vLLM request (greedy, no chat template: the ids are already rendered)."""
    out = {
        "id": row["id"],
        "task": row["task"],
        "input_ids": row["input_ids"],
        "tokenized_prompt": list(row["input_ids"]),
        "sampling_params": {
            "temperature": 0.0,
            "max_tokens": int(max_new_tokens),
            "logprobs": int(top_logprobs),
            "stop_token_ids": list(stop_ids),
            "detokenize": False,  # the driver decodes the answer tokens (score_on_vllm)
            "skip_special_tokens": True,
        },
    }
    if lora:
        out["model"] = lora  # a LoRA request (ray.data.llm: a model other than the engine's)
    return out


def step_stats(chosen: int, top: dict) -> tuple[float, float, float]:
    """(log p of the chosen token, entropy estimate, top1 - top2 margin) of one generated
    token from vLLM's top-k log-probabilities ``{token id: {"logprob": ...}}``."""
    lps = sorted((float(v["logprob"]) for v in top.values()), reverse=True)
    entry = top.get(chosen, top.get(str(chosen)))
    lp = float(entry["logprob"]) if entry is not None else lps[0]
    ps = [math.exp(x) for x in lps]
    known = -sum(p * x for p, x in zip(ps, lps) if p > 0)
    rest = max(0.0, 1.0 - sum(ps))
    entropy = known + (rest * -lps[-1] if rest > 0 else 0.0)
    margin = ps[0] - ps[1] if len(ps) > 1 else ps[0]
    return lp, entropy, margin


def score_row(row: dict, *, stop_ids: list[int], keep_ids: bool) -> dict:
    """A vLLM output row -> a scores.parquet row (embedding filled later, or None)."""
    tokens = [int(t) for t in row["generated_tokens"]]
    steps = row.get("logprobs") or []
    if len(steps) != len(tokens):
        raise ValueError(f"prompt {row['id']}: {len(tokens)} tokens but {len(steps)} log-prob entries")
    lps, ents, margins = [], [], []
    for tok, top in zip(tokens, steps):
        lp, ent, mar = step_stats(tok, top)
        lps.append(lp)
        ents.append(ent)
        margins.append(mar)
    n = len(tokens)
    out = {
        "id": row["id"],
        "task": row["task"],
        "logconf": float(sum(lps)),
        "n_tokens": n,
        "mean_logprob": float(sum(lps) / max(n, 1)),
        "mean_entropy": float(sum(ents) / max(n, 1)),
        "mean_margin": float(sum(margins) / max(n, 1)),
        "min_margin": float(min(margins)) if margins else math.inf,
        "eos": bool(n and tokens[-1] in set(stop_ids)),
        "answer_tokens": tokens,  # the driver decodes them into ``answer`` (score_on_vllm)
        "error": None,
        "embedding": None,
    }
    if keep_ids:
        out["input_ids"] = row["input_ids"]
    return out


def _plain(record: dict) -> dict:
    """A row as pandas hands it back -> the types scores.parquet takes (pandas turns a
    missing error into NaN and an embedding into an array)."""
    out = dict(record)
    out["error"] = out["error"] if isinstance(out.get("error"), str) else None
    emb = out.get("embedding")
    out["embedding"] = None if emb is None or (isinstance(emb, float) and math.isnan(emb)) else list(map(float, emb))
    return out


class PromptEmbedder:
    """Ray Data stage after the engine (score.embeddings): the HF model's prefill on the same
    token ids, penultimate layer mean-pooled (scoring/greedy.py: the HF scorer's own code)."""

    def __init__(self, model: dict, threads: int | None = None, batch: int = 16):
        import torch

        from labelwise.config import build
        from labelwise.models import ModelConfig, load_model

        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer = load_model(build(ModelConfig, model, "model"))
        self.batch = batch

    def __call__(self, rows):
        from labelwise.scoring.greedy import greedy_score

        ids = [list(map(int, x)) for x in rows["input_ids"]]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths batch together
        emb = [None] * len(ids)
        for start in range(0, len(order), self.batch):
            part = order[start : start + self.batch]
            r = greedy_score(
                self.model,
                [ids[i] for i in part],
                max_new_tokens=1,
                stop_ids=[0],
                pad_id=self.tokenizer.pad_token_id,
                embeddings=True,
            )
            for k, i in enumerate(part):
                emb[i] = r.embedding[k].tolist()
        rows = {k: v for k, v in rows.items() if k != "input_ids"}
        rows["embedding"] = emb
        return rows


def score_on_vllm(job, batches: list[dict], flusher, *, tokenizer, stop_ids: list[int], device: str, dtype: str,
                  model_config: dict, executor: dict | None = None, adapter=None) -> int:
    """Score the planned batches' prompts on vLLM (Ray Data LLM) in ``dtype`` on ``device``
    (the cache key's); ``flusher`` (the score stage's) writes shards as results arrive.
    ``tokenizer`` is the driver's (it encoded the prompts and decodes the answers);
    ``model_config`` is what the embedding stage loads. Returns the generated tokens."""
    from ray.data.llm import build_processor

    from labelwise import engines
    from labelwise.models import resolve
    from labelwise.ray_start import init_ray
    from labelwise.scoring.schema import to_table

    cfg = job.score
    ray = init_ray(job.ray)
    lora_kwargs, lora = engines.lora(adapter)
    extra = {"max_logprobs": max(20, cfg.top_logprobs), **lora_kwargs}
    kwargs = engines.engine_kwargs(cfg.engine_kwargs, device=device, dtype=dtype, extra=extra)
    replicas = engines.replicas(device, kwargs, cfg.max_actors)
    config = engines.processor_config(
        str(resolve(job.model.name)), device=device, kwargs=kwargs, batch_size=cfg.batch_size, replicas=replicas
    )
    if executor is not None:
        executor.update(engine="vllm", replicas=replicas, engine_kwargs=kwargs)
    processor = build_processor(
        config,
        preprocess=functools.partial(
            request,
            max_new_tokens=cfg.max_new_tokens,
            top_logprobs=cfg.top_logprobs,
            stop_ids=stop_ids,
            lora=lora,
        ),
        postprocess=functools.partial(score_row, stop_ids=stop_ids, keep_ids=cfg.embeddings),
        preprocess_map_kwargs=engines.light_map_kwargs(),
        postprocess_map_kwargs=engines.light_map_kwargs(),
    )
    rows = [
        {"id": i, "task": t, "input_ids": s}
        for b in batches
        for i, t, s in zip(b["ids"], b["tasks"], b["input_ids"])
    ]
    ds = processor(ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // max(cfg.batch_size, 1))))
    if cfg.embeddings:
        ds = ds.map_batches(
            PromptEmbedder,
            batch_size=cfg.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=0,  # beside the engine on its node (it waits for the engine's outputs)
            fn_constructor_kwargs={"model": model_config, "threads": cfg.threads},
        )
    for frame in ds.iter_batches(batch_size=None, batch_format="pandas"):
        rows = [_plain(r) for r in frame.to_dict("records")]
        for r in rows:
            tokens = [int(t) for t in r.pop("answer_tokens")]
            r["answer"] = tokenizer.decode(tokens, skip_special_tokens=True) if cfg.answers else ""
        flusher.add(to_table(rows, cfg.embeddings))
    flusher.flush()
    return flusher.tokens
