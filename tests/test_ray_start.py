"""Starting Ray: a local Ray when no address is given, joining RAY_ADDRESS otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from labelwise.config import ConfigError, build
from labelwise.ray_start import RayConfig


def test_local_ray_starts_with_requested_cpus_listens_on_loopback_and_forwards_only_needed_env():
    code = textwrap.dedent(
        """
        import os, ray, psutil
        os.environ["LABELWISE_MARK"] = "seen"
        from labelwise.ray_start import RayConfig, init_ray
        init_ray(RayConfig(num_cpus=1))
        assert init_ray() is ray  # idempotent
        print("CPU", ray.cluster_resources()["CPU"])
        env_vars = lambda: ray.get_runtime_context().runtime_env.get("env_vars", {})
        print("ENV", ray.get(ray.remote(lambda: env_vars().get("LABELWISE_MARK")).remote()))
        print("FORWARDED", sorted(ray.get(ray.remote(env_vars).remote())))
        from labelwise.ray_start import started_locally
        from ray.util.state import list_nodes
        print("LOCAL", started_locally(), "STATE API", len(list_nodes(address=ray.get_runtime_context().gcs_address)))  # Ray Train V2 needs it
        listening = set()
        for p in [psutil.Process(), *psutil.Process().children(recursive=True)]:
            try:
                listening |= {(p.name(), c.laddr.ip) for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
            except psutil.Error:
                pass
        print("LISTEN", sorted(listening))
        print("EXPOSED", sorted(x for x in listening if x[1] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")))
        ray.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["HF_TOKEN"] = "hf_secret_for_tests"  # a credential: never in the runtime env
    env["HF_HOME"] = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CPU 1.0" in out.stdout
    assert "ENV seen" in out.stdout
    assert "LOCAL True STATE API 1" in out.stdout
    forwarded = next(line for line in out.stdout.splitlines() if line.startswith("FORWARDED"))
    assert "HF_HOME" in forwarded and "HF_TOKEN" not in forwarded
    assert "('gcs_server'" in out.stdout and "('raylet'" in out.stdout  # the check saw Ray's servers
    assert "EXPOSED []" in out.stdout, out.stdout


def test_ray_config_validation():
    with pytest.raises(ConfigError, match=r"ray\.num_cpus: must be positive"):
        build(RayConfig, {"num_cpus": 0}, "job.yaml: ray")
