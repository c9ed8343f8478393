"""Predictions: run a trained model over a fixed test set -> one parquet row per problem.

Test sets are fixed and seeded: data/testsets/<name>.npz holds the inputs A (as the model sees them) and the
exact targets, with its sha256 beside it; a set whose bytes no longer match is refused (delete it to
regenerate). A prediction table holds, per problem: the input, the reference, the decoded prediction (None
if invalid), the raw tokens and per-token log-probabilities, validity, the verifier's error and every
property error and condition number the analyses use (tasks.property_errors), and the model's confidence
(sum and minimum of the token log-probabilities). Analyses then never need the model again. On a CPU the
decoding is fp32 whatever precision trained the weights (devices.decode_precision).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core import devices, runs, store
from . import tasks
from .config import RunConfig
from .train import decode_problems, load_model, run_dir

TESTSETS = "testsets"
DECODE_BATCH = 512  # problems decoded at once: a table decoded in other batches says so in its name


def testset_name(task: str, n: int, spectrum: str, size: int, seed: int, input_encoding: str,
                 output_encoding: str = "P1000") -> str:
    spec = tasks.spectrum_label(task, spectrum)
    # v2: each (task, spectrum) draws its own stream; v1 files (shared streams) are never picked up again.
    # The output encoding decides which draws are redrawn (a target it cannot write): named unless P1000.
    out = f"-to{output_encoding}" if output_encoding != "P1000" else ""
    return f"{task}-n{n}-{spec}-{input_encoding}{out}-{size}-s{seed}-v2"


def testset(task: str, n: int, spectrum: str, size: int, seed: int = 12345, input_encoding: str = "FP15",
            output_encoding: str = "P1000") -> tuple[str, tasks.Problems]:
    """Load (or create once) a fixed test set; returns its name and problems."""
    name = testset_name(task, n, spectrum, size, seed, input_encoding, output_encoding)
    path = store.DATA / TESTSETS / f"{name}.npz"
    digest = path.with_suffix(".sha256")
    if path.exists() and digest.exists():
        if store.sha256(path) != digest.read_text().strip():
            raise ValueError(f"{store.relative(path)} does not match its recorded sha256; delete both files "
                             f"to regenerate the test set")
        with np.load(path) as z:
            return name, tasks.Problems(task, str(z["spectrum"]), z["A"], z["target"])
    spec = tasks.drawn_spectrum(task, spectrum)
    rng = np.random.default_rng([seed, size, n, store.seed_tag(f"{task}/{spec}")])  # each set its own stream
    probs = tasks.make_problems(task, n, size, rng, spec, input_encoding, output_encoding)
    buf = io.BytesIO()
    np.savez(buf, A=probs.A, target=probs.target, spectrum=np.array(probs.spectrum))
    store.write_bytes(path, buf.getvalue())
    store.write_text(digest, store.sha256(path) + "\n")
    return name, probs


def predictions_table(problems: tasks.Problems, P: np.ndarray, valid: np.ndarray, tokens: np.ndarray,
                      logp: np.ndarray, eos: int) -> pd.DataFrame:
    """One row per problem (see the module docstring)."""
    props = tasks.property_errors(problems.task, problems.A, P)
    B = len(problems)
    lengths = np.array([int(np.argmax(row == eos)) + 1 if (row == eos).any() else row.size for row in tokens])
    lp_gen = [logp[i, 1:lengths[i]] for i in range(B)]  # the generated tokens' log-probabilities
    df = pd.DataFrame({
        "problem": list(problems.A.reshape(B, -1)),
        "reference": list(problems.target.reshape(B, -1)),
        "prediction": [P[i].ravel() if valid[i] else None for i in range(B)],
        "tokens": [tokens[i, :lengths[i]] for i in range(B)],
        "logprobs": lp_gen,
        "valid": valid,
        "logprob_sum": [float(x.sum()) for x in lp_gen],
        "logprob_min": [float(x.min()) if x.size else 0.0 for x in lp_gen],
        **props,
    })
    return df


def predict(cfg: RunConfig, spectrum: str | None = None, size: int = 10_000, seed: int = 12345,
            snapshot: int | None = None, batch: int = DECODE_BATCH, beam: int = 1, device=None,
            progress: bool = True) -> Path:
    """Predict a run's test set; write and return data/runs/<run>/predictions/<set>[@<snapshot>].parquet.
    An existing table for the same test set, checkpoint, beam, decoding batch and decoding precision is reused. A
    table decoded in another precision than its run trained in (a bf16 run decoded in fp32 on a CPU:
    devices.decode_precision) says so in its name, "-fp32", so that a table decoded in bf16 before this rule is
    never read for it; one decoded in batches of other than 512 says "-b<batch>" (the tokens are the same, the
    log-probabilities may differ in their last bits)."""
    spectrum = spectrum or cfg.test_spectra[0]
    name, probs = testset(cfg.task, cfg.n, spectrum, size, seed, cfg.input_encoding, cfg.output_encoding)
    trained = runs.recorded_precision(run_dir(cfg))
    if trained is None and (run_dir(cfg) / "checkpoint.pt").exists():  # a folder that records no precision
        trained = runs.load_checkpoint(run_dir(cfg) / "checkpoint.pt")["precision"]
    device = torch.device(device) if device is not None else devices.default_device()
    precision = devices.decode_precision(trained, device) if trained else None
    tag = name + (f"@{snapshot}" if snapshot is not None else "") + (f"-beam{beam}" if beam > 1 else "") \
        + (f"-b{batch}" if batch != DECODE_BATCH else "") + (f"-{precision}" if precision != trained else "")
    out = run_dir(cfg) / "predictions" / f"{tag}.parquet"
    if out.exists():
        return out
    with runs.RunLock(run_dir(cfg), what="predict"):
        if out.exists():  # written while we waited for the lock
            return out
        model, codec, _ = load_model(cfg, device, snapshot)  # (precision: known above from the folder)
        P, valid, tokens, logp = decode_problems(model, codec, probs, device, precision, batch=batch, beam=beam,
                                                 progress=progress)
        df = predictions_table(probs, P, valid, tokens, logp, codec.tgt.eos)
        return store.write_parquet(out, df)


WEAKER = (0.65, 0.75)  # the weaker eigen-decomposition model's accuracy at 5 %: the paper's ~70 % model


def pick_snapshot(cfg: RunConfig, low: float = WEAKER[0], high: float = WEAKER[1],
                  spectrum: str | None = None) -> int | None:
    """The snapshot (examples seen) whose evaluation accuracy at 5% is closest to the middle of [low, high]
    among those inside it, for a weaker model like the paper's ~70% one; None if no snapshot is inside."""
    from ..core.runs import read_metrics

    spectrum = spectrum or cfg.test_spectra[0]
    folder = run_dir(cfg) / "snapshots"
    inside = [(abs(m["acc"][spectrum]["0.05"] - (low + high) / 2), m["examples"]) for m in read_metrics(run_dir(cfg))
              if low <= m["acc"][spectrum]["0.05"] <= high and (folder / f"{m['examples']}.pt").exists()]
    return min(inside)[1] if inside else None

