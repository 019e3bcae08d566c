"""The command line: help for every command, config errors, example jobs that validate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labelwise import cli
from labelwise.config import ConfigError
from labelwise.job import JobConfig, load_job

REPO = Path(__file__).resolve().parents[1]
STAGE_COMMANDS = [name for name, _, _ in cli.STAGES]


def run_cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "labelwise.cli", *argv], capture_output=True, text=True, timeout=120
    )


def test_top_level_help_lists_every_stage():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in STAGE_COMMANDS + ["report", "bench", "config"]:
        assert f"    {name} " in out.stdout, name


@pytest.mark.parametrize("command", STAGE_COMMANDS + ["report", "config"])
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "usage: labelwise " + command in text
    if command in STAGE_COMMANDS:
        assert "--set KEY=VALUE" in text


@pytest.mark.parametrize("target", sorted(cli.BENCHES))
def test_each_bench_has_help(target):
    out = run_cli("bench", target, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout


def test_config_error_names_file_and_key_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("select:\n  budget: -3\n")
    out = run_cli("select", str(bad))
    assert out.returncode == 2
    assert f"{bad}: select.budget: must be a positive" in out.stderr


def test_config_command_prints_a_resolved_config_that_reloads(tmp_path, capsys):
    assert cli.main(["config", str(REPO / "jobs/quickstart.yaml"), "--set", "select.budget=33"]) == 0
    printed = tmp_path / "resolved.yaml"
    printed.write_text(capsys.readouterr().out)
    again = load_job(printed)
    assert again.select.budget == 33
    assert again == load_job(REPO / "jobs/quickstart.yaml", ["select.budget=33"])


@pytest.mark.parametrize("job", sorted(p.name for p in (REPO / "jobs").glob("*.yaml")))
def test_every_example_job_validates(job, tmp_path, monkeypatch):
    path = REPO / "jobs" / job
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or "run_dir" not in data:
        pytest.skip(f"{job} is not a labelwise job config")
    source = (data.get("pool") or {}).get("source", "")
    if source and ":" not in source and "$" not in source and not source.startswith(("/", "~")):
        # An example over data the user downloads (data/...): loading it names the missing
        # file and the key until the file is there, relative to the current folder.
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ConfigError, match=rf"{job}: pool.source: '{source}': not found, relative to the current folder"):
            load_job(path)
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("")
    assert isinstance(load_job(path), JobConfig)


def test_config_command_rejects_a_missing_local_input(tmp_path, capsys):
    job = str(REPO / "jobs/quickstart.yaml")
    for override, key in [("pool.source=/nope", "pool.source"), ("annotate.answers=/nope.jsonl", "annotate.answers"),
                          ("evaluate.data_dir=/nope", "evaluate.data_dir"), ("model.name=/nope", "model.name")]:
        assert cli.main(["config", job, "--set", override]) == 2
        assert f"labelwise: config error: {job}: {key}: '/nope" in capsys.readouterr().err
    assert cli.main(["config", job, "--set", "run_dir=s3://bucket/runs/q"]) == 2
    assert "run_dir: 's3://bucket/runs/q' is a URI" in capsys.readouterr().err


def test_stage_errors_are_one_line_and_exit_1_unless_debugging(tmp_path, monkeypatch, capsys):
    from labelwise.pool import stage

    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\npool:\n  source: builtin:skills\n")
    for exc in (RuntimeError("the actor died"), FileNotFoundError("x.parquet: not found"), ValueError("bad rows")):
        def fail(job, args, exc=exc):
            raise exc

        monkeypatch.setattr(stage, "main", fail)
        monkeypatch.delenv("LABELWISE_DEBUG", raising=False)
        assert cli.main(["pool", str(cfg)]) == 1
        err = capsys.readouterr().err
        assert err == f"labelwise: error: {exc}\n" and "Traceback" not in err
        monkeypatch.setenv("LABELWISE_DEBUG", "1")
        with pytest.raises(type(exc)):
            cli.main(["pool", str(cfg)])


def test_bare_bench_prints_its_help_with_the_targets(capsys):
    assert cli.main(["bench"]) == 2
    out = capsys.readouterr().out
    assert "usage: labelwise bench" in out
    for target in ("score", "select", "train"):
        assert f"  {target} " in out, target


def test_run_until_choices_are_the_pipeline_stages(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["run", "job.yaml", "--until", "evaluate-base"]).until == "evaluate-base"
    assert parser.parse_args(["run", "job.yaml", "--until", "select"]).until == "select"
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["run", "job.yaml", "--until", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'evaluate-adapted'" in err


def test_answers_still_to_come_do_not_block_the_commands_before_them(tmp_path, monkeypatch):
    """annotate.answers may name a file annotators have not written yet: `annotate --export`
    and `run --until select` do not read it; a plain `annotate` / `run` does."""
    import labelwise.annotate.stage as annotate_stage
    import labelwise.pipeline as pipeline

    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\npool:\n  source: builtin:skills\nannotate:\n  answers: {tmp_path / 'answers.csv'}\n")
    seen = []
    monkeypatch.setattr(annotate_stage, "main", lambda job, args: seen.append("annotate") or 0)
    monkeypatch.setattr(pipeline, "main", lambda job, args: seen.append(args.until) or 0)
    assert cli.main(["annotate", str(cfg), "--export", str(tmp_path / "answers.csv")]) == 0
    assert cli.main(["run", str(cfg), "--until", "select"]) == 0
    assert seen == ["annotate", "select"]
    assert cli.main(["annotate", str(cfg)]) == 2
    assert cli.main(["run", str(cfg), "--until", "annotate"]) == 2
    assert cli.main(["run", str(cfg)]) == 2
