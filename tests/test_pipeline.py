"""labelwise run: stage order, resume after a failure, summary.json and the printed summary.

The stage functions are replaced by small fakes that honour the same contract (commit their
outputs through the manifest, kept while it matches), so these tests check the pipeline itself."""

from __future__ import annotations

import io
import json
import types
from pathlib import Path

import pytest

from labelwise import contracts, manifest, pipeline, runio, stages


class FakeStages:
    """Stand-ins for the stage entry points; ``fail_at`` raises once in that stage."""

    def __init__(self, fail_at=None):
        self.calls = []
        self.fail_at = fail_at

    def __call__(self, name, job):
        self.calls.append(name)
        if name == self.fail_at:
            self.fail_at = None
            raise RuntimeError(f"{name} crashed")
        run = Path(job.run_dir)
        out = run / stages.stage(name).output
        if name.startswith("evaluate"):
            from labelwise.evaluation import metrics_file

            label = name.split("-")[1]
            acc = 0.25 if label == "base" else 0.5
            manifest.run_stage(run, name, {}, {}, [contracts.metrics_file(label)], lambda staged: runio.write_json(
                staged / contracts.metrics_file(label), {"heldout": {"accuracy": acc, "protocol": {"n": 4}}}),
                log=lambda *_: None)
            return metrics_file.gather(run)[label]
        extra = {"select": [contracts.ALLOCATION], "train": ["train_log.csv"]}.get(name, [])

        def build(staged):
            if name == "select":
                runio.write_text(staged / contracts.ALLOCATION, "task,pool_size,confidence,allocated,selected\na,4,0.5,2,2\n")
            if name == "train":
                runio.write_text(staged / "train_log.csv", "step,epoch,loss\n1,0,2.0\n2,0,1.0\n")
                (staged / out.name).mkdir()
                (staged / out.name / "adapter_config.json").write_text("{}")
            else:
                runio.write_text(staged / out.name, name)

        manifest.run_stage(run, name, {}, {}, [out.name, *extra], build, log=lambda *_: None)
        return out


@pytest.fixture
def job(tmp_path, monkeypatch):
    import labelwise.ray_start

    monkeypatch.setattr(labelwise.ray_start, "init_ray", lambda cfg: None)
    return types.SimpleNamespace(run_dir=str(tmp_path / "run"), ray=None)


def test_runs_every_stage_in_order_and_writes_summary_and_report(job, monkeypatch):
    fake = FakeStages()
    monkeypatch.setattr(pipeline, "stage_call", fake)
    monkeypatch.setattr("labelwise.config.to_dict", lambda obj: {"run_dir": obj.run_dir})
    out = io.StringIO()
    summary = pipeline.run_pipeline(job, out=out)
    assert fake.calls == [n for n in pipeline.STAGE_NAMES if n != "judge"]  # judge: only with a judge: section
    run = Path(job.run_dir)
    stored = json.loads((run / pipeline.SUMMARY).read_text())
    assert stored["status"] == "done" and [s["status"] for s in stored["stages"]] == ["ran"] * 7
    assert stored["metrics"]["adapted"]["heldout.accuracy"] == 0.5
    text = out.getvalue()
    assert "[run] stages 3/7" in text and "heldout.accuracy" in text and "+0.25" in text
    assert f"report: {run / 'report.html'}" in text
    assert (run / "report.md").exists() and summary["report"]["html"].endswith("report.html")


def test_rerun_after_a_crash_keeps_finished_stages_and_continues(job, monkeypatch):
    monkeypatch.setattr("labelwise.config.to_dict", lambda obj: {})
    fake = FakeStages(fail_at="train")
    monkeypatch.setattr(pipeline, "stage_call", fake)
    with pytest.raises(RuntimeError, match="train crashed"):
        pipeline.run_pipeline(job, out=io.StringIO())
    run = Path(job.run_dir)
    failed = json.loads((run / pipeline.SUMMARY).read_text())
    assert failed["status"] == "failed at train"
    assert failed["stages"][-1] == {**failed["stages"][-1], "stage": "train", "status": "failed",
                                    "error": "RuntimeError: train crashed"}
    before = {n: (run / n).stat().st_mtime_ns for n in (contracts.POOL, contracts.SCORES, contracts.LABELED)}
    out = io.StringIO()
    summary = pipeline.run_pipeline(job, out=out)
    assert [s["status"] for s in summary["stages"]] == ["kept"] * 4 + ["ran"] * 3
    assert {n: (run / n).stat().st_mtime_ns for n in before} == before
    # a third run finds everything done
    again = pipeline.run_pipeline(job, out=io.StringIO())
    assert [s["status"] for s in again["stages"]] == ["kept"] * 7


def test_until_stops_after_the_named_stage(job, monkeypatch):
    monkeypatch.setattr("labelwise.config.to_dict", lambda obj: {})
    fake = FakeStages()
    monkeypatch.setattr(pipeline, "stage_call", fake)
    summary = pipeline.run_pipeline(job, until="select", out=io.StringIO())
    assert fake.calls == ["pool", "score", "select"]
    assert summary["status"] == "stopped after select"
    assert not (Path(job.run_dir) / "report.md").exists()


def test_stage_call_passes_the_adapter_and_labels(monkeypatch, tmp_path):
    import importlib

    seen = []

    class Mod:
        @staticmethod
        def evaluate(job, adapter=None, label=None):
            seen.append((adapter, label))

    monkeypatch.setattr(importlib, "import_module", lambda name: Mod)
    job = types.SimpleNamespace(run_dir=str(tmp_path))
    pipeline.stage_call("evaluate-base", job)
    pipeline.stage_call("evaluate-adapted", job)
    stages.call("evaluate-adapted", job, label="rerun")  # the sweep's trials add or override
    assert seen == [(None, "base"), (tmp_path / contracts.ADAPTER, "adapted"), (tmp_path / contracts.ADAPTER, "rerun")]


def test_progress_lines_show_done_elapsed_and_time_left():
    from labelwise.progress import Progress, fmt_seconds

    now = [0.0]
    out = io.StringIO()
    p = Progress(10, "trials", prefix="sweep", stream=out, clock=lambda: now[0])
    p.skipped = 2  # found done: they cost no time and do not count in the rate
    now[0] = 120.0
    p.update(4, "random k=40 seed 0 done")
    # 2 trials in 120 s -> 60 s each, 6 left -> 6 minutes
    assert out.getvalue().strip() == "[sweep] trials 4/10 (40%), 2m00s elapsed, about 6m00s left: random k=40 seed 0 done"
    assert "left" not in p.line(10)
    assert "left" not in Progress(3, "stages", show_eta=False, clock=lambda: 5.0).line(1)
    assert fmt_seconds(3725) == "1h02m" and fmt_seconds(59.6) == "1m00s" and fmt_seconds(7) == "7s"


def test_the_judge_stage_runs_after_score_only_when_the_job_has_a_judge_section(job, monkeypatch):
    monkeypatch.setattr("labelwise.config.to_dict", lambda obj: {})
    fake = FakeStages()
    monkeypatch.setattr(pipeline, "stage_call", fake)
    pipeline.run_pipeline(job, until="select", out=io.StringIO())
    assert fake.calls == ["pool", "score", "select"]
    job.judge = object()  # any judge: section
    fake.calls.clear()
    summary = pipeline.run_pipeline(job, until="select", out=io.StringIO())
    assert fake.calls == ["pool", "score", "judge", "select"]
    assert [s["status"] for s in summary["stages"]] == ["kept", "kept", "ran", "kept"]


@pytest.mark.parametrize("select, judged", [
    ({"strategy": "thtb", "params": {}}, True),
    ({"strategy": "task_diversity", "params": {"within_task": "hardness"}}, True),
    ({"strategy": "task_diversity", "params": {"within_task": "kcenter"}}, False),
    ({"strategy": "weighted_task_diversity", "params": {}}, False),
])
def test_the_judge_stage_also_runs_when_the_selector_reads_judgments(job, select, judged):
    """No judge: section, but thtb or within_task: hardness reads judgments.parquet: `run`
    judges the pool first (with the section's defaults) instead of failing at select."""
    job.select = types.SimpleNamespace(**select)
    names = [s.name for s in pipeline.plan_steps(job)]
    assert ("judge" in names) is judged
    if judged:
        assert names.index("judge") == names.index("score") + 1
