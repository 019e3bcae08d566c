"""Train stage: data sharding, loss masking, LoRA numerics, and the Ray Train runs."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise import config, runio
from labelwise.job import JobConfig
from labelwise.training.data import (
    IGNORE,
    Encoded,
    collate,
    encode,
    epoch_batches,
    micro_batches,
    steps_per_epoch,
    worker_share,
)


def synthetic_rows(n: int, offset: int = 0) -> list[dict]:
    """Two small tasks with a learnable answer format."""
    rows = []
    for i in range(offset, offset + n):
        a, b = 3 + i % 17, 5 + (i * 7) % 23
        if i % 2:
            rows.append({"id": f"add{i}", "task": "add", "prompt": f"Add {a} and {b}.", "response": f"Result: {a + b}. Done."})
        else:
            w = ["apple", "river", "stone", "cloud", "lamp", "tiger"][i % 6]
            rows.append({"id": f"rep{i}", "task": "repeat", "prompt": f"Write the word {w} three times.", "response": f"{w} | {w} | {w}"})
    return rows


def make_job(tmp_path, model_dir, rows, **train):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    runio.write_jsonl(run / runio.LABELED, rows)
    train = {"epochs": 2, "batch_size": 4, "max_length": 64, "lora_dropout": 0.0, **train}
    return config.build(JobConfig, {"run_dir": str(run), "seed": 3, "model": {"name": str(model_dir)}, "train": train}, "test")


# ---------------------------------------------------------------- plain functions


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), per_worker=st.integers(1, 6), world=st.integers(1, 4), seed=st.integers(0, 5), epoch=st.integers(0, 3))
def test_each_example_exactly_once_per_epoch_across_workers(n, per_worker, world, seed, epoch):
    batch_size = per_worker * world
    batches = epoch_batches(n, batch_size, seed, epoch)
    assert len(batches) == steps_per_epoch(n, batch_size)
    seen = []
    for batch in batches:
        micro_counts = set()
        for rank in range(world):
            share = worker_share(batch, rank, world)
            micro = micro_batches(share, batch, world, 2)
            micro_counts.add(len(micro))
            assert [i for mb in micro for i in mb] == share
            seen += share
        assert len(micro_counts) == 1  # every worker runs the same number of passes
    assert sorted(seen) == list(range(n))


def test_epochs_shuffle_differently_and_seed_is_reproducible():
    assert epoch_batches(20, 4, 0, 0) == epoch_batches(20, 4, 0, 0)
    assert epoch_batches(20, 4, 0, 0) != epoch_batches(20, 4, 0, 1)
    assert epoch_batches(20, 4, 0, 0) != epoch_batches(20, 4, 1, 0)


def test_encode_masks_prompt_and_counts_truncation(tiny_model_dir):
    from transformers import AutoTokenizer

    from labelwise.prompting import render_example

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"id": "a", "prompt": "Say hi.", "response": "hi there"}, {"id": "b", "prompt": "Long " * 100, "response": "x"}]
    enc = encode(tok, rows, max_length=40)
    head, full = render_example(tok, "Say hi.", "hi there")
    a, b = enc
    assert tok.decode(a.input_ids[: a.n_prompt]) == head
    assert tok.decode(a.input_ids[a.n_prompt :]) == "hi there" + tok.eos_token
    assert not a.truncated and b.truncated and len(b.input_ids) == 40 and b.n_response == 0
    batch = collate(enc, tok.pad_token_id)
    labels = batch["labels"]
    assert (labels[0, : a.n_prompt] == IGNORE).all()
    assert labels[0, a.n_prompt : len(a.input_ids)].tolist() == a.input_ids[a.n_prompt :]
    assert (labels[0, len(a.input_ids) :] == IGNORE).all() and (labels[1] == IGNORE).all()
    assert batch["attention_mask"][0].sum() == len(a.input_ids)


def test_auto_lr_by_model_size():
    from labelwise.training.loop import auto_lr

    assert auto_lr(135_000_000) == 5e-4
    assert auto_lr(1_500_000_000) == 2e-4
    assert auto_lr(7_000_000_000) == 1e-4


def test_config_errors_name_the_key():
    with pytest.raises(config.ConfigError, match=r"job.yaml: train.batch_size: 6 examples per step do not divide among 4"):
        config.build(JobConfig, {"train": {"num_workers": 4, "batch_size": 6}}, "job.yaml")
    with pytest.raises(config.ConfigError, match=r"train.lora_dropout"):
        config.build(JobConfig, {"train": {"lora_dropout": 1.5}}, "job.yaml")
    with pytest.raises(config.ConfigError, match=r"train.lr: expected float or null"):
        config.build(JobConfig, {"train": {"lr": "fast"}}, "job.yaml")


def test_unknown_target_module_is_a_clear_error(tiny_model_dir):
    from labelwise.models import ModelConfig, load_model
    from labelwise.training.config import TrainConfig
    from labelwise.training.loop import attach_lora

    model, _ = load_model(ModelConfig(name=str(tiny_model_dir)), device="cpu")
    with pytest.raises(ValueError, match=r"target_modules: \['qkv'\]"):
        attach_lora(model, TrainConfig(target_modules=["qkv"]), 0)


def test_split_step_equals_whole_step(tiny_model_dir):
    """Two half-batches with global normalisation give the same update as one whole batch."""
    import torch

    from labelwise.models import ModelConfig, load_model
    from labelwise.training import loop
    from labelwise.training.config import TrainConfig

    cfg = TrainConfig(lora_dropout=0.0, lr=1e-2)
    results = []
    for micro_size in (None, 1):
        model, tok = load_model(ModelConfig(name=str(tiny_model_dir)), device="cpu")
        model = loop.attach_lora(model, cfg, 0)
        model.train()
        for n, p in model.named_parameters():  # make LoRA B non-zero so A gets gradients too
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(1))
        opt = loop.make_optimizer(model, cfg.lr, 0.0)
        examples = encode(tok, synthetic_rows(3), 64)
        idx = list(range(3))
        micro = [[examples[j] for j in mb] for mb in micro_batches(idx, idx, 1, micro_size)]
        stats = loop.train_step(model, opt, micro, tok.pad_token_id, "cpu", cfg.lr)
        results.append((stats.loss, [p.detach().clone() for p in model.parameters() if p.requires_grad]))
    (loss_a, params_a), (loss_b, params_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(params_a, params_b))
