"""Training and scoring the addition models: the loop (exact resume), teacher-forced scoring.

A run is a frozen AddConfig; its hash names its folder, data/runs/addition-d<n>-l<L>-h<H>-<hash>/:
    config.json      what was asked
    checkpoint.pt    model + optimizer + data RNG state + step, written atomically
    metrics.jsonl    every `log_every` steps: mean loss per answer token since the last line (the per-digit loss
                     curves); every `eval_every` steps also exact-match accuracy on fixed uniform and enriched sets
(predict.py adds predictions/ and analyses/.)

The recipe is ARITHMETIC.md §E3: a fresh batch every step (60 % of batches enriched with sum-9 pairs), loss on
the answer tokens only, AdamW (betas 0.9, 0.98, weight decay 0.1), linear warm-up from 1 % over the first 20 %
of the steps, then cosine to 0. Accuracy is teacher-forced exact match over all answer tokens (for exact match
this equals greedy decoding). Each run trains on one thread, whatever the machine: the same seed then gives the
same bytes on any CPU count. Two runs train side by side in separate processes (jobs.py), which on 2 cores
takes about the same wall time as running them one after the other on two threads (2-layer model, idle 2-core
machine: 84 ms per step on one thread, 49 ms on two; benchmarks/arith_throughput.py). AddConfig.precision="bf16"
runs the training forward in bf16 autocast (weights, optimizer and the float64 loss unchanged): about 1.75x faster
on an AMD EPYC with AVX-512-BF16; every shipped run is fp32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core import devices, runs, schedule
from ..core.runs import bar_disabled, load_checkpoint
from ..core.runs import folder_of as run_dir  # the one store of both tracks
from ..core.runs import status_of as run_status
from . import addition, insertion, subtraction
from .config import AddConfig
from .decoder import Decoder


def learning_rate(cfg: AddConfig, step: int) -> float:
    """Linear warm-up from 1 % to 100 % of lr over warmup_frac of the steps, then cosine annealing to 0."""
    warm = int(cfg.warmup_frac * cfg.steps)
    if step < warm:
        return cfg.lr * (0.01 + 0.99 * step / warm)
    return schedule.cosine(step, warm, cfg.steps, cfg.lr)


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------


def answer_logits(model: Decoder, tok: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n+2, V) logits at the positions that predict the sign and the n+1 answer digits, from the full
    forward pass: training's, whose gradient bytes (and so the shipped models) depend on it. Scoring reads the
    same logits from Decoder.logits_at, which computes a third less."""
    return model(tok)[:, addition.answer_slice(n)]


def training_loss(model: Decoder, tok: torch.Tensor, n: int, precision: str = "fp32") -> torch.Tensor:
    """(n+2,) the training step's loss per answer token: the forward in `precision` (bf16: autocast, the weights
    stay fp32), the loss in float64 whatever the precision."""
    with devices.autocast("cpu", precision):
        logits = answer_logits(model, tok, n)  # (B, n+2, d_vocab)
    return loss_per_token(logits, tok, n)


def wall_time(metrics: list[dict]) -> str:
    """A finished run's training time from its metrics lines: '12,000 steps in 25.4 min of wall time (127 ms per
    step)'."""
    last = metrics[-1]
    return (f"{last['step']:,} steps in {last['seconds'] / 60:.1f} min of wall time "
            f"({last['seconds'] / last['step'] * 1000:.0f} ms per step)")


def loss_per_token(logits: torch.Tensor, tok: torch.Tensor, n: int) -> torch.Tensor:
    """(n+2,) mean negative log-likelihood of each answer token (sign, A(n) .. A0) over the batch."""
    target = tok[:, 2 * n + 2:]  # (B, n+2)
    logp = F.log_softmax(logits.double(), -1).gather(-1, target[..., None])[..., 0]  # float64 as the papers
    return -logp.mean(0)


@torch.no_grad()
def score(model: Decoder, D: np.ndarray, Dp: np.ndarray, batch: int = 512, op: int = addition.PLUS
          ) -> dict[str, np.ndarray]:
    """Teacher-forced predictions for questions D op D' (op: addition.PLUS or MINUS): per-question exact match,
    which answer digits are wrong
    (B, n+1) with column k = Ak, the sign's correctness, and the model's confidence: the smallest log-probability
    it gives one of its own predicted tokens (read with the true answer prefix as input, so equal to greedy
    decoding's up to the first wrong token). Batches of 512 keep the (B, T, d_mlp) activations in cache: 1.7x the
    speed of 8,192 on two cores, the same outputs (docs/benchmarks.md)."""
    model.eval()
    n = D.shape[1]
    pred, lp_min = [], []
    for i in range(0, len(D), batch):
        tok = torch.from_numpy(addition.tokens(D[i:i + batch], Dp[i:i + batch], op))
        logits = model.logits_at(tok, addition.answer_slice(n)).float()  # (b, n+2, V)
        pred.append(logits.argmax(-1).numpy())
        logp = F.log_softmax(logits, -1).max(-1).values  # log-probability of each predicted token (b, n+2)
        lp_min.append(logp.min(1).values.numpy())
    P = np.concatenate(pred)  # (B, n+2): sign, A(n) .. A0
    sign, A = addition.answer(D, Dp, op)
    A_hat = P[:, 1:][:, ::-1]  # column k = Ak
    wrong = A_hat != A
    sign_ok = P[:, 0] == sign
    return {"wrong_digits": wrong, "sign_ok": sign_ok, "correct": ~wrong.any(1) & sign_ok,
            "confidence": np.concatenate(lp_min)}


def eval_sets(cfg: AddConfig) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """The fixed sets checked during training, name -> (D, Dp, operator token); their own seeds: they never touch
    the training stream. An addition model's are "uniform" and "enriched"; a model that subtracts has them per
    operation: "add uniform", "add enriched", "sub uniform", "sub enriched"."""
    rng = np.random.default_rng([cfg.seed, 7919])
    n, size = cfg.n_digits, cfg.eval_size
    if cfg.operations == ("add",):
        return {"uniform": (*addition.sample(size, n, rng), addition.PLUS),
                "enriched": (*addition.sample(size, n, rng, cfg.enrich_pairs), addition.PLUS)}
    out = {}
    if "add" in cfg.operations:
        out["add uniform"] = (*addition.sample(size, n, rng), addition.PLUS)
        out["add enriched"] = (*addition.sample(size, n, rng, cfg.enrich_pairs), addition.PLUS)
    out["sub uniform"] = (*subtraction.sample(size, n, rng), addition.MINUS)
    out["sub enriched"] = (*subtraction.sample(size, n, rng, cfg.enrich_pairs), addition.MINUS)
    return out


def watched_set(cfg: AddConfig) -> str:
    """The evaluation set the progress bar shows: the enriched one of the operation learned last."""
    return "enriched" if cfg.operations == ("add",) else "sub enriched"


def training_batch(cfg: AddConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """One step's questions (D, Dp, operator token): one operation per batch, subtraction with probability
    sub_share (no draw for a single-operation model, so addition runs keep their bytes)."""
    ops = cfg.operations
    op = ops[0] if len(ops) == 1 else ("sub" if rng.random() < cfg.sub_share else "add")
    make = addition.training_batch if op == "add" else subtraction.training_batch
    return (*make(cfg.batch, cfg.n_digits, rng, cfg.enrich_batches, cfg.enrich_pairs), addition.OPERATIONS[op])


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def build(cfg: AddConfig) -> Decoder:
    torch.manual_seed(cfg.seed)
    return Decoder(cfg.model)


def source_of(cfg: AddConfig) -> Decoder:
    """The trained model an ins1 run starts from (cfg.init_from names its run folder); one clear error if it is
    not there or not finished."""
    folder = runs.run_dir(cfg.init_from)
    if runs.checkpoint_status(folder) != "done":
        raise ValueError(f"run {cfg.name} starts from {cfg.init_from}, which is "
                         f"{runs.checkpoint_status(folder)}: train that run first")
    return load(AddConfig.from_dict(json.loads((folder / "config.json").read_text())))


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
    threads: torch threads for this process (None leaves the setting alone). Another process training the
    same run makes this stop at once with one line naming it (runs.RunBusy)."""
    cfg.validate()
    if threads is not None:
        torch.set_num_threads(threads)
    folder = run_dir(cfg)
    with runs.Training(folder, cfg.to_json(), key="step", checkpoint_seconds=checkpoint_seconds) as run:
        if not run.finished:
            _train(cfg, run, stop_after, progress, desc)
    return folder


def _train(cfg: AddConfig, run: runs.Training, stop_after: int | None, progress: bool, desc: str | None) -> None:
    model = build(cfg)
    if cfg.init_from and run.state is None:  # ins1: the trained model copied in before the first step
        insertion.insert(source_of(cfg), model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay,
                            fused=True)
    rng = np.random.default_rng(cfg.seed)
    step, loss_sum, loss_count = 0, np.zeros(cfg.n_digits + 2), 0
    if (state := run.state) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        step, loss_sum, loss_count = state["step"], np.array(state["loss_sum"]), state["loss_count"]
    run.begin()
    checks = eval_sets(cfg)

    def save(done: bool = False):
        run.save({"config": cfg.flat(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                  "rng": rng.bit_generator.state, "step": step, "loss_sum": loss_sum.tolist(),
                  "loss_count": loss_count}, done=done)

    n = cfg.n_digits
    bar = tqdm(total=cfg.steps, initial=step, unit="step", desc=desc or cfg.name, disable=bar_disabled(progress),
               dynamic_ncols=True)
    last_acc = None
    while step < cfg.steps:
        if stop_after is not None and step >= stop_after:
            save()
            bar.close()
            return
        model.train()
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        D, Dp, op = training_batch(cfg, rng)
        tok = torch.from_numpy(addition.tokens(D, Dp, op))  # (B, 3n+4)
        per_token = training_loss(model, tok, n, cfg.precision)  # (n+2,)
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
                line["acc"] = {name: float(score(model, D_, Dp_, op=op_)["correct"].mean())
                               for name, (D_, Dp_, op_) in checks.items()}
                last_acc = line["acc"][watched_set(cfg)]
            line = run.log(line)
            loss_sum, loss_count = np.zeros(n + 2), 0
            bar.set_postfix(loss=f"{line['loss']:.2e}", acc=f"{last_acc:.2%}" if last_acc is not None else "-",
                            refresh=False)
        if step < cfg.steps and run.due(step):
            save()
    save(done=True)
    bar.close()
