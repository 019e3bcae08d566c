"""Model resolution: packaged alias offline, local folders, hub names, device and dtype."""

from __future__ import annotations

import threading
import time

import pytest

from labelwise import models
from labelwise.models import ModelConfig


def test_packaged_model_loads_offline_and_generates(packaged_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    from labelwise.prompting import render_prompt

    model, tok = models.load_model(ModelConfig())
    assert next(model.parameters()).dtype == torch.float32  # CPU default
    text = render_prompt(tok, "What is the capital of France? Answer in one word.")
    batch = tok([text], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, batch.input_ids.shape[1]:], skip_special_tokens=True)
    assert "paris" in answer.lower()


def test_tiny_model_from_local_folder(tiny_model_dir):
    model, tok = models.load_model(ModelConfig(name=str(tiny_model_dir)))
    assert model.config.num_hidden_layers == 2
    assert tok.padding_side == "left" and tok.pad_token is not None


def test_hub_name_offline_says_how_to_provide_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"network is off.*model\.name: DIR"):
        models.resolve("some-org/some-model")


def test_hub_name_is_passed_through_when_online(monkeypatch):
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LABELWISE_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    assert models.resolve("some-org/some-model") == "some-org/some-model"


def test_local_folder_without_config_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        models.resolve(str(tmp_path / "missing"))


def test_device_and_dtype_defaults():
    import torch

    assert models.pick_device("cpu") == "cpu"
    assert models.pick_dtype("auto", "cpu") == torch.float32
    assert models.pick_dtype("auto", "cuda") == torch.bfloat16
    assert models.pick_dtype("float16", "cpu") == torch.float16
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            models.pick_device("cuda")


def test_fingerprint_is_stable_and_tracks_the_model(tiny_model_dir, packaged_model_dir):
    a = models.fingerprint(ModelConfig(name=str(tiny_model_dir)))
    assert a == models.fingerprint(ModelConfig(name=str(tiny_model_dir)))
    assert a != models.fingerprint(ModelConfig())
    assert a != models.fingerprint(ModelConfig(name=str(tiny_model_dir), dtype="bfloat16"))


def test_trust_remote_code_is_off_by_default():
    assert ModelConfig().trust_remote_code is False


def test_packaged_conversion_runs_once_under_concurrency(tmp_path, monkeypatch):
    """Two callers at once: one converts, the other waits for it and reuses the folder."""
    monkeypatch.setenv("LABELWISE_CACHE", str(tmp_path))
    calls = []

    def fake_convert(package_dir, gguf_name, target):
        calls.append(target)
        time.sleep(0.5)
        target.mkdir(parents=True)
        (target / "DONE").write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(models.resolve("smollm2-135m-instruct")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results[0] == results[1] == tmp_path / "models" / "smollm2-135m-instruct"


def test_missing_package_for_alias_says_how_to_install(monkeypatch):
    monkeypatch.setitem(models.PACKAGED, "ghost-model", ("no_such_pkg_xyz", "x.gguf"))
    with pytest.raises(FileNotFoundError, match=r"pip install"):
        models.resolve("ghost-model")
