"""Config loading: every error names the file and the dotted key, before any work starts."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from labelwise import config
from labelwise.config import ConfigError, check
from labelwise.job import JobConfig, load_job


def write(tmp_path, text, name="job.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_load_without_a_file():
    job = load_job(None)
    assert isinstance(job, JobConfig)
    assert job.model.name == "smollm2-135m-instruct"


def test_unknown_top_level_key_names_file_and_key(tmp_path):
    p = write(tmp_path, "run_dir: x\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: bogus: unknown key .*valid keys: .*run_dir"):
        load_job(p)


def test_unknown_nested_key_names_section(tmp_path):
    p = write(tmp_path, "select:\n  budgett: 3\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: select\.budgett: unknown key"):
        load_job(p)


def test_wrong_type_names_key(tmp_path):
    p = write(tmp_path, "select:\n  budget: lots\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: select\.budget: expected an integer, got 'lots'"):
        load_job(p)


def test_bool_is_not_an_integer(tmp_path):
    p = write(tmp_path, "seed: true\n")
    with pytest.raises(ConfigError, match=r"seed: expected an integer"):
        load_job(p)


def test_impossible_value_names_key(tmp_path):
    p = write(tmp_path, "select:\n  budget: -5\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: select\.budget: must be a positive"):
        load_job(p)


def test_literal_lists_choices(tmp_path):
    p = write(tmp_path, "model:\n  device: tpu\n")
    with pytest.raises(ConfigError, match=r"model\.device: expected one of 'auto', 'cpu', 'cuda'"):
        load_job(p)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_job(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path):
    p = write(tmp_path, "run_dir: x\nselect:\n  budget: [1,\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: line \d+ invalid YAML"):
        load_job(p)


def test_section_must_be_a_mapping(tmp_path):
    p = write(tmp_path, "select: 5\n")
    with pytest.raises(ConfigError, match=r"select: expected a mapping"):
        load_job(p)


def test_overrides_are_applied_and_validated(tmp_path):
    p = write(tmp_path, "select:\n  budget: 10\n")
    job = load_job(p, ["select.budget=25", "model.dtype=bfloat16", "run_dir=/tmp/r"])
    assert job.select.budget == 25 and job.model.dtype == "bfloat16" and job.run_dir == "/tmp/r"
    with pytest.raises(ConfigError, match=r"select\.budget: must be a positive"):
        load_job(p, ["select.budget=0"])
    with pytest.raises(ConfigError, match=r"expected key=value"):
        load_job(p, ["select.budget"])
    with pytest.raises(ConfigError, match=r"select\.nope: unknown key"):
        load_job(p, ["select.nope=1"])


def test_float_fields_accept_yaml_scientific_strings():
    @dataclasses.dataclass
    class C:
        lr: float = 1.0
        mode: Literal["a", "b"] = "a"
        ids: list[int] = dataclasses.field(default_factory=list)

    c = config.build(C, {"lr": "5e-4", "ids": [1, 2.0]}, "f.yaml: train")
    assert c.lr == 5e-4 and c.ids == [1, 2]
    with pytest.raises(ConfigError, match=r"f\.yaml: train\.ids\[1\]: expected an integer"):
        config.build(C, {"ids": [1, "x"]}, "f.yaml: train")


def test_required_key_and_check_helper():
    @dataclasses.dataclass
    class C:
        path: str
        k: int = 1

        def __post_init__(self):
            check(self.k != 3, "k", "three is not allowed")

    with pytest.raises(ConfigError, match=r"f\.yaml: sec\.path: required key is missing"):
        config.build(C, {}, "f.yaml: sec")
    with pytest.raises(ConfigError, match=r"f\.yaml: sec\.k: three is not allowed"):
        config.build(C, {"path": "x", "k": 3}, "f.yaml: sec")


def test_to_dict_round_trips():
    job = load_job(None, ["select.budget=7"])
    again = config.build(JobConfig, config.to_dict(job), "roundtrip")
    assert again == job


def test_relative_run_dir_is_rejected_inside_a_submitted_job(tmp_path, monkeypatch):
    p = write(tmp_path, "run_dir: runs/x\n")
    assert load_job(p).run_dir == "runs/x"  # fine on a laptop
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    with pytest.raises(ConfigError, match=r"job\.yaml: run_dir: 'runs/x' is relative.*ray job submit"):
        load_job(p)
    assert load_job(p, [f"run_dir={tmp_path / 'abs'}"]).run_dir == str(tmp_path / "abs")
