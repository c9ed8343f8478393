"""Training engine: RunConfig validation and naming, exact resume after SIGKILL, skipping finished runs,
corrupt checkpoints, run status, DDP under torchrun (gloo, CPU), and the train/profiles command line.

Every test writes under a temporary data folder (store.DATA monkeypatched; subprocesses get MATHTX_DATA_DIR),
never into the repository's data/. Models are tiny and runs take a few seconds on one thread.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mathtx_helpers import jobs, profiles
from mathtx_helpers.core import runs, store
from mathtx_helpers.core.runs import CorruptCheckpoint
from mathtx_helpers.matrix import train
from mathtx_helpers.matrix.config import RunConfig

TINY = dict(n=3, d_model=16, n_heads=2, enc_layers=1, dec_layers=1, batch=16, lr=1e-3, warmup=2, examples=160,
            eval_every=64, eval_size=8, precision="fp32")  # 10 steps, evaluations at 64, 128 and 160 examples
CKPT_STEPS = 3  # checkpoints at steps 3, 6, 9: the evaluation at step 4 lands between two of them


def subprocess_env(data: Path) -> dict:
    return {**os.environ, store.DATA_ENV: str(data), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def finished(tmp_path_factory, one_thread) -> tuple[Path, RunConfig]:
    """One uninterrupted tiny run, trained once per module: (its data folder, its config)."""
    d = tmp_path_factory.mktemp("finished") / "data"
    cfg = RunConfig.from_dict(TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "DATA", d)
        folder = train.train(cfg, checkpoint_steps=CKPT_STEPS, progress=False)
    assert folder == d / "runs" / cfg.name
    return d, cfg


def copy_run(src_data: Path, dst_data: Path, cfg: RunConfig) -> Path:
    dst = dst_data / "runs" / cfg.name
    shutil.copytree(src_data / "runs" / cfg.name, dst)
    return dst


def assert_identical(a, b, where="checkpoint"):
    """Recursive exact equality: every tensor torch.equal (same dtype and shape), everything else ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def metric_lines(folder: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field (the one thing that legitimately differs)."""
    return [{k: v for k, v in m.items() if k != "seconds"} for m in train.read_metrics(folder)]


# ------------------------------------------------------------------------------------------ checkpoints


def test_finished_run_has_its_budget_and_metrics(finished, monkeypatch):
    d, cfg = finished
    monkeypatch.setattr(store, "DATA", d)
    folder = train.run_dir(cfg)
    state = runs.load_checkpoint(folder / "checkpoint.pt")
    assert state["done"] and state["world"] == 1 and state["step"] == 10 and state["examples"] == 160
    assert json.loads((folder / "config.json").read_text()) == json.loads(cfg.to_json())
    lines = train.read_metrics(folder)
    assert [m["examples"] for m in lines] == [64, 128, 160]
    assert all(set(m["acc"]) == {"semicircle"} and m["precision"] == "fp32" for m in lines)
    assert train.run_status(cfg) == "done"
    assert not list(folder.glob(".*.tmp"))  # no temporary files left behind


def test_finished_run_is_skipped(finished, monkeypatch):
    d, cfg = finished
    monkeypatch.setattr(store, "DATA", d)
    folder = train.run_dir(cfg)
    def files():  # the lock file is taken (its pid rewritten) to read the status: not part of the run
        return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir() if p.is_file()
                and p.name != ".lock"}

    stamps = files()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not build a model")

    monkeypatch.setattr(train, "build_model", no_training)
    assert train.train(cfg, progress=False) == folder
    assert files() == stamps


def test_corrupt_checkpoint_is_refused_and_left_untouched(finished, data):
    d, cfg = finished
    folder = copy_run(d, data, cfg)
    ckpt = folder / "checkpoint.pt"
    raw = ckpt.read_bytes()
    ckpt.write_bytes(raw[: len(raw) // 2])
    truncated = ckpt.read_bytes()
    for call in (lambda: train.train(cfg, progress=False), lambda: train.load_model(cfg, "cpu"),
                 lambda: runs.load_checkpoint(ckpt)):
        with pytest.raises(CorruptCheckpoint, match=r"checkpoint\.pt is not a readable checkpoint .*left untouched"
                                                    r".*Delete it"):
            call()
    assert ckpt.read_bytes() == truncated
    assert train.run_status(cfg) == "corrupt"
    ckpt.write_bytes(b"not a checkpoint at all")
    assert train.run_status(cfg) == "corrupt"


def test_run_status_missing_partial_done_corrupt(finished, data):
    d, cfg = finished
    assert train.run_status(cfg) == "missing"
    folder = copy_run(d, data, cfg)
    assert train.run_status(cfg) == "done"
    state = runs.load_checkpoint(folder / "checkpoint.pt")
    runs.save_checkpoint(folder / "checkpoint.pt", {**state, "done": False})
    assert train.run_status(cfg) == "partial"
    (folder / "checkpoint.pt").write_bytes(b"\x80\x02garbage")
    assert train.run_status(cfg) == "corrupt"
    (folder / "checkpoint.pt").unlink()
    assert train.run_status(cfg) == "missing"


def test_resume_refuses_a_different_config_or_world_size(finished, data):
    d, cfg = finished
    folder = copy_run(d, data, cfg)
    config_json = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config_json.replace('"batch": 16', '"batch": 17'))
    with pytest.raises(ValueError, match="config.json differs from the requested config"):
        train.train(cfg, progress=False)
    (folder / "config.json").write_text(config_json)
    state = runs.load_checkpoint(folder / "checkpoint.pt")
    runs.save_checkpoint(folder / "checkpoint.pt", {**state, "done": False, "world": 2})
    with pytest.raises(ValueError, match="checkpointed with 2 processes; resume it with the same"):
        train.train(cfg, progress=False)


# ------------------------------------------------------------------------------------------ exact resume

SLOW_TRAIN = textwrap.dedent("""
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    from mathtx_helpers.matrix import tasks, train
    delay, make = float(sys.argv[2]), tasks.make_problems
    def slow(*args, **kwargs):  # wall-clock only: the data, the model and the RNG streams are untouched
        time.sleep(delay)
        return make(*args, **kwargs)
    tasks.make_problems = slow
    train.train(train.RunConfig.from_dict(json.loads(sys.argv[1])), checkpoint_steps=int(sys.argv[3]),
                progress=False)
""")


def _complete_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def _kill_after_progress_beyond_a_checkpoint(cfg: RunConfig, data: Path, delay: float) -> dict | None:
    """Start the run in a subprocess; SIGKILL it once an evaluation line newer than its last checkpoint is
    written (so the restart must also drop metrics). Returns the checkpoint found at kill time, or None if
    the run finished (or never got there) first."""
    folder = data / "runs" / cfg.name
    proc = subprocess.Popen([sys.executable, "-c", SLOW_TRAIN, cfg.to_json(), str(delay), str(CKPT_STEPS)],
                            cwd=store.ROOT, env=subprocess_env(data), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            lines = _complete_lines(folder / "metrics.jsonl")
            if lines and (folder / "checkpoint.pt").exists():
                state = runs.load_checkpoint(folder / "checkpoint.pt")
                if 0 < state["step"] and lines[-1]["examples"] > state["examples"]:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return runs.load_checkpoint(folder / "checkpoint.pt")  # what the kill left behind
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate()[1].decode()
    assert proc.returncode in (0, -signal.SIGKILL), err
    return None


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_identical_final_checkpoint(finished, data):
    d, cfg = finished
    reference = runs.load_checkpoint(d / "runs" / cfg.name / "checkpoint.pt")
    folder = data / "runs" / cfg.name
    for delay in (0.15, 0.4, 1.0):  # slower and slower until the kill lands mid-run
        shutil.rmtree(data, ignore_errors=True)
        at_kill = _kill_after_progress_beyond_a_checkpoint(cfg, data, delay)
        if at_kill is not None:
            break
    else:
        pytest.fail("could not kill the run between a checkpoint and its end")
    # the kill really interrupted the run, after an evaluation the checkpoint does not cover
    assert not at_kill["done"] and 0 < at_kill["step"] < reference["step"]
    assert train.run_status(cfg) == "partial"
    assert max(m["examples"] for m in train.read_metrics(folder)) > at_kill["examples"]

    assert train.train(cfg, checkpoint_steps=CKPT_STEPS, progress=False) == folder
    final = runs.load_checkpoint(folder / "checkpoint.pt")
    assert final["done"] and final["step"] == 10 and final["examples"] == 160
    for key in ("model", "optimizer", "rng", "step", "examples"):
        assert_identical(final[key], reference[key], key)
    assert_identical(final, reference)  # and everything else (running loss sums, precision, world...)
    assert metric_lines(folder) == metric_lines(d / "runs" / cfg.name)


# ------------------------------------------------------------------------------------------ DDP

DDP_TRAIN = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from mathtx_helpers.matrix import train
    train.train(train.RunConfig.from_dict(json.loads(sys.argv[1])), device="cpu", checkpoint_steps=2,
                progress=False)
""")


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    data = tmp_path / "data"
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_TRAIN)
    cfg = RunConfig.from_dict({**TINY, "examples": 96, "eval_every": 64})  # 3 steps of 2 x 16
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script), cfg.to_json()], cwd=store.ROOT, env=subprocess_env(data),
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    folder = data / "runs" / cfg.name
    state = runs.load_checkpoint(folder / "checkpoint.pt")
    assert state["done"] and state["world"] == 2
    assert len(state["rng"]) == 2 and state["rng"][0] != state["rng"][1]
    assert state["step"] == math.ceil(cfg.examples / (2 * cfg.batch)) == 3
    assert state["examples"] == state["step"] * cfg.batch * 2
    lines = train.read_metrics(folder)
    assert [m["examples"] for m in lines] == [64, 96]
    assert all(math.isfinite(m["loss"]) and "semicircle" in m["acc"] for m in lines)


# ------------------------------------------------------------------------------------------ side by side


@pytest.mark.slow
def test_runs_side_by_side_equal_the_same_runs_trained_alone(tmp_path, monkeypatch):
    """Two runs in two processes at once (1 thread each, each running the CLI) end bit-identical to each trained
    alone on 1 thread."""
    side, alone = tmp_path / "side", tmp_path / "alone"
    monkeypatch.setattr(store, "DATA", side)
    monkeypatch.setenv(store.DATA_ENV, str(side))  # the children's data folder
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # two jobs on two cores: one thread each, on any machine
    smoke = profiles.get_profile("smoke")
    specs = [smoke.run("eigenvalues-laplace"), smoke.run("eigenvectors")]  # the second keeps snapshots
    jobs.train_side_by_side(smoke, specs, "cpu", jobs=2, progress=False)
    monkeypatch.setattr(store, "DATA", alone)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for spec in specs:
            train.train(spec.config, device="cpu", snapshots=spec.snapshots, progress=False)
    finally:
        torch.set_num_threads(before)
    for spec in specs:
        a, b = (runs.load_checkpoint(root / "runs" / spec.config.name / "checkpoint.pt") for root in (side, alone))
        assert a["done"] and b["done"] and a["step"] == b["step"]
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
        lines = [[{k: v for k, v in m.items() if k != "seconds"}  # wall time differs, nothing else may
                  for m in train.read_metrics(root / "runs" / spec.config.name)] for root in (side, alone)]
        assert lines[0] == lines[1] and len(lines[0]) == 2
        snaps = sorted(p.name for p in (side / "runs" / spec.config.name / "snapshots").glob("*.pt"))
        assert snaps == (["256.pt", "512.pt"] if spec.snapshots else [])


def test_side_by_side_starts_the_costliest_runs_first():
    order = [s.name for s in sorted(profiles.get_profile("gpu").runs, key=jobs.training_cost, reverse=True)]
    assert order[:2] == ["eigenvectors", "inversion"]  # 40M examples each, against 10M for an eigenvalue run
    cpu = [s.name for s in sorted(profiles.get_profile("cpu").runs, key=jobs.training_cost, reverse=True)]
    assert cpu[:2] == ["eigenvectors", "eigenvectors-seed1"]  # the two long runs start together


def test_side_by_side_runs_every_job_and_names_the_one_that_failed(tmp_path):
    from mathtx_helpers.core import parallel

    code = "import sys, time; time.sleep(0.2); open(sys.argv[1], 'w').write('ok'); sys.exit(int(sys.argv[2]))"
    queue = [parallel.Job(f"job{i}", tmp_path / f"job{i}", ("-c", code, str(tmp_path / f"out{i}"), str(3 * (i == 2))))
             for i in range(4)]
    with pytest.raises(RuntimeError, match=r"training failed: job2 \(exit 3\)") as e:
        parallel.run(queue, "step", at_once=2, progress=False, poll=0.05)
    assert "job0" not in str(e.value)
    assert all((tmp_path / f"out{i}").read_text() == "ok" for i in range(4))  # the queue ran all four
    with pytest.raises(ValueError, match="at_once"):
        parallel.run(queue, "step", at_once=0)


def test_a_child_appends_to_its_runs_log_and_never_cuts_it(tmp_path):
    """A second invocation's child (which finds the run busy and exits) must leave the log of the process
    training the run whole: the log is appended to, and the failure quotes the new child's words."""
    from mathtx_helpers.core import parallel

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "train.log").write_text("lines of the process training this run\n")
    job = parallel.Job("run", folder, ("-c", "import sys; print('busy: another process trains it'); sys.exit(2)"))
    with pytest.raises(RuntimeError, match=r"(?s)run \(exit 2\).*busy: another process trains it"):
        parallel.run([job], "step", progress=False, poll=0.05)
    assert (folder / "train.log").read_text().startswith("lines of the process training this run\n")


def test_a_parents_bar_reads_a_run_at_its_last_checkpoint_between_evaluations(tmp_path):
    """The side-by-side bar (parallel.run) reads progress_done: the metrics' last line alone moves it once an
    evaluation (every 3 min for an eigen-decomposition run); each checkpoint's progress.json moves it in between."""
    folder = tmp_path / "run"
    with runs.Training(folder, '{"a": 1}', key="examples") as run:
        run.begin()
        assert runs.progress_done(folder, "examples") == 0
        run.log({"examples": 256})
        assert runs.progress_done(folder, "examples") == 256
        run.save({"examples": 384, "model": {}})  # a checkpoint between two evaluations
        assert runs.progress_done(folder, "examples") == 384
        assert json.loads((folder / runs.PROGRESS).read_text()) == {"examples": 384}
        run.log({"examples": 512})  # an evaluation past the last checkpoint
        assert runs.progress_done(folder, "examples") == 512
    (folder / runs.PROGRESS).write_text("{cut short")  # a file from before atomic writes: the metrics say it
    assert runs.progress_done(folder, "examples") == 512


# ------------------------------------------------------------------------------------------ CLI


def cli(*args: str, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtx_helpers", *args], cwd=store.ROOT, env=subprocess_env(data),
                          capture_output=True, text=True, timeout=120)


def test_cli_profiles_lists_the_smoke_runs(tmp_path):
    r = cli("profiles", "--profile", "smoke", data=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    smoke = profiles.get_profile("smoke")
    assert len(smoke.runs) == 17  # 7 eigenvalue runs and an eigen-decomposition run per seed (2), inversion
    lines = [line for line in r.stdout.splitlines() if line.startswith("   ")]
    run_lines = [line.split() for line in lines]
    assert [fields[0] for fields in run_lines] == [spec.name for spec in smoke.runs + smoke.addition]
    assert all(fields[1] == "missing" for fields in run_lines)  # the temporary data folder is empty
    assert len({line.index(f[1]) for line, f in zip(lines, run_lines, strict=True)}) == 1  # one column, long names too
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.pt"))


def test_cli_unknown_run_is_one_clear_line(tmp_path):
    r = cli("train", "--profile", "smoke", "--run", "nope", data=tmp_path / "data")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stdout == ""
    names = [spec.name for spec in profiles.get_profile("smoke").runs]
    naming = [line for line in r.stderr.splitlines() if all(n in line for n in names)]
    assert len(naming) == 1 and "'nope'" in naming[0], r.stderr
    assert not (tmp_path / "data").exists()  # nothing was trained


def test_cli_bad_jobs_is_one_clear_line(tmp_path):
    r = cli("train", "--profile", "smoke", "--jobs", "0", data=tmp_path / "data")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--jobs must be >= 1, got 0" in r.stderr
    assert not (tmp_path / "data").exists()


def test_cond_curriculum_draws_the_first_examples_conditioned(data, monkeypatch):
    """max_cond with curriculum_examples: the steps before that many examples draw with cond(A) <= max_cond,
    the later ones from the whole distribution; the evaluation sets never use it."""
    calls = []
    real = train.tasks.make_problems

    def recording(*args, max_cond=0.0, **kwargs):
        calls.append((args[2], max_cond))  # (batch size, max_cond)
        return real(*args, max_cond=max_cond, **kwargs)

    monkeypatch.setattr(train.tasks, "make_problems", recording)
    cfg = RunConfig.from_dict({**TINY, "task": "inversion", "upper": False, "max_cond": 5.0,
                               "curriculum_examples": 48})
    train.train(cfg, progress=False)
    steps = [c for c in calls if c[0] == cfg.batch]
    evals = [c for c in calls if c[0] == cfg.eval_size]
    assert [m for _, m in steps] == [5.0] * 3 + [0.0] * 7  # 48 examples = 3 steps of 16
    assert evals and all(m == 0.0 for _, m in evals)


def test_cli_restore_of_a_profile_that_ships_nothing(tmp_path):
    r = cli("restore", "--profile", "smoke", data=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nothing to restore for profile smoke"
    assert not (tmp_path / "data" / "runs").exists()


def test_profiled_layout_trains_each_run_on_its_own_thread_count(monkeypatch):
    """make retrain's layout on 2 cores: the two-thread eigen-decomposition runs one at a time, then the one-thread
    runs two side by side, then the addition runs."""
    calls = []
    monkeypatch.setattr(jobs, "train_side_by_side", lambda profile, specs, device, jobs, progress, threads:
                        calls.append(([s.name for s in specs], jobs, threads)))
    monkeypatch.setattr(jobs, "train_runs", lambda profile, specs, progress: calls.append([s.name for s in specs]))
    cpu = profiles.get_profile("cpu")
    jobs.train_profiled(cpu, list(cpu.runs + cpu.addition), cores=2, progress=False)
    assert calls[0] == (["eigenvectors", "eigenvectors-seed1"], 1, 2)
    names, at_once, threads = calls[1]
    assert (at_once, threads) == (2, 1) and len(names) == 15 and "inversion" in names
    arith = ["addition-2layer", "addition-1layer", "subtraction-2layer", "mixed-3layer", "ins1-mixed-3layer"]
    assert calls[2] == arith + [f"{n}-seed1" for n in arith]  # train_runs itself starts the ins1 runs last
    assert {s.name for s in cpu.runs if s.threads == 2} == {"eigenvectors", "eigenvectors-seed1"}
