"""Analyses shared by notebooks 03-05: shares with bootstrap intervals, the "roughly right" tables,
failure prediction (features, classifiers, ROC), learning speed, and the claim tables.

Everything reads prediction tables (predict.py, or dumps.read_dump for the original code's files): one row
per problem with `err` (the verifier's error) and the property errors of tasks.property_errors. A prediction
fails at tolerance t when err >= t or it is invalid (its errors are NaN, and NaN < t is False).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from . import store, tasks

CLAIM_COLUMNS = ("claim", "statement", "paper", "ours", "ci_low", "ci_high", "profile", "holds")
ABSURD = 0.25  # G8: an eigenvalue or norm error this large is "absurd" (PAPER.md §G)
ORTHOGONAL = 0.05  # G3: adjacent abs-cosine (or max|V^T V - I|) at or above this is "not orthogonal"


# --------------------------------------------------------------------------------------------------
# The tables notebooks 03 and 04 read
# --------------------------------------------------------------------------------------------------

SOURCES_HELP = "'ours' (the profile's trained runs) or the path of one of the original code's verbose dumps"


def prediction_tables(profile, source: str = "ours", dump_task: str = "eigenvectors") -> dict[str, pd.DataFrame]:
    """name -> predictions table, for the failure notebooks.

    source 'ours': the profile's runs on their own fixed test sets (predicted once, then read from
    data/runs/<run>/predictions/): 'eigenvectors', 'eigenvectors (weaker)' (the snapshot closest to 60 % among
    those at 50-70 %, if any), 'inversion' and 'eigenvalues' (the semicircle model). Any other source is the
    path of an original verbose evaluation dump (PAPER.md §D.5), read as the single table `dump_task`."""
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
        if name == "eigenvectors" and (weak := pick_snapshot(spec.config, 0.5, 0.7)) is not None:
            tables["eigenvectors (weaker)"] = pd.read_parquet(
                predict(spec.config, size=spec.test_size, snapshot=weak, progress=False))
            tables["eigenvectors (weaker)"].attrs["snapshot"] = weak
    return tables


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


def matrix_size(df: pd.DataFrame) -> int:
    """n of the n x n problems of a predictions table."""
    return int(round(math.sqrt(len(df["problem"].iloc[0]))))


# --------------------------------------------------------------------------------------------------
# Shares and bootstrap intervals
# --------------------------------------------------------------------------------------------------


def share_ci(mask, rng: np.random.Generator, n_boot: int = 4000, level: float = 0.95) -> tuple[float, float, float]:
    """Share of True in `mask` with a percentile-bootstrap interval. Resampling n Bernoulli values with
    replacement and taking their mean is exactly Binomial(n, p)/n, which is drawn directly. A share of 0 or 1
    gets the degenerate interval [p, p], as any bootstrap does: read it with its count."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return math.nan, math.nan, math.nan
    p = float(mask.mean())
    boots = rng.binomial(mask.size, p, size=n_boot) / mask.size
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return p, float(lo), float(hi)


def error_rate_upper(errors: int, n: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of an error rate seen as `errors` in `n` trials (exact binomial,
    Clopper-Pearson). With zero errors this is 1 - (1 - level)^(1/n), about 3/n: the rule of three."""
    from scipy.stats import beta

    if not 0 <= errors <= n or n < 1:
        raise ValueError(f"need 0 <= errors <= n and n >= 1, got errors={errors}, n={n}")
    return 1.0 if errors == n else float(beta.ppf(level, errors + 1, n - errors))


def nines(accuracy: float) -> float:
    """How many leading 9s an accuracy has, the papers' way: 0.9999 -> 4, 0.985 -> 1, 1.0 -> no limit (inf)."""
    if accuracy >= 1:
        return math.inf
    return int(math.floor(-math.log10(1 - accuracy) + 1e-9))


def bootstrap_ci(stat: Callable[..., float], *arrays, rng: np.random.Generator, n_boot: int = 1000,
                 level: float = 0.95) -> tuple[float, float, float]:
    """stat(*arrays) with a percentile-bootstrap interval (rows of all arrays resampled together). Resamples
    where stat is undefined (NaN) are skipped."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("bootstrap_ci: the arrays must have the same length")
    value = float(stat(*arrays))
    if n == 0:
        return value, math.nan, math.nan
    boots = np.array([stat(*(a[idx] for a in arrays)) for idx in rng.integers(0, n, size=(n_boot, n))], float)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return value, math.nan, math.nan
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return value, float(lo), float(hi)


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
# Predicting failure (notebook 04)
# --------------------------------------------------------------------------------------------------


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
    B = len(df)
    A = problems_of(df, task, n).A
    shape = tasks.target_shape(task, n)
    P = np.full((B, *shape), np.nan)
    for i, p in enumerate(df["prediction"]):
        if p is not None:
            P[i] = np.asarray(p, float).reshape(shape)
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
    from sklearn.metrics import roc_auc_score, roc_curve
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

            def auc(yy, ss):
                return roc_auc_score(yy, ss) if 0 < yy.sum() < len(yy) else math.nan

            a, lo, hi = bootstrap_ci(auc, y[te], score, rng=rng, n_boot=n_boot)
            row.update({"train": len(tr), "test": len(te), "test failures": int(y[te].sum()), "AUC": a,
                        "AUC ci low": lo, "AUC ci high": hi, "caught at 1% false alarms": caught_at(fpr, tpr, 0.01),
                        "caught at 5% false alarms": caught_at(fpr, tpr, 0.05)})
            curves.append(pd.DataFrame({"features": name, "false alarm rate": fpr, "failures caught": tpr}))
        rows.append(row)
    roc = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["features", "false alarm rate", "failures caught"])
    return pd.DataFrame(rows), roc


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


# --------------------------------------------------------------------------------------------------
# Learning speed (notebook 05)
# --------------------------------------------------------------------------------------------------


def examples_to_reach(metrics: list[dict], spectrum: str, target: float, tol: float = 0.05) -> float:
    """Examples seen at the first evaluation where accuracy on `spectrum` at `tol` reached `target`
    (NaN if never)."""
    for m in metrics:
        if m["acc"][spectrum][f"{tol:g}"] >= target:
            return float(m["examples"])
    return math.nan


# --------------------------------------------------------------------------------------------------
# Claim tables
# --------------------------------------------------------------------------------------------------


def claim(claim: str, statement: str, ours: float, profile: str, holds: bool | None, paper: float | None = None,
          ci: tuple[float, float] = (math.nan, math.nan)) -> dict:
    """One row of a claims table. `paper` is the anchor value (None where the paper gives none); `holds` is
    None where the claim cannot be judged (e.g. no failures to study): written "cannot tell"."""
    return {"claim": claim, "statement": statement, "paper": math.nan if paper is None else paper, "ours": ours,
            "ci_low": ci[0], "ci_high": ci[1], "profile": profile,
            "holds": "cannot tell" if holds is None else ("yes" if holds else "no")}


def write_claims(rows: list[dict], notebook: str, profile: str) -> pd.DataFrame:
    """Write the claim rows to <figures>/<notebook>_claims.csv (e.g. 03_failure_analysis); return them."""
    df = pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))
    if df.empty or df["claim"].isna().any():
        raise ValueError("write_claims: every row needs a claim id")
    store.write_text(store.figures_dir(profile) / f"{notebook}_claims.csv", df.to_csv(index=False, float_format="%.6g"))
    return df
