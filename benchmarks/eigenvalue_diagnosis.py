"""Where the eigenvalue models that stay below 90 % go wrong: the mean, the spread or the shape of the spectrum.

    python benchmarks/eigenvalue_diagnosis.py [--profile cpu] [--tol 0.05]
    MATHTX_DATA_DIR=DIR python benchmarks/eigenvalue_diagnosis.py --sweep NAME[,NAME ...]   # sweep runs (sweep.py
                                                                   # --scratch DIR), on 10,000-problem test sets

A 3x3 spectrum l1 >= l2 >= l3 is fixed by three numbers (matrix.failures.spectrum_parts): its mean (trace(A) / 3,
linear in A), its spread (the root-mean-square distance from the mean, from ||A||_F: quadratic) and its shape (where
l2 sits between l1 and l3, from 0 to 1: with the first two known, the determinant fixes it). For every trained
eigenvalue run of the profile, on its own spectrum's test set (the prediction tables of notebooks 02 and 05,
predicted here if absent): accuracy at --tol (the verifier's sum|l_hat - l| / sum|l|), the median error of each
part over the valid predictions (mean: in units of mean |l|; spread: relative; shape: absolute), and the accuracy
two repairs would give: the true shape with the model's own mean and spread, and the true mean and spread with the
model's own shape (matrix.failures.spectrum_table; notebook 05 shows the same table). Prints numbers, asserts
nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mathtx_helpers.matrix import failures, predict  # noqa: E402
from mathtx_helpers.matrix.config import RunConfig  # noqa: E402
from mathtx_helpers.matrix.train import run_dir, run_status  # noqa: E402
from mathtx_helpers.profiles import PROFILES, RunSpec  # noqa: E402


def sweep_specs(ap: argparse.ArgumentParser, names: str) -> list[RunSpec]:
    """The named eigenvalue candidates of benchmarks/sweep.py as RunSpecs (10,000-problem test sets)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from sweep import CANDIDATES

    eigen = [n for n, c in CANDIDATES.items() if c["task"] == "eigenvalues"]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in eigen]
    if unknown:
        ap.error(f"no eigenvalue candidate {', '.join(unknown)} in benchmarks/sweep.py; valid: {', '.join(eigen)}")
    return [RunSpec(n, RunConfig.from_dict(CANDIDATES[n]), "sweep candidate") for n in wanted]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=list(PROFILES), default="cpu")
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--sweep", default="", help="comma-separated eigenvalue candidates of benchmarks/sweep.py, read "
                    "from the data folder $MATHTX_DATA_DIR (a sweep's --scratch), instead of the profile's runs")
    args = ap.parse_args()
    if not 0 < args.tol < 1:
        ap.error(f"--tol must be in (0, 1), got {args.tol}")
    specs = sweep_specs(ap, args.sweep) if args.sweep else \
        [s for s in PROFILES[args.profile].runs if s.config.task == "eigenvalues"]
    trained = [s for s in specs if run_status(s.config) == "done"]
    if not trained:
        if args.sweep:
            what, fix = "none of these candidates", "set MATHTX_DATA_DIR to a sweep's --scratch folder"
        else:
            what = f"no eigenvalue run of profile {args.profile}"
            fix = "restore the shipped models (python -m mathtx_helpers restore) or train them"
        ap.error(f"{what} is trained under {run_dir(specs[0].config).parent}: {fix}")
    for s in specs:
        if s not in trained:
            print(f"{s.name}: not trained, left out")
    tables = {s.name: pd.read_parquet(predict.predict(s.config, s.config.spectrum, size=s.test_size, progress=False))
              for s in trained}
    table = failures.spectrum_table(tables, args.tol)
    with pd.option_context("display.width", 200, "display.max_columns", 10):
        print(table.to_string(float_format=lambda x: f"{x:.4g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
