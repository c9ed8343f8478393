"""One arithmetic model's circuit study, as notebooks 07 and 08 run it on every seed's model: the questions it
answers correctly, position ablation, node ablation at the useful positions, mean attention, the sub-task
hypotheses (interchange interventions), each table cached in the model's run folder; and the PCA of its carry
head. claims.circuit_rows turns one seed's studies into notebook 07's claim rows.

    study = circuit_study(cfg, D, Dp, questions=2_000, pairs=400, seed=0)
    study.pos, study.nodes, study.hyp         # DataFrames
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import addition, circuits, pairs, subtraction
from . import predict as arith_predict
from . import train as arith_train
from .config import AddConfig
from .decoder import Decoder

MIN_CORRECT = 50  # fewer correctly answered questions (an untrained smoke model): analyse them all


@dataclass
class Study:
    cfg: AddConfig
    model: Decoder
    tok: np.ndarray  # (B, T) the analysis questions it answers correctly
    pos: pd.DataFrame  # position ablation
    nodes: pd.DataFrame  # node ablation at the useful positions
    att: np.ndarray  # (L, H, T, T) mean attention
    hyp: pd.DataFrame  # the sub-task hypotheses

    @property
    def useful(self) -> list[int]:
        """The positions whose ablation changed an answer."""
        return self.pos.loc[self.pos["fail %"] > 0, "position"].tolist()


def circuit_study(cfg: AddConfig, D: np.ndarray, Dp: np.ndarray, questions: int, pairs_per_test: int, seed: int,
                  op: int = addition.PLUS, kinds: tuple[str, ...] = pairs.ADD_KINDS, tag: str = "") -> Study:
    """Study the trained model of `cfg` on the questions D op D' (those it answers correctly; all of them when
    fewer than MIN_CORRECT are). `questions` and `seed` name the question set and the analysis stream in the
    cache keys (the hypotheses draw from default_rng([seed, 1])); `tag` names tables of another question set
    (e.g. '-sub')."""
    model = arith_train.load(cfg)
    tok = circuits.correct_questions(model, D, Dp, op)
    if len(tok) < MIN_CORRECT:
        tok = addition.tokens(D, Dp, op)

    def cached(name, compute, **params):
        params = dict(params, questions=questions, seed=seed, version=circuits.VERSION)
        return arith_predict.cached_table(cfg, name + tag, params, compute)

    pos = cached("position-ablation", lambda: circuits.position_ablation(model, tok))
    useful = pos.loc[pos["fail %"] > 0, "position"].tolist()
    nodes = cached("node-ablation", lambda: circuits.node_ablation(model, tok, useful), positions=useful)
    earlier = sorted(nodes.loc[nodes["fail %"] > 0, "position"].unique().tolist())
    extra = {} if kinds == pairs.ADD_KINDS else {"kinds": list(kinds)}
    hyp = cached("hypotheses", lambda: circuits.hypotheses(model, pairs_per_test, np.random.default_rng([seed, 1]),
                                                           earlier=earlier, kinds=kinds),
                 pairs=pairs_per_test, earlier=earlier, **extra)
    return Study(cfg, model, tok, pos, nodes, circuits.mean_attention(model, tok), hyp)


def carry_pca(models: dict[str, Decoder], k: int, pairs_per_test: int, rng: np.random.Generator):
    """For each model (in order, one stream): the single head that best carries into Ak (the A(k).SC test) read at
    the token before Ak on the three tri-states of column k-1 -> (the scatter rows, one summary row per model)."""
    n = addition.digits_of(next(iter(models.values())).cfg.n_ctx)
    pcs, rows = [], []
    for label, m in models.items():
        singles = [c for c in circuits.candidates(m) if len(c) == 1]
        tests = circuits.test_hypothesis(m, "SC", k, pairs_per_test, rng, singles)
        node = tests[0].nodes[0] if tests else singles[0][0]
        position = addition.answer_position(k, n) - 1
        df, evr, sil = circuits.head_pca(m, node, position, k - 1, 200, rng)
        pcs.append(df.assign(model=label, node=f"P{position}{node}"))
        low = df[df["tri-state"] == "sum <= 8"]
        rows.append({"model": label, "node": f"P{position}{node}",
                     "single-head SC strong % (own pairs)": 100 * tests[0].strong if tests else np.nan,
                     "EVR1": evr[0], "EVR2": evr[1], "silhouette": sil,
                     "|r| PC1 vs sum (sum <= 8)": abs(np.corrcoef(low.pc1, low["column sum"])[0, 1])})
    return pd.concat(pcs), pd.DataFrame(rows)


def analysis_questions(n: int, questions: int, op: str = "add") -> tuple[np.ndarray, np.ndarray]:
    """The circuit studies' questions: half uniform, half enriched, from the fixed test sets (notebook 07's for
    addition). op='sub': subtraction questions with D >= D' (class M, the sub-task pairs' class), the same halves."""
    if op == "add":
        halves = (arith_predict.test_set("uniform", questions // 2, n),
                  arith_predict.test_set("enriched", questions // 2, n))
    elif op == "sub":
        halves = []
        for name in ("sub uniform", "sub enriched"):
            D, Dp = arith_predict.test_set(name, 4 * questions, n)
            keep = subtraction.classes(D, Dp).astype("U1") == "M"
            halves.append((D[keep][:questions // 2], Dp[keep][:questions // 2]))
    else:
        raise ValueError(f"unknown operation {op!r}; valid: add, sub")
    D, Dp = (np.concatenate(x) for x in zip(*halves, strict=True))
    return D, Dp


@dataclass
class Coverage:
    tok: dict[str, np.ndarray]  # class ('add', 'sub', 'neg') -> its correctly answered questions
    pos: pd.DataFrame  # position ablation per class (column cls)
    useful: list[int]  # positions whose ablation changes an answer of some class
    cover: pd.DataFrame  # circuits.operation_coverage


def coverage_study(cfg: AddConfig, questions: int, seed: int) -> Coverage:
    """The operation-coverage map of a mixed model (notebook 08), cached in its run folder: `questions` correctly
    answered questions per class (all drawn ones for an untrained smoke model), from the uniform test sets."""
    model = arith_train.load(cfg)
    n = cfg.n_digits
    Da, Dpa = arith_predict.test_set("uniform", 4 * questions, n)
    Ds, Dps = arith_predict.test_set("sub uniform", 8 * questions, n)
    neg = subtraction.classes(Ds, Dps).astype("U1") == "N"
    drawn = {"add": (Da, Dpa, addition.PLUS), "sub": (Ds[~neg], Dps[~neg], addition.MINUS),
             "neg": (Ds[neg], Dps[neg], addition.MINUS)}
    tok = {}
    for c, (X, Y, o) in drawn.items():
        tok[c] = circuits.correct_questions(model, X, Y, o)[:questions]
        if len(tok[c]) < MIN_CORRECT:
            tok[c] = addition.tokens(X[:questions], Y[:questions], o)

    def cached(name, compute, **params):
        params = dict(params, questions=questions, seed=seed, version=circuits.VERSION)
        return arith_predict.cached_table(cfg, name, params, compute)

    # "coverage-..." names: circuit_study's tables of another question set are "position-ablation<tag>", and the
    # same questions and seed would otherwise give both the same file
    pos = pd.concat([cached(f"coverage-position-ablation-{c}",
                            lambda t=t: circuits.position_ablation(model, t)).assign(cls=c)
                     for c, t in tok.items()])
    useful = sorted(pos.loc[pos["fail %"] > 0, "position"].unique().tolist())
    cover = cached("coverage", lambda: circuits.operation_coverage(model, tok, useful), positions=useful)
    return Coverage(tok, pos, useful, cover)


def shared_heads(add_hyp: pd.DataFrame, sub_hyp: pd.DataFrame) -> pd.DataFrame:
    """The heads (at a position) confirmed for an addition sub-task in `add_hyp` and a subtraction one in `sub_hyp`,
    with the hypotheses each confirms: claims.C9's count, one row per head."""
    def purposes(hyp):
        out: dict[tuple[int, str], list[str]] = {}
        for r in hyp[hyp.holds].itertuples():
            for node in r.node.split("+"):
                out.setdefault((int(r.position), node), []).append(r.hypothesis)
        return out

    add, sub = purposes(add_hyp), purposes(sub_hyp)
    both = sorted(set(add) & set(sub))
    return pd.DataFrame([{"position": p, "head": h, "addition": " ".join(add[p, h]), "subtraction": " ".join(sub[p, h])}
                         for p, h in both], columns=["position", "head", "addition", "subtraction"])
