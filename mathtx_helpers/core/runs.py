"""Run folders: keyed by a config hash, with checkpoints, metrics, status, a lock, and the resume skeleton.

Both tracks keep their runs in one store, data/runs/<name>-<hash>/:
    config.json      what was asked (the flattened config; the hash is of this)
    checkpoint.pt    latest state: model + optimizer + data RNG + counters, written atomically
    metrics.jsonl    one JSON line per log point; a line cut by a kill mid-append is dropped on resume
    precision        the precision the run trains in, once resolved (a run never resumes under another)
    .lock            held (flock) by the one process training or predicting into the run

`Training` is the skeleton both training loops share: it takes the lock, checks or writes config.json, loads
the checkpoint to resume from (or none), truncates the metrics written after it, appends new lines with their
wall time, says when a checkpoint is due, and writes the final one. A run killed at any point, SIGKILL included,
resumes from its last checkpoint and ends with the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from . import store

RUNS_DIR = "runs"
STATUSES = ("done", "partial", "missing", "corrupt")


# --------------------------------------------------------------------------------------------------
# Config hashing
# --------------------------------------------------------------------------------------------------


def flat_config(cfg, legacy: tuple[str, ...] | None = None) -> dict:
    """A config dataclass as one flat dict: a nested config dataclass (a run's model) is inlined.

    `legacy`: the keys the config had when its run names were first made. Any other key enters the dict only
    when it is set away from its default, so that adding a field (or nesting some) never renames a run."""

    def default(f):
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return _NO_DEFAULT

    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        items = [(g.name, getattr(value, g.name), default(g)) for g in dataclasses.fields(value)] \
            if dataclasses.is_dataclass(value) else [(f.name, value, default(f))]
        for name, v, d in items:
            if legacy is None or name in legacy or v != d:
                out[name] = list(v) if isinstance(v, tuple) else v
    return out


_NO_DEFAULT = object()


def config_json(flat: dict) -> str:
    """The config.json of a run folder."""
    return json.dumps(flat, sort_keys=True, indent=1)


def config_key(flat: dict) -> str:
    """The 10-hex-digit hash of a flattened config that names its run folder."""
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:10]


def check_fields(known: set[str], d: dict, what: str) -> None:
    """A config read back from JSON: every key must be a known field."""
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} field {unknown[0]!r}; valid fields: {', '.join(sorted(known))}")


class HashedConfig:
    """What a run's frozen config dataclass shares (matrix.RunConfig, arith.AddConfig): it holds its model's
    shape in a `model` field (a dataclass of MODEL_CLASS) and is named by the hash of its flattened form.

    Subclasses set LEGACY_KEYS (the flattened keys when the committed runs were named) and MODEL_CLASS, whose
    DERIVED fields (set from the task, never chosen) stay out of config.json and the hash."""

    LEGACY_KEYS: tuple[str, ...] = ()
    MODEL_CLASS: type = object

    def flat(self) -> dict:
        """The flattened dict that config.json holds and the hash is of (the model's fields inline)."""
        derived = getattr(self.MODEL_CLASS, "DERIVED", ())
        return {k: v for k, v in flat_config(self, self.LEGACY_KEYS).items() if k not in derived}

    def to_json(self) -> str:
        return config_json(self.flat())

    @property
    def key(self) -> str:
        return config_key(self.flat())

    @classmethod
    def model_fields(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls.MODEL_CLASS))

    @classmethod
    def from_dict(cls, d: dict):
        """From a flattened dict (config.json, a profile's settings: model fields inline) or a nested one."""
        own, model_fields = {f.name for f in dataclasses.fields(cls)}, cls.model_fields()
        check_fields(own | model_fields, d, cls.__name__)
        model = dict(d.get("model") or {})
        model.update({k: v for k, v in d.items() if k in model_fields})
        return cls(**{k: v for k, v in d.items() if k in own and k != "model"}, model=cls.MODEL_CLASS(**model))

    def replace(self, **changes):
        """A copy with some fields changed (the model's too, by name: replace(d_model=64))."""
        model = {k: changes.pop(k) for k in list(changes) if k in self.model_fields()}
        if model:
            changes["model"] = dataclasses.replace(self.model, **model)
        return dataclasses.replace(self, **changes)


def run_dir(name: str) -> Path:
    return store.DATA / RUNS_DIR / name


def folder_of(cfg) -> Path:
    """The run folder of a run's config (a RunConfig or an AddConfig: anything with a `name`)."""
    return run_dir(cfg.name)


def status_of(cfg) -> str:
    """'done', 'partial' (a checkpoint to resume from), 'missing', or 'corrupt'."""
    return checkpoint_status(folder_of(cfg))


# --------------------------------------------------------------------------------------------------
# Checkpoints, metrics, status
# --------------------------------------------------------------------------------------------------


class CorruptCheckpoint(RuntimeError):
    pass


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated, garbage, wrong format
        raise CorruptCheckpoint(
            f"{store.relative(path)} is not a readable checkpoint ({type(e).__name__}); it was left untouched. "
            f"Delete it (or its run folder) to train this run from scratch.") from None


def save_checkpoint(path: Path, state: dict) -> None:
    import torch

    with store.atomic_path(path) as tmp:
        torch.save(state, tmp)


PROGRESS = "progress.json"  # a run folder's count at its last checkpoint: {"examples": n} or {"step": n}


def read_metrics(folder: Path) -> list[dict]:
    """The log lines of a run. A last line cut short (the process was killed while appending it) is
    dropped: the resumed run rewrites it from its checkpoint."""
    path = folder / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:  # damage before the end is not a kill mid-write: say so
                raise ValueError(f"{store.relative(path)}: line {i + 1} is not JSON; delete the run folder "
                                 "to train it again") from None
    return out


def truncate_metrics(folder: Path, key: str, upto: int) -> None:
    """On resume, drop the lines written after the checkpoint (whose `key`, e.g. examples or step, is past
    `upto`): the resumed run recomputes them identically."""
    lines = [m for m in read_metrics(folder) if m[key] <= upto]
    store.write_text(folder / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in lines))


def progress_done(folder: Path, key: str) -> int:
    """How far a run got (`key`: "examples" or "step"): its last checkpoint's count (progress.json, written with
    every checkpoint, so a bar moves between evaluations) or its last metrics line, whichever is further; 0 if
    neither."""
    lines = read_metrics(folder)
    done = int(lines[-1][key]) if lines else 0
    try:
        return max(done, int(json.loads((folder / PROGRESS).read_text())[key]))
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or not this key: the metrics say it
        return done


def open_run_folder(folder: Path, config_text: str) -> None:
    """Create a run folder with its config.json, or check that an existing one asked for the same config."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "config.json").exists():
        if json.loads((folder / "config.json").read_text()) != json.loads(config_text):
            raise ValueError(f"{store.relative(folder)}/config.json differs from the requested config")
    else:
        store.write_text(folder / "config.json", config_text + "\n")


def checkpoint_status(folder: Path) -> str:
    """'done', 'partial' (a checkpoint to resume from), 'missing', or 'corrupt'."""
    path = folder / "checkpoint.pt"
    if not path.exists():
        return "missing"
    try:
        return "done" if load_checkpoint(path).get("done") else "partial"
    except CorruptCheckpoint:
        return "corrupt"


def bar_disabled(progress: bool) -> bool:
    """Progress bars are off when asked, or when $TQDM_DISABLE is set (as `make figures` does)."""
    return not progress or os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")


# --------------------------------------------------------------------------------------------------
# The lock: one process per run folder at a time
# --------------------------------------------------------------------------------------------------


class RunBusy(RuntimeError):
    """Another process holds the run's lock."""


_HELD: dict[Path, list] = {}  # folder -> [open lock file, depth]: this process's locks (re-entrant)


class RunLock:
    """An exclusive lock on a run folder (flock on <run>/.lock, holding the owner's pid).

    A second process that wants the same run stops at once with RunBusy naming the holder's pid, or, with
    `wait` seconds, waits that long first. The kernel releases a flock when its process ends, however it ends
    (SIGKILL included), so a killed process never leaves a lock that blocks: its pid in the file is only read
    for the message. Re-entrant within a process (predicting right after training, in one process)."""

    GRACE = 0.25  # seconds: a status check (lock_holder) holds the lock for microseconds; never mistake it for a run

    def __init__(self, folder: Path, wait: float = 0.0, what: str = "train"):
        self.folder, self.wait, self.what = Path(folder), wait, what

    def __enter__(self) -> RunLock:
        key = self.folder.resolve()
        if key in _HELD:
            _HELD[key][1] += 1
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        f = open(self.folder / ".lock", "a+")
        deadline = time.monotonic() + max(self.wait, self.GRACE)
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.seek(0)
                    holder = f.read().strip() or "unknown"
                    f.close()
                    raise RunBusy(f"run {self.folder.name} is busy: process {holder} is training or predicting "
                                  f"into it; wait for it to end (or stop it), then {self.what} again") from None
                time.sleep(min(0.05 if self.wait <= self.GRACE else 0.5, max(0.0, deadline - time.monotonic())))
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        _HELD[key] = [f, 1]
        return self

    def __exit__(self, *exc) -> None:
        key = self.folder.resolve()
        entry = _HELD[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            entry[0].close()  # closing the file releases the flock


def lock_holder(folder: Path) -> int | None:
    """The pid holding a run's lock (this process's own if it holds it), or None if it is free."""
    folder = Path(folder)
    if folder.resolve() in _HELD:
        return os.getpid()
    if not (folder / ".lock").exists():
        return None
    with open(folder / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


# --------------------------------------------------------------------------------------------------
# Precision, written once per run
# --------------------------------------------------------------------------------------------------


def recorded_precision(folder: Path) -> str | None:
    """The precision a run folder records it trained in (pin_precision), or None if it records none."""
    path = folder / "precision"
    return path.read_text().strip() if path.exists() else None


def pin_precision(folder: Path, resolved: str, name: str) -> None:
    """Record the precision a run trains in; refuse to go on under another one (one line)."""
    before = recorded_precision(folder)
    if before is None:
        store.write_text(folder / "precision", resolved + "\n")
    elif before != resolved:
        raise ValueError(f"run {name} was trained in {before}; here it would continue in {resolved}, which "
                         f"changes its bytes: resume it on a machine where its precision resolves to {before}, "
                         f"or delete {store.relative(folder)} to train it again here")


# --------------------------------------------------------------------------------------------------
# The resume skeleton both loops use
# --------------------------------------------------------------------------------------------------


class Training:
    """One training session of a run folder:

        with Training(folder, config_text, key="examples") as run:
            if run.finished: return                      # a finished run is skipped
            state = run.state                            # the checkpoint to resume from, or None
            ... restore from state ...
            while ...:
                run.log({...})                           # one metrics line, its wall time added
                if run.due(): run.save({...})            # every `checkpoint_seconds` (or `checkpoint_steps`)
            run.save({...}, done=True)

    `key` is the counter the metrics lines are truncated on at resume ("examples" or "step"). `active`
    False (the non-zero ranks under torchrun) makes every file operation a no-op there."""

    def __init__(self, folder: Path, config_text: str, key: str, checkpoint_seconds: float = 60.0,
                 checkpoint_steps: int | None = None, active: bool = True, wait: float = 0.0):
        self.folder, self.config_text, self.key, self.active = Path(folder), config_text, key, active
        self.checkpoint_seconds, self.checkpoint_steps = checkpoint_seconds, checkpoint_steps
        self.ckpt = self.folder / "checkpoint.pt"
        self.lock = RunLock(self.folder, wait=wait) if active else None
        self.state: dict | None = None
        self.seconds0, self.t0, self.last_ckpt = 0.0, time.monotonic(), time.monotonic()

    @property
    def finished(self) -> bool:
        return bool(self.state and self.state.get("done"))

    def __enter__(self) -> Training:
        if self.lock is not None:
            self.lock.__enter__()
        try:
            if self.lock is not None:
                open_run_folder(self.folder, self.config_text)
            self.state = load_checkpoint(self.ckpt) if self.ckpt.exists() else None
        except BaseException:  # a refused config or a corrupt checkpoint: release the lock before saying so
            if self.lock is not None:
                self.lock.__exit__(None, None, None)
            raise
        return self

    def begin(self) -> None:
        """Start the metrics: truncated to the checkpoint when resuming, empty when fresh."""
        if self.active:
            if self.state is not None:
                truncate_metrics(self.folder, self.key, self.state[self.key])
            else:
                store.write_text(self.folder / "metrics.jsonl", "")
            history = read_metrics(self.folder)
            self.seconds0 = history[-1].get("seconds", 0.0) if history else 0.0
        self.t0 = self.last_ckpt = time.monotonic()

    def log(self, line: dict) -> dict:
        """Append one metrics line with its wall time (seconds since the run began, across resumes; it is
        the only value not restored from checkpoints)."""
        line = {**line, "seconds": round(self.seconds0 + time.monotonic() - self.t0, 1)}
        if self.active:
            with open(self.folder / "metrics.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
        return line

    def due(self, step: int) -> bool:
        """Is a checkpoint due after `step` (by steps if checkpoint_steps is set, else by wall time)?"""
        if self.checkpoint_steps and step % self.checkpoint_steps == 0:
            return True
        return time.monotonic() - self.last_ckpt >= self.checkpoint_seconds

    def save(self, state: dict, done: bool = False) -> None:
        if self.active:
            save_checkpoint(self.ckpt, {**state, "done": done})
            # what a parent's progress bar reads (progress_done) between evaluations; every state carries the
            # counter, as begin() needs it on resume
            store.write_text(self.folder / PROGRESS, json.dumps({self.key: state[self.key]}) + "\n")
        self.last_ckpt = time.monotonic()

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.__exit__(*exc)
