"""The three matrix tasks: problems, targets, the paper's verifiers and the property errors.

    eigenvalues   input: symmetric M (n x n)        target: its eigenvalues, decreasing, as (n, 1)
    eigenvectors  input: symmetric M (n x n)        target: (n+1, n): row 0 the eigenvalues increasing,
                                                            rows 1..n the unit eigenvectors as columns,
                                                            each with its largest component positive
    inversion     input: A, iid U[-10, 10] (n x n)  target: A^-1

The problem is the input *as the model sees it*: rounded to the input encoding. Every reference (target,
eigenvalues, inverse) is computed from that rounded matrix, so an exact answer is exact for the problem
posed. (The original computed targets before rounding the input; at 3 significant digits the difference
is below the smallest tolerance for eigenvalues, and its eigenvector and inversion verifiers already used
the rounded input: PAPER.md §D.2.)

Verifiers (PAPER.md §D.2–D.3), relative L1 errors; a prediction is correct at tolerance tau if err < tau:
    eigenvalues   sum|l_hat - l| / sum|l|
    eigenvectors  sum|V^T A V - diag(l_hat)| / sum|l_hat|      (any sign, order or degenerate basis passes)
    inversion     sum|A P - I| / n
An invalid prediction (NaN anywhere) has error +inf: it fails every tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import encoding, spectra

TASKS = ("eigenvalues", "eigenvectors", "inversion")
TOLERANCES = (0.005, 0.01, 0.02, 0.05)  # the evaluator's tolerances
TABLE_TOLERANCES = (0.005, 0.01, 0.02, 0.05, 0.075, 0.10, 0.15, 0.20, 0.25)  # the WIMTD tables
INVERSION_RESIDUAL_MAX = 1e-10  # the generator rejects A when max|A A^-1 - I| exceeds this


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def is_symmetric_task(task: str) -> bool:
    return check_task(task) != "inversion"


# Inversion's inputs have no spectrum: iid uniform entries, not symmetric. These three say so once.
INVERSION_SPECTRUM = "uniform-nonsymmetric"  # the spectrum name its problems (and evaluation sets) carry


def spectrum_label(task: str, spectrum: str) -> str:
    """The spectrum as it appears in run and test-set names: 'uniform' for inversion, mixtures with '+'."""
    return "uniform" if check_task(task) == "inversion" else spectrum.replace(",", "+")


def drawn_spectrum(task: str, spectrum: str) -> str:
    """The spectrum argument a task's problems are drawn with (inversion ignores it: any valid name; the
    historical 'semicircle' keeps the seeds of existing test sets)."""
    return "semicircle" if check_task(task) == "inversion" else spectrum


def target_shape(task: str, n: int) -> tuple[int, int]:
    return {"eigenvalues": (n, 1), "eigenvectors": (n + 1, n), "inversion": (n, n)}[check_task(task)]


@dataclass(frozen=True)
class Problems:
    """A batch of problems: inputs A (B, n, n) as the model sees them, and exact targets (B, r, c)."""

    task: str
    spectrum: str
    A: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return self.A.shape[0]


def solve(task: str, A: np.ndarray) -> np.ndarray:
    """Exact (float64) targets for inputs A (B, n, n)."""
    check_task(task)
    if task == "eigenvalues":
        return np.linalg.eigvalsh(A)[:, ::-1, None]  # (B, n, 1), decreasing
    if task == "eigenvectors":
        eigvals, V = np.linalg.eigh(A)  # increasing; eigenvectors in the columns of V
        return np.concatenate([eigvals[:, None, :], normalize_signs(V)], axis=1)  # (B, n+1, n)
    return np.linalg.inv(A)  # (B, n, n)


def normalize_signs(V: np.ndarray) -> np.ndarray:
    """Flip each eigenvector (column of V (B, n, n)) so that its largest-magnitude component is positive.

    The original code kept whatever sign LAPACK returned: an arbitrary choice the model has to guess. The
    verifier accepts either sign, so a fixed convention changes no accuracy, only what there is to learn.
    """
    idx = np.abs(V).argmax(axis=1)  # (B, n): row of the largest component of each column
    sign = np.sign(np.take_along_axis(V, idx[:, None, :], axis=1))  # (B, 1, n)
    return V * np.where(sign == 0, 1.0, sign)


def check_max_cond(max_cond: float) -> float:
    """A cond(A) bound is 0 (no limit) or a condition number (>= 1); anything else is one clear ValueError."""
    if max_cond < 0 or (max_cond and max_cond < 1):
        raise ValueError(f"max_cond must be 0 (no limit) or >= 1 (a condition number), got {max_cond}")
    return max_cond


def make_problems(task: str, n: int, batch: int, rng: np.random.Generator, spectrum: str = "semicircle",
                  input_encoding: str = "FP15", output_encoding: str | None = "P1000",
                  max_cond: float = 0.0) -> Problems:
    """Sample `batch` problems: inputs rounded to `input_encoding`, exact targets from the rounded inputs.

    Inversion inputs are iid U[-10, 10] (the spectrum is ignored); inputs whose inverse is numerically poor
    (max|A A^-1 - I| > 1e-10) or whose target the output encoding cannot represent are redrawn, as the
    original generator skipped them. max_cond > 0 also redraws inputs with cond(A) above it (a training
    curriculum: the distribution conditioned on cond(A) <= max_cond; evaluation sets never use it).
    """
    check_max_cond(max_cond)
    check_task(task)
    encoding.check_encoding(input_encoding)
    if output_encoding is not None:
        encoding.check_encoding(output_encoding)
    if task != "inversion":
        spectra.parse_spectrum(spectrum)
    # start from empty arrays so that batch = 0 gives empty problems, not a concatenate error
    A_parts, T_parts, have = [np.empty((0, n, n))], [np.empty((0, *target_shape(task, n)))], 0
    while have < batch:
        need = batch - have
        if task == "inversion":
            raw = spectra.uniform_matrices(rng, need, n)
        else:
            raw = spectra.symmetric_matrices(spectrum, rng, need, n)
        ok = encoding.in_range(raw, input_encoding).all(axis=(1, 2))
        A = encoding.quantize(raw if ok.all() else np.where(ok[:, None, None], raw, 0.0), input_encoding)
        with np.errstate(all="ignore"):
            if task == "inversion":
                ok &= np.abs(np.linalg.det(A)) > 0
                T = np.zeros_like(A)
                T[ok] = solve(task, A[ok])
                resid = np.abs(A @ T - np.eye(n)).max(axis=(1, 2))
                ok &= resid <= INVERSION_RESIDUAL_MAX
            else:
                T = solve(task, A)
        if output_encoding is not None:
            ok &= encoding.in_range(T, output_encoding).all(axis=(1, 2))
        if max_cond:
            ok &= cond(np.where(ok[:, None, None], A, np.eye(n))) <= max_cond
        keep = slice(None) if ok.all() else ok
        A_parts.append(A[keep])
        T_parts.append(T[keep])
        have += int(ok.sum())
    name = INVERSION_SPECTRUM if task == "inversion" else spectrum
    if len(A_parts) == 2:  # the common case: one draw was enough
        return Problems(task, name, A_parts[1], T_parts[1])
    return Problems(task, name, np.concatenate(A_parts)[:batch], np.concatenate(T_parts)[:batch])


# --------------------------------------------------------------------------------------------------
# Verifiers
# --------------------------------------------------------------------------------------------------


def _finite_or_inf(err: np.ndarray, P: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(P).all(axis=(1, 2)) | ~np.isfinite(err)
    return np.where(bad, np.inf, err)


def spectrum_error(eigvals: np.ndarray, eigvals_hat: np.ndarray) -> np.ndarray:
    """Relative L1 distance (B,) of predicted spectra (B, n) to the true ones, in the same order: the eigenvalue
    verifier's error, sum|l_hat - l| / sum|l|."""
    return np.abs(eigvals_hat - eigvals).sum(-1) / np.abs(eigvals).sum(-1)


def verify(task: str, A: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Relative L1 error (B,) of predictions P (B, r, c) for inputs A (B, n, n); +inf where invalid."""
    check_task(task)
    A, P = np.asarray(A, dtype=np.float64), np.asarray(P, dtype=np.float64)
    n = A.shape[-1]
    if P.shape[1:] != target_shape(task, n):
        raise ValueError(f"{task} predictions for n={n} have shape {target_shape(task, n)}, got {P.shape[1:]}")
    Pz = np.where(np.isfinite(P), P, 0.0)
    with np.errstate(all="ignore"):
        if task == "eigenvalues":
            err = spectrum_error(np.linalg.eigvalsh(A)[:, ::-1], Pz[:, :, 0])  # spectra (B, n), decreasing
        elif task == "eigenvectors":
            eigvals_hat, V_hat = Pz[:, 0, :], Pz[:, 1:, :]  # (B, n), (B, n, n)
            R = V_hat.transpose(0, 2, 1) @ A @ V_hat  # (B, n, n)
            R[:, np.arange(n), np.arange(n)] -= eigvals_hat
            denom = np.abs(eigvals_hat).sum(-1)
            err = np.where(denom > 0, np.abs(R).sum(axis=(1, 2)) / denom, np.inf)
        else:
            R = A @ Pz - np.eye(n)
            err = np.abs(R).sum(axis=(1, 2)) / n
    return _finite_or_inf(err, P)


def accuracy(err: np.ndarray, tolerances=TOLERANCES) -> dict[float, float]:
    """Share of errors strictly below each tolerance."""
    err = np.asarray(err)
    return {tau: float(np.mean(err < tau)) if err.size else float("nan") for tau in tolerances}


# --------------------------------------------------------------------------------------------------
# Property errors: what a failed prediction still gets right (PAPER.md §D.6)
# --------------------------------------------------------------------------------------------------


def cond(M: np.ndarray) -> np.ndarray:
    """2-norm condition numbers (B,) of matrices (B, n, n); +inf for singular or invalid ones."""
    M = np.asarray(M, dtype=np.float64)
    ok = np.isfinite(M).all(axis=(1, 2))
    out = np.full(M.shape[0], np.inf)
    if ok.any():
        s = np.linalg.svd(M[ok], compute_uv=False)  # (b, n) decreasing
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 for the zero matrix
            out[ok] = np.where(s[:, -1] > 0, s[:, 0] / s[:, -1], np.inf)
    return out


def norm_error(V_hat: np.ndarray) -> np.ndarray:
    """Largest |norm - 1| over all rows and all columns of V_hat (B, n, n)."""
    rows = np.abs(np.linalg.norm(V_hat, axis=2) - 1).max(-1)
    cols = np.abs(np.linalg.norm(V_hat, axis=1) - 1).max(-1)
    return np.maximum(rows, cols)


def orthogonality_adjacent(V_hat: np.ndarray, legacy: bool = True) -> np.ndarray:
    """The original notebook's orthogonality proxy: the largest |cosine| between cyclically adjacent
    rows of V_hat ((1,2), ..., (n-1,n), (n,1)). With legacy=True it also includes, as the original did,
    the un-normalised dot product of the first and last rows."""
    nxt = np.roll(V_hat, -1, axis=1)  # row i+1 (cyclic)
    with np.errstate(all="ignore"):
        dots = (V_hat * nxt).sum(-1)
        cos = dots / (np.linalg.norm(V_hat, axis=2) * np.linalg.norm(nxt, axis=2))
    worst = np.nan_to_num(np.abs(cos), nan=np.inf).max(-1)
    if legacy:
        worst = np.maximum(worst, np.abs((V_hat[:, 0] * V_hat[:, -1]).sum(-1)))
    return worst


def orthogonality_full(V_hat: np.ndarray) -> np.ndarray:
    """max |V_hat^T V_hat - I|: every pair of columns, and the norms (our extension of the proxy)."""
    n = V_hat.shape[-1]
    return np.abs(V_hat.transpose(0, 2, 1) @ V_hat - np.eye(n)).max(axis=(1, 2))


def property_errors(task: str, A: np.ndarray, P: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-problem error the analyses use, as (B,) arrays; NaN where the prediction is invalid.

    all tasks     err (the verifier's), cond_A
    eigenvalues   eigval_err (= err)
    eigenvectors  eigval_err (sorted predicted vs true eigenvalues, relative L1), norm_err,
                  orth_adjacent (original proxy), orth_full (max|V^T V - I|), cond_V
    inversion     inv_err: sum|P - A^-1| / sum|A^-1|, distance to the true inverse
    """
    check_task(task)
    A, P = np.asarray(A, dtype=np.float64), np.asarray(P, dtype=np.float64)
    valid = np.isfinite(P).all(axis=(1, 2))
    out = {"err": verify(task, A, P), "cond_A": cond(A)}
    Pz = np.where(np.isfinite(P), P, 0.0)
    with np.errstate(all="ignore"):
        if task == "eigenvalues":
            out["eigval_err"] = out["err"].copy()
        elif task == "eigenvectors":
            eigvals = np.linalg.eigvalsh(A)  # (B, n) increasing
            eigvals_hat = np.sort(Pz[:, 0, :], axis=-1)
            out["eigval_err"] = spectrum_error(eigvals, eigvals_hat)
            V_hat = Pz[:, 1:, :]
            out["norm_err"] = norm_error(V_hat)
            out["orth_adjacent"] = orthogonality_adjacent(V_hat)
            out["orth_full"] = orthogonality_full(V_hat)
            out["cond_V"] = cond(V_hat)
        else:
            inv = np.linalg.inv(A)
            out["inv_err"] = np.abs(Pz - inv).sum(axis=(1, 2)) / np.abs(inv).sum(axis=(1, 2))
    for k in out:
        if k not in ("err", "cond_A"):
            out[k] = np.where(valid, out[k], np.nan)
    return out


# --------------------------------------------------------------------------------------------------
# The encoding ceiling: the best answer an output encoding can give
# --------------------------------------------------------------------------------------------------


def ceiling_errors(problems: Problems, output_encoding: str) -> np.ndarray:
    """Verifier errors (B,) of the exact targets rounded to `output_encoding`: no model can do better."""
    P = encoding.quantize(problems.target, output_encoding)
    return verify(problems.task, problems.A, P)
