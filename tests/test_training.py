"""Train stage: data sharding, loss masking, LoRA numerics, and the Ray Train runs."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise import config, contracts, runio
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
    runio.write_jsonl(run / contracts.LABELED, rows)
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


def padded_tokens(batches, lengths):
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=60),
    batch_size=st.integers(1, 8),
    grouping=st.integers(1, 5),
    seed=st.integers(0, 5),
    epoch=st.integers(0, 3),
)
def test_length_grouping_keeps_each_example_once_and_sorts_inside_windows(lengths, batch_size, grouping, seed, epoch):
    n = len(lengths)
    batches = epoch_batches(n, batch_size, seed, epoch, lengths, grouping)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert len(batches) == steps_per_epoch(n, batch_size)
    assert sum(len(b) < batch_size for b in batches) <= 1  # only the epoch's tail may be short
    # the same windows of the same permutation, each sorted: batches hold adjacent lengths
    order = epoch_batches(n, batch_size * grouping, seed, epoch)  # windows = ungrouped cuts of k batches
    for window in order:
        cut = sorted(window, key=lambda i: -lengths[i])
        expected = [cut[i : i + batch_size] for i in range(0, len(cut), batch_size)]
        assert all(b in batches for b in expected)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=12), batches=st.integers(1, 6), seed=st.integers(0, 5))
def test_length_grouping_over_the_whole_epoch_never_pads_more(lengths, batches, seed):
    """With equal batches and one window for the epoch, sorted cuts minimise the padded tokens."""
    lengths = (lengths * batches)[: len(lengths) * batches]
    batch_size = len(lengths) // batches
    grouped = epoch_batches(len(lengths), batch_size, seed, 0, lengths, grouping=batches)
    plain = epoch_batches(len(lengths), batch_size, seed, 0)
    assert padded_tokens(grouped, lengths) <= padded_tokens(plain, lengths)


def test_length_grouping_saves_padding_and_still_shuffles():
    lengths = [10 + (i * 37) % 200 for i in range(80)]
    plain = [padded_tokens(epoch_batches(80, 8, 0, e), lengths) for e in range(3)]
    grouped = [padded_tokens(epoch_batches(80, 8, 0, e, lengths, 4), lengths) for e in range(3)]
    assert sum(grouped) < 0.8 * sum(plain)
    assert epoch_batches(80, 8, 0, 0, lengths, 4) != epoch_batches(80, 8, 0, 1, lengths, 4)
    with pytest.raises(ValueError, match="lengths has 3 entries for 4 examples"):
        epoch_batches(4, 2, 0, 0, [1, 2, 3], 1)


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
    assert not a.truncated and b.truncated and len(b.input_ids) == 40
    assert tok.decode(b.input_ids[b.n_prompt :]) == "x" + tok.eos_token  # the answer survives the cut
    batch = collate(enc, tok.pad_token_id)
    labels = batch["labels"]
    assert (labels[0, : a.n_prompt] == IGNORE).all()
    assert labels[0, a.n_prompt : len(a.input_ids)].tolist() == a.input_ids[a.n_prompt :]
    assert (labels[0, len(a.input_ids) :] == IGNORE).all()
    assert (labels[1] != IGNORE).sum() == b.n_response == 2  # loss on x and eos only
    assert batch["attention_mask"][0].sum() == len(a.input_ids)


def test_truncation_cuts_the_prompt_from_the_left_and_keeps_the_template(tiny_model_dir):
    """A long prompt loses the start of its text; the chat template's head (system and user
    markers) and tail (the assistant marker) stay, and so does the whole response."""
    from transformers import AutoTokenizer

    from labelwise.training.data import template_frame, truncation_stats

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    head, tail = template_frame(tok)
    assert head.startswith("<|im_start|>system") and head.endswith("<|im_start|>user\n")
    assert tail == "<|im_end|>\n<|im_start|>assistant\n"
    n_frame = len(tok(head)["input_ids"]) + len(tok(tail, add_special_tokens=False)["input_ids"])
    words = " ".join(f"w{i}" for i in range(200))
    rows = [
        {"id": "long_prompt", "prompt": words + " END", "response": "The answer is 42."},
        {"id": "long_response", "prompt": "Count.", "response": "one two three four " * 40},
        {"id": "fits", "prompt": "Hi.", "response": "Hello."},
    ]
    max_length = n_frame + 30
    lp, lr, fits = encode(tok, rows, max_length)

    assert len(lp.input_ids) == max_length and lp.prompt_trimmed and not lp.response_trimmed
    prompt_text = tok.decode(lp.input_ids[: lp.n_prompt])
    assert prompt_text.startswith(head) and prompt_text.endswith(" END" + tail)
    assert "w0 " not in prompt_text  # the start of the text is what went
    assert tok.decode(lp.input_ids[lp.n_prompt :]) == "The answer is 42." + tok.eos_token

    # a response longer than max_length beside the frame: the frame alone, and the response's start
    assert len(lr.input_ids) == max_length and lr.prompt_trimmed and lr.response_trimmed
    assert tok.decode(lr.input_ids[: lr.n_prompt]) == head + tail
    assert lr.n_response == max_length - n_frame
    assert tok.decode(lr.input_ids[lr.n_prompt :]).startswith("one two three four one")
    assert tok.eos_token not in tok.decode(lr.input_ids[lr.n_prompt :])

    assert not fits.truncated and fits.n_cut == 0
    stats = truncation_stats([lp, lr, fits])
    assert stats["n_truncated"] == 2 and stats["n_prompt_trimmed"] == 2 and stats["n_response_trimmed"] == 1
    assert stats["n_no_response_tokens"] == 0
    assert stats["tokens_cut"] == lp.n_cut + lr.n_cut > 0


def test_truncation_with_the_plain_template(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    (e,) = encode(tok, [{"id": "p", "prompt": "filler " * 80 + "What is 2+2?", "response": "4"}], 32, chat_template=False)
    text = tok.decode(e.input_ids[: e.n_prompt])
    assert text.startswith("### Instruction:\n") and text.endswith("What is 2+2?\n\n### Response:\n")
    assert tok.decode(e.input_ids[e.n_prompt :]) == "4" + tok.eos_token and len(e.input_ids) == 32


def test_fit_without_a_template_frame_left_trims_the_prompt():
    from labelwise.training.data import fit

    prompt, response = list(range(100)), [1000, 1001, 1002]
    assert fit(prompt, response, 10) == (list(range(93, 100)), response, True, False)
    # the response alone is longer than max_length: the prompt's last max_length // 4 tokens
    # (where the assistant marker is) and the start of the response
    long = list(range(1000, 1050))
    assert fit(prompt, long, 12) == ([97, 98, 99], long[:9], True, True)
    assert fit([1, 2], long, 12) == ([1, 2], long[:10], False, True)
    assert fit([1, 2], [3], 12) == ([1, 2], [3], False, False)


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


# ---------------------------------------------------------------- stale adapters


class WouldTrain(Exception):
    """Raised instead of starting Ray: the stage decided to train."""


def _would_train(monkeypatch):
    import labelwise.ray_start

    def refuse(*a, **k):
        raise WouldTrain

    monkeypatch.setattr(labelwise.ray_start, "init_ray", refuse)


def _fake_finished_run(job):
    """A finished training of these inputs, committed the way the stage commits one."""
    from labelwise import manifest
    from labelwise.training import stage

    def build(staged):
        (staged / "adapter").mkdir()
        (staged / "adapter" / "adapter_config.json").write_text("{}")
        for name in stage.outputs()[1:]:
            (staged / name).write_text("x")

    manifest.run_stage(job.run_path, "train", stage.inputs(job), stage.settings(job), stage.outputs(), build)


def test_finished_adapter_of_the_same_inputs_is_kept(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from labelwise.training import stage

    _would_train(monkeypatch)
    job = make_job(tmp_path, tiny_model_dir, synthetic_rows(4))
    _fake_finished_run(job)
    assert stage.train(job) == job.run_path / "adapter"
    assert "already trained" in capsys.readouterr().err
    # settings that do not change what is learned do not make it stale
    job = make_job(tmp_path, tiny_model_dir, synthetic_rows(4), max_failures=0, cpus_per_worker=1)
    assert stage.train(job) == job.run_path / "adapter"


def test_stale_adapter_is_trained_again_and_says_why(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from labelwise.training import stage

    _would_train(monkeypatch)
    job = make_job(tmp_path, tiny_model_dir, synthetic_rows(4))
    _fake_finished_run(job)
    capsys.readouterr()

    changed = make_job(tmp_path, tiny_model_dir, synthetic_rows(4), lr=1e-3, epochs=3)
    with pytest.raises(WouldTrain):
        stage.train(changed)
    err = capsys.readouterr().err
    assert "[train] running: setting train.epochs changed (2 -> 3); setting train.lr changed (None -> 0.001)" in err

    reannotated = make_job(tmp_path, tiny_model_dir, synthetic_rows(5))  # rewrites labeled.jsonl
    with pytest.raises(WouldTrain):
        stage.train(reannotated)
    assert "input labeled.jsonl changed" in capsys.readouterr().err

    other_seed = config.build(JobConfig, {**config.to_dict(job), "seed": 4}, "test")
    runio.write_jsonl(job.run_path / contracts.LABELED, synthetic_rows(4))
    with pytest.raises(WouldTrain):
        stage.train(other_seed)
    assert "setting seed changed (3 -> 4)" in capsys.readouterr().err
    # nothing was thrown away before the new adapter is there
    assert (job.run_path / "adapter" / "adapter_config.json").exists()


def test_explicit_run_name_refuses_checkpoints_of_other_inputs(tmp_path, tiny_model_dir, monkeypatch):
    from labelwise.training import stage

    _would_train(monkeypatch)
    storage = tmp_path / "storage"
    job = make_job(tmp_path, tiny_model_dir, synthetic_rows(4), name="mine")
    job = config.build(JobConfig, {**config.to_dict(job), "ray": {"storage": str(storage)}}, "test")
    ckpt = storage / "mine" / "checkpoint_step000003"
    ckpt.mkdir(parents=True)
    (ckpt / "train_state.json").write_text(json.dumps({"step": 3, "fingerprint": "train-000000000000"}))
    with pytest.raises(RuntimeError, match=r"train.name='mine'.*another training \(train-000000000000"):
        stage.train(job)
    # checkpoints of these very inputs: resumed (the stage goes on to start training)
    (ckpt / "train_state.json").write_text(json.dumps({"step": 3, "fingerprint": stage.run_name(job, job.run_path / contracts.LABELED)}))
    with pytest.raises(WouldTrain):
        stage.train(job)


def test_worker_resources_gpu_only_when_every_worker_gets_one():
    from labelwise.training.config import TrainConfig
    from labelwise.training.stage import worker_resources

    two = TrainConfig(num_workers=2, batch_size=8)
    assert worker_resources(two, "auto", gpus=2, free_cpus=8, can_grow=False)[:2] == (True, {"CPU": 1, "GPU": 1})
    # one declared GPU for two workers: CPU, rather than waiting forever for a second GPU
    use_gpu, res, threads = worker_resources(two, "auto", gpus=1, free_cpus=4, can_grow=False)
    assert (use_gpu, res, threads) == (False, {"CPU": 2}, 2)
    # cuda on a cluster that can add GPU nodes: ask for them even before one is up
    assert worker_resources(two, "cuda", gpus=0, free_cpus=4, can_grow=True)[0] is True
    with pytest.raises(RuntimeError, match="no GPU"):
        worker_resources(two, "cuda", gpus=0, free_cpus=4, can_grow=False)
    # threads: the reservation unless set (a sweep trial lends its waiting CPU to its worker)
    one = TrainConfig(num_workers=1, cpus_per_worker=1, threads=2)
    assert worker_resources(one, "cpu", gpus=0, free_cpus=2, can_grow=False) == (False, {"CPU": 1}, 2)


def test_progress_line_rate_and_time_left():
    from labelwise.training.worker import progress_line

    log = [{"loss": 3.0, "tokens": 100, "seconds": 2.0}, {"loss": 2.5, "tokens": 120, "seconds": 2.0}]
    assert progress_line(log, 2, 30) == "step 2/30 (6%), loss 2.5000, 55 tokens/s, about 56s left"
    assert progress_line(log, 30, 30).endswith("55 tokens/s")  # done: no time left


def test_reported_first_and_last_loss_are_epoch_means():
    from labelwise.training.stage import loss_windows

    spe = 3
    log = [{"step": s + 1, "epoch": e + (i + 1) / spe, "loss": float(10 * e + i)} for s, (e, i) in
           enumerate((e, i) for e in range(3) for i in range(spe))]
    first, last, window = loss_windows(log)
    assert [r["loss"] for r in first] == [0.0, 1.0, 2.0] and [r["loss"] for r in last] == [20.0, 21.0, 22.0]
    assert window == "mean over the first and the last epoch"
    one_epoch = [{"step": s + 1, "epoch": (s + 1) / 20, "loss": float(s)} for s in range(20)]
    first, last, window = loss_windows(one_epoch)
    assert [r["loss"] for r in first] == [0.0, 1.0] and [r["loss"] for r in last] == [18.0, 19.0]
    assert "2 step(s)" in window
