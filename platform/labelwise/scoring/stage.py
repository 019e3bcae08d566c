"""The score stage: pool.parquet -> scores.parquet, cached and resumable.

    labelwise score JOB.yaml [--set score.max_new_tokens=64 ...]

1. Read the pool; hash the model fingerprint, the dtype the model runs in (resolved_model)
   and the generation settings into a cache key.
2. Skip every id that a shard under run_dir/score_shards/<key>/ holds a final row for: scored,
   or rejected as over-long. A prompt whose scoring failed for another reason (out of memory,
   ...) is scored again by the next run (shards.py).
3. Render and tokenize the whole pool (driver side, tokenizer only), truncate or reject
   over-long prompts, sort by length and cut batches (plan.py). Batches depend only on the
   pool and settings, so a rerun recomputes unfinished batches exactly as before.
4. Score the pending batches in-process, or on Ray Data with the ``Scorer`` callable class on
   an actor pool (labelwise.actor_pool.plan_actors); the driver writes a Parquet shard
   (atomically) as results arrive, so a crash loses at most the results not yet flushed.
5. Assemble scores.parquet in pool order and write score_summary.json (per task: prompts,
   errors, mean confidence computed in log space, mean answer length; run throughput) into
   the stage's staging folder, and commit both with a manifest (labelwise.manifest): a rerun
   keeps them while pool.parquet, the model's files and the settings match and no row holds
   an error worth retrying.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from labelwise import contracts


log = logging.getLogger(__name__)

# Flush a shard when this many results are buffered or this many seconds passed.
SHARD_ROWS = 256
SHARD_SECONDS = 20.0

HELP = "score every pool prompt with the base model on Ray Data (cached, resumable)"  # the command's one-line help


def add_arguments(parser) -> None:
    parser.add_argument(
        "--ray",
        choices=["auto", "true", "false"],
        default=None,
        help="use Ray Data (true), score in this process (false), or decide by pool size (auto; "
        "default: score.use_ray)",
    )


def main(job, args) -> int:
    if getattr(args, "ray", None):
        job.score.use_ray = {"true": True, "false": False}.get(args.ray, args.ray)
    from labelwise import manifest

    before = manifest.read(job.run_dir, STAGE)
    path = score_pool(job)
    print(f"kept {path}" if manifest.read(job.run_dir, STAGE) == before else f"wrote {path}")
    return 0


STAGE = "score"


def outputs() -> list[str]:
    from labelwise import contracts

    return [contracts.SCORES, contracts.SCORE_SUMMARY]


def inputs(job, adapter: Path | None = None) -> dict:
    """pool.parquet, the model's local folder (a hub name has none: its name and
    fingerprint are in the settings) and the LoRA adapter scored with, if any."""
    from labelwise import contracts
    from labelwise.models import model_inputs

    found = {contracts.POOL: Path(job.run_dir) / contracts.POOL, **model_inputs(job.model.name)}
    return {**found, "adapter": Path(adapter)} if adapter is not None else found


def settings(job, adapter: Path | None = None) -> dict:
    """What a prompt's scores depend on (cache_key_parts), also the shard cache's key."""
    return {"score": cache_key_parts(job, adapter)}


def score_pool(job, log=print, adapter: Path | None = None) -> Path:
    """Score every prompt of run_dir/pool.parquet; return run_dir/scores.parquet. Kept when the
    stage's manifest matches the pool, the model folder, the settings and the files on disk,
    and no row holds an error a rerun would score again.

    ``adapter``: score with the base model plus this LoRA adapter (a round r >= 2 of
    labelwise.rounds); its digest is part of the cache key."""
    from labelwise import manifest
    from labelwise.contracts import POOL, SCORES

    run = job.run_path
    declared = settings(job, adapter)
    out = run / SCORES
    retry = "scores.parquet holds errors a rerun scores again" if out.exists() and has_retryable(out) else None

    def build(staged: Path) -> None:
        write_scores(job, read_pool(run / POOL), declared["score"], staged, adapter)

    manifest.run_stage(run, STAGE, inputs(job, adapter), declared, outputs(), build, rerun=retry, log=log)
    return out


def write_scores(job, pool, parts: dict, out_dir: Path, adapter: Path | None = None) -> None:
    """Score what the shard cache lacks, then write scores.parquet and the summary to out_dir."""
    from labelwise import manifest, runio
    from labelwise.contracts import SCORE_SHARDS, SCORES
    from labelwise.scoring.shards import ShardStore, settings_key

    key = settings_key(parts)
    store = ShardStore(job.run_path / SCORE_SHARDS / key, describe=parts)
    done, retry = store.id_status()
    pending = ~pool["id"].isin(done)
    stats = {"scored_now": 0, "generated_tokens": 0, "seconds": 0.0, "truncated": 0, "rejected": 0}
    stats["cached"] = int((~pending).sum())
    stats["retried"] = int(pool.loc[pending, "id"].isin(retry).sum())
    if stats["retried"]:
        log.warning("scoring again %d prompt(s) whose earlier scoring failed", stats["retried"])
    if pending.any():
        stats.update(score_pending(job, pool, set(pool.loc[pending, "id"]), store, adapter))

    table = assemble(store, pool, job.score.embeddings)
    # which engine made the scores and how mean_entropy was computed (exact in the HF loop, an
    # estimate from vLLM's top-k log-probabilities), for whoever reads the file alone
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"labelwise.engine": parts.get("engine", "hf"),
         b"labelwise.mean_entropy": parts.get("entropy", "exact")}
    )
    with runio.atomic_path(out_dir / SCORES) as tmp:
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    manifest.fault(STAGE)

    from labelwise.scoring.schema import final_mask
    from labelwise.scoring.summary import format_summary, task_summary

    scores = table.drop_columns(["embedding"]) if "embedding" in table.column_names else table
    scores = scores.to_pandas()
    tasks = task_summary(scores)
    stats["errors"] = int(scores["error"].notna().sum())
    stats["retryable_errors"] = int((~final_mask(table.column("error"))).sum())
    if stats["seconds"] > 0 and stats["scored_now"]:
        stats["tokens_per_s"] = stats["generated_tokens"] / stats["seconds"]
        stats["prompts_per_s"] = stats["scored_now"] / stats["seconds"]
    runio.write_json(
        out_dir / contracts.SCORE_SUMMARY,
        {
            "settings_key": key,
            "settings": parts,
            "engine": parts.get("engine", "hf"),
            "mean_entropy": parts.get("entropy", "exact"),
            "prompts": int(len(scores)),
            "log_mean_conf": _overall(scores),
            "run": stats,
            "tasks": tasks,
        },
    )
    manifest.fault(STAGE)
    print(format_summary(tasks, stats), file=sys.stderr)


def read_pool(path: Path):
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `labelwise pool` first")
    pool = pd.read_parquet(path)
    missing = [c for c in ("id", "task", "prompt") if c not in pool.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (expected id, task, prompt)")
    pool = pool[["id", "task", "prompt"]].reset_index(drop=True)
    if len(pool) == 0:
        raise ValueError(f"{path}: the pool has no rows, nothing to score")
    nulls = pool[pool[["id", "task", "prompt"]].isna().any(axis=1)]
    if len(nulls):
        raise ValueError(f"{path}: {len(nulls)} row(s) with a null id, task or prompt, first at row {nulls.index[0]}")
    dup = pool["id"][pool["id"].duplicated()]
    if len(dup):
        raise ValueError(f"{path}: duplicate id(s), e.g. {dup.iloc[0]!r} ({len(dup)} duplicates)")
    pool["id"] = pool["id"].astype(str)
    pool["task"] = pool["task"].astype(str)
    return pool


def has_retryable(scores_path: Path) -> bool:
    """True when scores.parquet holds an error row that a rerun scores again."""
    import pyarrow.parquet as pq

    from labelwise.scoring.schema import final_mask

    try:
        errors = pq.read_table(scores_path, columns=["error"]).column("error")
    except Exception:  # unreadable or foreign: let the run rebuild it
        return True
    return not final_mask(errors).all()


def cache_key_parts(job, adapter: Path | None = None) -> dict:
    """What a prompt's scores depend on: the model (fingerprint, and the digest of its local
    files: an edited weight file of the same size is another model), the device and dtype it
    runs in (resolved_model: never "auto"), the template and the settings; with an adapter,
    the digest of its files too (a key without one is the base model's, as before)."""
    import dataclasses

    from labelwise.manifest import digest
    from labelwise.models import fingerprint, resolve

    device, dtype = resolved_model(job)
    folder = resolve(job.model.name)
    return {
        "model": job.model.name,
        "fingerprint": fingerprint(dataclasses.replace(job.model, dtype=dtype)),
        "model_files": digest(folder) if isinstance(folder, Path) else None,
        "device": device,
        "dtype": dtype,
        "chat_template": job.model.chat_template,
        **job.score.settings(),
        **engine_key(job, device, adapter),
        **({"adapter": digest(adapter)} if adapter is not None else {}),
    }


def engine_key(job, device: str, adapter=None) -> dict:
    """The engine's part of the cache key: nothing for hf (the keys of scores made before
    the engine choice stay valid), the engine and its entropy estimate for vllm."""
    from labelwise import engines

    if engines.resolve(job.score.engine, "score.engine", device=device, adapter=adapter) == "hf":
        return {}
    from labelwise.scoring.vllm_scorer import entropy_kind

    return {"engine": "vllm", "entropy": entropy_kind(job.score.top_logprobs)}


def resolved_model(job) -> tuple[str, str]:
    """(device, dtype) of the scoring model, resolved on the driver before any work starts.

    The cache key holds these, not the configured "auto", so CPU float32 and GPU bfloat16
    scores never share a key. The device is the one the work targets: model.device when set;
    for "auto", the Ray cluster's GPUs when the scores will surely be computed on Ray (the
    actor plan gives every actor a GPU then), otherwise this machine's (in-process scoring,
    or a local Ray started here, sees the same devices). The dtype is model.dtype, or for
    "auto" the one models.pick_dtype chooses for that device (CUDA: bfloat16, CPU: float32).

    Ray actors can resolve "auto" differently from the driver: an actor placed on a node that
    declares a GPU it does not have falls back to the CPU. So the resolved dtype is not left
    to the actors: scorer_model_config pins it in the model config every scorer loads, and a
    scorer always runs in exactly the dtype the key names (such an actor runs bfloat16 on the
    CPU, slower but the same arithmetic as the key says; the scorer logs a warning when it
    lands on another device than the target). The device itself stays the actor's choice.
    """
    from labelwise.models import pick_device, pick_dtype

    device = job.model.device
    if device == "auto":
        if want_ray(job, 0):  # Ray whatever the number of pending prompts
            from labelwise.ray_start import init_ray

            ray = init_ray(job.ray)
            device = "cuda" if ray.cluster_resources().get("GPU", 0) else "cpu"
        else:
            device = pick_device("auto")
    dtype = str(pick_dtype(job.model.dtype, device)).removeprefix("torch.")
    return device, dtype


def key_model(store) -> tuple[str, str]:
    """(device, dtype) of the store's cache key (cache_key_parts, resolved once by score_pool)."""
    return store.describe["device"], store.describe["dtype"]


def scorer_model_config(job, dtype: str) -> dict:
    """The model config the scorers load: the user's, with the dtype pinned (resolved_model)."""
    from labelwise import config

    return {**config.to_dict(job.model), "dtype": dtype}


def want_ray(job, n_pending: int) -> bool:
    mode = job.score.use_ray
    if mode != "auto":
        return bool(mode)
    if job.ray.address or os.environ.get("RAY_ADDRESS"):
        return True
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return True
    return n_pending > job.score.ray_threshold


def score_pending(job, pool, pending_ids: set[str], store, adapter: Path | None = None) -> dict:
    """Encode and plan the whole pool, then score the batches holding pending ids."""
    from transformers import AutoConfig

    from labelwise.models import load_tokenizer, resolve
    from labelwise.prompting import prompt_limit
    from labelwise.scoring.plan import encode_prompts, plan_batches
    from labelwise.scoring.schema import error_row, to_table
    from labelwise.scoring.scorer import make_batch

    cfg = job.score
    tokenizer = load_tokenizer(job.model)
    model_cfg = AutoConfig.from_pretrained(resolve(job.model.name), trust_remote_code=job.model.trust_remote_code)
    context = getattr(model_cfg, "max_position_embeddings", None)
    limit = prompt_limit(cfg.max_prompt_tokens, context, cfg.max_new_tokens)
    encoded = encode_prompts(
        tokenizer,
        pool["id"].tolist(),
        pool["task"].tolist(),
        pool["prompt"].tolist(),
        chat_template=job.model.chat_template,
        limit=limit,
        overlong=cfg.overlong,
    )
    truncated = sum(e.truncated for e in encoded if e.id in pending_ids)
    rejected = [e for e in encoded if e.input_ids is None and e.id in pending_ids]
    if rejected:  # final error rows (an over-long prompt is rejected again on every run)
        store.write(to_table([error_row(e.id, e.task, e.error) for e in rejected], cfg.embeddings))
        log.warning("%d prompt(s) rejected as too long (score.overlong=reject)", len(rejected))
    ok = [e for e in encoded if e.input_ids is not None]
    batches = []
    for idx in plan_batches([len(e.input_ids) for e in ok], cfg.batch_size, cfg.max_batch_tokens):
        members = [ok[i] for i in idx if ok[i].id in pending_ids]
        if members:
            batches.append(make_batch([e.id for e in members], [e.task for e in members], [e.input_ids for e in members]))
    stats = {"truncated": int(truncated), "rejected": len(rejected), "scored_now": len(rejected)}
    if not batches:
        return stats
    n = sum(len(b["ids"]) for b in batches)
    start = time.perf_counter()
    if store.describe.get("engine") == "vllm":  # always on Ray Data (ray.data.llm)
        from labelwise.scoring.scorer import stop_token_ids
        from labelwise.scoring.vllm_scorer import score_on_vllm

        stop = stop_token_ids(_generation_config_of(job), tokenizer)
        device, dtype = key_model(store)
        executor = {"where": "ray data"}
        tokens = score_on_vllm(
            job, batches, _Flusher(store, n, executor), tokenizer=tokenizer, stop_ids=stop, device=device, dtype=dtype,
            model_config=scorer_model_config(job, dtype), executor=executor, adapter=adapter,
        )
    elif want_ray(job, n):
        executor = {"where": "ray data"}
        tokens = score_on_ray(job, batches, store, executor=executor, adapter=adapter)
    else:
        executor = {"where": "in process"}
        tokens = score_in_process(job, batches, store, adapter=adapter, executor=executor)
    stats.update(
        executor=executor,
        scored_now=stats["scored_now"] + n,
        generated_tokens=int(tokens),
        seconds=time.perf_counter() - start,
    )
    return stats


def _generation_config_of(job):
    """An object with the model's ``generation_config`` (its EOS ids), read from the model
    folder without loading the weights (None when the folder has none)."""
    import types

    from transformers import GenerationConfig

    from labelwise.models import resolve

    try:
        gc = GenerationConfig.from_pretrained(resolve(job.model.name))
    except OSError:  # no generation_config.json: the tokenizer's EOS alone
        gc = None
    return types.SimpleNamespace(generation_config=gc)


class _Flusher:
    """Buffers result tables and writes a shard every SHARD_ROWS rows or SHARD_SECONDS."""

    def __init__(self, store, total: int, record: dict | None = None):
        self.store, self.total, self.record = store, total, record
        self.buffer, self.rows, self.done, self.tokens = [], 0, 0, 0
        self.last = self.start = time.perf_counter()
        self.last_report = self.start

    def add(self, table) -> None:
        now = time.perf_counter()
        new_tokens = int(sum(table.column("n_tokens").to_pylist()))
        if self.done == 0 and self.record is not None:
            # the first result comes after the model load / engine start; what comes after
            # it is the steady rate (labelwise bench score --engine)
            self.record.update(first_result_seconds=now - self.start, first_result_tokens=new_tokens)
        self.buffer.append(table)
        self.rows += table.num_rows
        self.done += table.num_rows
        self.tokens += new_tokens
        if self.rows >= SHARD_ROWS or now - self.last >= SHARD_SECONDS:
            self.flush()
        if now - self.last_report >= 10 or self.done == self.total:
            rate = self.tokens / max(now - self.start, 1e-9)
            print(f"score: {self.done}/{self.total} prompts, {rate:.1f} tokens/s", file=sys.stderr)
            self.last_report = now

    def flush(self) -> None:
        import pyarrow as pa

        if self.buffer:
            self.store.write(pa.concat_tables(self.buffer))
        self.buffer, self.rows, self.last = [], 0, time.perf_counter()


def score_in_process(job, batches: list[dict], store, scorer=None, adapter: Path | None = None,
                     executor: dict | None = None) -> int:
    """Score batches in this process (no Ray); returns the number of generated tokens."""
    from labelwise.scoring.schema import to_table
    from labelwise.scoring.scorer import Scorer

    cfg = job.score
    if scorer is None:
        device, dtype = key_model(store)
        scorer = Scorer(
            scorer_model_config(job, dtype),
            cfg.max_new_tokens,
            cfg.embeddings,
            cfg.answers,
            threads=cfg.threads,
            expect_device=device,
            adapter=None if adapter is None else str(adapter),
        )
    flusher = _Flusher(store, sum(len(b["ids"]) for b in batches), executor)
    for batch in batches:
        flusher.add(to_table(scorer.score_batch(batch), cfg.embeddings))
    flusher.flush()
    return flusher.tokens


def score_on_ray(job, batches: list[dict], store, scorer_cls=None, executor: dict | None = None,
                 adapter: Path | None = None) -> int:
    """Score batches with Ray Data on an actor pool; the driver writes shards as blocks arrive.
    The actor plan is recorded in ``executor`` when given."""
    import dataclasses

    from labelwise.actor_pool import plan_actors
    from labelwise.ray_start import init_ray
    from labelwise.scoring.scorer import Scorer

    cfg = job.score
    device, dtype = key_model(store)
    ray = init_ray(job.ray)
    plan = plan_actors(job.model.device, cfg.max_actors)
    if executor is not None:
        executor["actors"] = dataclasses.asdict(plan)
    rows = [{"payload": json.dumps(b)} for b in batches]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
    ds = plan.map_batches(
        ds,
        scorer_cls or Scorer,
        batch_size=1,
        batch_format="pyarrow",
        fn_constructor_kwargs={
            "model": scorer_model_config(job, dtype),  # the dtype of the cache key, pinned
            "max_new_tokens": cfg.max_new_tokens,
            "embeddings": cfg.embeddings,
            "answers": cfg.answers,
            "threads": cfg.threads or plan.threads,
            # The user's choice, not the plan's: an actor scheduled on a GPU node sees the GPU
            # with "auto", and a node that only declares a GPU falls back to the CPU.
            "device": job.model.device,
            "expect_device": device,
            "adapter": None if adapter is None else str(adapter),  # loaded once per actor
        },
        max_restarts=cfg.max_restarts,
        max_task_retries=cfg.max_task_retries,
    )
    flusher = _Flusher(store, sum(len(b["ids"]) for b in batches), executor)
    for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        flusher.add(block)
    flusher.flush()
    return flusher.tokens


def assemble(store, pool, embeddings: bool):
    """All shard rows for the pool's ids, in pool order, in the scores.parquet schema."""
    import pyarrow as pa

    from labelwise.contracts import scores_schema
    from labelwise.scoring.shards import pick_rows

    table = store.read_all()
    if table is None:
        raise ValueError(f"{store.root}: no score shards, nothing to assemble")
    sch = scores_schema(embeddings)
    table = table.select(sch.names).cast(sch)
    first = pick_rows(table)  # per id: its first final row, else its latest (retried) row
    missing = [i for i in pool["id"] if i not in first]
    if missing:
        raise ValueError(
            f"{store.root}: {len(missing)} pool id(s) have no score after scoring, e.g. {missing[0]!r}"
        )
    return table.take(pa.array([first[i] for i in pool["id"]], type=pa.int64()))


def _overall(scores) -> float:
    from labelwise.scoring.summary import mean_logconf

    return mean_logconf(scores.loc[scores["error"].isna(), "logconf"].to_numpy())
