"""The failure analyses of notebooks 03 and 04 on prediction tables: which tables, which predictions fail,
and the "roughly right" tables (result 1).

Everything reads prediction tables (predict.py, or dumps.read_dump for the original code's files): one row
per problem with `err` (the verifier's error) and the property errors of tasks.property_errors. A prediction
fails at tolerance t when err >= t or it is invalid (its errors are NaN, and NaN < t is False).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import store
from ..core.stats import share_ci
from . import tasks

ABSURD = 0.25  # G8: an eigenvalue or norm error this large is "absurd" (PAPER.md §G)
ORTHOGONAL = 0.05  # G3: adjacent abs-cosine (or max|V^T V - I|) at or above this is "not orthogonal"


# --------------------------------------------------------------------------------------------------
# The tables notebooks 03 and 04 read
# --------------------------------------------------------------------------------------------------

SOURCES_HELP = "'ours' (the profile's trained runs) or the path of one of the original code's verbose dumps"


def prediction_tables(profile, source: str = "ours", dump_task: str = "eigenvectors") -> dict[str, pd.DataFrame]:
    """name -> predictions table, for the failure notebooks.

    source 'ours': the profile's runs on their own fixed test sets (predicted once, then read from
    data/runs/<run>/predictions/): 'eigenvectors', 'eigenvectors (weaker)' (predict.pick_snapshot's: the
    paper's ~70 % model, if a snapshot is in its band), 'inversion' and 'eigenvalues' (the semicircle model).
    Any other source is the path of an original verbose evaluation dump (PAPER.md §D.5), read as the single
    table `dump_task`."""
    from .dumps import read_dump
    from .predict import pick_snapshot, predict
    from .train import run_status

    if source != "ours":
        path = Path(source) if Path(source).is_absolute() else store.ROOT / source
        if not path.is_file():
            raise ValueError(f"source {source!r} is not a file; valid sources: {SOURCES_HELP}")
        return {dump_task: read_dump(path, dump_task)}
    tables = {}
    for name, run in (("eigenvectors", "eigenvectors"), ("inversion", "inversion"),
                      ("eigenvalues", "eigenvalues-semicircle")):
        spec = profile.run(run)
        if run_status(spec.config) != "done":
            raise ValueError(f"run {run} of profile {profile.name} is not trained: run notebook 02 "
                             f"or `python -m mathtx_helpers train --profile {profile.name} --run {run}`")
        tables[name] = pd.read_parquet(predict(spec.config, size=spec.test_size, progress=False))
        if name == "eigenvectors" and (weak := pick_snapshot(spec.config)) is not None:
            tables["eigenvectors (weaker)"] = pd.read_parquet(
                predict(spec.config, size=spec.test_size, snapshot=weak, progress=False))
            tables["eigenvectors (weaker)"].attrs["snapshot"] = weak
    return tables


def seed_tables(profile, family: str, skip_untrained: bool = False) -> dict[int, pd.DataFrame]:
    """seed -> predictions table of each replicate of a run family on its own fixed test set (the first seed
    first): the seed-to-seed spread of notebooks 03-05. An untrained replicate is an error, or left out with
    skip_untrained (a notebook run on its own before notebook 02 trained every seed; it says so)."""
    from .predict import predict
    from .train import run_status

    out = {}
    for seed, spec in profile.replicates(family).items():
        if run_status(spec.config) != "done":
            if skip_untrained:
                print(f"{spec.name} is not trained yet: its seed is left out of the seed-to-seed spread")
                continue
            raise ValueError(f"run {spec.name} of profile {profile.name} is not trained: run notebook 02 or "
                             f"`python -m mathtx_helpers train --profile {profile.name} --run {spec.name}`")
        out[seed] = pd.read_parquet(predict(spec.config, size=spec.test_size, progress=False))
    return out


def problems_of(df: pd.DataFrame, task: str, n: int | None = None) -> tasks.Problems:
    """The problems (inputs and references) of a predictions table, e.g. for the encoding ceiling
    (n is needed only for an empty table)."""
    n = n or matrix_size(df)
    shape = tasks.target_shape(task, n)
    if len(df) == 0:
        return tasks.Problems(task, "table", np.zeros((0, n, n)), np.zeros((0, *shape)))
    A = np.stack(df["problem"].to_numpy()).reshape(-1, n, n)
    target = np.stack(df["reference"].to_numpy()).reshape(-1, *shape)
    return tasks.Problems(task, "table", A, target)


def predictions_of(df: pd.DataFrame, task: str, n: int) -> np.ndarray:
    """The predicted solutions of a predictions table, (B, *target shape), NaN where a prediction is missing."""
    P = np.full((len(df), *tasks.target_shape(task, n)), np.nan)
    for i, p in enumerate(df["prediction"]):
        if p is not None:
            P[i] = np.asarray(p, float).reshape(P.shape[1:])
    return P


def matrix_size(df: pd.DataFrame) -> int:
    """n of the n x n problems of a predictions table."""
    return int(round(math.sqrt(len(df["problem"].iloc[0]))))


def failed(df: pd.DataFrame, tol: float = 0.05) -> np.ndarray:
    """(B,) True where the prediction fails at `tol` (invalid predictions fail)."""
    return ~(df["err"].to_numpy(float) < tol)


# --------------------------------------------------------------------------------------------------
# "Roughly right": properties of the predictions (notebook 03)
# --------------------------------------------------------------------------------------------------

# column of the predictions table -> name in the WIMTD table (PAPER.md §A.3)
PROPERTY_COLUMNS = {"err": "accuracy", "eigval_err": "eigenvalues", "norm_err": "norms",
                    "orth_adjacent": "orthogonality"}


def property_table(df: pd.DataFrame, tolerances=tasks.TABLE_TOLERANCES) -> pd.DataFrame:
    """The E1 table: per tolerance, % of all predictions whose error on each property is below it, and the
    counts (correct, and wrong per property) as in PAPER.md §A.3. Columns present in df only."""
    cols = {c: name for c, name in PROPERTY_COLUMNS.items() if c in df}
    rows = []
    for t in tolerances:
        row = {"tolerance": f"{100 * t:g}%"}
        for c, name in cols.items():
            ok = df[c].to_numpy(float) < t
            row[f"{name} %"] = 100 * ok.mean()
        for c, name in cols.items():
            ok = df[c].to_numpy(float) < t
            row[f"{name} correct" if c == "err" else f"{name} wrong"] = int(ok.sum() if c == "err" else (~ok).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def failure_shares(df: pd.DataFrame, rng: np.random.Generator, tol: float = 0.05) -> pd.DataFrame:
    """Among the predictions that fail at `tol`, the share keeping each property (G1-G3), and the share of
    absurd predictions in the whole test set (G8); each with its count and bootstrap 95 % interval."""
    fail = failed(df, tol)
    sub = df[fail]
    rows = []

    def add(key: str, statement: str, mask, of: str):
        mask = np.asarray(mask, dtype=bool)
        share, lo, hi = share_ci(mask, rng)
        rows.append({"key": key, "statement": statement, "count": int(mask.sum()), "of": f"{mask.size} {of}",
                     "share %": 100 * share, "ci low %": 100 * lo, "ci high %": 100 * hi})

    of = f"failures at {100 * tol:g}%"
    if "norm_err" in df:  # eigen-decomposition
        e, nrm = sub["eigval_err"].to_numpy(float), sub["norm_err"].to_numpy(float)
        add("eigenvalues within 2%", "eigenvalues within 2 % (relative L1)", e < 0.02, of)
        add("eigenvalues within 1%", "eigenvalues within 1 %", e < 0.01, of)
        add("norms within 5%", "every row and column norm of V_hat within 5 % of 1", nrm < 0.05, of)
        add("norms within 2%", "every norm within 2 % of 1", nrm < 0.02, of)
        add("not orthogonal (adjacent)", f"adjacent-row abs-cosine >= {ORTHOGONAL:g} (the original proxy)",
            ~(sub["orth_adjacent"].to_numpy(float) < ORTHOGONAL), of)
        add("not orthogonal (full)", f"max|V_hat^T V_hat - I| >= {ORTHOGONAL:g}",
            ~(sub["orth_full"].to_numpy(float) < ORTHOGONAL), of)
        absurd = ~(df["eigval_err"].to_numpy(float) < ABSURD) | ~(df["norm_err"].to_numpy(float) < ABSURD)
        add("absurd", f"invalid, or eigenvalue or norm error >= {100 * ABSURD:g} %", absurd, "predictions")
    else:  # eigenvalues: the verifier's error; inversion: the distance to the true inverse
        col, what, absurd = ("inv_err", "distance to the true inverse", 1.0) if "inv_err" in df else \
            ("err", "eigenvalue error", ABSURD)
        err = sub[col].to_numpy(float)
        for near in (0.1, 0.25):
            add(f"near miss {100 * near:g}%", f"{what} below {100 * near:g} %", err < near, of)
        add("absurd", f"invalid, or {what} >= {100 * absurd:g} %", ~(df[col].to_numpy(float) < absurd),
            "predictions")
    return pd.DataFrame(rows)


def accuracy_by_tolerance(df: pd.DataFrame, tolerances=tasks.TABLE_TOLERANCES) -> pd.DataFrame:
    """Long table: tolerance, property, % below it (for the accuracy-vs-tolerance figure)."""
    cols = {c: n for c, n in {**PROPERTY_COLUMNS, "orth_full": "orthogonality (full)",
                               "inv_err": "distance to inverse"}.items() if c in df}
    return pd.DataFrame([{"tolerance": t, "property": name, "percent": 100 * (df[c].to_numpy(float) < t).mean()}
                         for c, name in cols.items() for t in tolerances])


# --------------------------------------------------------------------------------------------------
# Where an eigenvalue model's spectrum is wrong: its mean, spread or shape (benchmarks/eigenvalue_diagnosis.py)
# --------------------------------------------------------------------------------------------------


def spectrum_parts(eigvals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A spectrum (B, n), decreasing, as the three things that fix it: its mean (trace(A) / n: linear in A), its
    spread (the root-mean-square distance from the mean: sqrt(||A||_F^2 / n - mean^2), quadratic in A) and its
    shape (B, n - 2): each interior eigenvalue's place between the extremes, (l_i - l_n) / (l_1 - l_n) in [0, 1]
    (for n = 3, with mean and spread known, the determinant fixes it). NaN where the extremes coincide."""
    eigvals = np.asarray(eigvals, dtype=np.float64)
    mean = eigvals.mean(-1)
    spread = np.sqrt(((eigvals - mean[:, None]) ** 2).mean(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        width = eigvals[:, 0] - eigvals[:, -1]
        shape = (eigvals[:, 1:-1] - eigvals[:, -1:]) / np.where(width > 0, width, np.nan)[:, None]
    return mean, spread, shape


def spectrum_errors(eigvals: np.ndarray, eigvals_hat: np.ndarray) -> pd.DataFrame:
    """Per problem, how far a predicted spectrum (B, n) is from the true one (both decreasing) in each of
    spectrum_parts: 'mean' |mean_hat - mean| / mean(|l|) (the verifier's scale), 'spread' |s_hat - s| / s,
    'shape' the largest |t_hat - t| over the interior eigenvalues (0 to 1). NaN where a prediction is missing."""
    (m, s, t), (m_hat, s_hat, t_hat) = spectrum_parts(eigvals), spectrum_parts(eigvals_hat)
    scale = np.abs(np.asarray(eigvals, dtype=np.float64)).mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shape = np.abs(t_hat - t).max(-1) if t.shape[1] else np.zeros(len(m))
        return pd.DataFrame({"mean": np.abs(m_hat - m) / scale, "spread": np.abs(s_hat - s) / s, "shape": shape})


def with_true_shape(eigvals: np.ndarray, eigvals_hat: np.ndarray) -> np.ndarray:
    """The predicted spectra (B, n) with their shape replaced by the true one, their own mean and spread kept: what
    a model would predict if only its shape were fixed."""
    _, _, t = spectrum_parts(eigvals)
    m_hat, s_hat, _ = spectrum_parts(eigvals_hat)
    u = np.concatenate([np.ones((len(t), 1)), t, np.zeros((len(t), 1))], axis=1)  # (B, n): the true shape, 1 .. 0
    u = u - u.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = u / np.sqrt((u ** 2).mean(1, keepdims=True))  # mean 0, spread 1
    return m_hat[:, None] + s_hat[:, None] * u


def eigenvalue_spectra(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) spectra (B, n), decreasing, of an eigenvalue predictions table; NaN rows where a
    prediction is missing (invalid)."""
    L = np.stack(df["reference"].to_numpy()).astype(np.float64).reshape(len(df), -1)
    return L, predictions_of(df, "eigenvalues", L.shape[1])[:, :, 0]


def spectrum_table(tables: dict, tol: float = 0.05) -> pd.DataFrame:
    """One row per eigenvalue predictions table (key -> table; a tuple key fills the index): accuracy at `tol`
    (%), the median error of the spectrum's mean, spread and shape over the valid predictions (spectrum_errors),
    and the accuracy (%) of two repairs: the true shape with the model's own mean and spread, and the true mean
    and spread with the model's own shape."""

    def acc(L, L_hat):  # an invalid (NaN) prediction fails, as in tasks.verify
        return 100 * tasks.accuracy(np.nan_to_num(tasks.spectrum_error(L, L_hat), nan=np.inf), (tol,))[tol]

    rows = []
    for df in tables.values():
        L, L_hat = eigenvalue_spectra(df)
        e = spectrum_errors(L, L_hat).median()  # NaN rows (invalid predictions) left out
        rows.append({"accuracy %": acc(L, L_hat), "mean error": e["mean"], "spread error": e["spread"],
                     "shape error": e["shape"], "accuracy, true shape %": acc(L, with_true_shape(L, L_hat)),
                     "accuracy, true mean and spread %": acc(L, with_true_shape(L_hat, L))})
    index = pd.MultiIndex.from_tuples(list(tables)) if tables and isinstance(next(iter(tables)), tuple) \
        else pd.Index(list(tables))
    return pd.DataFrame(rows, index=index)
