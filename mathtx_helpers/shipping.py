"""The trained weights shipped with the repository (models/<profile>/), restored into the run store, and a
retrain checked against them.

    models/<profile>/manifest.json         per run: its folder name, files, their sha256, the weights' sha256
    models/<profile>/<run>.npz             the final weights (core/shipped.py: exact, small)
    models/<profile>/<run>.<examples>.npz  a snapshot the notebooks read (the weaker eigen-decomposition model)
    models/<profile>/<run>.metrics.jsonl   its learning curve (notebook 02 draws it)

`restore` writes a run folder a notebook reads like one trained here (its checkpoint holds weights only, marked
"restored"); a folder that already holds a checkpoint is left alone. Every file's hash is checked before
anything is written: a mismatch is one ValueError, and nothing is overwritten. `export` writes the files from
finished runs (only ever from `make retrain`'s runs: see docs/profiles.md); `compare` says per run whether a
retrained run's weights are bit-identical to the shipped ones, and if not, how far its accuracy moved.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .core import runs, shipped, store
from .profiles import AddRunSpec, Profile, RunSpec

MODELS = store.ROOT / "models"
MANIFEST = "manifest.json"


def folder(profile: Profile) -> Path:
    return MODELS / profile.name


def manifest(profile: Profile) -> dict:
    """{run name: entry}; empty when the profile ships nothing."""
    path = folder(profile) / MANIFEST
    return json.loads(path.read_text())["runs"] if path.exists() else {}


def _references(spec: RunSpec | AddRunSpec, steps: list[int]) -> dict[int, dict[str, np.ndarray] | None]:
    """{step: the reference the file of the weights after that step is coded against} (core/shipped.py)."""
    if isinstance(spec, RunSpec):
        from .matrix.train import decayed_init

        return decayed_init(spec.config, steps)
    return dict.fromkeys(steps)  # the addition models are small: every row stored whole


def _state(weights: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in weights.items()}


def export(profile: Profile, specs: list[RunSpec | AddRunSpec],
           snapshots: dict[str, list[int]] | None = None) -> list[str]:
    """Write the shipped files of finished runs (and the named snapshots: {run name: [examples, ...]}) and
    update the manifest; return one line per run written."""
    out_dir = folder(profile)
    entries = manifest(profile)
    lines, stale = [], set()
    for spec in specs:
        run_folder = runs.folder_of(spec.config)
        state = _checkpoint(spec)
        if not state.get("done"):
            raise ValueError(f"run {spec.name} of profile {profile.name} is not finished: nothing to ship")
        if state.get("restored"):
            raise ValueError(f"run {spec.name} was restored from models/, not trained here: nothing new to ship")
        meta = {"run": spec.name, "folder": run_folder.name, "config": spec.config.flat(),
                "precision": _precision(spec, state), "step": state["step"]}
        snap_steps = {examples: examples // spec.config.batch for examples in (snapshots or {}).get(spec.name, [])}
        refs = _references(spec, [state["step"], *snap_steps.values()])
        weights = _write(out_dir / f"{spec.name}.npz", shipped.pack(_state(state["model"]), refs[state["step"]], meta))
        curve = store.write_text(out_dir / f"{spec.name}.metrics.jsonl",
                                 "".join(json.dumps(m) + "\n" for m in runs.read_metrics(run_folder)))
        snaps = {}
        for examples, steps in snap_steps.items():
            snap = runs.load_checkpoint(run_folder / "snapshots" / f"{examples}.pt")
            arrays = shipped.pack(_state(snap), refs[steps], {**meta, "step": steps, "snapshot": examples})
            snaps[str(examples)] = _write(out_dir / f"{spec.name}.{examples}.npz", arrays)
        if spec.name in entries:  # a replaced run: its files the new entry does not name leave models/
            stale |= set(_files(entries[spec.name]))
        entries[spec.name] = {"folder": run_folder.name, "precision": meta["precision"], "step": state["step"],
                              "weights": weights, "metrics": {"file": curve.name, "sha256": store.sha256(curve)},
                              "snapshots": snaps}
        size = sum(f["bytes"] for f in [weights, *snaps.values()])
        lines.append(f"{spec.name}: {size / 1e6:.2f} MB in {1 + len(snaps)} weight file(s)")
    store.write_text(out_dir / MANIFEST, json.dumps({"profile": profile.name, "runs": dict(sorted(entries.items()))},
                                                    indent=1) + "\n")
    for name in stale - {f for e in entries.values() for f in _files(e)}:  # after the manifest stops naming them
        (out_dir / name).unlink(missing_ok=True)
        lines.append(f"removed {name} (replaced; the repository's history keeps it)")
    return lines


def _records(entry: dict) -> list[dict]:
    """The file records ({"file", "sha256", ...}) of one manifest entry: weights, learning curve, snapshots."""
    return [entry["weights"], entry["metrics"], *entry["snapshots"].values()]


def _files(entry: dict) -> list[str]:
    """The file names of one manifest entry."""
    return [r["file"] for r in _records(entry)]


def _write(path: Path, arrays: dict) -> dict:
    sha = shipped.write(path, arrays)
    return {"file": path.name, "sha256": sha, "bytes": path.stat().st_size,
            "weights_sha256": shipped.read_meta(arrays)["weights_sha256"]}


def restore(profile: Profile) -> list[str]:
    """Restore every shipped run whose folder holds no checkpoint yet; return one line per run. Every file's hash
    and every run's unpacked weights are checked before anything is written; each folder is then written under
    its run lock, so a run another process is training is never written into (RunBusy names that process)."""
    import torch

    base = folder(profile)
    todo = []
    for name, e in manifest(profile).items():
        spec = profile.run(name)
        run_folder = runs.folder_of(spec.config)
        if run_folder.name != e["folder"]:
            raise ValueError(f"models/{profile.name}/{MANIFEST}: run {name} was shipped as {e['folder']}, but the "
                             f"profile now names it {run_folder.name}: the profile changed since; retrain it")
        if (run_folder / "checkpoint.pt").exists():
            continue
        for f in _records(e):  # every hash checked before any write
            shipped.check(base / f["file"], f["sha256"])
        todo.append((name, spec, run_folder, e))
    unpacked = {}
    for name, spec, _, e in todo:  # ... and every run's weights unpacked (against its seed's initial weights) too
        files = {e["step"]: e["weights"]} | {int(x) // spec.config.batch: f for x, f in e["snapshots"].items()}
        refs = _references(spec, list(files))
        unpacked[name] = {}
        for steps, f in files.items():
            try:
                state = shipped.unpack(shipped.read(base / f["file"]), refs[steps])
            except ValueError as err:
                raise ValueError(f"models/{profile.name}/{f['file']} ({name}): {err}; nothing was restored") from None
            unpacked[name][steps] = {k: torch.from_numpy(v) for k, v in state.items()}
    lines = []
    for name, spec, run_folder, e in todo:
        weights = unpacked.pop(name)
        with runs.RunLock(run_folder, what="restore"):
            if (run_folder / "checkpoint.pt").exists():  # another process wrote one since the first look
                continue
            runs.open_run_folder(run_folder, spec.config.to_json())
            store.write_text(run_folder / "metrics.jsonl", (base / e["metrics"]["file"]).read_text())
            if isinstance(spec, RunSpec):
                store.write_text(run_folder / "precision", e["precision"] + "\n")
            for examples in e["snapshots"]:
                runs.save_checkpoint(run_folder / "snapshots" / f"{examples}.pt",
                                     weights[int(examples) // spec.config.batch])
            runs.save_checkpoint(run_folder / "checkpoint.pt",  # last: the folder reads done once it is complete
                                 {"config": spec.config.flat(), "model": weights[e["step"]],
                                  "precision": e["precision"], "step": e["step"], "restored": e["weights"]["sha256"],
                                  "done": True})
        lines.append(f"{name}: restored from models/{profile.name}/{e['weights']['file']}")
    return lines


def _checkpoint(spec: RunSpec | AddRunSpec) -> dict:
    """The run's checkpoint, or {} if it has none (or an unreadable one: not finished either way)."""
    path = runs.folder_of(spec.config) / "checkpoint.pt"
    try:
        return runs.load_checkpoint(path) if path.exists() else {}
    except runs.CorruptCheckpoint:
        return {}


def is_restored(spec: RunSpec | AddRunSpec) -> bool:
    return bool(_checkpoint(spec).get("restored"))


def compare(profile: Profile, specs: list[RunSpec | AddRunSpec]) -> list[str]:
    """Per shipped run trained here: bit-identical to the shipped weights, or by how much its final evaluation
    accuracy differs."""
    entries = manifest(profile)
    lines = []
    for spec in specs:
        e = entries.get(spec.name)
        run_folder = runs.folder_of(spec.config)
        if e is None:
            lines.append(f"{spec.name}: not shipped")
            continue
        state = _checkpoint(spec)
        if not state.get("done") or state.get("restored"):
            lines.append(f"{spec.name}: not retrained here")
            continue
        same = shipped.weights_sha256(_state(state["model"])) == e["weights"]["weights_sha256"]
        if same:
            lines.append(f"{spec.name}: bit-identical to the shipped weights")
            continue
        text = (folder(profile) / e["metrics"]["file"]).read_text()
        theirs = _final_accuracy(spec, [json.loads(line) for line in text.splitlines() if line.strip()])
        ours = _final_accuracy(spec, runs.read_metrics(run_folder))
        lines.append(f"{spec.name}: weights differ from the shipped ones (precision {_precision(spec, state)} "
                     f"here, {e['precision']} shipped); final evaluation accuracy {ours} here, {theirs} shipped")
    return lines


def _precision(spec: RunSpec | AddRunSpec, state: dict) -> str:
    """The precision a finished run trained in: a matrix checkpoint records it; an arithmetic run's is its
    config's (AddConfig.precision, never machine-dependent)."""
    if isinstance(spec, AddRunSpec):
        return spec.config.precision
    return state.get("precision", "fp32")


def _final_accuracy(spec: RunSpec | AddRunSpec, metrics: list[dict]) -> str:
    """The last evaluation's accuracy: at 5 % on the run's own spectrum (matrix runs), or exact match."""
    evaluated = [m for m in metrics if "acc" in m]
    if not evaluated:
        return "none"
    acc = evaluated[-1]["acc"]
    if isinstance(spec, AddRunSpec):  # exact match on each evaluation set
        return ", ".join(f"{name} {100 * v:.2f} %" for name, v in acc.items())
    own = spec.config.spectrum if spec.config.spectrum in acc else next(iter(acc))
    return f"{100 * acc[own]['0.05']:.1f} % at 5 %"
