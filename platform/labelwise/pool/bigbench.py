"""Built-in pool ``builtin:bigbench``: real BIG-bench tasks (bigbench 1.0.0, Apache-2.0), read
from a local copy. Nothing here reaches the network.

The copy is given by ``pool.bigbench_path`` or, without it, by the environment variable
``LABELWISE_BIGBENCH`` (``LABELWISE_BIGBENCH_SDIST`` is a synonym); the config wins. It is
either the bigbench 1.0.0 sdist ``bigbench-1.0.0.tar.gz`` (~360 MB; the package registry
listed it with the sha256 :data:`SHA256` but serves only 0.0.1 now), or a folder of the
tasks: the sdist extracted or a checkout of github.com/google/BIG-bench (the folder holding
``bigbench/benchmark_tasks/<task>/task.json``, a folder above it, ``bigbench/`` or
``benchmark_tasks`` itself). An sdist whose sha256 differs from the pinned one is taken as
given, with a warning; its sha256 is recorded in pool_meta.json's ``source``. Without a
copy, :func:`locate` raises one error that says what to download and where to point it.

Every task.json of the copy is read (straight from the tar.gz, nothing extracted) into a
small index, built once per copy and read by later pools:
``<labelwise cache>/bigbench/tasks-v<N>-<copy key>.jsonl.gz``, keyed by the sdist's sha256
or by the folder's resolved path and its task.json listing (names, sizes, mtimes), so a
different copy gets its own index, and the pool stage's settings name it (a different
copy rebuilds the pool). The tar.gz and its extracted folder give the same index: the
task.json files are merged in the order of their paths, whatever the archive's order.

What the index keeps: text tasks (keyword "non-language" excluded: ASCII art, chess
boards, images) that are not evaluated by BIG-Bench-Hard (those are a benchmark here);
examples with a string input and a short target (<= 64 characters): the ``target`` of
generative tasks, or the best choice of multiple-choice tasks, whose choices are listed
in the prompt ("Options:"). A task with subtasks is one task (its subtasks merged). At most
500 examples per task (a seeded, order-independent sample); pool.max_per_task caps more.
Every example left out of a kept (or non-language) task is counted by reason in the index
(``info["dropped"]``) and reaches pool_meta.json's ``dropped`` counts and the pool summary;
tasks left out whole (BBH, unreadable) are listed in ``skipped_tasks``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import tarfile
import time
from pathlib import Path
from typing import IO, Callable, Iterator

from labelwise.pool.build import Drops
from labelwise.pool.records import Raw
from labelwise.runio import sha256_file

VERSION = "1.0.0"
SDIST = f"bigbench-{VERSION}.tar.gz"
SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"  # of SDIST, as the registry listed it
ENV = "LABELWISE_BIGBENCH"  # the copy, when pool.bigbench_path is not set
ENV_SYNONYMS = ("LABELWISE_BIGBENCH_SDIST",)  # older name, still read (after ENV)
CONFIG_KEY = "pool.bigbench_path"
INDEX_VERSION = 3  # 2: examples left out are counted by reason; 3: one index per copy, files merged in path order
MAX_EXAMPLES = 500
MAX_TARGET_CHARS = 64
MAX_INPUT_CHARS = 4000
MAX_PREFIX_CHARS = 400
MAX_CHOICES = 10
# BIG-bench names of the 23 task families BIG-Bench-Hard evaluates (BBH spells some differently).
BBH_TASKS = frozenset(
    """boolean_expressions causal_judgment date_understanding disambiguation_qa dyck_languages
    formal_fallacies_syllogisms_negation geometric_shapes hyperbaton logical_deduction
    movie_recommendation multistep_arithmetic navigate object_counting penguins_in_a_table
    reasoning_about_colored_objects ruin_names salient_translation_error_detection snarks
    sports_understanding temporal_sequences tracking_shuffled_objects web_of_lies
    word_sorting""".split()
)
EXCLUDED_KEYWORDS = frozenset({"non-language"})
HOW_TO_GET_IT = (
    "builtin:bigbench reads a local copy of the BIG-bench tasks and downloads nothing: get the "
    f"bigbench {VERSION} sdist {SDIST} (~360 MB, sha256 {SHA256} as the package registry listed it) "
    "or a checkout of github.com/google/BIG-bench, then set "
    f"{CONFIG_KEY}: /path/to/{SDIST} (or a folder of it, extracted) in the job's YAML, or "
    f"{ENV}=/path/to/{SDIST} in the environment; the default pool builtin:multitask needs nothing"
)


def folder() -> Path:
    from labelwise.models import cache_dir

    return cache_dir() / "bigbench"


@dataclasses.dataclass(frozen=True)
class Copy:
    """A local copy of the BIG-bench tasks, as :func:`locate` found it."""

    path: Path  # the sdist, or the folder holding the task folders (benchmark_tasks)
    kind: str  # "sdist" or "folder"
    given_by: str  # pool.bigbench_path, LABELWISE_BIGBENCH or LABELWISE_BIGBENCH_SDIST
    key: str  # names its index: sdist-<sha256[:16]> or folder-<digest[:16]>
    sha256: str | None = None  # of the sdist

    def info(self) -> dict:
        """What pool_meta.json records about the copy."""
        out = {"copy": str(self.path), "copy_kind": self.kind, "copy_given_by": self.given_by, "copy_key": self.key}
        if self.sha256:
            out.update(sha256=self.sha256, sha256_pinned=SHA256, sha256_matches_pinned=self.sha256 == SHA256)
        return out


def _given(path: str | None) -> tuple[str, str] | None:
    """(where it was given, the path as given): the config first, then the environment."""
    if path is not None:
        return CONFIG_KEY, path
    for name in (ENV, *ENV_SYNONYMS):
        if os.environ.get(name, "").strip():
            return name, os.environ[name].strip()
    return None


def _missing(prefix: str = "") -> str:
    cached = folder() / SDIST
    hint = (f" (a copy fetched by an earlier labelwise lies at {cached}: {CONFIG_KEY} may name it)"
            if cached.is_file() else "")
    return prefix + HOW_TO_GET_IT + hint


def locate(path: str | None = None, log: Callable[[str], object] | None = print) -> Copy:
    """The local copy named by ``path`` (pool.bigbench_path) or by the environment; a clear
    error when none is named or it is not there. ``log`` gets the warning about an sdist whose
    sha256 is not the pinned one (None: no warning)."""
    from labelwise.pool.readers import expand

    given = _given(path)
    if given is None:
        raise FileNotFoundError(_missing(f"no copy of BIG-bench given ({CONFIG_KEY} and {ENV} are unset): "))
    where, raw = given
    p = Path(expand(raw))
    if not p.exists():
        raise FileNotFoundError(_missing(f"{where}={raw}: no such file or folder. "))
    if p.is_dir():
        tasks = tasks_folder(p, f"{where}={raw}")
        if tasks is None:
            raise FileNotFoundError(_missing(
                f"{where}={raw}: no BIG-bench tasks in this folder (looked for "
                "bigbench/benchmark_tasks/<task>/task.json in it and in the folders just under it). "))
        return Copy(tasks.resolve(), "folder", where, "folder-" + _folder_digest(tasks)[:16])
    if not tarfile.is_tarfile(p):
        raise ValueError(f"{where}={raw}: not a tar archive; give {SDIST} or a folder of the tasks. " + HOW_TO_GET_IT)
    digest = _sha256(p)
    if digest != SHA256 and log is not None:
        log(f"warning: {where}={raw}: sha256 {digest} is not the pinned {SHA256} of {SDIST}; "
            "using it as given (recorded in pool_meta.json)")
    return Copy(p.resolve(), "sdist", where, "sdist-" + digest[:16], digest)


_SHA256_SEEN: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """sha256 of the sdist, remembered per (path, size, mtime) for this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_SEEN:
        _SHA256_SEEN[key] = sha256_file(path)
    return _SHA256_SEEN[key]


def _has_tasks(path: Path) -> bool:
    return path.is_dir() and not (path / "task.json").exists() and any(path.glob("*/task.json"))


def tasks_folder(path: Path, label: str | None = None) -> Path | None:
    """The folder of task folders (``benchmark_tasks``) in or at ``path``: its
    ``benchmark_tasks``, ``bigbench/benchmark_tasks``, ``*/bigbench/benchmark_tasks`` (the
    folder the sdist was extracted into, or one holding a checkout) or ``path`` itself; None
    when there is none, an error when several folders below it hold tasks."""
    for candidate in (path / "benchmark_tasks", path / "bigbench" / "benchmark_tasks"):
        if _has_tasks(candidate):
            return candidate
    below = [c for c in sorted(path.glob("*/bigbench/benchmark_tasks")) if _has_tasks(c)]
    if len(below) > 1:
        raise ValueError(f"{label or path}: several copies of BIG-bench in this folder "
                         f"({', '.join(str(c.parents[1]) for c in below)}); name one")
    if below:
        return below[0]
    return path if _has_tasks(path) else None


def _folder_files(tasks: Path) -> list[tuple[tuple[str, ...], Path]]:
    """(task folder parts, file) of every task.json under ``tasks``, in path order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(tasks):
        dirnames.sort()
        if "task.json" in filenames and Path(dirpath) != tasks:
            found.append((Path(dirpath).relative_to(tasks).parts, Path(dirpath) / "task.json"))
    return sorted(found)


def _folder_digest(tasks: Path) -> str:
    """sha256 of the folder's resolved path and its task.json listing (path, size, mtime)."""
    h = hashlib.sha256(str(tasks.resolve()).encode())
    for parts, file in _folder_files(tasks):
        st = file.stat()
        h.update(f"\n{'/'.join(parts)}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()


def index_path(copy: Copy) -> Path:
    return folder() / f"tasks-v{INDEX_VERSION}-{copy.key}.jsonl.gz"


def _task_files(source: Path) -> Iterator[tuple[tuple[str, ...], IO[bytes]]]:
    """(task folder parts below benchmark_tasks, open file) of every task.json of an sdist (in
    the archive's order) or of a folder (see :func:`tasks_folder`); the caller closes each."""
    if source.is_dir():
        tasks = tasks_folder(source)
        if tasks is None:
            raise FileNotFoundError(f"{source}: no bigbench/benchmark_tasks/<task>/task.json in this folder")
        for parts, file in _folder_files(tasks):
            yield parts, file.open("rb")
        return
    with tarfile.open(source) as tar:
        for member in tar:
            name = "/" + member.name
            if not member.isfile() or not name.endswith("/task.json") or "/benchmark_tasks/" not in name:
                continue
            parts = tuple(name.split("/benchmark_tasks/", 1)[1].split("/")[:-1])
            if parts:
                yield parts, tar.extractfile(member)


# Why an example of a task is left out (the keys of the index's dropped counts).
DROP_INPUT = "BIG-bench: input missing, not a string or empty"
DROP_NO_TARGET = "BIG-bench: no target and no target_scores"
DROP_CHOICES = f"BIG-bench: multiple choice with fewer than 2 or more than {MAX_CHOICES} choices"
DROP_SCORES = "BIG-bench: target_scores not comparable numbers"
DROP_TIE = "BIG-bench: multiple choice with a tie for the best choice"
DROP_LONG_TARGET = f"BIG-bench: target longer than {MAX_TARGET_CHARS} characters"
DROP_LONG_INPUT = f"BIG-bench: input longer than {MAX_INPUT_CHARS} characters"
DROP_CAP = f"BIG-bench: over the {MAX_EXAMPLES} examples kept per task in the index"
DROP_NON_LANGUAGE = "BIG-bench: task is not a text task (keyword non-language)"


def _target(example: dict) -> tuple[str | None, list[str] | None, str | None]:
    """(answer, choices or None, None), or (None, None, reason) when the example is not usable."""
    target = example.get("target")
    if isinstance(target, list):
        target = next((t for t in target if isinstance(t, str) and t.strip()), None)
    if isinstance(target, str) and target.strip():
        return target.strip(), None, None
    scores = example.get("target_scores")
    if not isinstance(scores, dict) or not scores:
        return None, None, DROP_NO_TARGET
    if not 2 <= len(scores) <= MAX_CHOICES:
        return None, None, DROP_CHOICES
    try:
        best = max(scores.values())
    except TypeError:
        return None, None, DROP_SCORES
    winners = [c for c, s in scores.items() if s == best]
    if len(winners) != 1:
        return None, None, DROP_TIE
    if not isinstance(winners[0], str) or not winners[0].strip():
        return None, None, DROP_NO_TARGET
    return winners[0].strip(), [str(c) for c in scores], None


def task_examples(task: dict, dropped: dict[str, list[int]] | None = None) -> Iterator[tuple[str, str]]:
    """(prompt, answer) pairs of one parsed task.json that pass the filters. Each example
    left out is recorded in ``dropped`` (reason -> example numbers, 1-based)."""

    def drop(reason: str, i: int) -> None:
        if dropped is not None:
            dropped.setdefault(reason, []).append(i)

    prefix = task.get("task_prefix") or ""
    prefix = prefix.strip() if len(prefix) <= MAX_PREFIX_CHARS else ""
    for i, ex in enumerate(task.get("examples") or [], 1):
        if not isinstance(ex, dict) or not isinstance(ex.get("input"), str) or not ex["input"].strip():
            drop(DROP_INPUT, i)
            continue
        answer, choices, reason = _target(ex)
        if answer is None:
            drop(reason or DROP_NO_TARGET, i)
            continue
        if len(answer) > MAX_TARGET_CHARS:
            drop(DROP_LONG_TARGET, i)
            continue
        if len(ex["input"]) > MAX_INPUT_CHARS:
            drop(DROP_LONG_INPUT, i)
            continue
        prompt = ex["input"].strip()
        if prefix:
            prompt = f"{prefix}\n\n{prompt}"
        if choices:
            prompt += "\nOptions:\n" + "\n".join(f"- {c}" for c in choices)
        yield prompt, answer


def _rank(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def build_index(source: Path, out: Path, log=print) -> dict:
    """Read every task.json of the sdist (tar.gz) or folder; write the filtered, capped
    examples to ``out``. The files are merged in the order of their paths, so the tar.gz and
    its extracted folder give the same index."""
    start = time.time()
    # task folder parts -> (keywords of a top-level task.json, examples, left out) or a reason
    parsed: dict[tuple[str, ...], tuple[list[str] | None, list[tuple[str, str]], dict[str, list[int]]] | str] = {}
    n_files = 0
    for parts, f in _task_files(Path(source)):
        n_files += 1
        with f:
            if parts[0] in BBH_TASKS:
                parsed[parts] = "evaluated by BIG-Bench-Hard"
                continue
            try:
                task = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError):
                parsed[parts] = "unreadable task.json"
                continue
        left_out: dict[str, list[int]] = {}
        examples = list(task_examples(task, left_out))
        parsed[parts] = (list(task.get("keywords") or []) if len(parts) == 1 else None, examples, left_out)
    if not n_files:
        raise FileNotFoundError(f"{source}: no bigbench/benchmark_tasks/<task>/task.json in it")
    per_task: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    keywords: dict[str, list[str]] = {}
    # task -> reason -> [(subtask, example number)], for examples left out
    task_drops: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for parts in sorted(parsed):
        name, sub = parts[0], "/".join(parts[1:])
        got = parsed[parts]
        if isinstance(got, str):
            skipped[name] = got
            continue
        task_keywords, examples, left_out = got
        if task_keywords is not None:
            keywords[name] = task_keywords
        for prompt, answer in examples:
            per_task.setdefault(name, []).append({"task": name, "subtask": sub, "prompt": prompt, "response": answer})
        for reason, numbers in left_out.items():
            task_drops.setdefault(name, {}).setdefault(reason, []).extend((sub, i) for i in numbers)
    rows = []
    tasks = {}
    dropped = Drops()  # examples left out, by reason, with the first few places

    def place(name: str, sub: str) -> str:
        return f"{name}/{sub}" if sub else name

    for name in sorted(set(per_task) | set(task_drops)):
        examples = per_task.get(name, [])
        if EXCLUDED_KEYWORDS & set(keywords.get(name, [])):
            skipped[name] = "not a text task (keyword non-language)"
            n_left_out = sum(len(v) for v in task_drops.get(name, {}).values())
            if examples or n_left_out:
                dropped.add(DROP_NON_LANGUAGE, name, len(examples) + n_left_out)
            continue
        for reason, places in sorted(task_drops.get(name, {}).items()):
            for sub, i in places:
                dropped.add(reason, f"{place(name, sub)} example {i}")
        ranked = sorted(examples, key=lambda r: _rank(r["subtask"] + "\x00" + r["prompt"]))
        for r in ranked[MAX_EXAMPLES:]:
            dropped.add(DROP_CAP, place(name, r["subtask"]))
        kept = sorted(ranked[:MAX_EXAMPLES], key=lambda r: (r["subtask"], r["prompt"]))
        if not kept:
            skipped[name] = "no usable examples"
            continue
        n_left_out = sum(len(v) for v in task_drops.get(name, {}).values()) + len(ranked) - len(kept)
        tasks[name] = {"examples": len(kept), "available": len(examples), "dropped": n_left_out,
                       "keywords": keywords.get(name, [])}
        rows.extend(kept)
    info = {
        "bigbench_version": VERSION,
        "index_version": INDEX_VERSION,
        "tasks": tasks,
        "skipped_tasks": dict(sorted(skipped.items())),
        "dropped": dropped.as_dict(),
        "built_seconds": round(time.time() - start, 1),
    }
    tmp = out.with_name(out.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"info": info}) + "\n")
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    log(f"BIG-bench index: {len(tasks)} tasks, {len(rows)} examples "
        f"({sum(dropped.counts.values())} left out, by reason in pool_meta.json), built in {info['built_seconds']} s -> {out}")
    return info


def ensure_index(copy: Copy, log=print) -> Path:
    """The index of ``copy``, built on first use (a file lock keeps two processes from
    building it at once)."""
    from filelock import FileLock

    out = index_path(copy)
    if out.exists():
        return out
    folder().mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder() / ".index.lock")):
        if not out.exists():
            log(f"BIG-bench: indexing the tasks of {copy.path} (once for this copy) ...")
            build_index(copy.path, out, log)
    return out


def read_index(path: Path) -> tuple[dict, Iterator[dict]]:
    f = gzip.open(path, "rt", encoding="utf-8")
    info = json.loads(f.readline())["info"]

    def rows():
        with f:
            for line in f:
                yield json.loads(line)

    return info, rows()


def records(path: str | None = None, log=print) -> tuple[Iterator[Raw], dict]:
    """The examples of the index of the copy named by ``path`` (pool.bigbench_path) or by
    the environment (see :func:`locate`), and the source info for pool_meta.json."""
    copy = locate(path, log)
    index = ensure_index(copy, log)
    info, rows = read_index(index)

    def gen():
        for i, r in enumerate(rows, 2):
            yield Raw(
                prompt=r["prompt"],
                response=r["response"],
                task=r["task"],
                source="bigbench",
                where=f"{index.name}:{i} ({r['task']}{'/' + r['subtask'] if r['subtask'] else ''})",
            )

    meta = {
        "builtin": "bigbench",
        "bigbench_version": info["bigbench_version"],
        **copy.info(),
        "index": str(index),
        "index_version": info["index_version"],
        "tasks_available": len(info["tasks"]),
        "excluded_bbh_tasks": sorted(BBH_TASKS),
        "skipped_tasks": info.get("skipped_tasks", {}),
        # examples the index left out, by reason: pool_meta.json counts them as dropped
        "dropped_at_source": info.get("dropped", {}),
    }
    return gen(), meta


def available_tasks(path: str | None = None, log=print) -> dict:
    """Task name -> {examples, available, dropped, keywords}, from the index of the copy
    (built if needed)."""
    info, rows = read_index(ensure_index(locate(path, log), log))
    rows.close()
    return info["tasks"]
