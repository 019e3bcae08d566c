"""The pool summary a person reads: tasks, sizes, prompt lengths, duplicates, dropped rows."""

from __future__ import annotations


def format_summary(meta: dict, max_tasks: int = 60) -> str:
    src = meta.get("source", {})
    cfg = meta.get("config", {})
    entries = cfg.get("sources") or [{"source": cfg.get("source")}]
    infos = src.get("sources") or [src]
    shown = [f"{e.get('source')} (format: {i.get('format') or i.get('builtin', '?')})" for e, i in zip(entries, infos)]
    lines = [
        f"pool source{'s' if len(shown) > 1 else ''}: {' + '.join(shown)}",
        f"read {meta['n_read']} rows -> pool {meta['n_pool']} prompts + test {meta['n_test']} held out, "
        f"{meta['n_tasks']} tasks",
    ]
    tasks = meta.get("tasks", [])
    if tasks:
        width = max(8, *(len(t["task"]) for t in tasks[:max_tasks]))
        lines.append(f"  {'task':<{width}}  {'pool':>6}  {'test':>5}  {'prompt chars':>12}  {'answer chars':>12}")
        for t in sorted(tasks, key=lambda t: -t["pool"])[:max_tasks]:
            lines.append(
                f"  {t['task']:<{width}}  {t['pool']:>6}  {t['test']:>5}  "
                f"{t['prompt_chars_mean']:>12.0f}  {t['response_chars_mean']:>12.0f}"
            )
        if len(tasks) > max_tasks:
            lines.append(f"  ... and {len(tasks) - max_tasks} more tasks (see pool_meta.json)")
    pc = meta.get("prompt_chars", {})
    if pc:
        lines.append(f"prompt length (chars): min {pc['min']}, median {pc['median']}, mean {pc['mean']}, max {pc['max']}")
    dup = meta.get("duplicates", {})
    lines.append(f"duplicates dropped: {dup.get('count', 0)}" + (
        f"  e.g. {dup['examples'][0]['row']} repeats {dup['examples'][0]['first_seen']}" if dup.get("examples") else ""))
    near = meta.get("near_duplicates")
    if near:
        lines.append(
            f"near duplicates dropped: {near['n_dropped']} in {near['n_clusters']} clusters of {near['n_compared']} prompts "
            f"(Jaccard >= {near['threshold']:g} on {near['shingle']}-word shingles"
            + (f", cosine >= {near['cosine']:g}" if near.get("cosine") is not None else "")
            + f", {near['engine']}; every cluster in pool_meta.json)"
        )
        for ex in near.get("examples", [])[:3]:  # the compared text: without the task's shared instruction
            lines.append(f"  kept    {ex['kept'].get('compared', ex['kept']['prompt'])[:90]!r} ({ex['kept']['row']})")
            for d in ex["dropped"][:2]:
                lines.append(f"  dropped {d.get('compared', d['prompt'])[:90]!r} ({d['row']})")
    if meta.get("prompts_with_conflicting_responses"):
        lines.append(f"prompts repeated with a different response (kept): {meta['prompts_with_conflicting_responses']}")
    dropped = meta.get("dropped", {})
    at_source = meta.get("n_dropped_at_source", 0)
    lines.append(f"rows dropped: {meta.get('n_dropped', 0)}" + (f" ({at_source} by the source itself)" if at_source else ""))
    for reason, d in dropped.items():
        lines.append(f"  {d['count']:>7}  {reason}  (e.g. {d['examples'][0]})" if d["examples"] else f"  {d['count']:>7}  {reason}")
    for column, d in (meta.get("absent_columns") or {}).items():
        lines.append(
            f"rows without column {column!r} (read as empty): {d['count']}"
            + (f"  (e.g. {d['examples'][0]})" if d.get("examples") else "")
        )
    inferred = meta.get("inferred_tasks")
    if inferred:
        lines.append(f"tasks inferred: k-means k={inferred['k']} on {inferred['model']} embeddings")
    for w in meta.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
