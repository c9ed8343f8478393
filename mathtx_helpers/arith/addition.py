"""n-digit addition in the format of Quirke, Neo & Barez (ARITHMETIC.md §A): questions, answers, classes.

    12345+67890=+080235      D (n digits) + D' (n digits) = sign, then n+1 answer digits, all zero-padded
    P0 .. P(n-1)  D(n-1) .. D0          P(n)       the operator
    P(n+1) .. P(2n)  D'(n-1) .. D'0     P(2n+1)    '='
    P(2n+2)  the sign (always '+')      P(2n+3) .. P(3n+3)   A(n) .. A0

One token per character: digits 0-9 are ids 0-9, '+' 10, '-' 11, '=' 12 (the library's ids; '-' is kept for
a mixed add/sub model). Operands are held as digit arrays with column k = the 10^k digit (D[:, 0] is the
units digit D0), the way the papers name them; tokens are written highest digit first.

A decoder predicts the token at p+1 from position p, so answer digit Ak is computed at the token *before* it:
`answer_position(k, n) - 1`.

Question classes (ARITHMETIC.md §A3): S0 no carry anywhere; S1 carries, none lands on a sum-9 column; S2 a carry
passes through one sum-9 column; S3, S4, S5 through 2, 3, >= 4 consecutive sum-9 columns. We call k of Sk the
question's *cascade length*: the number of columns the longest carry chain spans (0 = no carry).
"""

from __future__ import annotations

import numpy as np

from . import subtraction
from .vocab import D_VOCAB, EQUALS, MINUS, PLUS, VOCAB  # noqa: F401  (re-exported: addition.PLUS ...)

MAX_CLASS = 5  # S5 = a carry through >= 4 consecutive sum-9 columns


def n_ctx(n: int) -> int:
    """Tokens in a full question + answer: 3n + 4 (19 for 5 digits)."""
    return 3 * n + 4


def digits_of(length: int) -> int:
    """n from the length of a full token sequence (or a model's context): the inverse of n_ctx."""
    return (length - 4) // 3


def answer_position(k: int, n: int) -> int:
    """Token position of answer digit Ak (A0 = units): the answer digits fill the last n+1 positions."""
    if not 0 <= k <= n:
        raise ValueError(f"answer digit A{k} does not exist for {n}-digit addition; valid: A0..A{n}")
    return 3 * n + 3 - k


def position_names(n: int) -> list[str]:
    """What each token position holds: D4..D0, '+', D'4..D'0, '=', sign, A5..A0 (for n = 5)."""
    return ([f"D{k}" for k in range(n - 1, -1, -1)] + ["+"] + [f"D'{k}" for k in range(n - 1, -1, -1)] + ["=", "sign"]
            + [f"A{k}" for k in range(n, -1, -1)])


def digit_position(k: int, n: int, second: bool = False) -> int:
    """Token position of Dk (or D'k with second=True)."""
    return (2 * n - k) if second else (n - 1 - k)


# --------------------------------------------------------------------------------------------------
# Questions
# --------------------------------------------------------------------------------------------------


def sample(batch: int, n: int, rng: np.random.Generator, enrich_pairs: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(D, Dp), each (B, n) digits, uniform per column; with enrich_pairs > 0, that share of the column pairs
    is rewritten so the pair sums to 9 (D'k = 9 - Dk): the sum-9 runs that make carry cascades (§A3)."""
    D = rng.integers(0, 10, size=(batch, n), dtype=np.int64)
    Dp = rng.integers(0, 10, size=(batch, n), dtype=np.int64)
    if enrich_pairs > 0:
        nine = rng.random((batch, n)) < enrich_pairs
        Dp = np.where(nine, 9 - D, Dp)
    return D, Dp


def training_batch(batch: int, n: int, rng: np.random.Generator, enrich_batches: float,
                   enrich_pairs: float) -> tuple[np.ndarray, np.ndarray]:
    """A fresh training batch: with probability enrich_batches the whole batch is enriched (the Jan-2024
    notebook's rule: 60 % of batches, 40 % of pairs), otherwise uniform."""
    enriched = rng.random() < enrich_batches
    return sample(batch, n, rng, enrich_pairs if enriched else 0.0)


def answer_digits(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B, n+1) digits of D + D', column k = the 10^k digit (a plain ripple-carry adder)."""
    B, n = D.shape
    A = np.zeros((B, n + 1), dtype=np.int64)
    carry = np.zeros(B, dtype=np.int64)
    for k in range(n):
        s = D[:, k] + Dp[:, k] + carry
        A[:, k], carry = s % 10, s // 10
    A[:, n] = carry
    return A


def carries_in(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B, n+1) the carry into column k (column n = the carry out of the whole sum)."""
    B, n = D.shape
    c = np.zeros((B, n + 1), dtype=np.int64)
    for k in range(n):
        c[:, k + 1] = (D[:, k] + Dp[:, k] + c[:, k]) // 10
    return c


def cascade_length(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B,) the question class Sk as k: 0 if nothing carries, else 1 + the longest run of consecutive
    sum-9 columns that a carry passes through (capped at 5)."""
    s = D + Dp
    c = carries_in(D, Dp)
    through = (s == 9) & (c[:, :-1] == 1)  # a sum-9 column that receives a carry (and passes it on)
    run = np.zeros(D.shape[0], dtype=np.int64)
    best = np.zeros(D.shape[0], dtype=np.int64)
    for k in range(D.shape[1]):
        run = np.where(through[:, k], run + 1, 0)
        best = np.maximum(best, run)
    any_carry = c[:, 1:].any(axis=1)
    return np.where(any_carry, np.minimum(1 + best, MAX_CLASS), 0)


def tri_state(D: np.ndarray, Dp: np.ndarray) -> np.ndarray:
    """(B, n) the ST tri-state per column: 0 if the pair sums to <= 8 (never carries), 1 if = 9 (carries only if
    a carry comes in), 2 if >= 10 (always carries)."""
    s = D + Dp
    return np.where(s <= 8, 0, np.where(s == 9, 1, 2))


def probes(length: int, size: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`size` questions of class S`length` exactly: a carry made at a random column, passed on through
    length - 1 sum-9 columns, the other columns random (questions that land in another class are redrawn)."""
    if not 0 <= length <= min(MAX_CLASS, n):
        raise ValueError(f"cascade length {length} is impossible with {n} digits; valid: 0..{min(MAX_CLASS, n)}")
    Ds, Dps, have = [], [], 0
    while have < size:
        m = 2 * (size - have) + 64
        D = rng.integers(0, 10, size=(m, n))
        if length == 0:  # no column carries: D'k uniform in 0..9 - Dk
            Dp = np.floor(rng.random((m, n)) * (10 - D)).astype(np.int64)
        else:
            Dp = rng.integers(0, 10, size=(m, n))
            start = rng.integers(0, n - length + 1, size=m)  # the column that makes the carry
            rows = np.arange(m)
            Dp[rows, start] = 10 + np.floor(rng.random(m) * D[rows, start]).astype(np.int64) - D[rows, start]
            make = D[rows, start] > 0  # a carry needs Dk >= 1 (D'k = 10 - Dk .. 9)
            for j in range(1, length):
                Dp[rows, start + j] = 9 - D[rows, start + j]
            keep = make & (cascade_length(D, Dp) == length)
            D, Dp = D[keep], Dp[keep]
        if length == 0:
            keep = cascade_length(D, Dp) == 0
            D, Dp = D[keep], Dp[keep]
        Ds.append(D)
        Dps.append(Dp)
        have += len(D)
    return np.concatenate(Ds)[:size].astype(np.int64), np.concatenate(Dps)[:size].astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------


OPERATIONS = {"add": PLUS, "sub": MINUS}  # the operator token of each operation


def answer(D: np.ndarray, Dp: np.ndarray, op: int = PLUS) -> tuple[np.ndarray, np.ndarray]:
    """The answer's sign token (B,) and digits (B, n+1), column k = the 10^k digit, for op PLUS or MINUS."""
    if op == PLUS:
        return np.full(len(D), PLUS, dtype=np.int64), answer_digits(D, Dp)
    if op == MINUS:
        return subtraction.answer(D, Dp)
    raise ValueError(f"unknown operator token {op}; valid: {PLUS} ('+'), {MINUS} ('-')")


def tokens(D: np.ndarray, Dp: np.ndarray, op: int = PLUS) -> np.ndarray:
    """(B, 3n+4) token ids of the full questions D op D' with their answers (op: PLUS or MINUS)."""
    B, n = D.shape
    sign, A = answer(D, Dp, op)
    out = np.empty((B, n_ctx(n)), dtype=np.int64)
    out[:, :n] = D[:, ::-1]
    out[:, n] = op
    out[:, n + 1:2 * n + 1] = Dp[:, ::-1]
    out[:, 2 * n + 1] = EQUALS
    out[:, 2 * n + 2] = sign
    out[:, 2 * n + 3:] = A[:, ::-1]
    return out


def answer_slice(n: int) -> slice:
    """Logit positions that predict the n+2 answer tokens (sign and digits): 2n+1 .. 3n+2."""
    return slice(2 * n + 1, 3 * n + 3)


def text(tok: np.ndarray) -> str:
    """One question as the papers write it: '12345+67890=+080235'."""
    return "".join(VOCAB[int(t)] for t in tok)


def parse(question: str, ops: str = "+") -> tuple[np.ndarray, np.ndarray]:
    """'12345+67890' (or with '=...') -> (D, Dp) of shape (1, n); raises ValueError on anything else.
    ops: the operators accepted ('+-' also reads '12345-67890'; parse_op says which one it was)."""
    return parse_op(question, ops)[:2]


def parse_op(question: str, ops: str = "+-") -> tuple[np.ndarray, np.ndarray, int]:
    """'12345-67890' -> (D, Dp, MINUS): the operands and the operator token."""
    q = question.split("=")[0]
    found = [o for o in ops if q.count(o) == 1]
    if len(found) != 1 or sum(q.count(o) for o in "+-") != 1:
        expected = " or ".join(f"'12345{o}67890'" for o in ops)
        raise ValueError(f"not a question: {question!r} (expected like {expected})")
    op = found[0]
    a, b = q.split(op)
    if len(a) != len(b) or not (a + b).isdigit():
        raise ValueError(f"operands must be zero-padded digit strings of equal length: {question!r}")
    return (np.array([[int(c) for c in reversed(a)]], dtype=np.int64),
            np.array([[int(c) for c in reversed(b)]], dtype=np.int64), PLUS if op == "+" else MINUS)
