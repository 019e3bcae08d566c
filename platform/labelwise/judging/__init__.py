"""LLM judgments of prompts (the THTB judge stage, free-text and choice modes)."""

STAGE = "judge"  # the stage's name (stages.py, its manifest, its fault points)
