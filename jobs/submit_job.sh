#!/usr/bin/env bash
# Submit a labelwise command to a Ray cluster with `ray job submit`, shipping this checkout.
#
#   RAY_ADDRESS=http://<head>:8265 jobs/submit_job.sh run   jobs/cluster.yaml [--set key=value ...]
#   RAY_ADDRESS=http://<head>:8265 jobs/submit_job.sh sweep jobs/cluster_sweep.yaml
#   jobs/submit_job.sh -e LABELWISE_DATA_DIR=/mnt/labelwise/data --no-wait run jobs/cluster.yaml
#
# Options (before the labelwise command):
#   -e KEY=VALUE   an environment variable for the job's driver and every worker (repeatable)
#   --no-wait      return after submitting (follow with `ray job logs -f ID`, `ray job status ID`)
#   --job-id ID    the submission id (default: labelwise-<command>-<time>)
# Environment: RAY_ADDRESS (the job server, http://host:8265; `ray dashboard cluster/aws.yaml`
# forwards it to localhost), RAY_AUTH_MODE / RAY_AUTH_TOKEN when the cluster uses tokens.
#
# What it sends: the checkout as the working_dir (jobs/*.yaml are found by relative path),
# and platform/labelwise as a py_module, so the driver and every worker import this
# checkout's labelwise even when the cluster image has another version installed. The
# uploads leave out .venv, runs/, .git and caches (Ray's limit for a working_dir is 500 MiB).
# Inside a submitted job labelwise's ray.init passes no runtime env of its own, so the job's
# env_vars (these and every -e) are the only ones and reach the driver and every worker.
#
# Run folders: give the job an absolute run_dir on storage every node mounts
# (--set run_dir=/mnt/labelwise/runs/NAME). A relative run_dir would land in the job's
# temporary copy of the checkout on the head node and be lost.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_pairs=()
wait_flag=()
job_id=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -e) env_pairs+=("$2"); shift 2 ;;
    --no-wait) wait_flag=(--no-wait); shift ;;
    --job-id) job_id="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [[ $# -lt 2 ]]; then
  echo "usage: $0 [-e KEY=VALUE]... [--no-wait] [--job-id ID] COMMAND CONFIG [labelwise options]" >&2
  exit 2
fi
command="$1"
job_id="${job_id:-labelwise-${command}-$(date +%Y%m%d-%H%M%S)-$$}"
python="${PYTHON:-python3}"
ray_bin="${RAY:-ray}"

runtime_env="$("$python" - "${env_pairs[@]}" <<'EOF'
import json, sys
env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
for pair in sys.argv[1:]:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        sys.exit(f"submit_job.sh: -e expects KEY=VALUE, got {pair!r}")
    env[key] = value
print(json.dumps({
    "py_modules": ["platform/labelwise"],
    "excludes": [".venv", "venv", "runs", ".git", "**/__pycache__", "*.egg-info",
                 ".pytest_cache", ".hypothesis", "*.pyc"],
    "env_vars": env,
}))
EOF
)"

cd "$here"
exec "$ray_bin" job submit \
  --submission-id "$job_id" \
  --working-dir . \
  --runtime-env-json "$runtime_env" \
  "${wait_flag[@]}" \
  -- labelwise "$@"
