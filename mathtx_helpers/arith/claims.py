"""The arithmetic papers' claims (ARITHMETIC.md) as notebooks 06-07 judge them: statement, paper value, rule.

Each is a core.claims.Claim; a notebook measures `ours` (and the context a statement shows) and calls
`CLAIM.row(ours, profile, ci=..., **context)`. The thresholds live here, once, beside their wording.
"""

from __future__ import annotations

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
