"""The tiny sweep of the end-to-end sweep tests: a tiny random-weight model, a generated pool
of 3 small tasks (8 prompts each, 2 held out), 1 epoch, CPU."""

from __future__ import annotations

from pathlib import Path

import yaml


def tiny_sweep_yaml(tmp_path: Path, model_dir: Path) -> Path:
    data = {
        "run_dir": str(tmp_path / "sweep"),
        "seed": 0,
        "ray": {"num_cpus": 2},
        "model": {"name": str(model_dir)},
        "pool": {"source": "builtin:skills", "max_tasks": 3, "max_per_task": 8,
                 "test_fraction": 0.25, "test_max_per_task": 2},
        "score": {"max_new_tokens": 4, "batch_size": 8, "embeddings": False, "use_ray": False},
        "train": {"epochs": 1, "batch_size": 4, "max_length": 64},
        "evaluate": {"benchmarks": ["heldout"], "heldout": {"max_new_tokens": 4}},
        "sweep": {"strategies": ["weighted_task_diversity"], "budgets": [6], "seeds": [0],
                  "bases": [2], "full_pool": True},
    }
    path = tmp_path / "tiny_sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def results_in(sweep: Path) -> list[Path]:
    return sorted(sweep.glob("trials/*/trial_result.json"))
