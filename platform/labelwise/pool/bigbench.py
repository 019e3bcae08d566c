"""Built-in pool ``builtin:bigbench``: real BIG-bench tasks (bigbench==1.0.0, Apache-2.0).

The sdist on the package registry ships every JSON task as ``task.json``. It is fetched
once into ``<labelwise cache>/bigbench/``: its URL comes from the simple page of pip's
configured index (``PIP_INDEX_URL`` / ``pip config``; PEP 503 HTML or PEP 691 JSON), the
archive is downloaded as a file (nothing in it is run: pip would run its setup.py to read its
metadata) and must have the pinned :data:`SHA256`, also checked on a cached copy, which is
fetched again when it differs. A file lock keeps two processes from fetching at once;
``LABELWISE_BIGBENCH_SDIST`` may point at a local copy of the tar.gz (taken as given). Its
task.json members are read straight from the tar.gz into a small index
(``tasks-v<N>.jsonl.gz``), built once: later pools read only the index.

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

import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

from labelwise.pool.build import Drops
from labelwise.pool.records import Raw
from labelwise.runio import sha256_file

VERSION = "1.0.0"
SDIST = f"bigbench-{VERSION}.tar.gz"
SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"  # of SDIST, as the registry lists it
DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_VERSION = 2  # 2: examples left out are counted by reason
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


def folder() -> Path:
    from labelwise.models import cache_dir

    return cache_dir() / "bigbench"


def index_path() -> Path:
    return folder() / f"tasks-v{INDEX_VERSION}.jsonl.gz"


def fetch_sdist(log=print) -> Path:
    """The bigbench sdist in the cache, downloaded on first use (see the module's docstring)."""
    local = os.environ.get("LABELWISE_BIGBENCH_SDIST")
    if local:
        if not Path(local).exists():
            raise FileNotFoundError(f"LABELWISE_BIGBENCH_SDIST={local}: file not found")
        return Path(local)
    from filelock import FileLock

    target = folder() / SDIST
    folder().mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder() / ".fetch.lock")):
        if target.exists():
            got = sha256_file(target)
            if got == SHA256:
                return target
            log(f"{target}: sha256 {got} is not the pinned {SHA256}; fetching it again")
            target.unlink()
        url = sdist_url(index_urls())
        log(f"fetching BIG-bench tasks (bigbench=={VERSION} sdist, ~360 MB) from {url} into {folder()} ...")
        start = time.time()
        download_verified(url, target, SHA256)
        log(f"fetched {target.name} in {time.time() - start:.0f} s (sha256 verified)")
    return target


def index_urls() -> list[str]:
    """pip's index URL then its extra index URLs, as ``pip config list`` (which includes
    PIP_INDEX_URL / PIP_EXTRA_INDEX_URL) gives them; the registry's default without one."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=120
    )
    rank = {":env:": 4, "site": 3, "user": 2, "global": 1}  # pip's precedence, highest last wins
    found: dict[str, tuple[int, str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        scope, _, name = key.rpartition(".")
        if name in ("index-url", "extra-index-url") and value:
            level = rank.get(scope, 0)
            if name not in found or level >= found[name][0]:
                found[name] = (level, value.strip().strip("'\""))
    main = found.get("index-url", (0, DEFAULT_INDEX))[1]
    extra = found.get("extra-index-url", (0, ""))[1].split()
    return [main, *extra]


def sdist_url(indexes: list[str]) -> str:
    """The URL of SDIST on the first index whose simple page lists it."""
    tried = []
    for index in indexes:
        page = index.rstrip("/") + "/bigbench/"
        try:
            body, content_type, final = _read(page, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.5")
        except (OSError, ValueError) as e:
            tried.append(f"{page} ({e})")
            continue
        for name, href in _links(body, content_type):
            if name == SDIST:
                return urllib.parse.urljoin(final, href).split("#", 1)[0]
        tried.append(f"{page} (no {SDIST})")
    raise FileNotFoundError(
        f"could not find {SDIST} on the package index: {'; '.join(tried)}; set "
        "LABELWISE_BIGBENCH_SDIST to a local bigbench-1.0.0.tar.gz, or use another pool.source"
    )


def _read(url: str, accept: str) -> tuple[bytes, str, str]:
    """(body, content type, final URL) of a simple page; file:// folders read index.html."""
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if path.is_dir():
            path = path / "index.html"
        return path.read_bytes(), "text/html", path.as_uri()
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read(), response.headers.get("Content-Type", ""), response.geturl()


def _links(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """(file name, href) of a PEP 691 JSON or PEP 503 HTML simple page."""
    if "json" in content_type:
        data = json.loads(body)
        return [(f.get("filename", ""), f.get("url", "")) for f in data.get("files", [])]
    from html.parser import HTMLParser

    links: list[tuple[str, str]] = []

    class Anchors(HTMLParser):
        href = None

        def handle_starttag(self, tag, attrs):
            if tag == "a":
                self.href = dict(attrs).get("href")

        def handle_data(self, data):
            if self.href is not None and data.strip():
                links.append((data.strip(), self.href))
                self.href = None

    Anchors().feed(body.decode("utf-8", errors="replace"))
    return links


def download_verified(url: str, target: Path, sha256: str) -> None:
    """Download ``url`` to ``target`` (atomically) if its sha256 is ``sha256``; otherwise an
    error, and nothing is left behind."""
    tmp = target.with_name(target.name + f".part-{os.getpid()}")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            for block in iter(lambda: response.read(1 << 20), b""):
                h.update(block)
                f.write(block)
        if h.hexdigest() != sha256:
            raise ValueError(
                f"{url}: sha256 {h.hexdigest()} is not the pinned {sha256}; not used (set "
                "LABELWISE_BIGBENCH_SDIST to a trusted local copy, or use another pool.source)"
            )
        os.replace(tmp, target)
    except OSError as e:
        raise FileNotFoundError(
            f"could not download {url} ({e}); set LABELWISE_BIGBENCH_SDIST to a local "
            "bigbench-1.0.0.tar.gz, or use another pool.source"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


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


def build_index(sdist: Path, out: Path, log=print) -> dict:
    """Read every task.json of the tar.gz; write the filtered, capped examples to ``out``."""
    start = time.time()
    per_task: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    keywords: dict[str, list[str]] = {}
    # task -> reason -> [(subtask, example number)], for examples left out
    task_drops: dict[str, dict[str, list[tuple[str, int]]]] = {}
    with tarfile.open(sdist) as tar:
        for member in tar:
            if not member.name.endswith("/task.json") or "/benchmark_tasks/" not in member.name:
                continue
            parts = member.name.split("/benchmark_tasks/", 1)[1].split("/")[:-1]
            name, sub = parts[0], "/".join(parts[1:])
            if name in BBH_TASKS:
                skipped[name] = "evaluated by BIG-Bench-Hard"
                continue
            try:
                task = json.load(tar.extractfile(member))
            except (json.JSONDecodeError, UnicodeDecodeError):
                skipped[name] = "unreadable task.json"
                continue
            if not sub:
                keywords[name] = list(task.get("keywords") or [])
            left_out: dict[str, list[int]] = {}
            for prompt, answer in task_examples(task, left_out):
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


def ensure_index(log=print) -> Path:
    from filelock import FileLock

    out = index_path()
    if out.exists():
        return out
    folder().mkdir(parents=True, exist_ok=True)
    sdist = fetch_sdist(log)
    with FileLock(str(folder() / ".index.lock")):
        if not out.exists():
            build_index(sdist, out, log)
    return out


def read_index(path: Path) -> tuple[dict, Iterator[dict]]:
    f = gzip.open(path, "rt", encoding="utf-8")
    info = json.loads(f.readline())["info"]

    def rows():
        with f:
            for line in f:
                yield json.loads(line)

    return info, rows()


def records(log=print) -> tuple[Iterator[Raw], dict]:
    path = ensure_index(log)
    info, rows = read_index(path)

    def gen():
        for i, r in enumerate(rows, 2):
            yield Raw(
                prompt=r["prompt"],
                response=r["response"],
                task=r["task"],
                source="bigbench",
                where=f"{path.name}:{i} ({r['task']}{'/' + r['subtask'] if r['subtask'] else ''})",
            )

    meta = {
        "builtin": "bigbench",
        "bigbench_version": info["bigbench_version"],
        "index": str(path),
        "index_version": info["index_version"],
        "tasks_available": len(info["tasks"]),
        "excluded_bbh_tasks": sorted(BBH_TASKS),
        "skipped_tasks": info.get("skipped_tasks", {}),
        # examples the index left out, by reason: pool_meta.json counts them as dropped
        "dropped_at_source": info.get("dropped", {}),
    }
    return gen(), meta


def available_tasks() -> dict:
    """Task name -> {examples, available, keywords}, from the index (built if needed)."""
    info, rows = read_index(ensure_index())
    rows.close()
    return info["tasks"]
