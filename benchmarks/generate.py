"""Data-generation throughput: the vectorised generator against a per-example loop like the original's.

What it measures
    For each task at n = 5, with FP15 inputs and P1000 outputs (the paper's setting), the number of problems
    per second that are *generated and encoded*: an input id sequence plus a target id sequence per problem.

    vectorised  tasks.make_problems(task, 5, B, rng, spectrum), then
                vocabulary('FP15', 'P1000').encode(A, 'FP15', upper=False) and .encode(target, 'P1000'),
                repeated on batches of B problems (--batch) for at least --seconds.
    loop        one problem at a time, as PAPER.md §B describes the original generator: sample one n x n
                matrix with numpy (Wigner: lower triangle mirrored; laplace: eigh, new eigenvalues,
                Q^T diag(d) Q), compute the target with numpy.linalg (general eigenvalue routine sorted
                decreasing; eigh; inv with the 1e-10 residual check), then encode every number by formatting
                it with '%.2e' into words and looking each word up in a dict word -> id. It runs under
                np.errstate(all='raise') and skips a sample that raises, as the original did. The loop is
                written in plain but reasonable Python (it iterates over .tolist() rows, not numpy scalars),
                so its rate is, if anything, flattering to the loop and the ratio is conservative.

    Both paths produce the same thing: for each problem a list (or row) of input ids and of target ids, in
    the same vocabulary. Before timing, a sanity check encodes the same problems both ways and compares the
    sequence lengths and the ids, plus a few edge values (zero, -0.0, carries like 9.996, tiny FP15 values).

How to read the table
    ex/s    problems generated and encoded per second (higher is better), one process, the BLAS/OpenMP
            thread count given by --threads (default 1).
    ratio   vectorised ex/s / loop ex/s. The target is a ratio >= 20x for every task; the last line says
            which tasks meet it. Timings on a shared machine are noisy (a few tens of percent): rerun with
            a larger --seconds before reading much into a small difference. Nothing here asserts on time.

Run:  .venv/bin/python benchmarks/generate.py [--batch 1024] [--seconds 3] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable

import numpy as np

from mathtx_helpers.matrix import tasks
from mathtx_helpers.matrix.encoding import Vocabulary, vocabulary

N = 5
INPUT_ENCODING, OUTPUT_ENCODING = "FP15", "P1000"
RATIO_TARGET = 20.0
COEFF = 10.0  # coefficient bound A of the base uniform matrices (PAPER.md §B.1)
# (label, task, spectrum): the eigenvalue task with two spectra, then eigenvectors and inversion
CASES = (
    ("eigenvalues/semicircle", "eigenvalues", "semicircle"),
    ("eigenvalues/laplace", "eigenvalues", "laplace"),
    ("eigenvectors/semicircle", "eigenvectors", "semicircle"),
    ("inversion", "inversion", "semicircle"),  # the spectrum is ignored for inversion
)


# --------------------------------------------------------------------------------------------------
# (a) the vectorised path
# --------------------------------------------------------------------------------------------------


def vectorised_batch(task: str, spectrum: str, batch: int, rng: np.random.Generator,
                     vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """One batch of problems, generated and encoded: input ids (B, Lx) and target ids (B, Ly)."""
    problems = tasks.make_problems(task, N, batch, rng, spectrum)
    x_ids, _ = vocab.encode(problems.A, INPUT_ENCODING, upper=False)
    y_ids, _ = vocab.encode(problems.target, OUTPUT_ENCODING)
    return x_ids, y_ids


# --------------------------------------------------------------------------------------------------
# (b) the per-example loop: string formatting and dict lookups, one number at a time
# --------------------------------------------------------------------------------------------------


def fp15_word(x: float) -> str:
    """One FP15 word 'N{+-m}e{j}' (value m * 10^(j - 9)), from the '%.2e' string of x."""
    mantissa, exponent = f"{x:.2e}".split("e")  # the '%.2e' string, e.g. '-3.14e+00'
    m = int(mantissa.replace(".", ""))  # signed integer mantissa, |m| in 100..999 (0 for zero)
    if m == 0:
        return "N0e0"
    k = int(exponent) - 2  # x ~= m * 10^k
    if k < -9:  # |x| < 1e-7: absolute grid of 1e-9 (N-99e0 ... N99e0; +-100 is the normal word for 1e-7)
        return f"N{round(x * 1e9)}e0"
    if k > 6:
        raise ValueError(f"value {x:.6g} is out of range for FP15")
    return f"N{m}e{k + 9}"


def p1000_words(x: float) -> tuple[str, str, str]:
    """Three P1000 words: sign, base-1000 mantissa, exponent 'E{k}', from the '%.2e' string of x."""
    mantissa, exponent = f"{x:.2e}".split("e")
    m = int(mantissa.replace(".", ""))
    k = int(exponent) - 2
    if m == 0 or k < -100:  # zero, or below 1e-98: flushed to zero
        return ("+", "0", "E0")
    if k > 100:
        raise ValueError(f"value {x:.6g} is out of range for P1000")
    return ("-" if m < 0 else "+", str(abs(m)), f"E{k}")


def loop_encode(M: np.ndarray, index: dict[str, int], number_words: Callable[[float], tuple[str, ...]]) -> list[int]:
    """<s> V{r} V{c} the words of each number </s>, as ids."""
    r, c = M.shape
    words = ["<s>", f"V{r}", f"V{c}"]
    for row in M.tolist():
        for x in row:
            words.extend(number_words(x))
    words.append("</s>")
    return [index[w] for w in words]


def loop_encode_fp15(M: np.ndarray, index: dict[str, int]) -> list[int]:
    return loop_encode(M, index, lambda x: (fp15_word(x),))


def loop_encode_p1000(M: np.ndarray, index: dict[str, int]) -> list[int]:
    return loop_encode(M, index, p1000_words)


def loop_matrix(task: str, spectrum: str, rng: np.random.Generator) -> np.ndarray:
    """One input matrix, sampled as in PAPER.md §B.2-B.3."""
    X = rng.uniform(-COEFF, COEFF, size=(N, N))
    if task == "inversion":
        return X
    W = np.tril(X) + np.tril(X, -1).T  # Wigner: lower triangle with the diagonal, mirrored
    if spectrum == "semicircle":
        return W
    if spectrum != "laplace":
        raise ValueError(f"the loop baseline knows semicircle and laplace, not {spectrum!r}")
    _, Q = np.linalg.eigh(W)  # W = Q diag(w) Q^T
    s = math.sqrt(N) * COEFF / math.sqrt(3.0)
    d = rng.laplace(0.0, s / math.sqrt(2.0), size=N)
    return Q.T @ np.diag(d) @ Q  # transpose on the left, as in the original


def loop_target(task: str, M: np.ndarray) -> np.ndarray | None:
    """The target of one problem (None: rejected sample), computed with numpy.linalg as in §B.5."""
    if task == "eigenvalues":
        eigvals = np.linalg.eigvals(M).real  # the general routine, as the original
        return np.sort(eigvals)[::-1].reshape(-1, 1)  # (n, 1), decreasing
    if task == "eigenvectors":
        eigvals, V = np.linalg.eigh(M)
        return np.vstack([eigvals, V])  # (n+1, n): eigenvalues increasing, then eigenvectors as columns
    inverse = np.linalg.inv(M)
    if np.abs(M @ inverse - np.eye(M.shape[0])).max() > tasks.INVERSION_RESIDUAL_MAX:
        return None
    return inverse


def loop_example(task: str, spectrum: str, rng: np.random.Generator,
                 index: dict[str, int]) -> tuple[list[int], list[int]] | None:
    """One problem generated and encoded (input ids, target ids), or None if the sample is skipped."""
    try:
        M = loop_matrix(task, spectrum, rng)
        T = loop_target(task, M)
        if T is None:
            return None
        return loop_encode_fp15(M, index), loop_encode_p1000(T, index)
    except (FloatingPointError, np.linalg.LinAlgError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


def measure(step: Callable[[], int], seconds: float) -> tuple[float, int, float]:
    """Call step() (which returns how many problems it produced) until `seconds` have passed, at least once.

    Returns (problems per second, problems, elapsed seconds).
    """
    done = 0
    start = time.perf_counter()
    while True:
        done += step()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, done, elapsed


def time_vectorised(task: str, spectrum: str, batch: int, seconds: float, seed: int,
                    vocab: Vocabulary) -> tuple[float, int, float]:
    rng = np.random.default_rng(seed)

    def step() -> int:
        x_ids, _ = vectorised_batch(task, spectrum, batch, rng, vocab)
        return x_ids.shape[0]

    return measure(step, seconds)


def time_loop(task: str, spectrum: str, seconds: float, seed: int,
              index: dict[str, int]) -> tuple[float, int, float]:
    rng = np.random.default_rng(seed)
    chunk = 64  # examples between two clock reads

    def step() -> int:
        made = 0
        for _ in range(chunk):
            if loop_example(task, spectrum, rng, index) is not None:
                made += 1
        return made

    with np.errstate(all="raise"):  # the original turned numpy warnings into exceptions (PAPER.md §B.1)
        return measure(step, seconds)


# --------------------------------------------------------------------------------------------------
# Sanity check: both paths give the same id sequences for the same numbers
# --------------------------------------------------------------------------------------------------

EDGE_VALUES = (0.0, -0.0, 3.14, -3.14, 9.996, -9.996, 1e-5, 123456.0, 1e-7, 9.9996e-8, 5e-8, -5e-8, 1.5e-10,
               4.2e-10, 999e6, 1e-99, 1e-120, -1e-120, 0.5, 17.25)


def compare(a: list[int], b: np.ndarray) -> tuple[bool, int]:
    """(same length, number of differing ids when the lengths agree)."""
    b = [int(v) for v in b]
    if len(a) != len(b):
        return False, max(len(a), len(b))
    return True, sum(u != v for u, v in zip(a, b, strict=True))


def sanity_check(seed: int, vocab: Vocabulary, problems_per_case: int = 8) -> bool:
    """Encode the same problems both ways; print and return whether every sequence matches."""
    index = vocab.index
    all_ok = True
    print(f"sanity check: {problems_per_case} problems per task encoded by both paths, "
          f"and {len(EDGE_VALUES)} edge values")
    for i, (label, task, spectrum) in enumerate(CASES):
        problems = tasks.make_problems(task, N, problems_per_case, np.random.default_rng(seed + 1000 + i),
                                       spectrum)
        x_vec, x_len = vocab.encode(problems.A, INPUT_ENCODING, upper=False)
        y_vec, y_len = vocab.encode(problems.target, OUTPUT_ENCODING)
        # the loop's own target (e.g. the general eigenvalue routine), computed from the same rounded input
        with np.errstate(all="raise"):
            own = [loop_target(task, A) for A in problems.A]
        lengths_ok, x_diff, y_diff, own_diff = True, 0, 0, 0
        for b in range(problems_per_case):
            same_len, d = compare(loop_encode_fp15(problems.A[b], index), x_vec[b, : x_len[b]])
            lengths_ok &= same_len
            x_diff += d
            same_len, d = compare(loop_encode_p1000(problems.target[b], index), y_vec[b, : y_len[b]])
            lengths_ok &= same_len
            y_diff += d
            if own[b] is None:
                own_diff += 1
            else:
                same_len, d = compare(loop_encode_p1000(own[b], index), y_vec[b, : y_len[b]])
                lengths_ok &= same_len
                own_diff += d
        ok = lengths_ok and x_diff == 0 and y_diff == 0
        all_ok &= ok
        print(f"  {label:<24} lengths input {x_len[0]} target {y_len[0]} "
              f"{'equal' if lengths_ok else 'DIFFER'}; differing ids: input {x_diff}, target {y_diff}"
              f" (loop's own target: {own_diff}) -> {'ok' if ok else 'MISMATCH'}")
    edge = np.array(EDGE_VALUES, dtype=np.float64).reshape(1, 1, -1)
    fp15_ok, fp15_diff = compare(loop_encode_fp15(edge[0], index), vocab.encode(edge, "FP15")[0][0])
    p1000_ok, p1000_diff = compare(loop_encode_p1000(edge[0], index), vocab.encode(edge, "P1000")[0][0])
    ok = fp15_ok and p1000_ok and fp15_diff == 0 and p1000_diff == 0
    all_ok &= ok
    print(f"  {'edge values':<24} differing ids: FP15 {fp15_diff}, P1000 {p1000_diff} -> "
          f"{'ok' if ok else 'MISMATCH'}")
    # Information only (not part of the verdict): decimal half-way values d.dd5 * 10^e sit within an ulp of a
    # rounding boundary. '%.2e' rounds the exact binary value; the vectorised encoder rounds a floating-point
    # quotient, so the two may pick different neighbours there. Random data essentially never lands there.
    rng = np.random.default_rng(seed + 2000)
    ties = (rng.integers(100, 1000, 300) * 10 + 5) / 1000.0 * 10.0 ** rng.integers(-6, 6, 300).astype(float)
    ties = np.concatenate([ties, -ties]).reshape(-1, 1, 1)
    for name, loop_encode in (("FP15", loop_encode_fp15), ("P1000", loop_encode_p1000)):
        vec = vocab.encode(ties, name)[0]
        differ = sum(loop_encode(t, index) != vec[b].tolist() for b, t in enumerate(ties))
        print(f"  {'near-ties (' + name + ')':<24} {differ} of {len(ties)} values round to a different "
              "neighbour (information only)")
    return all_ok


# --------------------------------------------------------------------------------------------------


def limit_threads(threads: int) -> str:
    """Limit BLAS/OpenMP threads at run time (threadpoolctl, when installed); return a note for the header."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return f"{threads} requested, threadpoolctl missing: set OMP_NUM_THREADS={threads} instead"
    threadpool_limits(threads)
    return f"{threads} (threadpoolctl)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Problems generated and encoded per second (n=5, FP15 -> P1000): the vectorised "
                    "generator against a per-example Python loop like the original's.",
        epilog="Thread counts: numpy reads OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS when it "
               "is imported, so setting them from inside the script is too late. To pin the thread count "
               "from the environment, run e.g. `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generate.py`. "
               "--threads limits the already-loaded BLAS/OpenMP pools at run time with threadpoolctl "
               "(installed with scikit-learn). torch is not imported.",
    )
    parser.add_argument("--batch", type=int, default=1024,
                        help="problems per vectorised batch (default 1024)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="minimum time per measurement, in seconds (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads for both paths (default 1; see the note below)")
    parser.add_argument("--seed", type=int, default=0,
                        help="base seed: each measurement uses np.random.default_rng(seed + offset) "
                             "(default 0)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads_note = limit_threads(args.threads)
    vocab = vocabulary(INPUT_ENCODING, OUTPUT_ENCODING)  # built once, outside the timings
    print(f"generate.py  n={N}  {INPUT_ENCODING} -> {OUTPUT_ENCODING}  vocabulary {vocab.size} words  "
          f"batch={args.batch}  seconds>={args.seconds:g}  seed={args.seed}")
    print(f"python {platform.python_version()}  numpy {np.__version__}  threads {threads_note}")
    print()
    sane = sanity_check(args.seed, vocab)
    print()

    rows = []
    for i, (label, task, spectrum) in enumerate(CASES):
        # warm-up: caches (word tables), first LAPACK calls; not timed
        vectorised_batch(task, spectrum, min(args.batch, 64), np.random.default_rng(args.seed), vocab)
        with np.errstate(all="raise"):
            loop_example(task, spectrum, np.random.default_rng(args.seed), vocab.index)
        vec_seed, loop_seed = args.seed + 2 * i, args.seed + 2 * i + 1
        vec_rate, vec_n, _ = time_vectorised(task, spectrum, args.batch, args.seconds, vec_seed, vocab)
        loop_rate, loop_n, _ = time_loop(task, spectrum, args.seconds, loop_seed, vocab.index)
        rows.append((label, vec_rate, loop_rate, vec_rate / loop_rate, vec_n, loop_n))

    header = f"{'task':<24} {'vectorised ex/s':>16} {'loop ex/s':>12} {'ratio':>8}   problems (vec / loop)"
    print(header)
    print("-" * len(header))
    for label, vec_rate, loop_rate, ratio, vec_n, loop_n in rows:
        print(f"{label:<24} {vec_rate:>16,.0f} {loop_rate:>12,.0f} {ratio:>7.1f}x   "
              f"{vec_n:,} / {loop_n:,}")
    print()
    verdicts = ", ".join(f"{label} {'yes' if ratio >= RATIO_TARGET else 'NO'} ({ratio:.1f}x)"
                         for label, _, _, ratio, _, _ in rows)
    met = all(row[3] >= RATIO_TARGET for row in rows)
    print(f"ratio target >= {RATIO_TARGET:g}x: {verdicts} "
          f"-> {'met for every task' if met else 'NOT met for every task'}")
    print(f"sanity check (same lengths and ids on both paths): {'passed' if sane else 'FAILED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
