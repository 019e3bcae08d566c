"""sweep.decide end to end on a real local Ray: a tiny sweep (tests/tiny_jobs.py) of random
against task_diversity runs look 1 through Tune, stops at max_seeds, and a rerun with a
larger max_seeds goes on from decisions.json."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tiny_jobs import results_in, tiny_sweep_yaml

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_tiny_decided_sweep_adds_seeds_only_while_undecided_and_goes_on_with_a_larger_max_seeds(
        tmp_path, tiny_model_dir, local_ray):
    """sweep.decide through the real Tune path: look 1 (2 seeds) runs both selectors; a rerun
    with max_seeds raised to the next look runs seed 2 only for the comparison still undecided,
    keeps the trials done, and the comparison's path gains that look."""
    from labelwise.contracts import SWEEP_DECISIONS
    from labelwise.job import load_job
    from labelwise.sweep.stage import run_sweep

    config = tiny_sweep_yaml(tmp_path, tiny_model_dir)
    sweep = tmp_path / "sweep"
    data = yaml.safe_load(config.read_text())
    # delta 1e-6: never equivalent; OBF's level at 2 seeds (1 degree of freedom) stops only on two
    # nearly equal differences, so look 1 leaves the comparison undecided
    data["sweep"].update({"strategies": ["random", "task_diversity"], "seeds": [0, 1, 2], "full_pool": False,
                          "decide": {"delta": 1e-6, "references": ["random"], "looks": [2, 3], "max_seeds": 2}})
    config.write_text(yaml.safe_dump(data))
    run_sweep(load_job(config))
    first = {p: (p.read_text(), p.stat().st_mtime_ns) for p in results_in(sweep)}
    assert sorted(p.parent.name for p in first) == [
        "random-k6-s0", "random-k6-s1", "task_diversity-k6-s0", "task_diversity-k6-s1"]
    (c,) = json.loads((sweep / SWEEP_DECISIONS).read_text())["comparisons"]
    assert (c["selector"], c["reference"], c["budget"], c["verdict"], c["seeds"]) == ("task_diversity", "random", 6, "undecided", 2)
    assert c["seeds_used"] == [0, 1] and len(c["path"]) == 1 and c["next_look"] is None  # max_seeds reached
    assert c["projection"]["seeds"] == 3  # the plan's next look, past max_seeds

    data["sweep"]["decide"]["max_seeds"] = 3
    config.write_text(yaml.safe_dump(data))
    df = pd.read_csv(run_sweep(load_job(config)))
    for p, (text, mtime) in first.items():  # kept, not rerun
        assert p.read_text() == text and p.stat().st_mtime_ns == mtime
    assert sorted(df["trial"]) == sorted([p.parent.name for p in first] + ["random-k6-s2", "task_diversity-k6-s2"])
    assert set(df["status"]) == {"ok"}
    (c,) = json.loads((sweep / SWEEP_DECISIONS).read_text())["comparisons"]
    assert c["seeds"] == 3 and c["seeds_used"] == [0, 1, 2] and len(c["path"]) == 2
    assert c["verdict"] in ("better", "worse", "undecided") and c["reason"]
    diff = df.set_index("trial")["heldout.nll_macro"]
    path_mean = c["path"][-1]["mean"]
    assert path_mean == pytest.approx(sum(diff[f"task_diversity-k6-s{s}"] - diff[f"random-k6-s{s}"] for s in range(3)) / 3)
    assert "Decisions with sequential seeds" in (sweep / "report.md").read_text()
