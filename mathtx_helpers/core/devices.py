"""Devices and precision: which device a run uses, and what precision="auto" means there.

"auto" is a rule on the device and the CPU's features, never a timing, so that every process on one machine
resolves it the same way (same seed, same machine, same bytes):

    CUDA                          -> bf16 autocast
    CPU with AMX (amx_bf16)       -> bf16 autocast (bf16 matmuls ran ~8x fp32 on such a machine)
    any other CPU                 -> fp32

Why AVX-512-BF16 CPUs without AMX (some AMD EPYC) get fp32: measured on that kind, bf16 autocast was faster on
some machines (411 vs 271 examples/s at the reference configuration, one thread; 417-465 vs 280-302 on another)
and slower on the one the committed cpu models were trained on, in fp32. A precision also changes what a run
learns per example, so switching it is a change of the profile, to be decided by time to accuracy
(benchmarks/time_to_accuracy.py). Retrained models match the committed ones only where this rule picks the same
precision (fp32), and even then only on a machine that computes the same bits.
A run records its resolved precision in its folder and refuses to resume under another.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_amx() -> bool:
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return "amx_bf16" in cpu_flags() or bool(probe and probe())


def resolve_precision(requested: str, device) -> str:
    """The precision a run trains in on `device` (see the module docstring for "auto")."""
    import torch

    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; valid: {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    if torch.device(device).type == "cuda":
        return "bf16"
    return "bf16" if has_amx() else "fp32"


def decode_precision(trained: str, device) -> str:
    """The precision predictions decode in, for weights trained in `trained`: that one on a GPU; fp32 on a CPU
    whatever trained them (bf16 autocast keeps fp32 weights). A CPU's prediction tables then depend on its fp32
    kernels only, not on how its bf16 rounding differs from the training machine's, and a CPU without bf16 units
    does not emulate it: the bf16-trained eigen-decomposition model decoded its 10,000 test problems 5.6x faster
    in fp32 than in bf16 on an AVX2-only AMD EPYC (docs/benchmarks.md)."""
    import torch

    if trained not in PRECISIONS[1:]:
        raise ValueError(f"unknown trained precision {trained!r}; valid: {', '.join(PRECISIONS[1:])}")
    return trained if torch.device(device).type == "cuda" else "fp32"


def autocast(device, precision: str):
    import torch

    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def default_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def distributed() -> tuple[int, int, int]:
    """(rank, world, local_rank) under torchrun, else (0, 1, 0)."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0
