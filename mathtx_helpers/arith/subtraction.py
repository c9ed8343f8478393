"""n-digit subtraction in the papers' format (ARITHMETIC.md §A1-A3, §B3): answers, borrow classes, enrichment.

    12345-67890=-055545      D - D' = sign, then |D - D'| with n+1 digits, zero-padded
    54321-12345=+041976      a non-negative answer has the sign '+'; zero is '+000000'

The tokens and positions are those of addition (addition.py, with '-' as the operator token); digit arrays hold
column k = the 10^k digit, as there.

Question classes (§A3): **M** (D >= D', sign '+') and **N** (D < D', sign '-'), each numbered by its *borrow
cascade*, read off the column-by-column subtraction D - D' with borrows: 0 if no column borrows, else 1 + the
longest run of consecutive equal-digit columns (Dk = D'k, the subtraction analogue of a sum-9 column) that a
borrow passes through, capped at 4 ("M4+", "N4+"). A negative answer always borrows out of the top column, so
the N classes start at N1. The sub-tasks of §B3 per column: MD = (Dk - D'k) mod 10 (the base difference),
MB = Dk < D'k (borrow one), MZ = Dk = D'k (a borrow passes through).
"""

from __future__ import annotations

import numpy as np

from .vocab import MINUS, PLUS

MAX_CLASS = 4  # M4+ / N4+: a borrow through >= 3 consecutive equal-digit columns
CLASSES = tuple(f"M{k}" for k in range(MAX_CLASS + 1)) + tuple(f"N{k}" for k in range(1, MAX_CLASS + 1))


def class_label(c: str) -> str:
    """'M4' -> 'M4+' (the capped class), others unchanged: how tables name the classes."""
    return c + "+" if c.endswith(str(MAX_CLASS)) else c


def _values(D: np.ndarray) -> np.ndarray:
    """(B,) the operands' integer values (exact in int64 up to 18 digits)."""
    return D @ (10 ** np.arange(D.shape[1], dtype=np.int64))


def answer(D: np.ndarray, Dp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sign token (B,) and the digits of |D - D'| (B, n+1), column k = the 10^k digit."""
    diff = _values(D) - _values(Dp)
    sign = np.where(diff < 0, MINUS, PLUS).astype(np.int64)
    pow10 = 10 ** np.arange(D.shape[1] + 1, dtype=np.int64)
    return sign, (np.abs(diff)[:, None] // pow10) % 10


def borrows_in(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B, n+1) the borrow into column k of D - D' done column by column (column n: the borrow out of the top
    column, 1 exactly when the answer is negative)."""
    B, n = D.shape
    b = np.zeros((B, n + 1), dtype=np.int64)
    for k in range(n):
        b[:, k + 1] = (D[:, k] - Dp[:, k] - b[:, k] < 0).astype(np.int64)
    return b


def cascade_length(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B,) k of the class Mk / Nk: 0 if no column borrows, else 1 + the longest run of consecutive equal-digit
    columns that a borrow passes through (capped at MAX_CLASS)."""
    b = borrows_in(D, Dp)
    through = (D == Dp) & (b[:, :-1] == 1)  # an equal column that receives a borrow (and passes it on)
    run = np.zeros(D.shape[0], dtype=np.int64)
    best = np.zeros(D.shape[0], dtype=np.int64)
    for k in range(D.shape[1]):
        run = np.where(through[:, k], run + 1, 0)
        best = np.maximum(best, run)
    return np.where(b[:, 1:].any(axis=1), np.minimum(1 + best, MAX_CLASS), 0)


def classes(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B,) the class of each question: 'M0' .. 'M4', 'N1' .. 'N4' (the last of each capped: M4+, N4+)."""
    negative = _values(D) < _values(Dp)
    return np.char.add(np.where(negative, "N", "M"), cascade_length(D, Dp).astype(str))


def tri_state(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B, n) the MT tri-state per column: +1 if Dk > D'k, 0 if equal, -1 if less (§B3)."""
    return np.sign(D - Dp).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Questions
# --------------------------------------------------------------------------------------------------


def sample(batch: int, n: int, rng: np.random.Generator, enrich_pairs: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(D, Dp), uniform digits per column; with enrich_pairs > 0 that share of the column pairs is made equal
    (D'k = Dk): the equal-digit runs that make borrow cascades (the Jan-2024 notebook's enrichment)."""
    D = rng.integers(0, 10, size=(batch, n), dtype=np.int64)
    Dp = rng.integers(0, 10, size=(batch, n), dtype=np.int64)
    if enrich_pairs > 0:
        Dp = np.where(rng.random((batch, n)) < enrich_pairs, D, Dp)
    return D, Dp


ZERO_SHARE = 0.01  # of an enriched batch's questions: D' = D, so that the answer +000000 is seen (the library's fix)


def training_batch(batch: int, n: int, rng: np.random.Generator, enrich_batches: float,
                   enrich_pairs: float) -> tuple[np.ndarray, np.ndarray]:
    """A fresh subtraction batch. With probability enrich_batches the batch is enriched (ARITHMETIC.md §A3, the
    Jan-2024 notebook's rule with the library's zero fix): in one enriched batch of three every D' digit below 9
    is incremented (more negative answers), in the others `enrich_pairs` of the column pairs are made equal
    (borrow cascades); in either, 1 % of the questions get D' = D (exact zero answers). Otherwise uniform."""
    if rng.random() >= enrich_batches:
        return sample(batch, n, rng)
    if rng.integers(3) == 0:
        D, Dp = sample(batch, n, rng)
        Dp = np.where(Dp < 9, Dp + 1, Dp)
    else:
        D, Dp = sample(batch, n, rng, enrich_pairs)
    zero = rng.random(batch) < ZERO_SHARE
    return D, np.where(zero[:, None], D, Dp)


def probes(label: str, size: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`size` questions of class `label` exactly ('M0' .. 'M4', 'N1' .. 'N4'; 'M4+' and 'N4+' also accepted): a
    borrow made at a random column and passed on through length - 1 equal-digit columns, the other columns
    random, the operands ordered for the sign (questions that land in another class are redrawn)."""
    label = label.removesuffix("+")
    if label not in CLASSES:
        raise ValueError(f"unknown subtraction class {label!r}; valid: {', '.join(class_label(c) for c in CLASSES)}")
    negative, length = label[0] == "N", int(label[1:])
    if length > n - (0 if negative else 1):  # a positive answer repays the borrow in a higher column
        raise ValueError(f"class {class_label(label)} is impossible with {n} digits")
    Ds, Dps, have, rounds = [], [], 0, 0
    while have < size:
        rounds += 1
        if rounds > 1_000:
            raise RuntimeError(f"could not draw {size} questions of class {class_label(label)} with {n} digits")
        m = 4 * (size - have) + 64
        D = rng.integers(0, 10, size=(m, n))
        if length == 0:  # no column borrows: D'k uniform in 0..Dk
            Dp = np.floor(rng.random((m, n)) * (D + 1)).astype(np.int64)
        else:
            Dp = rng.integers(0, 10, size=(m, n))
            start = rng.integers(0, n - length + 1, size=m)  # the column that makes the borrow
            rows = np.arange(m)
            # a borrow needs Dk < D'k: D'k uniform in Dk+1 .. 9 (rows with Dk = 9 are redrawn below)
            Dp[rows, start] = D[rows, start] + 1 + np.floor(rng.random(m) * (9 - D[rows, start])).astype(np.int64)
            for j in range(1, length):
                Dp[rows, np.minimum(start + j, n - 1)] = D[rows, np.minimum(start + j, n - 1)]
        keep = (classes(D, Dp) == label) & (Dp <= 9).all(axis=1)  # Dk = 9 drew D'k = 10 above: redrawn
        Ds.append(D[keep])
        Dps.append(Dp[keep])
        have += int(keep.sum())
    return np.concatenate(Ds)[:size].astype(np.int64), np.concatenate(Dps)[:size].astype(np.int64)
