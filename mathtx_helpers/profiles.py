"""Named profiles: how much each notebook does, and where its outputs go.

    smoke  CI and nbval: proves every code path in under a minute per notebook; results meaningless
    cpu    the default, a reader's laptop: results that show the paper's phenomena (make figures <= 60 min)
    gpu    one GPU: the paper's 5x5 setting
    paper  the exact LAWT / WIMTD sizes (days of GPU)

The notebooks' `profile` parameter defaults to the environment variable MATHTX_PROFILE, else `cpu`.
Each profile names its training runs (RunSpec): the eigenvalue models of the seven training spectra (the
semicircle one is also the main eigenvalue model), an eigen-decomposition model and an inversion model, and
its addition runs (AddRunSpec). This module is the registry only: it imports no torch and acts on nothing
(jobs.py trains, predicts and reports the runs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .arith.config import AddConfig
from .matrix.config import RunConfig
from .matrix.spectra import SPECTRA

__all__ = ["DEFAULT_PROFILE", "PROFILES", "PROFILE_ENV", "SPECTRA", "AddRunSpec", "Profile", "RunSpec", "get_profile"]

PROFILE_ENV = "MATHTX_PROFILE"
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class RunSpec:
    """A training run of a profile: its config, and what the notebooks ask of it."""

    name: str  # short name used by the notebooks: "eigenvalues-laplace", "eigenvectors", "inversion";
    # a replicate with another seed adds "-seed<k>": "eigenvalues-laplace-seed1"
    config: RunConfig
    purpose: str
    snapshots: bool = False  # keep the weights at every evaluation (for a weaker, earlier model)
    test_size: int = 10_000  # problems per test set in the predictions
    # CPU threads of its process in `make retrain` (its bytes depend on them; runs at 1 thread share the cores
    # side by side): 2 for the eigen-decomposition runs, so that one of them fits in a 3-hour session (measured
    # on 2 cores: 272 examples/s alone on 2 threads, 1.8M in 118 min; 160 examples/s each for two side by side on
    # one thread, 187 min for the pair, 2 x 118 one after the other; FP15 inputs on an AMD EPYC. Round 3's P1000
    # runs on an AVX-512 Xeon: 538-553 examples/s alone on 2 threads, 55 min each)
    threads: int = 1

    @property
    def family(self) -> str:
        """The name without its seed suffix: the replicates of one recipe share it."""
        return self.name.removesuffix(f"-seed{self.config.seed}")

    @property
    def seed(self) -> int:
        return self.config.seed


@dataclass(frozen=True)
class AddRunSpec:
    """An arithmetic run of a profile (notebooks 06-08)."""

    name: str  # "addition-2layer" (the accurate model), "addition-1layer" (Paper 1's contrast), ...; the second
    # replicate of a recipe adds "-seed1": "addition-2layer-seed1"
    config: AddConfig
    purpose: str
    replicate: int = 0  # which replicate of its recipe: config.seed is ARITH_SEED + replicate

    @property
    def family(self) -> str:
        """The name without its seed suffix: the replicates of one recipe share it."""
        return self.name.removesuffix(f"-seed{self.replicate}")

    @property
    def seed(self) -> int:
        """The replicate's number (0, 1): what the notebooks call seed 0 and seed 1."""
        return self.replicate


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

    def replicates(self, family: str) -> dict[int, RunSpec | AddRunSpec]:
        """seed -> run, for every seed of one recipe, first seed first ('eigenvectors' -> {0: eigenvectors,
        1: eigenvectors-seed1})."""
        out = {s.seed: s for s in self.runs + self.addition if s.family == family}
        if not out:
            families = ", ".join(dict.fromkeys(s.family for s in self.runs + self.addition))
            raise ValueError(f"profile {self.name} has no run family {family!r}; families: {families}")
        return out

    def configs_by_seed(self, families: dict[str, str]) -> dict:
        """seed -> {label: config} for a notebook's models (label -> run family, e.g. {'2-layer': 'addition-2layer'}),
        for every seed of the first family, first seed first; every family must have those seeds."""
        reps = {label: self.replicates(family) for label, family in families.items()}
        seeds = list(next(iter(reps.values())))
        for label, r in reps.items():
            if list(r) != seeds:
                raise ValueError(f"run family {families[label]!r} has seeds {list(r)}, the first family {seeds}")
        return {k: {label: r[k].config for label, r in reps.items()} for k in seeds}


def _runs(base: dict, eigenvalues: dict, eigenvectors: dict, inversion: dict, test_size: int,
          seeds: tuple[int, ...] = (0,)) -> tuple[RunSpec, ...]:
    """The standard run list: seven eigenvalue runs (each tested on all seven spectra), eigenvectors, inversion.
    `seeds`: the eigenvalue and eigen-decomposition runs are trained once per seed (the first seed's runs keep
    the plain names, the others add "-seed<k>"); inversion once, with the first seed."""

    def named(name: str, seed: int) -> str:
        return name if seed == seeds[0] else f"{name}-seed{seed}"

    runs = []
    for seed in seeds:
        for spectrum in SPECTRA:
            cfg = RunConfig.from_dict({**base, **eigenvalues, "task": "eigenvalues", "spectrum": spectrum,
                                       "test_spectra": SPECTRA, "seed": seed})
            purpose = "eigenvalues (notebooks 03-05)" if spectrum == "semicircle" else "out-of-distribution (05)"
            runs.append(RunSpec(named(f"eigenvalues-{spectrum}", seed), cfg, purpose, test_size=test_size))
        runs.append(RunSpec(named("eigenvectors", seed),
                            RunConfig.from_dict({**base, **eigenvectors, "task": "eigenvectors", "seed": seed}),
                            "failure analysis and prediction (03, 04)", snapshots=True, test_size=test_size,
                            threads=2))
    runs.append(RunSpec("inversion", RunConfig.from_dict({**base, **inversion, "task": "inversion", "upper": False,
                                                          "seed": seeds[0]}),
                        "inversion failures vs cond(A) (03, 04)", test_size=test_size))
    return tuple(runs)


ADDITION_RUNS = ("addition-2layer", "addition-1layer")  # notebooks 06-07
SUBTRACTION_RUNS = ("subtraction-2layer", "mixed-3layer", "ins1-mixed-3layer")  # notebook 08
ARITH_SEED = AddConfig().seed  # the first replicate's seed; replicate k trains with ARITH_SEED + k


def _addition(mixed: dict | None = None, ins1: dict | None = None, seeds: tuple[int, ...] = (0,),
              **changes) -> tuple[AddRunSpec, ...]:
    """The accurate 2-layer x 3-head model and Paper 1's 1-layer contrast, on the same data and budget; then,
    for notebook 08, a subtraction-only model of the same shape and budget, and the papers' 3-layer x 4-head mixed
    model twice: from scratch (66 % subtraction batches) and by the ins1 route from the trained 2-layer addition
    model of the same replicate (80 %). `mixed`: the mixed models' changes to the recipe (their steps); `ins1`:
    the ins1 run's own. `seeds`: the replicates of every run (the first keeps the plain names, replicate k adds
    "-seed<k>" and trains with seed ARITH_SEED + k)."""
    out = []
    for k in seeds:
        suffix = "" if k == seeds[0] else f"-seed{k}"
        base = {**changes, "seed": ARITH_SEED + k} if k else dict(changes)
        two = AddConfig.from_dict(base)
        mix = {**base, "n_layers": 3, "n_heads": 4, **(mixed or {})}
        out += [AddRunSpec("addition-2layer" + suffix, two, "accurate addition, its failures and circuits (06, 07)", k),
                AddRunSpec("addition-1layer" + suffix, AddConfig.from_dict({**base, "n_layers": 1}),
                           "Paper 1's contrast: fails on carry cascades (06, 07)", k),
                AddRunSpec("subtraction-2layer" + suffix, AddConfig.from_dict({**base, "sub_share": 1.0}),
                           "subtraction only, the addition model's shape and budget (08)", k),
                AddRunSpec("mixed-3layer" + suffix, AddConfig.from_dict({**mix, "sub_share": 0.66}),
                           "add and sub from scratch: which is learned first (08)", k),
                AddRunSpec("ins1-mixed-3layer" + suffix,
                           AddConfig.from_dict({**mix, "sub_share": 0.8, "init_from": two.name, **(ins1 or {})}),
                           "add and sub from the trained addition model (ins1): faster?, polysemantic nodes (08)", k)]
    return tuple(out)


def _build() -> dict[str, Profile]:
    smoke_base = dict(n=3, d_model=32, n_heads=2, enc_layers=1, dec_layers=1, batch=64, lr=1e-3, warmup=10,
                      examples=512, eval_every=256, eval_size=32, precision="fp32")
    # cpu: chosen from learning curves measured in examples (benchmarks/sweep.py, results in
    # benchmarks/results/) and CPU rates measured on this machine kind (2 cores, fp32: no AMX). Small batches
    # learn far more per example than 256 here; the eigenvalue model is the cheap d64 one (~2,700 ex/s), the
    # eigen-decomposition model needs depth (3+2 layers, lr 1e-3: ~560 ex/s).
    cpu_base = dict(n=3, d_model=64, n_heads=4, enc_layers=2, dec_layers=1, batch=64, lr=5e-4, warmup=1_000,
                    eval_size=300)
    # 1.8M examples: the H100 sweep's curve of this recipe (2M budget) was at 87 % at 1.5M and 93 % at 1.9M
    cpu_eigenvectors = dict(d_model=128, enc_layers=3, dec_layers=2, batch=128, lr=1e-3, warmup=600,
                            examples=1_800_000, eval_every=100_000, eval_size=500, input_encoding="P1000")
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
                runs=_runs(smoke_base, {}, {"input_encoding": "P1000"}, {}, test_size=64, seeds=(0, 1)),
                addition=_addition(d_model=32, d_head=8, d_mlp=128, batch=64, steps=300, eval_every=100,
                                   log_every=20, eval_size=256, seeds=(0, 1)),
                addition_tests=(2_000, 1_000, 200)),
        # Two seeds of every eigenvalue and eigen-decomposition run, each run on one thread, two at a time
        # (`make retrain`): 14 x 1M eigenvalue examples (the H100 sweep's d64 batch-64 laplace curve: 92 % at
        # 850k, 96 % at 950k of 1M), 2 x 1.8M eigen-decomposition examples, a short inversion run (it learns
        # nothing at this size and budget: benchmarks.md).
        Profile("cpu", "default: a laptop, the paper's phenomena", "figures",
                samples=20_000, ceiling_samples=20_000, sizes=(3, 4, 5, 6),
                runs=_runs(cpu_base, dict(examples=1_000_000, eval_every=50_000), cpu_eigenvectors,
                           dict(examples=150_000, eval_every=50_000), test_size=10_000, seeds=(0, 1)),
                # ARITHMETIC.md §E3 (run c): 12K steps x 128 at lr 2e-3, 60 % enriched batches; ~18 min for the
                # 2-layer model on one thread, the 1-layer one beside it on the other core. The mixed models: §E2's
                # run f, 16K steps (0 addition errors, 99.995 % subtraction from scratch; 143 ms a step on one
                # thread here, 38 min); the ins1 run 10K steps, so that notebook 08's three runs train in ~42 min
                # side by side (mixed | ins1, then subtraction: 18 min) and the route's head start is measured
                # Two replicates of every arithmetic run (seed 1: ~55 min more, two chains of runs on the two cores)
                addition=_addition(mixed=dict(steps=16_000), ins1=dict(steps=10_000), seeds=(0, 1))),
        Profile("gpu", "one GPU: the paper's 5x5 setting", "figures/gpu",
                samples=50_000, ceiling_samples=50_000, sizes=(3, 4, 5, 6),
                runs=_runs(gpu_base, dict(examples=10_000_000, eval_every=1_000_000),
                           dict(examples=40_000_000, eval_every=2_000_000),
                           dict(examples=40_000_000, eval_every=2_000_000, schedule="constant"),
                           test_size=50_000),
                addition=_addition(mixed=dict(steps=16_000)), addition_tests=(1_000_000, 1_000_000, 20_000)),
        Profile("paper", "LAWT / WIMTD's exact hyper-parameters", "figures/paper",
                samples=50_000, ceiling_samples=50_000, sizes=(3, 4, 5, 6),
                runs=_runs(paper_base, dict(examples=60_000_000), dict(examples=120_000_000),
                           dict(examples=120_000_000, schedule="constant"), test_size=50_000),
                # the papers' add_d5_l2_h3_t15K: d_model 510, d_head 170, d_mlp 2040, batch 64, lr 8e-5, 15K steps
                # and the mixed models' mix_d6_l3_h4_t40K / ins1_mix_d6_l3_h4_t40K budget: 40K steps
                addition=_addition(d_model=510, d_head=170, d_mlp=2040, batch=64, steps=15_000, lr=8e-5,
                                   eval_every=1_500, mixed=dict(steps=40_000)),
                addition_tests=(1_000_000, 1_000_000, 20_000)),
    )}


PROFILES: dict[str, Profile] = _build()


def get_profile(name: str | None = None) -> Profile:
    """The named profile; '' or None means $MATHTX_PROFILE, else 'cpu'. Unknown names raise ValueError."""
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
