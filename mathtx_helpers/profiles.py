"""Named profiles: how much each notebook does, and where its outputs go.

    smoke  CI and nbval: proves every code path in under a minute per notebook; results meaningless
    cpu    the default, a reader's laptop: results that show the paper's phenomena (make figures <= 60 min)
    gpu    one GPU: the paper's 5x5 setting
    paper  the exact LAWT / WIMTD sizes (days of GPU)

The notebooks' `profile` parameter defaults to the environment variable MATHTX_PROFILE, else `cpu`.
The training runs of each profile come with the engine (issue 3); this module holds what exists so far.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PROFILE_ENV = "MATHTX_PROFILE"
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    figures: str  # folder (relative to the repo root) that owns this profile's figures
    samples: int  # problems per distribution in notebook 01 (spectra, gaps, condition numbers)
    ceiling_samples: int  # problems per (task, n, encoding) for the encoding ceiling
    sizes: tuple[int, ...]  # matrix sizes shown in notebook 01


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("smoke", "CI and nbval: every code path, results meaningless", "data/figures/smoke",
                samples=1_000, ceiling_samples=500, sizes=(3, 5)),
        Profile("cpu", "default: a laptop, the paper's phenomena", "figures",
                samples=20_000, ceiling_samples=20_000, sizes=(3, 4, 5, 6)),
        Profile("gpu", "one GPU: the paper's 5x5 setting", "figures/gpu",
                samples=50_000, ceiling_samples=50_000, sizes=(3, 4, 5, 6)),
        Profile("paper", "LAWT / WIMTD's exact hyper-parameters", "figures/paper",
                samples=50_000, ceiling_samples=50_000, sizes=(3, 4, 5, 6)),
    )
}


def get_profile(name: str | None = None) -> Profile:
    """The named profile; '' or None means $MATHTX_PROFILE, else 'cpu'. Unknown names raise ValueError."""
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
