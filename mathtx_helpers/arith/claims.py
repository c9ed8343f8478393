"""The arithmetic papers' claims (ARITHMETIC.md) as notebooks 06-07 judge them: statement, paper value, rule.

Each is a core.claims.Claim; a notebook measures `ours` (and the context a statement shows) and calls
`CLAIM.row(ours, profile, ci=..., **context)`. The thresholds live here, once, beside their wording.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..core.claims import Claim, Rule, at_least, between, equal_to

PAPER_LOSS = 1.6e-8  # Paper 1's final training loss of the accurate 5-digit model

# ------------------------------------------------------------------ notebook 06: accuracy and failures

A1 = Claim("A1", "2-layer model: accuracy (%) on {questions:,} uniform + enriched questions (paper: six 9s on 1M "
           "enriched; holds = {rule}, which bounds the error rate by ~3/N)",
           Rule("zero errors", lambda v, errors, **_: errors == 0), 99.9999)
A2 = Claim("A2", "2-layer model: lowest accuracy (%) over the classes S0-S5 (it follows every cascade; holds {rule})",
           at_least(99.9), 100.0)
A3 = Claim("A3", "2-layer model: final training loss (mean of the last 100 steps; paper 1.6e-8; holds {rule})",
           Rule("within 10x", lambda v, **_: v <= 10 * PAPER_LOSS), PAPER_LOSS)
A4 = Claim("A4", "1-layer model: accuracy (%) on {questions:,} enriched questions (paper 1: 'two 9s'; holds {rule}; "
           "on uniform questions: {uniform:.3f})", between(99, 99.9), 99.0)
# S3-S5 fail while the short cascades stay right; `short`: the lowest accuracy over S0-S2
A5 = Claim("A5", "1-layer model: best accuracy (%) on cascades through >= 2 sum-9 columns (S3-S5) (paper 1: these "
           "fail; holds if {rule} while S0-S2 stay >= 99; S0-S2 lowest: {short:.2f})",
           Rule("< 95", lambda v, short, **_: v < 95 and short >= 99))
A6 = Claim("A6", "1-layer model: AUC of cascade length alone as a failure flag on the enriched set (holds {rule})",
           at_least(0.9))

# ------------------------------------------------------------------ notebook 07: circuits

B1 = Claim("B1", "2-layer model: question positions (up to '=') whose ablation changes answers (paper 2: early "
           "positions compute the carry tri-states; holds {rule}; ours: {tokens})", at_least(1))
B2 = Claim("B2", "1-layer model: staircase - at the token before every Ak (k < n) one head gives >= this much "
           "attention to (Dk, D'k) (holds {rule})", at_least(0.5))
# B3-B5: the share (%) of answer digits whose sub-task one node is shown to compute, per kind of sub-task
SUBTASK_TEXT = {"SA": "base add (Dk + D'k) mod 10", "SC": "carry from column k-1",
                "ST": "carry passed on through a sum-9 column (tri-state)"}
_MAPPED = ("2-layer model: answer digits (%) whose {what} one node (a head or a same-layer head pair) is shown to "
           "compute by intervention (the papers' map: all; holds {rule})")
B3 = Claim("B3", _MAPPED, equal_to(100), 100.0)
B4 = Claim("B4", _MAPPED, equal_to(100), 100.0)
B5 = Claim("B5", _MAPPED, equal_to(100), 100.0)
MAPPED_CLAIMS = (("SA", B3), ("SC", B4), ("ST", B5))
B6 = Claim("B6", "2-layer model: confirmed base adds (%) that need a pair of heads, a 'virtual head' (paper 2: all; "
           "holds {rule})", at_least(50), 100.0)
B7 = Claim("B7", "2-layer model: sub-task hypotheses (%) that hold, of SA, SC and ST for every answer digit",
           Rule("all", lambda v, **_: v == 100), 100.0)


def _core_subtasks_hold(v, hypotheses: pd.DataFrame, **_) -> bool:
    """Paper 1's 1-layer algorithm: every base add (SA) and every carry (SC) hypothesis holds."""
    return bool(hypotheses[hypotheses.kind.isin(["SA", "SC"])].holds.all())


B8 = Claim("B8", "1-layer model: sub-task hypotheses (%) that hold (paper 1: one head does the base add, another "
           "brings the carry; holds if {rule})", Rule("every SA and SC does", _core_subtasks_hold))
B9 = Claim("B9", "2-layer model: silhouette of the three tri-states in the carry head's PC1-PC2 plane (library's PCA "
           "tag: {rule})", at_least(0.2))


def circuit_rows(two, one, pca: pd.DataFrame, profile: str, acc2: float, acc1: float) -> list[dict]:
    """Notebook 07's claims B1-B9 on one seed's 2-layer (`two`) and 1-layer (`one`) models, each a
    study.Study; acc2 / acc1: the
    models' accuracy (%) on the uniform test set."""
    from . import circuits  # torch: only when rows are measured

    n = two.cfg.n_digits
    p2 = two.pos[two.pos.position <= 2 * n + 1]
    used2 = p2[p2["fail %"] > 0]
    rows = [B1.row(len(used2), profile, tokens=", ".join(used2.token) or "none", model_acc=acc2)]
    own1 = min(circuits.best_pair_attention(one.att, k, k)[0] for k in range(n))
    rows.append(B2.row(own1, profile, model_acc=acc1))
    h2 = two.hyp
    for kind, claim in MAPPED_CLAIMS:
        rows.append(claim.row(100 * h2[h2.kind == kind].holds.mean(), profile, what=SUBTASK_TEXT[kind],
                              model_acc=acc2))
    sa = h2[(h2.kind == "SA") & h2.holds]
    rows.append(B6.row(100 * sa.node.str.contains(r"\+").mean() if len(sa) else np.nan, profile,
                              model_acc=acc2))
    rows.append(B7.row(100 * h2.holds.mean(), profile, model_acc=acc2))
    rows.append(B8.row(100 * one.hyp.holds.mean(), profile, hypotheses=one.hyp, model_acc=acc1))
    rows.append(B9.row(float(pca.silhouette.iloc[0]), profile, model_acc=acc2))
    return rows


# ------------------------------------------------------------------ notebook 08: subtraction and mixed models

C1 = Claim("C1", "subtraction-only model (the addition model's shape and budget): errors per 100k on {questions:,} "
           "uniform + enriched subtraction questions, against the addition model's {add_rate:.1f} on its own sets "
           "(paper 2: subtraction-only models are less accurate; holds {rule})",
           Rule("if it errs more", lambda v, add_rate, **_: v > add_rate))
def _came_first(first: float, second: float, when_both: Callable[[], bool]) -> bool | None:
    """Whether step count `first` came before `second`: when_both() if both were reached; if only one was, whether
    that one is `first`; if neither was (NaN both): cannot tell."""
    if math.isnan(first) or math.isnan(second):
        return None if math.isnan(first) and math.isnan(second) else not math.isnan(first)
    return when_both()


C2 = Claim("C2", "mixed model from scratch: step at which subtraction first reaches {target:g} % on its evaluation "
           "set, minus addition's (paper 2: addition is learned first; holds {rule}; addition at {add_step:,.0f}, "
           "subtraction at {sub_step:,.0f})",
           Rule("> 0, or addition alone reaches it", lambda v, add_step, sub_step, **_: _came_first(
               add_step, sub_step, lambda: v > 0)), nan="rule")
_BOTH = ("{model}: lowest accuracy (%) of the two operations on {questions:,} uniform + enriched questions each "
         "(paper 2: six 9s on both; holds {rule}; addition {add:.4f}, subtraction {sub:.4f})")
C3 = Claim("C3", _BOTH, at_least(99.9), 99.9999)
C4 = Claim("C4", _BOTH, at_least(99.9), 99.9999)
C5 = Claim("C5", "ins1 route: steps the from-scratch mixed model needs to reach {target:g} % on both operations' "
           "evaluation sets, divided by the ins1 model's (the papers' motivation: ins1 learns faster; holds {rule}; "
           "scratch {scratch:,.0f}, ins1 {ins1:,.0f} steps)",
           Rule("> 1, or ins1 alone reaches both", lambda v, scratch, ins1, **_: _came_first(
               ins1, scratch, lambda: v > 1)), nan="rule")
C6 = Claim("C6", "{model}: AUC of borrow-cascade length alone as a flag of its subtraction failures on the enriched "
           "set ({failures} failures; holds {rule})", at_least(0.9))
C7 = Claim("C7", "ins1 mixed model: nodes (position x head or MLP) whose ablation breaks both addition and "
           "subtraction questions (>= 1 % each), of {useful} that break any (paper 2: addition nodes become "
           "polysemantic and serve both; holds {rule})", at_least(1))
SUB_SUBTASK_TEXT = {"MD": "base difference (Dk - D'k) mod 10", "MB": "borrow from column k-1",
                    "MT": "borrow passed on through an equal-digit column (tri-state)", "SGN": "sign decided at '='"}
C8 = Claim("C8", "ins1 mixed model: subtraction sub-task hypotheses (%) that hold by intervention ({held} of {total}: "
           "MD {MD}, MB {MB}, MT {MT}, sign {SGN}; paper 2 maps each to nodes; holds {rule})",
           Rule("all", lambda v, **_: v == 100), 100.0)
C9 = Claim("C9", "ins1 mixed model: heads (at a position) that compute an addition sub-task in the addition model "
           "and, after ins1 training, a subtraction one ({still} of them still compute an addition sub-task; "
           "of {add_nodes} addition and {sub_nodes} subtraction heads confirmed; paper 2: polysemantic addition "
           "nodes; holds {rule})", at_least(1))


def subtraction_subtask_rows(add_hyp: pd.DataFrame, ins1_add_hyp: pd.DataFrame, ins1_sub_hyp: pd.DataFrame,
                             profile: str, model_acc: float) -> list[dict]:
    """C8 and C9 on one seed's models: the addition model's (add_hyp) and the ins1 model's addition and subtraction
    hypotheses (circuits.hypotheses tables). A head pair confirmed for one hypothesis counts as both heads; the
    ins1 model's first heads are the addition model's, copied (insertion.py), so a head keeps its name."""
    from . import circuits  # torch: only when rows are measured

    counts = {kind: f"{int(g.holds.sum())}/{len(g)}" for kind, g in ins1_sub_hyp.groupby("kind", sort=False)}
    rows = [C8.row(100 * ins1_sub_hyp.holds.mean(), profile, held=int(ins1_sub_hyp.holds.sum()),
                   total=len(ins1_sub_hyp), **{k: counts.get(k, "0/0") for k in SUB_SUBTASK_TEXT},
                   model_acc=model_acc)]
    add, sub, still = (circuits.confirmed_nodes(h) for h in (add_hyp, ins1_sub_hyp, ins1_add_hyp))
    rows.append(C9.row(len(add & sub), profile, still=len(add & sub & still), add_nodes=len(add), sub_nodes=len(sub),
                       model_acc=model_acc))
    return rows
