"""Where the eigenvalue models that stay below 90 % go wrong: the mean, the spread or the shape of the spectrum.

    python benchmarks/eigenvalue_diagnosis.py [--profile cpu] [--tol 0.05]

A 3x3 spectrum l1 >= l2 >= l3 is fixed by three numbers (matrix.failures.spectrum_parts): its mean (trace(A) / 3,
linear in A), its spread (the root-mean-square distance from the mean, from ||A||_F: quadratic) and its shape (where
l2 sits between l1 and l3, from 0 to 1: with the first two known, the determinant fixes it). For every trained
eigenvalue run of the profile, on its own spectrum's test set (the prediction tables of notebooks 02 and 05,
predicted here if absent): accuracy at --tol (the verifier's sum|l_hat - l| / sum|l|), the median error of each
part over the valid predictions (mean: in units of mean |l|; spread: relative; shape: absolute), and the accuracy
two repairs would give: the true shape with the model's own mean and spread, and the true mean and spread with the
model's own shape. Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mathtx_helpers.matrix import failures, predict  # noqa: E402
from mathtx_helpers.matrix.train import run_dir, run_status  # noqa: E402
from mathtx_helpers.profiles import PROFILES  # noqa: E402


def spectra(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) spectra (B, n) of an eigenvalue predictions table; NaN rows where a prediction is invalid."""
    L = np.stack(df["reference"].to_numpy()).astype(np.float64)
    L_hat = np.full_like(L, np.nan)
    for i, (p, ok) in enumerate(zip(df["prediction"], df["valid"], strict=True)):
        if ok:
            L_hat[i] = np.asarray(p, dtype=np.float64).reshape(-1)
    return L, L_hat


def accuracy(L: np.ndarray, L_hat: np.ndarray, tol: float) -> float:
    """% of problems whose verifier error sum|l_hat - l| / sum|l| is below tol (invalid ones fail)."""
    err = np.abs(L_hat - L).sum(1) / np.abs(L).sum(1)
    return 100 * float(np.mean(np.nan_to_num(err, nan=np.inf) < tol))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=list(PROFILES), default="cpu")
    ap.add_argument("--tol", type=float, default=0.05)
    args = ap.parse_args()
    if not 0 < args.tol < 1:
        ap.error(f"--tol must be in (0, 1), got {args.tol}")
    specs = [s for s in PROFILES[args.profile].runs if s.config.task == "eigenvalues"]
    untrained = [s.name for s in specs if run_status(s.config) != "done"]
    if len(untrained) == len(specs):
        ap.error(f"no eigenvalue run of profile {args.profile} is trained under {run_dir(specs[0].config).parent}: "
                 "restore the shipped models (python -m mathtx_helpers restore) or train them")
    print(f"| run | acc at {100 * args.tol:g} % | valid | median error: mean | spread | shape | acc, true shape "
          "| acc, true mean and spread |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in specs:
        if spec.name in untrained:
            print(f"| {spec.name} | not trained | | | | | | |")
            continue
        cfg = spec.config
        df = pd.read_parquet(predict.predict(cfg, cfg.spectrum, progress=False))
        L, L_hat = spectra(df)
        e = failures.spectrum_errors(L, L_hat).median()  # NaN rows (invalid predictions) left out
        print(f"| {spec.name} | {accuracy(L, L_hat, args.tol):.1f} % | {100 * np.isfinite(L_hat).all(1).mean():.1f} % "
              f"| {e['mean']:.4f} | {e['spread']:.4f} | {e['shape']:.3f} "
              f"| {accuracy(L, failures.with_true_shape(L, L_hat), args.tol):.1f} % "
              f"| {accuracy(L, failures.with_true_shape(L_hat, L), args.tol):.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
