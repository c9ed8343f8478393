"""Arithmetic models: training step time at 1 and 2 threads in fp32 and at 1 thread in bf16 autocast
(AddConfig.precision), interleaved, and scoring questions per second (the full forward pass against
Decoder.logits_at, interleaved). Every model shape of the profile, on addition batches (a subtraction batch costs
the same).

    python benchmarks/arith_throughput.py [--profile cpu] [--steps 40] [--rounds 3] [--scoring-only]

The arithmetic runs train with one thread each, side by side (jobs.train_runs): results then do not
depend on the machine's core count. On an idle 2-core machine (2026-11-23) the 2-layer model took 84 ms per step on
one thread and 49 ms on two, the 1-layer one 45 and 24 ms: two runs side by side on one thread each take about the
same wall time as one after the other on two threads. This script re-measures it on your machine. Prints numbers,
asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mathtx_helpers.arith import addition
from mathtx_helpers.arith import train as arith_train
from mathtx_helpers.arith.config import AddConfig
from mathtx_helpers.core import devices
from mathtx_helpers.profiles import PROFILES


def step_time(cfg: AddConfig, threads: int, steps: int, precision: str = "fp32") -> float:
    torch.set_num_threads(threads)
    model = arith_train.build(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay,
                            fused=True)
    rng = np.random.default_rng(0)
    n = cfg.n_digits
    for i in range(steps + 5):  # 5 warm-up steps
        if i == 5:
            t0 = time.perf_counter()
        D, Dp = addition.training_batch(cfg.batch, n, rng, cfg.enrich_batches, cfg.enrich_pairs)
        tok = torch.from_numpy(addition.tokens(D, Dp))
        loss = arith_train.training_loss(model, tok, n, precision).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every variant (3)")
    parser.add_argument("--scoring-only", action="store_true", help="measure scoring only (no training steps)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, AMX: {devices.has_amx()}")
    variants = ((1, "fp32"), (2, "fp32"), (1, "bf16"))  # (threads, precision)
    for spec in PROFILES[args.profile].addition:
        if spec.replicate:  # a second seed has its first seed's shape and cost
            continue
        cfg = spec.config
        if args.scoring_only:
            print(f"{spec.name}:")
            scoring(cfg, args.rounds)
            continue
        params = arith_train.build(cfg).n_params()
        times: dict[tuple[int, str], list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):  # interleaved: a shared machine's drift hits every variant alike
            for v in variants:
                times[v].append(step_time(cfg, v[0], args.steps, precision=v[1]))
        best = {v: min(t) for v, t in times.items()}
        print(f"{spec.name}: {params:,} parameters, batch {cfg.batch}, ms/step min / median of {args.rounds}: "
              + ", ".join(f"{p} {t} thread{'s' * (t > 1)} {1000 * best[t, p]:.0f} / "
                          f"{1000 * float(np.median(times[t, p])):.0f}" for t, p in variants)
              + f"; bf16 / fp32 on 1 thread: {best[1, 'fp32'] / best[1, 'bf16']:.2f}x; {cfg.steps:,} steps at 1 "
              f"thread = {best[1, 'fp32'] * cfg.steps / 60:.1f} min fp32, "
              f"{best[1, 'bf16'] * cfg.steps / 60:.1f} min bf16")
        scoring(cfg, args.rounds)


def scoring(cfg: AddConfig, rounds: int, questions: int = 20_000) -> None:
    """Teacher-forced scoring on one thread, in score()'s batches: the full forward pass (answer_logits, what
    score() ran before Decoder.logits_at) against logits_at, interleaved; and whether the two give the same
    bytes on this CPU."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = arith_train.build(cfg).eval()
    n = cfg.n_digits
    D, Dp = addition.sample(questions, n, np.random.default_rng(1))
    tok = torch.from_numpy(addition.tokens(D, Dp))
    variants = {"full pass": lambda t: arith_train.answer_logits(model, t, n),
                "logits_at": lambda t: model.logits_at(t, addition.answer_slice(n))}
    times: dict[str, list[float]] = {v: [] for v in variants}
    same = True
    with torch.no_grad():
        for _ in range(rounds):
            for v, f in variants.items():
                t0 = time.perf_counter()
                out = [f(tok[i:i + 512]) for i in range(0, questions, 512)]
                times[v].append(time.perf_counter() - t0)
                if v == "full pass":
                    ref = out
                else:
                    same &= all(torch.equal(a, b) for a, b in zip(ref, out, strict=True))
    rate = {v: questions / min(t) for v, t in times.items()}
    print("  scoring (teacher-forced, fp32, batches of 512), 1 thread, questions/s best / median of "
          f"{rounds}: " + ", ".join(f"{v} {rate[v]:,.0f} / {questions / float(np.median(times[v])):,.0f}"
                                    for v in variants)
          + f"; logits_at / full {rate['logits_at'] / rate['full pass']:.2f}x; same bytes: {same}")


if __name__ == "__main__":
    main()
