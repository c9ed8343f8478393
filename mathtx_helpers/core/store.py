"""Where things live, and how they are written (knows no track and no profile).

Paths come from the repository root (this package's parent folder), never from the current directory:
papermill and nbval start kernels in different folders. Every write is atomic: a temporary file in the
same folder, then os.replace, so a crash never leaves half a checkpoint, table or figure behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository: mathtx_helpers/core/store.py
# Tests (and their subprocesses) point DATA elsewhere with this variable, never touching data/.
DATA_ENV = "MATHTX_DATA_DIR"
DATA = Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else ROOT / "data"
FIGURES = ROOT / "figures"
NOTEBOOKS = ROOT / "notebooks"

# Set by the notebook runner so that a notebook's figures land in a staging folder and replace the
# committed ones only when the whole notebook succeeded.
FIGURES_ENV = "MATHTX_FIGURES_DIR"


def figures_dir(folder: str) -> Path:
    """Where figures go: a profile's figures folder (relative to the root: cpu owns figures/, gpu and paper
    their subfolders, smoke data/figures/smoke, so tests never overwrite the reference outputs), or the
    notebook runner's staging folder while a notebook executes."""
    if os.environ.get(FIGURES_ENV):
        return Path(os.environ[FIGURES_ENV])
    return ROOT / folder


def relative(path: os.PathLike | str) -> str:
    """A path as shown to readers: relative to the repository root (no machine paths in outputs)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(ROOT).as_posix()
    except ValueError:
        return p.name


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import, before any thread starts


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed. The file
    gets the mode a plain open() would give it (0666 less the umask), not mkstemp's private 0600, so a run
    store or a notebook written here stays readable by whoever could read it before."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: os.PathLike | str, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: os.PathLike | str, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_parquet(path: os.PathLike | str, df) -> Path:
    """A DataFrame as parquet (no index), atomically."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def cached_parquet(path: os.PathLike | str, compute: Callable[[], Any]):
    """The table at `path`, or compute() written there (atomically) first: the one read-or-compute cache."""
    import pandas as pd

    path = Path(path)
    if path.exists():
        return pd.read_parquet(path)
    df = compute()
    write_parquet(path, df)
    return df


def seed_tag(text: str) -> int:
    """A stable 32-bit integer from a name, to mix into a seed: every named set draws its own stream
    (np.random.default_rng([seed, ..., seed_tag(name)])), the same on every machine and Python."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def params_key(params: dict) -> str:
    """10 hex digits naming a cached table by everything it depends on (sizes, seeds, code version)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]


def sha256(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
