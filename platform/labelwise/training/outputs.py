"""What training leaves in the run folder: train_log.csv, loss.png, train_summary.json, adapter/."""

from __future__ import annotations

import shutil
from pathlib import Path

from labelwise import contracts, runio

ADAPTER_FILES = (contracts.ADAPTER_CONFIG, "adapter_model.safetensors", "README.md")


def write_log(run_dir: Path, log: list[dict]) -> Path:
    import pandas as pd

    df = pd.DataFrame(log)
    for col in contracts.TRAIN_LOG_COLUMNS:
        if col not in df:
            df[col] = None
    return runio.write_csv(run_dir / contracts.TRAIN_LOG, df[contracts.TRAIN_LOG_COLUMNS])


def plot_loss(run_dir: Path, log: list[dict], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in log]
    ax.plot(steps, [r["loss"] for r in log], marker="o", markersize=3, linewidth=1.2, label="training loss (response tokens)")
    spe = next((r["step"] for r in log if abs(r["epoch"] - round(r["epoch"])) < 1e-9), None)
    if spe:
        for s in range(spe, max(steps) + 1, spe):
            ax.axvline(s + 0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("optimizer step (dotted: epoch ends)")
    ax.set_ylabel("mean token cross-entropy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = run_dir / contracts.LOSS_PNG
    with runio.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out


def install_adapter(checkpoint_dir: Path, out_dir: Path) -> Path:
    """Copy the adapter files of a checkpoint into out_dir/adapter (atomically)."""
    out = out_dir / contracts.ADAPTER
    with runio.atomic_path(out) as tmp:
        tmp.mkdir()
        for name in ADAPTER_FILES:
            if (checkpoint_dir / name).exists():
                shutil.copy2(checkpoint_dir / name, tmp / name)
        if not (tmp / contracts.ADAPTER_CONFIG).exists():
            raise FileNotFoundError(f"checkpoint {checkpoint_dir} holds no {contracts.ADAPTER_CONFIG}")
        if out.exists():
            shutil.rmtree(out)
    return out
