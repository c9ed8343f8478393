"""Where things live, and how they are written.

Paths come from the repository root (this package's parent folder), never from the current directory:
papermill and nbval start kernels in different folders. Every write is atomic: a temporary file in the
same folder, then os.replace, so a crash never leaves half a checkpoint, table or figure behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Tests (and their subprocesses) point DATA elsewhere with this variable, never touching data/.
DATA_ENV = "MATHTX_DATA_DIR"
DATA = Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else ROOT / "data"
FIGURES = ROOT / "figures"
NOTEBOOKS = ROOT / "notebooks"

# Set by the notebook runner so that a notebook's figures land in a staging folder and replace the
# committed ones only when the whole notebook succeeded.
FIGURES_ENV = "MATHTX_FIGURES_DIR"


def figures_dir(profile: str) -> Path:
    """Where a profile's figures go: cpu (the default) owns figures/, gpu and paper their subfolders,
    smoke only data/ (git-ignored), so tests can never overwrite the reference outputs."""
    from .profiles import get_profile

    if os.environ.get(FIGURES_ENV):
        return Path(os.environ[FIGURES_ENV])
    return ROOT / get_profile(profile).figures


def relative(path: os.PathLike | str) -> str:
    """A path as shown to readers: relative to the repository root (no machine paths in outputs)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(ROOT).as_posix()
    except ValueError:
        return p.name


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
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


def sha256(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
