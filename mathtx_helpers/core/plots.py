"""One plotting style, and `save`: a figure as PNG + PDF + the plotted numbers as CSV, atomically.

PNG and PDF carry no volatile metadata (no dates, no software versions), so the same numbers give the
same bytes and regenerated figures only show up in `git diff` when they really changed.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from . import store

_PNG_META = {"Software": None}
_PDF_META = {"Creator": None, "Producer": None, "CreationDate": None}


def set_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "pdf.fonttype": 42, "svg.hashsalt": "mathtx", "axes.titlesize": "medium"})


def save(fig: plt.Figure, name: str, data: pd.DataFrame, figures: str) -> list[str]:
    """Write <name>.png, .pdf and .csv (the numbers plotted) into a profile's figures folder (`figures`,
    relative to the repository root, e.g. Profile.figures); return the paths they have once published (the
    notebook runner stages figures and publishes them when the whole notebook succeeded)."""
    if "/" not in figures and figures != "figures":
        raise ValueError(f"figure {name!r}: {figures!r} is not a figures folder; pass the profile's Profile.figures "
                         "(e.g. 'figures' or 'data/figures/smoke')")
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise ValueError(f"figure {name!r}: pass the plotted numbers as a non-empty DataFrame")
    folder = store.figures_dir(figures)
    for ext in ("png", "pdf"):
        with store.atomic_path(folder / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, metadata=_PNG_META if ext == "png" else _PDF_META)
    store.write_text(folder / f"{name}.csv", data.to_csv(index=False, float_format="%.6g"))
    return [f"{figures}/{name}.{ext}" for ext in ("png", "pdf", "csv")]

