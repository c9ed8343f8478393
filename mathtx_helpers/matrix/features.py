"""Predicting failure (notebook 04, result 2): features of the problem, of the predicted solution and of the
model's confidence; one classifier per family, ROC curves and AUCs; threshold rules and failure rates by bin.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..core.stats import auc_ci, share_ci
from . import tasks
from .failures import failed, matrix_size, predictions_of, problems_of


def split_stats(values, fail) -> dict[str, float]:
    """cond-style summary (finite values only), as PAPER.md §A.3: successes mean / 98th pct / max,
    failures 2nd pct / min."""
    values, fail = np.asarray(values, float), np.asarray(fail, bool)
    ok, bad = values[~fail & np.isfinite(values)], values[fail & np.isfinite(values)]
    nan = math.nan
    return {"successes": int((~fail).sum()), "success mean": ok.mean() if ok.size else nan,
            "success 98th pct": np.quantile(ok, 0.98) if ok.size else nan, "success max": ok.max() if ok.size else nan,
            "failures": int(fail.sum()), "failure 2nd pct": np.quantile(bad, 0.02) if bad.size else nan,
            "failure min": bad.min() if bad.size else nan}


def threshold_rates(score, fail, threshold: float) -> tuple[float, float]:
    """The rule 'fail iff score > threshold' (NaN scores are flagged): (false-positive rate among successes,
    false-negative rate among failures)."""
    score, fail = np.asarray(score, float), np.asarray(fail, bool)
    flagged = ~(score <= threshold)
    fpr = flagged[~fail].mean() if (~fail).any() else math.nan
    fnr = (~flagged[fail]).mean() if fail.any() else math.nan
    return float(fpr), float(fnr)


def cond_V_rule(vec: pd.DataFrame, rng: np.random.Generator, threshold: float, tol: float = 0.05) -> dict:
    """G4 on an eigen-decomposition predictions table: the rule 'fail iff cond(V_hat) > threshold' as
    percentages with bootstrap intervals ('fpr', 'fnr', 'fpr_ci', 'fnr_ci') and the largest cond(V_hat) of a
    success ('max_ok')."""
    fail = failed(vec, tol)
    cond = vec["cond_V"].to_numpy(float)
    fpr, fnr = threshold_rates(cond, fail, threshold)
    flagged = ~(cond <= threshold)
    _, *fpr_ci = share_ci(flagged[~fail], rng)
    _, *fnr_ci = share_ci(~flagged[fail], rng)
    return {"fpr": 100 * fpr, "fnr": 100 * fnr, "fpr_ci": tuple(100 * x for x in fpr_ci),
            "fnr_ci": tuple(100 * x for x in fnr_ci), "max_ok": split_stats(cond, fail)["success max"]}


def problem_features(task: str, A: np.ndarray) -> pd.DataFrame:
    """Properties of the problem alone (no model, no solution): what a user could check before asking."""
    A = np.asarray(A, float)
    with np.errstate(all="ignore"):
        out = {"log10 cond(A)": np.log10(tasks.cond(A)),
               "frobenius norm": np.sqrt((A ** 2).sum(axis=(1, 2))),
               "max |entry|": np.abs(A).max(axis=(1, 2)),
               "log10 |det A|": np.log10(np.abs(np.linalg.det(A)))}
        if tasks.is_symmetric_task(task):
            lam = np.linalg.eigvalsh(A)
            radius = np.abs(lam).max(-1)
            out["spectral radius"] = radius
            out["min eigen-gap"] = np.diff(lam, axis=-1).min(-1)
            out["min gap / radius"] = out["min eigen-gap"] / radius
        else:
            out["spectral radius"] = np.abs(np.linalg.eigvals(A)).max(-1)
    return pd.DataFrame(out)


def solution_features(task: str, df: pd.DataFrame, n: int) -> pd.DataFrame:
    """Properties of the predicted solution that need no reference answer (NaN where invalid).
    eigenvectors: cond(V_hat), orthogonality and norms of V_hat; eigenvalues: how far the predicted
    eigenvalues are from two invariants of A (trace and Frobenius norm); inversion: cond and size of P_hat."""
    A = problems_of(df, task, n).A
    P = predictions_of(df, task, n)
    with np.errstate(all="ignore"):
        if task == "eigenvectors":
            return pd.DataFrame({"log10 (cond(V_hat) - 1)": np.log10(df["cond_V"].to_numpy(float) - 1 + 1e-12),
                                 "orthogonality (full)": df["orth_full"].to_numpy(float),
                                 "orthogonality (adjacent)": df["orth_adjacent"].to_numpy(float),
                                 "norm error": df["norm_err"].to_numpy(float)})
        if task == "eigenvalues":
            lam = P[:, :, 0]
            fro = np.sqrt((A ** 2).sum(axis=(1, 2)))
            trace = np.trace(A, axis1=1, axis2=2)
            return pd.DataFrame({"|sum l_hat - tr A| / |A|_F": np.abs(lam.sum(-1) - trace) / fro,
                                 "|sum l_hat^2 - |A|_F^2| / |A|_F^2": np.abs((lam ** 2).sum(-1) - fro ** 2) / fro ** 2})
        return pd.DataFrame({"log10 cond(P_hat)": np.log10(tasks.cond(np.nan_to_num(P))),
                             "log10 |P_hat|_F": np.log10(np.sqrt((np.nan_to_num(P) ** 2).sum(axis=(1, 2))))})


def confidence_features(df: pd.DataFrame) -> pd.DataFrame:
    """The model's own confidence: sum and minimum of its token log-probabilities."""
    return pd.DataFrame({"sum log-prob": df["logprob_sum"].to_numpy(float),
                         "min log-prob": df["logprob_min"].to_numpy(float)})


def caught_at(fpr: np.ndarray, tpr: np.ndarray, alarm: float) -> float:
    """Share of failures caught (true-positive rate) at a false-alarm rate of at most `alarm`."""
    ok = fpr <= alarm
    return float(tpr[ok].max()) if ok.any() else 0.0


def predict_failures(families: dict[str, pd.DataFrame], fail, seed: int, test_share: float = 0.5,
                     n_boot: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit one classifier per feature family on a stratified training split; score the held-out split.
    -> (summary per family: AUC with bootstrap 95 % interval, failures caught at 1 % and 5 % false alarms;
        ROC curves, long format). A family the split cannot score (a class missing) gets NaN."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_curve
    from sklearn.model_selection import train_test_split

    y = np.asarray(fail, dtype=int)
    idx = np.arange(len(y))
    rows, curves = [], []
    enough = min(np.bincount(y, minlength=2)) >= 4
    if enough:
        tr, te = train_test_split(idx, test_size=test_share, random_state=seed, stratify=y)
    for name, X in families.items():
        row = {"features": name, "columns": ", ".join(X.columns), "train": 0, "test": 0, "test failures": 0,
               "AUC": math.nan, "AUC ci low": math.nan, "AUC ci high": math.nan,
               "caught at 1% false alarms": math.nan, "caught at 5% false alarms": math.nan}
        if enough:
            Xv = np.array(X, dtype=float)  # a copy: the inf -> NaN below must not touch the caller's frame
            Xv[~np.isfinite(Xv)] = np.nan  # inf (singular, degenerate) -> missing: the trees route it
            clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
            clf.fit(Xv[tr], y[tr])
            score = clf.predict_proba(Xv[te])[:, 1]
            fpr, tpr, _ = roc_curve(y[te], score)
            rng = np.random.default_rng([seed, len(rows)])
            a, lo, hi = auc_ci(y[te], score, rng=rng, n_boot=n_boot)
            row.update({"train": len(tr), "test": len(te), "test failures": int(y[te].sum()), "AUC": a,
                        "AUC ci low": lo, "AUC ci high": hi, "caught at 1% false alarms": caught_at(fpr, tpr, 0.01),
                        "caught at 5% false alarms": caught_at(fpr, tpr, 0.05)})
            curves.append(pd.DataFrame({"features": name, "false alarm rate": fpr, "failures caught": tpr}))
        rows.append(row)
    roc = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["features", "false alarm rate", "failures caught"])
    return pd.DataFrame(rows), roc


def predict_table(task: str, df: pd.DataFrame, seed: int, confidence: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """predict_failures on one predictions table (its valid predictions), with the three feature families and
    all of them together -> (summary with 'task' and 'invalid left out' columns, ROC with 'task').
    confidence=False: without the log-probability family (the original's dumps hold only a beam score)."""
    valid = df[df.valid].reset_index(drop=True)
    n = matrix_size(df)
    fam = {"problem": problem_features(task, problems_of(valid, task, n).A),
           "solution": solution_features(task, valid, n)}
    if confidence:
        fam["confidence"] = confidence_features(valid)
    fam["all"] = pd.concat(list(fam.values()), axis=1)
    summary, roc = predict_failures(fam, failed(valid), seed=seed)
    summary.insert(0, "task", task)
    summary.insert(1, "invalid left out", int((~df.valid).sum()))
    roc.insert(0, "task", task)
    return summary, roc


def failure_rate_by_bin(values, fail, edges) -> pd.DataFrame:
    """Failure rate of each bin of `values` (e.g. cond(A)), with counts and bootstrap intervals."""
    values, fail = np.asarray(values, float), np.asarray(fail, bool)
    rng = np.random.default_rng(0)
    rows = []
    for lo_e, hi_e in zip(edges[:-1], edges[1:], strict=True):
        inside = (values >= lo_e) & (values < hi_e)
        rate, lo, hi = share_ci(fail[inside], rng)
        rows.append({"bin low": lo_e, "bin high": hi_e, "problems": int(inside.sum()), "failure rate": rate,
                     "ci low": lo, "ci high": hi})
    return pd.DataFrame(rows)
