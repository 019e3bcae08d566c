"""Sequential decision of one paired comparison: seeds added in planned looks, stopped when decided.

The data are the per-seed paired differences d_i = selector − reference (same seed, same
budget; see ``labelwise.report.paired``), taken in the order the seeds were planned. The plan
fixes, before any data: the looks n_1 < ... < n_K (numbers of seeds, e.g. 3, 5, 8, 12, 20),
alpha, the equivalence margin delta and a spending function. At look k the rule computes the
mean m and standard error se of the first n_k differences and, with critical values q_k and
e_k of a t distribution with n_k − 1 degrees of freedom:

* **better / worse**: the two-sided (1 − alpha_k) interval m ± q_k·se excludes 0 (better when
  the mean moves the metric's good way: down for NLL and losses, up for accuracy);
* **equivalent**: the TOST (1 − 2·eps_k) interval m ± e_k·se lies inside (−delta, +delta);
* **undecided** otherwise: the next look's seeds are needed (or max_seeds was reached).

It stops at the first look that decides. When both hold at one look, better/worse wins (the
reason says the interval is also inside the margin).

Why the error rates hold under this stopping. Each of four one-sided tests spends its level
over the planned looks: "better" at alpha/2, "worse" at alpha/2, and each of the two TOST tests
(true difference <= −delta, >= +delta) at alpha. The level a test uses at look k is what its
spending function a(t) spends between the previous look and this one, at information fraction
t_k = n_k / n_K; these per-look levels sum to the test's level. For normal per-seed
differences a one-sample t-test at look k has exactly its nominal level, whatever happened at
other looks, so by the union bound the chance that a test ever rejects a true null, at any
look and under any stopping, is at most its level. Hence under a true difference 0 a
better/worse verdict has chance <= alpha/2 + alpha/2 = alpha (stopping early for another
verdict only removes chances), and under |true difference| >= delta an equivalent verdict
needs the one-sided test on that side to reject, so its chance is <= alpha. Heavy-tailed
differences (t with 3 df) give lower rates still in simulation (t-tests are conservative there).

Limits. The union bound needs each look's t-test to hold its level, which needs roughly
symmetric differences. Under the null that selection does not matter, selector and reference
are exchangeable given the seed, so their difference is symmetric however skewed each trial's
metric is (the test's ``skewed_trials`` case: 0.026 under OBF). A selector that changes the
shape of the noise without moving its mean can give skewed differences, and then the rate
exceeds alpha, as a fixed 20-seed t-test's does (simulated, OBF, 40,000 sweeps: skewness 1
gives 0.059, exponential differences (skewness 2) 0.097; the fixed-n t-test at 20 seeds:
0.058 and 0.079). The looks must be fixed before the data, and seeds taken in a fixed order.

Spending functions (``spending``), for a one-sided level a and t = n_k / n_K:

* ``obf`` (default): Lan–DeMets O'Brien–Fleming-like, a(t) = 2 − 2·Phi(z_{1−a/2} / sqrt(t)):
  almost nothing early, nearly all of a at the last look; the most power at max_seeds.
* ``pocock``: Lan–DeMets Pocock-like, a(t) = a·ln(1 + (e − 1)·t): spends evenly, stops early.
* ``bonferroni``: a/K at each of the K looks.

Why not the classical group-sequential boundaries (the joint normal law of the cumulative z
statistics, Armitage–McPherson–Rowe integration, then t quantiles with the same tails): they
assume a known variance, and with 3 to 20 seeds they exceeded alpha in simulation while this module was built
(OBF 0.0513 ± 0.0005, Pocock 0.0555 ± 0.0005 at alpha 0.05; 200,000 normal sweeps, looks 3, 5,
8, 12, 20; the integration reproduced gsDesign's OBF z boundaries 4.877, 3.357, 2.680, 2.290,
2.031 for 5 equal looks, so the excess is the t conversion's, not the integration's).
Spending as per-look levels is exact for normal differences and costs about 2 points of power
at 0.5 SD under OBF spending.

Simulated sweeps (``python -m labelwise.report.sequential`` prints this table; looks
3, 5, 8, 12, 20, alpha 0.05, delta = 0.5 SD of the paired difference, 20,000 sweeps, normal):

| spending | true effect (SD) | better | worse | equivalent | undecided | mean seeds |
|---|---|---|---|---|---|---|
| obf | 0 | 0.022 | 0.022 | 0.302 | 0.654 | 19.9 |
| obf | 0.5 | 0.539 | 0.000 | 0.033 | 0.427 | 19.1 |
| obf | 1 | 0.985 | 0.000 | 0.000 | 0.015 | 15.1 |
| obf | 2 | 1.000 | 0.000 | 0.000 | 0.000 | 9.8 |
| pocock | 0 | 0.019 | 0.021 | 0.091 | 0.870 | 19.5 |
| pocock | 0.5 | 0.388 | 0.002 | 0.012 | 0.598 | 18.1 |
| pocock | 1 | 0.954 | 0.000 | 0.001 | 0.045 | 12.9 |
| pocock | 2 | 1.000 | 0.000 | 0.000 | 0.000 | 6.6 |
| bonferroni | 0 | 0.019 | 0.022 | 0.054 | 0.906 | 19.4 |
| bonferroni | 0.5 | 0.347 | 0.002 | 0.009 | 0.642 | 17.9 |
| bonferroni | 1 | 0.939 | 0.000 | 0.001 | 0.060 | 12.5 |
| bonferroni | 2 | 1.000 | 0.000 | 0.000 | 0.000 | 6.3 |

Positive effects here are improvements ("better"); "mean seeds" counts seeds used per
comparison when a sweep may stop at any look. Mean seeds under no effect stay near 20 with
delta = 0.5 SD: equivalence within half a standard deviation needs most of the seeds; a wider
margin decides sooner.
"""

from __future__ import annotations

import dataclasses
import functools
import math

SPENDINGS = ("obf", "pocock", "bonferroni")
VERDICTS = ("better", "worse", "equivalent", "undecided")
DEFAULT_LOOKS = (3, 5, 8, 12, 20)


def check_plan(looks, alpha: float, delta: float, spending: str = "obf") -> tuple[int, ...]:
    """Validate a plan; raise ValueError naming the bad setting. Returns the looks as a tuple."""
    looks = tuple(looks)
    if not looks:
        raise ValueError("looks: must list at least one number of seeds")
    if any(not isinstance(n, int) or isinstance(n, bool) for n in looks):
        raise ValueError(f"looks: must be whole numbers of seeds, got {list(looks)}")
    if looks[0] < 2:
        raise ValueError(f"looks: the first look needs at least 2 seeds (a standard deviation), got {looks[0]}")
    if any(b <= a for a, b in zip(looks, looks[1:])):
        raise ValueError(f"looks: must increase strictly, got {list(looks)}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 0.5):
        raise ValueError(f"alpha: must be between 0 and 0.5 (exclusive), got {alpha!r}")
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
        raise ValueError("delta: the equivalence margin must be a positive number in the metric's units, "
                         f"got {delta!r}")
    if spending not in SPENDINGS:
        raise ValueError(f"spending: unknown {spending!r} (valid: {', '.join(SPENDINGS)})")
    return looks


def spent(t: float, level: float, spending: str, k: int | None = None, K: int | None = None) -> float:
    """Cumulative one-sided level spent at information fraction ``t`` (look k of K for bonferroni)."""
    from scipy.stats import norm

    if spending == "obf":
        return float(2 * norm.sf(norm.isf(level / 2) / math.sqrt(t)))
    if spending == "pocock":
        return float(level * math.log(1 + (math.e - 1) * t))
    if spending == "bonferroni":
        return level * k / K
    raise ValueError(f"spending: unknown {spending!r} (valid: {', '.join(SPENDINGS)})")


@functools.lru_cache(maxsize=64)
def nominal_levels(looks: tuple[int, ...], level: float, spending: str) -> tuple[float, ...]:
    """One-sided nominal level per look: what the spending function spends between the
    previous look and this one. The levels sum to ``level``, so by the union bound the chance
    that the test ever rejects a true null over the looks is at most ``level``, whatever the
    dependence between looks, as long as each look's test has its nominal level (a t-test on
    normal differences has it exactly)."""
    K, N = len(looks), looks[-1]
    cumulative = [0.0] + [spent(n / N, level, spending, k + 1, K) for k, n in enumerate(looks)]
    cumulative[-1] = level  # exact at t = 1 (the formulas give level up to rounding)
    return tuple(max(0.0, b - a) for a, b in zip(cumulative, cumulative[1:]))


@dataclasses.dataclass(frozen=True)
class Plan:
    """A sequential plan: delta (metric units, required), the looks (seeds), alpha, spending, direction."""

    delta: float
    looks: tuple[int, ...] = DEFAULT_LOOKS
    alpha: float = 0.05
    spending: str = "obf"
    lower_is_better: bool = True

    def __post_init__(self):
        object.__setattr__(self, "looks", check_plan(self.looks, self.alpha, self.delta, self.spending))

    @classmethod
    def for_metric(cls, metric: str, **kwargs) -> "Plan":
        """A plan whose direction is the metric's (``report.table.lower_is_better``: NLL,
        losses and errors go down when better)."""
        from labelwise.report.table import lower_is_better

        return cls(lower_is_better=lower_is_better(metric), **kwargs)

    def levels(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(alpha_k, eps_k) per look: the two-sided level of the better/worse interval and the
        one-sided level of each TOST test (its interval is 1 − 2·eps_k)."""
        two = nominal_levels(self.looks, self.alpha / 2, self.spending)
        one = nominal_levels(self.looks, self.alpha, self.spending)
        return tuple(2 * a for a in two), one

    def critical_values(self):
        """(q_k, e_k) per look: t quantiles of the better/worse and the TOST intervals."""
        from scipy.stats import t

        a2, e1 = self.levels()
        q = tuple(float(t.isf(a / 2, n - 1)) if a > 0 else math.inf for a, n in zip(a2, self.looks))
        e = tuple(float(t.isf(a, n - 1)) if a > 0 else math.inf for a, n in zip(e1, self.looks))
        return q, e


def _interval(m: float, se: float, c: float) -> tuple[float, float]:
    if se == 0:  # every seed gave the same difference: the interval is that point
        return m, m
    return m - c * se, m + c * se


def look(d, n: int, plan: Plan, k: int) -> dict:
    """The statistics and the verdict at look k (0-based) from the first n differences."""
    import numpy as np

    d = np.asarray(d[:n], dtype=float)
    return _judge(float(d.mean()), float(d.std(ddof=1)), n, plan, k)


def _judge(m: float, sd: float, n: int, plan: Plan, k: int) -> dict:
    """The rule at look k (0-based) for n differences of mean m and SD sd."""
    (a2, e1), (q, e) = plan.levels(), plan.critical_values()
    se = sd / math.sqrt(n)
    lo, hi = _interval(m, se, q[k])
    elo, ehi = _interval(m, se, e[k])
    row = {"look": k + 1, "seeds": n, "mean": m, "sd": sd, "alpha_k": a2[k], "ci_low": lo, "ci_high": hi,
           "tost_alpha_k": e1[k], "tost_low": elo, "tost_high": ehi}
    inside = -plan.delta < elo and ehi < plan.delta
    if lo > 0 or hi < 0:
        good = (hi < 0) == plan.lower_is_better
        row["verdict"] = "better" if good else "worse"
        row["reason"] = (f"the 1 − {a2[k]:.3g} interval [{lo:.4g}, {hi:.4g}] excludes 0"
                         + (f" (its TOST interval is also inside ±{plan.delta:g})" if inside else ""))
    elif inside:
        row["verdict"] = "equivalent"
        row["reason"] = f"the 1 − 2×{e1[k]:.3g} TOST interval [{elo:.4g}, {ehi:.4g}] lies inside ±{plan.delta:g}"
    else:
        row["verdict"] = "undecided"
        row["reason"] = (f"the 1 − {a2[k]:.3g} interval [{lo:.4g}, {hi:.4g}] covers 0 and the "
                         f"1 − 2×{e1[k]:.3g} TOST interval [{elo:.4g}, {ehi:.4g}] is not inside ±{plan.delta:g}")
    return row


def decide(d, plan: Plan, max_seeds: int | None = None) -> dict:
    """Walk the looks over the differences ``d`` (in planned seed order) and stop at the first
    decision. Returns verdict, seeds (used), reason, next_look (seeds the next look needs, None
    when stopped), path (one :func:`look` row per look taken) and, while undecided, the
    :func:`projection` of its last look (None when decided or before the first look).

    ``max_seeds`` (default the last look) must be one of the looks; it caps the looks taken
    without changing the plan's spending, so a later rerun with a larger max_seeds goes on
    with the same boundaries (what it leaves unspent only makes the rule conservative)."""
    d = [float(x) for x in d]
    if not all(math.isfinite(x) for x in d):
        raise ValueError("differences: every paired difference must be a finite number (drop failed trials first)")
    cap = plan.looks[-1] if max_seeds is None else max_seeds
    if cap not in plan.looks:
        raise ValueError(f"max_seeds: must be one of the looks {list(plan.looks)}, got {cap}")
    path = []
    for k, n in enumerate(plan.looks):
        if n > cap:
            break
        if len(d) < n:
            return {"verdict": "undecided", "seeds": len(d), "next_look": n, "path": path,
                    "reason": f"look {k + 1} needs {n} seeds, {len(d)} so far", "projection": projection(path, plan)}
        row = look(d, n, plan, k)
        path.append(row)
        if row["verdict"] != "undecided":
            return {"verdict": row["verdict"], "seeds": n, "next_look": None, "path": path,
                    "reason": f"look {k + 1} ({n} seeds): {row['reason']}", "projection": None}
    last = path[-1]
    why = "reached max_seeds"
    if cap != plan.looks[-1]:
        why += f" {cap} (the plan goes to {plan.looks[-1]})"
    return {"verdict": "undecided", "seeds": last["seeds"], "next_look": None, "path": path,
            "reason": f"{why}: {last['reason']}", "projection": projection(path, plan)}


def projection(path: list[dict], plan: Plan) -> dict | None:
    """Where an undecided comparison would stop if its mean and SD stayed as at its last look:
    {verdict, seeds, look} at the first later look of the plan (up to its last, beyond
    max_seeds too) whose rule decides with them, or verdict ``undecided`` at the plan's last
    look. None before the first look. A plug-in guess for planning the cost of more seeds
    (real means and SDs move as seeds come in); the decisions never use it."""
    if not path:
        return None
    last = path[-1]
    for k in range(last["look"], len(plan.looks)):
        n = plan.looks[k]
        row = _judge(last["mean"], last["sd"], n, plan, k)
        if row["verdict"] != "undecided":
            return {"verdict": row["verdict"], "seeds": n, "look": k + 1}
    return {"verdict": "undecided", "seeds": plan.looks[-1], "look": len(plan.looks)}


def projection_text(p: dict | None) -> str:
    """``better at 8 seeds`` / ``not by 20 seeds`` / ``–``."""
    if p is None:
        return "–"
    if p["verdict"] == "undecided":
        return f"not by {p['seeds']} seeds"
    return f"{p['verdict']} at {p['seeds']} seeds"


def _bounds(m, se, c):
    """m ± c·se over arrays; a point where se is 0 (c may be inf: a level of 0 at this look)."""
    import numpy as np

    half = np.where(se == 0, 0.0, c * np.where(se == 0, 1.0, se))
    return m - half, m + half


def simulate(D, looks, q, e, delta: float, lower_is_better: bool = True):
    """The same rule, vectorised over simulated sweeps: ``D`` is (sweeps, seeds >= looks[-1]);
    ``q`` and ``e`` the critical values per look (Plan.critical_values, or any others, e.g. a
    naive t-test's). Returns (verdict index into VERDICTS, seeds used) per sweep."""
    import numpy as np

    D = np.asarray(D, dtype=float)
    verdict = np.full(len(D), VERDICTS.index("undecided"))
    seeds = np.full(len(D), looks[-1])
    open_ = np.ones(len(D), dtype=bool)
    for n, qk, ek in zip(looks, q, e):
        x = D[:, :n]
        m = x.mean(axis=1)
        se = x.std(axis=1, ddof=1) / math.sqrt(n)
        lo, hi = _bounds(m, se, qk)
        elo, ehi = _bounds(m, se, ek)
        down, up = hi < 0, lo > 0
        equiv = (elo > -delta) & (ehi < delta)
        better = down if lower_is_better else up
        worse = up if lower_is_better else down
        for mask, name in ((better, "better"), (worse, "worse"), (equiv & ~better & ~worse, "equivalent")):
            hit = open_ & mask
            verdict[hit] = VERDICTS.index(name)
            seeds[hit] = n
            open_ &= ~hit
    return verdict, seeds


def simulated_table(looks=DEFAULT_LOOKS, alpha: float = 0.05, delta_sd: float = 0.5, sweeps: int = 20_000,
                    effects=(0.0, 0.5, 1.0, 2.0), spendings=SPENDINGS, seed: int = 0) -> list[dict]:
    """Rates of each verdict and the mean seeds used, per spending and true effect (in SDs of
    the paired difference; normal differences, delta = ``delta_sd`` SDs)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((sweeps, looks[-1]))
    rows = []
    for spending in spendings:
        plan = Plan(delta_sd, tuple(looks), alpha, spending)
        q, e = plan.critical_values()
        for effect in effects:
            v, n = simulate(Z + effect, plan.looks, q, e, delta_sd, lower_is_better=False)
            row = {"spending": spending, "effect_sd": effect}
            row.update({name: float((v == i).mean()) for i, name in enumerate(VERDICTS)})
            row["mean_seeds"] = float(n.mean())
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| spending | true effect (SD) | better | worse | equivalent | undecided | mean seeds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['spending']} | {r['effect_sd']:g} | {r['better']:.3f} | {r['worse']:.3f} | "
                     f"{r['equivalent']:.3f} | {r['undecided']:.3f} | {r['mean_seeds']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    print(format_table(simulated_table()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
