"""Random matrix ensembles of LAWT / WIMTD (PAPER.md §B.1–B.4), vectorised over a batch.

    semicircle  Wigner: symmetric, the n(n+1)/2 free entries iid U[-A, A]           (no replacement)
    positive    |w|: absolute values of the Wigner matrix's own eigenvalues
    uniform     U[-sqrt(3) s, sqrt(3) s]       where s = sigma = sqrt(n) A / sqrt(3), so E[lambda^2] = s^2
    gaussian    N(0, s^2)
    laplace     Laplace(0, s / sqrt(2))
    positive2   |Laplace(0, s / sqrt(2))|
    marcenko    X^T X with X n x n iid U[-sqrt(A), sqrt(A)]                          (unscaled)

For the replaced spectra the eigenvector basis comes from a Wigner matrix W = Q diag(w) Q^T, and the
matrix is M = Q^T diag(d) Q (the transpose on the left, as in the original code: M's eigenvectors are
the rows of Q). Names may be mixed with commas ("laplace,positive"): each example then picks one name
uniformly. Every sampler takes an explicit np.random.Generator.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

SPECTRA = ("semicircle", "uniform", "gaussian", "laplace", "positive", "positive2", "marcenko")
COEFF = 10.0  # A: coefficient bound of the base uniform matrices


def parse_spectrum(spectrum: str) -> tuple[str, ...]:
    """'laplace,positive' -> ('laplace', 'positive'); unknown names raise ValueError listing the valid ones."""
    names = tuple(s.strip() for s in str(spectrum).split(","))
    bad = [s for s in names if s not in SPECTRA]
    if bad or not names:
        raise ValueError(f"unknown spectrum {bad[0] if bad else spectrum!r}; valid spectra: "
                         f"{', '.join(SPECTRA)} (or a comma-separated mixture of them)")
    if len(names) > 5:
        raise ValueError(f"a mixture has at most 5 spectra, got {len(names)}")
    return names


def sigma(n: int, coeff: float = COEFF) -> float:
    """Scale of the replaced spectra: E[lambda^2] = sigma^2 = n A^2 / 3, the Wigner value."""
    return float(np.sqrt(n) * coeff / np.sqrt(3.0))


def natural_scale(name: str, n: int, coeff: float = COEFF) -> float:
    """The unit in which a spectrum's law does not depend on n: sigma, or n A / 3 for marcenko (whose
    eigenvalues / (n A / 3) follow Marchenko–Pastur on [0, 4])."""
    (name,) = parse_spectrum(name)
    return n * coeff / 3.0 if name == "marcenko" else sigma(n, coeff)


def _check(n: int, batch: int) -> None:
    if int(n) < 2:
        raise ValueError(f"matrix size n must be >= 2, got {n}")
    if int(batch) < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")


def wigner(rng: np.random.Generator, batch: int, n: int, coeff: float = COEFF) -> np.ndarray:
    """(B, n, n) symmetric matrices: lower triangle (with diagonal) iid U[-A, A], mirrored."""
    _check(n, batch)
    X = rng.uniform(-coeff, coeff, size=(batch, n, n))  # (B, n, n)
    L = np.tril(X)
    return L + np.tril(L, -1).transpose(0, 2, 1)


def uniform_matrices(rng: np.random.Generator, batch: int, n: int, coeff: float = COEFF) -> np.ndarray:
    """(B, n, n) non-symmetric matrices with iid U[-A, A] entries (the inversion inputs)."""
    _check(n, batch)
    return rng.uniform(-coeff, coeff, size=(batch, n, n))


def _eigenvalues(name: str, rng: np.random.Generator, w: np.ndarray, n: int, coeff: float) -> np.ndarray:
    """New spectra d (B, n) for a replaced-spectrum name; w are the Wigner eigenvalues (B, n)."""
    s = sigma(n, coeff)
    shape = w.shape
    if name == "positive":
        return np.abs(w)
    if name == "uniform":
        return rng.uniform(-np.sqrt(3.0) * s, np.sqrt(3.0) * s, size=shape)
    if name == "gaussian":
        return rng.normal(0.0, s, size=shape)
    if name == "laplace":
        return rng.laplace(0.0, s / np.sqrt(2.0), size=shape)
    if name == "positive2":
        return np.abs(rng.laplace(0.0, s / np.sqrt(2.0), size=shape))
    raise AssertionError(name)


def symmetric_matrices(spectrum: str, rng: np.random.Generator, batch: int, n: int,
                       coeff: float = COEFF) -> np.ndarray:
    """(B, n, n) symmetric matrices whose eigenvalues follow `spectrum` (a name or a comma mixture)."""
    names = parse_spectrum(spectrum)
    _check(n, batch)
    pick = rng.integers(len(names), size=batch) if len(names) > 1 else np.zeros(batch, dtype=np.int64)
    out = np.empty((batch, n, n))
    for i, name in enumerate(names):
        idx = np.flatnonzero(pick == i)
        if idx.size == 0:
            continue
        if name == "marcenko":
            X = rng.uniform(-np.sqrt(coeff), np.sqrt(coeff), size=(idx.size, n, n))  # (b, n, n)
            out[idx] = X.transpose(0, 2, 1) @ X
            continue
        W = wigner(rng, idx.size, n, coeff)  # (b, n, n)
        if name == "semicircle":
            out[idx] = W
            continue
        w, Q = np.linalg.eigh(W)  # W = Q diag(w) Q^T, eigenvectors in the columns of Q
        d = _eigenvalues(name, rng, w, n, coeff)  # (b, n)
        M = Q.transpose(0, 2, 1) @ (d[:, :, None] * Q)  # Q^T diag(d) Q
        out[idx] = (M + M.transpose(0, 2, 1)) / 2  # exactly symmetric in floating point
    return out


# --------------------------------------------------------------------------------------------------
# Analytic laws of the pooled eigenvalues (for plots and tests)
# --------------------------------------------------------------------------------------------------
# uniform, gaussian, laplace and positive2 draw iid eigenvalues: their law is exact at every n.
# semicircle, positive and marcenko follow their law as n -> infinity (finite n deviates near the edges).

EXACT_AT_EVERY_N = ("uniform", "gaussian", "laplace", "positive2")


def eigenvalue_law(name: str, n: int, coeff: float = COEFF):
    """A frozen scipy distribution (or an object with pdf/cdf) of one eigenvalue drawn from `name`."""
    (name,) = parse_spectrum(name)
    s = sigma(n, coeff)
    if name == "semicircle":
        return stats.semicircular(loc=0.0, scale=2.0 * s)  # radius 2 sigma: second moment sigma^2
    if name == "uniform":
        return stats.uniform(loc=-np.sqrt(3.0) * s, scale=2.0 * np.sqrt(3.0) * s)
    if name == "gaussian":
        return stats.norm(0.0, s)
    if name == "laplace":
        return stats.laplace(0.0, s / np.sqrt(2.0))
    if name == "positive2":
        return stats.expon(scale=s / np.sqrt(2.0))  # |Laplace(0, b)| is Exponential(b)
    if name == "positive":
        return _Folded(stats.semicircular(loc=0.0, scale=2.0 * s))
    return _MarchenkoPastur(scale=n * coeff / 3.0)  # X^T X, X n x n with entry variance A / 3


class _Folded:
    """|Y| for a law symmetric about 0."""

    def __init__(self, base):
        self.base = base

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, 2.0 * self.base.pdf(x), 0.0)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, 2.0 * self.base.cdf(x) - 1.0, 0.0)


class _MarchenkoPastur:
    """Marchenko–Pastur law with aspect ratio 1: lambda = scale * y, y on [0, 4] with density
    sqrt(y (4 - y)) / (2 pi y). Its CDF in closed form (substituting y = t^2):
    F(y) = (sqrt(y) sqrt(4 - y) / 2 + 2 arcsin(sqrt(y) / 2)) / pi."""

    def __init__(self, scale: float):
        self.scale = scale

    def pdf(self, x):
        y = np.asarray(x, dtype=float) / self.scale
        inside = (y > 0) & (y < 4)
        yc = np.where(inside, y, 1.0)
        return np.where(inside, np.sqrt(yc * (4 - yc)) / (2 * np.pi * yc) / self.scale, 0.0)

    def cdf(self, x):
        y = np.clip(np.asarray(x, dtype=float) / self.scale, 0.0, 4.0)
        return (np.sqrt(y) * np.sqrt(4 - y) / 2 + 2 * np.arcsin(np.sqrt(y) / 2)) / np.pi


def min_eigen_gap(eigvals: np.ndarray) -> np.ndarray:
    """(B, n) eigenvalues -> (B,) smallest distance between two of them."""
    e = np.sort(eigvals, axis=-1)
    return np.min(np.diff(e, axis=-1), axis=-1)
