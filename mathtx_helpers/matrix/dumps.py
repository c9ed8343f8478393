"""Read the original code's verbose evaluation dumps (PAPER.md §D.5) into our predictions table.

Anyone holding the original failure files (e.g. `eigenvectors_50k_90pc.pred`, `inversion_50k.pred`) can run
the analysis notebooks on them: this turns each record into the same row as `predict.predictions_table`.
A record is a block of lines:

    Equation 17 (1/1)
    src=[[ 1.23 -4.56 ...]        the input matrix, printed by numpy (n lines for n x n)
     [ ... ]]
    tgt=+ 123 E-2 ...             the target's words (P1000: sign, mantissa, exponent per number)
    1 + 123 E-2 ...               a perfect match: "1" then the words
    0 -0.0123 + 124 E-2 ...       or a generated hypothesis: "<0|1> <score> <words>"
    (a blank line)

Targets and hypotheses are decoded with our P1000 decoder (with or without the two dimension words V{r}
V{c}); a hypothesis that does not decode is invalid (prediction None, error +inf), where the original notebook
substituted an all-ones matrix. Word lists may also be printed as Python lists (['+', '123', ...]).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import encoding, tasks
from .predict import predictions_table

_EQUATION = re.compile(r"^Equation\s+(\d+)\s*\((\d+)\s*/\s*(\d+)\)\s*$")
_WORD = re.compile(r"[^\s\[\],'\"]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _decode(words: list[str], vocab: encoding.Vocabulary, shape: tuple[int, int]) -> np.ndarray | None:
    """P1000 words (with or without the dimension words) -> matrix of `shape`, or None."""
    r, c = shape
    if words[:2] != [f"V{r}", f"V{c}"]:
        words = [f"V{r}", f"V{c}", *words]
    ids = [vocab.index.get(w, -1) for w in words]
    if min(ids, default=-1) < 0:
        return None
    return vocab.decode(np.array(ids), "P1000", shape=shape)


def parse_records(text: str) -> list[dict]:
    """Split a dump into records: index, judged-correct flag, src text, target words, hypothesis."""
    records, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _EQUATION.match(lines[i].strip())
        if not m:
            i += 1
            continue
        rec = {"equation": int(m.group(1)), "judged_correct": int(m.group(2)) > 0}
        i += 1
        if i >= len(lines) or not lines[i].startswith("src="):
            raise ValueError(f"record {rec['equation']}: expected a 'src=' line after line {i}")
        src = [lines[i][4:]]
        i += 1
        while i < len(lines) and not lines[i].startswith("tgt="):
            src.append(lines[i])
            i += 1
        if i >= len(lines):
            raise ValueError(f"record {rec['equation']}: no 'tgt=' line")
        rec["src"] = " ".join(src)
        rec["target_words"] = _words(lines[i][4:])
        i += 1
        hyp = _words(lines[i]) if i < len(lines) else []
        i += 1
        if hyp[:1] == ["1"] and (len(hyp) < 2 or not _is_number(hyp[1])):
            rec["perfect_match"], rec["score"], rec["hyp_words"] = True, 0.0, hyp[1:]
        elif len(hyp) >= 2 and _is_number(hyp[1]):
            rec["perfect_match"], rec["score"], rec["hyp_words"] = False, float(hyp[1]), hyp[2:]
        else:
            rec["perfect_match"], rec["score"], rec["hyp_words"] = False, float("nan"), hyp[1:]
        records.append(rec)
    return records


def _is_number(word: str) -> bool:
    """A score such as -0.0123 or 1e-05 (not a P1000 word: those are signs, integers and E-words)."""
    try:
        float(word)
    except ValueError:
        return False
    return "." in word or "e" in word.lower() or word.startswith("-")


def read_dump(path: str | Path, task: str) -> pd.DataFrame:
    """A verbose evaluation dump -> predictions table (one row per record), plus the original's
    `judged_correct` and `perfect_match` flags and the hypothesis score (in `logprob_sum`)."""
    if task not in ("eigenvectors", "inversion", "eigenvalues"):
        raise ValueError(f"unknown task {task!r}; valid tasks: eigenvalues, eigenvectors, inversion")
    records = parse_records(Path(path).read_text())
    if not records:
        raise ValueError(f"{Path(path).name}: no 'Equation k (v/1)' records found")
    vocab = encoding.vocabulary("P1000", "P1000")
    A = [np.array([float(x) for x in _words(r["src"])]) for r in records]
    n = int(round(np.sqrt(A[0].size)))
    if any(a.size != n * n for a in A):
        raise ValueError(f"{Path(path).name}: inputs of different sizes; expected {n}x{n} matrices throughout")
    shape = tasks.target_shape(task, n)
    A = np.stack(A).reshape(-1, n, n)
    T = np.full((len(records), *shape), np.nan)
    P = np.full((len(records), *shape), np.nan)
    valid = np.zeros(len(records), dtype=bool)
    for k, r in enumerate(records):
        t = _decode(r["target_words"], vocab, shape)
        if t is None:
            raise ValueError(f"{Path(path).name}: the target of equation {r['equation']} does not decode as P1000")
        T[k] = t
        p = _decode(r["hyp_words"], vocab, shape)
        if p is not None:
            P[k], valid[k] = p, True
    width = max(len(r["hyp_words"]) for r in records)
    tokens = np.full((len(records), width + 1), vocab.eos)
    for k, r in enumerate(records):
        ids = [vocab.index.get(w, -1) for w in r["hyp_words"]]  # -1: a word our vocabulary lacks
        tokens[k, :len(ids)] = ids
    logp = np.zeros(tokens.shape)
    df = predictions_table(tasks.Problems(task, "dump", A, T), P, valid, tokens, logp, vocab.eos)
    df["logprobs"] = None  # per-token log-probabilities are not in the dumps
    df["logprob_sum"] = [r["score"] for r in records]
    df["logprob_min"] = np.nan
    df.insert(0, "equation", [r["equation"] for r in records])
    df["judged_correct"] = [r["judged_correct"] for r in records]
    df["perfect_match"] = [r["perfect_match"] for r in records]
    return df
