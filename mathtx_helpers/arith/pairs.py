"""Interchange-intervention pairs (ARITHMETIC.md §C2.8): a *clean* and a *store* question that differ exactly in the
feature one sub-task hypothesis names, and the answer token the hypothesis predicts when the node computing that
feature in the clean run is given the store run's value. Pure arithmetic on digit arrays; circuits.py runs them.

Addition (§B2): SA (base add of column k), SC (carry from column k-1), ST (tri-state of column k-1: a carry passes
through a sum-9 column). Subtraction, on questions with D >= D' (class M, sign '+') (§B3): MD (base difference of
column k), MB (borrow from column k-1), MT (tri-state of column k-1: a borrow passes through an equal-digit column),
and SGN, the sign decision made at `=`: the store question has the other sign.

A hypothesis is about one answer token, predicted at the token before it: digit Ak, or for SGN the sign (k = n+1
by convention, predicted at `=`).
"""

from __future__ import annotations

import numpy as np

from . import addition, subtraction
from .vocab import MINUS, PLUS

ADD_KINDS = ("SA", "SC", "ST")
SUB_KINDS = ("MD", "MB", "MT", "SGN")
KINDS = ADD_KINDS + SUB_KINDS


def operator(kind: str) -> int:
    """The operator token of a hypothesis' questions: PLUS for SA/SC/ST, MINUS for MD/MB/MT/SGN."""
    _check(kind)
    return PLUS if kind in ADD_KINDS else MINUS


def digits_tested(kind: str, n: int) -> range:
    """The answer digits k a hypothesis is about: SA for A0..A(n-1), SC for A1..An, ST for A2..An; MD for A0..A(n-1),
    MB for A1..A(n-1), MT for A2..A(n-1) (with D >= D' no borrow leaves the top column: An is always 0); SGN: the
    sign alone (k = n+1)."""
    _check(kind)
    if kind == "SGN":
        return range(n + 1, n + 2)
    first = {"SA": 0, "SC": 1, "ST": 2, "MD": 0, "MB": 1, "MT": 2}[kind]
    return range(first, n if kind in ("SA", "MD", "MB", "MT") else n + 1)


def label(kind: str, k: int) -> str:
    """'A3.SC'; the sign hypothesis is 'sign.SGN'."""
    return "sign.SGN" if kind == "SGN" else f"A{k}.{kind}"


def predicted_at(kind: str, k: int, n: int) -> int:
    """The token position that predicts the hypothesis' answer token: the token before Ak, or `=` for the sign."""
    return 2 * n + 1 if kind == "SGN" else addition.answer_position(k, n) - 1


def answer_column(kind: str, k: int, n: int) -> int:
    """Its column in the (sign, A(n) .. A0) answer-token order."""
    return 0 if kind == "SGN" else 1 + (n - k)


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown hypothesis {kind!r}; valid: {', '.join(KINDS)}")


def intervention_pairs(kind: str, k: int, size: int, n: int, rng: np.random.Generator):
    """Clean and store questions (each (D, Dp)) that differ only where hypothesis `kind` for answer token k says,
    and the token the hypothesis predicts there after patching (B,): a digit, or for SGN a sign token.

    SA  column k differs, its base add (Dk + D'k) mod 10 changes, the carry into column k is the same
        -> Ak becomes the store question's Ak.
    SC  only column k-1 differs; no carry comes into it; the clean column sums to <= 8, the store one to >= 10
        (or the reverse) -> Ak moves by the carry: clean Ak +1 (or -1) mod 10. Column k never sums to 9, so the
        carry stops there and no higher digit changes.
    ST  only column k-1 differs; a carry comes into it from column k-2 (which sums to >= 10, no carry below);
        the clean column sums to <= 7, the store one to 9 (or the reverse), so it passes the carry on only in the
        store question -> Ak moves by 1.
    MD, MB, MT, SGN: see sub_pairs.
    """
    _check(kind)
    tested = digits_tested(kind, n)
    if k not in tested:
        raise ValueError(f"{kind} is tested for {label(kind, tested[0])}..{label(kind, tested[-1])} of {n}-digit "
                         f"questions, not {label(kind, k)}")
    if kind in SUB_KINDS:
        return sub_pairs(kind, k, size, n, rng)
    D, Dp = addition.sample(size, n, rng)
    flip = rng.random(size) < 0.5  # which of the two questions plays 'clean'
    if kind == "SA":  # the store question's column k: another base add, the same lower columns
        D2, Dp2 = D.copy(), Dp.copy()
        base = (D[:, k] + Dp[:, k] + rng.integers(1, 10, size)) % 10
        D2[:, k] = rng.integers(0, 10, size)
        Dp2[:, k] = (base - D2[:, k]) % 10
    else:
        c = k - 1  # the column whose carry is swapped
        for j in range(c - 1 if kind == "ST" else c):  # no carries below it (ST: below column k-2)
            D[:, j], Dp[:, j] = pair_below(9, size, rng)
        if kind == "ST":  # column k-2 makes the carry
            D[:, c - 1], Dp[:, c - 1] = pair_at_least_10(size, rng)
        D2, Dp2 = D.copy(), Dp.copy()
        if kind == "SC":  # low: sum <= 8, high: sum >= 10
            D[:, c], Dp[:, c] = pair_below(9, size, rng)
            D2[:, c], Dp2[:, c] = pair_at_least_10(size, rng)
        else:  # low: sum <= 7 (no carry even with the incoming one), high: sum = 9 (passes it on)
            D[:, c], Dp[:, c] = pair_below(8, size, rng)
            D2[:, c] = rng.integers(0, 10, size)
            Dp2[:, c] = 9 - D2[:, c]
        if k < n:  # column k must not sum to 9, so the changed carry stops there: only Ak differs above k-1
            nine = D[:, k] + Dp[:, k] == 9
            Dp[nine, k] = (Dp[nine, k] + rng.integers(1, 10, int(nine.sum()))) % 10
            D2[:, k], Dp2[:, k] = D[:, k], Dp[:, k]
    clean = (np.where(flip[:, None], D2, D), np.where(flip[:, None], Dp2, Dp))
    store = (np.where(flip[:, None], D, D2), np.where(flip[:, None], Dp, Dp2))
    A_clean, A_store = addition.answer_digits(*clean), addition.answer_digits(*store)
    if kind == "SA":
        expected = A_store[:, k]
    else:  # the carry into column k is the store question's, the rest of column k is the clean question's
        carry_c, carry_s = addition.carries_in(*clean)[:, k], addition.carries_in(*store)[:, k]
        expected = (A_clean[:, k] + carry_s - carry_c) % 10
    return clean, store, expected


def sub_pairs(kind: str, k: int, size: int, n: int, rng: np.random.Generator):
    """The subtraction pairs, both questions with D >= D' (the top column has D > D'), except for SGN:

    MD  column k differs, its base difference (Dk - D'k) mod 10 changes, the borrow into column k is the same
        (for the top column both keep D > D') -> Ak becomes the store question's Ak.
    MB  only column k-1 differs; no borrow comes into it; the clean column has D >= D' (no borrow), the store
        one D < D' (or the reverse) -> Ak moves by the borrow: clean Ak -1 (or +1) mod 10. Column k never has
        equal digits, so the borrow stops there.
    MT  only column k-1 differs; a borrow comes into it from column k-2 (D < D' there, no borrow below); the clean
        column has D > D' (it absorbs the borrow), the store one D = D' (it passes the borrow on), or the
        reverse -> Ak moves by 1.
    SGN only the top column differs: D > D' in one question, D < D' in the other -> the sign becomes the store
        question's (the digits then differ too; the test asks that they stay the clean question's).
    """
    D, Dp = subtraction.sample(size, n, rng)
    D[:, n - 1], Dp[:, n - 1] = pair_greater(size, rng)  # D > D' for every question
    flip = rng.random(size) < 0.5
    D2, Dp2 = D.copy(), Dp.copy()
    if kind == "SGN":
        Dp2[:, n - 1], D2[:, n - 1] = pair_greater(size, rng)  # the store question: D < D' at the top
    elif kind == "MD":
        if k == n - 1:  # the top column: another positive difference, so that D > D' stays
            old = D[:, k] - Dp[:, k]
            diff = 1 + (old - 1 + rng.integers(1, 9, size)) % 9  # 1..9, never the clean one
            Dp2[:, k] = np.floor(rng.random(size) * (10 - diff)).astype(np.int64)
            D2[:, k] = Dp2[:, k] + diff
        else:
            base = (D[:, k] - Dp[:, k] + rng.integers(1, 10, size)) % 10
            D2[:, k] = rng.integers(0, 10, size)
            Dp2[:, k] = (D2[:, k] - base) % 10
    else:
        c = k - 1  # the column whose borrow is swapped
        for j in range(c - 1 if kind == "MT" else c):  # no borrows below it (MT: below column k-2)
            D[:, j], Dp[:, j] = pair_not_less(size, rng)
        if kind == "MT":  # column k-2 makes the borrow
            Dp[:, c - 1], D[:, c - 1] = pair_greater(size, rng)
        if kind == "MB":  # clean: D >= D' (no borrow), store: D < D' (borrows)
            D[:, c], Dp[:, c] = pair_not_less(size, rng)
            Dp2[:, c], D2[:, c] = pair_greater(size, rng)
        else:  # clean: D > D' (absorbs the incoming borrow), store: D = D' (passes it on)
            D[:, c], Dp[:, c] = pair_greater(size, rng)
            D2[:, c] = rng.integers(0, 10, size)
            Dp2[:, c] = D2[:, c]
        for j in range(c):  # the columns below are the same in both questions
            D2[:, j], Dp2[:, j] = D[:, j], Dp[:, j]
        same = D[:, k] == Dp[:, k]  # column k must not pass a borrow on: only Ak differs above column k-1
        Dp[same, k] = (Dp[same, k] + rng.integers(1, 10, int(same.sum()))) % 10
        D2[:, k], Dp2[:, k] = D[:, k], Dp[:, k]
    clean = (np.where(flip[:, None], D2, D), np.where(flip[:, None], Dp2, Dp))
    store = (np.where(flip[:, None], D, D2), np.where(flip[:, None], Dp, Dp2))
    (_, A_clean), (sign_s, A_store) = subtraction.answer(*clean), subtraction.answer(*store)
    if kind == "SGN":
        return clean, store, sign_s
    if kind == "MD":
        return clean, store, A_store[:, k]
    borrow_c, borrow_s = subtraction.borrows_in(*clean)[:, k], subtraction.borrows_in(*store)[:, k]
    return clean, store, (A_clean[:, k] - borrow_s + borrow_c) % 10


def pair_below(limit: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digit pairs with D + D' < limit (limit <= 10)."""
    D = rng.integers(0, limit, size)
    return D, np.floor(rng.random(size) * (limit - D)).astype(np.int64)


def pair_at_least_10(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digit pairs with D + D' >= 10 (a carry)."""
    D = rng.integers(1, 10, size)
    return D, 10 - D + np.floor(rng.random(size) * D).astype(np.int64)


def pair_greater(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digit pairs with D > D' (swapped: a borrow)."""
    D = rng.integers(1, 10, size)
    return D, np.floor(rng.random(size) * D).astype(np.int64)


def pair_not_less(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digit pairs with D >= D' (no borrow without an incoming one)."""
    D = rng.integers(0, 10, size)
    return D, np.floor(rng.random(size) * (D + 1)).astype(np.int64)
