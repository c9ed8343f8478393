"""Time to accuracy: wall time and examples until each canonical run's fixed evaluation set first reaches its
targets, on this machine; examples/s; achieved model FLOP/s against a plain matmul's on the same threads.

    python benchmarks/time_to_accuracy.py                 # every canonical run, each recipe (about an hour)
    python benchmarks/time_to_accuracy.py --quick         # a few minutes: two runs with short caps
    python benchmarks/time_to_accuracy.py --quick --only eigenvectors   # its 200k-example cap
    python benchmarks/time_to_accuracy.py --only eigenvalues-laplace,addition-2layer
    python benchmarks/time_to_accuracy.py --reuse data    # read finished runs of a store instead of training

The canonical runs (3x3 matrices; 5-digit addition) and their targets:

    eigenvalues-semicircle, -laplace, -positive2   90 % and 95 % at 5 % on the run's own spectrum
    eigenvectors                                    80 % and 92 % at 5 %
    inversion                                       20 % and 50 % at 5 %
    addition-2layer                                 99.9 % exact match on the enriched check set

A recipe is a way to train a canonical run: its config (the budget is the cap), its thread count and the engine.
`today` is the committed cpu profile's run config on the current engine; `plain-loss` is the same config on the
engine before issue 13 (F.cross_entropy on the logits instead of model.HeadLoss). A new engine or recipe adds a
Variant to VARIANTS; recipes then train one after the other in a single call, each in its own scratch store (never
compare numbers across days: a shared machine drifts), and the table prints each variant's ratio to `today`.
Wall time is end to end: data generation, training steps, the periodic evaluations and checkpoints, as the
run's metrics.jsonl records it ("seconds").

Model FLOP/s = analytic training FLOPs (forward + backward = 3 x forward matmuls, as train_throughput.py counts
them) x examples / wall seconds, beside a plain fp32 matmul's FLOP/s at the same thread count: how much of this
machine's matmul speed the whole run turns into model arithmetic.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from train_throughput import cpu_flags, load_note, matmul_gflops, print_table, step_flop  # noqa: E402

from mathtx_helpers import profiles  # noqa: E402
from mathtx_helpers.arith.config import AddConfig  # noqa: E402
from mathtx_helpers.core import runs, store  # noqa: E402
from mathtx_helpers.matrix.config import RunConfig  # noqa: E402

TARGETS = {"eigenvalues": (0.90, 0.95), "eigenvectors": (0.80, 0.92), "inversion": (0.20, 0.50),
           "addition": (0.999,)}
CANONICAL = ("eigenvalues-semicircle", "eigenvalues-laplace", "eigenvalues-positive2", "eigenvectors", "inversion",
             "addition-2layer")
QUICK_RUNS = ("eigenvalues-semicircle", "addition-2layer")  # what --quick alone runs
QUICK = {"eigenvalues-semicircle": dict(examples=200_000, eval_every=25_000),
         "eigenvectors": dict(examples=200_000, eval_every=100_000),  # with --only: about 8 min a recipe
         "addition-2layer": dict(steps=2_000, eval_every=250)}  # short caps; a different run than the profile's


@dataclass(frozen=True)
class Recipe:
    name: str  # "today", or the variant's name
    run: str  # the canonical run it trains
    config: RunConfig | AddConfig
    threads: int
    note: str = ""
    fused_loss: bool = True  # the matrix engine's HeadLoss (False: the plain cross-entropy of the engine before)


def today(run: str, quick: bool) -> Recipe:
    """The committed cpu profile's run (matrix runs on all cores, as `make figures` trains them one after the
    other; the addition run on one thread, as it trains beside its 1-layer sibling)."""
    spec = profiles.get_profile("cpu").run(run)
    cfg = spec.config
    if quick and run in QUICK:
        cfg = cfg.replace(**QUICK[run])
    threads = 1 if isinstance(cfg, AddConfig) else (os.cpu_count() or 1)
    return Recipe("today", run, cfg, threads, "the cpu profile's settings" + (", quick cap" if quick else ""))


@dataclass(frozen=True)
class Variant:
    """An engine or recipe variant (issue 13): config changes to today's run and engine switches. Each trains
    beside today's in the same call, in its own scratch store (so an unchanged config is no clash)."""

    name: str
    runs: tuple[str, ...]  # the canonical runs it applies to
    changes: dict
    note: str
    fused_loss: bool = True


VARIANTS: list[Variant] = [
    # only where the engines differ: the other matrix runs' logits are below Seq2Seq.FUSED_LOSS_MIN, so their
    # plain-loss run would be today's run again, byte for byte
    Variant("plain-loss", ("eigenvectors",), {}, "the engine before issue 13: F.cross_entropy on the logits, "
            "never HeadLoss (which today's uses for large logits)", fused_loss=False),
    Variant("bf16", CANONICAL, dict(precision="bf16"), "bf16 autocast (matrix runs: what 'auto' would pick if the "
            "rule allowed AVX-512-BF16 without AMX; addition: AddConfig.precision, the shipped runs are fp32)"),
    Variant("P1000-inputs", ("eigenvectors",), dict(input_encoding="P1000"), "the input matrix in P1000 (sign, "
            "mantissa, exponent: 3 tokens a number from 1,328 shared words) instead of FP15 (1 token a number from "
            "29,128 words); sweep round 6"),
]
# Measured by their learning curves in examples instead (benchmarks/sweep.py round 4, docs/benchmarks.md) and
# left out here, as they learned less per example than today's recipe: B1999 eigen-decomposition outputs (3.8 %
# at 400k against P1000's 22.4 %), the cond(A) <= 10 and <= 5 inversion curricula (0.0 %), and for the
# eigenvalue models lr 1e-3, batch 32, beta2 0.98, soft targets, two shared FP15 embeddings, and P1000 inputs
# (round 6: within the two FP15 seeds' spread on all six spectra measured, at 0.93x the examples/s).


def variants(base: Recipe) -> list[Recipe]:
    return [Recipe(v.name, base.run, base.config.replace(**v.changes), base.threads, v.note, v.fused_loss)
            for v in VARIANTS if base.run in v.runs]


@dataclass
class Result:
    recipe: Recipe
    examples: int = 0  # trained in all
    seconds: float = math.nan  # wall, whole run
    final: float = math.nan  # last evaluation's accuracy
    reached: dict[float, tuple[int, float]] = field(default_factory=dict)  # target -> (examples, seconds)
    flop_per_example: float = math.nan

    @property
    def rate(self) -> float:
        return self.examples / self.seconds if self.seconds else math.nan


# --------------------------------------------------------------------------------------------------
# Training and reading a run
# --------------------------------------------------------------------------------------------------


def task_of(cfg) -> str:
    return "addition" if isinstance(cfg, AddConfig) else cfg.task


def accuracy(cfg, line: dict) -> float | None:
    """The line's accuracy on the run's own check set, or None for a loss-only line (addition)."""
    if isinstance(cfg, AddConfig):
        return line["acc"]["enriched"] if "acc" in line else None
    own = cfg.spectrum if cfg.spectrum in line["acc"] else cfg.test_spectra[0]
    return line["acc"][own]["0.05"]


def read(recipe: Recipe, folder: Path) -> Result:
    cfg = recipe.config
    lines = runs.read_metrics(folder)
    res = Result(recipe, flop_per_example=flop_per_example(cfg))
    if not lines:
        return res
    per_line = cfg.batch if isinstance(cfg, AddConfig) else 1
    count = "step" if isinstance(cfg, AddConfig) else "examples"
    res.examples, res.seconds = lines[-1][count] * per_line, lines[-1]["seconds"]
    for line in lines:
        acc = accuracy(cfg, line)
        if acc is None:
            continue
        res.final = acc
        for t in TARGETS[task_of(cfg)]:
            if acc >= t and t not in res.reached:
                res.reached[t] = (line[count] * per_line, line["seconds"])
    return res


def train(recipe: Recipe) -> None:
    from mathtx_helpers.matrix.model import Seq2Seq

    torch.set_num_threads(recipe.threads)
    Seq2Seq.fused_loss = recipe.fused_loss
    if isinstance(recipe.config, AddConfig):
        from mathtx_helpers.arith.train import train as train_addition

        train_addition(recipe.config, checkpoint_seconds=1e9, threads=recipe.threads, desc=recipe.run)
    else:
        from mathtx_helpers.matrix.train import train as train_matrix

        train_matrix(recipe.config, device="cpu", checkpoint_seconds=1e9, desc=recipe.run)


def flop_per_example(cfg) -> float:
    """Analytic training FLOPs per example (forward + backward = 3 x the forward matmuls)."""
    if isinstance(cfg, AddConfig):
        m, T = cfg.model, cfg.model.n_ctx
        per_token = m.n_layers * (2 * (4 * m.d_model * m.n_heads * m.d_head + 2 * m.d_model * m.d_mlp)
                                  + 4 * T * m.n_heads * m.d_head) + 2 * m.d_model * m.d_vocab
        return 3.0 * per_token * T
    from mathtx_helpers.matrix.train import Codec

    codec = Codec(cfg)
    return step_flop(cfg, codec, codec.src_len, codec.tgt_len) / cfg.batch


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def fmt_time(s: float) -> str:
    return "-" if s != s else (f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")


def report(results: list[Result], ceiling: dict[int, float]) -> None:
    rows = []
    for r in results:
        cfg = r.recipe.config
        cells = []
        for t in TARGETS[task_of(cfg)]:
            ex, s = r.reached.get(t, (math.nan, math.nan))
            cells.append(f"{100 * t:g} %: " + (f"{ex:,.0f} ex, {fmt_time(s)}" if ex == ex else
                                               f"not reached (cap {r.examples:,})"))
        achieved = r.rate * r.flop_per_example / 1e9
        share = achieved / ceiling[r.recipe.threads]
        rows.append([r.recipe.run, r.recipe.name, str(r.recipe.threads), f"{100 * r.final:.2f}",
                     "; ".join(cells), f"{r.rate:,.0f}", fmt_time(r.seconds), f"{achieved:.2f}",
                     f"{100 * share:.0f} %"])
    print_table(["run", "recipe", "thr", "final %", "first reached (examples, wall)", "ex/s", "wall",
                 "model GFLOP/s", "of matmul"], rows, left=2)
    print(f"plain fp32 {'x'.join(map(str, (2048, 256, 1024)))} matmul: " +
          ", ".join(f"{g:.1f} GFLOP/s on {t} thread{'s' * (t > 1)}" for t, g in sorted(ceiling.items())))
    base = {r.recipe.run: r for r in results if r.recipe.name == "today"}
    ratios = [r for r in results if r.recipe.name != "today" and r.recipe.run in base]
    if ratios:
        print("\nratios to today (time to target: < 1 is faster; examples/s: > 1 is faster)")
        rows = []
        for r in ratios:
            b = base[r.recipe.run]
            cells = []
            for t in TARGETS[task_of(r.recipe.config)]:
                mine, theirs = r.reached.get(t, (math.nan, math.nan))[1], b.reached.get(t, (math.nan, math.nan))[1]
                cells.append(f"{100 * t:g} %: {mine / theirs:.2f}" if mine == mine and theirs == theirs else
                             f"{100 * t:g} %: -")
            rows.append([r.recipe.run, r.recipe.name, "; ".join(cells), f"{r.rate / b.rate:.2f}"])
        print_table(["run", "recipe", "time to target", "examples/s"], rows, left=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="see the module docstring",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two runs with short caps (a few minutes)")
    ap.add_argument("--only", default="", help=f"comma list of runs among {', '.join(CANONICAL)}")
    ap.add_argument("--recipes", default="", help="comma list of recipes (default: today and every variant)")
    ap.add_argument("--reuse", default="", metavar="DATA", help="read the finished runs of this data folder (e.g. "
                    "data, after `make figures`) instead of training: their wall times are whatever that machine "
                    "and its load gave")
    ap.add_argument("--matmul-seconds", type=float, default=2.0, help="timed seconds of the matmul ceiling (2)")
    args = ap.parse_args(argv)
    chosen = [r for r in args.only.split(",") if r] or (list(QUICK_RUNS) if args.quick else list(CANONICAL))
    unknown = [r for r in chosen if r not in CANONICAL]
    if unknown:
        ap.error(f"unknown run {unknown[0]!r}; valid: {', '.join(CANONICAL)}")
    bases = [today(r, args.quick) for r in chosen]
    recipes = [r for base in bases for r in (base, *variants(base))]  # interleaved: today, its variants, next run
    if args.recipes:
        names = set(args.recipes.split(","))
        known = {r.name for r in recipes}
        if names - known:
            ap.error(f"unknown recipe {sorted(names - known)[0]!r}; valid: {', '.join(sorted(known))}")
        recipes = [r for r in recipes if r.name in names]
    if args.reuse and not Path(args.reuse).is_dir():
        ap.error(f"--reuse {args.reuse!r} is not a folder")

    print(f"time_to_accuracy.py  {'quick' if args.quick else 'full'}  runs {','.join(chosen)}  "
          f"torch {torch.__version__}  {cpu_flags()}")
    print(load_note("at start"))
    results = []
    scratch = tempfile.TemporaryDirectory(prefix="mathtx-tta-")
    for recipe in recipes:
        data = Path(args.reuse).resolve() if args.reuse else Path(scratch.name) / recipe.name
        store.DATA = data  # run folders of this recipe (a scratch store: nothing under data/ is touched)
        folder = runs.run_dir(recipe.config.name)
        if not args.reuse:
            t0 = time.perf_counter()
            train(recipe)
            print(f"  {recipe.run} [{recipe.name}] trained in {time.perf_counter() - t0:.0f} s", flush=True)
        elif not recipe.fused_loss:
            print(f"  {recipe.run} [{recipe.name}]: an engine variant has no run of its own to reuse; skipped")
            continue
        elif runs.checkpoint_status(folder) != "done":
            print(f"  {recipe.run} [{recipe.name}]: no finished run {recipe.config.name} in {args.reuse}; skipped")
            continue
        results.append(read(recipe, folder))
    ceiling = {t: matmul_gflops(torch.float32, t, args.matmul_seconds, 0, torch.device("cpu"))
               for t in sorted({r.recipe.threads for r in results})}
    print(load_note("at the end"))
    print()
    if results:
        report(results, ceiling)
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
