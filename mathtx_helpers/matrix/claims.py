"""The matrix paper's claims (PAPER.md §G) as notebooks 03-05 judge them: statement, paper value, rule.

Each is a core.claims.Claim; a notebook measures `ours` (and the context a statement shows) and calls
`CLAIM.row(ours, profile, ci=..., **context)`. The thresholds live here, once, beside their wording.
"""

from __future__ import annotations

import math

from .. import paper
from ..core.claims import Claim, Rule, at_least, at_most, below
from .failures import ORTHOGONAL, failed

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
G8 = Claim("G8", "{model}: % of predictions with eigenvalue or norm error >= 25 % or invalid (holds: {rule}, the "
           "paper's own 2 + 4 of 50,000; its text says <= 0.01 %)", at_most(0.012), paper.G_SHARES["G8"])
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


# the paper's words, "almost all failures can be predicted", read as a share: one row per task, id "predict most {task}"
PREDICT_MOST = Claim("predict most", "{task}: % of failures caught at 5 % false alarms by the best feature family "
                     "({family}), held-out half (paper: almost all failures are predictable; holds: {rule})",
                     at_least(90))


def predict_id(task: str, family: str) -> str:
    return f"predict {task} {family}"


def best_family(summary, task: str) -> tuple[str, float, float] | None:
    """The feature family that catches most of `task`'s failures at 5 % false alarms in features.predict_table's
    summary: (family, share caught, its AUC); None where no family could be measured (no failures or no
    successes in the held-out half)."""
    s = summary[summary.task == task].set_index("features")
    caught = s["caught at 5% false alarms"]
    if not caught.notna().any():
        return None
    family = caught.idxmax()
    return family, float(caught[family]), float(s.AUC[family])


def family_text(family: str) -> str:
    return "all three feature families together" if family == "all" else f"the {family} features"


# ------------------------------------------------------------------ notebook 05: result 3, out of distribution

OWN_SPECTRUM_BAR = 90  # a model "learned its own spectrum" at this accuracy (%) at 5 %: the cpu profile's bar

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
# the paper's 92 % model and its ~70 % one
BAR_EIGENVECTORS = Claim("bar eigenvectors", "eigen-decomposition model{label} {rule} % at 5 %",
                         Rule("in [90, 95]", lambda v, **_: 90 <= v <= 95))
BAR_WEAKER = Claim("bar weaker", "weaker eigen-decomposition snapshot {rule} % at 5 %",
                   Rule("in [65, 75]", lambda v, **_: 65 <= v <= 75))
BAR_INVERSION = Claim("bar inversion", "inversion model {rule} % at 5 %", at_least(50))
BAR_OWN_SPECTRUM = Claim("bar own spectrum", "eigenvalues-{spectrum} {rule} % at 5 % on its own spectrum",
                         at_least(OWN_SPECTRUM_BAR))


def bar_met(bar: Claim, value: float, **context) -> bool:
    return bar.verdict(value, **context) == "yes"


# ------------------------------------------------------------------ the rows each notebook writes, per model
# One function per notebook, called once per seed's models; core.claims.with_seeds then joins the seeds.


def accuracy(df) -> float:
    """A predictions table's accuracy (%) at 5 %: the model_acc of the rows measured on it."""
    return 100 * float((~failed(df)).mean()) if len(df) else math.nan


def share(shares, key: str) -> tuple[float, tuple[float, float]]:
    """A failure share (%) and its interval from failures.failure_shares; NaN where there were no failures."""
    if shares.empty or key not in set(shares.key) or shares.set_index("key").loc[key, "of"].startswith("0 "):
        return math.nan, (math.nan, math.nan)
    r = shares.set_index("key").loc[key]
    return r["share %"], (r["ci low %"], r["ci high %"])


def result1_rows(shares: dict, accuracies: dict, profile: str) -> list[dict]:
    """Notebook 03's rows. shares: table name ('eigenvectors', 'eigenvectors (weaker)', 'inversion',
    'eigenvalues') -> its failures.failure_shares; accuracies: the same names -> accuracy (%) at 5 %."""
    rows = []
    for name, s in shares.items():
        if not name.startswith("eigenvectors"):
            continue
        weaker = name != "eigenvectors"  # the weaker snapshot's rows: their own ids, no paper value
        tag = " (weaker)" if weaker else ""
        acc = accuracies[name]
        for claim, key in SHARE_CLAIMS:
            v, ci = share(s, key)
            rows.append(claim.row(v, profile, ci=ci, model=name, model_acc=acc,
                                  **({"id": claim.id + tag, "paper": None} if weaker else {})))
        wrong = 100 - share(s, "eigenvalues within 2%")[0]
        for key, measure in (("not orthogonal (adjacent)", "adjacent-row proxy"),
                             ("not orthogonal (full)", "max|V^T V - I|")):
            v, ci = share(s, key)
            full = "full" in key
            rows.append(G3.row(v, profile, ci=ci, model=name, measure=measure, wrong_eigenvalues=wrong,
                               model_acc=acc, id="G3" + tag + (" full" if full else ""),
                               paper=None if weaker or full else "default"))
    if "inversion" in shares:
        v, ci = share(shares["inversion"], "near miss 25%")
        rows.append(INVERSION_NEAR_MISS.row(v, profile, ci=ci, model_acc=accuracies["inversion"]))
    if "eigenvalues" in shares:
        v, ci = share(shares["eigenvalues"], "near miss 10%")
        rows.append(EIGENVALUES_NEAR_MISS.row(v, profile, ci=ci, model_acc=accuracies["eigenvalues"]))
    return rows


def result2_rows(g4: dict, g5: dict | None, summary, accuracies: dict, profile: str, threshold: float) -> list[dict]:
    """Notebook 04's rows. g4: features.cond_V_rule's measures of the eigen-decomposition table (empty: none);
    g5: the inversion measures ('ratio', 'above'; None: no inversion table); summary: features.predict_failures'
    table with a 'task' column; accuracies: task -> accuracy (%) at 5 % of its model."""
    rows = []
    if g4:
        acc = accuracies["eigenvectors"]
        rows.append(G4_FPR.row(g4["fpr"], profile, ci=g4["fpr_ci"], threshold=threshold, model_acc=acc))
        rows.append(G4_FNR.row(g4["fnr"], profile, ci=g4["fnr_ci"], threshold=threshold, model_acc=acc))
        rows.append(G4_MAX.row(g4["max_ok"], profile, model_acc=acc))
    if g5 is not None:
        acc = accuracies["inversion"]
        rows.append(G5_RATIO.row(g5.get("ratio", math.nan), profile, model_acc=acc))
        rows.append(G5_TAIL.row(g5.get("above", math.nan), profile, model_acc=acc))
    for _, s in summary.iterrows():
        rows.append(PREDICT.row(s.AUC, profile, ci=(s["AUC ci low"], s["AUC ci high"]),
                                id=predict_id(s.task, s.features), task=s.task, what=family_text(s.features),
                                model_acc=accuracies[s.task]))
    for task in dict.fromkeys(summary.task):
        best = best_family(summary, task)
        family, caught = (best[0], 100 * best[1]) if best else ("none measurable", math.nan)
        rows.append(PREDICT_MOST.row(caught, profile, id=f"predict most {task}", task=task, family=family,
                                     model_acc=accuracies[task]))
    return rows


G6_CELLS = (("laplace", "semicircle"), ("laplace", "positive"), ("semicircle", "laplace"),
            ("semicircle", "positive"), ("laplace", "laplace"), ("semicircle", "semicircle"))
G7_TARGETS = ("50%", "80%")


def g7_faster(speed) -> dict:
    """target -> (examples the semicircle run needed to reach it on the semicircle test set, the runs that
    needed fewer: a Series run -> examples). speed: notebook 05's table (index: training spectrum, columns
    'semicircle 50%', ...: examples to first reach the target, NaN if never)."""
    out = {}
    for t in G7_TARGETS:
        own = speed.loc["semicircle", f"semicircle {t}"]
        others = speed.drop(index="semicircle")[f"semicircle {t}"]
        out[t] = (own, others[others < own] if not math.isnan(own) else others.dropna())
    return out


def result3_rows(cell, speed, spectra, profile: str) -> list[dict]:
    """Notebook 05's rows for one seed's seven eigenvalue models. cell(train, test) -> (accuracy % at 5 %,
    (ci low, ci high)); speed: see g7_faster."""
    rows = []
    lap_own, semi_own = cell("laplace", "laplace")[0], cell("semicircle", "semicircle")[0]
    for te in ("semicircle", "positive"):
        v, ci = cell("laplace", te)
        rows.append(G6A.row(v, profile, ci=ci, id=f"G6a {te}", test=te, own=lap_own, model_acc=lap_own))
    semi_both = (cell("semicircle", "laplace")[0], cell("semicircle", "positive")[0])
    for te in ("laplace", "positive"):
        v, ci = cell("semicircle", te)
        rows.append(G6B.row(v, profile, ci=ci, id=f"G6b {te}", test=te, own=semi_own, both=semi_both,
                            model_acc=semi_own))
    for t, (own, faster) in g7_faster(speed).items():
        reached = speed.drop(index="semicircle")[f"semicircle {t}"].dropna()
        best = reached.min() if len(reached) else math.nan  # NaN: no other run reached the target in its budget
        rows.append(G7.row(best, profile, id=f"G7 {t}", target=t, own=own, faster=", ".join(faster.index) or "none"))
    for sp in spectra:
        v, ci = cell(sp, sp)
        rows.append(IN_DISTRIBUTION.row(v, profile, ci=ci, id=f"in-distribution {sp}", spectrum=sp, model_acc=v))
    return rows
