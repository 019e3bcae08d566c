"""The ``rounds:`` section of a job YAML (multi-round active learning).

    rounds:
      count: 3                 # rounds of select -> annotate -> train -> evaluate
      budgets: [60, 60, 60]    # prompts per round; null: select.budget split evenly
      training: retrain        # retrain | continue

Omitting the section keeps the one-batch pipeline exactly as it is. The budgets must sum to
select.budget (the total), so that a sweep compares one batch and several rounds at equal
total budget; that the total fits the pool is checked once the pool is built.

``training``:

* ``retrain`` (the default): each round trains a fresh adapter from the base model on every
  label so far. The model after round r depends only on the labels, not on the order they
  came in, so a k-round run and a one-batch run of the same total budget differ only in
  which prompts were chosen: the comparison the rounds exist for. It costs more training
  (k equal rounds train on 1 + 2 + ... + k shares of the budget: twice one batch for k = 3).
* ``continue``: round r warm-starts from round r-1's adapter and trains on round r's new
  labels only: cheaper, but early labels are seen for more epochs than late ones and the
  model may forget them, which mixes the training order into every comparison.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from labelwise.config import check

TRAINING = ("retrain", "continue")


@dataclasses.dataclass
class RoundsConfig:
    count: int = 2
    """Number of rounds (1: one batch, in the rounds layout)."""
    budgets: list[int] | None = None
    """Prompts selected in each round; null: select.budget split as evenly as possible."""
    training: Literal["retrain", "continue"] = "retrain"
    """retrain: from the base model on all labels so far; continue: from the previous adapter on the new labels."""

    def __post_init__(self):
        check(self.count >= 1, "count", f"must be a positive number of rounds, got {self.count}")
        if self.budgets is not None:
            check(
                len(self.budgets) == self.count,
                "budgets",
                f"lists {len(self.budgets)} budget(s) for count: {self.count} rounds (one per round, or null to split select.budget)",
            )
            for i, b in enumerate(self.budgets):
                check(b > 0, f"budgets[{i}]", f"must be a positive number of prompts, got {b}")

    def per_round(self, total: int) -> list[int]:
        """The budget of each round: ``budgets``, or ``total`` split evenly (earlier rounds take the remainder)."""
        if self.budgets is not None:
            return list(self.budgets)
        q, r = divmod(total, self.count)
        return [q + (1 if i < r else 0) for i in range(self.count)]


def check_total(rounds: RoundsConfig, total: int) -> None:
    """ConfigValueError unless the rounds' budgets fit select.budget (``total``)."""
    if rounds.budgets is not None:
        check(
            sum(rounds.budgets) == total,
            "budgets",
            f"sum to {sum(rounds.budgets)} but select.budget (the total over all rounds) is {total}; "
            f"set select.budget: {sum(rounds.budgets)}, or leave rounds.budgets out to split select.budget evenly",
        )
    else:
        check(
            total >= rounds.count,
            "count",
            f"{rounds.count} rounds cannot split select.budget {total} into positive budgets",
        )
