"""Starting Ray: a local Ray when no address is given, joining RAY_ADDRESS otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from labelwise.config import ConfigError, build
from labelwise.ray_start import RayConfig


def test_local_ray_starts_with_requested_cpus_and_forwards_env():
    code = textwrap.dedent(
        """
        import os, ray
        os.environ["LABELWISE_MARK"] = "seen"
        from labelwise.ray_start import RayConfig, init_ray
        init_ray(RayConfig(num_cpus=1))
        assert init_ray() is ray  # idempotent
        print("CPU", ray.cluster_resources()["CPU"])
        print("ENV", ray.get(ray.remote(lambda: os.environ.get("LABELWISE_MARK")).remote()))
        from labelwise.ray_start import started_locally
        from ray.util.state import list_nodes
        print("LOCAL", started_locally(), "STATE API", len(list_nodes(address=ray.get_runtime_context().gcs_address)))  # Ray Train V2 needs it
        ray.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CPU 1.0" in out.stdout
    assert "ENV seen" in out.stdout
    assert "LOCAL True STATE API 1" in out.stdout


def test_ray_config_validation():
    with pytest.raises(ConfigError, match=r"ray\.num_cpus: must be positive"):
        build(RayConfig, {"num_cpus": 0}, "job.yaml: ray")
