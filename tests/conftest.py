"""Shared fixtures: tiny random-weight models, real data paths, a local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# engine: auto means hf in the tests (labelwise/engines.py): only the tests written for vLLM
# (tests/test_vllm_*.py, which set engine: vllm) start vLLM engines
os.environ.setdefault("LABELWISE_ENGINE", "hf")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LABELWISE_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set LABELWISE_DATA_DIR)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    """The real SmolLM2-135M-Instruct, converted once into the cache."""
    from labelwise.models import resolve

    return Path(resolve("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, packaged_model_dir) -> Path:
    """A 2-layer random-weight Llama with the real tokenizer (fast; built from a config)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(packaged_model_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def local_ray():
    """One real local Ray for the whole session (2 CPUs, like CI)."""
    import ray

    from labelwise.ray_start import RayConfig, init_ray

    init_ray(RayConfig(num_cpus=int(os.environ.get("LABELWISE_TEST_CPUS", "2"))))
    yield ray
    ray.shutdown()


# The files that take minutes, longest first (their times in `make test`'s two pytest-xdist
# processes, from a fresh clone, 2026-12-07): they start first, so that the processes end
# together instead of one running the last long file alone. Every other file follows in its
# collection order.
SLOWEST_FIRST = (
    "test_autoscaling.py",  # ~340 s
    "test_training_ray.py",  # ~320 s
    "test_sweep_decide_e2e.py",  # ~320 s
    "test_vllm_scoring.py",  # ~300 s
    "test_sweep_tasks.py",  # ~265 s
    "test_multinode.py",  # ~250 s
    "test_vllm_evaluation.py",  # ~215 s
    "test_rounds_e2e.py",  # ~210 s
    "test_rounds_sweep.py",  # ~205 s
    "test_sweep_e2e.py",  # ~145 s
    "test_pipeline_e2e.py",  # ~90 s
    "test_scoring_ray.py",  # ~80 s
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
