"""Fixed test sets of the addition runs and their cached per-question predictions; cached analysis tables.

A run folder (train.py) gains
    predictions/<test set>-<size>.parquet   one row per question of a fixed test set
    analyses/<name>-<hash>.parquet          cached tables of the circuit analyses (notebook 07), keyed by their
                                            parameters
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import runs, store
from . import addition, subtraction
from .config import AddConfig
from .train import load, run_dir, score

TEST_SEED = 345621  # the papers' accuracy-test seed; every test set mixes in its own tag

ADD_TEST_SETS = ("uniform", "enriched") + tuple(f"cascade{k}" for k in range(addition.MAX_CLASS + 1))
# subtraction: uniform, enriched (equal-digit pairs: borrow cascades), and each class M0 .. M4+, N1 .. N4+
SUB_TEST_SETS = ("sub uniform", "sub enriched") + subtraction.CLASSES
TEST_SETS = ADD_TEST_SETS + SUB_TEST_SETS


def operator_of(name: str) -> int:
    """The operator token of a test set's questions."""
    return addition.MINUS if name in SUB_TEST_SETS else addition.PLUS


def test_sizes(sizes: tuple[int, int, int], op: str = "add") -> dict[str, int]:
    """A profile's (uniform, enriched, per-class) sizes -> {test set: questions}, for op 'add' or 'sub'."""
    if op == "sub":
        return {"sub uniform": sizes[0], "sub enriched": sizes[1], **dict.fromkeys(subtraction.CLASSES, sizes[2])}
    per_class = {f"cascade{k}": sizes[2] for k in range(addition.MAX_CLASS + 1)}
    return {"uniform": sizes[0], "enriched": sizes[1], **per_class}


def test_set(name: str, size: int, n: int, enrich_pairs: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """A fixed test set: 'uniform', 'enriched' (the training enrichment on every question, harder than
    training's mix) or 'cascade<k>' (questions of class Sk only); for subtraction 'sub uniform', 'sub enriched'
    and the classes 'M0' .. 'N4'. Seeded by name, never by the run."""
    if name not in TEST_SETS:
        raise ValueError(f"unknown arithmetic test set {name!r}; valid: {', '.join(TEST_SETS)}")
    rng = np.random.default_rng([TEST_SEED, n, store.seed_tag(name)])
    if name in SUB_TEST_SETS:
        if name.startswith("sub "):
            return subtraction.sample(size, n, rng, enrich_pairs if name == "sub enriched" else 0.0)
        return subtraction.probes(name, size, n, rng)
    if name == "uniform":
        return addition.sample(size, n, rng)
    if name == "enriched":
        return addition.sample(size, n, rng, enrich_pairs)
    return addition.probes(int(name.removeprefix("cascade")), size, n, rng)


def predictions(cfg: AddConfig, name: str, size: int) -> pd.DataFrame:
    """One row per question of a fixed test set, cached in the run folder: the question, its cascade length
    (Sk for addition; for subtraction the borrow cascade, with the class Mk / Nk in a column "class"),
    correctness, wrong digits (a string like 'A3A2'), the sign's correctness and the model's confidence (the
    smallest log-probability of its own predicted tokens)."""
    op = operator_of(name)
    if op == addition.MINUS and "sub" not in cfg.operations:
        raise ValueError(f"run {cfg.name} was trained on addition only; test sets: {', '.join(ADD_TEST_SETS)}")
    if op == addition.PLUS and "add" not in cfg.operations:
        raise ValueError(f"run {cfg.name} was trained on subtraction only; test sets: {', '.join(SUB_TEST_SETS)}")

    def compute() -> pd.DataFrame:
        D, Dp = test_set(name, size, cfg.n_digits, cfg.enrich_pairs)
        s = score(load(cfg), D, Dp, op=op)
        n = cfg.n_digits
        pow10 = 10 ** np.arange(n, dtype=np.int64)
        wrong = ["".join(f"A{k}" for k in range(n, -1, -1) if row[k]) for row in s["wrong_digits"]]
        cascade = (addition if op == addition.PLUS else subtraction).cascade_length(D, Dp)
        extra = {"class": subtraction.classes(D, Dp)} if op == addition.MINUS else {}
        return pd.DataFrame({"D": D @ pow10, "Dp": Dp @ pow10, "cascade": cascade, **extra,
                             "correct": s["correct"], "wrong": wrong, "sign_ok": s["sign_ok"],
                             "confidence": s["confidence"].astype(np.float32)})

    path = run_dir(cfg) / "predictions" / f"{name}-{size}.parquet"
    if path.exists():
        return store.cached_parquet(path, compute)
    with runs.RunLock(run_dir(cfg), what="predict"):
        return store.cached_parquet(path, compute)


def accuracy(cfg: AddConfig, tests: tuple[int, int, int]) -> float:
    """The model's exact-match accuracy (%) on the profile's uniform test set: the model_acc of the claim rows
    read on it (notebooks 06-07)."""
    return 100 * float(predictions(cfg, "uniform", test_sizes(tests)["uniform"]).correct.mean())


def cached_table(cfg: AddConfig, name: str, params: dict, compute) -> pd.DataFrame:
    """The table compute() returns, cached in the run folder under `name` and a hash of `params` (everything the
    table depends on besides the trained model: sizes, seeds, the analysis code's version). A second
    `make figures` then reads the notebook 07 analyses instead of recomputing them."""
    return store.cached_parquet(run_dir(cfg) / "analyses" / f"{name}-{store.params_key(params)}.parquet", compute)


def operands(df: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(D, Dp) digit arrays back from a predictions table's integer columns."""
    pow10 = 10 ** np.arange(n, dtype=np.int64)
    return (df["D"].to_numpy()[:, None] // pow10) % 10, (df["Dp"].to_numpy()[:, None] // pow10) % 10
