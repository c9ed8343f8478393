"""The sweep's candidates and the eigenvalue diagnosis's selection of them (benchmarks/ is not a package: the
scripts are imported from their folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from mathtx_helpers.matrix.config import RunConfig
from mathtx_helpers.profiles import get_profile

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import eigenvalue_diagnosis  # noqa: E402
from sweep import CANDIDATES  # noqa: E402


def test_every_sweep_candidate_is_a_valid_run_config_with_its_own_run_folder():
    configs = {name: RunConfig.from_dict(c) for name, c in CANDIDATES.items()}  # raises on a bad field
    folders = {}
    for name, cfg in configs.items():
        folders.setdefault(cfg.name, []).append(name)
    # two candidates with one config would train into (and resume from) the same run folder
    assert {k: v for k, v in folders.items() if len(v) > 1} == {}


def test_round9_candidates_are_the_profiles_eigenvalue_runs_with_the_whole_matrix_as_input():
    """docs/benchmarks.md, round 9: 'the profile's eigenvalue recipe with upper=False its one change'. Besides
    `upper`, only what a sweep run fixes differs: fp32 where the profile says auto (fp32 on a CPU without AMX),
    and evaluation on its own spectrum only."""
    cpu = get_profile("cpu")
    for name, c in CANDIDATES.items():
        if not name.startswith("val9-"):
            continue
        cfg = RunConfig.from_dict(c)
        spec = cpu.run(f"eigenvalues-{cfg.spectrum}" + ("-seed1" if cfg.seed else ""))
        ours, theirs = cfg.flat(), spec.config.flat()
        assert {k for k in ours if ours[k] != theirs[k]} == {"upper", "precision", "test_spectra"}, name
        assert (ours["upper"], theirs["upper"], ours["precision"]) == (False, True, "fp32")


def test_diagnosis_selects_eigenvalue_candidates_and_names_the_valid_ones_otherwise(capsys):
    ap = argparse.ArgumentParser(prog="eigenvalue_diagnosis.py")
    specs = eigenvalue_diagnosis.sweep_specs(ap, "val9-positive-full, val9-positive2-full-seed1")
    assert [s.name for s in specs] == ["val9-positive-full", "val9-positive2-full-seed1"]
    assert [(s.config.spectrum, s.config.seed, s.config.upper) for s in specs] == [("positive", 0, False),
                                                                                  ("positive2", 1, False)]
    with pytest.raises(SystemExit):
        eigenvalue_diagnosis.sweep_specs(ap, "val9-positive-full,inv8-today-10M")  # inversion: not eigenvalues
    err = capsys.readouterr().err
    assert "no eigenvalue candidate inv8-today-10M" in err and "val9-gaussian-full" in err
