"""The score cache: Parquet shards under run_dir/score_shards/<settings key>/.

The key hashes the model fingerprint and the generation settings; inside it each shard holds
finished prompts by id. Shards are written atomically (temporary name, then rename), so a
crash leaves only whole shards, and a rerun scores only the ids no shard holds a final row for.

A row is final when it was scored, or when its error is one a rerun would reproduce
(schema.is_final: an over-long prompt). A row with any other error (out of memory, ...) is
kept but not final: the next run scores that prompt again and writes a new shard; shards are
never rewritten, and ``pick_rows`` takes, per id, its first final row, else its latest row.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labelwise.runio import atomic_path, remove_tmp_files, write_json


def settings_key(parts: dict) -> str:
    """A short stable hash of everything that changes a prompt's scores."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _score_final(errors):
    from labelwise.scoring.schema import final_mask

    return final_mask(errors)


class ShardStore:
    """``final``: numpy bool per row of an ``error`` column, True where the row is finished
    (default: the score stage's schema.final_mask); other stages (judge) bring their own."""

    def __init__(self, root: str | Path, describe: dict | None = None, final=None):
        self.final = final or _score_final
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in self.root.parent.iterdir():  # shards a killed run was writing, any settings
            if folder.is_dir():
                remove_tmp_files(folder)
        self.describe = describe
        if describe is not None and not (self.root / "settings.json").exists():
            write_json(self.root / "settings.json", describe)
        self.written = 0

    def shard_paths(self) -> list[Path]:
        return sorted(self.root.glob("part-*.parquet"))

    def read_all(self) -> pa.Table | None:
        tables = []
        for path in self.shard_paths():
            try:
                tables.append(pq.read_table(path))
            except Exception as e:  # an atomic write never leaves one; say which file if it happens
                raise ValueError(f"{path}: unreadable score shard ({e}); delete it to rescore its prompts") from None
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="default")

    def id_status(self) -> tuple[set[str], set[str]]:
        """(done, retry): ids that have a final row (scored, or an error a rerun would
        reproduce), and ids whose rows all hold an error that is not final (the next run
        scores them again). One read of the id and error columns of every shard."""
        done: set[str] = set()
        seen: set[str] = set()
        for path in self.shard_paths():
            try:
                t = pq.read_table(path, columns=["id", "error"])
            except Exception as e:
                raise ValueError(f"{path}: unreadable score shard ({e}); delete it to rescore its prompts") from None
            ids = np.asarray(t.column("id").to_pylist(), dtype=object)
            seen.update(ids.tolist())
            done.update(ids[self.final(t.column("error"))].tolist())
        return done, seen - done

    def write(self, table: pa.Table) -> Path | None:
        """Write one shard (atomically); names are unique and sort in write order."""
        if table.num_rows == 0:
            return None
        ids = "\n".join(sorted(table.column("id").to_pylist()))
        digest = hashlib.sha256(ids.encode()).hexdigest()[:12]
        path = self.root / f"part-{time.time_ns():020d}-{digest}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        self.written += 1
        return path


def pick_rows(table: pa.Table, final=None) -> dict[str, int]:
    """Row index per id in ``table`` (shards concatenated in write order): the id's first final
    row; an id without one gets its latest row (the most recent retryable error). ``final`` as
    for ShardStore."""
    final = (final or _score_final)(table.column("error"))
    pick: dict[str, int] = {}
    for row, id_ in enumerate(table.column("id").to_pylist()):
        prev = pick.get(id_)
        if prev is None or not final[prev]:
            pick[id_] = row
    return pick
