"""Training a matrix run: the codec (problems -> tokens), the model, evaluation, the loop with exact resume.

A run is a frozen RunConfig (config.py); its folder, data/runs/<task>-n<n>-<spectrum>-<hash>/, holds what
core/runs.py describes, plus
    snapshots/       model weights at each evaluation (only when asked: earlier, weaker checkpoints)

Training data is generated on the fly from a numpy Generator whose state is in the checkpoint, so a run
killed at any point (even SIGKILL) and restarted continues with the same batches and ends with the same
final checkpoint as an uninterrupted run (on the same machine and thread count). Evaluation uses fixed
sets drawn from their own seeds, so it never disturbs the training stream. A finished run is skipped.
Under torchrun, each process draws its own stream and gradients are averaged (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core import devices, runs, schedule, store
from ..core.devices import autocast, resolve_precision
from ..core.runs import bar_disabled, load_checkpoint, read_metrics
from ..core.runs import folder_of as run_dir
from ..core.runs import status_of as run_status
from . import encoding, tasks
from .config import RunConfig
from .model import Seq2Seq, resolve_attention

__all__ = ["Codec", "RunConfig", "build_model", "decode_problems", "eval_problems", "evaluate", "learning_rate",
           "load_model", "read_metrics", "resolve_precision", "run_dir", "run_status", "train", "training_step"]


# --------------------------------------------------------------------------------------------------
# Data: problems -> token tensors
# --------------------------------------------------------------------------------------------------


@dataclass
class Codec:
    """The source and target vocabularies of a run, and the batch -> tensor conversion."""

    cfg: RunConfig
    src: encoding.Vocabulary = field(init=False)
    tgt: encoding.Vocabulary = field(init=False)

    def __post_init__(self):
        self.src = encoding.vocabulary(self.cfg.input_encoding, self.cfg.input_encoding)
        self.tgt = encoding.vocabulary(self.cfg.output_encoding, self.cfg.output_encoding)

    @property
    def target_shape(self) -> tuple[int, int]:
        return tasks.target_shape(self.cfg.task, self.cfg.n)

    @property
    def src_len(self) -> int:  # with <s> and </s>
        return encoding.sequence_length(self.cfg.n, self.cfg.n, self.cfg.input_encoding, self.cfg.upper) + 2

    @property
    def tgt_len(self) -> int:
        return encoding.sequence_length(*self.target_shape, self.cfg.output_encoding) + 2

    def tensors(self, problems: tasks.Problems, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> src (B, S), tgt (B, T) with -100 after the end, src padding mask (B, S) or None."""
        src, src_n = self.src.encode(problems.A, self.cfg.input_encoding, upper=self.cfg.upper)
        tgt, tgt_n = self.tgt.encode(problems.target, self.cfg.output_encoding)
        tgt = np.where(np.arange(tgt.shape[1])[None, :] < tgt_n[:, None], tgt, -100)
        pad = None
        if src_n.min() < src.shape[1]:  # only P10 with exact zeros
            pad = torch.from_numpy(np.arange(src.shape[1])[None, :] >= src_n[:, None]).to(device)
        return torch.from_numpy(src).to(device), torch.from_numpy(tgt).to(device), pad


def build_model(cfg: RunConfig, codec: Codec, device) -> Seq2Seq:
    mc = dataclasses.replace(cfg.model, src_vocab=codec.src.size, tgt_vocab=codec.tgt.size,
                             max_src_len=codec.src_len + 8, max_tgt_len=codec.tgt_len + 8)
    model = Seq2Seq(mc).to(device)
    model.set_attention(resolve_attention(mc.attention, device))
    return model


def eval_problems(cfg: RunConfig, spectrum: str, size: int | None = None) -> tasks.Problems:
    """The fixed evaluation set of a test spectrum (its own seed: never touches the training stream)."""
    rng = np.random.default_rng([cfg.seed, 7919, store.seed_tag(spectrum)])
    return tasks.make_problems(cfg.task, cfg.n, size or cfg.eval_size, rng, tasks.drawn_spectrum(cfg.task, spectrum),
                               cfg.input_encoding, cfg.output_encoding)


# --------------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------------


def learning_rate(cfg: RunConfig, step: int, total_steps: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to min_lr_ratio * lr at the end (or constant)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    return schedule.cosine(step, cfg.warmup, total_steps, cfg.lr, cfg.lr * cfg.min_lr_ratio)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def decode_problems(model: Seq2Seq, codec: Codec, problems: tasks.Problems, device, precision: str,
                    batch: int = 512, beam: int = 1, progress: bool = False):
    """Greedy (or beam) predictions for problems -> (P (B, r, c) with NaN where invalid, valid (B,),
    tokens (B, T) in the target vocabulary, per-token log-probs (B, T))."""
    model.eval()
    out_tokens, out_logp = [], []
    steps = range(0, len(problems), batch)
    for i in tqdm(steps, desc="decoding", unit="batch", disable=bar_disabled(progress), leave=False):
        sub = tasks.Problems(problems.task, problems.spectrum, problems.A[i:i + batch], problems.target[i:i + batch])
        src, _, pad = codec.tensors(sub, device)
        with autocast(device, precision):
            tok, lp = model.generate(src, codec.tgt.bos, codec.tgt.eos, codec.tgt_len, src_pad=pad, beam=beam)
        out_tokens.append(tok.cpu().numpy())
        out_logp.append(lp.float().cpu().numpy())
    tokens, logp = np.concatenate(out_tokens), np.concatenate(out_logp)
    P, valid = codec.tgt.decode_batch(tokens, codec.cfg.output_encoding, codec.target_shape)
    return P, valid, tokens, logp


def evaluate(model, codec, eval_sets: dict[str, tasks.Problems], device, precision: str) -> dict:
    result = {}
    for name, probs in eval_sets.items():
        P, valid, _, _ = decode_problems(model, codec, probs, device, precision)
        err = tasks.verify(probs.task, probs.A, P)
        acc = tasks.accuracy(err)
        result[name] = {"valid": float(valid.mean()), **{f"{t:g}": round(a, 6) for t, a in acc.items()}}
    return result


# --------------------------------------------------------------------------------------------------
# Trained models
# --------------------------------------------------------------------------------------------------


def load_model(cfg: RunConfig, device=None, snapshot: int | None = None) -> tuple[Seq2Seq, Codec, str]:
    """The trained model of a run (or its snapshot at `snapshot` examples), its codec and precision."""
    device = torch.device(device) if device is not None else devices.default_device()
    folder = run_dir(cfg)
    state = load_checkpoint(folder / "checkpoint.pt")
    codec = Codec(cfg)
    model = build_model(cfg, codec, device)
    weights = state["model"]
    if snapshot is not None:
        path = folder / "snapshots" / f"{snapshot}.pt"
        if not path.exists():
            have = sorted(int(p.stem) for p in (folder / "snapshots").glob("*.pt"))
            raise ValueError(f"run {cfg.name} has no snapshot at {snapshot} examples; snapshots: {have}")
        weights = load_checkpoint(path)
    model.load_state_dict(weights)
    model.eval()
    return model, codec, state["precision"]


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def training_step(net, opt, codec: Codec, rng: np.random.Generator, device, precision: str,
                  examples: int = 0) -> torch.Tensor:
    """One optimizer step on a fresh batch (net may be the model or its DDP wrapper), `examples` having been
    trained before it (for the cond(A) curriculum); returns the loss."""
    cfg = codec.cfg
    in_curriculum = cfg.max_cond and (not cfg.curriculum_examples or examples < cfg.curriculum_examples)
    probs = tasks.make_problems(cfg.task, cfg.n, cfg.batch, rng, cfg.spectrum, cfg.input_encoding,
                                cfg.output_encoding, max_cond=cfg.max_cond if in_curriculum else 0.0)
    src, tgt, pad = codec.tensors(probs, device)
    with autocast(device, precision):
        loss = net(src, tgt, src_pad=pad)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    opt.step()
    return loss.detach()


def train(cfg: RunConfig, device=None, checkpoint_seconds: float = 60.0, checkpoint_steps: int | None = None,
          snapshots: bool = False, progress: bool = True, desc: str | None = None) -> Path:
    """Train (or resume, or skip if finished) the run of `cfg`; return its folder. Another process training
    the same run makes this stop at once with one line naming it (runs.RunBusy)."""
    cfg.validate()
    rank, world, local_rank = devices.distributed()
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    folder = run_dir(cfg)
    with runs.Training(folder, cfg.to_json(), key="examples", checkpoint_seconds=checkpoint_seconds,
                       checkpoint_steps=checkpoint_steps, active=rank == 0) as run:
        if run.finished:
            return folder
        state = run.state
        if state is not None and state["world"] != world:
            raise ValueError(f"{cfg.name} was checkpointed with {state['world']} processes; resume it with the same")
        precision = resolve_precision(cfg.precision, device)
        if state is not None and state["precision"] != precision:
            raise ValueError(f"run {cfg.name} was checkpointed in {state['precision']}; here precision "
                             f"{cfg.precision!r} resolves to {precision}, which would change its bytes: resume it on a "
                             f"machine where it resolves to {state['precision']}, or delete {store.relative(folder)}")
        if rank == 0:
            runs.pin_precision(folder, precision, cfg.name)
        _train(cfg, run, device, rank, world, precision, snapshots, progress, desc)
    if world > 1:
        torch.distributed.barrier()
    return folder


def _train(cfg: RunConfig, run: runs.Training, device, rank: int, world: int, precision: str, snapshots: bool,
           progress: bool, desc: str | None) -> None:
    ddp = world > 1
    if ddp:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)  # identical initial weights in every process
    codec = Codec(cfg)
    model = build_model(cfg, codec, device)
    fused = device.type in ("cpu", "cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    rng = np.random.default_rng([cfg.seed, rank])
    step, examples, loss_sum, loss_count = 0, 0, 0.0, 0
    state = run.state
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"][rank]
        step, examples = state["step"], state["examples"]
        loss_sum, loss_count = state["loss_sum"], state["loss_count"]
    run.begin()
    net = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    eval_sets = {s: eval_problems(cfg, s) for s in cfg.test_spectra} if rank == 0 else {}
    per_step = cfg.batch * world
    total_steps = math.ceil(cfg.examples / per_step)

    def checkpoint(done: bool = False):
        rngs = [rng.bit_generator.state]
        if ddp:
            rngs = [None] * world
            torch.distributed.all_gather_object(rngs, rng.bit_generator.state)
        run.save({"config": cfg.flat(), "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rngs,
                  "step": step, "examples": examples, "loss_sum": loss_sum, "loss_count": loss_count,
                  "precision": precision, "world": world}, done=done)

    bar = tqdm(total=cfg.examples, initial=min(examples, cfg.examples), unit="ex", unit_scale=True,
               desc=desc or cfg.name, disable=bar_disabled(progress) or rank != 0, dynamic_ncols=True)
    last_acc = None
    while step < total_steps:
        model.train()
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step, total_steps)
        loss = training_step(net, opt, codec, rng, device, precision, examples)
        step += 1
        examples += per_step
        loss_sum += float(loss)
        loss_count += 1
        bar.update(per_step)
        boundary = examples // cfg.eval_every > (examples - per_step) // cfg.eval_every
        if boundary or step == total_steps:
            if rank == 0:
                acc = evaluate(model, codec, eval_sets, device, precision)
                run.log({"examples": examples, "step": step, "loss": loss_sum / max(loss_count, 1),
                         "lr": opt.param_groups[0]["lr"], "precision": precision, "acc": acc})
                if snapshots:
                    runs.save_checkpoint(run.folder / "snapshots" / f"{examples}.pt", model.state_dict())
                shown = cfg.spectrum if cfg.spectrum in acc else cfg.test_spectra[0]  # in-distribution if tested
                last_acc = acc[shown]["0.05"]
            loss_sum, loss_count = 0.0, 0
            if ddp:
                torch.distributed.barrier()
        if rank == 0:
            bar.set_postfix(loss=f"{float(loss):.3f}", acc5=f"{last_acc:.1%}" if last_acc is not None else "-",
                            refresh=False)
        want = run.due(step)
        if ddp:  # every process must agree (the checkpoint gathers their RNG states): rank 0 decides
            flag = torch.tensor([int(want)], device=device)  # NCCL broadcasts CUDA tensors only
            torch.distributed.broadcast(flag, 0)
            want = bool(flag.item())
        if want and step < total_steps:
            checkpoint()
    checkpoint(done=True)
    bar.close()


# --------------------------------------------------------------------------------------------------
# The reference of shipped weights (core/shipped.py)
# --------------------------------------------------------------------------------------------------


def decayed_init(cfg: RunConfig, steps: list[int]) -> dict[int, dict[str, np.ndarray]]:
    """The run's embedding tables as a row that never had a gradient has become after each of `steps` optimizer
    steps: the initial weights (from the run's seed, as training draws them), multiplied in float32 by AdamW's
    (1 - lr * weight_decay) at every step, as the optimizer does. Exact for such rows (checked on the trained
    runs: difference 0); shipped files code the rows that match it in a few bits (core/shipped.py). Only the
    embeddings: every row of the other weights trains. One pass serves every step asked for."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, Codec(cfg), torch.device("cpu"))
    total = math.ceil(cfg.examples / cfg.batch)
    tables = {k: v.numpy() for k, v in model.state_dict().items() if k.endswith(("_emb.weight", "_pos.weight"))}
    factors = np.array([1 - learning_rate(cfg, t, total) * cfg.weight_decay for t in range(max(steps))], np.float32)
    flat = np.concatenate([v.ravel() for v in tables.values()])
    at_step = _decayed(flat, factors, sorted(set(steps)))
    out = {}
    for s, values in at_step.items():
        out[s], at = {}, 0
        for k, v in tables.items():
            out[s][k] = values[at:at + v.size].reshape(v.shape)
            at += v.size
    return out


_DECAYED: dict[bytes, dict[int, np.ndarray]] = {}  # runs that differ only in their data (the spectra of one seed)
# start from the same weights under the same schedule: restoring a profile computes each distinct case once


def _decayed(flat: np.ndarray, factors: np.ndarray, steps: list[int]) -> dict[int, np.ndarray]:
    """{s: flat multiplied in float32 by factors[0], ..., factors[s - 1], one rounding per step}. Memoized on
    the exact bytes of the inputs, so a cached answer is the one the loop would give."""
    key = hashlib.sha256(flat.tobytes() + factors.tobytes() + np.array(steps, np.int64).tobytes()).digest()
    if key not in _DECAYED:
        at_step = {s: np.empty_like(flat) for s in steps}
        flat = flat.copy()
        for lo in range(0, flat.size, 1 << 16):  # a block that stays in cache (256 kB) through all the steps
            block, done = flat[lo:lo + (1 << 16)], 0
            for s in steps:
                for f in factors[done:s]:
                    np.multiply(block, f, out=block)  # float32 x float32, rounded as the optimizer's p.mul_(f)
                at_step[s][lo:lo + block.size] = block
                done = s
        if len(_DECAYED) >= 4:  # a few distinct cases per profile; bounded memory all the same
            _DECAYED.pop(next(iter(_DECAYED)))
        _DECAYED[key] = at_step
    return {s: v.copy() for s, v in _DECAYED[key].items()}
