"""Acting on a profile's runs (the CLI and notebook 02): select them, report their status, train them (one
after another, or side by side), predict their test sets.

Side by side, every run is its own process running the command line (`python -m mathtx_helpers train
--profile P --run NAME`), so a child does exactly what a user typing that command would get.
"""

from __future__ import annotations

import os

from .core import parallel, runs, store
from .profiles import AddRunSpec, Profile, RunSpec


def select_runs(profile: Profile, names: list[str] | None) -> list[RunSpec | AddRunSpec]:
    """The named runs of a profile (all of them if none named); an unknown name is one ValueError."""
    return [profile.run(n) for n in names] if names else list(profile.runs + profile.addition)


def status(spec: RunSpec | AddRunSpec) -> str:
    """'done', 'partial', 'missing' or 'corrupt', with ', busy (pid N)' while a process holds its lock."""
    folder = runs.folder_of(spec.config)
    holder = runs.lock_holder(folder)
    state = runs.checkpoint_status(folder)
    return f"{state}, busy (pid {holder})" if holder else state


def status_lines(profile: Profile) -> list[str]:
    specs = profile.runs + profile.addition
    width = max((len(s.name) for s in specs), default=0)
    return [f"{spec.name:{width}s} {status(spec):8s} {store.relative(runs.folder_of(spec.config))}" for spec in specs]


def train_runs(profile: Profile, specs: list[RunSpec | AddRunSpec], device=None, jobs: int = 1,
               progress: bool = True, threads: int | None = None) -> int:
    """Train (or resume) the runs: matrix runs one after another in this process, or `jobs` at a time side by
    side; the addition runs side by side, one thread each (CPU only). `threads`: every matrix run in its own
    process with this many threads (`make retrain` uses 1: a run's bytes then do not depend on the machine's
    core count, nor on which runs share the cores)."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    matrix = [s for s in specs if isinstance(s, RunSpec)]
    if jobs > 1 or threads is not None:
        train_side_by_side(profile, matrix, device, jobs, progress=progress, threads=threads)
    else:
        from .matrix.train import train

        for i, spec in enumerate(matrix, 1):
            train(spec.config, device=device, snapshots=spec.snapshots, progress=progress,
                  desc=f"[{i}/{len(matrix)}] {spec.name}")
    adds = [s for s in specs if isinstance(s, AddRunSpec)]
    todo = [s for s in adds if runs.status_of(s.config) != "done"]
    # an ins1 run starts from another run's trained model: it waits for a later wave when that one is to train
    names = {runs.folder_of(s.config).name for s in todo}
    later = [s for s in todo if s.config.init_from in names]
    for wave in ([s for s in todo if s not in later], later):
        _train_arith(profile, wave, device, progress)
    return 0


def arith_cost(spec: AddRunSpec) -> int:
    """An arithmetic run's work, up to a constant: steps x batch x layers x (attention + MLP widths)."""
    c = spec.config
    return c.steps * c.batch * c.n_layers * (3 * c.n_heads * c.d_head + c.d_mlp)


def _train_arith(profile: Profile, todo: list[AddRunSpec], device, progress: bool) -> None:
    if len(todo) == 1:  # one run: train it here
        from .arith.train import train as train_addition

        train_addition(todo[0].config, progress=progress, desc=todo[0].name)
    elif todo:  # one thread per run, side by side (as many at once as the cores), the costliest first
        todo = sorted(todo, key=arith_cost, reverse=True)
        jobs_ = [parallel.Job(s.name, runs.folder_of(s.config), _child(profile, s, device), s.config.steps)
                 for s in todo]
        parallel.run(jobs_, "step", threads=1, at_once=max(1, os.cpu_count() or 1), progress=progress)


def _child(profile: Profile, spec: RunSpec | AddRunSpec, device) -> tuple[str, ...]:
    args = ["train", "--profile", profile.name, "--run", spec.name]
    if device is not None:
        args += ["--device", str(device)]
    return parallel.cli(*args)


def training_cost(spec: RunSpec) -> float:
    """A run's matmul work, up to a constant: examples x tokens per example x d_model^2 x layers (enough to order
    runs; embeddings, attention and the output head are left out)."""
    from .matrix.train import Codec

    c = spec.config
    codec = Codec(c)
    return c.examples * (codec.src_len * c.enc_layers + codec.tgt_len * 2 * c.dec_layers) * c.d_model ** 2


def train_side_by_side(profile: Profile, specs: list[RunSpec], device, jobs: int, progress: bool = True,
                       threads: int | None = None) -> None:
    """Matrix runs `jobs` at a time, one process each, sharing the cores (each gets `threads` threads, by default
    cores // jobs) or the GPU; the costliest start first, so that the long runs never wait for a free slot at
    the end. A run's bytes depend on its thread count: on CPU these differ from `jobs=1` (all cores in one run)."""
    todo = sorted((s for s in specs if runs.status_of(s.config) != "done"), key=training_cost,
                  reverse=True)
    if not todo:
        return
    children = [parallel.Job(s.name, runs.folder_of(s.config), _child(profile, s, device), s.config.examples)
                for s in todo]
    threads = threads or max(1, (os.cpu_count() or 1) // min(jobs, len(todo)))
    parallel.run(children, "examples", threads=threads, at_once=jobs, progress=progress)


def train_profiled(profile: Profile, specs: list[RunSpec | AddRunSpec], cores: int | None = None,
                   progress: bool = True) -> None:
    """Train the runs in the layout the shipped models were trained in (`make retrain`, and notebook 02 on a
    CPU): every matrix run in its own process with its RunSpec.threads, as many at once as the cores hold
    (the multi-thread runs first, one after another on 2 cores, then the one-thread runs side by side); then
    the addition runs, one thread each."""
    cores = cores or os.cpu_count() or 1
    matrix = [s for s in specs if isinstance(s, RunSpec)]
    for t in sorted({s.threads for s in matrix}, reverse=True):
        group = [s for s in matrix if s.threads == t]
        train_side_by_side(profile, group, None, jobs=max(1, cores // t), progress=progress, threads=t)
    train_runs(profile, [s for s in specs if isinstance(s, AddRunSpec)], progress=progress)


def predict_runs(profile: Profile, specs: list[RunSpec | AddRunSpec], device=None) -> int:
    for spec in specs:
        if runs.status_of(spec.config) != "done":
            raise ValueError(f"run {spec.name} of profile {profile.name} is not trained yet: "
                             f"python -m mathtx_helpers train --profile {profile.name} --run {spec.name}")
        if isinstance(spec, AddRunSpec):
            from .arith import predict as arith_predict

            for op in spec.config.operations:  # a subtraction model's test sets are subtraction questions
                for name, size in arith_predict.test_sizes(profile.addition_tests, op).items():
                    df = arith_predict.predictions(spec.config, name, size)
                    print(f"{spec.name} {name}: {int((~df.correct).sum()):,} errors in {len(df):,}")
            continue
        from .matrix.predict import predict

        for spectrum in spec.config.test_spectra:
            print(store.relative(predict(spec.config, spectrum, size=spec.test_size, device=device)))
    return 0


def ship(profile: Profile, specs: list[RunSpec | AddRunSpec]) -> int:
    """Write the finished runs' weights (and the eigen-decomposition run's weaker snapshot) to models/."""
    from . import shipping
    from .matrix.predict import pick_snapshot

    snaps = {s.name: [e] for s in specs if isinstance(s, RunSpec) and s.snapshots
             and (e := pick_snapshot(s.config)) is not None}
    for line in shipping.export(profile, specs, snapshots=snaps):
        print(line)
    return 0


def retrain(profile: Profile, specs: list[RunSpec | AddRunSpec], jobs: int | None = None,
            progress: bool = True) -> int:
    """Train the runs from scratch as the shipped ones were (train_profiled: each run on its own thread count,
    as many side by side as `jobs` cores hold, all cores by default), replacing restored copies; then say per run
    whether the weights are bit-identical to the shipped ones."""
    import shutil

    from . import shipping

    for spec in specs:
        folder = runs.folder_of(spec.config)
        if not shipping.is_restored(spec):
            continue
        with runs.RunLock(folder, what="retrain"):  # never under a process predicting from the restored copy
            for path in folder.iterdir():  # all but the lock file: another process may be waiting on it
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.name != ".lock":
                    path.unlink()
    train_profiled(profile, specs, cores=jobs, progress=progress)
    for line in shipping.compare(profile, specs):
        print(line)
    return 0
