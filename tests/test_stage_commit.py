"""Stage outputs commit as one unit, and the manifest decides "kept or rerun".

The fault-injection tests fail a stage at every write point (LABELWISE_FAULT raises there),
and kill it with a real SIGKILL at some, then rerun it with the same config and with another
one: the files on disk are always exactly one complete set (byte for byte the set a clean
run of one config writes), and a rerun never keeps a mix."""

from __future__ import annotations

import json
import subprocess
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelwise import contracts, manifest, runio, textio
from labelwise.config import build

import cli_process

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_fault(monkeypatch):
    monkeypatch.delenv(manifest.FAULT_ENV, raising=False)
    manifest.reset_fault()
    yield
    manifest.reset_fault()


def quiet(*_):
    pass


def fails(monkeypatch, spec: str, call) -> bool:
    """Run ``call()`` with LABELWISE_FAULT=spec: True when it failed at that write point,
    False when it finished (the point is past the stage's last write)."""
    monkeypatch.setenv(manifest.FAULT_ENV, spec)
    try:
        call()
        return False
    except manifest.InjectedFault:
        return True
    finally:
        monkeypatch.delenv(manifest.FAULT_ENV)
        manifest.reset_fault()


# ------------------------------------------------------------------ the manifest itself


def test_digest_hashes_small_files_and_samples_large_ones(tmp_path, monkeypatch):
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 100)
    assert manifest.digest(f).startswith("sha256:") and manifest.digest(tmp_path / "nope") is None
    monkeypatch.setattr(manifest, "SMALL_FILE", 10)
    monkeypatch.setattr(manifest, "SAMPLE", 4)
    big = manifest.digest(f)
    assert big.startswith("size:100,mtime_ns:")
    f.write_bytes(b"x" * 50 + b"y" + b"x" * 49)  # the middle sample changes
    assert manifest.digest(f) != big
    folder = manifest.digest(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    assert manifest.digest(tmp_path) != folder and manifest.digest(tmp_path).startswith("folder:")


def run_toy(run, settings, text, rerun=None, log=quiet):
    def build(staged):
        (staged / "a.txt").write_text(text)
        manifest.fault("toy")
        (staged / "b").mkdir()
        (staged / "b" / "x.txt").write_text(text * 2)
        manifest.fault("toy")

    return manifest.run_stage(run, "toy", {"in": run / "in.txt"}, settings, ["a.txt", "b"], build, rerun=rerun, log=log)


def test_run_stage_keeps_only_what_its_manifest_describes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "in.txt").write_text("input")
    said = []
    assert run_toy(run, {"k": 1}, "one", log=said.append).startswith("no manifest")
    assert (run / "a.txt").read_text() == "one" and (run / "b" / "x.txt").read_text() == "oneone"
    assert run_toy(run, {"k": 1}, "two", log=said.append) is None and "kept" in said[-1]
    assert run_toy(run, {"k": 2}, "two") == "setting k changed (1 -> 2)"
    assert run_toy(run, {"k": 2}, "two", rerun="--force") == "--force"
    (run / "in.txt").write_text("edited")
    assert run_toy(run, {"k": 2}, "two") == "input in changed"
    (run / "b" / "x.txt").write_text("tampered")
    assert run_toy(run, {"k": 2}, "two") == "output b changed on disk"
    (run / "a.txt").unlink()
    assert run_toy(run, {"k": 2}, "two") == "output a.txt is missing"
    assert run_toy(run, {"k": 2}, "two") is None
    assert not (run / manifest.STAGING).joinpath("toy").exists()


def test_toy_stage_is_one_set_after_a_failure_at_any_write_point(tmp_path, monkeypatch):
    for n in range(1, 20):
        run = tmp_path / f"run{n}"
        run.mkdir()
        (run / "in.txt").write_text("input")
        run_toy(run, {"k": 1}, "old")
        (run / ".a.txt.tmp-deadbeef").write_text("a killed write")
        if not fails(monkeypatch, f"toy:{n}", lambda: run_toy(run, {"k": 2}, "new")):
            break  # past the last write point
        manifest.recover(run, "toy", ["a.txt", "b"])
        texts = ((run / "a.txt").read_text(), (run / "b" / "x.txt").read_text())
        assert texts in [("old", "oldold"), ("new", "newnew")], n
        assert not list(run.glob(".*.tmp-*"))
        assert run_toy(run, {"k": 1}, "old") is None or (run / "a.txt").read_text() == "old"
        assert ((run / "a.txt").read_text(), (run / "b" / "x.txt").read_text()) == ("old", "oldold")
    assert n == 8  # 2 staged writes, the commit point, the old manifest, 2 moves, the manifest


# ------------------------------------------------------------------ the pool stage


def pool_job(run, **pool):
    from labelwise.pool.config import PoolConfig

    base = {"source": "builtin:skills", "skills_scale": 0.02, "test_max_per_task": 3}
    return types.SimpleNamespace(run_dir=str(run), pool=build(PoolConfig, {**base, **pool}, "job.yaml: pool"))


def pool_set(run) -> dict:
    """The pool's files on disk, checked for consistency: pool and test disjoint, the
    metadata counting these very files."""
    from labelwise.pool import stage

    pool, test, meta = stage.read_pool(run), stage.read_test(run), stage.read_meta(run)
    assert set(pool.id).isdisjoint(test.id), "held-out prompts in the pool"
    assert (meta["n_pool"], meta["n_test"]) == (len(pool), len(test))
    return manifest.digests({n: Path(run) / n for n in (contracts.POOL, contracts.TEST, contracts.POOL_META)})


def assert_clean(run):
    assert not list(Path(run).rglob(".*.tmp-*")) and not (Path(run) / manifest.STAGING / "pool").exists()


@pytest.fixture(scope="module")
def pool_refs(tmp_path_factory):
    """Clean builds of config A (seed 0) and config B (seed 1: another test split)."""
    from labelwise.pool import stage

    refs = {}
    for name, seed in (("A", 0), ("B", 1)):
        run = tmp_path_factory.mktemp(f"pool{name}")
        stage.build_pool(pool_job(run, seed=seed), log=quiet)
        refs[name] = pool_set(run)
    assert refs["A"][contracts.TEST] != refs["B"][contracts.TEST]
    return refs


def test_pool_killed_at_every_write_point_reruns_to_one_consistent_set(tmp_path, monkeypatch, pool_refs):
    from labelwise.pool import stage

    for n in range(1, 30):
        finished = False
        for rerun_with, seed in (("A", 0), ("B", 1)):
            run = tmp_path / f"n{n}{rerun_with}"
            stage.build_pool(pool_job(run, seed=0), log=quiet)
            # another config, failing at point n
            finished = not fails(monkeypatch, f"pool:{n}", lambda: stage.build_pool(pool_job(run, seed=1), log=quiet))
            manifest.recover(run, "pool", stage.outputs())
            assert pool_set(run) in (pool_refs["A"], pool_refs["B"]), n  # the old set or the new one
            said = []
            stage.build_pool(pool_job(run, seed=seed), log=said.append)
            assert pool_set(run) == pool_refs[rerun_with], (n, rerun_with, said)
            assert_clean(run)
            stage.build_pool(pool_job(run, seed=seed), log=said.append)
            assert "kept" in said[-1]
        if finished:
            break
    assert n == 10  # 3 staged writes, the commit point, the old manifest, 3 moves, the manifest, and done


def cli_env(**extra):
    return cli_process.cli_env(PYTHONPATH=str(ROOT / "platform"), **extra)


@pytest.mark.parametrize("point", [2, 6])  # between two staged writes; between two moves
def test_pool_sigkill_then_rerun(tmp_path, point, pool_refs):
    """A real SIGKILL of `labelwise pool` rebuilding with another config (at a staged write,
    or halfway through moving the new files in), then `labelwise pool` with the original."""
    run = tmp_path / "run"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {run}\npool:\n  source: builtin:skills\n  skills_scale: 0.02\n  test_max_per_task: 3\n")
    cmd = cli_process.cli_command("pool", str(cfg))
    assert subprocess.run(cmd, env=cli_env(), capture_output=True).returncode == 0
    killed = subprocess.run(cmd + ["--set", "pool.seed=1"], env=cli_env(LABELWISE_FAULT=f"pool:{point}:kill"),
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert list(run.rglob(".staging/pool/*"))  # the kill left staged files
    again = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert pool_set(run) == pool_refs["A"]
    assert_clean(run)
    kept = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert "kept" in kept.stdout and "wrote" not in kept.stdout


def test_editing_the_source_file_rebuilds_the_pool(tmp_path):
    from labelwise.pool import stage

    src = tmp_path / "data.jsonl"
    rows = [{"prompt": f"q{i}", "response": f"a{i}", "task": f"t{i % 2}"} for i in range(20)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    j = pool_job(tmp_path / "run", source=str(src), test_fraction=0.0)
    run = stage.build_pool(j, log=quiet).parent
    said = []
    stage.build_pool(j, log=said.append)
    assert "kept" in said[-1]
    rows[3]["response"] = "edited"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stage.build_pool(j, log=said.append)
    assert said[-1] == "[pool] running: input pool.source changed"
    assert "edited" in set(stage.read_pool(run).response)


# ------------------------------------------------------------------ the select stage


def write_scored_pool(run: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [
        {"id": f"t{t}-{i:03d}", "task": f"task{t}", "prompt": f"prompt {t} {i}", "response": "r", "source": "s",
         "logconf": float(-rng.gamma(2.0, 1.0 + t)), "n_tokens": 5, "mean_logprob": -0.5, "mean_entropy": 1.0,
         "mean_margin": 0.5, "min_margin": 0.1, "eos": True, "answer": "a", "error": None}
        for t, n in enumerate((4, 9, 14, 20))
        for i in range(n)
    ]
    df = pd.DataFrame(rows)
    run.mkdir(parents=True, exist_ok=True)
    runio.write_parquet(run / contracts.POOL, df[["id", "task", "prompt", "response", "source"]])
    runio.write_parquet(run / contracts.SCORES, df.drop(columns=["prompt", "response", "source"]))


REQUESTS = {
    "A": {"strategy": "random", "budget": 10, "seed": 0},
    "B": {"strategy": "weighted_task_diversity", "budget": 21, "seed": 1},
}


def select_job(run, name):
    from labelwise.job import JobConfig

    return build(JobConfig, {"run_dir": str(run), "select": REQUESTS[name]}, "test.yaml")


def selection_set(run) -> dict:
    """The selection's files on disk, checked to come from one request."""
    from labelwise.selection.outputs import SELECTION_JSON

    sel = pd.read_parquet(run / contracts.SELECTION)
    alloc = pd.read_csv(run / contracts.ALLOCATION)
    rows = textio.read_jsonl(run / contracts.TO_ANNOTATE)
    record = json.loads((run / SELECTION_JSON).read_text())
    assert [r["id"] for r in rows] == sel["id"].tolist()
    assert len(sel) == alloc["selected"].sum() == record["selected"] == record["request"]["budget"]
    assert sel.groupby("task").size().to_dict() == alloc.set_index("task")["selected"][lambda s: s > 0].to_dict()
    assert record["selector"] == record["request"]["strategy"]
    from labelwise.selection.stage import outputs

    return manifest.digests({n: run / n for n in outputs()})


@pytest.fixture(scope="module")
def selection_refs(tmp_path_factory):
    from labelwise.selection.stage import select

    refs = {}
    for name in REQUESTS:
        run = tmp_path_factory.mktemp(f"select{name}")
        write_scored_pool(run)
        select(select_job(run, name), log=quiet)
        refs[name] = selection_set(run)
    return refs


def test_select_killed_at_every_write_point_reruns_to_one_request(tmp_path, monkeypatch, selection_refs):
    from labelwise.selection.stage import outputs, select

    for n in range(1, 30):
        finished = False
        for rerun_with in ("A", "B"):
            run = tmp_path / f"n{n}{rerun_with}"
            write_scored_pool(run)
            select(select_job(run, "A"), log=quiet)
            finished = not fails(monkeypatch, f"select:{n}", lambda: select(select_job(run, "B"), log=quiet))
            manifest.recover(run, "select", outputs())
            assert selection_set(run) in (selection_refs["A"], selection_refs["B"]), n
            select(select_job(run, rerun_with), log=quiet)
            assert selection_set(run) == selection_refs[rerun_with], (n, rerun_with)
            assert not list(run.rglob(".*.tmp-*")) and not (run / manifest.STAGING / "select").exists()
        if finished:
            break
    assert n == 14  # 5 staged writes, the commit point, the old manifest, 5 moves, the manifest, and done


def test_select_sigkill_after_to_annotate_then_rerun_the_first_request(tmp_path, selection_refs):
    """The issue's case: request B killed right after to_annotate.jsonl, then request A."""
    run = tmp_path / "run"
    write_scored_pool(run)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {run}\nselect: {json.dumps(REQUESTS['A'])}\n")
    cmd = cli_process.cli_command("select", str(cfg))
    assert subprocess.run(cmd, env=cli_env(), capture_output=True).returncode == 0
    b = [f"--set=select.{k}={v}" for k, v in REQUESTS["B"].items()]
    # killed after to_annotate.jsonl is staged (before the commit point: A's set and manifest
    # stand, and are kept), or after it is moved into place (B's set is finished, then A reruns)
    for point, kept in ((3, True), (10, False)):
        killed = subprocess.run(cmd + b, env=cli_env(LABELWISE_FAULT=f"select:{point}:kill"), capture_output=True, text=True)
        assert killed.returncode == -9, killed.stderr
        again = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert ("already done" in again.stdout) == kept
        assert selection_set(run) == selection_refs["A"]
    kept = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert "already done for this request" in kept.stdout


# ------------------------------------------------------------------ the score stage


def score_job(run, model_dir, **score):
    from labelwise.job import JobConfig

    score = {"max_new_tokens": 4, "batch_size": 4, "use_ray": False, "embeddings": False, **score}
    return build(JobConfig, {"run_dir": str(run), "model": {"name": str(model_dir), "device": "cpu"}, "score": score},
                 "test.yaml")


def write_pool(run: Path) -> None:
    rows = [{"id": f"p{i}", "task": f"t{i % 3}", "prompt": f"What is {i} + {i}?", "response": str(2 * i), "source": "s"}
            for i in range(9)]
    run.mkdir(parents=True, exist_ok=True)
    runio.write_parquet(run / contracts.POOL, pd.DataFrame(rows))


def scores_set(run) -> dict:
    """scores.parquet and score_summary.json on disk, checked to come from one setting."""
    from labelwise.scoring.stage import outputs

    scores = pd.read_parquet(run / contracts.SCORES)
    summary = json.loads((run / contracts.SCORE_SUMMARY).read_text())
    assert len(scores) == summary["prompts"]
    assert scores["n_tokens"].max() == summary["settings"]["max_new_tokens"]  # the tiny model never stops early
    return manifest.digests({n: run / n for n in outputs()})


def test_score_failed_at_every_write_point_reruns_to_one_setting(tmp_path, tiny_model_dir, monkeypatch):
    from labelwise.scoring import stage

    run = tmp_path / "run"
    write_pool(run)
    refs = {}
    for tokens in (4, 2):  # B before A, so that A's set is the one on disk when B fails
        stage.score_pool(score_job(run, tiny_model_dir, max_new_tokens=tokens), log=quiet)
        refs[tokens] = scores_set(run)
    calls = []
    monkeypatch.setattr(stage, "score_pending", lambda *a: calls.append(1) or {})  # the shard cache holds both
    killed = next((run / contracts.SCORE_SHARDS).iterdir()) / ".part-x.parquet.tmp-deadbeef"
    killed.write_text("a shard a killed run was writing")
    for n in range(1, 20):
        other = score_job(run, tiny_model_dir, max_new_tokens=4)
        if not fails(monkeypatch, f"score:{n}", lambda: stage.score_pool(other, log=quiet)):
            break  # past the last write point
        manifest.recover(run, "score", stage.outputs())
        on_disk = scores_set(run)
        assert on_disk[contracts.SCORES] in (refs[2][contracts.SCORES], refs[4][contracts.SCORES]), n
        stage.score_pool(score_job(run, tiny_model_dir, max_new_tokens=2), log=quiet)  # back to the old setting
        assert scores_set(run)[contracts.SCORES] == refs[2][contracts.SCORES]
        assert not list(run.rglob(".*.tmp-*")) and not (run / manifest.STAGING / "score").exists()
    assert n == 8 and calls == []  # 2 staged writes, the commit point, the old manifest, 2 moves, the manifest
    assert not killed.exists()


def test_a_changed_model_file_rescores(tmp_path, tiny_model_dir):
    import shutil

    from labelwise.scoring import stage

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    run = tmp_path / "run"
    write_pool(run)
    said = []
    stage.score_pool(score_job(run, model), log=said.append)
    first = pd.read_parquet(run / contracts.SCORES)
    stage.score_pool(score_job(run, model), log=said.append)
    assert "kept" in said[-1]
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4096:] = bytes(4096)  # same size, other weights
    weights.write_bytes(bytes(data))
    stage.score_pool(score_job(run, model), log=said.append)
    assert said[-1].startswith("[score] running:") and "input model changed" in said[-1]
    assert len(list((run / contracts.SCORE_SHARDS).iterdir())) == 2  # scored again, not served from the old cache
    assert not pd.read_parquet(run / contracts.SCORES)["logconf"].equals(first["logconf"])


def test_score_sigkill_between_moves_then_rerun(tmp_path, tiny_model_dir):
    """`labelwise score` with another setting, SIGKILLed after scores.parquet is moved into
    place but before score_summary.json; the rerun with the first setting gives its set."""
    run = tmp_path / "run"
    write_pool(run)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {run}\nmodel: {{name: {tiny_model_dir}, device: cpu}}\n"
                   "score: {max_new_tokens: 2, batch_size: 4, use_ray: false, embeddings: false}\n")
    cmd = cli_process.cli_command("score", str(cfg))
    assert subprocess.run(cmd, env=cli_env(), capture_output=True).returncode == 0
    first = scores_set(run)
    killed = subprocess.run(cmd + ["--set", "score.max_new_tokens=4"], env=cli_env(LABELWISE_FAULT="score:5:kill"),
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    again = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "setting score.max_new_tokens changed (4 -> 2)" in again.stdout
    assert scores_set(run)[contracts.SCORES] == first[contracts.SCORES]
    assert json.loads((run / contracts.SCORE_SUMMARY).read_text())["run"]["cached"] == 9  # from the shard cache


# ------------------------------------------------------------------ the annotate stage


def annotate_run(tmp_path):
    from labelwise.job import JobConfig

    run = tmp_path / "run"
    run.mkdir(parents=True)
    runio.write_jsonl(run / contracts.TO_ANNOTATE, [{"id": f"id{i}", "task": "t", "prompt": f"p{i}"} for i in range(6)])
    answers = {}
    for name, n in (("A", 3), ("B", 6)):  # B answers more of the prompts, the same way
        answers[name] = runio.write_jsonl(tmp_path / f"{name}.jsonl", [{"id": f"id{i}", "response": f"r{i}"} for i in range(n)])
    job = build(JobConfig, {"run_dir": str(run), "annotate": {"simulate": False, "allow_partial": True}}, "test.yaml")
    return job, answers


def test_annotate_failed_at_every_write_point_keeps_one_labeled_set(tmp_path, monkeypatch):
    from labelwise.annotate.stage import annotate

    for n in range(1, 20):
        job, answers = annotate_run(tmp_path / f"n{n}")
        annotate(job, answers=answers["A"], log=quiet)
        if not fails(monkeypatch, f"annotate:{n}", lambda: annotate(job, answers=answers["B"], log=quiet)):
            break  # past the last write point
        manifest.recover(job.run_dir, "annotate", [contracts.LABELED])
        ids = [r["id"] for r in textio.read_jsonl(job.run_path / contracts.LABELED)]
        assert ids in ([f"id{i}" for i in range(3)], [f"id{i}" for i in range(6)]), n
        annotate(job, answers=answers["B"], log=quiet)
        assert len(textio.read_jsonl(job.run_path / contracts.LABELED)) == 6
        said = []
        annotate(job, answers=answers["B"], log=said.append)
        assert "kept" in said[-1]
    assert n == 6  # the staged write, the commit point, the old manifest, the move, the manifest


# ------------------------------------------------------------------ the train stage


def test_train_failed_at_every_write_point_keeps_one_adapter_with_its_summary(tmp_path, tiny_model_dir, monkeypatch):
    """The Ray training itself is replaced by a stand-in that writes the same outputs (the
    adapter folder, the log, the plot, the summary) with a write point after each."""
    from labelwise.job import JobConfig
    from labelwise.training import stage
    from labelwise.contracts import LOSS_PNG, TRAIN_LOG
    from labelwise.contracts import TRAIN_SUMMARY as SUMMARY

    def fake_fit(job, run_dir, out_dir, hooks=None, labeled=None, init_adapter=None):
        tag = f"lr={job.train.lr}"
        (out_dir / contracts.ADAPTER).mkdir()
        (out_dir / contracts.ADAPTER / "adapter_config.json").write_text(tag)
        (out_dir / contracts.ADAPTER / "adapter_model.safetensors").write_text(tag)
        manifest.fault("train")
        for name in (TRAIN_LOG, LOSS_PNG):
            (out_dir / name).write_text(tag)
            manifest.fault("train")
        runio.write_json(out_dir / SUMMARY, {"tag": tag})
        manifest.fault("train")

    monkeypatch.setattr(stage, "fit", fake_fit)

    def job(run, lr):
        return build(JobConfig, {"run_dir": str(run), "model": {"name": str(tiny_model_dir)}, "train": {"lr": lr}}, "t")

    def tags(run):
        found = {(run / contracts.ADAPTER / f).read_text() for f in ("adapter_config.json", "adapter_model.safetensors")}
        found |= {(run / n).read_text() for n in (TRAIN_LOG, LOSS_PNG)} | {json.loads((run / SUMMARY).read_text())["tag"]}
        assert len(found) == 1, found  # one training's adapter, log, plot and summary
        return found.pop()

    for n in range(1, 30):
        run = tmp_path / f"n{n}"
        run.mkdir()
        runio.write_jsonl(run / contracts.LABELED, [{"id": "a", "task": "t", "prompt": "p", "response": "r"}])
        stage.train(job(run, 0.001), log=quiet)
        if not fails(monkeypatch, f"train:{n}", lambda: stage.train(job(run, 0.002), log=quiet)):
            break  # past the last write point
        manifest.recover(run, "train", stage.outputs())
        assert tags(run) in ("lr=0.001", "lr=0.002"), n
        stage.train(job(run, 0.001), log=quiet)
        assert tags(run) == "lr=0.001"
        assert not (run / manifest.STAGING / "train").exists()
    assert n == 12  # 4 staged writes, the commit point, the old manifest, 4 moves, the manifest, and done


# ------------------------------------------------------------------ the evaluate stage


def test_evaluate_failed_at_every_write_point_keeps_metrics_of_one_adapter(tmp_path, tiny_model_dir, monkeypatch):
    """The benchmark run is replaced by a stand-in whose number names the adapter it saw."""
    from labelwise.evaluation import stage
    from labelwise.evaluation.benchmarks import heldout
    from labelwise.job import JobConfig

    monkeypatch.setattr(heldout, "run", lambda ctx, label: {
        "adapter": (Path(ctx.spec.adapter) / "adapter_config.json").read_text()})

    def adapter(run, tag):
        (run / contracts.ADAPTER).mkdir(exist_ok=True)
        (run / contracts.ADAPTER / "adapter_config.json").write_text(tag)

    def metrics(run, name):
        entry = json.loads((run / name).read_text())
        if name == contracts.METRICS:
            entry = entry["adapted"]
        return entry["heldout"]["adapter"]

    for n in range(1, 20):
        run = tmp_path / f"n{n}"
        run.mkdir()
        runio.write_parquet(run / contracts.TEST, pd.DataFrame({"id": ["a"], "task": ["t"], "prompt": ["p"], "response": ["r"]}))
        job = build(JobConfig, {"run_dir": str(run), "model": {"name": str(tiny_model_dir)},
                                "evaluate": {"benchmarks": ["heldout"], "use_ray": False}}, "t")
        adapter(run, "A")
        stage.evaluate(job, adapter=run / contracts.ADAPTER, label="adapted", log=quiet)
        adapter(run, "B")  # trained again
        again = lambda: stage.evaluate(job, adapter=run / contracts.ADAPTER, label="adapted", log=quiet)  # noqa: E731
        if not fails(monkeypatch, f"evaluate-adapted:{n}", again):
            break  # past the last write point
        manifest.recover(run, "evaluate-adapted", [contracts.metrics_file("adapted")])
        assert metrics(run, contracts.metrics_file("adapted")) in ("A", "B"), n
        got = stage.evaluate(job, adapter=run / contracts.ADAPTER, label="adapted", log=quiet)
        assert got["heldout"]["adapter"] == "B" and metrics(run, contracts.METRICS) == "B"
        assert metrics(run, contracts.metrics_file("adapted")) == "B"
    assert n == 6  # the staged write, the commit point, the old manifest, the move, the manifest


def test_annotate_sigkill_after_the_move_then_rerun(tmp_path):
    """`labelwise annotate --answers B` SIGKILLed after labeled.jsonl is moved into place but
    before its manifest: the rerun finishes the commit and keeps B's labels."""
    job, answers = annotate_run(tmp_path)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {job.run_dir}\nannotate: {{simulate: false, allow_partial: true}}\n")
    cmd = cli_process.cli_command("annotate", str(cfg), "--answers")
    assert subprocess.run(cmd + [str(answers["A"])], env=cli_env(), capture_output=True).returncode == 0
    killed = subprocess.run(cmd + [str(answers["B"])], env=cli_env(LABELWISE_FAULT="annotate:4:kill"),
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    again = subprocess.run(cmd + [str(answers["B"])], env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0 and "[annotate] kept" in again.stderr, again.stderr
    assert len(textio.read_jsonl(job.run_path / contracts.LABELED)) == 6


def test_evaluate_sigkill_then_rerun_gives_metrics_of_the_adapter_on_disk(tmp_path, tiny_model_dir):
    """`labelwise evaluate --adapter` SIGKILLed at its staged write after the adapter changed;
    the rerun evaluates the adapter on disk, and metrics.json agrees with metrics_adapted.json."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM


    run = tmp_path / "run"
    run.mkdir()
    runio.write_parquet(run / contracts.TEST, pd.DataFrame(
        {"id": ["a", "b"], "task": ["t", "u"], "prompt": ["Say yes.", "Say no."], "response": ["yes", "no"], "source": "s"}))
    adapters = {}
    for seed in (1, 2):
        import torch

        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        lora = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
        get_peft_model(model, lora).save_pretrained(tmp_path / f"adapter{seed}")
        adapters[seed] = tmp_path / f"adapter{seed}"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {run}\nmodel: {{name: {tiny_model_dir}}}\n"
                   "evaluate: {benchmarks: [heldout], use_ray: false, heldout: {max_new_tokens: 2}}\n")
    cmd = cli_process.cli_command("evaluate", str(cfg), "--adapter", str(run / contracts.ADAPTER))

    def nll(name):
        entry = json.loads((run / name).read_text())
        return (entry["adapted"] if name == contracts.METRICS else entry)["heldout"]["nll_macro"]

    shutil.copytree(adapters[1], run / contracts.ADAPTER)
    assert subprocess.run(cmd, env=cli_env(), capture_output=True).returncode == 0
    first = nll(contracts.metrics_file("adapted"))
    shutil.rmtree(run / contracts.ADAPTER)
    shutil.copytree(adapters[2], run / contracts.ADAPTER)  # trained again
    killed = subprocess.run(cmd, env=cli_env(LABELWISE_FAULT="evaluate-adapted:1:kill"), capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert nll(contracts.metrics_file("adapted")) == first  # the old complete set, until the new one commits
    again = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "input adapter changed" in again.stderr and "reused" in again.stderr  # the finished benchmark is not redone
    assert nll(contracts.metrics_file("adapted")) == nll(contracts.METRICS) != first
