"""``labelwise pool CONFIG``: build pool.parquet, test.parquet and pool_meta.json.

Library entry points:

* :func:`build_pool` (job) -> run_dir/pool.parquet; kept when it exists and was built from
  the same ``pool:`` config, rebuilt otherwise;
* :func:`read_pool`, :func:`read_test`, :func:`read_meta` (run_dir);
* :func:`pool_dataset` (run_dir, split) -> a Ray Dataset of the pool (or the test split).
"""

from __future__ import annotations

from pathlib import Path


def load_records(cfg, log=print):
    """(records iterator, source info) for pool.source, or every entry of pool.sources."""
    if cfg.sources:
        import itertools

        parts = [_load_one(c, log) for c in cfg.source_configs()]
        infos = [info for _, info in parts]
        merged = {
            "sources": infos,
            "files": [f for info in infos for f in info.get("files", [])],
            "dropped_at_source": _merge_drops(info.get("dropped_at_source") or {} for info in infos),
        }
        return itertools.chain.from_iterable(records for records, _ in parts), merged
    return _load_one(cfg, log)


def _merge_drops(drop_dicts) -> dict:
    out: dict = {}
    for drops in drop_dicts:
        for reason, d in drops.items():
            m = out.setdefault(reason, {"count": 0, "examples": []})
            m["count"] += int(d["count"])
            m["examples"] = (m["examples"] + list(d.get("examples", [])))[:5]
    return out


def _load_one(cfg, log=print):
    if cfg.source == "builtin:bigbench":
        from labelwise.pool import bigbench

        return bigbench.records(log)
    if cfg.source == "builtin:skills":
        from labelwise.pool import skills

        return skills.records(cfg.seed, cfg.skills_scale)
    from labelwise.pool import formats

    return formats.source_records(cfg)


def _built_with(run_dir: Path, cfg) -> bool:
    from labelwise import runio
    from labelwise.config import to_dict

    files = [run_dir / runio.POOL, run_dir / runio.TEST, run_dir / runio.POOL_META]
    if not all(f.exists() for f in files):
        return False
    try:
        return read_meta(run_dir).get("config") == to_dict(cfg)
    except (ValueError, OSError):
        return False


def build_pool(job, force: bool = False, log=print, embed=None) -> Path:
    """Build the pool and the held-out test split into ``job.run_dir``; skip when done."""
    from labelwise import runio
    from labelwise.pool.build import build_tables
    from labelwise.pool.context import warn_overlong

    run_dir = Path(job.run_dir)
    out = run_dir / runio.POOL
    if not force and _built_with(run_dir, job.pool):
        return out
    records, info = load_records(job.pool, log)
    pool, test, meta = build_tables(job.pool, records, info, embed=embed)
    warn_overlong(job, pool, log)
    if meta["n_pool"] == 0:
        raise ValueError(
            f"pool.source {job.pool.source_label}: no prompts left after filtering "
            f"(read {meta['n_read']}, dropped {meta['n_dropped']}: "
            + "; ".join(f"{d['count']} {r}" for r, d in meta["dropped"].items())
            + ")"
        )
    # pool_meta.json goes last: it is what marks the pool as finished.
    runio.write_parquet(run_dir / runio.TEST, test)
    runio.write_parquet(out, pool)
    runio.write_json(run_dir / runio.POOL_META, meta)
    return out


def read_pool(run_dir) -> "pandas.DataFrame":  # noqa: F821
    return _read(Path(run_dir), "POOL")


def read_test(run_dir) -> "pandas.DataFrame":  # noqa: F821
    return _read(Path(run_dir), "TEST")


def read_meta(run_dir) -> dict:
    import json

    from labelwise import runio

    path = Path(run_dir) / runio.POOL_META
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pool metadata; run `labelwise pool CONFIG` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def _read(run_dir: Path, name: str):
    import pandas as pd

    from labelwise import runio
    from labelwise.pool.build import COLUMNS

    path = run_dir / getattr(runio, name)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run `labelwise pool CONFIG` first")
    df = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: column {missing[0]!r} missing; columns found: {', '.join(df.columns)}")
    return df


def pool_dataset(run_dir, split: str = "pool"):
    """The pool (or ``split="test"``) as a Ray Dataset (needs a running Ray or starts one)."""
    import ray

    from labelwise import runio

    if split not in ("pool", "test"):
        raise ValueError(f"split must be 'pool' or 'test', got {split!r}")
    path = Path(run_dir) / (runio.POOL if split == "pool" else runio.TEST)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run `labelwise pool CONFIG` first")
    return ray.data.read_parquet(str(path.resolve()))


def add_arguments(parser) -> None:
    parser.add_argument("--force", action="store_true", help="rebuild even when the pool was built with this config")


def main(job, args) -> int:
    from labelwise.pool.summary import format_summary

    out = build_pool(job, force=getattr(args, "force", False))
    print(format_summary(read_meta(out.parent)))
    print(f"wrote {out}, {out.parent / 'test.parquet'}, {out.parent / 'pool_meta.json'}")
    return 0
