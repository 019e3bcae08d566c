"""Score stage on a real local Ray (tiny model): actor counts agree, a crashed actor is retried."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

from labelwise.scoring import stage
from labelwise.scoring.scorer import Scorer

sys.path.insert(0, os.path.dirname(__file__))
from test_scoring_stage import make_job, make_pool, read_scores  # noqa: E402

FLOATS = ["logconf", "mean_logprob", "mean_entropy", "mean_margin", "min_margin"]


class DiesOnce(Scorer):
    """A scorer whose actor process dies on its first batch (once per flag file)."""

    flag = ""  # set by the test; the class travels to the actor by value

    def __call__(self, table):
        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(1)
        return super().__call__(table)


class RecordsDtype(Scorer):
    """A scorer that appends the device and dtype it really runs in to a file."""

    flag = ""

    def __call__(self, table):
        with open(self.flag, "a") as f:
            f.write(f"{self.device} {self.dtype}\n")
        return super().__call__(table)


def score_with(monkeypatch, scorer_cls, flag) -> None:
    """Make the score stage's Ray path use ``scorer_cls`` (shipped to the actors by value,
    with its ``flag`` file set)."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(scorer_cls, "flag", str(flag))
    real = stage.score_on_ray
    monkeypatch.setattr(stage, "score_on_ray", lambda j, b, s, **kw: real(j, b, s, scorer_cls=scorer_cls, **kw))


def assert_same_scores(a, b):
    for col in ["id", "task", "n_tokens", "eos", "answer"]:
        assert a[col].tolist() == b[col].tolist(), col
    for col in FLOATS:
        np.testing.assert_allclose(a[col], b[col], rtol=1e-6, atol=1e-9, err_msg=col)
    np.testing.assert_allclose(np.stack(a["embedding"]), np.stack(b["embedding"]), atol=1e-6)


@pytest.mark.slow
@pytest.mark.ray
def test_one_and_two_actors_give_the_same_scores(tmp_path, tiny_model_dir, local_ray):
    runs = {}
    for name, extra in [("inproc", {"use_ray": False}), ("one", {"max_actors": 1}), ("two", {"max_actors": 2})]:
        run = tmp_path / name
        make_pool(run)
        job = make_job(run, tiny_model_dir, **{"use_ray": True, "batch_size": 2, **extra})
        stage.score_pool(job)
        runs[name] = read_scores(run)
    assert runs["one"]["error"].isna().all()
    assert_same_scores(runs["one"], runs["two"])
    assert_same_scores(runs["one"], runs["inproc"])


@pytest.mark.slow
@pytest.mark.ray
def test_crashed_actor_is_restarted_and_its_batch_retried(tmp_path, tiny_model_dir, local_ray, monkeypatch):
    flag = tmp_path / "died"
    score_with(monkeypatch, DiesOnce, flag)
    run = tmp_path / "run"
    make_pool(run)
    job = make_job(run, tiny_model_dir, use_ray=True, max_actors=1, max_restarts=2, max_task_retries=2)
    stage.score_pool(job)
    assert flag.exists()  # an actor really died
    df = read_scores(run)
    assert len(df) == 8 and df["error"].isna().all()


@pytest.mark.slow
@pytest.mark.ray
def test_ray_actors_run_in_the_dtype_of_the_cache_key(tmp_path, tiny_model_dir, local_ray, monkeypatch):
    """Actors do not resolve the dtype on their own: they run in the one the cache key names."""
    flag = tmp_path / "dtypes"
    score_with(monkeypatch, RecordsDtype, flag)
    # what the driver resolves for a plan on GPUs (auto -> bfloat16); the actor here has a CPU only
    monkeypatch.setattr(stage, "resolved_model", lambda j: ("cuda", "bfloat16"))
    run = tmp_path / "run"
    make_pool(run)
    stage.score_pool(make_job(run, tiny_model_dir, use_ray=True, max_actors=1))
    assert set(flag.read_text().split()) == {"cpu", "bfloat16"}
    assert read_scores(run)["error"].isna().all()
