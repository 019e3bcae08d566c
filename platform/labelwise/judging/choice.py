"""``judge.mode: choice``: every THTB question as a fixed set of options, scored by the
log-likelihood of each option as the first token of the judge's reply.

Questions per pool prompt (the rendered instruction ends with "Answer with ..."):

* Bloom level: options "1".."6" (Remember .. Create). ``bloom_score`` is the expected value of
  the authors' 1-21 band midpoints (Remember 1-3 -> 2, Understand 4-6 -> 5, Apply 7-9 -> 8,
  Analyze 10-12 -> 11, Evaluate 13-15 -> 14, Create 16-21 -> 18.5; thtb-method.md) under the
  options' softmax; ``bloom_level`` is the most probable level.
* Prompt quality: options "0".."9" (ten levels: the free mode's 1-10 shifted by one so that
  every option is one token; "10" is two tokens in most vocabularies and an endpoint's
  ``top_logprobs`` only covers the first). ``quality`` = E[option] / 9, in [0, 1] like the
  free mode's (q - 1) / 9.
* Each discipline of the shipped list (judging/data/disciplines.json, with its source):
  "Yes" / "No". ``discipline_probs`` holds P(yes) per discipline (the list's order, which is
  disciplines.parquet's); ``disciplines`` are those with P(yes) >= 0.5, ``discipline_count``
  their number and ``discipline_spread`` the mean pairwise cosine distance of their shipped
  descriptions' MiniLM embeddings (as in free mode).

The options' log-probabilities are renormalized over the options (a softmax), so every
prompt gets a judgment and expected values have no ties. The option probabilities go into
judgments.parquet (``bloom_probs``, ``quality_probs``, ``discipline_probs``) with
``mode = "choice"``.

Engines: the local HF model answers the evaluation runner's ``loglik`` requests (one forward
pass per question: every option is one token after the same context, evaluation/tokens.py);
an OpenAI-compatible endpoint is asked for one token with ``logprobs`` / ``top_logprobs``
(an option outside the returned top-k gets the k-th log-probability, its upper bound).
"""

from __future__ import annotations

import json
import math
import sys
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

CHOICE_VERSION = "labelwise-choice-v1"
BLOOM_OPTIONS = ("1", "2", "3", "4", "5", "6")
BLOOM_MIDPOINTS = (2.0, 5.0, 8.0, 11.0, 14.0, 18.5)
QUALITY_OPTIONS = tuple(str(i) for i in range(10))
YES_NO = ("Yes", "No")

BLOOM = """\
Rate the cognitive complexity of the question below on Bloom's taxonomy.
1 = Remember: recall a fact, a term or a definition.
2 = Understand: explain, classify, summarize, translate or infer the meaning of something given.
3 = Apply: carry out a known procedure, rule or calculation.
4 = Analyze: break a problem into parts and relate them; multi-step reasoning.
5 = Evaluate: judge, critique or justify against criteria.
6 = Create: produce new, original work such as a story, a design or a plan.

# Question
{prompt}
{answer}
Answer with one digit from 1 to 6."""

QUALITY = """\
Judge the quality of the question below as a task for an assistant: is it well-formed, clear, \
self-contained and answerable? 0 = unusable, 9 = excellent.

# Question
{prompt}

Answer with one digit from 0 to 9."""

DISCIPLINE = """\
# Question
{prompt}

Does answering the question above require knowledge of {discipline}? Answer Yes or No."""


@lru_cache(maxsize=1)
def discipline_list() -> dict:
    """The shipped list: {"version", "source", "disciplines": [{"name", "description"}]}."""
    text = resources.files("labelwise.judging").joinpath("data/disciplines.json").read_text()
    data = json.loads(text)
    names = [d["name"] for d in data["disciplines"]]
    if len(set(names)) != len(names):
        raise ValueError("judging/data/disciplines.json: duplicate discipline names")
    return data


def discipline_names() -> list[str]:
    return [d["name"] for d in discipline_list()["disciplines"]]


def settings() -> dict:
    """What choice judgments depend on beyond the judge section (part of the cache key)."""
    import hashlib

    data = discipline_list()
    return {"prompt_version": CHOICE_VERSION, "disciplines": data["version"],
            "disciplines_digest": hashlib.sha256(json.dumps(discipline_names()).encode()).hexdigest()[:16]}


def questions(prompt: str, max_chars: int, answer: str | None = None) -> list[tuple[str, str, tuple[str, ...]]]:
    """(question key, instruction, options) for one pool prompt: bloom, quality, then
    ``discipline:<name>`` for each shipped discipline."""
    from labelwise.judging.prompts import ANSWER, cut

    shown = cut(prompt, max_chars)
    extra = ANSWER.format(answer=cut(answer, max_chars)) if answer else ""
    out = [("bloom", BLOOM.format(prompt=shown, answer=extra), BLOOM_OPTIONS),
           ("quality", QUALITY.format(prompt=shown), QUALITY_OPTIONS)]
    out += [(f"discipline:{n}", DISCIPLINE.format(prompt=shown, discipline=n), YES_NO) for n in discipline_names()]
    return out


def softmax(logprobs) -> np.ndarray:
    """The options' probabilities from their log-likelihoods (renormalized over the options)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if not np.isfinite(lp).any():
        raise ValueError("no option has a finite log-probability")
    e = np.exp(lp - lp[np.isfinite(lp)].max())
    return e / e.sum()


def expected(probs, values) -> float:
    return float(np.dot(np.asarray(probs, dtype=np.float64), np.asarray(values, dtype=np.float64)))


def judge_from_logprobs(logprobs: dict[str, list[float]], embeddings: dict | None = None) -> dict:
    """A judgments.parquet row's judged columns from the options' log-likelihoods per question
    (``embeddings``: discipline -> vector, for the spread; None leaves the spread null)."""
    from labelwise.judging.parse import LEVELS
    from labelwise.judging.spread import discipline_spread

    bloom = softmax(logprobs["bloom"])
    quality = softmax(logprobs["quality"])
    names = discipline_names()
    p_yes = [float(softmax(logprobs[f"discipline:{n}"])[0]) for n in names]
    chosen = [n for n, p in zip(names, p_yes) if p >= 0.5]
    spread = discipline_spread([embeddings[n] for n in chosen]) if embeddings is not None else None
    return {
        "bloom_level": LEVELS[int(np.argmax(bloom))],
        "bloom_score": expected(bloom, BLOOM_MIDPOINTS),
        "bloom_expected_level": expected(bloom, range(1, 7)),
        "quality": expected(quality, range(10)) / 9.0,
        "disciplines": chosen,
        "discipline_count": len(chosen),
        "discipline_spread": spread,
        "bloom_probs": bloom.tolist(),
        "quality_probs": quality.tolist(),
        "discipline_probs": p_yes,
    }


def options_from_top(top: list[tuple[str, float]], options: tuple[str, ...]) -> list[float]:
    """Option log-probabilities from an endpoint's top-k first tokens: the tokens that equal an
    option after stripping spaces (case-insensitively for Yes / No) are summed; an option
    absent from the top k gets the k-th log-probability (an upper bound). No option among
    them at all is an error."""
    fold = options == YES_NO
    key = (lambda s: s.strip().casefold()) if fold else (lambda s: s.strip())
    found: dict[str, float] = {}
    for token, lp in top:
        k = key(token)
        for o in options:
            if k == key(o):
                found[o] = float(np.logaddexp(found[o], lp)) if o in found else float(lp)
    if not found:
        shown = ", ".join(repr(t) for t, _ in top[:8])
        raise ValueError(f"none of the options {'/'.join(options)} is among the reply's top tokens ({shown})")
    floor = min(lp for _, lp in top)
    return [found.get(o, floor) for o in options]


# ---- the stage's choice path ---------------------------------------------------------------

def reply_schema():
    import pyarrow as pa

    return pa.schema([pa.field("id", pa.string()), pa.field("task", pa.string()),
                      pa.field("logprobs", pa.string()), pa.field("error", pa.string())])


def ask(backend, records: list[dict], cfg, answers: dict) -> list[dict]:
    """Cache rows (id, task, logprobs as JSON {question: [option log-probs]}, error) for
    ``records`` (dicts with id, task, prompt)."""
    from labelwise.judging.schema import one_line

    asks = []
    for r in records:
        answer = answers.get(r["id"])
        for key, text, options in questions(r["prompt"], cfg.max_prompt_chars, answer):
            asks.append((r["id"], key, text, options))
    results = backend.option_logprobs([a[2] for a in asks], [a[3] for a in asks])
    got: dict[str, dict] = {r["id"]: {} for r in records}
    failed: dict[str, list[str]] = {}
    for (rid, key, _, _), res in zip(asks, results):
        if isinstance(res, BaseException):
            failed.setdefault(rid, []).append(f"{key}: request failed: {one_line(res)}")
        else:
            got[rid][key] = [float(x) for x in res]
    rows = []
    for r in records:
        err = failed.get(r["id"])
        rows.append({"id": r["id"], "task": r["task"], "logprobs": None if err else json.dumps(got[r["id"]]),
                     "error": "; ".join(err) if err else None})
    return rows


def write_judgments(job, cfg, backend, parts: dict, out_dir: Path) -> None:
    """The choice-mode body of the judge stage (judging/stage.py:write_judgments)."""
    import pyarrow.parquet as pq

    from labelwise import contracts, manifest, runio
    from labelwise.judging import schema
    from labelwise.judging import STAGE
    from labelwise.judging.prompts import read_answers
    from labelwise.judging.spread import embed
    from labelwise.scoring.shards import ShardStore, pick_rows, settings_key
    from labelwise.scoring.stage import read_pool

    pool = read_pool(job.run_path / contracts.POOL)
    answers = read_answers(job.run_path / contracts.SCORES) if cfg.with_answer else {}
    key = settings_key(parts)
    store = ShardStore(job.run_path / contracts.JUDGE_SHARDS / key, describe=parts, final=schema.replied)
    done, _ = store.id_status()
    pending = pool[~pool["id"].isin(done)].to_dict("records")
    start = time.perf_counter()
    for lo in range(0, len(pending), cfg.shard_prompts):
        chunk = pending[lo: lo + cfg.shard_prompts]
        store.write(schema.table(ask(backend, chunk, cfg, answers), reply_schema()))
        manifest.fault(STAGE)
        print(f"judge (choice): {min(lo + len(chunk), len(pending))}/{len(pending)} prompts", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start

    data = discipline_list()["disciplines"]
    embeddings = embed({d["name"]: d["description"] for d in data})
    replies = store.read_all()
    picked = pick_rows(replies, final=schema.replied)
    rows = replies.take([picked[i] for i in pool["id"]]).to_pylist()
    name = backend.name
    judged = []
    for r in rows:
        out = {"id": r["id"], "task": r["task"], "judge": name, "mode": "choice", "error": r["error"]}
        if not r["error"]:
            values = judge_from_logprobs(json.loads(r["logprobs"]), embeddings)
            values.pop("bloom_expected_level")
            out.update(values)
        judged.append(out)
    disc_rows = [{"discipline": d["name"], "description": d["description"],
                  "embedding": np.asarray(embeddings[d["name"]]).tolist()} for d in data]
    for file, table in [(contracts.JUDGMENTS, schema.table(judged, schema.judgments_schema())),
                        (contracts.DISCIPLINES, schema.table(disc_rows, schema.disciplines_schema()))]:
        with runio.atomic_path(out_dir / file) as tmp:
            pq.write_table(table, tmp)
        manifest.fault(STAGE)
    requests = sum(bool(r["error"]) for r in rows)
    stats = {"judged_now": len(pending), "cached": int(len(pool) - len(pending)), "seconds": round(seconds, 2),
             "where": sorted(backend.where)}
    if pending:
        stats["prompts_per_second"] = len(pending) / seconds if seconds > 0 else math.inf
    if cfg.with_answer:
        stats["answers_shown"] = int(pool["id"].isin(list(answers)).sum())
    report = {
        "judge": name, "mode": "choice", "settings_key": key, "settings": parts, "prompts": len(rows),
        "parsed": {"all": len(rows) - requests}, "request_errors": requests,
        "disciplines": {"names": discipline_names(), "source": discipline_list()["source"]},
        "descriptions": {"disciplines": len(data), "described": len(data), "failed": 0, "request_errors": 0},
        "run": stats,
    }
    runio.write_json(out_dir / contracts.JUDGE_SUMMARY, report)
    print(f"[judge] {name}: choice mode, judged {len(rows) - requests}/{len(rows)}; failed requests {requests} "
          "(asked again by the next run)", file=sys.stderr)
