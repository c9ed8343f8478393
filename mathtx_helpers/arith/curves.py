"""Learning curves of the arithmetic runs, per evaluation set (and so per operation), from metrics.jsonl.

Every `eval_every` steps a run scores its fixed evaluation sets (train.eval_sets): "uniform" and "enriched" for an
addition model, "add uniform" ... "sub enriched" for a model that subtracts. Notebook 08 reads which operation a
mixed model learns first, and how many steps the ins1 route saves, from these curves.
"""

from __future__ import annotations

import math

import pandas as pd


def accuracy_curves(metrics: list[dict]) -> pd.DataFrame:
    """One row per (evaluation, set): step, questions seen, set, accuracy (%)."""
    rows = [{"step": m["step"], "questions": m["questions"], "set": name, "accuracy %": 100 * acc}
            for m in metrics if "acc" in m for name, acc in m["acc"].items()]
    if not rows:
        raise ValueError("no evaluation in these metrics: the run has not reached its first eval_every step")
    return pd.DataFrame(rows)


def steps_to(curves: pd.DataFrame, name: str, target: float) -> float:
    """The first evaluated step at which set `name` reached `target` % (NaN if it never did)."""
    if name not in set(curves["set"]):
        raise ValueError(f"no evaluation set {name!r}; sets: {', '.join(dict.fromkeys(curves['set']))}")
    hit = curves[(curves["set"] == name) & (curves["accuracy %"] >= target)]
    return float(hit["step"].min()) if len(hit) else math.nan


def steps_to_every(curves: pd.DataFrame, names: list[str], target: float) -> float:
    """The first evaluated step by which every set of `names` had reached `target` % (each at its own first
    step): NaN if one of them never did, whatever the order of the sets."""
    steps = [steps_to(curves, name, target) for name in names]
    return math.nan if any(math.isnan(s) for s in steps) else max(steps)
