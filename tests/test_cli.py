"""The command line: help for every command, config errors, example jobs that validate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labelwise import cli
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
def test_every_example_job_validates(job):
    data = yaml.safe_load((REPO / "jobs" / job).read_text())
    if not isinstance(data, dict) or "run_dir" not in data:
        pytest.skip(f"{job} is not a labelwise job config")
    assert isinstance(load_job(REPO / "jobs" / job), JobConfig)
