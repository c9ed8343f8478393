"""Training and greedy-evaluation throughput of mathtx's model on CPU, and how close a step gets to the matmul limit.

What it measures (sections, pick with --only a,b,c,d)
    a  The original eigenvector configuration (LAWT / WIMTD): task eigenvectors, 5x5 semicircle, FP15 -> P1000,
       full-matrix input (upper=False), 6 encoder + 1 decoder layers, d_model 512, 8 heads, batch 64.
       Training and evaluation rate, parameter count, process peak RSS.
    b  The reference configuration of the issue: eigenvalues, 5x5 semicircle, FP15 -> P1000, upper=False,
       d_model 128, 8 heads, 4 encoder + 1 decoder layers, batch 64, at every thread count of --threads
       (default 1 and all cores). The original implementation (facebookresearch/LAWT) measured earlier on one
       thread of this machine kind trained this model at about 78 examples/s and evaluated it (greedy) at
       about 34 examples/s; the ratios below compare our rates with those two numbers.
    c  Each run of the `cpu` profile (profiles.get_profile('cpu').runs) at its own batch size; runs whose model
       and sequence shapes are identical (the seven eigenvalue spectra) are measured once.
    d  Achieved GFLOP/s of a training step (config b and the first cpu-profile run) beside a plain
       2048x256 @ 256x1024 matmul in fp32 and in bf16 at the same thread count: how close to the machine's
       limit a step runs. Also which precision resolve_precision('auto', cpu) picks, and why.
    g  Each run of the `gpu` profile (distinct shapes once), meant for --device cuda.
    --input-encoding P1000 measures every section with P1000 inputs (3 tokens a number) instead of FP15.
    Sections a, c and g run at the largest thread count of --threads (what a training run uses); b and d run at
    every thread count. torch.set_num_threads sets the count; the numpy work (problem generation) is small.
    --device cuda measures on the GPU (threads then only drive problem generation; peak memory is
    torch.cuda.max_memory_allocated, and each timed step or pass waits for the GPU before the clock reads).

Columns
    train ex/s    training examples per second over whole steps, as in train.train's loop: generate the
                  batch (tasks.make_problems), encode it (Codec.tensors), forward under the run's precision
                  (autocast), backward, clip_grad_norm_, fused AdamW step, read the loss. Not included: the
                  learning-rate schedule, evaluation, checkpoints, the progress bar. --warmup steps are run
                  first and not timed; then steps are repeated until at least --seconds have passed.
    eval ex/s     greedy evaluation: train.decode_problems (encode, model.generate with the KV cache, decode
                  the tokens back to numbers) on --eval-size (256) fixed problems of the run's first test
                  spectrum, in one batch, repeated for at least --seconds after an untimed pass on 64 of them.
                  An untrained model stops at random: the end-of-sequence token is masked out (head bias -1e4),
                  so every row decodes the full target length, which is what a trained, correct model decodes
                  (the generator stops when every row has emitted eos, at the same step).
    steps/passes  how many timed training steps / evaluation passes the rate is over (few = noisier).
    params        model.num_parameters() (the output head is tied to the target embedding: counted once).
    peak RSS      resource.getrusage(RUSAGE_SELF).ru_maxrss after the measurement: the PROCESS peak resident
                  set (high-water mark since the script started, libraries included), not the model alone.
    +RSS          how much that process peak grew during this measurement. Section a runs first, so its +RSS
                  is the training/evaluation footprint of the big model above the libraries' baseline; a
                  later, smaller measurement that stays under an earlier peak shows +0.
    vs LAWT       (b only) our train ex/s / 78 and our eval ex/s / 34: ours measured now by this script,
                  the original's measured earlier on one thread of the same machine kind (given in the
                  issue). The like-for-like ratios are the 1-thread ones; targets >= 5x (train), >= 10x (eval).
    step GFLOP    analytic matmul FLOPs of one training step: forward = 2 * tokens * (weights of the linear
                  layers they pass through) + attention (Q K^T and att @ V: 4 * B * Tq * Tk * d per attention)
                  + the output head (2 * decoder tokens * d * vocab); backward = 2 x forward; step = 3 x
                  forward. Embeddings, layer norms, softmax, the optimizer are not counted.
    GFLOP/s       step GFLOP * steps / seconds (the step's share of problem generation included).
    matmul fp32/bf16  GFLOP/s of a plain 2048x256 @ 256x1024 matmul (2 * 2048 * 256 * 1024 FLOP) at the same
                  thread count; % of fp32 = achieved / fp32 matmul (fp32 is what auto picks without AMX).

Timings on a shared machine are noisy: the load average is printed, with a note when it is above 0.5 per
core. Nothing here asserts on time. Seeds: torch.manual_seed(--seed) before each model is built; training
problems from np.random.default_rng([seed, section offset]); evaluation problems from train.eval_problems
(the run's own seed).

Run:  .venv/bin/python benchmarks/train_throughput.py [--seconds 3] [--threads 1,2] [--only a,b,c,d]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mathtx_helpers import profiles
from mathtx_helpers.core import devices
from mathtx_helpers.matrix import tasks
from mathtx_helpers.matrix.encoding import ENCODINGS
from mathtx_helpers.matrix.model import ATTENTION_IMPLS, Seq2Seq, resolve_attention
from mathtx_helpers.matrix.train import (
    Codec,
    RunConfig,
    build_model,
    decode_problems,
    eval_problems,
    resolve_precision,
    training_step,
)

LAWT_TRAIN, LAWT_EVAL = 78.0, 34.0  # examples/s of the original implementation, config b, one thread
TARGET_TRAIN, TARGET_EVAL = 5.0, 10.0  # wanted ratios ours / LAWT
SECTIONS = "abcdg"
MATMUL_SHAPE = (2048, 256, 1024)  # (m, k, n), the plain matmul whose bf16/fp32 rates section a prints

COMMON = dict(n=5, spectrum="semicircle", input_encoding="FP15", output_encoding="P1000", upper=False)
CONFIG_A = RunConfig.from_dict(dict(task="eigenvectors", d_model=512, n_heads=8, enc_layers=6, dec_layers=1, batch=64,
                                   **COMMON))
CONFIG_B = RunConfig.from_dict(dict(task="eigenvalues", d_model=128, n_heads=8, enc_layers=4, dec_layers=1, batch=64,
                                   **COMMON))


# --------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    label: str
    threads: int
    precision: str
    batch: int
    params: int = 0
    train_rate: float = float("nan")
    train_steps: int = 0
    eval_rate: float = float("nan")
    eval_passes: int = 0
    step_flop: float = float("nan")
    rss_mib: float = float("nan")
    rss_delta_mib: float = float("nan")

    @property
    def gflops(self) -> float:
        return self.train_rate / self.batch * self.step_flop / 1e9


def peak_rss_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def repeat(fn: Callable[[], None], seconds: float) -> tuple[int, float]:
    """Call fn until `seconds` have passed (at least once); return (calls, elapsed seconds)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls, elapsed


def step_flop(cfg: RunConfig, codec: Codec, src_len: int, tgt_len: int) -> float:
    """Analytic matmul FLOPs of one training step (forward + backward = 3 x forward), see the docstring."""
    d, m, B = cfg.d_model, 4, cfg.batch  # MLP width 4 d (ModelConfig.d_mlp = 0, what every run uses)
    S, T, V = src_len, tgt_len - 1, codec.tgt.size  # the decoder reads tgt[:, :-1]
    enc = cfg.enc_layers * (2 * B * S * (4 + 2 * m) * d * d + 4 * B * S * S * d)
    dec = cfg.dec_layers * (2 * B * T * (4 + 2 + 2 * m) * d * d  # self-attn q,kv,out; cross q,out; MLP
                            + 2 * B * S * 2 * d * d  # cross-attention keys and values of the memory
                            + 4 * B * T * T * d + 4 * B * T * S * d)  # self- and cross-attention matmuls
    head = 2 * B * T * d * V
    return 3.0 * (enc + dec + head)


class Bench:
    def __init__(self, args: argparse.Namespace, precision: str):
        self.args, self.precision = args, precision
        self.device = torch.device(args.device)
        self.cache: dict[tuple[str, int], Row] = {}

    def measure(self, section: str, label: str, cfg: RunConfig, threads: int, offset: int,
                evaluate: bool = True) -> Row:
        """Train (and evaluate) cfg at `threads`; cached by (label, threads) so that d reuses b and c."""
        if self.args.input_encoding:
            cfg = cfg.replace(input_encoding=self.args.input_encoding)
        key = (label, threads)
        if key in self.cache and (not evaluate or self.cache[key].eval_passes):
            return self.cache[key]
        args = self.args
        torch.set_num_threads(threads)
        device = self.device
        rss0 = peak_rss_mib(device)
        torch.manual_seed(args.seed)
        codec = Codec(cfg)
        model = build_model(cfg, codec, device)
        if args.attention != "auto":
            model.set_attention(args.attention)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        rng = np.random.default_rng([args.seed, offset])
        precision = self.precision
        shapes = {"src": codec.src_len, "tgt": codec.tgt_len}

        def train_step() -> None:
            model.train()
            float(training_step(model, opt, codec, rng, device, precision))  # the loop's step; float() syncs

        for _ in range(args.warmup):
            train_step()
        steps, elapsed = repeat(train_step, args.seconds)
        row = Row(section, label, threads, precision, cfg.batch, params=model.num_parameters(),
                  train_rate=steps * cfg.batch / elapsed, train_steps=steps,
                  step_flop=step_flop(cfg, codec, shapes["src"], shapes["tgt"]))
        if evaluate:
            problems = eval_problems(cfg, cfg.test_spectra[0], size=args.eval_size)
            with torch.no_grad():  # never stop early: decode the full target length, as a trained model does
                model.head.bias[codec.tgt.eos] = -1e4
            decode = lambda: decode_problems(model, codec, problems, device, precision)  # noqa: E731
            # untimed warm-up: on the first 64 problems; on CUDA on all of them, since its first pass at each new
            # shape (batch x length) pays one-time kernel set-up that a training run pays once, not per evaluation
            k = len(problems) if device.type == "cuda" else 64
            warm = tasks.Problems(problems.task, problems.spectrum, problems.A[:k], problems.target[:k])
            decode_problems(model, codec, warm, device, precision)
            passes, elapsed = repeat(decode, args.seconds)
            row.eval_rate, row.eval_passes = passes * len(problems) / elapsed, passes
        row.rss_mib = peak_rss_mib(device)
        row.rss_delta_mib = row.rss_mib - rss0
        self.cache[key] = row
        return row


def matmul_gflops(dtype: torch.dtype, threads: int, seconds: float, seed: int, device: torch.device) -> float:
    torch.set_num_threads(threads)
    m, k, n = MATMUL_SHAPE
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(m, k, generator=g).to(device, dtype), torch.randn(k, n, generator=g).to(device, dtype))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def product() -> None:
        a @ b
        sync()

    for _ in range(3):
        product()
    calls, elapsed = repeat(product, seconds)
    return calls * 2 * m * k * n / elapsed / 1e9


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def fmt(x: float, spec: str) -> str:
    return "-" if x != x else format(x, spec)  # NaN -> '-'


def print_table(headers: list[str], rows: list[list[str]], left: int = 1) -> None:
    """Columns right-aligned except the first `left`."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                   strict=True)))
    print(line(headers))
    print("-" * len(line(headers)))
    for r in rows:
        print(line(r))


def print_rows(rows: list[Row]) -> None:
    headers = ["config", "thr", "prec", "batch", "params", "train ex/s", "steps", "eval ex/s", "passes",
               "step GFLOP", "GFLOP/s", "peak RSS MiB", "+RSS MiB"]
    print_table(headers, [[r.label, str(r.threads), r.precision, str(r.batch), f"{r.params:,}",
                           fmt(r.train_rate, ",.1f"), str(r.train_steps), fmt(r.eval_rate, ",.1f"),
                           str(r.eval_passes) if r.eval_passes else "-", fmt(r.step_flop / 1e9, ".2f"),
                           fmt(r.gflops, ".1f"), fmt(r.rss_mib, ",.0f"), fmt(r.rss_delta_mib, ",.0f")]
                          for r in rows])


def load_note(when: str) -> str:
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    note = f"load average (1 min) {when}: {load:.2f} on {cores} cores ({load / cores:.2f} per core)"
    if load / cores > 0.5:
        note += ("\n  NOTE: above 0.5 per core: other processes are using the CPU, timings are noisy and "
                 "probably low; rerun on an idle machine or with a larger --seconds before trusting them")
    if load > cores:
        note += ("\n  NOTE: more runnable processes than cores: multi-threaded timings suffer most (each parallel "
                 "region waits for its slowest, descheduled thread), so thread-count comparisons mean little now")
    return note


def cpu_flags() -> str:
    flags = devices.cpu_flags()
    if not flags:
        return "cpu flags unknown"
    has = lambda f: "yes" if f in flags else "no"  # noqa: E731
    return f"avx512f {has('avx512f')}, avx512_bf16 {has('avx512_bf16')}, amx_bf16 {has('amx_bf16')}"


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


def profile_configs(profile: str = "cpu") -> list[tuple[str, RunConfig]]:
    """A profile's runs, one per distinct (model, sequence lengths, batch); label lists merged runs."""
    groups: dict[tuple, list] = {}
    for spec in profiles.get_profile(profile).runs:
        cfg, codec = spec.config, Codec(spec.config)
        key = (cfg.d_model, cfg.n_heads, cfg.enc_layers, cfg.dec_layers, cfg.batch, codec.src.size, codec.tgt.size,
               codec.src_len, codec.tgt_len)
        groups.setdefault(key, []).append(spec)
    out = []
    for specs in groups.values():
        names = [s.name for s in specs]
        label = names[0] if len(names) == 1 else f"{os.path.commonprefix(names).rstrip('-')}-* ({len(names)} runs)"
        c = specs[0].config
        out.append((f"{profile} {label} n{c.n} d{c.d_model} {c.enc_layers}+{c.dec_layers}", c))
    return out


def section_a(bench: Bench, threads: int) -> None:
    c = CONFIG_A
    print(f"(a) original eigenvector configuration: {c.task} {c.n}x{c.n} {c.spectrum}, {c.input_encoding} -> "
          f"{c.output_encoding}, upper={c.upper}, d {c.d_model}, {c.n_heads} heads, "
          f"{c.enc_layers}+{c.dec_layers} layers, batch {c.batch}")
    print_rows([bench.measure("a", "a eigenvectors d512 6+1", c, threads, offset=1)])
    print()


def section_b(bench: Bench, thread_list: list[int]) -> None:
    c = CONFIG_B
    print(f"(b) reference configuration: {c.task} {c.n}x{c.n} {c.spectrum}, {c.input_encoding} -> "
          f"{c.output_encoding}, upper={c.upper}, d {c.d_model}, {c.n_heads} heads, "
          f"{c.enc_layers}+{c.dec_layers} layers, batch {c.batch}")
    rows = [bench.measure("b", "b eigenvalues d128 4+1", c, t, offset=2) for t in thread_list]
    print_rows(rows)
    print()
    print(f"    ours / original (facebookresearch/LAWT, {LAWT_TRAIN:g} train ex/s and {LAWT_EVAL:g} eval ex/s, "
          "measured earlier on 1 thread of this machine kind; 1 thread is the like-for-like comparison)")
    table = []
    for r in rows:
        tr, ev = r.train_rate / LAWT_TRAIN, r.eval_rate / LAWT_EVAL
        table.append([f"{r.threads} thread{'s' if r.threads > 1 else ''}", f"{r.train_rate:,.1f}", f"{tr:.1f}x",
                      "yes" if tr >= TARGET_TRAIN else "NO", f"{r.eval_rate:,.1f}", f"{ev:.1f}x",
                      "yes" if ev >= TARGET_EVAL else "NO"])
    print_table(["ours at", "train ex/s", "vs 78", f">={TARGET_TRAIN:g}x", "eval ex/s", "vs 34",
                 f">={TARGET_EVAL:g}x"], table)
    print()


def section_c(bench: Bench, threads: int) -> None:
    print("(c) the cpu profile's runs (identical shapes measured once), each at its own batch size")
    rows = [bench.measure("c", label, cfg, threads, offset=3 + i)
            for i, (label, cfg) in enumerate(profile_configs("cpu"))]
    print_rows(rows)
    print()


def section_g(bench: Bench, threads: int) -> None:
    print("(g) the gpu profile's runs (identical shapes measured once), each at its own batch size")
    rows = [bench.measure("g", label, cfg, threads, offset=20 + i)
            for i, (label, cfg) in enumerate(profile_configs("gpu"))]
    print_rows(rows)
    print()


def section_d(bench: Bench, thread_list: list[int], auto_note: str) -> None:
    args = bench.args
    print("(d) achieved GFLOP/s of a training step vs a plain matmul "
          f"({MATMUL_SHAPE[0]}x{MATMUL_SHAPE[1]} @ {MATMUL_SHAPE[1]}x{MATMUL_SHAPE[2]}) at the same thread count")
    label_c, cfg_c = profile_configs("cpu")[0]
    mm_seconds = max(0.5, args.seconds / 3)
    table = []
    for t in thread_list:
        fp32 = matmul_gflops(torch.float32, t, mm_seconds, args.seed, bench.device)
        bf16 = matmul_gflops(torch.bfloat16, t, mm_seconds, args.seed, bench.device)
        for label, cfg, offset in (("b eigenvalues d128 4+1", CONFIG_B, 2), (label_c, cfg_c, 3)):
            r = bench.measure("d", label, cfg, t, offset=offset, evaluate=False)
            table.append([label, str(t), r.precision, f"{r.step_flop / 1e9:.2f}", f"{r.train_rate:,.1f}",
                          f"{r.gflops:.1f}", f"{fp32:.1f}", f"{bf16:.1f}", f"{bf16 / fp32:.2f}",
                          f"{r.gflops / fp32:.0%}"])
    print_table(["config", "thr", "prec", "step GFLOP", "train ex/s", "GFLOP/s", "matmul fp32", "matmul bf16",
                 "bf16/fp32", "% of fp32"], table)
    print(f"    {auto_note}")
    print()


# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    default_threads = "1" if cores == 1 else f"1,{cores}"
    parser = argparse.ArgumentParser(description="Training and greedy-evaluation examples/s of mathtx's model "
                                                 "on CPU (see the module docstring for the columns).")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per measurement (3)")
    parser.add_argument("--threads", default=default_threads,
                        help=f"comma list of torch thread counts (default {default_threads}); sections b and d "
                             "run at each, a, c and g at the largest")
    parser.add_argument("--only", default=None,
                        help="comma list of sections among a,b,c,d,g (default a,b,c,d on cpu, a,b,d,g on cuda)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps before timing (1)")
    parser.add_argument("--eval-size", type=int, default=256, help="problems per evaluation pass (256)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="training/eval precision (default auto: resolve_precision, as training does)")
    parser.add_argument("--attention", choices=ATTENTION_IMPLS, default="auto",
                        help="attention implementation (default auto: what build_model picks on CPU)")
    parser.add_argument("--loss", choices=("fused", "plain"), default="fused",
                        help="fp32 training loss: fused (model.HeadLoss, what training uses) or plain "
                             "F.cross_entropy on the logits (the engine before issue 13)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and training problems (0)")
    parser.add_argument("--input-encoding", choices=ENCODINGS, default=None,
                        help="measure every configuration with this input encoding instead of its own (FP15 in "
                             "all of them): the round-6 lever, P1000 inputs")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda, cuda:1 ...")
    args = parser.parse_args(argv)
    try:
        args.threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        parser.error(f"--threads must be a comma list of integers, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        parser.error("--threads must list thread counts >= 1")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        parser.error(f"--device {args.device}: valid here: cpu" + (", cuda" if torch.cuda.is_available() else ""))
    args.only = args.only or ("a,b,d,g" if device.type == "cuda" else "a,b,c,d")
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    if not args.only or not args.only <= set(SECTIONS):
        parser.error(f"--only takes a comma list of {', '.join(SECTIONS)}")
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    if args.warmup < 0 or args.eval_size < 1:
        parser.error("--warmup must be >= 0 and --eval-size >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    if args.precision == "auto" and device.type == "cuda":
        auto_note = f"resolve_precision('auto', {device.type}) -> {precision}: bf16 autocast on every CUDA device"
    elif args.precision == "auto":
        auto_note = (f"resolve_precision('auto', cpu) -> {precision}: a rule on the CPU's features, bf16 autocast "
                     f"only with AMX (core/devices.py); CPU: {cpu_flags()} (see bf16/fp32 above for this machine)")
    else:
        auto_note = f"precision forced to {precision} by --precision"
    print(f"train_throughput.py  seconds>={args.seconds:g}  warm-up {args.warmup} steps  threads {args.threads}  "
          f"sections {','.join(sorted(args.only))}  seed {args.seed}")
    print(f"python {platform.python_version()}  torch {torch.__version__}  numpy {np.__version__}  "
          f"{platform.processor() or platform.machine()}  {cpu_flags()}")
    if device.type == "cuda":
        print(f"device {torch.cuda.get_device_name(device)}")
    if args.input_encoding:
        print(f"input encoding {args.input_encoding} in every configuration (--input-encoding)")
    print(f"precision {precision} ({args.precision})  attention {resolve_attention(args.attention, device)} "
          f"({args.attention})")
    print(load_note("at start"))
    print()

    Seq2Seq.fused_loss = args.loss == "fused"
    print(f"loss {args.loss}")
    bench = Bench(args, precision)
    most = max(args.threads)
    if "a" in args.only:
        section_a(bench, most)
    if "b" in args.only:
        section_b(bench, args.threads)
    if "c" in args.only:
        section_c(bench, most)
    if "g" in args.only:
        section_g(bench, most)
    if "d" in args.only:
        section_d(bench, args.threads, auto_note)
    elif args.precision == "auto":
        print(auto_note)
    print(load_note("at the end (includes this script's own threads)"))
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
