"""Stage manifests: a stage's outputs commit as one unit, and a manifest written last says
what they were made from.

    run_dir/.manifests/<stage>.json   {"stage", "inputs": {name: digest}, "settings": {...},
                                       "outputs": {name: digest}}

A stage is kept only when its manifest exists and the inputs, the settings and the outputs
on disk all match it; anything else runs it again, and :func:`why_rerun` says why.

The outputs are written into ``run_dir/.staging/<stage>/`` and committed by :func:`commit`:

1. ``.staging/<stage>/.commit.json`` (the new manifest) is written atomically: the commit point;
2. the old manifest is removed; 3. each output is moved into place; 4. the manifest is
   written; 5. the staging folder is removed.

A crash before 1 leaves the old set and its manifest (the staging folder is deleted by the
next run); a crash after 1 is finished by the next run (:func:`recover` does steps 2-5 again),
which gives the new set. So a run folder never holds a mix that a rerun would keep.

Digests: a file up to :data:`SMALL_FILE` bytes is hashed whole; a larger one is its size,
mtime and a hash of three samples (start, middle, end). A folder is the digest of its files.
Moving a file keeps its mtime, so a committed output keeps its digest.

Test hook: ``LABELWISE_FAULT=<stage>:<n>`` raises :class:`InjectedFault` at the n-th write
point of that stage (every staged write and every commit step calls :func:`fault`);
``LABELWISE_FAULT=<stage>:<n>:kill`` kills the process there with SIGKILL instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

from labelwise.contracts import MANIFESTS, STAGING

COMMIT = ".commit.json"
SMALL_FILE = 8 * 2**20
SAMPLE = 2**20
FAULT_ENV = "LABELWISE_FAULT"


class InjectedFault(RuntimeError):
    """Raised by :func:`fault` (tests only)."""


_fault = {"spec": None, "count": 0}


def fault(stage: str) -> None:
    """A write point of ``stage``: fails here when LABELWISE_FAULT asks for it (tests)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, n, *how = spec.split(":")
    if name != stage:
        return
    if _fault["spec"] != spec:
        _fault.update(spec=spec, count=0)
    _fault["count"] += 1
    if _fault["count"] != int(n):
        return
    if how == ["kill"]:
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"{FAULT_ENV}={spec}: injected failure at write point {n} of {stage}")


def reset_fault() -> None:
    _fault.update(spec=None, count=0)


# ---------------------------------------------------------------------------- digests


def file_digest(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if st.st_size <= SMALL_FILE:
            for chunk in iter(lambda: f.read(2**20), b""):
                h.update(chunk)
            return f"sha256:{h.hexdigest()}"
        for offset in (0, st.st_size // 2 - SAMPLE // 2, st.st_size - SAMPLE):
            f.seek(offset)
            h.update(f.read(SAMPLE))
    return f"size:{st.st_size},mtime_ns:{st.st_mtime_ns},sampled:{h.hexdigest()}"


def digest(path: str | Path | None) -> str | None:
    """The digest of a file or folder; None when it does not exist."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{file_digest(p)}\n".encode())
    return f"folder:{h.hexdigest()}"


def digests(paths: dict[str, str | Path | None]) -> dict[str, str | None]:
    return {name: digest(p) for name, p in paths.items()}


def plain(settings: dict) -> dict:
    """Settings as they read back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


# ---------------------------------------------------------------------------- manifests


def manifest_path(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / MANIFESTS / f"{stage}.json"


def staging_dir(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / STAGING / stage


def read(run_dir: str | Path, stage: str) -> dict | None:
    """The stage's manifest, or None when there is none (or it cannot be read)."""
    try:
        return json.loads(manifest_path(run_dir, stage).read_text())
    except (OSError, ValueError):
        return None


def why_rerun(run_dir: str | Path, stage: str, inputs: dict, settings: dict, outputs: list[str]) -> str | None:
    """None when the manifest matches ``inputs`` (digests), ``settings`` and the outputs on
    disk; otherwise the reasons the stage must run, for a person."""
    old = read(run_dir, stage)
    if old is None:
        return "no manifest (first run, or the last run did not finish)"
    reasons = [f"setting {k} changed ({a!r} -> {b!r})" for k, a, b in _changed(old.get("settings", {}), plain(settings))]
    recorded = old.get("inputs", {})
    for name in sorted(set(inputs) | set(recorded)):
        if inputs.get(name) != recorded.get(name):
            reasons.append(f"input {name} {'is missing' if inputs.get(name) is None else 'changed'}")
    recorded = old.get("outputs", {})
    for name in outputs:
        if name not in recorded:
            reasons.append(f"output {name} not in the manifest")
        elif digest(Path(run_dir) / name) != recorded[name]:
            reasons.append(f"output {name} {'is missing' if not (Path(run_dir) / name).exists() else 'changed on disk'}")
    if not reasons:
        return None
    more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return "; ".join(reasons[:3]) + more


def _changed(old, new, prefix: str = ""):
    """(dotted key, old value, new value) for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            yield from _changed(old.get(k), new.get(k), f"{prefix}{k}.")
    elif old != new:
        yield prefix.rstrip("."), old, new


def fresh_staging(run_dir: str | Path, stage: str) -> Path:
    """An empty staging folder for the stage's new outputs."""
    path = staging_dir(run_dir, stage)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def commit(run_dir: str | Path, stage: str, inputs: dict, settings: dict, outputs: list[str]) -> None:
    """Move the staged ``outputs`` into ``run_dir`` as one unit and write the manifest last.
    ``inputs`` are the digests taken before the stage read them."""
    from labelwise import runio

    staged = staging_dir(run_dir, stage)
    record = {
        "stage": stage,
        "inputs": inputs,
        "settings": plain(settings),
        "outputs": {name: digest(staged / name) for name in outputs},
        "committed_ns": time.time_ns(),  # tells a rewrite of identical files from a kept set
    }
    runio.write_json(staged / COMMIT, record)  # the commit point
    fault(stage)
    _finish(Path(run_dir), stage)


def _finish(run_dir: Path, stage: str) -> None:
    """Steps 2-5 of a commit whose .commit.json is written; safe to repeat after a crash."""
    from labelwise import runio

    staged = staging_dir(run_dir, stage)
    record = json.loads((staged / COMMIT).read_text())
    manifest_path(run_dir, stage).unlink(missing_ok=True)
    fault(stage)
    for name, dig in record["outputs"].items():
        src, dst = staged / name, run_dir / name
        if os.path.lexists(src):
            if dst.is_dir() and not dst.is_symlink():
                old = staged / f".old-{name}"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(dst, old)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            fault(stage)
        elif dig is None:  # declared, not produced this time: an old one must not stay
            _remove(dst)
    runio.write_json(manifest_path(run_dir, stage), record)
    fault(stage)
    _drop_staging(staged)


def recover(run_dir: str | Path, stage: str, outputs: list[str] = ()) -> None:
    """Finish a commit that a crash interrupted after its commit point, or drop the staged
    files of one interrupted before it; remove temporary files of killed writes."""
    from labelwise import runio

    run_dir = Path(run_dir)
    staged = staging_dir(run_dir, stage)
    if (staged / COMMIT).exists():
        _finish(run_dir, stage)
    elif staged.exists():
        _drop_staging(staged)
    for name in [*outputs, f"{MANIFESTS}/{stage}.json"]:
        target = run_dir / name
        runio.remove_tmp_files(target.parent, target.name)


def _drop_staging(staged: Path) -> None:
    """Remove a stage's staging folder, and .staging itself once no stage uses it."""
    shutil.rmtree(staged, ignore_errors=True)
    try:
        staged.parent.rmdir()
    except OSError:  # another stage's staging folder is there
        pass


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def run_stage(run_dir, stage: str, inputs: dict, settings: dict, outputs: list[str], build, rerun: str | None = None,
              log=print) -> str | None:
    """Keep the stage or run it: ``build(folder)`` writes every output into ``folder`` (the
    staging folder), then they are committed. ``inputs`` maps names to the files or folders
    the stage reads; ``rerun`` is a reason to run even when the manifest matches (--force).
    Returns None when kept, else why it ran."""
    recover(run_dir, stage, outputs)
    before = digests(inputs)
    reason = rerun or why_rerun(run_dir, stage, before, settings, outputs)
    if reason is None:
        log(f"[{stage}] kept: inputs, settings and outputs match {manifest_path(run_dir, stage)}")
        return None
    log(f"[{stage}] running: {reason}")
    build(fresh_staging(run_dir, stage))
    commit(run_dir, stage, before, settings, outputs)
    return reason
