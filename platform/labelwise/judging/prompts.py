"""The judge's instructions: one request per part (Bloom, disciplines, quality) per prompt, and
one description request per distinct discipline. The rubrics follow THTB (arXiv 2510.13892;
shared/reference/thtb-method.md); the quality question replaces the reward model, which
needs a gold response (none exists before annotation).

PROMPT_VERSION is part of the judge cache key: change it whenever a template changes.
"""

from __future__ import annotations

PROMPT_VERSION = "labelwise-judge-v1"
PARTS = ("bloom", "disciplines", "quality")

BLOOM = """\
Rate the cognitive complexity of the question below on Bloom's taxonomy.
Levels and score bands (higher inside a band = more complex, more sub-skills):
Remember 1-3, Understand 4-6, Apply 7-9, Analyze 10-12, Evaluate 13-15, Create 16-21.

# Question
{prompt}
{answer}
Reply with JSON only: {{"level": "<one of the six levels>", "score": <integer 1-21>, "reasoning": "<one sentence>"}}"""

ANSWER = """
# A model's answer (for context; judge the question, not the answer)
{answer}
"""

DISCIPLINES = """\
Which academic disciplines does answering the question below require? List only the \
disciplines really needed (usually one to four), by their common names.

# Question
{prompt}

Reply with JSON only: {{"disciplines": ["<discipline>", ...]}}"""

QUALITY = """\
Judge the quality of the question below as a task for an assistant: is it well-formed, clear, \
self-contained and answerable? 1 = unusable, 10 = excellent.

# Question
{prompt}

Reply with JSON only: {{"quality": <integer 1-10>, "reasoning": "<one sentence>"}}"""

DESCRIPTION = """\
Describe the academic discipline "{discipline}" in 3 to 5 sentences: what it studies, its \
main methods and the knowledge it relies on. Reply with the description only."""


def cut(text: str, max_chars: int) -> str:
    text = text.strip()
    return text if len(text) <= max_chars else text[:max_chars] + " [...]"


def part_prompt(part: str, prompt: str, max_chars: int, answer: str | None = None) -> str:
    """The judge's instruction for ``part`` of one pool prompt (``answer``: the base model's
    greedy answer, shown to the Bloom judge when given)."""
    shown = cut(prompt, max_chars)
    if part == "bloom":
        extra = ANSWER.format(answer=cut(answer, max_chars)) if answer else ""
        return BLOOM.format(prompt=shown, answer=extra)
    if part == "disciplines":
        return DISCIPLINES.format(prompt=shown)
    if part == "quality":
        return QUALITY.format(prompt=shown)
    raise ValueError(f"unknown judge part {part!r} (known: {', '.join(PARTS)})")


def description_prompt(discipline: str) -> str:
    return DESCRIPTION.format(discipline=discipline)


def read_answers(path: Path) -> dict[str, str]:
    """id -> the base model's greedy answer from scores.parquet ({} when there is none)."""
    import pyarrow.parquet as pq

    if not path.exists():
        return {}
    t = pq.read_table(path)
    if "answer" not in t.column_names:
        return {}
    return {str(i): a for i, a in zip(t.column("id").to_pylist(), t.column("answer").to_pylist()) if a}
