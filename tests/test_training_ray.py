"""Train stage on a real local Ray: DDP curves, each example once, checkpoints, failures, Tune."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labelwise import runio, textio
from test_training import make_job, synthetic_rows

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROWS = synthetic_rows(12)  # batch 4 -> 3 steps per epoch, 2 epochs, a checkpoint per epoch
LR = 5e-3  # the tiny random model needs a large step to move within 6 steps
DELAY = 4.0  # seconds a killed worker waits: longer than Ray Train's 2 s report polling


def losses(run_dir) -> list[float]:
    return pd.read_csv(run_dir / "train_log.csv")["loss"].tolist()


def summary(run_dir) -> dict:
    return json.loads((run_dir / "train_summary.json").read_text())


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, tiny_model_dir, local_ray):
    """2 DDP workers, recording which ids each worker trains on."""
    from labelwise.training.stage import train

    tmp = tmp_path_factory.mktemp("w2")
    job = make_job(tmp, tiny_model_dir, ROWS, num_workers=2, lr=LR)
    record = tmp / "ids"
    record.mkdir()
    train(job, hooks={"record_ids": str(record)})
    return job, record


@pytest.fixture(scope="module")
def one_worker_killed_then_restarted(tmp_path_factory, tiny_model_dir, local_ray):
    """1 worker, no retries, dies at step 4; then the same job is started again, this time
    from inside a Ray Tune trial, the way the sweep calls train(job): a trial (1 CPU) runs
    a 1-worker TorchTrainer (1 CPU) on the 2 CPUs."""
    from ray import tune

    from labelwise.training.stage import train

    tmp = tmp_path_factory.mktemp("w1")
    job = make_job(tmp, tiny_model_dir, ROWS, num_workers=1, lr=LR, max_failures=0)
    marker = tmp / "killed"
    with pytest.raises(Exception, match="(?i)fail|died|error"):
        train(job, hooks={"fail": {"step": 4, "rank": 0, "marker": str(marker), "delay_s": DELAY}})
    assert marker.exists() and not (job.run_path / "adapter").exists()

    def trial(params):
        adapter = train(job)  # same job: same run name, so it finds the step-3 checkpoint
        tune.report({"steps": json.loads((adapter.parent / "train_summary.json").read_text())["steps"]})

    results = tune.Tuner(
        tune.with_resources(trial, {"cpu": 1}),
        param_space={"x": 0},
        run_config=tune.RunConfig(name="tune", storage_path=str(tmp / "tune")),
    ).fit()
    assert not results.errors, results.errors
    assert results[0].metrics["steps"] == 6
    return job


def test_killed_run_resumes_from_its_last_checkpoint(one_worker_killed_then_restarted):
    run = one_worker_killed_then_restarted.run_path
    s = summary(run)
    assert s["resumed_from_steps"] == [3]
    assert pd.read_csv(run / "train_log.csv")["step"].tolist() == [1, 2, 3, 4, 5, 6]


def test_one_and_two_workers_give_the_same_curve(one_worker_killed_then_restarted, two_workers):
    one = losses(one_worker_killed_then_restarted.run_path)
    two = losses(two_workers[0].run_path)
    assert len(one) == len(two) == 6
    # The 1-worker run was killed and resumed: its curve matching the uninterrupted 2-worker
    # run shows both that DDP equals one worker and that resuming is exact.
    assert one == pytest.approx(two, rel=1e-4, abs=1e-4)
    assert one[-1] < one[0]
    assert summary(two_workers[0].run_path)["num_workers"] == 2


def test_each_example_seen_once_per_epoch_across_workers(two_workers):
    _, record = two_workers
    per_epoch, ranks = {}, set()
    for path in record.glob("rank*.jsonl"):
        ranks.add(path.name)
        for rec in textio.read_jsonl(path):
            per_epoch.setdefault(rec["epoch"], []).extend(rec["ids"])
    assert ranks == {"rank0.jsonl", "rank1.jsonl"}
    assert set(per_epoch) == {0, 1}
    for ids in per_epoch.values():
        assert sorted(ids) == sorted(r["id"] for r in ROWS)  # once each, none repeated


def test_outputs_and_adapter_loads_with_peft(two_workers, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = two_workers[0].run_path
    for name in ("train_log.csv", "loss.png", "train_summary.json", "adapter/adapter_config.json"):
        assert (run / name).exists(), name
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    s = summary(run)
    assert s["steps"] == 6 and s["n_examples"] == 12 and s["n_truncated"] == 0 and s["lr"] == LR
    assert s["resumed_from_steps"] == [] and s["train_tokens_per_s"] > 0
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(run / "adapter"))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # trained (B starts at zero)
    assert sorted(p.name for p in (run / "adapter").iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]


def test_finished_run_is_not_redone(two_workers, capsys):
    from labelwise.training.stage import train

    job = two_workers[0]
    before = (job.run_path / "train_summary.json").read_text()
    assert train(job) == job.run_path / "adapter"
    assert "already trained" in capsys.readouterr().err
    assert (job.run_path / "train_summary.json").read_text() == before


def test_summary_records_the_inputs_and_truncation_counts(two_workers):
    from labelwise.training.stage import run_name

    job = two_workers[0]
    s = summary(job.run_path)
    assert s["fingerprint"] == run_name(job, job.run_path / "labeled.jsonl") == s["ray_run"]["name"]
    assert s["labeled_sha256"] and s["model_fingerprint"]
    assert s["n_prompt_trimmed"] == s["n_response_trimmed"] == s["n_no_response_tokens"] == s["tokens_cut"] == 0


def test_changed_settings_under_an_explicit_name_do_not_resume_old_checkpoints(two_workers, capsys):
    """Changing lr trains again; naming the Ray run after the old one would resume
    the old training's checkpoints (Ray Train's own layout), which is refused."""
    from labelwise import config
    from labelwise.job import JobConfig
    from labelwise.training.stage import train

    job = two_workers[0]
    before = (job.run_path / "train_summary.json").read_text()
    old_name = summary(job.run_path)["ray_run"]["name"]
    data = config.to_dict(job)
    data["train"] = {**data["train"], "lr": LR * 2, "name": old_name}
    changed = config.build(JobConfig, data, "test")
    with pytest.raises(RuntimeError, match=rf"train.name='{old_name}'.*another training"):
        train(changed)
    assert "setting train.lr changed" in capsys.readouterr().err
    assert (job.run_path / "train_summary.json").read_text() == before  # nothing lost


def test_dead_worker_is_replaced_and_training_continues(two_workers, tmp_path, tiny_model_dir):
    from labelwise.training.stage import train

    job = make_job(tmp_path, tiny_model_dir, ROWS, num_workers=2, lr=LR, max_failures=1)
    marker = tmp_path / "killed"
    train(job, hooks={"fail": {"step": 4, "rank": 1, "marker": str(marker), "delay_s": DELAY}})
    assert marker.exists()  # worker 1's process did exit at step 4
    assert summary(job.run_path)["resumed_from_steps"] == [3]  # new group, from the epoch-1 checkpoint
    assert pd.read_csv(job.run_path / "train_log.csv")["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert losses(job.run_path) == pytest.approx(losses(two_workers[0].run_path), rel=1e-4, abs=1e-4)


def test_real_model_training_lowers_train_and_heldout_loss(tmp_path, packaged_model_dir, local_ray):
    """SmolLM2-135M-Instruct, 24 examples, max_length 128, paper defaults (3 epochs, AdamW)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labelwise.training.data import encode
    from labelwise.training.loop import mean_response_loss
    from labelwise.training.stage import train

    job = make_job(tmp_path, "smollm2-135m-instruct", synthetic_rows(24), epochs=3, batch_size=8, max_length=128, lora_dropout=0.05)
    train(job)
    log = pd.read_csv(job.run_path / "train_log.csv")
    assert len(log) == 9
    assert log["loss"].iloc[-3:].mean() < 0.7 * log["loss"].iloc[:3].mean()
    s = summary(job.run_path)
    assert s["lr"] == 5e-4 and s["lr_source"].startswith("by model size") and s["n_truncated"] == 0

    tok = AutoTokenizer.from_pretrained(packaged_model_dir)
    heldout = encode(tok, synthetic_rows(12, offset=100), 128)  # same tasks, unseen examples
    base = AutoModelForCausalLM.from_pretrained(packaged_model_dir)
    before = mean_response_loss(base, heldout, tok.pad_token_id)
    adapted = PeftModel.from_pretrained(base, str(job.run_path / "adapter"))
    after = mean_response_loss(adapted, heldout, tok.pad_token_id)
    assert after < 0.7 * before, (before, after)


def test_bench_train_runs_scaled_down_on_a_labeled_file_with_length_grouping(tmp_path, tiny_model_dir, local_ray, capsys):
    from labelwise.training.bench import main

    rows = synthetic_rows(16)
    for i, row in enumerate(rows):  # unequal lengths, so grouping has padding to save
        row["prompt"] += " Please." * (i * 5 % 23)
    data = tmp_path / "labeled.jsonl"
    runio.write_jsonl(data, rows)
    out = tmp_path / "bench.json"
    assert main(["--model", str(tiny_model_dir), "--data", str(data), "--length-grouping", "2", "--workers", "1",
                 "--batch-size", "4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["examples"] == 16 and result["data"] == str(data)
    runs = [(r["runner"], r["workers"], r["length_grouping"]) for r in result["runs"]]
    assert runs == [("plain loop", 1, 0), ("plain loop", 1, 2), ("ray train", 1, 2)]
    assert all(r["tokens_per_s"] > 0 for r in result["runs"])
    assert "ratio_vs_plain" not in result["runs"][0] and all("ratio_vs_plain" in r for r in result["runs"][1:])
    printed = capsys.readouterr().out
    assert "16 examples (" in printed and "grouping" in printed
