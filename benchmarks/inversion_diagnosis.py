"""What an inversion model has learned when its accuracy reads 0 %: entry by entry, against the true inverse.

    python benchmarks/inversion_diagnosis.py DATA [DATA ...]     # every finished inversion run under DATA/runs
    python benchmarks/inversion_diagnosis.py --partial DATA      # ... and the ones still training, at their
                                                                 # last checkpoint (a run longer than a session)

For each run: accuracy at 5 % (the verifier's sum|A P - I| / n), the median distance to the true inverse
(sum|P - A^-1| / sum|A^-1|: 1 is what predicting 0 scores), and per entry of P: the share with the right sign, with
the right order of magnitude (|log10|p| - log10|a|| < 0.5), and within 5 % of the true entry. 2,000 fresh problems
of the training distribution (iid U[-10, 10], seed 0, rounded to the run's input encoding: FP15 or P1000), greedy
decoding on one thread.

The first row is two rules that need no model: every entry's magnitude is the median |entry| of A^-1, and the
sign of (A^-1)_ij is the sign of A_ji (the transpose). A model no better than this row has learned the
distribution's shape, not inversion.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mathtx_helpers.core import runs, store  # noqa: E402
from mathtx_helpers.matrix import tasks, train  # noqa: E402
from mathtx_helpers.matrix.config import RunConfig  # noqa: E402


def problems(size: int, input_encoding: str = "FP15") -> tasks.Problems:
    """The fixed diagnosis set: fresh 3x3 inversion problems of the training distribution (seed 0), inputs rounded
    to `input_encoding` (the targets are the exact inverses of the rounded inputs)."""
    return tasks.make_problems("inversion", 3, size, np.random.default_rng(0), input_encoding=input_encoding)


def score(probs: tasks.Problems, P: np.ndarray, valid: np.ndarray) -> dict:
    """Predictions P (B, n, n), NaN where invalid, against the exact inverses probs.target, entry by entry."""
    p, a = P[valid], probs.target[valid]
    with np.errstate(all="ignore"):
        dist = np.abs(p - a).sum(axis=(1, 2)) / np.abs(a).sum(axis=(1, 2))
        magnitude = np.abs(np.log10(np.abs(p)) - np.log10(np.abs(a))) < 0.5
        close = np.abs(p - a) <= 0.05 * np.abs(a)
    return {"valid": float(valid.mean()), "acc5": float(np.mean(tasks.verify("inversion", probs.A, P) < 0.05)),
            "median_distance": float(np.median(dist)), "sign": float(np.mean(np.sign(p) == np.sign(a))),
            "magnitude": float(np.mean(magnitude)), "entry_within_5pc": float(np.mean(close))}


def diagnose(cfg: RunConfig, probs: tasks.Problems) -> dict:
    model, codec, precision = train.load_model(cfg, "cpu")
    P, valid, _, _ = train.decode_problems(model, codec, probs, "cpu", precision)
    return score(probs, P, valid.astype(bool))


def baseline(probs: tasks.Problems) -> dict:
    """The two model-free rules of the docstring, scored like a model."""
    P = np.sign(np.swapaxes(probs.A, 1, 2)) * np.median(np.abs(probs.target))
    return score(probs, P, np.ones(len(probs), dtype=bool))


def row(name: str, examples: str, d: dict, changes: str) -> str:
    return (f"{name:36s} {examples:>21s} {d['valid']:6.3f} {100 * d['acc5']:6.1f}% {d['median_distance']:6.3f} "
            f"{d['sign']:6.3f} {d['magnitude']:6.3f} {d['entry_within_5pc']:6.3f}  {changes}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="data folders holding runs/ (a sweep's scratch store, data/)")
    ap.add_argument("--size", type=int, default=2_000)
    ap.add_argument("--partial", action="store_true",
                    help="also diagnose runs still training, at their last checkpoint")
    args = ap.parse_args()
    if args.size < 1:
        ap.error(f"--size must be positive, got {args.size}")
    missing = [d for d in args.data if not (Path(d) / "runs").is_dir()]
    if missing:
        ap.error(f"{missing[0]!r} has no runs/ folder: give a data folder (data, or a sweep's scratch store)")
    torch.set_num_threads(1)
    print(f"{'run':36s} {'examples':>21s} {'valid':>6s} {'acc@5%':>7s} {'dist':>6s} {'sign':>6s} {'order':>6s} "
          f"{'<5%':>6s}  config")
    sets = {"FP15": problems(args.size)}
    print(row("no model: median magnitude, sign of A^T", "-", baseline(sets["FP15"]), "(two rules)"), flush=True)
    wanted = ("done", "partial") if args.partial else ("done",)
    for data in args.data:
        store.DATA = Path(data).resolve()
        for folder in sorted((store.DATA / "runs").glob("inversion-*")):
            status = runs.checkpoint_status(folder)
            if status not in wanted:
                continue
            flat = json.loads((folder / "config.json").read_text())
            cfg = RunConfig.from_dict(flat)
            if cfg.n != 3:  # the diagnosis set is 3x3
                print(f"{folder.name}: n={cfg.n}; skipped")
                continue
            if cfg.input_encoding not in sets:
                sets[cfg.input_encoding] = problems(args.size, cfg.input_encoding)
            d = diagnose(cfg, sets[cfg.input_encoding])
            seen = f"{cfg.examples:,}"
            if status == "partial":
                seen = f"{runs.load_checkpoint(folder / 'checkpoint.pt')['examples']:,} of {seen}"
            keys = ("d_model", "enc_layers", "dec_layers", "batch", "lr", "schedule", "input_encoding",
                    "output_encoding", "max_cond")
            print(row(folder.name, seen, d, " ".join(f"{k}={flat[k]}" for k in keys if k in flat)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
