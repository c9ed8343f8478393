"""Shipped weights: a trained run's weights in a small file that restores them bit for bit.

Most of a matrix model's bytes are embedding rows that training never reads (the FP15 vocabulary has 29,128
rows; a 3x3 problem uses a few thousand): such a row only ever felt AdamW's weight decay, so the reader can
rebuild it from the seed (the track's decayed initial weights: matrix/train.py's decayed_init, exact). `pack`
stores each row either whole (float32) or as the int8 difference between its bits and those of that
*reference* (0 for such rows, which then compress to almost nothing); `unpack` adds the differences back to the
reference's bits. A row whose difference does not fit int8 (every trained row) is stored whole, so the round
trip is exact by construction, whatever the reference.

A file (numpy .npz, compressed): for each tensor NAME of the state dict, NAME|mask (bool, one per row: coded
against the reference), NAME|rows (float32, the whole rows) and NAME|delta (int8, the coded rows); plus
|meta, a JSON string (what the run is, how it was trained, the sha256 of the weights' bytes).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from . import store

META = "|meta"
FORMAT = 1


def weights_sha256(state: dict[str, np.ndarray]) -> str:
    """sha256 over the tensors' names, shapes, dtypes and bytes, in name order: equal iff bit-identical."""
    h = hashlib.sha256()
    for name in sorted(state):
        a = np.ascontiguousarray(state[name])
        h.update(f"{name}|{a.shape}|{a.dtype}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1) if a.ndim >= 2 else a.reshape(1, -1)


def pack(state: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None, meta: dict) -> dict[str, np.ndarray]:
    """The arrays of a shipped file. `state`: float32 arrays (a state dict); `reference`: arrays of the same
    shapes the reader can rebuild (None: every row stored whole)."""
    out = {}
    for name, a in state.items():
        if a.dtype != np.float32:
            raise ValueError(f"{name}: only float32 weights are shipped, got {a.dtype}")
        rows = _rows(a)
        mask = np.zeros(len(rows), bool)
        delta = np.zeros((0, rows.shape[1]), np.int8)
        if reference is not None and name in reference:
            ref = _rows(np.asarray(reference[name], np.float32))
            if ref.shape != rows.shape:
                raise ValueError(f"{name}: reference shape {ref.shape} differs from the weights' {rows.shape}")
            d = rows.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64)
            mask = (np.abs(d) <= 127).all(axis=1)
            delta = d[mask].astype(np.int8)
        out[f"{name}|mask"] = mask
        out[f"{name}|rows"] = rows[~mask]
        out[f"{name}|delta"] = delta
    shapes = {name: list(a.shape) for name, a in state.items()}
    out[META] = np.array(json.dumps({**meta, "format": FORMAT, "shapes": shapes,
                                     "weights_sha256": weights_sha256(state)}, sort_keys=True))
    return out


def unpack(arrays: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The exact state dict back (checked against the sha256 the file records)."""
    meta = read_meta(arrays)
    state = {}
    for name, shape in meta["shapes"].items():
        mask, whole, delta = arrays[f"{name}|mask"], arrays[f"{name}|rows"], arrays[f"{name}|delta"]
        rows = np.empty((len(mask), whole.shape[1] if whole.size else delta.shape[1]), np.float32)
        rows[~mask] = whole
        if mask.any():
            if reference is None or name not in reference:
                raise ValueError(f"{name}: the file codes rows against a reference, and none was given")
            ref = _rows(np.asarray(reference[name], np.float32))
            bits = ref[mask].view(np.int32).astype(np.int64) + delta.astype(np.int64)
            rows[mask] = bits.astype(np.int32).view(np.float32)
        state[name] = rows.reshape(shape)
    if weights_sha256(state) != meta["weights_sha256"]:
        raise ValueError("the unpacked weights do not match the sha256 their file records (wrong reference?)")
    return state


def read_meta(arrays) -> dict:
    return json.loads(str(np.asarray(arrays[META]).reshape(-1)[0]))


def write(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write a shipped file atomically; return its sha256. The bytes depend only on the arrays (no
    timestamps), so the same weights give the same file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:  # np.savez_compressed stamps the time
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, member.getvalue(), compresslevel=9)
    store.write_bytes(path, buf.getvalue())
    return store.sha256(path)


def check(path: Path, sha256: str) -> None:
    """A file whose hash differs from the recorded one is one ValueError."""
    if (got := store.sha256(path)) != sha256:
        raise ValueError(f"{store.relative(path)}: sha256 {got[:12]}... differs from the manifest's {sha256[:12]}...; "
                         f"the file is damaged or was replaced: nothing restored (git checkout models/ repairs it)")


def read(path: Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of a shipped file; with `sha256`, checked first (`check`)."""
    if sha256 is not None:
        check(path, sha256)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
