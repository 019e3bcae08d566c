"""The judge stage: pool.parquet -> judgments.parquet, disciplines.parquet, judge_summary.json.

    labelwise judge JOB.yaml [--set judge.kind=openai ...]

An LLM judge (judge.kind: local model or OpenAI-compatible endpoint, judging/backend.py) is
asked three questions about every pool prompt (judging/prompts.py): its Bloom level and score
(1-21), the academic disciplines it needs, and its quality as a task (1-10). Each distinct
discipline then gets a 3-5 sentence description from the same judge, embedded with the
packaged MiniLM model; a prompt's ``discipline_spread`` is the mean pairwise cosine distance
of its disciplines' embeddings (judging/spread.py).

Cached and resumable like the scores (scoring/shards.py's ShardStore): the raw replies of
each round of ``shard_prompts`` prompts are written as a shard under
run_dir/judge_shards/<key>/, the key hashing the judge's identity, the prompt version and the
settings; descriptions go to a store of their own. A rerun asks only what no shard holds.
Replies are parsed when the outputs are assembled (judging/parse.py): a reply that cannot be
parsed is recorded in the prompt's ``error`` column and counted in judge_summary.json, never
dropped; a request that failed (timeout, HTTP error) is asked again by the next run.

The stage runs in ``labelwise run`` when the job has a ``judge:`` section (:func:`wanted`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from labelwise.judging import STAGE
from labelwise.judging.prompts import read_answers
from labelwise.judging.schema import one_line
from labelwise.judging.spread import embed

HELP = "ask an LLM judge about every pool prompt: Bloom level, disciplines, quality (cached, resumable)"
DESCRIPTION_PART = ("description",)


def main(job, args) -> int:
    from labelwise import manifest

    if job.judge is None:
        print("[judge] the job has no judge: section; judging with the defaults (the packaged local model)", file=sys.stderr)
    before = manifest.read(job.run_dir, STAGE)
    path = judge_pool(job)
    print(f"kept {path}" if manifest.read(job.run_dir, STAGE) == before else f"wrote {path}")
    return 0


def wanted(job) -> bool:
    """Whether `labelwise run` runs this stage: the job has a judge: section, or its selector
    reads judgments (thtb, within_task: hardness; then with the section's defaults)."""
    from labelwise.selection import needs_judgments

    if getattr(job, "judge", None) is not None:
        return True
    select = getattr(job, "select", None)
    return select is not None and needs_judgments(select)


def config_of(job):
    from labelwise.judging.config import JudgeStageConfig

    return job.judge if job.judge is not None else JudgeStageConfig()


def outputs() -> list[str]:
    from labelwise import contracts

    return [contracts.JUDGMENTS, contracts.DISCIPLINES, contracts.JUDGE_SUMMARY]


def inputs(job) -> dict:
    """pool.parquet, the local judge's model folder, and scores.parquet when the Bloom judge
    sees the greedy answers."""
    from labelwise import contracts
    from labelwise.models import model_inputs

    cfg = config_of(job)
    found = {contracts.POOL: job.run_path / contracts.POOL}
    if cfg.kind == "local":
        found.update({f"judge_{k}": v for k, v in model_inputs(cfg.model).items()})
    if cfg.with_answer:
        found[contracts.SCORES] = job.run_path / contracts.SCORES
    return found


def settings(job, backend=None) -> dict:
    """What a judgment depends on; also the reply cache's key."""
    from labelwise.judging.backend import make_backend
    from labelwise.judging.parse import PARSER_VERSION
    from labelwise.judging.prompts import PROMPT_VERSION

    cfg = config_of(job)
    backend = backend or make_backend(cfg, job)
    found = {**cfg.settings(), **backend.identity(), "prompt_version": PROMPT_VERSION}
    if cfg.mode == "choice":
        from labelwise.judging.choice import settings as choice_settings

        found.update(choice_settings())
    if cfg.with_answer:  # the answers shown come from these scores (their cache key)
        found["answers_from"] = score_key(job.run_path)
    return {"judge": found, "parser": PARSER_VERSION}  # "judge" is also the reply cache's key


def score_key(run: Path) -> str | None:
    """The settings key of the scores in run_dir (score_summary.json), None without scores."""
    from labelwise import contracts

    try:
        return json.loads((run / contracts.SCORE_SUMMARY).read_text()).get("settings_key")
    except (OSError, ValueError):
        return None


def judge_pool(job, log=print, backend=None) -> Path:
    """Judge every prompt of run_dir/pool.parquet; return run_dir/judgments.parquet. Kept when
    the manifest matches and no judgment waits for a failed request to be asked again."""
    from labelwise import contracts, manifest
    from labelwise.judging.backend import make_backend

    cfg = config_of(job)
    backend = backend or make_backend(cfg, job)
    run = job.run_path
    declared = settings(job, backend)
    summary = run / contracts.JUDGE_SUMMARY
    retry = None
    if summary.exists():
        try:
            old = json.loads(summary.read_text())
            if old.get("request_errors") or old.get("descriptions", {}).get("request_errors"):
                retry = "judge_summary.json counts failed requests that a rerun asks again"
        except ValueError:
            retry = "judge_summary.json is unreadable"

    def build(staged: Path) -> None:
        write_judgments(job, cfg, backend, declared["judge"], staged)

    manifest.run_stage(run, STAGE, inputs(job), declared, outputs(), build, rerun=retry, log=log)
    return run / contracts.JUDGMENTS


def write_judgments(job, cfg, backend, parts: dict, out_dir: Path) -> None:
    if cfg.mode == "choice":
        from labelwise.judging import choice

        return choice.write_judgments(job, cfg, backend, parts, out_dir)
    from labelwise import contracts, manifest, runio
    from labelwise.judging import schema
    from labelwise.judging.prompts import PARTS
    from labelwise.scoring.shards import ShardStore, pick_rows, settings_key
    from labelwise.scoring.stage import read_pool

    pool = read_pool(job.run_path / contracts.POOL)
    answers = read_answers(job.run_path / contracts.SCORES) if cfg.with_answer else {}
    key = settings_key(parts)
    store = ShardStore(job.run_path / contracts.JUDGE_SHARDS / key, describe=parts, final=schema.replied)
    done, retry = store.id_status()
    pending = pool[~pool["id"].isin(done)]
    earlier = latest_rows(store, retry)
    start = time.perf_counter()
    ask_prompts(cfg, backend, pending, answers, store, earlier)
    seconds = time.perf_counter() - start

    replies = store.read_all()
    picked = pick_rows(replies, final=schema.replied)
    rows = replies.take([picked[i] for i in pool["id"]]).to_pylist()
    judged = [judge_row(r, PARTS) for r in rows]

    wanted_names = sorted({d for j in judged for d in (j["disciplines"] or [])})
    desc_parts = {**parts, "part": "descriptions"}
    desc_store = ShardStore(job.run_path / contracts.JUDGE_SHARDS / settings_key(desc_parts), describe=desc_parts,
                            final=schema.replied)
    t_desc = time.perf_counter()
    describe(cfg, backend, wanted_names, desc_store)
    desc_seconds = time.perf_counter() - t_desc
    descriptions, desc_errors = read_descriptions(desc_store, wanted_names)
    embeddings = embed(descriptions)
    add_spread(judged, embeddings, desc_errors)

    name = backend.name
    for j in judged:
        j["judge"] = name
        j["mode"] = "free"
        j["error"] = "; ".join(j.pop("errors")) or None
    disc_rows = [{"discipline": d, "description": descriptions[d], "embedding": embeddings[d].tolist()} for d in descriptions]
    import pyarrow.parquet as pq

    for file, table in [(contracts.JUDGMENTS, schema.table(judged, schema.judgments_schema())),
                        (contracts.DISCIPLINES, schema.table(disc_rows, schema.disciplines_schema()))]:
        with runio.atomic_path(out_dir / file) as tmp:
            pq.write_table(table, tmp)
        manifest.fault(STAGE)
    stats = {"judged_now": int(len(pending)), "cached": int(len(pool) - len(pending)), "seconds": round(seconds, 2),
             "description_seconds": round(desc_seconds, 2), "where": sorted(backend.where)}
    if cfg.with_answer:  # scores.parquet may lack answers (score.answers: false) or not exist yet
        stats["answers_shown"] = int(pool["id"].isin(list(answers)).sum())
    if len(pending):
        stats["seconds_per_prompt"] = seconds / len(pending)
    report = summarize(judged, rows, desc_errors, len(wanted_names), name, key, parts, stats)
    runio.write_json(out_dir / contracts.JUDGE_SUMMARY, report)
    print(format_summary(report), file=sys.stderr)


def latest_rows(store, ids: set[str]) -> dict[str, dict]:
    """id -> its latest cache row, for ids whose rows all hold a failed request."""
    from labelwise.judging import schema
    from labelwise.scoring.shards import pick_rows

    if not ids:
        return {}
    t = store.read_all()
    picked = pick_rows(t, final=schema.replied)
    return {i: row for i, row in zip(sorted(ids), t.take([picked[i] for i in sorted(ids)]).to_pylist())}



def ask_prompts(cfg, backend, pending, answers: dict, store, earlier: dict) -> None:
    """Ask the parts each pending prompt lacks (all three, or those whose request failed last
    time: ``earlier`` maps an id to its latest cache row), one round of ``shard_prompts``
    prompts at a time; each round's replies become one shard (a write point of the stage)."""
    from labelwise import manifest
    from labelwise.judging import schema
    from labelwise.judging.prompts import PARTS, part_prompt

    records = pending.to_dict("records")
    sch = schema.reply_schema(PARTS)
    for lo in range(0, len(records), cfg.shard_prompts):
        chunk = records[lo: lo + cfg.shard_prompts]
        rows, asks = [], []
        for r in chunk:
            before = earlier.get(r["id"], {})
            row = {"id": r["id"], "task": r["task"], **{f"{p}_reply": before.get(f"{p}_reply") for p in PARTS}}
            rows.append(row)
            for p in PARTS:
                if row[f"{p}_reply"] is None:
                    answer = answers.get(r["id"]) if p == "bloom" else None
                    asks.append((row, p, part_prompt(p, r["prompt"], cfg.max_prompt_chars, answer)))
        replies = backend.generate([a[2] for a in asks], cfg.max_new_tokens)
        failed: dict[int, list[str]] = {}
        for (row, part, _), reply in zip(asks, replies):
            if isinstance(reply, BaseException):
                failed.setdefault(id(row), []).append(f"{part}: request failed: {one_line(reply)}")
            else:
                row[f"{part}_reply"] = reply
        for row in rows:
            row["error"] = "; ".join(failed.get(id(row), [])) or None
        store.write(schema.table(rows, sch))
        manifest.fault(STAGE)
        print(f"judge: {min(lo + len(chunk), len(records))}/{len(records)} prompts", file=sys.stderr, flush=True)



def judge_row(row: dict, parts) -> dict:
    """The parsed judgment of one cache row; ``errors`` lists what failed, part by part."""
    from labelwise.judging.parse import parse_bloom, parse_disciplines, parse_quality

    out = {"id": row["id"], "task": row["task"], "bloom_level": None, "bloom_score": None, "disciplines": None,
           "discipline_count": None, "discipline_spread": None, "quality": None, "errors": []}
    failed = {e.split(":", 1)[0]: e for e in (row.get("error") or "").split("; ") if e}
    parsers = {"bloom": parse_bloom, "disciplines": parse_disciplines, "quality": parse_quality}
    for part in parts:
        if part in failed:
            out["errors"].append(failed[part])
            continue
        value, error = parsers[part](row[f"{part}_reply"])
        if error:
            out["errors"].append(error)
        elif part == "bloom":
            out["bloom_level"], out["bloom_score"] = value["level"], value["score"]
        elif part == "disciplines":
            out["disciplines"], out["discipline_count"] = value, len(value)
        else:
            out["quality"] = (value - 1.0) / 9.0
    return out


def describe(cfg, backend, names: list[str], store) -> None:
    """Ask a description for each discipline the store lacks, a round at a time."""
    from labelwise import manifest
    from labelwise.judging import schema
    from labelwise.judging.prompts import description_prompt

    done, _ = store.id_status()
    todo = [n for n in names if n not in done]
    sch = schema.reply_schema(DESCRIPTION_PART)
    for lo in range(0, len(todo), cfg.shard_prompts):
        chunk = todo[lo: lo + cfg.shard_prompts]
        replies = backend.generate([description_prompt(n) for n in chunk], cfg.description_max_new_tokens)
        rows = []
        for n, reply in zip(chunk, replies):
            failed = isinstance(reply, BaseException)
            rows.append({"id": n, "task": "", "description_reply": None if failed else reply,
                         "error": f"description: request failed: {one_line(reply)}" if failed else None})
        store.write(schema.table(rows, sch))
        manifest.fault(STAGE)


def read_descriptions(store, names: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(discipline -> description, discipline -> why it has none)."""
    from labelwise.judging import schema
    from labelwise.judging.parse import parse_description
    from labelwise.scoring.shards import pick_rows

    if not names:
        return {}, {}
    t = store.read_all()
    picked = pick_rows(t, final=schema.replied)
    rows = t.take([picked[n] for n in names]).to_pylist()
    texts, errors = {}, {}
    for n, row in zip(names, rows):
        text, error = (None, row["error"]) if row["error"] else parse_description(row["description_reply"])
        if error:
            errors[n] = error
        else:
            texts[n] = text
    return texts, errors



def add_spread(judged: list[dict], embeddings: dict, desc_errors: dict[str, str]) -> None:
    from labelwise.judging.spread import discipline_spread

    for j in judged:
        names = j["disciplines"]
        if names is None:
            continue
        lacking = [n for n in names if n not in embeddings]
        if lacking:
            why = desc_errors.get(lacking[0], "no description")
            j["errors"].append(f"spread: no description of {lacking[0]!r} ({why})")
            continue
        j["discipline_spread"] = discipline_spread([embeddings[n] for n in names])


def summarize(judged, rows, desc_errors, n_disciplines, name, key, parts, stats) -> dict:
    from labelwise.judging.prompts import PARTS

    n = len(judged)
    failed = {p: sum(any(e.startswith(f"{p}:") for e in (j["error"] or "").split("; ")) for j in judged)
              for p in (*PARTS, "spread")}
    requests = sum(bool(r["error"]) for r in rows)
    return {
        "judge": name,
        "settings_key": key,
        "settings": parts,
        "prompts": n,
        "parsed": {p: n - failed[p] for p in PARTS} | {"all": sum(j["error"] is None for j in judged)},
        "errors": failed,
        "request_errors": requests,
        "descriptions": {"disciplines": n_disciplines, "described": n_disciplines - len(desc_errors),
                         "failed": len(desc_errors), "request_errors": sum("request failed" in e for e in desc_errors.values())},
        "run": stats,
    }


def format_summary(report: dict) -> str:
    n = report["prompts"]
    parsed = ", ".join(f"{p} {c}/{n}" for p, c in report["parsed"].items())
    d = report["descriptions"]
    return (f"[judge] {report['judge']}: parsed {parsed}; failed requests {report['request_errors']} "
            f"(asked again by the next run); disciplines described {d['described']}/{d['disciplines']}")
