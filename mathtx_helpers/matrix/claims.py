"""The matrix paper's claims (PAPER.md §G) as notebooks 03-05 judge them: statement, paper value, rule.

Each is a core.claims.Claim; a notebook measures `ours` (and the context a statement shows) and calls
`CLAIM.row(ours, profile, ci=..., **context)`. The thresholds live here, once, beside their wording.
"""

from __future__ import annotations

import math

from .. import paper
from ..core.claims import Claim, Rule, at_least, at_most, below
from .failures import ORTHOGONAL

# ------------------------------------------------------------------ notebook 03: result 1, "roughly right"

# {model}: "eigenvectors" or "eigenvectors (weaker)"
G1 = Claim("G1", "{model}: % of failures at 5 % with eigenvalues within 2 % (holds: {rule})", at_least(99),
           paper.G_SHARES["G1"])
G1b = Claim("G1b", "{model}: % of failures with eigenvalues within 1 % (holds: {rule})", at_least(99),
            paper.G_SHARES["G1b"])
G2 = Claim("G2", "{model}: % of failures with every eigenvector norm within 5 % of 1 (holds: {rule})", at_least(98),
           paper.G_SHARES["G2"])
G2b = Claim("G2b", "{model}: % of failures with every norm within 2 % of 1 (holds: {rule})", at_least(95),
            paper.G_SHARES["G2b"])
G8 = Claim("G8", "{model}: % of predictions with eigenvalue or norm error >= 25 % or invalid (holds: {rule})",
           at_most(0.012), paper.G_SHARES["G8"])
# the shares of failures, in the order notebook 03 lists them: (claim, key of failures.failure_shares)
SHARE_CLAIMS = ((G1, "eigenvalues within 2%"), (G1b, "eigenvalues within 1%"), (G2, "norms within 5%"),
                (G2b, "norms within 2%"), (G8, "absurd"))

# G3: orthogonality is what breaks, which only means something if the eigenvalues stayed right
G3 = Claim("G3", "{model}: % of failures not orthogonal ({measure}, >= " + f"{ORTHOGONAL:g}" + "); holds: {rule} "
           "while <= 2 % of failures have wrong eigenvalues ({wrong_eigenvalues:.2f} %)",
           Rule(">= 50", lambda v, wrong_eigenvalues, **_: v >= 50 and wrong_eigenvalues <= 2), paper.G_SHARES["G3"])
INVERSION_NEAR_MISS = Claim("inversion near-miss", "inversion: % of failures within 25 % of the true inverse "
                            "(holds: {rule})", at_least(50))
EIGENVALUES_NEAR_MISS = Claim("eigenvalues near-miss", "eigenvalues: % of failures at 5 % with error below 10 % "
                              "(holds: {rule})", at_least(50))

# ------------------------------------------------------------------ notebook 04: result 2, failures are predictable

G4_FPR = Claim("G4 fpr", "eigenvectors: % of successes with cond(V_hat) > {threshold} (holds: {rule})", at_most(3),
               2.0)
G4_FNR = Claim("G4 fnr", "eigenvectors: % of failures with cond(V_hat) <= {threshold} (holds: {rule})", at_most(3),
               2.0)
G4_MAX = Claim("G4 max", "eigenvectors: largest cond(V_hat) of a success (holds: {rule})", below(1.2),
               paper.E1_COND_V["success max"])
G5_RATIO = Claim("G5 ratio", "inversion: median cond(A) of failures / of successes (holds: {rule})", at_least(5))
G5_TAIL = Claim("G5 tail", "inversion: % of failures with cond(A) above the successes' 90th percentile "
                "(holds: {rule})", at_least(90))
# one row per task and feature family: id "predict {task} {family}"; {what} says which features
PREDICT = Claim("predict", "{task}: AUC of failure prediction from {what}, held-out half (holds: {rule})",
                at_least(0.9))


def predict_id(task: str, family: str) -> str:
    return f"predict {task} {family}"


def family_text(family: str) -> str:
    return "all three feature families together" if family == "all" else f"the {family} features"


# ------------------------------------------------------------------ notebook 05: result 3, out of distribution

OWN_SPECTRUM_BAR = 80  # a model "learned its own spectrum" at this accuracy (%) at 5 %: the cpu profile's bar

G6A = Claim("G6a", "eigenvalues: Laplace-trained accuracy (%) at 5 % on the {test} test set (holds: {rule}; the model "
            "scores {own:.1f} % on its own Laplace test set)", at_least(90))
# "does not generalize" (<= 50 % on laplace or on positive) only means something for a model that learned its own
# spectrum: judged only when `own` >= OWN_SPECTRUM_BAR. `both`: its accuracy on the two test sets.
G6B = Claim("G6b", "eigenvalues: semicircle-trained accuracy (%) at 5 % on the {test} test set (holds: {rule} on "
            "laplace or positive, for a model at >= " + f"{OWN_SPECTRUM_BAR}" + " % on its own spectrum: {own:.1f} %)",
            Rule("<= 50", lambda v, both, own, **_: any(b <= 50 for b in both) if own >= OWN_SPECTRUM_BAR else None))


def _faster(best: float, own: float, **_) -> bool | None:
    """Some non-semicircle run reached the target on semicircle in fewer examples than the semicircle run (or
    reached it at all, when the semicircle run did not); neither reaching it: cannot tell."""
    if math.isnan(best):
        return None if math.isnan(own) else False
    return math.isnan(own) or best < own


G7 = Claim("G7", "eigenvalues: fewest examples a non-semicircle run needed to reach {target} at 5 % on the semicircle "
           "test set (— if none did; the semicircle run needed {own:,.0f}; holds: {rule}: {faster})",
           Rule("some run is faster", lambda v, own, **_: _faster(v, own)), nan="rule")
IN_DISTRIBUTION = Claim("in-distribution", "eigenvalues: {spectrum}-trained accuracy (%) at 5 % on its own test set "
                        "(holds: {rule}, the cpu profile's bar)", at_least(OWN_SPECTRUM_BAR))

# ------------------------------------------------------------------ notebook 02: the profile's own bars

# Not the paper's claims: what the reference models must reach for the claims read on them to say something.
# {label} names the model; a bar is met or not (an unmeasured model has not met it).
BAR_MAIN_EIGENVALUES = Claim("bar eigenvalues", "eigenvalue model (semicircle) {rule} % at 5 %", at_least(90))
BAR_EIGENVECTORS = Claim("bar eigenvectors", "eigen-decomposition model {rule} % at 5 %",
                         Rule("in [70, 97]", lambda v, **_: 70 <= v <= 97))
BAR_WEAKER = Claim("bar weaker", "weaker eigen-decomposition snapshot {rule} % at 5 %",
                   Rule("in [50, 70]", lambda v, **_: 50 <= v <= 70))
BAR_INVERSION = Claim("bar inversion", "inversion model {rule} % at 5 %", at_least(50))
BAR_OWN_SPECTRUM = Claim("bar own spectrum", "eigenvalues-{spectrum} {rule} % at 5 % on its own spectrum",
                         at_least(OWN_SPECTRUM_BAR))


def bar_met(bar: Claim, value: float, **context) -> bool:
    return bar.verdict(value, **context) == "yes"
