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


# ----------------------------------------------------------------------------- run_dir and input paths
@pytest.mark.parametrize("uri", ["s3://bucket/runs/x", "gs://b/r", "file:///tmp/r"])
def test_a_uri_run_dir_is_rejected_naming_the_key(tmp_path, uri):
    p = write(tmp_path, f"run_dir: {uri}\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: run_dir: .* is a URI; run folders must be a local or shared-mount path.*ray\.storage may be a URI"):
        load_job(p)
    assert load_job(p, ["run_dir=/mnt/shared/runs/x", "ray.storage=s3://bucket/ray"]).ray.storage == "s3://bucket/ray"


@pytest.mark.parametrize(
    "override, key",
    [
        ("pool.source=/nope/pool.jsonl", "pool.source"),
        ("pool.source=relative/nope.jsonl", "pool.source"),
        ("annotate.answers=/nope/answers.jsonl", "annotate.answers"),
        ("evaluate.data_dir=/nope/data", "evaluate.data_dir"),
        ("model.name=/nope/model", "model.name"),
        ("model.name=./nope-model", "model.name"),
        ("model.name=~/nope-model-xyz", "model.name"),
    ],
)
def test_missing_local_inputs_are_errors_naming_file_and_key(tmp_path, override, key):
    p = write(tmp_path, "run_dir: runs/x\n")
    with pytest.raises(ConfigError, match=rf"job\.yaml: {key}: '.*nope.*'.*not found"):
        load_job(p, [override])


def test_inputs_that_are_not_local_paths_are_not_checked(tmp_path, monkeypatch):
    p = write(tmp_path, "run_dir: runs/x\n")
    for override in ["pool.source=builtin:skills", "pool.source=hf:org/data", "pool.source=s3://bucket/x.jsonl",
                     "model.name=org/some-model", "model.name=smollm2-135m-instruct"]:
        load_job(p, [override])
    (tmp_path / "d.jsonl").write_text("{}\n")
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path))
    assert load_job(p, ["pool.source=${LABELWISE_DATA_DIR}/d.jsonl"]).pool.source == "${LABELWISE_DATA_DIR}/d.jsonl"
    with pytest.raises(ConfigError, match=rf"pool.source: '\$\{{LABELWISE_DATA_DIR\}}/e.jsonl' \(= {tmp_path}/e.jsonl\): not found"):
        load_job(p, ["pool.source=${LABELWISE_DATA_DIR}/e.jsonl"])


def test_a_model_folder_needs_config_json(tmp_path):
    (tmp_path / "model").mkdir()
    p = write(tmp_path, f"model:\n  name: {tmp_path / 'model'}\n")
    with pytest.raises(ConfigError, match=r"model\.name: .* has no config\.json"):
        load_job(p)
    (tmp_path / "model" / "config.json").write_text("{}")
    assert load_job(p).model.name == str(tmp_path / "model")


def test_path_checks_follow_the_command_and_benchmarks(tmp_path):
    p = write(tmp_path, "annotate:\n  answers: /nope/answers.jsonl\nevaluate:\n  bbh:\n    path: /nope/bbh\n")
    load_job(p, command="select")  # select does not read the answers file (it may not exist yet)
    with pytest.raises(ConfigError, match=r"annotate\.answers"):
        load_job(p, command="annotate")
    with pytest.raises(ConfigError, match=r"annotate\.answers"):
        load_job(p)  # no command (labelwise config): every input is checked
    load_job(p, ["annotate.answers=null"], command="evaluate")  # bbh is not a listed benchmark
    with pytest.raises(ConfigError, match=r"evaluate\.bbh\.path: '/nope/bbh'"):
        load_job(p, ["annotate.answers=null", "evaluate.benchmarks=[heldout, bbh]"], command="evaluate")


def test_cluster_jobs_leave_paths_on_an_absent_cluster_mount_to_the_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    p = write(tmp_path, "run_dir: /mnt/nonexistent-mount-xyz/runs/a\nray:\n  address: auto\n"
                        "pool:\n  source: /mnt/nonexistent-mount-xyz/data/pool.jsonl\n")
    assert load_job(p).pool.source.endswith("pool.jsonl")  # on a laptop: on the cluster's mount
    with pytest.raises(ConfigError, match=r"pool\.source"):
        load_job(p, ["ray.address=null"])  # a local job: the file must be here
    with pytest.raises(ConfigError, match=r"pool\.source"):
        load_job(p, [f"pool.source={tmp_path}/absent.jsonl"])  # the mount exists here: checked
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    with pytest.raises(ConfigError, match=r"pool\.source"):
        load_job(p)  # the submitted driver, on the cluster: strict


def test_duplicate_keys_and_sections_are_errors_naming_both_lines(tmp_path):
    p = write(tmp_path, "run_dir: x\nselect:\n  budget: 10\n  seed: 1\n  budget: 20\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: duplicate key 'budget' at lines 3 and 5"):
        load_job(p)
    p = write(tmp_path, "select:\n  budget: 10\nrun_dir: x\nselect:\n  seed: 2\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: duplicate key 'select' at lines 1 and 4"):
        load_job(p)
    # YAML merge keys may still override what they bring in.
    p = write(tmp_path, "base: &b {budget: 10, seed: 1}\n")
    assert config.read_yaml(p)["base"] == {"budget": 10, "seed": 1}
    p = write(tmp_path, "select:\n  <<: {budget: 10, seed: 1}\n  budget: 20\n")
    assert load_job(p).select.budget == 20


def test_malformed_set_value_is_a_config_error_naming_the_key(tmp_path):
    from labelwise.cli import main

    p = write(tmp_path, "run_dir: x\n")
    with pytest.raises(ConfigError, match=r"--set select\.params: the value '\{base:' is not valid YAML"):
        load_job(p, ["select.params={base:"])
    with pytest.raises(ConfigError, match=r"--set select\.params: duplicate key 'base'"):
        load_job(p, ["select.params={base: 1, base: 2}"])
    assert main(["config", str(p), "--set", "select.params={base:"]) == 2


@pytest.mark.parametrize("key,value", [("select.seed", -1), ("seed", -1), ("pool.seed", -3), ("select.seed", 2**32), ("sweep.seeds", [0, -1])])
def test_seeds_out_of_range_are_errors_naming_the_key(tmp_path, key, value):
    p = write(tmp_path, "run_dir: x\n")
    name = "sweep.seeds[1]" if key == "sweep.seeds" else key
    with pytest.raises(ConfigError, match=rf"job\.yaml: {name.replace('.', '[.]').replace('[1]', '.1.')}: must be an integer from 0 to 4294967295"):
        load_job(p, [f"{key}={value}"])


def test_a_folder_or_an_empty_file_as_the_job_file_is_a_config_error(tmp_path, capsys):
    from labelwise.cli import main

    with pytest.raises(ConfigError, match=r"is a folder, not a job file"):
        load_job(tmp_path)
    for text in ("", "\n# only a comment\n"):
        p = write(tmp_path, text, name="empty.yaml")
        with pytest.raises(ConfigError, match=r"empty\.yaml: the job file is empty"):
            load_job(p)
    assert main(["config", str(tmp_path)]) == 2
    assert "config error" in capsys.readouterr().err
