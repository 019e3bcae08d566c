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


# The files that take minutes, in the order the last full fresh-clone CI ran them (2026-12-07),
# roughly longest first: they start first, so that the processes end together instead of one
# running the last long file alone. Every other file follows in its collection order. The
# comments give each file's summed test time in that CI's two pytest-xdist processes
# (--durations=0); a reorder by them is for a change that gets its own full run.
SLOWEST_FIRST = (
    "test_autoscaling.py",  # 552 s
    "test_training_ray.py",  # 634 s
    "test_sweep_decide_e2e.py",  # 351 s
    "test_vllm_scoring.py",  # 205 s
    "test_sweep_tasks.py",  # 327 s
    "test_multinode.py",  # 284 s
    "test_vllm_evaluation.py",  # 176 s
    "test_rounds_e2e.py",  # 228 s
    "test_rounds_sweep.py",  # 224 s
    "test_sweep_e2e.py",  # 162 s
    "test_pipeline_e2e.py",  # 76 s
    "test_scoring_ray.py",  # 91 s
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
