"""THTB, "The Harder The Better" (arXiv 2510.13892): quality, then intrinsic, then extrinsic
hardness, each a cut of the previous stage's pool, ending at exactly B.

    select: {strategy: thtb, budget: 500,
             params: {quality_fraction: 0.2, ihs_fraction: 0.5, ehs_fraction: 0.5,
                      clusters: 3, max_features: 100}}

Stage sizes (selection/hardness.py): each cut keeps floor(pool x fraction), the method's
20% / 50% / 50%, but never fewer than B; the last stage's ranking by EHS gives the B picks.
So when B is at most 5% of the pool the picks come from a 20/50/50 funnel as published,
and a larger B widens the cuts that would fall below it. The scores, their substitutes for
the gold response (the judge's prompt quality for the reward model; the greedy answer's
length in IREI, which reflects the base model's verbosity), the silhouette's tiny-cluster
rule and the rule for failed judgments (ranked last in a stage that needs them) are in
selection/hardness.py and selection/judgments.py. Reads judgments.parquet (`labelwise
judge`), the prompts of pool.parquet and the greedy answers of scores.parquet.

selection.parquet carries every pick's scores (quality, bloom_norm, ic, ihs, irei,
silhouette, ehs) and ``stage``, the deepest stage it passed within the stage's fraction;
selection.json the sizes of the cuts and the judgment counts.
"""

from __future__ import annotations

from labelwise.selection import hardness, judgments
from labelwise.selection.base import Choice, Selector, check_number, check_param


def check_fraction(value, param: str) -> float:
    check_number(value, param)
    check_param(0 < value <= 1, param, f"must be in (0, 1], got {value!r}")
    return float(value)


class THTB(Selector):
    name = "thtb"

    def __init__(self, quality_fraction: float = 0.2, ihs_fraction: float = 0.5, ehs_fraction: float = 0.5,
                 clusters: int = 3, max_features: int = 100):
        self.quality_fraction = check_fraction(quality_fraction, "quality_fraction")
        self.ihs_fraction = check_fraction(ihs_fraction, "ihs_fraction")
        self.ehs_fraction = check_fraction(ehs_fraction, "ehs_fraction")
        check_number(clusters, "clusters", integer=True)
        check_param(clusters >= 2, "clusters", f"k-means needs at least 2 clusters, got {clusters!r}")
        check_number(max_features, "max_features", positive=True, integer=True)
        self.clusters = int(clusters)
        self.max_features = int(max_features)

    def needs_judgments(self) -> bool:
        return True

    def stages(self) -> list:
        return [hardness.Stage("quality", self.quality_fraction), hardness.Stage("ihs", self.ihs_fraction),
                hardness.Stage("ehs", self.ehs_fraction)]

    def _choose(self, table, budget, rng):
        import numpy as np

        j = judgments.require(table, "thtb")
        result = hardness.staged(table, np.arange(table.n), budget, self.stages(), rng, self.clusters, self.max_features)
        info = {"cuts": result.cuts, "judgments": j.summary(),
                "selected_missing": {part: int(j.missing(part)[result.rows].sum()) for part in judgments.PARTS}}
        return Choice(result.rows, info=info, columns=result.columns)
