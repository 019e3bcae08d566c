"""A real multi-node Ray cluster on one machine: a head and worker nodes as separate
``ray start`` processes, for trying ``ray job submit`` before renting a cluster, and for
tests/test_multinode.py.

    python cluster/local_cluster.py --worker 1:1 -- jobs/submit_job.sh run jobs/cluster_tiny.yaml

starts a head (2 CPUs, dashboard and job server on a free port) and a worker node with 1 CPU
and 1 GPU (declared: no real GPU is needed, Ray only schedules by it), runs the command with
RAY_ADDRESS pointing at the job server, then stops exactly the processes it started.

Everything it starts lives in its own ``--temp-dir`` and its own process groups, with free
ports for every server, so it does not touch another Ray on the machine (``ray stop`` would
stop all of them: never used here). Ray 2.60 joins a second node only with token
authentication, so the nodes and the commands run with RAY_AUTH_MODE=token and a token of the
cluster's own in RAY_AUTH_TOKEN (``RAY_AUTH_TOKEN`` from the environment when set): nothing is
read from or written to ~/.ray/auth_token, so a machine with an empty home works too (a head
started with an autoscaler does not create the file).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class NodeSpec:
    num_cpus: int = 1
    num_gpus: int = 0

    @classmethod
    def parse(cls, text: str) -> "NodeSpec":
        """``CPUS:GPUS`` (e.g. ``1:1``) or ``CPUS``."""
        cpus, _, gpus = text.partition(":")
        try:
            return cls(int(cpus), int(gpus or 0))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected CPUS or CPUS:GPUS, got {text!r}") from None


@dataclass
class LocalCluster:
    head_cpus: int = 2
    workers: list[NodeSpec] = field(default_factory=lambda: [NodeSpec(1, 1)])
    object_store_mb: int = 300
    """Per node; small, since every node of this cluster shares one machine's /dev/shm."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the nodes (and so for job drivers and workers)."""
    start_timeout_s: float = 90.0

    def __post_init__(self):
        self.temp_dir: Path | None = None
        self.gcs_port = 0
        self.dashboard_port = 0
        self._groups: list[int] = []  # process-group ids of the `ray start` sessions
        self.token = os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)  # as `ray get-auth-token --generate`

    # ---------------------------------------------------------------- addresses
    @property
    def address(self) -> str:
        """The GCS address (what ``ray start --address`` and ``ray.init`` take)."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """The job server (what ``ray job submit --address`` takes)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def client_env(self) -> dict[str, str]:
        """Environment for `ray job ...` commands aimed at this cluster."""
        env = self.node_env()
        env["RAY_ADDRESS"] = self.dashboard_url
        env.pop("RAY_API_SERVER_ADDRESS", None)  # the jobs CLI would prefer it to RAY_ADDRESS
        return env

    def node_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # `labelwise` and `ray` for jobs
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN"] = self.token
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # Processes on the nodes that look for "the" cluster (Ray Train's placement-group
        # cleaner, a bare ray.init()) must find this one, not another Ray on the machine.
        env["RAY_ADDRESS"] = self.address
        return env

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "LocalCluster":
        # A short path: Ray's unix sockets live under it (108-byte limit).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="lwray", dir="/tmp"))
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        try:
            self._ray_start(
                "head",
                [
                    "--head",
                    f"--port={self.gcs_port}",
                    f"--num-cpus={self.head_cpus}",
                    "--num-gpus=0",
                    "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={self.dashboard_port}",
                    f"--ray-client-server-port={free_port()}",
                ],
            )
            for i, spec in enumerate(self.workers):
                self._ray_start(
                    f"worker{i}",
                    [f"--address={self.address}", f"--num-cpus={spec.num_cpus}", f"--num-gpus={spec.num_gpus}"],
                    temp_dir=self.temp_dir / f"w{i}",
                )
            self._wait_for_nodes(1 + len(self.workers))
        except BaseException:
            self.stop()
            raise
        return self

    def _ray_start(self, name: str, args: list[str], temp_dir: Path | None = None) -> None:
        """``ray start`` in a session of its own. Each node gets its own temp dir, as on
        separate machines: nodes sharing one would share runtime_resources/, and one node's
        runtime-env cleanup would delete a job's working_dir under the other's driver."""
        ray = str(Path(sys.executable).parent / "ray")
        cmd = [
            ray, "start", *args,
            f"--temp-dir={temp_dir or self.temp_dir}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
        ]  # fmt: skip
        log = self.temp_dir / f"{name}.start.log"
        with open(log, "w") as out:
            # Its own session: every daemon `ray start` leaves behind stays in this group.
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.node_env(), start_new_session=True)
            self._groups.append(proc.pid)
            try:
                rc = proc.wait(timeout=self.start_timeout_s)
            except subprocess.TimeoutExpired:
                rc = None
        if rc != 0:
            raise RuntimeError(f"`ray start` for the {name} node failed (rc={rc}); log:\n{log.read_text()[-3000:]}")

    def _wait_for_nodes(self, n: int) -> None:
        """Wait until ``n`` nodes are alive (asked from a separate process, so the caller's
        own Ray, if any, is left alone)."""
        code = (
            "import ray, sys, time\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR')\n"
            f"deadline = time.time() + {self.start_timeout_s}\n"
            "while time.time() < deadline:\n"
            "    alive = sum(1 for x in ray.nodes() if x['Alive'])\n"
            f"    if alive >= {n}: sys.exit(0)\n"
            "    time.sleep(0.5)\n"
            "print('alive nodes:', alive); sys.exit(1)\n"
        )
        r = subprocess.run([sys.executable, "-c", code], env=self.node_env(), capture_output=True, text=True, timeout=self.start_timeout_s + 30)
        if r.returncode != 0:
            raise RuntimeError(f"the cluster did not reach {n} nodes: {r.stdout[-2000:]}{r.stderr[-2000:]}")

    def stop(self, grace_s: float = 3.0) -> None:
        """Stop every process this cluster started (by process group and descent): TERM,
        then KILL after ``grace_s`` (the GCS, raylets and agents ignore TERM for long; the
        cluster is throwaway and finished work is on disk)."""
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            pids = self._our_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.time() + wait
            while time.time() < deadline and self._our_pids():
                time.sleep(0.2)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self._groups = []

    def _our_pids(self) -> set[int]:
        """Processes in our `ray start` process groups, and all their descendants (job
        drivers start their own sessions, so the group alone is not enough)."""
        table: dict[int, tuple[int, int]] = {}  # pid -> (ppid, pgid)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            state, ppid, pgid = fields[0], int(fields[1]), int(fields[2])
            if state != "Z":
                table[int(entry.name)] = (ppid, pgid)
        ours = {pid for pid, (_, pgid) in table.items() if pgid in self._groups}
        grew = True
        while grew:
            children = {pid for pid, (ppid, _) in table.items() if ppid in ours} - ours
            grew = bool(children)
            ours |= children
        ours.discard(os.getpid())
        return ours

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start a multi-node Ray on this machine, run COMMAND against it "
        "(RAY_ADDRESS = its job server), then stop what was started.",
    )
    parser.add_argument("--head-cpus", type=int, default=2)
    parser.add_argument(
        "--worker",
        type=NodeSpec.parse,
        action="append",
        metavar="CPUS:GPUS",
        help="a worker node (repeatable; default: one node with 1 CPU and 1 GPU)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... (default: print the addresses and wait for Ctrl-C)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with LocalCluster(head_cpus=args.head_cpus, workers=args.worker or [NodeSpec(1, 1)]) as cluster:
        print(f"ray cluster: {cluster.address}  job server: {cluster.dashboard_url}  temp: {cluster.temp_dir}", flush=True)
        if not command:
            try:
                signal.pause()
            except KeyboardInterrupt:
                return 0
        return subprocess.call(command, env=cluster.client_env())


if __name__ == "__main__":
    sys.exit(main())
