"""sweep.decide: which trials a sequential sweep runs, from the decisions so far (plain functions).

A comparison is (selector, reference, budget): the selector's trials against the reference's,
paired by seed (labelwise.report.paired), decided by labelwise.report.sequential over the seeds
in ``sweep.seeds`` order, up to ``decide.max_seeds``. The sweep:

1. decides every comparison from the results so far (none at first: each needs the first look);
2. runs the trials that an undecided comparison needs for its next look (the selector's and its
   reference's at that budget and those seeds), plus the full-pool trials of the first look;
3. goes back to 1 until nothing new is needed: every comparison is decided, at max_seeds, or
   waiting on trials that failed in this run (a rerun retries them).

Decisions are a function of the results table alone, and trials are kept by name, so a rerun
(with a larger max_seeds, say) goes on from where the last one stopped.
"""

from __future__ import annotations

from pathlib import Path

from labelwise.contracts import FULL


def plan_of(decide):
    """The sequential plan (labelwise.report.sequential.Plan) of a DecideConfig."""
    from labelwise.report.sequential import Plan

    return Plan.for_metric(decide.metric, delta=decide.delta, looks=tuple(decide.looks), alpha=decide.alpha,
                           spending=decide.spending)


def seed_order(sweep) -> list[int]:
    """The seeds the looks take, in order: the first max_seeds of sweep.seeds."""
    return list(sweep.seeds)[: sweep.decide.max_seeds]


def planned(trials: list[dict], sweep) -> list[dict]:
    """The trials a sequential sweep may run: those of the seeds it may take."""
    seeds = set(seed_order(sweep))
    return [t for t in trials if t["seed"] in seeds]


def _label(t: dict) -> str:
    from labelwise.sweep.trial import selector_of

    return selector_of(t)


def comparisons(trials: list[dict], sweep) -> list[tuple[str, str, int]]:
    """(selector, reference, budget) for each reference and every other selector label; two
    references are compared once (the later listed against the earlier), not both ways."""
    labels = sorted({_label(t) for t in trials if t["strategy"] != FULL})
    budgets = sorted({int(t["budget"]) for t in trials if t["strategy"] != FULL})
    refs = list(sweep.decide.references)
    return [(s, r, b) for i, r in enumerate(refs) for b in budgets for s in labels
            if s != r and s not in refs[:i]]


def check_references(trials: list[dict], sweep) -> None:
    """Each reference must be the label of some trials (not e.g. 'task_diversity' when every
    task_diversity trial carries a within_task); a ConfigError naming it otherwise."""
    from labelwise.config import ConfigError

    labels = sorted({_label(t) for t in trials if t["strategy"] != FULL})
    for i, ref in enumerate(sweep.decide.references):
        if ref not in labels:
            raise ConfigError(f"sweep.decide.references[{i}]: no trials are labelled {ref!r} "
                              f"(the sweep's selectors: {', '.join(labels)})")
    if sweep.grid:
        raise ConfigError("sweep.decide: compares selectors at one setting of the other parameters; "
                          "sweep.grid must be empty (run one grid point per sweep)")


def decisions(trials: list[dict], rows, sweep) -> list[dict]:
    """Every comparison's decision from the results ``rows`` (a list of result rows or a
    DataFrame; rows whose status is not ok are left out)."""
    import pandas as pd

    from labelwise.report.paired import differences
    from labelwise.report.sequential import decide
    from labelwise.report.table import with_selector

    plan = plan_of(sweep.decide)
    order = seed_order(sweep)
    df = pd.DataFrame(rows)
    if "status" in df.columns:
        df = df[df["status"].fillna("ok") == "ok"]
    metric = sweep.decide.metric
    usable = not df.empty and metric in df.columns
    if usable:
        df = with_selector(df[df["strategy"] != FULL])
    out = []
    for selector, reference, budget in comparisons(trials, sweep):
        diff = differences(df, metric, selector, reference, budget) if usable else pd.Series(dtype=float)
        seeds = [s for s in order if s in diff.index]
        found = decide([float(diff[s]) for s in seeds], plan, sweep.decide.max_seeds)
        n = found["seeds"]
        out.append({"selector": selector, "reference": reference, "budget": budget, "metric": metric,
                    **found, "seeds_used": seeds[:n]})
    return out


def wanted(trials: list[dict], found: list[dict], sweep) -> set[str]:
    """Names of the trials the decisions need: for each undecided comparison with a next look
    of n seeds, its selector's and its reference's trials at its budget on the first n seeds
    of the order; and the full-pool trials of the first look."""
    order = seed_order(sweep)
    first = set(order[: sweep.decide.looks[0]])
    need: set[tuple[str, int, int]] = set()
    for c in found:
        if c["next_look"] is None:
            continue
        for seed in order[: c["next_look"]]:
            need.add((c["selector"], c["budget"], seed))
            need.add((c["reference"], c["budget"], seed))
    names = set()
    for t in trials:
        if t["strategy"] == FULL:
            if t["seed"] in first:
                names.add(t["name"])
        elif (_label(t), int(t["budget"]), t["seed"]) in need:
            names.add(t["name"])
    return names


def projected(trials: list[dict], found: list[dict], sweep) -> set[str]:
    """Names of the trials the sweep would have run once every waiting comparison reached the
    look of its projection (labelwise.report.sequential.projection; at most max_seeds): a
    plug-in guess of the sweep's cost, for the log."""
    ahead = [{**c, "next_look": min(c["projection"]["seeds"], sweep.decide.max_seeds)}
             if c["next_look"] is not None and c["projection"] else c for c in found]
    return wanted(trials, ahead, sweep)


def run(trials: list[dict], sweep, read_rows, run_trials, finished: set[str], log=print) -> list[dict]:
    """The loop: decide, run what the undecided comparisons need, until nothing new is needed.

    ``read_rows()`` gives the result rows so far; ``run_trials(list of trials)`` runs them;
    ``finished`` names the trials whose results are kept from before. Each trial runs at most
    once per call, so a failed one stops its comparison here (a rerun retries it). Returns the
    final decisions."""
    tried = set(finished)
    while True:
        found = decisions(trials, read_rows(), sweep)
        log(summary(found))
        need = wanted(trials, found, sweep)
        todo = [t for t in trials if t["name"] in need and t["name"] not in tried]
        if not todo:
            return found
        ahead = projected(trials, found, sweep) - tried
        log(f"[sweep] decide: if every projection held, {len(ahead)} more trials in all (this look's "
            f"{len(todo)} included)")
        seeds = sorted({t["seed"] for t in todo})
        log(f"[sweep] decide: running {len(todo)} trials for seeds {', '.join(map(str, seeds))}")
        tried |= {t["name"] for t in todo}
        run_trials(todo)


def summary(found: list[dict]) -> str:
    """The counts of each verdict, then one line per comparison: its verdict, the seeds it
    used and, while undecided, its projection."""
    from labelwise.report.sequential import projection_text

    counts = {}
    for c in found:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    waiting = sum(1 for c in found if c["next_look"] is not None)
    parts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    lines = [f"[sweep] decide: {len(found)} comparisons: {parts}; {waiting} need more seeds"]
    for c in found:
        line = f"[sweep]   {c['selector']} vs {c['reference']}, k={c['budget']}: {c['verdict']} ({c['seeds']} seeds)"
        if c["projection"]:
            line += f"; if Δ mean and SD held: {projection_text(c['projection'])}"
        lines.append(line)
    return "\n".join(lines)


FIXED = ("metric", "delta", "alpha", "looks", "spending")  # the plan; max_seeds and references may change


def check_unchanged(sweep_dir: Path, sweep) -> None:
    """The error rates hold for a plan fixed before the data: a rerun whose metric, delta,
    alpha, looks, spending or seed order differ from those of the decisions.json it finds is an
    error (a larger max_seeds is fine: same plan, more of it)."""
    import json

    from labelwise.contracts import SWEEP_DECISIONS

    path = Path(sweep_dir) / SWEEP_DECISIONS
    if not path.exists():
        return
    before = json.loads(path.read_text())["settings"]
    now = {"seed_order": seed_order(sweep), **{k: getattr(sweep.decide, k) for k in FIXED}}
    for key, value in now.items():
        old = before.get(key)
        if key == "seed_order":
            n = min(len(old or []), len(value))
            changed = (old or [])[:n] != value[:n]
        else:
            changed = old != value
        if changed:
            where = "sweep.seeds (their order)" if key == "seed_order" else f"sweep.decide.{key}"
            raise ValueError(f"{where}: {value!r} differs from the {old!r} of the decisions so far ({path}); a "
                             "sequential plan must stay fixed once seeds have been looked at. Restore it, or "
                             "start a new run_dir (or delete decisions.json to accept the broken guarantee)")


def write(sweep_dir: Path, sweep, found: list[dict]) -> Path:
    """``decisions.json``: the settings and each comparison's verdict, reason and path."""
    import dataclasses

    from labelwise import runio
    from labelwise.contracts import SWEEP_DECISIONS

    plan = plan_of(sweep.decide)
    levels, tost = plan.levels()
    settings = {**dataclasses.asdict(sweep.decide), "seed_order": seed_order(sweep),
                "lower_is_better": plan.lower_is_better, "alpha_per_look": list(levels),
                "tost_alpha_per_look": list(tost)}
    return runio.write_json(Path(sweep_dir) / SWEEP_DECISIONS, {"settings": settings, "comparisons": found})
