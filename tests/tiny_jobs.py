"""The tiny jobs of the end-to-end run and sweep tests: a tiny random-weight model, a generated
pool of 3 small tasks (8 prompts each, 2 held out), CPU."""

from __future__ import annotations

from pathlib import Path

import yaml


def tiny_job(run_dir: Path, model_dir: Path) -> dict:
    """What every tiny job shares: pool, scoring and held-out evaluation, 1 epoch."""
    return {
        "run_dir": str(run_dir),
        "seed": 0,
        "ray": {"num_cpus": 2},
        "model": {"name": str(model_dir)},
        "pool": {"source": "builtin:skills", "max_tasks": 3, "max_per_task": 8,
                 "test_fraction": 0.25, "test_max_per_task": 2},
        "score": {"max_new_tokens": 4, "batch_size": 8, "embeddings": False, "use_ray": False},
        "train": {"epochs": 1, "batch_size": 4, "max_length": 64},
        "evaluate": {"benchmarks": ["heldout"], "heldout": {"max_new_tokens": 4}},
    }


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def tiny_sweep_yaml(tmp_path: Path, model_dir: Path) -> Path:
    data = tiny_job(tmp_path / "sweep", model_dir)
    data["sweep"] = {"strategies": ["weighted_task_diversity"], "budgets": [6], "seeds": [0],
                     "bases": [2], "full_pool": True}
    return write_yaml(tmp_path / "tiny_sweep.yaml", data)


def results_in(sweep: Path) -> list[Path]:
    return sorted(sweep.glob("trials/*/trial_result.json"))
