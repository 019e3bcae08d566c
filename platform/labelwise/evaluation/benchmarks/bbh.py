"""BIG-Bench Hard: 27 tasks, the standard 3-shot prompts, greedy answers, exact match.

Prompt (Suzgun et al. 2022, as lm-evaluation-harness ``bbh_cot_fewshot`` / ``bbh_fewshot``):

    <task description>

    Q: <shot input>
    A: Let's think step by step.
    <rationale> So the answer is <answer>.      (direct answers: "A: <answer>")

    ... (3 shots) ...

    Q: <input>
    A: Let's think step by step.                 (direct answers: "A:")

The direct-answer shots are the chain-of-thought shots with the rationale removed. The answer
is the text after "the answer is" (chain of thought) or the first line (direct), normalized:
multiple-choice targets "(X)" match any "(X)" or bare letter X; others match case-insensitively
after trimming a final period. Score: exact match per task, macro-average over tasks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from labelwise.evaluation.data import files_hash, missing, sample

N_TASKS = 27
COT_TRIGGER = "Let's think step by step."
STOP = ["\n\n"]
ANSWER_RE = re.compile(r"[Tt]he answer is\s*(.+)")
CHOICE_RE = re.compile(r"\(([A-R])\)")


def tasks_in(folder: Path) -> list[str]:
    if not (folder / "tasks").is_dir() or not (folder / "cot-prompts").is_dir():
        raise missing("bbh", folder)
    found = sorted(p.stem for p in (folder / "tasks").glob("*.json"))
    if not found:
        raise missing("bbh", folder / "tasks", "no <task>.json files")
    return found


def read_examples(folder: Path, task: str) -> list[dict]:
    path = folder / "tasks" / f"{task}.json"
    if not path.exists():
        raise missing("bbh", path, f"no examples for task {task}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list):
        raise ValueError(f'{path}: expected {{"examples": [{{"input", "target"}}, ...]}}')
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not isinstance(ex.get("input"), str) or not isinstance(ex.get("target"), str):
            raise ValueError(f"{path}: examples[{i}] needs string fields input and target")
    return examples


def read_cot_prompt(folder: Path, task: str) -> tuple[str, list[dict]]:
    """(description, shots) of the task's standard prompt; each shot {input, rationale, answer}."""
    path = folder / "cot-prompts" / f"{task}.txt"
    if not path.exists():
        raise missing("bbh", path, f"no chain-of-thought prompt for task {task}")
    text = path.read_text()
    if "\n-----\n" in text:  # canary line, then a separator
        text = text.split("\n-----\n", 1)[1]
    blocks = text.strip().split("\n\nQ: ")
    description, shots = blocks[0].strip(), []
    for n, block in enumerate(blocks[1:], 1):
        question, sep, answer_part = block.partition(f"\nA: {COT_TRIGGER}")
        match = list(ANSWER_RE.finditer(answer_part))
        if not sep or not match:
            raise ValueError(f"{path}: shot {n} is not 'Q: ...\\nA: {COT_TRIGGER} ... So the answer is X.'")
        answer = match[-1].group(1).strip()
        shots.append(
            {
                "input": question.strip(),
                "rationale": answer_part.strip(),
                "answer": answer[:-1] if answer.endswith(".") else answer,
            }
        )
    return description, shots


def build_prompt(description: str, shots: list[dict], question: str, cot: bool) -> str:
    parts = [description]
    for s in shots:
        a = f"{COT_TRIGGER}\n{s['rationale']}" if cot else s["answer"]
        parts.append(f"Q: {s['input']}\nA: {a}")
    parts.append(f"Q: {question}\nA:" + (f" {COT_TRIGGER}" if cot else ""))
    return "\n\n".join(parts)


def extract_answer(text: str, cot: bool) -> str:
    """The model's answer from its generation ('' when there is none)."""
    found = ANSWER_RE.search(text)
    if found:
        answer = found.group(1).strip().splitlines()[0].strip()
    elif cot:
        return ""
    else:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        answer = lines[0] if lines else ""
    return answer[:-1].strip() if answer.endswith(".") else answer


def is_correct(prediction: str, target: str) -> bool:
    target = target.strip()
    choice = CHOICE_RE.fullmatch(target)
    if choice:
        found = CHOICE_RE.search(prediction)
        if found:
            return found.group(1) == choice.group(1)
        bare = re.fullmatch(r"([A-R])(?:\)|\.|:)?(?:\s.*)?", prediction.strip(), flags=re.S)
        return bool(bare) and bare.group(1) == choice.group(1)
    norm = lambda s: " ".join(s.split()).lower()  # noqa: E731
    return norm(prediction) == norm(target)


def build_requests(cfg, folder: Path, seed: int, render) -> tuple[list[dict], list[dict]]:
    known = tasks_in(folder)
    tasks = cfg.tasks or known
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"bbh: unknown task {unknown[0]!r} (known: {', '.join(known)})")
    items, payloads = [], []
    for task in tasks:
        description, shots = read_cot_prompt(folder, task)
        if len(shots) < cfg.shots:
            raise ValueError(f"bbh: {task} prompt has {len(shots)} shots, fewer than shots={cfg.shots}")
        for ex in sample(read_examples(folder, task), cfg.per_task_cap, seed, task):
            items.append({"task": task, "target": ex["target"]})
            payloads.append(
                {
                    "prompt": render(build_prompt(description, shots[: cfg.shots], ex["input"], cfg.cot)),
                    "max_new_tokens": cfg.generation_tokens,
                    "stop": STOP,
                }
            )
    return items, payloads


def summarize(items: list[dict], results: list[dict], cot: bool) -> dict:
    per_task: dict[str, dict] = {}
    for item, res in zip(items, results):
        t = per_task.setdefault(item["task"], {"correct": 0, "n": 0, "no_answer": 0})
        answer = extract_answer(res["text"], cot)
        t["n"] += 1
        t["no_answer"] += int(answer == "")
        t["correct"] += int(is_correct(answer, item["target"]))
    table = {
        k: {"em": v["correct"] / v["n"], "n": v["n"], "no_answer": v["no_answer"]} for k, v in sorted(per_task.items())
    }
    n = sum(v["n"] for v in table.values())
    return {
        "em": sum(v["em"] for v in table.values()) / len(table) if table else float("nan"),
        "em_micro": sum(per_task[k]["correct"] for k in per_task) / n if n else float("nan"),
        "n": n,
        "n_tasks": len(table),
        "per_task": table,
    }


def data_files(cfg, folder: Path) -> list[Path]:
    """Per evaluated task, its examples and its standard prompt (files that are absent are
    left out: reading them fails later with the error that shows the layout)."""
    files = []
    for task in cfg.tasks or tasks_in(folder):
        for path in (folder / "tasks" / f"{task}.json", folder / "cot-prompts" / f"{task}.txt"):
            if path.exists():
                files.append(path)
    return files


def folder_of(ctx) -> Path:
    """evaluate.bbh.path, else <data_dir>/bbh."""
    return Path(ctx.cfg.bbh.path) if ctx.cfg.bbh.path else ctx.root / "bbh"


def protocol(ctx) -> dict:
    cfg, folder = ctx.cfg.bbh, folder_of(ctx)
    files = data_files(cfg, folder)
    return {
        "shots": cfg.shots,
        "prompt_format": ("3-shot chain of thought (Suzgun et al. cot-prompts)" if cfg.cot else "direct answers (cot-prompt shots without rationale)"),
        "cot": cfg.cot,
        "per_task_cap": cfg.per_task_cap,
        "cap_seed": ctx.job.seed if cfg.per_task_cap else None,
        "tasks": cfg.tasks or "all",
        "max_new_tokens": cfg.generation_tokens,
        "decoding": "greedy, stop at blank line",
        "chat_template": cfg.chat_template,
        "answer_extraction": "text after 'the answer is' (cot) or first line (direct); '(X)' targets match '(X)' or bare X; else case-insensitive",
        "average": "em: macro over tasks; em_micro: over examples",
        "data": str(folder),
        "data_sha256": files_hash(folder, files),
    }


def run(ctx, label: str) -> dict:
    cfg = ctx.cfg.bbh
    items, payloads = build_requests(cfg, folder_of(ctx), ctx.job.seed, lambda t: ctx.render_chat(t, cfg.chat_template))
    return summarize(items, ctx.requests("generate", payloads, "bbh"), cfg.cot)
