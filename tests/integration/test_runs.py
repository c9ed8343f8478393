"""The run store: the lock between real processes, precision pinned per run, stable run names, the layout's
import rules (core knows no track, tracks never import each other, the registry loads no torch)."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mathtx_helpers import profiles
from mathtx_helpers.core import devices, runs, store
from mathtx_helpers.matrix import train
from mathtx_helpers.matrix.config import RunConfig

PACKAGE = store.ROOT / "mathtx_helpers"
TINY = dict(n=3, d_model=16, n_heads=2, enc_layers=1, dec_layers=1, batch=16, lr=1e-3, warmup=2, examples=160,
            eval_every=64, eval_size=8, precision="fp32")

HOLD = """
import sys, time
from pathlib import Path
from mathtx_helpers.core import runs
with runs.RunLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def env(data: Path) -> dict:
    return {**os.environ, store.DATA_ENV: str(data), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "TQDM_DISABLE": "1"}


def hold_lock(folder: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], cwd=store.ROOT,
                            env=env(folder.parent), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# ------------------------------------------------------------------------------------------ the lock


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    folder = tmp_path / "runs" / "some-run"
    holder = hold_lock(folder, 30)
    try:
        with pytest.raises(runs.RunBusy, match=rf"run some-run is busy: process {holder.pid} is training"):
            with runs.RunLock(folder):
                pass
        assert runs.lock_holder(folder) == holder.pid
        t0 = time.monotonic()
        with pytest.raises(runs.RunBusy):  # waiting is bounded
            with runs.RunLock(folder, wait=0.6):
                pass
        assert time.monotonic() - t0 >= 0.5
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_never_blocks(tmp_path):
    folder = tmp_path / "runs" / "some-run"
    holder = hold_lock(folder, 60)
    os.kill(holder.pid, signal.SIGKILL)  # no cleanup runs: the kernel drops the flock with the process
    holder.wait()
    assert (folder / ".lock").read_text().strip() == str(holder.pid)  # the stale pid is still written there
    assert runs.lock_holder(folder) is None
    with runs.RunLock(folder):
        assert (folder / ".lock").read_text().strip() == str(os.getpid())
        with runs.RunLock(folder):  # re-entrant within one process
            pass
    assert runs.lock_holder(folder) is None


@pytest.mark.slow
def test_two_cli_trainings_of_one_run_never_write_an_evaluation_twice(tmp_path):
    """The user's case: `train` started twice a second apart (notebook 02 open while `make figures` runs)."""
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "mathtx_helpers", "train", "--profile", "smoke", "--run", "eigenvectors"]
    first = subprocess.Popen(cmd, cwd=store.ROOT, env=env(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    spec = profiles.get_profile("smoke").run("eigenvectors")
    folder = data / "runs" / spec.config.name
    deadline = time.monotonic() + 60
    while runs.lock_holder(folder) is None and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=store.ROOT, env=env(data), capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    if second.returncode != 0:  # it met the first one training: one line naming it, no traceback
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"busy: process {first.pid} is training" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    examples = [m["examples"] for m in lines]
    assert examples == sorted(set(examples)) == [256, 512]  # each evaluation once
    # once finished, the same command is a quick no-op
    again = subprocess.run(cmd, cwd=store.ROOT, env=env(data), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and (folder / "metrics.jsonl").read_text().count("\n") == 2


def test_training_a_locked_run_stops_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "DATA", tmp_path)
    cfg = RunConfig.from_dict(TINY)
    holder = hold_lock(train.run_dir(cfg), 30)
    try:
        with pytest.raises(runs.RunBusy, match=str(holder.pid)):
            train.train(cfg, progress=False)
        assert not (train.run_dir(cfg) / "checkpoint.pt").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_refused_start_releases_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "DATA", tmp_path)
    cfg = RunConfig.from_dict(TINY)
    folder = train.run_dir(cfg)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(runs.CorruptCheckpoint):
        train.train(cfg, progress=False)
    assert runs.lock_holder(folder) is None  # the next process (or a retry here) is not told the run is busy
    (folder / "checkpoint.pt").unlink()
    (folder / "config.json").write_text('{"batch": 1}')
    with pytest.raises(ValueError, match="differs from the requested config"):
        train.train(cfg, progress=False)
    assert runs.lock_holder(folder) is None


# ------------------------------------------------------------------------------------------ precision


def test_auto_precision_is_a_rule_on_the_device_not_a_timing(monkeypatch):
    monkeypatch.setattr(devices, "has_amx", lambda: False)
    assert [devices.resolve_precision("auto", "cpu") for _ in range(3)] == ["fp32"] * 3
    monkeypatch.setattr(devices, "has_amx", lambda: True)
    assert devices.resolve_precision("auto", "cpu") == "bf16"
    assert devices.resolve_precision("auto", "cuda") == "bf16"
    assert devices.resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="valid: auto, fp32, bf16"):
        devices.resolve_precision("fp16", "cpu")


def test_a_run_records_its_precision_and_refuses_to_resume_under_another(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "DATA", tmp_path)
    monkeypatch.setattr(devices, "has_amx", lambda: False)
    cfg = RunConfig.from_dict({**TINY, "precision": "auto"})
    folder = train.run_dir(cfg)
    train.train(cfg, progress=False)
    assert (folder / "precision").read_text() == "fp32\n"
    state = runs.load_checkpoint(folder / "checkpoint.pt")
    runs.save_checkpoint(folder / "checkpoint.pt", {**state, "done": False})
    monkeypatch.setattr(train, "resolve_precision", lambda requested, device: "bf16")  # another machine
    with pytest.raises(ValueError, match=r"checkpointed in fp32; here precision 'auto' resolves to bf16"):
        train.train(cfg, progress=False)
    (folder / "checkpoint.pt").unlink()  # even from scratch, the folder keeps its first precision
    with pytest.raises(ValueError, match="was trained in fp32; here it would continue in bf16"):
        train.train(cfg, progress=False)


# ------------------------------------------------------------------------------------------ run names


CPU_RUN_NAMES = {  # the cpu profile's run folders: a change here orphans every trained and shipped run
    "eigenvalues-semicircle": "eigenvalues-n3-semicircle-6114a33e36",
    "eigenvalues-uniform": "eigenvalues-n3-uniform-a658ac72f7",
    "eigenvalues-gaussian": "eigenvalues-n3-gaussian-06a67ae9ac",
    "eigenvalues-laplace": "eigenvalues-n3-laplace-eff33ab753",
    "eigenvalues-positive": "eigenvalues-n3-positive-e86278967c",
    "eigenvalues-positive2": "eigenvalues-n3-positive2-444b5401d6",
    "eigenvalues-marcenko": "eigenvalues-n3-marcenko-a8917806f6",
    "eigenvectors": "eigenvectors-n3-semicircle-8793646b1e",
    "eigenvalues-semicircle-seed1": "eigenvalues-n3-semicircle-bf87c6e35f",
    "eigenvalues-uniform-seed1": "eigenvalues-n3-uniform-005a1a84b8",
    "eigenvalues-gaussian-seed1": "eigenvalues-n3-gaussian-7b06eefd62",
    "eigenvalues-laplace-seed1": "eigenvalues-n3-laplace-6f726e781d",
    "eigenvalues-positive-seed1": "eigenvalues-n3-positive-f664fd6507",
    "eigenvalues-positive2-seed1": "eigenvalues-n3-positive2-a72cd83ee4",
    "eigenvalues-marcenko-seed1": "eigenvalues-n3-marcenko-fed4f7bb41",
    "eigenvectors-seed1": "eigenvectors-n3-semicircle-7d964f34b6",
    "inversion": "inversion-n3-uniform-4df080f1af",
    "addition-2layer": "addition-d5-l2-h3-e7b25f1940",
    "addition-1layer": "addition-d5-l1-h3-483414d05c",
    "subtraction-2layer": "subtraction-d5-l2-h3-cf46b90efb",
    "mixed-3layer": "mixed-d5-l3-h4-3446a5c727",
    "ins1-mixed-3layer": "ins1-mixed-d5-l3-h4-18d764114b",
    "addition-2layer-seed1": "addition-d5-l2-h3-5e37d79522",
    "addition-1layer-seed1": "addition-d5-l1-h3-dec26aff61",
    "subtraction-2layer-seed1": "subtraction-d5-l2-h3-485c3c20c1",
    "mixed-3layer-seed1": "mixed-d5-l3-h4-6d9d376be7",
    "ins1-mixed-3layer-seed1": "ins1-mixed-d5-l3-h4-500f687421",
}


def test_the_cpu_profiles_run_names_are_pinned():
    cpu = profiles.get_profile("cpu")
    assert {s.name: s.config.name for s in cpu.runs + cpu.addition} == CPU_RUN_NAMES


def test_seed_replicates_differ_only_by_their_seed():
    for p in (profiles.get_profile("cpu"), profiles.get_profile("smoke")):
        by_name = {s.name: s for s in p.runs}
        for name, spec in by_name.items():
            if spec.seed:
                first = by_name[spec.family]
                assert name == f"{first.name}-seed{spec.seed}" and first.seed == 0
                assert spec.config.replace(seed=0) == first.config and spec.config.name != first.config.name
        families = {s.family for s in p.runs}
        assert all(f"{f}-seed1" in by_name for f in families if f != "inversion"), families
        assert {k: s.name for k, s in p.replicates("eigenvectors").items()} == {0: "eigenvectors",
                                                                                1: "eigenvectors-seed1"}
        assert list(p.replicates("inversion")) == [0]
        with pytest.raises(ValueError, match="families: eigenvalues-semicircle"):
            p.replicates("eigenvectors-seed1")
        by_seed = p.configs_by_seed({"2-layer": "addition-2layer", "1-layer": "addition-1layer"})
        assert {k: {label: c.name for label, c in d.items()} for k, d in by_seed.items()} == {
            k: {"2-layer": p.replicates("addition-2layer")[k].config.name,
                "1-layer": p.replicates("addition-1layer")[k].config.name} for k in (0, 1)}
        with pytest.raises(ValueError, match="run family 'inversion' has seeds \\[0\\]"):
            p.configs_by_seed({"vec": "eigenvectors", "inv": "inversion"})


def test_a_field_added_at_its_default_renames_no_run():
    base = RunConfig.from_dict(TINY)
    assert base.replace(d_mlp=0).name == base.name  # 0 (4 x d_model): the width every existing run has
    assert base.replace(d_mlp=128).name != base.name
    assert "d_mlp" not in json.loads(base.to_json()) and json.loads(base.replace(d_mlp=128).to_json())["d_mlp"] == 128
    assert RunConfig.from_dict(json.loads(base.replace(d_mlp=128).to_json())).model.d_mlp == 128


# ------------------------------------------------------------------------------------------ the layout


def imports_of(path: Path) -> set[str]:
    """The package modules a file imports (absolute dotted names), at any depth of the file."""
    parts = path.relative_to(store.ROOT).with_suffix("").parts
    pkg = parts[:-1] if parts[-1] != "__init__" else parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(pkg[: len(pkg) - node.level + 1]) if node.level else []
            mod = ".".join(base + (node.module.split(".") if node.module else []))
            if mod.startswith("mathtx_helpers"):
                out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mathtx_helpers")}
    return out


MODULES = {".".join(p.relative_to(store.ROOT).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def test_core_knows_no_track_and_tracks_never_import_each_other():
    for name, path in MODULES.items():
        deps = {d for d in imports_of(path) if d.count(".") >= 1}
        if name.startswith("mathtx_helpers.core"):
            assert not {d for d in deps if d.split(".")[1] in ("matrix", "arith", "profiles", "jobs", "runner",
                                                                 "paper")}, name
        for a, b in (("matrix", "arith"), ("arith", "matrix")):
            if name.startswith(f"mathtx_helpers.{a}"):
                assert not {d for d in deps if d.startswith(f"mathtx_helpers.{b}")}, name
        if name.startswith(("mathtx_helpers.matrix", "mathtx_helpers.arith")):
            assert not {d for d in deps if d.split(".")[1] in ("profiles", "jobs", "runner")}, name


def test_no_import_loop():
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {d for d in imports_of(path) if d in MODULES and d != name}
    state: dict[str, int] = {}

    def visit(n, trail):
        if state.get(n) == 1:
            raise AssertionError("import loop: " + " -> ".join(trail + [n]))
        if state.get(n) == 2:
            return
        state[n] = 1
        for m in sorted(graph[n]):
            if not m.endswith("__init__"):
                visit(m, trail + [n])
        state[n] = 2

    for n in sorted(graph):
        visit(n, [])


def test_the_registry_loads_no_torch():
    code = "import sys, mathtx_helpers.profiles as p; p.get_profile('cpu').runs; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=store.ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
