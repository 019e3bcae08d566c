"""One answer per prompt when several annotators answered it: plain functions, no I/O.

Each annotator has one vote, their latest submitted answer. Then, by ``pick``:

* ``latest``: the most recent vote (ties: the higher annotation id);
* ``agreed``: the answer that a strict majority of the annotators gave, compared after
  :func:`normalize` (Unicode NFKC, case folded, runs of whitespace made one space, ends
  stripped). The text kept is the most recent of the agreeing votes, byte for byte. With no
  strict majority (two annotators who differ, three who all differ, 2 against 2) the prompt
  has no agreed answer: it stays unanswered (:class:`Disagreement`), listed by the caller.
  One annotator alone is a majority of one.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter
from datetime import datetime

PICKS = ("latest", "agreed")
_SPACES = re.compile(r"\s+")


@dataclasses.dataclass(frozen=True)
class Vote:
    response: str
    annotator: str
    at: str  # ISO 8601 time the annotation was last submitted
    annotation: int  # the annotation's id on the server


@dataclasses.dataclass(frozen=True)
class Picked:
    response: str
    annotators: tuple[str, ...]  # whose answers it is (the agreeing ones, for agreed), oldest first
    answered_at: str  # the latest of their times


@dataclasses.dataclass(frozen=True)
class Disagreement:
    annotators: int
    distinct: int  # different normalized answers among them
    largest: int  # votes for the most common one


def normalize(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _when(vote: Vote) -> tuple[datetime, int]:
    at = datetime.fromisoformat(vote.at.replace("Z", "+00:00"))
    return (at if at.tzinfo else at.replace(tzinfo=datetime.now().astimezone().tzinfo)), vote.annotation


def one_vote_each(votes: list[Vote]) -> list[Vote]:
    """Each annotator's latest vote, oldest first."""
    latest: dict[str, Vote] = {}
    for v in sorted(votes, key=_when):
        latest[v.annotator] = v
    return sorted(latest.values(), key=_when)


def pick(votes: list[Vote], how: str) -> Picked | Disagreement:
    if how not in PICKS:
        raise ValueError(f"pick must be one of {', '.join(PICKS)}, got {how!r}")
    if not votes:
        raise ValueError("no votes to pick from")
    votes = one_vote_each(votes)
    if how == "latest":
        v = votes[-1]
        return Picked(v.response, (v.annotator,), v.at)
    counts = Counter(normalize(v.response) for v in votes)
    answer, n = counts.most_common(1)[0]
    if 2 * n <= len(votes):
        return Disagreement(annotators=len(votes), distinct=len(counts), largest=n)
    agreeing = [v for v in votes if normalize(v.response) == answer]
    return Picked(agreeing[-1].response, tuple(v.annotator for v in agreeing), agreeing[-1].at)
