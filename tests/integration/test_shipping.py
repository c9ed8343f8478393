"""Shipped weights: the packed format round-trips bit for bit, restored runs predict exactly what the trained
ones did, a damaged file restores nothing, and compare tells identical from different retrains."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mathtx_helpers import shipping
from mathtx_helpers.core import runs, shipped, store
from mathtx_helpers.matrix import predict
from mathtx_helpers.profiles import get_profile

pytestmark = pytest.mark.usefixtures("one_thread")

P = get_profile("smoke")
NAMES = ["eigenvectors", "eigenvalues-laplace", "addition-1layer"]


@contextlib.contextmanager
def held_by_another_process(folder, what: str = "train"):
    """A second process holding the run lock of `folder` (RunLock is re-entrant within this one)."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from mathtx_helpers.core import runs\n"
                               "with runs.RunLock(Path(sys.argv[1]), what=sys.argv[2]):\n"
                               "    print('held', flush=True); time.sleep(60)",
                               str(folder), what], stdout=subprocess.PIPE, text=True, cwd=store.ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_pack_round_trip_is_exact_and_codes_untouched_rows():
    rng = np.random.default_rng(0)
    init = rng.normal(0, 0.02, (500, 16)).astype(np.float32)
    ref = (init.astype(np.float64) * 0.99).astype(np.float32)
    final = ref.copy()
    final.view(np.int32)[:450] += rng.integers(-3, 4, (450, 16)).astype(np.int32)  # decayed rows: a few ulps off
    final[450:] = rng.normal(0, 0.1, (50, 16))  # trained rows
    bias = rng.normal(size=7).astype(np.float32)
    state = {"emb.weight": final, "bias": bias}
    arrays = shipped.pack(state, {"emb.weight": ref}, {"run": "x"})
    assert arrays["emb.weight|mask"].sum() == 450 and arrays["emb.weight|rows"].shape == (50, 16)
    back = shipped.unpack(arrays, {"emb.weight": ref})
    for k in state:
        assert back[k].dtype == np.float32 and np.array_equal(back[k].view(np.int32), state[k].view(np.int32))
    with pytest.raises(ValueError, match="sha256"):  # another reference cannot pass for the right one
        shipped.unpack(arrays, {"emb.weight": ref * np.float32(1.001)})
    with pytest.raises(ValueError, match="reference"):
        shipped.unpack(arrays, None)


def test_file_bytes_depend_only_on_the_weights(tmp_path):
    arrays = shipped.pack({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, None, {"run": "x"})
    a, b = shipped.write(tmp_path / "a.npz", arrays), shipped.write(tmp_path / "b.npz", arrays)
    assert a == b and (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with pytest.raises(ValueError, match="differs from the manifest"):
        shipped.read(tmp_path / "a.npz", sha256="0" * 64)


@pytest.fixture(scope="module")
def shipped_smoke(tmp_path_factory, one_thread):
    """Three smoke runs trained, exported to a private models/, their predictions kept; the run store then
    emptied. Yields (data folder, models folder, predictions before)."""
    root = tmp_path_factory.mktemp("ship")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "DATA", root / "data")
        mp.setattr(shipping, "MODELS", root / "models")
        specs = [P.run(n) for n in NAMES]
        from mathtx_helpers import jobs

        jobs.train_runs(P, specs, progress=False)
        eig = P.run("eigenvectors")
        snaps = sorted(int(p.stem) for p in (runs.folder_of(eig.config) / "snapshots").glob("*.pt"))
        lines = shipping.export(P, specs, snapshots={"eigenvectors": snaps[:1]})
        before = {n: pd.read_parquet(predict.predict(P.run(n).config, size=16)) for n in NAMES[:2]}
        before["snapshot"] = pd.read_parquet(predict.predict(eig.config, size=16, snapshot=snaps[0]))
        trained_sha = {n: shipped.weights_sha256(shipping._state(
            runs.load_checkpoint(runs.folder_of(P.run(n).config) / "checkpoint.pt")["model"])) for n in NAMES}
        keep = root / "trained"
        shutil.move(root / "data" / "runs", keep)
        shutil.rmtree(root / "data" / "predictions", ignore_errors=True)
        yield root, before, trained_sha, lines, keep, snaps[0]


def test_restore_predicts_what_the_trained_runs_did(shipped_smoke, monkeypatch):
    root, before, trained_sha, lines, _, snap = shipped_smoke
    monkeypatch.setattr(store, "DATA", root / "data")
    monkeypatch.setattr(shipping, "MODELS", root / "models")
    assert len(lines) == 3 and all("MB" in line for line in lines)
    restored = shipping.restore(P)
    assert sorted(line.split(":")[0] for line in restored) == sorted(NAMES)
    for n in NAMES:
        spec = P.run(n)
        state = runs.load_checkpoint(runs.folder_of(spec.config) / "checkpoint.pt")
        assert state["done"] and state["restored"] and runs.status_of(spec.config) == "done"
        assert shipped.weights_sha256(shipping._state(state["model"])) == trained_sha[n]
    for n in NAMES[:2]:
        after = pd.read_parquet(predict.predict(P.run(n).config, size=16))
        pd.testing.assert_frame_equal(after, before[n])
    after = pd.read_parquet(predict.predict(P.run("eigenvectors").config, size=16, snapshot=snap))
    pd.testing.assert_frame_equal(after, before["snapshot"])
    assert shipping.restore(P) == []  # a folder with a checkpoint is never overwritten
    assert all("not retrained here" in line for line in shipping.compare(P, [P.run(n) for n in NAMES]))


def test_a_damaged_file_restores_nothing(shipped_smoke, tmp_path, monkeypatch):
    root = shipped_smoke[0]
    models = tmp_path / "models"
    shutil.copytree(root / "models", models)
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    monkeypatch.setattr(shipping, "MODELS", models)
    path = models / "smoke" / "eigenvalues-laplace.npz"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="eigenvalues-laplace.npz: sha256 .* nothing restored"):
        shipping.restore(P)
    assert not (tmp_path / "data" / "runs").exists() or not any((tmp_path / "data" / "runs").rglob("checkpoint.pt"))


def test_weights_that_do_not_unpack_restore_nothing(shipped_smoke, tmp_path, monkeypatch):
    """Every run's weights are unpacked (and checked against their recorded sha256) before any run is written:
    a run whose reference weights changed (another torch drawing other initial weights) leaves no run half
    restored, and the message names the file."""
    root = shipped_smoke[0]
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    monkeypatch.setattr(shipping, "MODELS", root / "models")
    unpack = shipped.unpack

    def fails_on_the_last(arrays, reference):
        if shipped.read_meta(arrays)["weights_sha256"] == last:
            raise ValueError("the unpacked weights do not match the sha256 their file records (wrong reference?)")
        return unpack(arrays, reference)

    entries = json.loads((root / "models" / "smoke" / "manifest.json").read_text())["runs"]
    last = entries[list(entries)[-1]]["weights"]["weights_sha256"]
    monkeypatch.setattr(shipped, "unpack", fails_on_the_last)
    with pytest.raises(ValueError, match=r"models/smoke/.*\.npz \(.*\): the unpacked weights .* nothing was restored"):
        shipping.restore(P)
    assert not any((tmp_path / "data").rglob("checkpoint.pt")) and not any((tmp_path / "data").rglob("metrics.jsonl"))


def test_restore_never_writes_into_a_run_another_process_holds(shipped_smoke, tmp_path, monkeypatch):
    import time

    root = shipped_smoke[0]
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    monkeypatch.setattr(shipping, "MODELS", root / "models")
    busy = runs.folder_of(P.run("eigenvalues-laplace").config)
    busy.mkdir(parents=True)
    with held_by_another_process(busy) as pid:
        with pytest.raises(runs.RunBusy, match=f"process {pid} .* then restore again"):
            shipping.restore(P)
        assert sorted(p.name for p in busy.iterdir()) == [".lock"]  # nothing written into the busy run
    time.sleep(0.1)
    restored = shipping.restore(P)  # once it is free, the rest is restored
    assert any(line.startswith("eigenvalues-laplace:") for line in restored)


def test_retrain_never_deletes_a_restored_run_another_process_reads(shipped_smoke, tmp_path, monkeypatch):
    from mathtx_helpers import jobs

    root = shipped_smoke[0]
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    monkeypatch.setattr(shipping, "MODELS", root / "models")
    shipping.restore(P)
    spec = P.run("eigenvalues-laplace")
    folder = runs.folder_of(spec.config)
    before = sorted(p.name for p in folder.iterdir())
    trained = []
    monkeypatch.setattr(jobs, "train_profiled", lambda profile, specs, **kw: trained.append(specs))
    with held_by_another_process(folder, what="predict"):
        with pytest.raises(runs.RunBusy, match="then retrain again"):
            jobs.retrain(P, [spec])
        assert sorted(p.name for p in folder.iterdir()) == before and not trained
    jobs.retrain(P, [spec], progress=False)  # free: the restored copy goes (its lock file stays), then it trains
    assert [p.name for p in folder.iterdir()] == [".lock"] and trained == [[spec]]


def test_compare_tells_identical_from_different(shipped_smoke, tmp_path, monkeypatch):
    root, _, _, _, keep, _ = shipped_smoke
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    monkeypatch.setattr(shipping, "MODELS", root / "models")
    shutil.copytree(keep, tmp_path / "data" / "runs")  # the trained (not restored) runs
    lines = shipping.compare(P, [P.run(n) for n in NAMES])
    assert all("bit-identical" in line for line in lines), lines
    # a retrain that came out otherwise: perturb one weight of the run here
    spec = P.run("eigenvalues-laplace")
    path = runs.folder_of(spec.config) / "checkpoint.pt"
    state = runs.load_checkpoint(path)
    next(iter(state["model"].values())).view(-1)[0] += 1e-3
    runs.save_checkpoint(path, state)
    line = shipping.compare(P, [spec])[0]
    assert "weights differ" in line and "% at 5 %" in line
    entry = json.loads((root / "models" / "smoke" / "manifest.json").read_text())["runs"]["eigenvectors"]
    assert entry["snapshots"] and entry["weights"]["bytes"] > 0


def test_a_reshipped_run_leaves_no_file_its_new_entry_does_not_name(shipped_smoke, tmp_path, monkeypatch):
    """Shipping a run again with another snapshot (a profile change) replaces its files: the old snapshot leaves
    models/ once the manifest stops naming it, and every other run's files stay."""
    root, _, _, _, keep, first = shipped_smoke
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    monkeypatch.setattr(shipping, "MODELS", tmp_path / "models")
    shutil.copytree(keep, tmp_path / "data" / "runs")
    shutil.copytree(root / "models", tmp_path / "models")
    out = tmp_path / "models" / "smoke"
    assert (out / f"eigenvectors.{first}.npz").exists()
    eig = P.run("eigenvectors")
    later = max(int(p.stem) for p in (runs.folder_of(eig.config) / "snapshots").glob("*.pt"))
    assert later != first
    lines = shipping.export(P, [eig], snapshots={"eigenvectors": [later]})
    assert not (out / f"eigenvectors.{first}.npz").exists() and (out / f"eigenvectors.{later}.npz").exists()
    assert f"removed eigenvectors.{first}.npz (replaced; the repository's history keeps it)" in lines
    entries = shipping.manifest(P)
    assert sorted(entries) == sorted(NAMES)  # the other runs' entries stay
    named = {f for e in entries.values() for f in shipping._files(e)}
    assert {p.name for p in out.iterdir()} == named | {shipping.MANIFEST}


def test_an_arithmetic_run_is_shipped_and_compared_in_the_precision_it_trained_in():
    """Arithmetic checkpoints record no precision: the run's config says it (AddConfig.precision), never a
    default fp32 label on a bf16 run."""
    import dataclasses

    spec = P.run("addition-1layer")
    bf16 = dataclasses.replace(spec, config=spec.config.replace(precision="bf16"))
    assert shipping._precision(spec, {"done": True}) == "fp32"
    assert shipping._precision(bf16, {"done": True}) == "bf16"
    assert shipping._precision(P.run("eigenvalues-laplace"), {"precision": "bf16"}) == "bf16"
