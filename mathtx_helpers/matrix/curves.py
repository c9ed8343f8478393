"""Learning curves of matrix runs (notebooks 02 and 05): when a run first reached an accuracy."""

from __future__ import annotations

import math


def examples_to_reach(metrics: list[dict], spectrum: str, target: float, tol: float = 0.05) -> float:
    """Examples seen at the first evaluation where accuracy on `spectrum` at `tol` reached `target`
    (NaN if never)."""
    for m in metrics:
        if m["acc"][spectrum][f"{tol:g}"] >= target:
            return float(m["examples"])
    return math.nan
