"""Several training runs side by side: one process each, a few at a time, under one progress bar.

Small models use neither a GPU nor many CPU cores fully. Running several at once helps both. On an H100, three
5x5 runs together trained at about 56k examples/s, twice the rate of one run alone. On 2 cores, two
one-thread runs finish in about the time of one two-thread run after the other. Each process gets a thread
count through OMP_NUM_THREADS. Its run's results then depend on that count, not on how many run beside it:
a run trained here has the same bytes as the same run trained alone at that thread count.
Each child is a command line (the CLI: `python -m mathtx_helpers train --profile P --run NAME`), writing its
output to <run folder>/train.log. A failed child raises one error naming its run and quoting the end of its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import store
from .runs import bar_disabled, progress_done


class JobFailed(RuntimeError):
    """A child process exited with an error: its name and the end of its log."""


@dataclass(frozen=True)
class Job:
    name: str
    folder: Path  # the run folder: train.log is written there, progress read from it (runs.progress_done)
    argv: tuple[str, ...]  # the child's command line after the Python interpreter, e.g. ("-m", "mathtx_helpers", ...)
    total: int = 0  # its budget, in the bar's unit (examples or steps)


def cli(*args: str) -> tuple[str, ...]:
    """The argv of a child running this package's command line."""
    return ("-m", "mathtx_helpers", *args)


def run(jobs: list[Job], unit: str, threads: int = 1, at_once: int | None = None, progress: bool = True,
        poll: float = 2.0) -> None:
    """Run `jobs`, at most `at_once` at a time (default: all), each process with `threads` threads. The bar
    goes to the jobs' summed `total`, in `unit` ("examples" or "step"), read from each run's folder at its last
    checkpoint or evaluation (runs.progress_done)."""
    if threads < 1 or (at_once is not None and at_once < 1):
        raise ValueError(f"threads and at_once must be >= 1, got {threads} and {at_once}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(store.ROOT),
           "TQDM_DISABLE": "1"}  # one bar, here
    waiting, running, finished = list(jobs), {}, {}

    def done() -> int:
        return sum(min(j.total, progress_done(j.folder, unit)) for j in jobs)

    bar = tqdm(total=sum(j.total for j in jobs), initial=done(), unit=unit, desc=" + ".join(j.name for j in jobs),
               disable=bar_disabled(progress), dynamic_ncols=True)
    try:
        while waiting or running:
            while waiting and len(running) < (at_once or len(jobs)):
                job = waiting.pop(0)
                job.folder.mkdir(parents=True, exist_ok=True)
                # appended to, never truncated: a second invocation's child that finds the run busy must not
                # cut the log of the process training it
                with open(job.folder / "train.log", "a") as log:
                    running[job] = subprocess.Popen([sys.executable, *job.argv], env=env, cwd=store.ROOT,
                                                    stdout=log, stderr=subprocess.STDOUT)
            time.sleep(poll)
            for job, proc in list(running.items()):
                if proc.poll() is not None:
                    finished[job] = running.pop(job).returncode
            bar.update(done() - bar.n)
    finally:  # interrupted (Ctrl-C): stop the children too; their checkpoints let a rerun resume
        for proc in running.values():
            proc.terminate()
        bar.close()
    failed = [f"{job.name} (exit {code}): ...{(job.folder / 'train.log').read_text()[-600:]}"
              for job, code in finished.items() if code != 0]
    if failed:
        raise JobFailed("training failed: " + "; ".join(failed))
