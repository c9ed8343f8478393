"""Number encodings of LAWT (P10, P1000, B1999, FP15), matrix framing, and the vocabulary.

Every encoding keeps three significant digits: x is written as +-m * 10^k with an integer mantissa
m in [100, 999], so the relative rounding error is at most 0.5% (PAPER.md §C.2).

    P10    5 tokens  sign, three base-10 digits, exponent        3.14 -> + 3 1 4 E-2
    P1000  3 tokens  sign, one base-1000 digit, exponent         3.14 -> + 314 E-2
    B1999  2 tokens  signed mantissa, exponent                   3.14 -> N314 E-2
    FP15   1 token   mantissa and exponent in one word           3.14 -> N314e7   (value m * 10^(j-9))

Exact zero is "+ 0 E0" in P10 (3 tokens) and P1000, "N0 E0" in B1999 and "N0e0" in FP15. FP15 covers
|x| < 1e-7 with 199 small-value words N-99e0 ... N99e0 (absolute step 1e-9) and has two overflow words
NaN / -NaN (decoded as +-1e9, never produced by `encode`, which refuses values out of range).

A matrix with r rows and c columns is framed as  <s> V{r} V{c} x_11 x_12 ... x_rc </s>  (row-major),
padded with <pad>. Symmetric inputs may send only their upper triangle (n(n+1)/2 numbers, row-major).
The original code used <s> at both ends and </s> as padding; we use the three words for what their names
say. The word list, and therefore the vocabulary size, is the original's (PAPER.md §C.3).

Everything is vectorised over numpy arrays. `decode` never raises: a malformed sequence gives None
(or NaN and valid=False in the batch form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

ENCODINGS = ("P10", "P1000", "B1999", "FP15")

SPECIAL_WORDS = ("<s>", "</s>", "<pad>", "(", ")", *(f"<SPECIAL_{i}>" for i in range(10)), *"TADMEFI")
COMMON_SYMBOLS = ("+", "-", "10^", ".", "|")
MAX_DIM = 100
DIM_WORDS = tuple(f"V{i}" for i in range(1, MAX_DIM + 1))
EXP_MIN, EXP_MAX = -100, 100  # exponent words E-100 ... E100 (P10, P1000, B1999)
EXP_WORDS = tuple(f"E{k}" for k in range(EXP_MIN, EXP_MAX + 1))
FP15_J = 16  # FP15 exponent digit j in 0..15: value = m * 10^(j - 9)

TOKENS_PER_NUMBER = {"P10": 5, "P1000": 3, "B1999": 2, "FP15": 1}
MAX_RELATIVE_ERROR = 0.005  # three significant digits (FP15 small values: absolute 5e-10 instead)
TINY = 1e-300  # far below every encoding's resolution (and above subnormals): treated as exact zero


def check_encoding(name: str) -> str:
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; valid encodings: {', '.join(ENCODINGS)}")
    return name


# --------------------------------------------------------------------------------------------------
# Rounding to three significant digits: (sign, mantissa, exponent) with value = sign * m * 10^k
# --------------------------------------------------------------------------------------------------

_POW10 = np.array([float(10**i) for i in range(309)])  # exact up to 1e22, correctly rounded beyond


def _times_pow10(m, k) -> np.ndarray:
    """m * 10^k for integer-valued m and k, computed the same way by quantize and every decoder.

    One correctly rounded operation on m and 10^|k| (np.power(10.0, -5.0) is one ulp off 1e-5, so
    m * np.power(10.0, k) and m * 10.0 ** k need not agree).
    """
    m = np.asarray(m, dtype=np.float64)
    k = np.asarray(k).astype(np.int64)
    p = _POW10[np.minimum(np.abs(k), _POW10.size - 1)]
    with np.errstate(over="ignore", under="ignore"):  # only for garbage that the caller discards
        return np.where(k >= 0, m * p, m / p)


# Largest magnitude that still rounds into range: FP15 up to 999e6, the others up to 999e100.
_LIMIT = {"FP15": 999.5e6, "P10": 999.5e100, "P1000": 999.5e100, "B1999": 999.5e100}


_POW10_SIGNED = _times_pow10(1.0, np.arange(-330, 310))  # 10^e for e in [-330, 309], e + 330 indexes it


def _pow10(e: np.ndarray) -> np.ndarray:
    """10^e for integer arrays (a table look-up; used to find exponents, values use _times_pow10)."""
    return _POW10_SIGNED[np.clip(e, -330, 309) + 330]


def _decompose(x: np.ndarray, name: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x -> (negative, m, k) with |x| ~= m * 10^k, m in [100, 999], or m = k = 0 for x == 0.

    m is rint(|x| / 10^(e-2)): at exact decimal ties (5.605 is stored as 5.60499...) this can pick the
    other neighbour than a correctly rounded printf('%.2e'); both are within the 0.5% bound.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot encode a non-finite value (nan or inf)")
    ax = np.abs(x)
    nz = ax > TINY
    safe = np.where(nz, ax, 1.0)
    e = np.floor(np.log10(safe)).astype(np.int64)
    # log10 can be off by one next to powers of ten: fix it with exact comparisons
    e -= safe < _pow10(e)
    e += safe >= _pow10(e + 1)
    m = np.rint(safe / _pow10(e - 2)).astype(np.int64)
    carry = m >= 1000  # 9.996 -> 10.0
    m[carry] = 100
    e += carry
    m[~nz] = 0
    k = np.where(nz, e - 2, 0)
    return (x < 0) & nz, m, k


def _check_range(x: np.ndarray, name: str) -> None:
    bad = ~in_range(x, name)
    if np.any(bad):
        worst = np.asarray(x, dtype=np.float64)[bad].flat[0]
        raise ValueError(f"value {worst:.6g} is out of range for encoding {name} "
                         f"(finite values with |x| < {_LIMIT[name]:.4g})")


def in_range(x: np.ndarray, name: str) -> np.ndarray:
    """Boolean mask: which values the encoding can represent (finite and not rounding past its largest)."""
    check_encoding(name)
    ax = np.abs(np.asarray(x, dtype=np.float64))
    return ax < _LIMIT[name]  # False for nan and inf too


def _fp15_small(x: np.ndarray) -> np.ndarray:
    """FP15 words for |x| < 1e-7: integer multiples of 1e-9 in -99..99 (100 becomes the normal 1e-7)."""
    return np.rint(np.asarray(x, dtype=np.float64) * 1e9).astype(np.int64)


def quantize(x: np.ndarray, name: str) -> np.ndarray:
    """The value each number takes after encoding and decoding (no tokens built)."""
    check_encoding(name)
    x = np.asarray(x, dtype=np.float64)
    _check_range(x, name)
    neg, m, k = _decompose(x, name)
    if name != "FP15":
        under = (m > 0) & (k < EXP_MIN)  # below 1e-98: flushes to zero
        m, k = np.where(under, 0, m), np.where(under, 0, k)
        return np.where(neg, -1.0, 1.0) * _times_pow10(m, k)
    out = np.where(neg, -1.0, 1.0) * _times_pow10(m, k)
    small = (m == 0) | (k < -9)  # below 1e-7: absolute grid of 1e-9
    if small.any():
        q = _times_pow10(_fp15_small(x[small]), -9)
        out[small] = np.where(np.abs(q) >= 1e-7, np.sign(q) * 1e-7, q)
    return out


# --------------------------------------------------------------------------------------------------
# Per-encoding word lists and local token ids
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberEncoding:
    """One encoding's own words (in a fixed local order) and its vectorised number -> local-id map."""

    name: str
    words: tuple[str, ...] = field(repr=False)

    @property
    def width(self) -> int:
        return TOKENS_PER_NUMBER[self.name]

    def local_ids(self, x: np.ndarray) -> np.ndarray:
        """(N,) floats -> (N, width) local word ids; -1 marks an unused slot (P10's zero has 3 tokens)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        _check_range(x, self.name)
        neg, m, k = _decompose(x, self.name)
        out = np.full((x.size, self.width), -1, dtype=np.int64)
        if self.name == "FP15":
            j = np.clip(k + 9, 0, FP15_J - 1)  # m * 10^k = m * 10^(j - 9)
            out[:, 0] = (neg.astype(np.int64) * 900 + (m - 100)) * FP15_J + j
            small = (m == 0) | (k < -9)  # |x| < 1e-7: the absolute 1e-9 grid
            if small.any():
                s = np.clip(_fp15_small(x[small]), -100, 100)
                # s = +-100 is the normal word for +-1e-7 (m = 100, j = 0)
                out[small, 0] = np.where(np.abs(s) >= 100, (s < 0) * 900 * FP15_J, 2 * 900 * FP15_J + s + 99)
            return out
        under = (m > 0) & (k < EXP_MIN)  # flush to zero
        m = np.where(under, 0, m)
        k = np.where(under, 0, k)
        neg = neg & ~under
        sign = neg.astype(np.int64)  # local 0 '+', 1 '-'
        exp = k - EXP_MIN
        if self.name == "P1000":
            out[:, 0], out[:, 1], out[:, 2] = sign, 2 + m, 2 + 1000 + exp
        elif self.name == "B1999":
            sm = np.where(neg, -m, m)
            out[:, 0], out[:, 1] = sm + 1000, 2001 + exp
        else:  # P10
            zero = m == 0
            d1, d2, d3 = m // 100, (m // 10) % 10, m % 10
            out[:, 0] = sign
            out[:, 1] = 2 + np.where(zero, 0, d1)
            out[:, 2] = np.where(zero, -1, 2 + d2)
            out[:, 3] = np.where(zero, -1, 2 + d3)
            out[:, 4] = 12 + exp
        return out


@cache
def number_encoding(name: str) -> NumberEncoding:
    check_encoding(name)
    if name == "P10":
        words = ("+", "-", *(str(d) for d in range(10)), *EXP_WORDS)
    elif name == "P1000":
        words = ("+", "-", *(str(d) for d in range(1000)), *EXP_WORDS)
    elif name == "B1999":
        words = (*(f"N{m}" for m in range(-1000, 1001)), *EXP_WORDS)
    else:  # FP15: 2 signs x 900 mantissas x 16 exponents, 199 small values, 2 overflow words
        normal = [f"N{s * m}e{j}" for s in (1, -1) for m in range(100, 1000) for j in range(FP15_J)]
        words = (*normal, *(f"N{m}e0" for m in range(-99, 100)), "NaN", "-NaN")
    return NumberEncoding(name, words)


# --------------------------------------------------------------------------------------------------
# The vocabulary of an (input encoding, output encoding) pair
# --------------------------------------------------------------------------------------------------

# token kinds in the decoding tables
_NONE, _SIGN, _DIGIT, _MANT, _SMANT, _EXP, _FLOAT = range(7)


class Vocabulary:
    """Words: the 22 special words, 5 common symbols, then the sorted union of both encoders' words.

    Build it with `vocabulary(input_encoding, output_encoding)`, which caches one per pair.
    """

    def __init__(self, input_encoding: str, output_encoding: str):
        self.input_encoding = check_encoding(input_encoding)
        self.output_encoding = check_encoding(output_encoding)
        fixed = (*SPECIAL_WORDS, *COMMON_SYMBOLS)
        union = set(DIM_WORDS) | set(number_encoding(input_encoding).words)
        union |= set(number_encoding(output_encoding).words)
        self.words: tuple[str, ...] = (*fixed, *sorted(union - set(fixed)))
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        self.bos, self.eos, self.pad = self.index["<s>"], self.index["</s>"], self.index["<pad>"]
        self._global: dict[str, np.ndarray] = {}
        self._kinds: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __repr__(self) -> str:
        return f"Vocabulary({self.input_encoding} -> {self.output_encoding}, {self.size} words)"

    @property
    def size(self) -> int:
        return len(self.words)

    def dim(self, r: int) -> int:
        if not 1 <= r <= MAX_DIM:
            raise ValueError(f"matrix dimension {r} outside 1..{MAX_DIM}")
        return self.index[f"V{r}"]

    def _to_global(self, name: str) -> np.ndarray:
        """Local word id of encoding `name` -> id in this vocabulary."""
        if name not in self._global:
            if name not in (self.input_encoding, self.output_encoding):
                raise ValueError(f"encoding {name!r} is not part of {self!r}")
            self._global[name] = np.array([self.index[w] for w in number_encoding(name).words])
        return self._global[name]

    def _tables(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Per global id: its kind in encoding `name` and its numeric value (digit, mantissa, exponent...)."""
        if name in self._kinds:
            return self._kinds[name]
        kind = np.full(self.size, _NONE, dtype=np.int8)
        value = np.zeros(self.size, dtype=np.float64)
        for w, g in zip(number_encoding(name).words, self._to_global(name), strict=True):
            if w in ("+", "-"):
                kind[g], value[g] = _SIGN, (1.0 if w == "+" else -1.0)
            elif w.startswith("E"):
                kind[g], value[g] = _EXP, float(w[1:])
            elif name == "P10":
                kind[g], value[g] = _DIGIT, float(w)
            elif name == "P1000":
                kind[g], value[g] = _MANT, float(w)
            elif name == "B1999":
                kind[g], value[g] = _SMANT, float(w[1:])
            elif w in ("NaN", "-NaN"):
                kind[g], value[g] = _FLOAT, (1e9 if w == "NaN" else -1e9)
            else:  # FP15 'N{m}e{j}'
                m, j = w[1:].split("e")
                kind[g], value[g] = _FLOAT, float(_times_pow10(int(m), int(j) - 9))
        self._kinds[name] = (kind, value)
        return kind, value

    # ---------------------------------------------------------------- encoding

    def encode(self, X: np.ndarray, encoding: str, upper: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, r, c) matrices -> ids (B, L) framed <s> V{r} V{c} numbers </s> <pad>..., and lengths (B,).

        upper=True sends only the upper triangle (row-major) of square symmetric matrices.
        """
        check_encoding(encoding)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 3:
            raise ValueError(f"expected a batch of matrices of shape (B, r, c), got shape {X.shape}")
        B, r, c = X.shape
        nums = X[:, *np.triu_indices(r)] if upper else X.reshape(B, r * c)  # (B, N)
        enc = number_encoding(encoding)
        local = enc.local_ids(nums).reshape(B, -1)  # (B, N * width), -1 = unused slot
        seq = np.empty((B, local.shape[1] + 4), dtype=np.int64)  # <s> V{r} V{c} body </s>
        seq[:, 0], seq[:, 1], seq[:, 2], seq[:, -1] = self.bos, self.dim(r), self.dim(c), self.eos
        holes = encoding == "P10" and bool(np.any(local < 0))
        table = self._to_global(encoding)
        seq[:, 3:-1] = np.where(local >= 0, table[np.maximum(local, 0)], -1) if holes else table[local]
        if holes:  # P10 zeros are shorter: compact each row
            keep = seq >= 0
            lengths = keep.sum(axis=1)
            out = np.full((B, lengths.max()), self.pad, dtype=np.int64)
            out[np.arange(out.shape[1])[None, :] < lengths[:, None]] = seq[keep]
            return out, lengths
        return seq, np.full(B, seq.shape[1], dtype=np.int64)

    def encode_tokens(self, X: np.ndarray, encoding: str, upper: bool = False) -> list[list[str]]:
        """The same sequences as words, for reading and for tests."""
        ids, lengths = self.encode(X, encoding, upper)
        return [[self.words[i] for i in row[:n]] for row, n in zip(ids, lengths, strict=True)]

    # ---------------------------------------------------------------- decoding

    def decode(self, ids, encoding: str, shape: tuple[int, int] | None = None,
               upper: bool = False) -> np.ndarray | None:
        """One id sequence -> (r, c) matrix, or None if it is not a well-formed matrix (never raises).

        A leading <s> is optional; the sequence ends at the first </s> or <pad> (or at its end).
        shape: the expected (r, c); a sequence announcing another shape is invalid.
        upper: the numbers are the upper triangle of a symmetric (r, r) matrix.
        """
        try:
            return self._decode(np.asarray(ids).ravel(), encoding, shape, upper)
        except Exception:  # decoding garbage must never raise
            return None

    def _decode(self, ids: np.ndarray, encoding: str, shape, upper: bool) -> np.ndarray | None:
        if ids.dtype.kind not in "iu":
            return None
        ids = ids.astype(np.int64)
        if np.any((ids < 0) | (ids >= self.size)):
            return None
        if ids.size and ids[0] == self.bos:
            ids = ids[1:]
        stop = np.flatnonzero((ids == self.eos) | (ids == self.pad) | (ids == self.bos))
        ids = ids[: stop[0]] if stop.size else ids
        if ids.size < 2:
            return None
        r, c = (self.words[ids[0]], self.words[ids[1]])
        if not (r.startswith("V") and c.startswith("V") and r[1:].isdigit() and c[1:].isdigit()):
            return None
        r, c = int(r[1:]), int(c[1:])
        if shape is not None and (r, c) != tuple(shape):
            return None
        if upper and r != c:
            return None
        count = r * (r + 1) // 2 if upper else r * c
        vals = self._parse_numbers(ids[2:], encoding, count)
        if vals is None:
            return None
        if not upper:
            return vals.reshape(r, c)
        M = np.zeros((r, r))
        M[np.triu_indices(r)] = vals
        return M + np.triu(M, 1).T

    def _parse_numbers(self, ids: np.ndarray, encoding: str, count: int) -> np.ndarray | None:
        """Read exactly `count` numbers that fill `ids` completely; None on any deviation."""
        kind, value = self._tables(encoding)
        k, v = kind[ids], value[ids]
        out = np.empty(count)
        i = 0
        for t in range(count):
            if encoding == "FP15":
                if i >= len(k) or k[i] != _FLOAT:
                    return None
                out[t], i = v[i], i + 1
            elif encoding == "B1999":
                if i + 1 >= len(k) or k[i] != _SMANT or k[i + 1] != _EXP:
                    return None
                out[t], i = _times_pow10(v[i], v[i + 1]), i + 2
            elif encoding == "P1000":
                if i + 2 >= len(k) or k[i] != _SIGN or k[i + 1] != _MANT or k[i + 2] != _EXP:
                    return None
                out[t], i = _times_pow10(v[i] * v[i + 1], v[i + 2]), i + 3
            else:  # P10: sign, 1 to 3 digits, exponent
                if i >= len(k) or k[i] != _SIGN:
                    return None
                j, m = i + 1, 0.0
                while j < len(k) and k[j] == _DIGIT and j - i <= 3:
                    m, j = 10 * m + v[j], j + 1
                if j == i + 1 or j >= len(k) or k[j] != _EXP:
                    return None
                out[t], i = _times_pow10(v[i] * m, v[j]), j + 1
        return out if i == len(k) else None

    def decode_batch(self, ids: np.ndarray, encoding: str, shape: tuple[int, int],
                     upper: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, L) id sequences -> (B, r, c) values (NaN where invalid) and a validity mask (B,).

        Fast path: every row laid out with the encoding's nominal width is checked and decoded at once;
        rows that fail it (P10 zeros, garbage) go through `decode` one by one.
        """
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"expected ids of shape (B, L), got {ids.shape}")
        B = ids.shape[0]
        r, c = shape
        count = r * (r + 1) // 2 if upper else r * c
        out = np.full((B, r, c), np.nan)
        valid = np.zeros(B, dtype=bool)
        w = TOKENS_PER_NUMBER[encoding]
        rows = ids  # the slow path reads the rows as given: `decode` drops one leading <s> itself
        if ids.shape[1] and np.all(ids[:, 0] == self.bos):
            ids = ids[:, 1:]
        need = 2 + count * w
        fast = np.zeros(B, dtype=bool)
        if ids.dtype.kind in "iu" and ids.shape[1] >= need and B:
            ids64 = ids.astype(np.int64)
            inside = np.all((ids64 >= 0) & (ids64 < self.size), axis=1)
            safe = np.where((ids64 >= 0) & (ids64 < self.size), ids64, 0)
            kind, value = self._tables(encoding)
            body_k = kind[safe[:, 2:need]].reshape(B, count, w)
            body_v = value[safe[:, 2:need]].reshape(B, count, w)
            pattern = {"FP15": [_FLOAT], "B1999": [_SMANT, _EXP], "P1000": [_SIGN, _MANT, _EXP],
                       "P10": [_SIGN, _DIGIT, _DIGIT, _DIGIT, _EXP]}[encoding]
            ok = inside & (safe[:, 0] == self.dim(r)) & (safe[:, 1] == self.dim(c))
            ok &= np.all(body_k == np.array(pattern, dtype=np.int8), axis=(1, 2))
            if ids.shape[1] > need:
                nxt = safe[:, need]
                ok &= (nxt == self.eos) | (nxt == self.pad) | (nxt == self.bos)
            if encoding == "P10":  # a nominal-width P10 number has a leading digit 1..9
                ok &= np.all(body_v[:, :, 1] > 0, axis=1)
            if encoding == "FP15":
                vals = body_v[:, :, 0]
            elif encoding == "B1999":
                vals = _times_pow10(body_v[:, :, 0], body_v[:, :, 1])
            elif encoding == "P1000":
                vals = _times_pow10(body_v[:, :, 0] * body_v[:, :, 1], body_v[:, :, 2])
            else:
                m = 100 * body_v[:, :, 1] + 10 * body_v[:, :, 2] + body_v[:, :, 3]
                vals = _times_pow10(body_v[:, :, 0] * m, body_v[:, :, 4])
            fast = ok
            if upper:
                iu = np.triu_indices(r)
                M = np.zeros((B, r, r))
                M[:, iu[0], iu[1]] = vals
                M = M + np.triu(M, 1).transpose(0, 2, 1)
            else:
                M = vals.reshape(B, r, c)
            out[fast] = M[fast]
            valid[fast] = True
        for b in np.flatnonzero(~fast):
            M = self.decode(rows[b], encoding, shape, upper)
            if M is not None:
                out[b], valid[b] = M, True
        return out, valid


@cache
def vocabulary(input_encoding: str = "FP15", output_encoding: str = "P1000") -> Vocabulary:
    """The vocabulary of an encoder/decoder pair (cached: built once per pair)."""
    return Vocabulary(input_encoding, output_encoding)


def sequence_length(r: int, c: int, encoding: str, upper: bool = False) -> int:
    """Tokens of a framed (r, c) matrix without the two boundary words (PAPER.md §C.4 convention)."""
    count = r * (r + 1) // 2 if upper else r * c
    return 2 + count * TOKENS_PER_NUMBER[check_encoding(encoding)]
