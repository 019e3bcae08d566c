"""``labelwise bench select``: time and peak memory of the selectors on synthetic scores.

Cases (each runs in a fresh subprocess so that its peak RSS is its own):
  td, wtd    task diversity / weighted task diversity on N prompts in T tasks
             (default N=1,000,000, T=2,000; target < 2 s per selection call)
  kcenter, fl, dpp
             embedding selectors on N=100,000 prompts, d=384, B=10,000
             (target < 4 GiB peak RSS; the time is reported as measured)
  fl-dense   facility location (lazy greedy) against a plain dense greedy on N=5,000:
             same objective value, time ratio

    labelwise bench select                       # everything, full size
    labelwise bench select --scale 0.1 --only td,wtd,fl-dense
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time

CASES = ("td", "wtd", "kcenter", "fl", "dpp", "fl-dense")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tasks(rng, n, t):
    """Skewed task sizes (log-normal), every task non-empty, summing to n."""
    import numpy as np

    w = rng.lognormal(0.0, 1.0, t)
    sizes = np.maximum(1, np.floor(w / w.sum() * (n - t)).astype(int) + 1)
    sizes[np.argmax(sizes)] += n - sizes.sum()
    return np.repeat(np.arange(t), sizes)


def _table(n, t, d, seed, intrinsic=0):
    import numpy as np
    import pyarrow as pa

    from labelwise.selection.table import from_arrays

    rng = np.random.default_rng(seed)
    codes = _tasks(rng, n, t)
    perm = rng.permutation(n)
    ids = pa.array([f"p{i:08d}" for i in perm.tolist()])
    tasks = pa.array([f"task{c:05d}" for c in codes.tolist()])
    task_conf = rng.uniform(-6, -0.2, t)
    logconf = task_conf[codes] + rng.normal(0, 1, n)
    scores = {"logconf": np.minimum(logconf, 0.0), "n_tokens": rng.integers(1, 33, n).astype(float)}
    emb = None
    if d:
        centers = rng.normal(0, 1.0, (t, d)).astype(np.float32)
        if intrinsic:  # prompts vary along a few directions (like real sentence embeddings)
            basis = rng.normal(0, 1.0, (intrinsic, d)).astype(np.float32) / np.sqrt(intrinsic)
            noise = rng.normal(0, 1.0, (n, intrinsic)).astype(np.float32) @ basis
            emb = centers[codes] + noise + rng.normal(0, 0.05, (n, d)).astype(np.float32)
        else:  # isotropic noise in all d dimensions: the hardest case for pruning
            emb = centers[codes] + rng.normal(0, 1.0, (n, d)).astype(np.float32)
    t0 = time.perf_counter()
    table = from_arrays(ids, tasks, scores, emb)
    return table, time.perf_counter() - t0


def _plain_dense_fl(k, budget):
    """Textbook greedy: every step recomputes every candidate's gain (O(N^2) per pick)."""
    import numpy as np

    n = len(k)
    cur = np.zeros(n, dtype=np.float32)
    picked = []
    taken = np.zeros(n, dtype=bool)
    for _ in range(budget):
        gains = np.zeros(n)
        for s in range(0, n, 1024):  # K is symmetric: row j = facility j
            gains[s : s + 1024] = np.maximum(k[s : s + 1024] - cur[None, :], 0).sum(axis=1)
        gains[taken] = -1
        j = int(np.argmax(gains))
        picked.append(j)
        taken[j] = True
        np.maximum(cur, k[j], out=cur)
    return picked, float(cur.sum(dtype=np.float64))


def _run_case(case, a, queue):
    try:
        queue.put(_case(case, a))
    except BaseException as e:  # report, do not hang the parent
        queue.put({"case": case, "error": f"{type(e).__name__}: {e}"})


def _case(case, a):
    from labelwise.selection.registry import make_selector

    out = {"case": case}
    if case in ("td", "wtd"):
        table, build = _table(a.n, a.tasks, 0, a.seed)
        name = "task_diversity" if case == "td" else "weighted_task_diversity"
        budget = a.budget
        out.update(n=table.n, tasks=table.n_tasks, budget=budget, build_s=build)
    elif case in ("kcenter", "fl", "dpp"):
        table, build = _table(a.emb_n, a.emb_tasks, a.dim, a.seed, a.intrinsic_dim)
        out["intrinsic_dim"] = a.intrinsic_dim or a.dim
        name = {"kcenter": "kcenter", "fl": "facility_location", "dpp": "dpp"}[case]
        budget = a.emb_budget
        out.update(n=table.n, tasks=table.n_tasks, dim=a.dim, budget=budget, build_s=build)
    else:  # fl-dense
        import numpy as np

        from labelwise.selection import kernels

        table, build = _table(a.fl_n, max(1, a.fl_n // 100), a.dim, a.seed)
        sel = make_selector("facility_location", {"structure": "dense", "gamma": a.gamma, "max_kernel_mb": 4096})
        t0 = time.perf_counter()
        res = sel.select(table, a.fl_budget, a.seed)
        lazy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        x, x_sq = kernels.prepare(table.embedding, "rbf")
        k = kernels.dense(x, x_sq, "rbf", a.gamma)
        picked, obj = _plain_dense_fl(k, a.fl_budget)
        plain_s = time.perf_counter() - t0
        out.update(
            n=table.n, dim=a.dim, budget=a.fl_budget, lazy_s=lazy_s, plain_s=plain_s,
            lazy_objective=res.info["objective"], plain_objective=obj,
            same_objective=bool(abs(res.info["objective"] - obj) <= 1e-5 * max(1.0, abs(obj))),
            speedup=plain_s / lazy_s, gain_evaluations=res.info["gain_evaluations"], peak_rss_mb=_rss_mb(),
        )
        return out
    params = {"gamma": a.gamma} if name == "facility_location" else {}
    sel = make_selector(name, params)
    out["rss_before_mb"] = _rss_mb()
    times = []
    for r in range(a.repeat):
        t0 = time.perf_counter()
        res = sel.select(table, budget, a.seed + r)
        times.append(time.perf_counter() - t0)
    out.update(select_s=min(times), select_s_all=times, peak_rss_mb=_rss_mb(), selected=len(res.ids))
    out["info"] = {k: v for k, v in res.info.items() if k not in ("knn_tasks", "tasks_taken")}
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labelwise bench select", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(CASES), help=f"comma list of cases ({', '.join(CASES)})")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every N and budget (e.g. 0.1 for a quick run)")
    p.add_argument("--n", type=int, default=1_000_000, help="prompts for td/wtd")
    p.add_argument("--tasks", type=int, default=2000, help="tasks for td/wtd")
    p.add_argument("--budget", type=int, default=100_000, help="budget for td/wtd")
    p.add_argument("--emb-n", type=int, default=100_000, help="prompts for kcenter/fl/dpp")
    p.add_argument("--emb-tasks", type=int, default=200, help="tasks for kcenter/fl/dpp")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--emb-budget", type=int, default=10_000)
    p.add_argument("--intrinsic-dim", type=int, default=0, help="embedding noise in this many directions (0: isotropic in all d)")
    p.add_argument("--fl-n", type=int, default=5000, help="prompts for the dense facility-location comparison")
    p.add_argument("--fl-budget", type=int, default=500)
    p.add_argument("--gamma", type=float, default=0.002, help="rbf gamma for facility location")
    p.add_argument("--repeat", type=int, default=2, help="selection calls per case (the fastest is reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    cases = [c.strip() for c in a.only.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        print(f"unknown case(s) {', '.join(bad)} (valid: {', '.join(CASES)})", file=sys.stderr)
        return 2
    for f in ("n", "budget", "emb_n", "emb_budget", "fl_n", "fl_budget"):
        setattr(a, f, max(1, int(getattr(a, f) * a.scale)))
    a.tasks = max(1, min(a.tasks, a.n))
    a.emb_tasks = max(1, min(a.emb_tasks, a.emb_n))
    ctx = mp.get_context("spawn")
    results = []
    for case in cases:
        q = ctx.Queue()
        proc = ctx.Process(target=_run_case, args=(case, a, q))
        t0 = time.perf_counter()
        proc.start()
        r = q.get()
        proc.join()
        r["wall_s"] = time.perf_counter() - t0
        results.append(r)
        print(_line(r), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return 1 if any("error" in r for r in results) else 0


def _line(r) -> str:
    if "error" in r:
        return f"{r['case']:<9} ERROR {r['error']}"
    if r["case"] == "fl-dense":
        return (
            f"{r['case']:<9} N={r['n']:,} d={r['dim']} B={r['budget']:,}: lazy greedy {r['lazy_s']:.2f} s, "
            f"plain dense greedy {r['plain_s']:.2f} s, speedup x{r['speedup']:.1f}; objective "
            f"{r['lazy_objective']:.4f} vs {r['plain_objective']:.4f} (same: {r['same_objective']}); peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    dims = f" d={r['dim']} (intrinsic {r['intrinsic_dim']})" if "dim" in r else ""
    return (
        f"{r['case']:<9} N={r['n']:,} tasks={r['tasks']:,}{dims} B={r['budget']:,}: select {r['select_s']:.2f} s "
        f"(table build {r['build_s']:.2f} s, once), peak RSS {r['peak_rss_mb']:.0f} MB "
        f"(before selecting {r['rss_before_mb']:.0f} MB) {json.dumps(r['info'], default=str)}"
    )


if __name__ == "__main__":
    sys.exit(main())
