"""The learning-rate shape both tracks use after their warm-up: cosine from the peak down to a floor."""

from __future__ import annotations

import math


def cosine(step: int, start: int, total: int, lr: float, floor: float = 0.0) -> float:
    """The rate at `step` of a cosine that starts at `lr` at step `start` and reaches `floor` at `total`
    (and stays there)."""
    progress = min(1.0, (step - start) / max(1, total - start))
    return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * progress))
