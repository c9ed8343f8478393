"""Named profiles: how much each notebook does, and where its outputs go.

    smoke  CI and nbval: proves every code path in under a minute per notebook; results meaningless
    cpu    the default, a reader's laptop: results that show the paper's phenomena (make figures <= 60 min)
    gpu    one GPU: the paper's 5x5 setting
    paper  the exact LAWT / WIMTD sizes (days of GPU)

The notebooks' `profile` parameter defaults to the environment variable MATHTX_PROFILE, else `cpu`.
Each profile names its training runs (RunSpec): the eigenvalue models of the seven training spectra (the
semicircle one is also the main eigenvalue model), an eigen-decomposition model and an inversion model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import arith_train, side_by_side, store
from .arith_train import AddConfig
from .predict import predict
from .train import Codec, RunConfig, read_metrics, run_dir, run_status, train

PROFILE_ENV = "MATHTX_PROFILE"
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class RunSpec:
    """A training run of a profile: its config, and what the notebooks ask of it."""

    name: str  # short name used by the notebooks: "eigenvalues-laplace", "eigenvectors", "inversion"
    config: RunConfig
    purpose: str
    snapshots: bool = False  # keep the weights at every evaluation (for a weaker, earlier model)
    test_size: int = 10_000  # problems per test set in the predictions


@dataclass(frozen=True)
class AddRunSpec:
    """An addition run of a profile (notebooks 06-07)."""

    name: str  # "addition-2layer" (the accurate model), "addition-1layer" (Paper 1's contrast)
    config: AddConfig
    purpose: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    figures: str  # folder (relative to the repo root) that owns this profile's figures
    samples: int  # problems per distribution in notebook 01 (spectra, gaps, condition numbers)
    ceiling_samples: int  # problems per (task, n, encoding) for the encoding ceiling
    sizes: tuple[int, ...]  # matrix sizes shown in notebook 01
    runs: tuple[RunSpec, ...] = field(default=(), repr=False)
    addition: tuple[AddRunSpec, ...] = field(default=(), repr=False)
    # questions per addition test set: uniform, enriched, and each cascade class S0-S5
    addition_tests: tuple[int, int, int] = (100_000, 50_000, 2_000)

    def run(self, name: str) -> RunSpec | AddRunSpec:
        for spec in self.runs + self.addition:
            if spec.name == name:
                return spec
        names = ", ".join(r.name for r in self.runs + self.addition)
        raise ValueError(f"profile {self.name} has no run {name!r}; runs: {names}")


SPECTRA = ("semicircle", "uniform", "gaussian", "laplace", "positive", "positive2", "marcenko")


def _runs(base: dict, eigenvalues: dict, eigenvectors: dict, inversion: dict, test_size: int,
          main_eigenvalues: dict | None = None) -> tuple[RunSpec, ...]:
    """The standard run list: seven eigenvalue runs (each tested on all seven spectra), eigenvectors, inversion.
    main_eigenvalues overrides the semicircle run's settings (the main eigenvalue model gets more budget)."""
    runs = []
    for spectrum in SPECTRA:
        extra = (main_eigenvalues or {}) if spectrum == "semicircle" else {}
        cfg = RunConfig(**{**base, **eigenvalues, **extra, "task": "eigenvalues", "spectrum": spectrum,
                           "test_spectra": SPECTRA})
        purpose = "eigenvalues (notebooks 03-05)" if spectrum == "semicircle" else "out-of-distribution (05)"
        runs.append(RunSpec(f"eigenvalues-{spectrum}", cfg, purpose, test_size=test_size))
    runs.append(RunSpec("eigenvectors", RunConfig(**{**base, **eigenvectors, "task": "eigenvectors"}),
                        "failure analysis and prediction (03, 04)", snapshots=True, test_size=test_size))
    runs.append(RunSpec("inversion", RunConfig(**{**base, **inversion, "task": "inversion", "upper": False}),
                        "inversion failures vs cond(A) (03, 04)", test_size=test_size))
    return tuple(runs)


def _addition(**changes) -> tuple[AddRunSpec, ...]:
    """The accurate 2-layer x 3-head model and Paper 1's 1-layer contrast, on the same data and budget."""
    two = AddConfig(**changes)
    return (AddRunSpec("addition-2layer", two, "accurate addition, its failures and circuits (06, 07)"),
            AddRunSpec("addition-1layer", AddConfig(**{**changes, "n_layers": 1}),
                       "Paper 1's contrast: fails on carry cascades (06, 07)"))


def _build() -> dict[str, Profile]:
    smoke_base = dict(n=3, d_model=32, n_heads=2, enc_layers=1, dec_layers=1, batch=64, lr=1e-3, warmup=10,
                      examples=512, eval_every=256, eval_size=32, precision="fp32")
    # cpu: chosen from learning curves measured in examples (benchmarks/sweep.py, results in
    # benchmarks/results/) and CPU rates measured on this machine kind (2 cores, fp32: no AMX). Small batches
    # learn far more per example than 256 here; the eigenvalue model is the cheap d64 one (~2,700 ex/s), the
    # eigen-decomposition model needs depth (3+2 layers, lr 1e-3: ~560 ex/s).
    cpu_base = dict(n=3, d_model=64, n_heads=4, enc_layers=2, dec_layers=1, batch=64, lr=5e-4, warmup=1_000,
                    eval_size=300)
    cpu_eigenvectors = dict(d_model=128, enc_layers=3, dec_layers=2, batch=128, lr=1e-3, warmup=600,
                            examples=1_000_000, eval_every=100_000, eval_size=500)
    # gpu: lr 1e-3 measured on an H100 (benchmarks/results/sweep_round3_h100.json): 5x5 eigenvalues at 90 % at 5 %
    # after 4M examples in ~3 min, where lr 3e-4 / warm-up 2,000 was at 1.8 % after 10M. Five of its runs trained on an
    # H100 (benchmarks/results/gpu_profile_h100.json): semicircle 99.2 %, laplace 75.8 %, marcenko 42 %, positive 35 %
    # after 10M; eigenvectors 7 % at 18M of 40M. Alone on the GPU each run trains at 20-30k examples/s: ~1.5 h in all.
    gpu_base = dict(n=5, d_model=256, n_heads=8, enc_layers=4, dec_layers=1, batch=512, lr=1e-3, warmup=1_000,
                    eval_size=2_000, upper=False)
    # LAWT's sweeps (PAPER.md §E): FP15 -> P1000, 6/1 layers, 512 dims, 8 heads, batch 64, Adam 1e-4,
    # 10k warm-up; budgets in epochs of 300k examples. (Our model is pre-LN with sequential cross-attention.)
    paper_base = dict(n=5, d_model=512, n_heads=8, enc_layers=6, dec_layers=1, batch=64, lr=1e-4, warmup=10_000,
                      eval_size=10_000, eval_every=300_000, upper=False, min_lr_ratio=0.1)
    return {p.name: p for p in (
        Profile("smoke", "CI and nbval: every code path, results meaningless", "data/figures/smoke",
                samples=1_000, ceiling_samples=500, sizes=(3, 5),
                runs=_runs(smoke_base, {}, {}, {}, test_size=64),
                addition=_addition(d_model=32, d_head=8, d_mlp=128, batch=64, steps=300, eval_every=100,
                                   log_every=20, eval_size=256),
                addition_tests=(2_000, 1_000, 200)),
        # ~53 min of training on 2 cores: 7 x 450k eigenvalue examples (650k for the main, semicircle model),
        # 1M eigen-decomposition examples, a short inversion run (it learns nothing at this size and budget).
        Profile("cpu", "default: a laptop, the paper's phenomena", "figures",
                samples=20_000, ceiling_samples=20_000, sizes=(3, 4, 5, 6),
                runs=_runs(cpu_base, dict(examples=450_000, eval_every=50_000), cpu_eigenvectors,
                           dict(examples=150_000, eval_every=50_000), test_size=10_000,
                           main_eigenvalues=dict(examples=650_000)),
                # ARITHMETIC.md §E3 (run c): 12K steps x 128 at lr 2e-3, 60 % enriched batches; ~18 min for the
                # 2-layer model on one thread, the 1-layer one beside it on the other core
                addition=_addition()),
        Profile("gpu", "one GPU: the paper's 5x5 setting", "figures/gpu",
                samples=50_000, ceiling_samples=50_000, sizes=(3, 4, 5, 6),
                runs=_runs(gpu_base, dict(examples=10_000_000, eval_every=1_000_000),
                           dict(examples=40_000_000, eval_every=2_000_000),
                           dict(examples=40_000_000, eval_every=2_000_000, schedule="constant"),
                           test_size=50_000),
                addition=_addition(), addition_tests=(1_000_000, 1_000_000, 20_000)),
        Profile("paper", "LAWT / WIMTD's exact hyper-parameters", "figures/paper",
                samples=50_000, ceiling_samples=50_000, sizes=(3, 4, 5, 6),
                runs=_runs(paper_base, dict(examples=60_000_000), dict(examples=120_000_000),
                           dict(examples=120_000_000, schedule="constant"), test_size=50_000),
                # the papers' add_d5_l2_h3_t15K: d_model 510, d_head 170, d_mlp 2040, batch 64, lr 8e-5, 15K steps
                addition=_addition(d_model=510, d_head=170, d_mlp=2040, batch=64, steps=15_000, lr=8e-5,
                                   eval_every=1_500), addition_tests=(1_000_000, 1_000_000, 20_000)),
    )}


PROFILES: dict[str, Profile] = _build()


def get_profile(name: str | None = None) -> Profile:
    """The named profile; '' or None means $MATHTX_PROFILE, else 'cpu'. Unknown names raise ValueError."""
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


# --------------------------------------------------------------------------------------------------
# Acting on a profile's runs (the CLI and notebook 02)
# --------------------------------------------------------------------------------------------------


def select_runs(profile: Profile, names: list[str] | None) -> list[RunSpec | AddRunSpec]:
    return [profile.run(n) for n in names] if names else list(profile.runs + profile.addition)


def status_lines(profile: Profile) -> list[str]:
    lines = [f"{spec.name:22s} {run_status(spec.config):8s} {store.relative(run_dir(spec.config))}"
             for spec in profile.runs]
    return lines + [f"{spec.name:22s} {arith_train.run_status(spec.config):8s} "
                    f"{store.relative(arith_train.run_dir(spec.config))}" for spec in profile.addition]


def train_runs(profile: Profile, specs: list[RunSpec | AddRunSpec], device=None, jobs: int = 1) -> int:
    """Train (or resume) the runs; matrix runs one after another, or `jobs` at a time side by side."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    matrix = [s for s in specs if isinstance(s, RunSpec)]
    if jobs > 1:
        train_side_by_side(matrix, device, jobs)
    for i, spec in enumerate(matrix, 1):  # after train_side_by_side, every one of them is done: skipped
        train(spec.config, device=device, snapshots=spec.snapshots, desc=f"[{i}/{len(matrix)}] {spec.name}")
    adds = {s.name: s.config for s in specs if isinstance(s, AddRunSpec)}
    if adds:  # CPU only, one thread per run, side by side
        arith_train.train_parallel(adds)
    return 0


def training_cost(spec: RunSpec) -> float:
    """A run's matmul work, up to a constant: examples x tokens per example x d_model^2 x layers (enough to order
    runs; embeddings, attention and the output head are left out)."""
    c = spec.config
    codec = Codec(c)
    return c.examples * (codec.src_len * c.enc_layers + codec.tgt_len * 2 * c.dec_layers) * c.d_model ** 2


def train_side_by_side(specs: list[RunSpec], device, jobs: int, progress: bool = True) -> None:
    """Matrix runs `jobs` at a time, one process each, sharing the cores (each gets cores // jobs threads) or the
    GPU; the costliest start first, so that the long runs never wait for a free slot at the end. A run's bytes
    depend on its thread count: on CPU these differ from `jobs=1` (all cores in one run)."""
    todo = sorted((s for s in specs if run_status(s.config) != "done"), key=training_cost, reverse=True)
    if not todo:
        return
    code = ("import json, sys; from mathtx_helpers import train as t; "
            "t.train(t.RunConfig.from_dict(json.loads(sys.argv[1])), device=sys.argv[2] or None, "
            "snapshots=sys.argv[3] == '1', progress=False)")
    runs = [side_by_side.Job(s.name, run_dir(s.config), code, (s.config.to_json(), str(device or ""),
                                                                 "1" if s.snapshots else "0")) for s in todo]

    def examples_done() -> int:
        return sum(min(s.config.examples, (read_metrics(run_dir(s.config)) or [{"examples": 0}])[-1]["examples"])
                   for s in todo)

    threads = max(1, (os.cpu_count() or 1) // min(jobs, len(todo)))
    side_by_side.run(runs, sum(s.config.examples for s in todo), examples_done, "ex", threads=threads, at_once=jobs,
                     progress=progress)


def predict_runs(profile: Profile, specs: list[RunSpec | AddRunSpec], device=None) -> int:
    for spec in specs:
        if isinstance(spec, AddRunSpec):
            if arith_train.run_status(spec.config) != "done":
                raise ValueError(f"run {spec.name} of profile {profile.name} is not trained yet: "
                                 f"python -m mathtx_helpers train --profile {profile.name} --run {spec.name}")
            for name, size in arith_train.test_sizes(profile.addition_tests).items():
                df = arith_train.predictions(spec.config, name, size)
                print(f"{spec.name} {name}: {int((~df.correct).sum()):,} errors in {len(df):,}")
            continue
        if run_status(spec.config) != "done":
            raise ValueError(f"run {spec.name} of profile {profile.name} is not trained yet: "
                             f"python -m mathtx_helpers train --profile {profile.name} --run {spec.name}")
        for spectrum in spec.config.test_spectra:
            print(predict(spec.config, spectrum, size=spec.test_size, device=device))
    return 0
