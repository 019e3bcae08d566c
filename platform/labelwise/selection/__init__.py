"""Selection: choose which prompts to annotate (paper section 4 and its baselines).

    from labelwise.selection.table import load_scores
    from labelwise.selection.registry import NAMES, make_selector

    table = load_scores("runs/x/scores.parquet")          # canonical: sorted by id
    result = make_selector("weighted_task_diversity", {"base": 5}).select(table, 500, seed=0)
    result.ids, result.allocation                          # ordered ids, per-task table

Stage: ``labelwise.selection.stage.select(job, service=None)``; many selections over one
table: ``labelwise.selection.service.start_service(scores_path)`` (a Ray actor).
``needs_judgments(select_config)``: whether a selection reads judgments.parquet (thtb,
within_task: hardness), so that the judge stage runs before it.
"""


def needs_judgments(select_config) -> bool:
    """True for thtb and ``within_task: hardness`` (selection/judgments.py)."""
    from labelwise.selection.judgments import needs_judgments as needs

    return needs(select_config)
