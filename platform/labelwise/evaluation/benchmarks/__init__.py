"""Benchmarks by name. Adding a benchmark: write its module here, add one row to BENCHMARKS.

A benchmark module has

* ``protocol(ctx) -> dict``: what its numbers depend on (settings, a digest of the data it
  reads), recorded beside them and digested into the stage's manifest and the eval cache;
* ``run(ctx, label) -> dict``: its metrics, from requests to ``ctx``
  (:class:`labelwise.evaluation.context.Context`);

and may have

* ``inputs(ctx) -> dict``: files beside the model whose change reruns the evaluate stage
  (names to paths; a hub name instead of a path is left to the protocol);
* ``outputs(ctx, label) -> dict``: files its run writes for the run folder (the name there ->
  where the run left it), committed with metrics_<label>.json.

Rows name the module as a string (listing names imports nothing) and the metrics that
``labelwise evaluate`` prints.
"""

from __future__ import annotations

import importlib

BENCHMARKS = {  # name: (module, headline metrics)
    "heldout": ("labelwise.evaluation.benchmarks.heldout", ("nll_macro", "em_macro")),
    "mmlu": ("labelwise.evaluation.benchmarks.mmlu", ("acc", "n")),
    "bbh": ("labelwise.evaluation.benchmarks.bbh", ("em", "n")),
    "winrate": ("labelwise.evaluation.benchmarks.winrate", ("win_rate", "lc_win_rate")),
}
NAMES = tuple(BENCHMARKS)
HEADLINE = {name: headline for name, (_, headline) in BENCHMARKS.items()}


def benchmark(name: str):
    """The module of benchmark ``name``."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r} (known: {', '.join(NAMES)})")
    return importlib.import_module(BENCHMARKS[name][0])


def inputs(ctx, names) -> dict:
    """The files the benchmarks ``names`` read beside the model, in table order."""
    found = {}
    for name in BENCHMARKS:
        module = benchmark(name) if name in names else None
        found.update(module.inputs(ctx) if hasattr(module, "inputs") else {})
    return found


def outputs(ctx, name: str, label: str) -> dict:
    """The run-folder files benchmark ``name`` writes (name -> where its run left the file)."""
    module = benchmark(name)
    return module.outputs(ctx, label) if hasattr(module, "outputs") else {}
