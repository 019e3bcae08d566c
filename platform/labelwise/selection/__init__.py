"""Selection: choose which prompts to annotate (paper section 4 and its baselines).

    from labelwise.selection.table import load_scores
    from labelwise.selection.registry import NAMES, make_selector

    table = load_scores("runs/x/scores.parquet")          # canonical: sorted by id
    result = make_selector("weighted_task_diversity", {"base": 5}).select(table, 500, seed=0)
    result.ids, result.allocation                          # ordered ids, per-task table

Stage: ``labelwise.selection.stage.select(job, service=None)``; many selections over one
table: ``labelwise.selection.service.start_service(scores_path)`` (a Ray actor).
"""
