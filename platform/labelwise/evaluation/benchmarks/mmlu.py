"""MMLU by the lm-evaluation-harness protocol.

Prompt (per subject, k shots = the first k rows of the subject's dev split):

    The following are multiple choice questions (with answers) about <subject words>.

    <question>
    A. <choice0>
    B. <choice1>
    C. <choice2>
    D. <choice3>
    Answer: <letter>

    ... (k shots) ...
    <question>
    A. ...
    Answer:

The prediction is the letter among " A", " B", " C", " D" whose log-likelihood after the
prompt is highest (accuracy = ``acc`` of the harness). Averages: micro over all questions
(what the harness reports for the MMLU group) and per subject; macro over subjects too.
"""

from __future__ import annotations

import csv
from pathlib import Path

from labelwise.evaluation.data import files_hash, missing, sample

LETTERS = ("A", "B", "C", "D")
PROMPT_FORMAT = (
    "lm-eval-harness mmlu: 'The following are multiple choice questions (with answers) about "
    "{subject}.\\n\\n' + shots + '{question}\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:'; "
    "argmax log-likelihood of ' A'/' B'/' C'/' D'"
)


HUB_PREFIX = "hf:"


def resolve_folder(path: str | Path) -> Path:
    """A local folder; ``hf:<dataset>`` (e.g. hf:cais/mmlu) is downloaded once when online."""
    text = str(path)
    if not text.startswith(HUB_PREFIX):
        return Path(text).expanduser()
    from labelwise.models import network_allowed

    name = text[len(HUB_PREFIX):]
    if not network_allowed():
        raise FileNotFoundError(
            f"mmlu: {text} needs the hub, and the network is off (HF_HUB_OFFLINE). Use a local folder "
            "in the layout of shared/data/mmlu (evaluate.mmlu.path)"
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, repo_type="dataset", allow_patterns=["*/dev-*.parquet", "*/test-*.parquet"]))


def _hub_layout(folder: Path) -> bool:
    """The hub dataset's layout: <subject>/<split>-00000-of-00001.parquet."""
    return not (folder / "test").is_dir() and any(folder.glob("*/test-*.parquet"))


def read_split(folder: Path, subject: str, split: str) -> list[dict]:
    """Rows {question, choices[4], answer (int)} of the subject's split (CSV or hub layout)."""
    if _hub_layout(folder):
        return _read_hub_split(folder, subject, split)
    path = folder / split / f"{subject}_{split}.csv"
    if not path.exists():
        raise missing("mmlu", path, f"no {split} file for subject {subject}")
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        want = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
        if reader.fieldnames != want:
            raise ValueError(f"{path}: header {reader.fieldnames} is not {','.join(want)}")
        for line, row in enumerate(reader, 2):
            rows.append(_row(path, line, row["question"], [row[f"choice{i}"] for i in range(4)], row["answer"]))
    return rows


def _read_hub_split(folder: Path, subject: str, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted((folder / subject).glob(f"{split}-*.parquet"))
    if not files:
        raise missing("mmlu", folder / subject, f"no {split}-*.parquet for subject {subject}")
    rows = []
    for path in files:
        for i, rec in enumerate(pq.read_table(path).to_pylist()):
            rows.append(_row(path, i, rec.get("question"), list(rec.get("choices") or []), rec.get("answer")))
    return rows


def _row(path, line, question, choices, answer) -> dict:
    try:
        answer = int(answer)
    except (TypeError, ValueError):
        answer = -1
    if answer not in range(4) or len(choices) != 4 or not isinstance(question, str):
        raise ValueError(f"{path}:{line}: expected a question, 4 choices and an answer index 0-3")
    return {"question": question, "choices": [str(c) for c in choices], "answer": answer}


def subjects_in(folder: Path) -> list[str]:
    if _hub_layout(folder):
        return sorted(p.parent.name for p in folder.glob("*/test-*.parquet") if p.parent.name not in ("all", "auxiliary_train"))
    if not (folder / "test").is_dir() or not (folder / "dev").is_dir():
        raise missing("mmlu", folder)
    found = sorted(p.name[: -len("_test.csv")] for p in (folder / "test").glob("*_test.csv"))
    if not found:
        raise missing("mmlu", folder / "test", "no <subject>_test.csv files")
    return found


def format_question(row: dict, answer: bool) -> str:
    text = row["question"].strip() + "\n"
    text += "".join(f"{letter}. {choice}\n" for letter, choice in zip(LETTERS, row["choices"]))
    text += "Answer:"
    if answer:
        text += f" {LETTERS[row['answer']]}"
    return text


def build_prompt(subject: str, shots: list[dict], row: dict) -> str:
    header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return header + "".join(format_question(s, True) + "\n\n" for s in shots) + format_question(row, False)


def build_requests(cfg, folder: Path, seed: int, render) -> tuple[list[dict], list[dict]]:
    """(items, payloads): per question its subject and gold letter, and a loglik request.

    ``render(text)`` wraps the prompt (identity for the harness format, a chat turn otherwise)."""
    subjects = cfg.subjects or subjects_in(folder)
    if cfg.subjects:
        known = set(subjects_in(folder))
        unknown = [s for s in cfg.subjects if s not in known]
        if unknown:
            raise ValueError(f"mmlu: unknown subject {unknown[0]!r} (known: {', '.join(sorted(known))})")
    items, payloads = [], []
    continuations = [letter for letter in LETTERS] if cfg.chat_template else [f" {letter}" for letter in LETTERS]
    for subject in subjects:
        shots = read_split(folder, subject, "dev")[: cfg.shots] if cfg.shots else []
        if len(shots) < cfg.shots:
            raise ValueError(f"mmlu: {subject} has {len(shots)} dev examples, fewer than shots={cfg.shots}")
        rows = sample(read_split(folder, subject, cfg.split), cfg.per_subject_cap, seed, subject)
        for row in rows:
            items.append({"subject": subject, "answer": row["answer"]})
            payloads.append({"context": render(build_prompt(subject, shots, row)), "continuations": continuations})
    return items, payloads


def data_files(cfg, folder: Path) -> list[Path]:
    """The files whose content the numbers depend on: per evaluated subject, the evaluated
    split and (with shots) the dev split. Files that are absent are left out (reading them
    fails later with the error that shows the layout)."""
    subjects = cfg.subjects or subjects_in(folder)
    splits = [cfg.split] + (["dev"] if cfg.shots and cfg.split != "dev" else [])
    hub = _hub_layout(folder)
    files = []
    for subject in subjects:
        for split in splits:
            if hub:
                files += sorted((folder / subject).glob(f"{split}-*.parquet"))
            else:
                path = folder / split / f"{subject}_{split}.csv"
                if path.exists():
                    files.append(path)
    return files


def predict(logprobs: list[float]) -> int:
    """Index of the highest log-likelihood (the first on ties, as numpy.argmax)."""
    best = 0
    for i, lp in enumerate(logprobs):
        if lp > logprobs[best]:
            best = i
    return best


def summarize(items: list[dict], results: list[dict]) -> dict:
    per_subject: dict[str, dict] = {}
    for item, res in zip(items, results):
        s = per_subject.setdefault(item["subject"], {"correct": 0, "n": 0})
        s["n"] += 1
        s["correct"] += int(predict(res["logprobs"]) == item["answer"])
    n = sum(s["n"] for s in per_subject.values())
    correct = sum(s["correct"] for s in per_subject.values())
    table = {k: {"acc": v["correct"] / v["n"], "n": v["n"]} for k, v in sorted(per_subject.items())}
    return {
        "acc": correct / n if n else float("nan"),
        "acc_macro": sum(v["acc"] for v in table.values()) / len(table) if table else float("nan"),
        "n": n,
        "n_subjects": len(table),
        "per_subject": table,
    }


def folder_of(ctx) -> Path:
    """evaluate.mmlu.path (a folder or hf:<dataset>), else <data_dir>/mmlu."""
    path = ctx.cfg.mmlu.path
    return resolve_folder(path) if path else ctx.root / "mmlu"


def protocol(ctx) -> dict:
    cfg, folder = ctx.cfg.mmlu, folder_of(ctx)
    files = data_files(cfg, folder)
    return {
        "shots": cfg.shots,
        "shot_source": "dev split, first k",
        "split": cfg.split,
        "per_subject_cap": cfg.per_subject_cap,
        "cap_seed": ctx.job.seed if cfg.per_subject_cap else None,
        "subjects": cfg.subjects or "all",
        "prompt_format": PROMPT_FORMAT,
        "chat_template": cfg.chat_template,
        "average": "acc: micro over questions; acc_macro: mean over subjects",
        "data": cfg.path or str(ctx.root / "mmlu"),
        "data_sha256": files_hash(folder, files),
    }


def run(ctx, label: str) -> dict:
    cfg = ctx.cfg.mmlu
    items, payloads = build_requests(cfg, folder_of(ctx), ctx.job.seed, lambda t: ctx.render_chat(t, cfg.chat_template))
    return summarize(items, ctx.requests("loglik", payloads, "mmlu"))
