"""An autoscaling Ray cluster on one machine: Ray's own autoscaler with its fake multi-node
provider, for rehearsing a cloud run (nodes added while work queues, removed when idle,
lost under a running job) before renting one, and for tests/test_autoscaling.py.

    python cluster/local_autoscaling.py -- labelwise sweep jobs/cluster_sweep_tiny.yaml \
        --set run_dir=$PWD/runs/as_sweep --set ray.storage=$PWD/runs/as_sweep/ray

starts a head that holds no work (CPU 0, like cluster/aws.yaml's head), with the autoscaler
watching two worker types that start at zero: ``cpu`` (2 CPUs, up to 2 nodes) and ``gpu``
(1 CPU and 1 *declared* GPU, up to 1 node). Each node the autoscaler "launches" is a real
raylet (with its workers) on this machine; it stops the node again after
``idle_timeout_minutes`` of idleness. The command runs with RAY_ADDRESS set to the cluster,
and every process started here is stopped afterwards.

This is what ``ray.cluster_utils.AutoscalingCluster`` (Ray 2.60) does, made safe to use on a
shared machine and from a pip-installed Ray:

- ``AutoscalingCluster.start()`` and ``shutdown()`` run ``ray stop --force``, which stops
  *every* Ray on the machine; here only our own processes are stopped (cluster/local_cluster.py).
- its config is built from ``fake_multi_node/example.yaml``, which the Ray wheel does not
  ship (the ``fake_multinode`` provider type loads it as its defaults too, so the autoscaler
  cannot start with it); here the provider class is named as an ``external`` provider and
  the config is complete.
- a node whose raylet is killed stays in Ray's fake provider as "pending": the autoscaler
  waits for it instead of replacing it (about 3 minutes, see ``LostNodesProvider``); here
  the provider stops listing it, as a cloud provider does with a lost VM.
- its head and the provider's nodes use the default GCS port 6379; here every server gets
  a free port, the provider is told the head's address (``provider.gcs_address``), and the
  cluster lives in its own temp dir, with token authentication (Ray 2.60 joins a second
  node only with RAY_AUTH_MODE=token).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_cluster import LocalCluster, free_port  # noqa: E402

sys.path.pop(0)

PROVIDER = "local_autoscaling.LostNodesProvider"  # imported by the autoscaler (PYTHONPATH: this folder)
HEAD_TYPE = "ray.head.default"  # the provider's name for the head's type
MB = 1024 * 1024


def _fake_provider():
    from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

    return FakeMultiNodeProvider


def __getattr__(name):  # the provider class, defined on first use (only the autoscaler imports Ray here)
    if name != "LostNodesProvider":
        raise AttributeError(name)

    class LostNodesProvider(_fake_provider()):
        """Ray's fake multi-node provider, except that a node whose raylet has died is no
        longer listed, as a cloud provider stops listing a VM that is gone. Ray's own keeps
        such a node as "pending, uninitialized": the autoscaler counts its CPUs as coming and
        starts no replacement until it drops the node as idle, which Ray Data's and Ray
        Train's resource requests (180 s expiry) put off for about 3 minutes."""

        def non_terminated_nodes(self, tag_filters):
            with self.lock:
                for node_id, info in list(self._nodes.items()):
                    node = info.get("node")
                    raylets = node.all_processes.get("raylet", []) if node is not None else []
                    if raylets and any(p.process.poll() is not None for p in raylets):
                        self._nodes.pop(node_id)
                        node.kill_all_processes(check_alive=False, allow_graceful=False)
            return super().non_terminated_nodes(tag_filters)

    globals()["LostNodesProvider"] = LostNodesProvider
    return LostNodesProvider


def default_worker_types() -> dict:
    return {
        "cpu": {"resources": {"CPU": 2}, "min_workers": 0, "max_workers": 2},
        "gpu": {"resources": {"CPU": 1, "GPU": 1}, "min_workers": 0, "max_workers": 1},
    }


@dataclass
class LocalAutoscalingCluster(LocalCluster):
    """A head (``head_cpus``, default 0: it runs drivers, not work) and the autoscaler over
    ``worker_types`` (autoscaler ``available_node_types`` entries: ``resources``,
    ``min_workers``, ``max_workers``)."""

    head_cpus: int = 0
    workers: list = field(default_factory=list)  # no static worker nodes: the autoscaler adds them
    worker_types: dict = field(default_factory=default_worker_types)
    idle_timeout_minutes: float = 0.1
    upscaling_speed: float = 1.0
    node_object_store_mb: int = 200
    """Object store of each launched node (they all share this machine's /dev/shm)."""
    update_interval_s: int = 1
    """How often the autoscaler looks at the demand (a cloud cluster: 5 s)."""

    def __post_init__(self):
        super().__post_init__()
        self._metric_port = 0

    def autoscaling_config(self) -> dict:
        types = {}
        for name, spec in self.worker_types.items():
            spec = json.loads(json.dumps(spec))
            spec.setdefault("node_config", {})
            spec.setdefault("min_workers", 0)
            spec["resources"].setdefault("object_store_memory", self.node_object_store_mb * MB)
            types[name] = spec
        types[HEAD_TYPE] = {"resources": {"CPU": self.head_cpus}, "node_config": {}, "max_workers": 0}
        return {
            "cluster_name": f"labelwise-local-{self.gcs_port}",
            "max_workers": sum(t.get("max_workers", 0) for t in types.values()),
            "upscaling_speed": self.upscaling_speed,
            "idle_timeout_minutes": self.idle_timeout_minutes,
            "provider": {
                "type": "external",
                "module": PROVIDER,
                "gcs_address": self.address,
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
            },
            "available_node_types": types,
            "head_node_type": HEAD_TYPE,
            "auth": {},
            "docker": {},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }

    def node_env(self) -> dict[str, str]:
        env = super().node_env()
        env["RAY_FAKE_CLUSTER"] = "1"  # the provider refuses to run without it
        here = str(Path(__file__).resolve().parent)  # the autoscaler imports LostNodesProvider from here
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["AUTOSCALER_UPDATE_INTERVAL_S"] = str(int(self.update_interval_s))
        if not self._metric_port:
            self._metric_port = free_port()
        env["AUTOSCALER_METRIC_PORT"] = str(self._metric_port)  # 44217 by default: one per machine
        return env

    def _ray_start(self, name: str, args: list[str], temp_dir: Path | None = None) -> None:
        if name == "head":
            path = self.temp_dir / "autoscaling.json"
            path.write_text(json.dumps(self.autoscaling_config(), indent=1))
            args = [*args, f"--autoscaling-config={path}"]
        super()._ray_start(name, args, temp_dir)

    # ---------------------------------------------------------------- inspection
    def monitor_log(self) -> str:
        """The autoscaler's log (what it launched and terminated, and why)."""
        found = sorted(self.temp_dir.glob("session_*/logs/monitor.log")) if self.temp_dir else []
        return found[-1].read_text(errors="replace") if found else ""

    def raylet_pids(self) -> dict[int, str]:
        """{pid: raylet socket path} of the raylets this cluster started."""
        out = {}
        for pid in self._our_pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if not argv or not argv[0].endswith(b"/raylet"):
                continue
            for a in argv:
                if a.startswith(b"--raylet_socket_name="):
                    out[pid] = a.split(b"=", 1)[1].decode()
        return out

    def kill_node(self, raylet_socket: str) -> int:
        """SIGKILL the raylet whose socket is ``raylet_socket`` (ray.nodes()'s
        "RayletSocketName"): the node is lost, as when a cloud VM disappears. Returns its pid."""
        for pid, socket_path in self.raylet_pids().items():
            if socket_path == raylet_socket:
                os.kill(pid, signal.SIGKILL)
                return pid
        raise LookupError(f"no raylet of this cluster has the socket {raylet_socket}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start an autoscaling Ray (fake multi-node provider) on this machine, run "
        "COMMAND against it (RAY_ADDRESS set), then stop what was started.",
    )
    parser.add_argument("--idle-timeout-minutes", type=float, default=0.1)
    parser.add_argument("--cpu-node-cpus", type=int, default=2)
    parser.add_argument("--max-cpu-nodes", type=int, default=2)
    parser.add_argument("--max-gpu-nodes", type=int, default=1)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... (default: wait for Ctrl-C)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    types = {
        "cpu": {"resources": {"CPU": args.cpu_node_cpus}, "max_workers": args.max_cpu_nodes},
        "gpu": {"resources": {"CPU": 1, "GPU": 1}, "max_workers": args.max_gpu_nodes},
    }
    cluster = LocalAutoscalingCluster(worker_types=types, idle_timeout_minutes=args.idle_timeout_minutes,
                                      env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    with cluster:
        print(f"ray cluster: {cluster.address}  temp: {cluster.temp_dir}  "
              f"(autoscaler log: {cluster.temp_dir}/session_latest/logs/monitor.log)", flush=True)
        if not command:
            try:
                signal.pause()
            except KeyboardInterrupt:
                return 0
        env = cluster.node_env()  # RAY_ADDRESS = the GCS: drivers join it directly
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
