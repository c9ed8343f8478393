"""Training: RunConfig, the loop, checkpoints with exact resume, metrics.

A run is a frozen RunConfig; its hash names its folder, data/runs/<task>-n<n>-<spectrum>-<hash>/:
    config.json      what was asked (the hash is of this)
    checkpoint.pt    model + optimizer + data RNG state + step + running sums; written atomically
    metrics.jsonl    one line per evaluation: examples seen, loss, lr, accuracy at 0.5/1/2/5 % per test spectrum
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
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import encoding, spectra, store, tasks
from .model import ModelConfig, Seq2Seq, resolve_attention

SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
RUNS_DIR = "runs"


def config_json(cfg) -> str:
    """A config dataclass as the config.json of its run folder."""
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True, indent=1)


def config_key(cfg) -> str:
    """The 10-hex-digit hash of a config dataclass that names its run folder."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]


def check_fields(cls, d: dict) -> None:
    """A config read back from JSON: every key must be a field of the dataclass `cls`."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field {unknown[0]!r}; valid fields: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class RunConfig:
    task: str = "eigenvalues"
    n: int = 3  # matrix size
    spectrum: str = "semicircle"  # training spectrum, or a comma mixture (ignored for inversion)
    test_spectra: tuple[str, ...] = ()  # evaluated during training; default: the training spectrum
    input_encoding: str = "FP15"
    output_encoding: str = "P1000"
    upper: bool = True  # symmetric inputs send only their upper triangle
    d_model: int = 128
    n_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 1
    batch: int = 256  # per process
    lr: float = 5e-4  # peak learning rate
    warmup: int = 500  # optimizer steps of linear warm-up
    schedule: str = "cosine"  # cosine decay to min_lr_ratio * lr at the end of the budget, or constant
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    examples: int = 1_000_000  # training budget, in examples (all processes together)
    eval_every: int = 100_000  # examples between evaluations
    eval_size: int = 500  # problems per test spectrum at each evaluation
    precision: str = "auto"  # auto: bf16 autocast where it measured faster than fp32 on this device
    seed: int = 0

    def __post_init__(self):
        if not self.test_spectra:
            default = ("uniform-nonsymmetric",) if self.task == "inversion" else (self.spectrum,)
            object.__setattr__(self, "test_spectra", default)
        object.__setattr__(self, "test_spectra", tuple(self.test_spectra))
        self.validate()

    def validate(self) -> None:
        """Every field checked before any work starts; one ValueError naming the valid choices."""
        tasks.check_task(self.task)
        encoding.check_encoding(self.input_encoding)
        encoding.check_encoding(self.output_encoding)
        if self.task != "inversion":
            spectra.parse_spectrum(self.spectrum)
            for s in self.test_spectra:
                spectra.parse_spectrum(s)
        if self.task == "inversion" and self.upper:
            raise ValueError("upper=True sends an upper triangle: only for symmetric tasks, not inversion")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        positive = ("n", "d_model", "n_heads", "enc_layers", "dec_layers", "batch", "examples", "eval_every",
                    "eval_size")
        for name in positive:
            if getattr(self, name) < (0 if name == "dec_layers" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n < 2:
            raise ValueError(f"matrix size n must be >= 2, got {self.n}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        ModelConfig(1, 1, 1, 1, self.d_model, self.n_heads, self.enc_layers, self.dec_layers)

    def to_json(self) -> str:
        return config_json(self)

    @property
    def key(self) -> str:
        return config_key(self)

    @property
    def name(self) -> str:
        spec = "uniform" if self.task == "inversion" else self.spectrum.replace(",", "+")
        return f"{self.task}-n{self.n}-{spec}-{self.key}"

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        check_fields(cls, d)
        return cls(**{k: tuple(v) if k == "test_spectra" else v for k, v in d.items()})

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)


def run_dir(cfg: RunConfig) -> Path:
    return store.DATA / RUNS_DIR / cfg.name


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
    mc = ModelConfig(src_vocab=codec.src.size, tgt_vocab=codec.tgt.size, max_src_len=codec.src_len + 8,
                     max_tgt_len=codec.tgt_len + 8, d_model=cfg.d_model, n_heads=cfg.n_heads,
                     enc_layers=cfg.enc_layers, dec_layers=cfg.dec_layers)
    model = Seq2Seq(mc).to(device)
    model.set_attention(resolve_attention(mc.attention, device))
    return model


def eval_problems(cfg: RunConfig, spectrum: str, size: int | None = None) -> tasks.Problems:
    """The fixed evaluation set of a test spectrum (its own seed: never touches the training stream)."""
    tag = int(hashlib.sha256(spectrum.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([cfg.seed, 7919, tag])
    spec = "semicircle" if cfg.task == "inversion" else spectrum
    return tasks.make_problems(cfg.task, cfg.n, size or cfg.eval_size, rng, spec, cfg.input_encoding,
                               cfg.output_encoding)


# --------------------------------------------------------------------------------------------------
# Precision, schedule, devices
# --------------------------------------------------------------------------------------------------

_PRECISION_CACHE: dict[str, str] = {}


def resolve_precision(requested: str, device: torch.device) -> str:
    """auto -> bf16 if a bf16 matmul of training-like shape is faster than fp32 on this device, else fp32.
    (CPUs with AMX run bf16 several times faster; AVX-512 CPUs without AMX run it slower.)"""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16"
    if "cpu" not in _PRECISION_CACHE:
        def rate(dtype):
            a, b = torch.randn(2048, 256, dtype=dtype), torch.randn(256, 1024, dtype=dtype)
            a @ b
            t0, k = time.perf_counter(), 0
            while time.perf_counter() - t0 < 0.15:
                a @ b
                k += 1
            return k / (time.perf_counter() - t0)
        _PRECISION_CACHE["cpu"] = "bf16" if rate(torch.bfloat16) > 1.2 * rate(torch.float32) else "fp32"
    return _PRECISION_CACHE["cpu"]


def learning_rate(cfg: RunConfig, step: int, total_steps: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / max(1, total_steps - cfg.warmup))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def bar_disabled(progress: bool) -> bool:
    """Progress bars are off when asked, or when $TQDM_DISABLE is set (as `make figures` does)."""
    return not progress or os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dist():
    """(rank, world, local_rank) under torchrun, else (0, 1, 0)."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


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
        with _autocast(device, precision):
            tok, lp = model.generate(src, codec.tgt.bos, codec.tgt.eos, codec.tgt_len, src_pad=pad, beam=beam)
        out_tokens.append(tok.cpu().numpy())
        out_logp.append(lp.float().cpu().numpy())
    tokens, logp = np.concatenate(out_tokens), np.concatenate(out_logp)
    P, valid = codec.tgt.decode_batch(tokens, codec.cfg.output_encoding, codec.target_shape)
    return P, valid, tokens, logp


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def evaluate(model, codec, eval_sets: dict[str, tasks.Problems], device, precision: str) -> dict:
    result = {}
    for name, probs in eval_sets.items():
        P, valid, _, _ = decode_problems(model, codec, probs, device, precision)
        err = tasks.verify(probs.task, probs.A, P)
        acc = tasks.accuracy(err)
        result[name] = {"valid": float(valid.mean()), **{f"{t:g}": round(a, 6) for t, a in acc.items()}}
    return result


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


class CorruptCheckpoint(RuntimeError):
    pass


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated, garbage, wrong format
        raise CorruptCheckpoint(
            f"{store.relative(path)} is not a readable checkpoint ({type(e).__name__}); it was left untouched. "
            f"Delete it (or its run folder) to train this run from scratch.") from None


def save_checkpoint(path: Path, state: dict) -> None:
    with store.atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_metrics(folder: Path) -> list[dict]:
    """The evaluation lines of a run. A last line cut short (the process was killed while appending it) is
    dropped: the resumed run rewrites it from its checkpoint."""
    path = folder / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:  # damage before the end is not a kill mid-write: say so
                raise ValueError(f"{store.relative(path)}: line {i + 1} is not JSON; delete the run folder "
                                 "to train it again") from None
    return out


def truncate_metrics(folder: Path, key: str, upto: int) -> None:
    """On resume, drop the lines written after the checkpoint (whose `key`, e.g. examples or step, is past
    `upto`): the resumed run recomputes them identically."""
    lines = [m for m in read_metrics(folder) if m[key] <= upto]
    store.write_text(folder / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in lines))


def open_run_folder(folder: Path, config_json: str) -> None:
    """Create a run folder with its config.json, or check that an existing one asked for the same config."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "config.json").exists():
        if json.loads((folder / "config.json").read_text()) != json.loads(config_json):
            raise ValueError(f"{store.relative(folder)}/config.json differs from the requested config")
    else:
        store.write_text(folder / "config.json", config_json + "\n")


def checkpoint_status(folder: Path) -> str:
    """'done', 'partial' (a checkpoint to resume from), 'missing', or 'corrupt'."""
    path = folder / "checkpoint.pt"
    if not path.exists():
        return "missing"
    try:
        return "done" if load_checkpoint(path).get("done") else "partial"
    except CorruptCheckpoint:
        return "corrupt"


def run_status(cfg: RunConfig) -> str:
    """'done', 'partial' (a checkpoint to resume from), 'missing', or 'corrupt'."""
    return checkpoint_status(run_dir(cfg))


def load_model(cfg: RunConfig, device=None, snapshot: int | None = None) -> tuple[Seq2Seq, Codec, str]:
    """The trained model of a run (or its snapshot at `snapshot` examples), its codec and precision."""
    device = torch.device(device) if device is not None else default_device()
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


def training_step(net, opt, codec: Codec, rng: np.random.Generator, device, precision: str) -> torch.Tensor:
    """One optimizer step on a fresh batch (net may be the model or its DDP wrapper); returns the loss."""
    cfg = codec.cfg
    probs = tasks.make_problems(cfg.task, cfg.n, cfg.batch, rng, cfg.spectrum, cfg.input_encoding,
                                cfg.output_encoding)
    src, tgt, pad = codec.tensors(probs, device)
    with _autocast(device, precision):
        loss = net(src, tgt, src_pad=pad)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    opt.step()
    return loss.detach()


def train(cfg: RunConfig, device=None, checkpoint_seconds: float = 60.0, checkpoint_steps: int | None = None,
          snapshots: bool = False, progress: bool = True, desc: str | None = None) -> Path:
    """Train (or resume, or skip if finished) the run of `cfg`; return its folder."""
    cfg.validate()
    rank, world, local_rank = _dist()
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    folder = run_dir(cfg)
    ckpt_path = folder / "checkpoint.pt"
    if rank == 0:
        open_run_folder(folder, cfg.to_json())
    state = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if state is not None and state.get("done"):
        return folder
    if state is not None and state["world"] != world:
        raise ValueError(f"{cfg.name} was checkpointed with {state['world']} processes; resume it with the same")

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
    precision = resolve_precision(cfg.precision, device)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"][rank]
        step, examples = state["step"], state["examples"]
        loss_sum, loss_count, precision = state["loss_sum"], state["loss_count"], state["precision"]
        if rank == 0:
            truncate_metrics(folder, "examples", examples)
    elif rank == 0:
        store.write_text(folder / "metrics.jsonl", "")
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
        if rank == 0:
            save_checkpoint(ckpt_path, {
                "config": dataclasses.asdict(cfg), "model": model.state_dict(), "optimizer": opt.state_dict(),
                "rng": rngs, "step": step, "examples": examples, "loss_sum": loss_sum,
                "loss_count": loss_count, "precision": precision, "world": world, "done": done})

    history = read_metrics(folder) if rank == 0 else []
    seconds0, t0 = (history[-1].get("seconds", 0.0) if history else 0.0), time.monotonic()
    bar = tqdm(total=cfg.examples, initial=min(examples, cfg.examples), unit="ex", unit_scale=True,
               desc=desc or cfg.name, disable=bar_disabled(progress) or rank != 0, dynamic_ncols=True)
    last_ckpt, last_acc = time.monotonic(), None
    while step < total_steps:
        model.train()
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step, total_steps)
        loss = training_step(net, opt, codec, rng, device, precision)
        step += 1
        examples += per_step
        loss_sum += float(loss)
        loss_count += 1
        bar.update(per_step)
        boundary = examples // cfg.eval_every > (examples - per_step) // cfg.eval_every
        if boundary or step == total_steps:
            if rank == 0:
                acc = evaluate(model, codec, eval_sets, device, precision)
                line = {"examples": examples, "step": step, "loss": loss_sum / max(loss_count, 1),
                        "lr": opt.param_groups[0]["lr"], "precision": precision, "acc": acc,
                        "seconds": round(seconds0 + time.monotonic() - t0, 1)}  # wall time, not in checkpoints
                with open(folder / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")
                if snapshots:
                    save_checkpoint(folder / "snapshots" / f"{examples}.pt", model.state_dict())
                shown = cfg.spectrum if cfg.spectrum in acc else cfg.test_spectra[0]  # in-distribution if tested
                last_acc = acc[shown]["0.05"]
            loss_sum, loss_count = 0.0, 0
            if ddp:
                torch.distributed.barrier()
        if rank == 0:
            bar.set_postfix(loss=f"{float(loss):.3f}", acc5=f"{last_acc:.1%}" if last_acc is not None else "-",
                            refresh=False)
        now = time.monotonic()
        want = bool(checkpoint_steps and step % checkpoint_steps == 0) or now - last_ckpt >= checkpoint_seconds
        if ddp:  # every process must agree (the checkpoint gathers their RNG states): rank 0 decides
            flag = torch.tensor([int(want)], device=device)  # NCCL broadcasts CUDA tensors only
            torch.distributed.broadcast(flag, 0)
            want = bool(flag.item())
        if want and step < total_steps:
            checkpoint()
            last_ckpt = now
    checkpoint(done=True)
    bar.close()
    if ddp:
        torch.distributed.barrier()
    return folder
