"""Training and scoring the addition models: AddConfig, the loop (exact resume), test sets, predictions.

A run is a frozen AddConfig; its hash names its folder, data/runs/addition-d<n>-l<L>-h<H>-<hash>/:
    config.json      what was asked
    checkpoint.pt    model + optimizer + data RNG state + step, written atomically
    metrics.jsonl    every `log_every` steps: mean loss per answer token since the last line (the per-digit loss
                     curves); every `eval_every` steps also exact-match accuracy on fixed uniform and enriched sets
    predictions/<test set>.parquet   one row per question of a fixed test set
    analyses/<name>-<hash>.parquet   cached tables of the circuit analyses (notebook 07), keyed by their parameters

The recipe is ARITHMETIC.md §E3: a fresh batch every step (60 % of batches enriched with sum-9 pairs), loss on
the answer tokens only, AdamW (betas 0.9, 0.98, weight decay 0.1), linear warm-up from 1 % over the first 20 %
of the steps, then cosine to 0. Accuracy is teacher-forced exact match over all answer tokens (for exact match
this equals greedy decoding). Each run trains on one thread, whatever the machine: the same seed then gives the
same bytes on any CPU count. Two runs train side by side in separate processes (`train_parallel`), which on 2 cores
takes about the same wall time as running them one after the other on two threads (2-layer model, idle 2-core
machine: 84 ms per step on one thread, 49 ms on two; benchmarks/arith_throughput.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import addition, side_by_side, store
from .decoder import Decoder, DecoderConfig
from .train import (
    RUNS_DIR,
    bar_disabled,
    check_fields,
    checkpoint_status,
    config_json,
    config_key,
    load_checkpoint,
    open_run_folder,
    read_metrics,
    save_checkpoint,
    truncate_metrics,
)

TEST_SEED = 345621  # the papers' accuracy-test seed; every test set mixes in its own tag


@dataclass(frozen=True)
class AddConfig:
    n_digits: int = 5
    n_layers: int = 2
    n_heads: int = 3
    d_model: int = 128
    d_head: int = 32
    d_mlp: int = 512
    batch: int = 128
    steps: int = 12_000
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_frac: float = 0.2  # linear warm-up from 1 % of lr over this share of the steps, then cosine to 0
    enrich_batches: float = 0.6  # share of batches with sum-9 enrichment
    enrich_pairs: float = 0.4  # share of column pairs forced to sum to 9 in an enriched batch
    log_every: int = 100  # steps between per-digit loss lines
    eval_every: int = 1_000  # steps between accuracy checks
    eval_size: int = 4_096  # questions per accuracy check (uniform and enriched each)
    seed: int = 372001

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field checked before any work starts; one ValueError naming what is allowed."""
        for name in ("n_digits", "batch", "steps", "log_every", "eval_every", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 2 <= self.n_digits <= 15:
            raise ValueError(f"n_digits must be in 2..15 (the papers: 5-15), got {self.n_digits}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        for name in ("warmup_frac", "enrich_batches", "enrich_pairs"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        _ = self.model  # DecoderConfig checks the model sizes

    @property
    def model(self) -> DecoderConfig:
        return DecoderConfig(n_ctx=addition.n_ctx(self.n_digits), d_vocab=addition.D_VOCAB, n_layers=self.n_layers,
                             n_heads=self.n_heads, d_model=self.d_model, d_head=self.d_head, d_mlp=self.d_mlp)

    @property
    def key(self) -> str:
        return config_key(self)

    @property
    def name(self) -> str:
        return f"addition-d{self.n_digits}-l{self.n_layers}-h{self.n_heads}-{self.key}"

    def to_json(self) -> str:
        return config_json(self)

    @classmethod
    def from_dict(cls, d: dict) -> AddConfig:
        check_fields(cls, d)
        return cls(**d)


def run_dir(cfg: AddConfig) -> Path:
    return store.DATA / RUNS_DIR / cfg.name  # the matrix runs' store


def learning_rate(cfg: AddConfig, step: int) -> float:
    """Linear warm-up from 1 % to 100 % of lr over warmup_frac of the steps, then cosine annealing to 0."""
    warm = int(cfg.warmup_frac * cfg.steps)
    if step < warm:
        return cfg.lr * (0.01 + 0.99 * step / warm)
    progress = (step - warm) / max(1, cfg.steps - warm)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, progress)))


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def answer_logits(model: Decoder, tok: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n+2, V) logits at the positions that predict the sign and the n+1 answer digits."""
    return model(tok)[:, addition.answer_slice(n)]


def loss_per_token(logits: torch.Tensor, tok: torch.Tensor, n: int) -> torch.Tensor:
    """(n+2,) mean negative log-likelihood of each answer token (sign, A(n) .. A0) over the batch."""
    target = tok[:, 2 * n + 2:]  # (B, n+2)
    logp = F.log_softmax(logits.double(), -1).gather(-1, target[..., None])[..., 0]  # float64 as the papers
    return -logp.mean(0)


@torch.no_grad()
def score(model: Decoder, D: np.ndarray, Dp: np.ndarray, batch: int = 8192) -> dict[str, np.ndarray]:
    """Teacher-forced predictions for questions (D, Dp): per-question exact match, which answer digits are wrong
    (B, n+1) with column k = Ak, the sign's correctness, and the model's confidence: the smallest log-probability
    it gives one of its own predicted tokens (read with the true answer prefix as input, so equal to greedy
    decoding's up to the first wrong token)."""
    model.eval()
    n = D.shape[1]
    pred, lp_min = [], []
    for i in range(0, len(D), batch):
        tok = torch.from_numpy(addition.tokens(D[i:i + batch], Dp[i:i + batch]))
        logits = answer_logits(model, tok, n).float()  # (b, n+2, V)
        pred.append(logits.argmax(-1).numpy())
        logp = F.log_softmax(logits, -1).max(-1).values  # log-probability of each predicted token (b, n+2)
        lp_min.append(logp.min(1).values.numpy())
    P = np.concatenate(pred)  # (B, n+2): sign, A(n) .. A0
    A = addition.answer_digits(D, Dp)
    A_hat = P[:, 1:][:, ::-1]  # column k = Ak
    wrong = A_hat != A
    sign_ok = P[:, 0] == addition.PLUS
    return {"wrong_digits": wrong, "sign_ok": sign_ok, "correct": ~wrong.any(1) & sign_ok,
            "confidence": np.concatenate(lp_min)}


def eval_sets(cfg: AddConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The fixed sets checked during training (their own seeds: they never touch the training stream)."""
    rng = np.random.default_rng([cfg.seed, 7919])
    return {"uniform": addition.sample(cfg.eval_size, cfg.n_digits, rng),
            "enriched": addition.sample(cfg.eval_size, cfg.n_digits, rng, cfg.enrich_pairs)}


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def build(cfg: AddConfig) -> Decoder:
    torch.manual_seed(cfg.seed)
    return Decoder(cfg.model)


def run_status(cfg: AddConfig) -> str:
    """'done', 'partial' (a checkpoint to resume from), 'missing', or 'corrupt'."""
    return checkpoint_status(run_dir(cfg))


def load(cfg: AddConfig) -> Decoder:
    """The trained model of a finished run (evaluation mode, on the CPU)."""
    path = run_dir(cfg) / "checkpoint.pt"
    if run_status(cfg) != "done":
        raise ValueError(f"run {cfg.name} is not trained (status {run_status(cfg)}): train it first")
    model = build(cfg)
    model.load_state_dict(load_checkpoint(path)["model"])
    return model.eval()


def train(cfg: AddConfig, checkpoint_seconds: float = 60.0, stop_after: int | None = None, progress: bool = True,
          desc: str | None = None, threads: int | None = 1) -> Path:
    """Train (or resume, or skip if finished) the run of `cfg`; return its folder. `stop_after` ends the
    process's work after that many steps in total, leaving a checkpoint to resume from (for tests).
    threads: torch threads for this process (None leaves the setting alone)."""
    cfg.validate()
    if threads is not None:
        torch.set_num_threads(threads)
    folder = run_dir(cfg)
    ckpt = folder / "checkpoint.pt"
    open_run_folder(folder, cfg.to_json())
    state = load_checkpoint(ckpt) if ckpt.exists() else None
    if state is not None and state.get("done"):
        return folder
    model = build(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay,
                            fused=True)
    rng = np.random.default_rng(cfg.seed)
    step, loss_sum, loss_count = 0, np.zeros(cfg.n_digits + 2), 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        step, loss_sum, loss_count = state["step"], np.array(state["loss_sum"]), state["loss_count"]
        truncate_metrics(folder, "step", step)
    else:
        store.write_text(folder / "metrics.jsonl", "")
    history = read_metrics(folder)
    seconds0, t0 = (history[-1]["seconds"] if history else 0.0), time.monotonic()
    checks = eval_sets(cfg)

    def save(done: bool = False):
        save_checkpoint(ckpt, {"config": dataclasses.asdict(cfg), "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "rng": rng.bit_generator.state, "step": step,
                               "loss_sum": loss_sum.tolist(), "loss_count": loss_count, "done": done})

    n = cfg.n_digits
    bar = tqdm(total=cfg.steps, initial=step, unit="step", desc=desc or cfg.name, disable=bar_disabled(progress),
               dynamic_ncols=True)
    last_ckpt, last_acc = time.monotonic(), None
    while step < cfg.steps:
        if stop_after is not None and step >= stop_after:
            save()
            bar.close()
            return folder
        model.train()
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        D, Dp = addition.training_batch(cfg.batch, n, rng, cfg.enrich_batches, cfg.enrich_pairs)
        tok = torch.from_numpy(addition.tokens(D, Dp))  # (B, 3n+4)
        per_token = loss_per_token(answer_logits(model, tok, n), tok, n)  # (n+2,)
        loss = per_token.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        loss_sum += per_token.detach().numpy()
        loss_count += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = loss_sum / loss_count
            line = {"step": step, "questions": step * cfg.batch, "lr": opt.param_groups[0]["lr"],
                    "loss": float(mean.mean()), "loss_sign": float(mean[0]),
                    **{f"loss_A{n - i}": float(mean[1 + i]) for i in range(n + 1)}}
            if step % cfg.eval_every == 0 or step == cfg.steps:
                line["acc"] = {name: float(score(model, *q)["correct"].mean()) for name, q in checks.items()}
                last_acc = line["acc"]["enriched"]
            line["seconds"] = round(seconds0 + time.monotonic() - t0, 1)  # wall time, not in checkpoints
            with open(folder / "metrics.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
            loss_sum, loss_count = np.zeros(n + 2), 0
            bar.set_postfix(loss=f"{line['loss']:.2e}", acc=f"{last_acc:.2%}" if last_acc is not None else "-",
                            refresh=False)
        if time.monotonic() - last_ckpt >= checkpoint_seconds and step < cfg.steps:
            save()
            last_ckpt = time.monotonic()
    save(done=True)
    bar.close()
    return folder


def train_parallel(configs: dict[str, AddConfig], progress: bool = True, poll: float = 2.0) -> None:
    """Train several runs side by side, one process and one thread each; finished runs are skipped. One
    progress bar follows all of them (steps logged in their metrics). A failed run raises with its name and
    the end of its log (data/runs/<run>/train.log)."""
    todo = {name: cfg for name, cfg in configs.items() if run_status(cfg) != "done"}
    if len(todo) <= 1:  # nothing, or one run: train it here
        for name, cfg in todo.items():
            train(cfg, progress=progress, desc=name)
        return
    code = ("import json, sys; from mathtx_helpers import arith_train as t; "
            "t.train(t.AddConfig.from_dict(json.loads(sys.argv[1])), progress=False)")
    jobs = [side_by_side.Job(name, run_dir(cfg), code, (json.dumps(dataclasses.asdict(cfg)),))
            for name, cfg in todo.items()]

    def steps_done() -> int:
        return sum((read_metrics(run_dir(c)) or [{"step": 0}])[-1]["step"] for c in todo.values())

    side_by_side.run(jobs, sum(c.steps for c in todo.values()), steps_done, "step", threads=1, progress=progress,
                     poll=poll)


# --------------------------------------------------------------------------------------------------
# Test sets and predictions
# --------------------------------------------------------------------------------------------------

TEST_SETS = ("uniform", "enriched") + tuple(f"cascade{k}" for k in range(addition.MAX_CLASS + 1))


def test_sizes(sizes: tuple[int, int, int]) -> dict[str, int]:
    """A profile's (uniform, enriched, per-class) sizes -> {test set: questions}."""
    per_class = {f"cascade{k}": sizes[2] for k in range(addition.MAX_CLASS + 1)}
    return {"uniform": sizes[0], "enriched": sizes[1], **per_class}


def test_set(name: str, size: int, n: int, enrich_pairs: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """A fixed test set: 'uniform', 'enriched' (the training enrichment on every question, harder than
    training's mix) or 'cascade<k>' (questions of class Sk only). Seeded by name, never by the run."""
    if name not in TEST_SETS:
        raise ValueError(f"unknown addition test set {name!r}; valid: {', '.join(TEST_SETS)}")
    tag = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([TEST_SEED, n, tag])
    if name == "uniform":
        return addition.sample(size, n, rng)
    if name == "enriched":
        return addition.sample(size, n, rng, enrich_pairs)
    return addition.probes(int(name.removeprefix("cascade")), size, n, rng)


def _cached_parquet(path: Path, compute) -> pd.DataFrame:
    """Read `path`, or compute the table and write it there (atomically) first."""
    if path.exists():
        return pd.read_parquet(path)
    df = compute()
    store.write_parquet(path, df)
    return df


def predictions(cfg: AddConfig, name: str, size: int) -> pd.DataFrame:
    """One row per question of a fixed test set, cached in the run folder: the question, the class Sk,
    correctness, wrong digits (a string like 'A3A2'), the sign's correctness and the model's confidence (the
    smallest log-probability of its own predicted tokens)."""

    def compute() -> pd.DataFrame:
        D, Dp = test_set(name, size, cfg.n_digits, cfg.enrich_pairs)
        s = score(load(cfg), D, Dp)
        n = cfg.n_digits
        pow10 = 10 ** np.arange(n, dtype=np.int64)
        wrong = ["".join(f"A{k}" for k in range(n, -1, -1) if row[k]) for row in s["wrong_digits"]]
        return pd.DataFrame({"D": D @ pow10, "Dp": Dp @ pow10, "cascade": addition.cascade_length(D, Dp),
                             "correct": s["correct"], "wrong": wrong, "sign_ok": s["sign_ok"],
                             "confidence": s["confidence"].astype(np.float32)})

    return _cached_parquet(run_dir(cfg) / "predictions" / f"{name}-{size}.parquet", compute)


def cached_table(cfg: AddConfig, name: str, params: dict, compute) -> pd.DataFrame:
    """The table compute() returns, cached in the run folder under `name` and a hash of `params` (everything the
    table depends on besides the trained model: sizes, seeds, the analysis code's version). A second
    `make figures` then reads the notebook 07 analyses instead of recomputing them."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return _cached_parquet(run_dir(cfg) / "analyses" / f"{name}-{key}.parquet", compute)


def operands(df: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(D, Dp) digit arrays back from a predictions table's integer columns."""
    pow10 = 10 ** np.arange(n, dtype=np.int64)
    return (df["D"].to_numpy()[:, None] // pow10) % 10, (df["Dp"].to_numpy()[:, None] // pow10) % 10
