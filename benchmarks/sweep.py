"""Learning curves of candidate training settings, in examples seen: how the `cpu` profile was chosen.

Accuracy against examples seen does not depend on the device (fp32 on both), so the curves can be measured
where they are cheap (many small runs side by side on one GPU) and the CPU cost of a setting is then its
examples-to-target divided by its CPU throughput (benchmarks/train_throughput.py). Each candidate is an
ordinary RunConfig trained by train.train in its own process, in a scratch data folder; the script stops them
all at --deadline seconds and writes every metrics line reached so far to --out (JSON: name -> config, lines).

A run longer than a session: --scratch DIR keeps the data folder (instead of a fresh temporary one) and makes each
run checkpoint every --checkpoint-seconds (default 120 with --scratch); the same command again resumes every run
from its last checkpoint (exactly: train.train resumes bit for bit), skips the finished ones, and writes the whole
curves, from the first example, to --out.

Run:  python benchmarks/sweep.py --out sweep.json [--jobs 12] [--deadline 480] [--only name1,name2]
                                 [--scratch DIR [--checkpoint-seconds 120]]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mathtx_helpers import profiles  # noqa: E402
from mathtx_helpers.matrix.config import RunConfig  # noqa: E402

# The cpu profile's base as of the sweep (n=3, FP15 upper triangle -> P1000, d128, 4 heads, 2+1 layers).
BASE = dict(n=3, d_model=128, n_heads=4, enc_layers=2, dec_layers=1, batch=256, lr=5e-4, warmup=300,
            eval_size=500, precision="fp32")


# The cpu profile's eigenvalue recipe on top of BASE (d64, batch 64, 300-problem evaluations, 1,000 warm-up steps):
# what rounds 4 and 5 change one thing of
SMALL = dict(d_model=64, batch=64, eval_size=300, warmup=1000)


# the cpu profile's eigen-decomposition run as it is shipped (models/cpu/eigenvectors.npz), flattened
_PROFILE_EIGENVECTORS = profiles.get_profile("cpu").run("eigenvectors").config.flat()


def _cfg(task: str, examples: int, eval_every: int, **kw) -> dict:
    return {**BASE, "task": task, "examples": examples, "eval_every": eval_every, **kw}


CANDIDATES: dict[str, dict] = {
    # eigen-decomposition: the hardest budget (the 70-97 % band)
    "vec-b256-lr5e-4": _cfg("eigenvectors", 2_000_000, 100_000),
    "vec-b128-lr5e-4": _cfg("eigenvectors", 2_000_000, 100_000, batch=128, warmup=600),
    "vec-b64-lr3e-4": _cfg("eigenvectors", 2_000_000, 100_000, batch=64, lr=3e-4, warmup=1000),
    "vec-b256-lr1e-3": _cfg("eigenvectors", 2_000_000, 100_000, lr=1e-3, warmup=600),
    "vec-b128-3+2": _cfg("eigenvectors", 2_000_000, 100_000, batch=128, warmup=600, enc_layers=3, dec_layers=2),
    "vec-b128-B1999": _cfg("eigenvectors", 2_000_000, 100_000, batch=128, warmup=600, output_encoding="B1999"),
    # eigenvalues: laplace and gaussian were the slowest spectra
    "val-laplace-b256": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace"),
    "val-laplace-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", batch=128, warmup=600),
    "val-laplace-b64-lr3e-4": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", batch=64, lr=3e-4,
                                   warmup=1000),
    "val-laplace-b128-lr1e-3": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", batch=128, lr=1e-3,
                                    warmup=600),
    "val-gaussian-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="gaussian", batch=128, warmup=600),
    "val-semicircle-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="semicircle", batch=128, warmup=600),
    # inversion (full 3x3 input)
    "inv-b128": _cfg("inversion", 1_500_000, 100_000, batch=128, warmup=600, upper=False),
    # round 2 (after round 1: batch 128 beats 256, lr 1e-3 hurts eigenvalues, 3+2 layers help eigenvectors,
    # inversion learns nothing by 1.5M): cheaper eigenvalue models, the other spectra, deeper inversion
    "val-laplace-d64-b64": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", d_model=64, batch=64,
                                warmup=1000),
    "val-laplace-d64-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", d_model=64, batch=128,
                                 warmup=600),
    "val-laplace-1+1-b64": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", enc_layers=1, batch=64,
                                lr=3e-4, warmup=1000),
    "val-laplace-b64-lr5e-4": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", batch=64, warmup=1000),
    "val-laplace-2+2-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="laplace", dec_layers=2, batch=128,
                                 warmup=600),
    "val-uniform-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="uniform", batch=128, warmup=600),
    "val-positive-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="positive", batch=128, warmup=600),
    "val-positive2-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="positive2", batch=128, warmup=600),
    "val-marcenko-b128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="marcenko", batch=128, warmup=600),
    "vec-b128-3+2-lr1e-3": _cfg("eigenvectors", 2_000_000, 100_000, batch=128, lr=1e-3, warmup=600,
                                enc_layers=3, dec_layers=2),
    "vec-b128-2+2": _cfg("eigenvectors", 2_000_000, 100_000, batch=128, warmup=600, dec_layers=2),
    "inv-b128-3+2": _cfg("inversion", 3_000_000, 150_000, batch=128, warmup=600, upper=False, enc_layers=3,
                         dec_layers=2),
    "inv-d256-4+2": _cfg("inversion", 2_000_000, 100_000, batch=128, lr=3e-4, warmup=1000, upper=False,
                         d_model=256, n_heads=8, enc_layers=4, dec_layers=2),
    # round 3, towards re-tuning the gpu profile (5x5; its batch-512 runs barely learned in 10M examples)
    "gpu5-val-d256-b128": _cfg("eigenvalues", 5_000_000, 250_000, n=5, upper=False, d_model=256, n_heads=8,
                               enc_layers=4, batch=128, warmup=1000),
    "gpu5-val-d128-b64": _cfg("eigenvalues", 5_000_000, 250_000, n=5, upper=False, batch=64, warmup=1000),
    "gpu5-val-d256-b512-lr1e-3": _cfg("eigenvalues", 5_000_000, 250_000, n=5, upper=False, d_model=256,
                                      n_heads=8, enc_layers=4, batch=512, lr=1e-3, warmup=1000),
    # round 4 (issue 13, on this 2-core CPU, one thread per run): the cpu profile's eigenvalue recipe (d64, 2+1,
    # batch 64, lr 5e-4), 300k examples. Two source embeddings that share rows between FP15 words were measured
    # against LAWT's free table and removed (benchmarks/results/sweep_round4_cpu.json): "factored" (an FP15
    # word's row = its signed mantissa's + its exponent's) reached 10.7 % (semicircle) and 11.3 % (laplace)
    # against the table's 72.3 % and 8.3 %; "value" (the table + a learned projection of fixed features of the
    # word's value) 15.0 % and 8.7 %.
    **{f"val4-{s}-table": _cfg("eigenvalues", 300_000, 25_000, spectrum=s, **SMALL) for s in ("semicircle", "laplace")},
    # round 4b: optimizer levers on the same recipe (one seed each; seed 1 of today's for the seed-to-seed spread)
    **{f"val4-semicircle-{k}": _cfg("eigenvalues", 300_000, 25_000, spectrum="semicircle", **{**SMALL, **kw})
       for k, kw in {"seed1": dict(seed=1), "warmup200": dict(warmup=200),
                     "lr1e-3-warmup200": dict(lr=1e-3, warmup=200), "d128": dict(d_model=128),
                     "b32": dict(batch=32, warmup=2000),
                     "b32-lr3e-4": dict(batch=32, lr=3e-4, warmup=2000)}.items()},
    # AdamW's beta2 0.98 instead of 0.999 was measured and its field removed: 14.0 % at 300k (11.3 % with
    # warm-up 200) against 72.3 %.
    # Soft targets (a Gaussian of width sigma over the neighbouring output mantissas, in the loss) were measured
    # and removed: sigma 1.5 reached 60.0 % (seed 0) at 300k against the one-hot targets' 72.3 %, and 16.0 %
    # (seed 1) at 200k against 25.3 %; sigma 3 57.3 % and 14.0 % (sweep_round4_cpu.json).
    # round 4c: 3x3 inversion (the cpu profile's d64 2+1 recipe and seven changes to it), 150k examples each
    # (inv4-today also at 300k: 0.0 % at every evaluation)
    **{f"inv4-{k}": _cfg("inversion", 150_000, 25_000, upper=False, **{**SMALL, **kw})
       for k, kw in {"today": {}, "cond10": dict(max_cond=10.0), "cond5-then-all": dict(max_cond=5.0,
                     curriculum_examples=150_000), "d128-4+1": dict(d_model=128, enc_layers=4, lr=3e-4),
                     "lawt-d128-4+1-const1e-4": dict(d_model=128, enc_layers=4, lr=1e-4, schedule="constant",
                                                     warmup=2000),
                     "b32": dict(batch=32, warmup=2000), "B1999": dict(output_encoding="B1999"),
                     "2+2-lr1e-3": dict(dec_layers=2, lr=1e-3)}.items()},
    # round 4d: the cpu profile's eigen-decomposition recipe (d128, 3+2, batch 128, lr 1e-3) with P1000 and with
    # B1999 outputs (2 tokens a number instead of 3: 26 target tokens instead of 38), 400k examples each
    **{f"vec4-{e}": _cfg("eigenvectors", 400_000, 50_000, batch=128, lr=1e-3, warmup=600, enc_layers=3,
                         dec_layers=2, output_encoding=e) for e in ("P1000", "B1999")},
    # round 5: positive2, the spectrum no recipe of the cpu profile trains (31.8 / 31.9 % on both seeds after 1M
    # examples with d64 b64 lr 5e-4): the profile's recipe with one change each, 1M-example schedules, stopped at
    # the deadline; precision "auto" (bf16 where the CPU has AMX: per example it learned like fp32)
    **{f"val5-positive2-{k}": _cfg("eigenvalues", 1_000_000, 50_000, spectrum="positive2",
                                   **{**SMALL, "precision": "auto", **kw})
       for k, kw in {"d128": dict(d_model=128), "lr3e-4": dict(lr=3e-4), "3+1": dict(enc_layers=3),
                     "b32": dict(batch=32, warmup=2000)}.items()},
    # round 5b: the 3+1 layers that doubled positive2, on the other plateauing spectra and on semicircle (a recipe
    # for every spectrum must not cost the one that trains today)
    **{f"val5-{sp}-3+1": _cfg("eigenvalues", 1_000_000, 50_000, spectrum=sp, **SMALL, precision="auto",
                              enc_layers=3)
       for sp in ("positive", "marcenko", "semicircle")},
    # round 6: the input encoding. Every earlier candidate read FP15 inputs (one token per number from a
    # 29,128-word table, a row each for every sign x mantissa x exponent, each learning its number's value alone:
    # 1M examples hold 6M numbers for those 29,128 words). P1000 inputs write a number as sign, mantissa (0-999)
    # and exponent tokens (3 tokens a number, 20 source tokens for an upper triangle instead of 8) from 1,328
    # words shared by all numbers: the same 3 significant digits, the same verifier. fp32, seed 0 unless named.
    # Measured (sweep_round6_cpu.json, docs/benchmarks.md): every spectrum within the two FP15 seeds' spread at 1M
    # (gaussian 96.7 / 84.0 % on two seeds); the eigen-decomposition ahead per example (400k schedule: 51.4 against
    # 22.4 %; profile schedule: 39.6 against 27.4 / 32.0 % at 700k) but at 0.84x the examples/s, which left its time
    # to 40 % unchanged (1.04x); inversion (inv6-P1000in) 0.0 % at every evaluation to 300k.
    **{f"val6-{sp}-P1000in{'-seed1' if seed else ''}": _cfg(
        "eigenvalues", 1_000_000, 50_000, spectrum=sp, **SMALL, input_encoding="P1000", seed=seed)
       for sp, seed in (("positive2", 0), ("gaussian", 0), ("laplace", 0), ("semicircle", 0), ("marcenko", 0),
                        ("uniform", 0), ("positive", 0), ("positive2", 1), ("gaussian", 1))},
    # the same input encoding for the eigen-decomposition (round 4d's vec4-P1000 with P1000 inputs)
    "vec6-P1000in": _cfg("eigenvectors", 400_000, 50_000, batch=128, lr=1e-3, warmup=600, enc_layers=3,
                         dec_layers=2, input_encoding="P1000"),
    # ... and on the cpu profile's own eigen-decomposition run (1.8M-example cosine schedule, evaluated every 100k
    # on 500 problems), P1000 inputs its one change: its curve reads against the shipped run's metrics.jsonl
    **{f"vec6-profile-P1000in{'-seed1' if seed else ''}": {**_PROFILE_EIGENVECTORS, "input_encoding": "P1000",
                                                             "precision": "fp32", "seed": seed} for seed in (0, 1)},
    # ... and on 3x3 inversion (round 4c's inv4-today, 300k examples, with P1000 inputs: 29 source tokens)
    "inv6-P1000in": _cfg("inversion", 300_000, 25_000, upper=False, **SMALL, input_encoding="P1000"),
    # round 7: width against the seed lottery. Round 5's d128 doubled positive2 (65 % against 32-36 % at 1M), as 3+1
    # layers did, but only 3+1 was tried on the other spectra. Here d128 (the profile's recipe otherwise, fp32)
    # on the four seed-0 runs that ended lowest: gaussian 21 %, uniform 33 %, marcenko 53 %, positive 74 %.
    # Measured (sweep_round7_cpu.json, docs/benchmarks.md): at 1M uniform 96.0 %, marcenko 78.3 %, positive 78.0 %,
    # each above both d64 seeds, gaussian 25.0 % (seed 0 fails at both widths); d128 trains at 0.52x the examples/s.
    **{f"val7-{sp}-d128": _cfg("eigenvalues", 1_000_000, 50_000, spectrum=sp, **{**SMALL, "d_model": 128})
       for sp in ("gaussian", "uniform", "marcenko", "positive")},
    # round 8: the budgets the issue asks for, longer than a session (run with --scratch, resumed across sessions).
    # 3x3 inversion with the cpu profile's recipe (round 4c's inv4-today) on a 10M-example cosine schedule: every
    # earlier inversion candidate stopped at 150k-300k on this CPU (577 examples/s on one thread: ~4.8 h); beside
    # it, the profile's eigen-decomposition run with P1000 inputs to its full 1.8M (vec6-profile-P1000in).
    "inv8-today-10M": _cfg("inversion", 10_000_000, 250_000, upper=False, **SMALL),
    # round 9: the whole matrix as input. The cpu profile sends the upper triangle of a symmetric matrix (6 numbers,
    # 8 source tokens); LAWT and the gpu profile send all n^2 entries (11 tokens here), so that each row (and each
    # column) of A sits together in the sequence. What the stalled eigenvalue models miss is the spectrum's shape,
    # the determinant's part (benchmarks/eigenvalue_diagnosis.py), a sum of products of one entry from each row:
    # the profile's recipe with upper=False, its one change, on the four seed-0 runs that ended lowest.
    # Measured (sweep_round9_cpu.json, docs/benchmarks.md), 10,000-problem test sets at 1M: gaussian 94.7 % (upper
    # triangle: 22.8 / 93.0 % on two seeds), positive2 64.9 % (31.8 / 31.9 %), uniform 38.1 % (36.3 / 87.7 %),
    # marcenko 51.4 % (51.5 / 75.7 %); round 9b: positive 42.0 % (71.0 / 71.4 %), positive2 seed 1 50.9 %. No lever for
    # every spectrum: the profile keeps the upper triangle.
    **{f"val9-{sp}-full{'-seed1' if seed else ''}": _cfg("eigenvalues", 1_000_000, 50_000, spectrum=sp, **SMALL,
                                                         upper=False, seed=seed)
       for seed in (0, 1)
       for sp in ("gaussian", "uniform", "positive2", "marcenko", "positive", "laplace", "semicircle")},
}

WORKER = """
import json, sys
from mathtx_helpers.matrix.train import RunConfig, train
train(RunConfig.from_dict(json.loads(sys.argv[1])), progress=False, checkpoint_seconds=float(sys.argv[2]))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=len(CANDIDATES))
    ap.add_argument("--deadline", type=float, default=480.0, help="seconds before every job is stopped")
    ap.add_argument("--scratch", default="", help="a data folder to keep (runs resume from it); default: a fresh "
                    "temporary one")
    ap.add_argument("--checkpoint-seconds", type=float, default=None,
                    help="seconds between checkpoints (default: 120 with --scratch, none without)")
    ap.add_argument("--only", default="", help="comma-separated candidate names; valid: " + ", ".join(CANDIDATES))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        ap.error(f"unknown candidate {unknown[0]!r}; valid: {', '.join(CANDIDATES)}")
    configs = {n: RunConfig.from_dict(CANDIDATES[n]) for n in names}  # validates before any work
    if args.checkpoint_seconds is not None and args.checkpoint_seconds <= 0:
        ap.error(f"--checkpoint-seconds must be positive, got {args.checkpoint_seconds}")
    every = args.checkpoint_seconds or (120.0 if args.scratch else 1e9)
    scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="sweep-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"data folder {scratch} (checkpoints every {every:g} s)", flush=True)
    env = {**os.environ, "MATHTX_DATA_DIR": str(scratch), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": str(ROOT)}
    pending, running, t0 = list(names), {}, time.monotonic()
    while (pending or running) and time.monotonic() - t0 < args.deadline:
        while pending and len(running) < args.jobs:
            n = pending.pop(0)
            payload = json.dumps(dataclasses.asdict(configs[n]))
            running[n] = subprocess.Popen([sys.executable, "-c", WORKER, payload, str(every)], env=env)
        for n, p in list(running.items()):
            if p.poll() is not None:
                print(f"{time.monotonic() - t0:6.0f}s {n} exited {p.returncode}", flush=True)
                del running[n]
        time.sleep(2)
    for n, p in running.items():
        p.kill()
        print(f"{time.monotonic() - t0:6.0f}s {n} stopped at the deadline", flush=True)
    result = {}
    for n in names:
        metrics = scratch / "runs" / configs[n].name / "metrics.jsonl"
        lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if metrics.exists() else []
        result[n] = {"config": dataclasses.asdict(configs[n]), "lines": lines}
        last = lines[-1] if lines else None
        if last:
            acc = last["acc"][configs[n].test_spectra[0]]
            print(f"{n:28s} {last['examples']:>9,} ex {last['seconds']:6.0f}s  acc@5% {acc['0.05']:.3f}", flush=True)
        else:
            print(f"{n:28s} no evaluation reached", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
