"""``labelwise pool CONFIG``: build pool.parquet, test.parquet and pool_meta.json.

Library entry points:

* :func:`build_pool` (job) -> run_dir/pool.parquet; kept when the stage's manifest matches
  the source files, the ``pool:`` config and the files on disk (labelwise.manifest), rebuilt
  otherwise, the new files committed as one unit;
* :func:`read_pool`, :func:`read_test`, :func:`read_meta` (run_dir);
* :func:`pool_dataset` (run_dir, split) -> a Ray Dataset of the pool (or the test split).
"""

from __future__ import annotations

from pathlib import Path

HELP = "build pool.parquet and the held-out test split; print a summary"  # the command's one-line help


def load_records(cfg, log=print):
    """(records iterator, source info) for pool.source, or every entry of pool.sources."""
    if cfg.sources:
        import itertools

        parts = [_load_one(c, log) for c in cfg.source_configs()]
        infos = [info for _, info in parts]
        merged = {
            "sources": infos,
            "files": [f for info in infos for f in info.get("files", [])],
            "dropped_at_source": _merged_drops(infos),
        }
        return itertools.chain.from_iterable(records for records, _ in parts), merged
    return _load_one(cfg, log)


def _merged_drops(infos) -> dict:
    from labelwise.pool.build import Drops

    drops = Drops()
    for info in infos:
        drops.absorb(info.get("dropped_at_source") or {})
    return drops.as_dict()


def _load_one(cfg, log=print):
    if cfg.source == "builtin:bigbench":
        from labelwise.pool import bigbench

        return bigbench.records(cfg.bigbench_path, log)
    if cfg.source == "builtin:multitask":
        from labelwise.pool import multitask

        return multitask.records()
    if cfg.source == "builtin:skills":
        from labelwise.pool import skills

        return skills.records(cfg.seed, cfg.skills_scale)
    from labelwise.pool import formats

    return formats.source_records(cfg)


STAGE = "pool"


def outputs() -> list[str]:
    from labelwise import contracts

    return [contracts.TEST, contracts.POOL, contracts.POOL_META]


def inputs(job) -> dict:
    """The local files the pool is read from (the manifest digests them, so an edited source
    rebuilds the pool). The packaged pool is its data file (a new release rebuilds); the other
    built-ins are named by their settings; URIs and hub datasets cannot be digested here and
    are named by pool.source alone."""
    from labelwise.pool.readers import expand

    cfg = job.pool
    out = {}
    for i, c in enumerate(cfg.source_configs()):
        src, key = c.source, f"pool.sources[{i}].source" if cfg.sources else "pool.source"
        if src == "builtin:multitask":
            from labelwise.pool import multitask

            out[key] = multitask.ROWS
        elif not (src.startswith(("builtin:", "hf:")) or "://" in src):
            out[key] = Path(expand(src))
    return out


def settings(job) -> dict:
    from labelwise.config import to_dict

    cfg = job.pool
    pool = to_dict(cfg)
    # a BIG-bench copy is named by its index (its content, see below), not by where it lies
    pool.pop("bigbench_path", None)
    out = {"pool": pool}
    if any(c.source == "builtin:bigbench" for c in cfg.source_configs()):
        from labelwise.pool import bigbench

        # versioned and keyed by the copy (the sdist's sha256, or the folder's path and
        # listing): a new index format or another copy rebuilds; no copy is an error here,
        # before any work
        copy = bigbench.locate(cfg.bigbench_path, log=None)
        out["bigbench_index"] = bigbench.index_path(copy).name
    return out


def build_pool(job, force: bool = False, log=print, embed=None) -> Path:
    """Build the pool and the held-out test split into ``job.run_dir``; kept when its
    manifest matches the source files, the ``pool:`` settings and the files on disk."""
    from labelwise import contracts, manifest, runio

    run_dir = Path(job.run_dir)

    def build(staged: Path) -> None:
        from labelwise.pool.build import build_tables
        from labelwise.pool.context import warn_overlong

        records, info = load_records(job.pool, log)
        if job.pool.dedup == "near" and job.pool.dedup_engine == "ray" and hasattr(job, "ray"):
            from labelwise.ray_start import init_ray

            init_ray(job.ray)  # the job's Ray (ray.address), not a default local one
        pool, test, meta = build_tables(job.pool, records, info, embed=embed)
        warn_overlong(job, pool, log)
        if meta["n_pool"] == 0:
            raise ValueError(
                f"pool.source {job.pool.source_label}: no prompts left after filtering "
                f"(read {meta['n_read']}, dropped {meta['n_dropped']}: "
                + "; ".join(f"{d['count']} {r}" for r, d in meta["dropped"].items())
                + ")"
            )
        runio.write_parquet(staged / contracts.TEST, test)
        manifest.fault(STAGE)
        runio.write_parquet(staged / contracts.POOL, pool)
        manifest.fault(STAGE)
        runio.write_json(staged / contracts.POOL_META, meta)
        manifest.fault(STAGE)

    manifest.run_stage(run_dir, STAGE, inputs(job), settings(job), outputs(), build,
                       rerun="--force" if force else None, log=log)
    return run_dir / contracts.POOL


def read_pool(run_dir) -> "pandas.DataFrame":  # noqa: F821
    return _read(Path(run_dir), "POOL")


def read_test(run_dir) -> "pandas.DataFrame":  # noqa: F821
    return _read(Path(run_dir), "TEST")


def read_meta(run_dir) -> dict:
    import json

    from labelwise import contracts

    path = Path(run_dir) / contracts.POOL_META
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pool metadata; run `labelwise pool CONFIG` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def _read(run_dir: Path, name: str):
    from labelwise import contracts
    from labelwise.pool.build import COLUMNS

    return contracts.read_frame(run_dir / getattr(contracts, name), COLUMNS, "run `labelwise pool CONFIG` first")


def pool_dataset(run_dir, split: str = "pool"):
    """The pool (or ``split="test"``) as a Ray Dataset (needs a running Ray or starts one)."""
    import ray

    from labelwise import contracts

    if split not in ("pool", "test"):
        raise ValueError(f"split must be 'pool' or 'test', got {split!r}")
    path = Path(run_dir) / (contracts.POOL if split == "pool" else contracts.TEST)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run `labelwise pool CONFIG` first")
    return ray.data.read_parquet(str(path.resolve()))


def add_arguments(parser) -> None:
    parser.add_argument("--force", action="store_true", help="rebuild even when the pool was built with this config")


def main(job, args) -> int:
    from labelwise import manifest
    from labelwise.pool.summary import format_summary

    before = manifest.read(job.run_dir, STAGE)
    out = build_pool(job, force=getattr(args, "force", False))
    print(format_summary(read_meta(out.parent)))
    files = f"{out}, {out.parent / 'test.parquet'}, {out.parent / 'pool_meta.json'}"
    print(f"kept {files} (use --force to rebuild)" if manifest.read(job.run_dir, STAGE) == before else f"wrote {files}")
    return 0
