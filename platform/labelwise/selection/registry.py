"""Selectors by name. Adding a selector: write its module, add one line to SELECTORS.

Values are ``module:Class`` strings so that listing names imports nothing heavy.
"""

from __future__ import annotations

import importlib

SELECTORS = {
    "task_diversity": "labelwise.selection.task_diversity:TaskDiversity",
    "weighted_task_diversity": "labelwise.selection.weighted_task_diversity:WeightedTaskDiversity",
    "random": "labelwise.selection.random_pick:RandomSelector",
    "least_confidence": "labelwise.selection.uncertainty:LeastConfidence",
    "mean_entropy": "labelwise.selection.uncertainty:MeanEntropy",
    "mean_margin": "labelwise.selection.uncertainty:MeanMargin",
    "min_margin": "labelwise.selection.uncertainty:MinMargin",
    "kcenter": "labelwise.selection.kcenter:KCenter",
    "facility_location": "labelwise.selection.facility_location:FacilityLocation",
    "dpp": "labelwise.selection.dpp:DPP",
    "activeit": "labelwise.selection.activeit:ActiveIT",
    "thtb": "labelwise.selection.thtb:THTB",
}
NAMES = tuple(SELECTORS)


class SelectorParamError(ValueError):
    """A bad selector parameter; ``param`` names it."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def selector_class(name: str) -> type:
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r} (valid: {', '.join(NAMES)})")
    module, cls = SELECTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_selector(name: str, params: dict | None = None):
    """Build selector ``name`` with ``params``; bad parameters raise SelectorParamError."""
    cls = selector_class(name)
    params = dict(params or {})
    valid = cls.param_names()
    for key in params:
        if key not in valid:
            raise SelectorParamError(
                key, f"unknown parameter of {name} (valid: {', '.join(valid) or 'none'})"
            )
    return cls(**params)
