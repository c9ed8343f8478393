"""Claims: rules decide verdicts (NaN is "cannot tell" unless a claim's rule judges it), statements render
their thresholds from the rule, the committed CSVs' wording comes out of the definitions, rows become a CSV."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mathtx_helpers import paper
from mathtx_helpers.arith import claims as A
from mathtx_helpers.core import claims as C
from mathtx_helpers.core import store
from mathtx_helpers.matrix import claims as M

NAN = math.nan


def committed(notebook: str) -> pd.DataFrame:
    path = store.FIGURES / f"{notebook}_claims.csv"
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).set_index("claim")


def test_simple_rules_judge_their_threshold_and_nan_is_cannot_tell():
    assert [C.at_least(99)(v) for v in (98.99, 99, 100)] == [False, True, True]
    assert [C.at_most(3)(v) for v in (2.9, 3, 3.1)] == [True, True, False]
    assert [C.below(1.2)(v) for v in (1.19, 1.2)] == [True, False]
    assert [C.between(99, 99.9)(v) for v in (98.9, 99, 99.89, 99.9)] == [False, True, True, False]
    assert C.at_least(0.9).text == ">= 0.9" and C.between(99, 99.9).text == "99 to 99.9"
    assert M.G1.verdict(99.5, model="m") == "yes" and M.G1.verdict(88.0, model="m") == "no"
    assert M.G1.verdict(NAN, model="m") == C.CANNOT_TELL
    assert M.G1.row(99.5, "cpu", judged=False, model="m")["holds"] == C.CANNOT_TELL


def test_composite_rules_use_their_context():
    # G3: orthogonality breaks only counts while the eigenvalues stayed right
    assert M.G3.verdict(80, wrong_eigenvalues=1.0) == "yes"
    assert M.G3.verdict(80, wrong_eigenvalues=11.3) == "no"
    # G6b: judged only on a model that learned its own spectrum; either test set at <= 50 suffices
    assert M.G6B.verdict(33.8, both=(33.8, 9.1), own=96.1) == "yes"
    assert M.G6B.verdict(60, both=(60, 70), own=96.1) == "no"
    assert M.G6B.verdict(33.8, both=(33.8, 9.1), own=40) == C.CANNOT_TELL
    assert M.G6B.verdict(30, both=(NAN, 30.0), own=95) == "yes"  # an unmeasured test set does not hide the other
    assert M.G1.verdict(np.float32("nan"), model="m") == C.CANNOT_TELL
    assert M.G1.verdict(pd.NA, model="m") == C.CANNOT_TELL
    # G7: no other run reaching the target is a "no", unless the semicircle run did not reach it either
    assert M.G7.verdict(NAN, own=250_048) == "no"
    assert M.G7.verdict(NAN, own=NAN) == C.CANNOT_TELL
    assert M.G7.verdict(200_000, own=250_048) == "yes" and M.G7.verdict(300_000, own=250_048) == "no"
    assert M.G7.verdict(300_000, own=NAN) == "yes"
    # A1: zero errors, whatever the share rounds to
    assert A.A1.verdict(100.0, questions=10, errors=0) == "yes"
    assert A.A1.verdict(99.99, questions=10, errors=1) == "no"
    assert A.A5.verdict(90, short=99.5) == "yes" and A.A5.verdict(90, short=98) == "no"
    h = pd.DataFrame({"kind": ["SA", "SC", "ST"], "holds": [True, True, False]})
    assert A.B8.verdict(66.7, hypotheses=h) == "yes"
    assert A.B8.verdict(66.7, hypotheses=h.assign(holds=[True, False, True])) == "no"


def renders(claim, statement: str, **context) -> bool:
    """Whether a committed statement is the claim's template with its rule's text, the given context, and any
    value for the other fields (the measured numbers a statement shows change with every rerun)."""
    import re

    parts = re.split(r"(\{[^{}]*\})", claim.statement)
    pattern = ""
    for part in parts:
        name = part[1:-1].split(":")[0] if part.startswith("{") else None
        if name is None:
            pattern += re.escape(part)
        elif name == "rule":
            pattern += re.escape(claim.rule.text)
        elif name in context:
            pattern += re.escape(format(context[name], part[1:-1].partition(":")[2]))
        else:
            pattern += ".+?"
    return re.fullmatch(pattern, statement) is not None


def test_the_definitions_render_the_committed_statements():
    """The committed CSVs' wording comes out of the definitions (the rules moved out of the notebooks)."""
    nb3, nb4 = committed("03_failure_analysis"), committed("04_failure_prediction")
    nb5, nb6, nb7 = committed("05_ood_generalization"), committed("06_arithmetic"), committed("07_arithmetic_circuits")

    for claim, _ in M.SHARE_CLAIMS:
        assert claim.text(model="eigenvectors") == nb3.statement[claim.id]
        assert claim.text(model="eigenvectors (weaker)") == nb3.statement[claim.id + " (weaker)"]
        assert claim.paper == nb3.paper[claim.id]
    assert renders(M.G3, nb3.statement["G3"], model="eigenvectors", measure="adjacent-row proxy")
    assert not renders(M.G3, nb3.statement["G3"], model="eigenvectors (weaker)")  # the check can fail
    assert M.G4_FPR.text(threshold=paper.E1_COND_V_THRESHOLD) == nb4.statement["G4 fpr"]
    assert M.G4_MAX.text() == nb4.statement["G4 max"] and M.G5_TAIL.text() == nb4.statement["G5 tail"]
    assert M.PREDICT.text(task="eigenvalues", what=M.family_text("all")) == nb4.statement["predict eigenvalues all"]
    assert renders(M.PREDICT_MOST, nb4.statement["predict most eigenvectors"], task="eigenvectors")
    assert renders(M.G6B, nb5.statement["G6b laplace"], test="laplace")
    assert renders(M.G7, nb5.statement["G7 50%"], target="50%")
    assert M.IN_DISTRIBUTION.text(spectrum="marcenko") == nb5.statement["in-distribution marcenko"]
    assert renders(A.A1, nb6.statement["A1"]) and A.A3.text() == nb6.statement["A3"]
    assert renders(A.A4, nb6.statement["A4"])
    for kind, claim in A.MAPPED_CLAIMS:
        assert claim.text(what=A.SUBTASK_TEXT[kind]) == nb7.statement[claim.id]
    assert A.B8.text() == nb7.statement["B8"] and A.B9.text() == nb7.statement["B9"]


def test_the_rules_reproduce_the_committed_verdicts():
    nb3, nb4, nb6 = committed("03_failure_analysis"), committed("04_failure_prediction"), committed("06_arithmetic")
    for claim, _ in M.SHARE_CLAIMS:
        for cid in (claim.id, claim.id + " (weaker)"):
            assert claim.verdict(nb3.ours[cid], model="m") == nb3.holds[cid], cid
    for cid, claim in (("G4 fpr", M.G4_FPR), ("G4 fnr", M.G4_FNR), ("G4 max", M.G4_MAX), ("G5 ratio", M.G5_RATIO)):
        assert claim.verdict(nb4.ours[cid], threshold=1.035) == nb4.holds[cid], cid
    assert A.A2.verdict(nb6.ours["A2"]) == nb6.holds["A2"] and A.A3.verdict(nb6.ours["A3"]) == nb6.holds["A3"]
    assert A.A4.verdict(nb6.ours["A4"]) == nb6.holds["A4"] and A.A6.verdict(nb6.ours["A6"]) == nb6.holds["A6"]


def test_almost_all_failures_predictable_is_read_on_the_family_that_catches_most():
    summary = pd.DataFrame({"task": ["eigenvectors"] * 3 + ["inversion"],
                            "features": ["problem", "solution", "all", "all"],
                            "AUC": [0.70, 0.95, 0.97, NAN], "AUC ci low": [0.6, 0.9, 0.95, NAN],
                            "AUC ci high": [0.8, 0.97, 0.98, NAN],
                            "caught at 5% false alarms": [0.2, 0.93, 0.88, NAN]})
    assert M.best_family(summary, "eigenvectors") == ("solution", 0.93, 0.95)  # not the best AUC's family
    assert M.best_family(summary, "inversion") is None
    rows = {r["claim"]: r for r in M.result2_rows({}, None, summary, {"eigenvectors": 90.0, "inversion": 0.0},
                                                  "smoke", 1.035)}
    most = rows["predict most eigenvectors"]
    assert most["ours"] == pytest.approx(93.0) and most["holds"] == "yes" and "(solution)" in most["statement"]
    assert rows["predict most inversion"]["holds"] == "cannot tell" and rows["predict most inversion"]["model_acc"] == 0
    assert rows["predict eigenvectors all"]["holds"] == "yes"  # the AUC rows stay beside it


def test_rows_become_a_claims_csv(tmp_path, monkeypatch):
    monkeypatch.setenv(store.FIGURES_ENV, str(tmp_path))
    rows = [M.G1.row(99.5, "smoke", ci=(99.0, 99.9), model="eigenvectors"),
            M.G5_RATIO.row(NAN, "smoke"),
            M.G1.row(98.0, "smoke", model="eigenvectors (weaker)", id="G1 (weaker)", paper=None)]
    df = C.write_claims(rows, "03_test", "data/figures/smoke")
    back = pd.read_csv(tmp_path / "03_test_claims.csv", keep_default_na=False, na_values=[""])
    assert list(back.columns) == list(C.CLAIM_COLUMNS) and df.shape == back.shape
    assert back.holds.tolist() == ["yes", "cannot tell", "no"]
    assert back.claim.tolist() == ["G1", "G5 ratio", "G1 (weaker)"]
    assert back.paper[0] == paper.G_SHARES["G1"] and math.isnan(back.paper[1]) and math.isnan(back.paper[2])
    assert back.statement[0] == "eigenvectors: % of failures at 5 % with eigenvalues within 2 % (holds: >= 99)"
    with pytest.raises(ValueError, match="claim id"):
        C.write_claims([], "03_test", "data/figures/smoke")
    with pytest.raises(ValueError, match="'smoke' is not a figures folder"):  # a profile name, the old signature
        C.write_claims(rows, "03_test", "smoke")


# ------------------------------------------------------------------------------------------ seeds and model accuracy


def test_with_seeds_joins_each_claim_across_seeds_and_marks_changed_verdicts():
    seed0 = [M.G1.row(99.5, "cpu", model="eigenvectors", model_acc=92.0),
             M.G1.row(97.0, "cpu", model="eigenvectors (weaker)", id="G1 (weaker)", paper=None, model_acc=70.0),
             M.G4_MAX.row(1.1, "cpu", model_acc=92.0)]
    seed1 = [M.G1.row(98.0, "cpu", model="eigenvectors", model_acc=90.5), M.G4_MAX.row(1.15, "cpu", model_acc=90.5)]
    rows = C.with_seeds({0: seed0, 1: seed1})
    assert [r["claim"] for r in rows] == ["G1", "G1 (weaker)", "G4 max"]  # seed 0's rows, in its order
    assert [r["ours"] for r in rows] == [99.5, 97.0, 1.1] and rows[0]["model_acc"] == 92.0
    assert [r["seeds"] for r in rows] == ["99.5 / 98", "97 / —", "1.1 / 1.15"]
    assert [r["seed_holds"] for r in rows] == ["yes / no", "no / —", "yes / yes"]
    assert [r["seed_model_acc"] for r in rows] == ["92 / 90.5", "70 / —", "92 / 90.5"]  # each row's own models
    assert [C.changes_with_seed(r["seed_holds"]) for r in rows] == [True, False, False]
    spread = C.seed_spread(rows)
    assert spread["changes with the seed"].tolist() == [True, False, False]
    assert spread["model acc %"].tolist() == [92.0, 70.0, 92.0]
    assert spread["model acc % on each seed"].tolist() == ["92 / 90.5", "70 / —", "92 / 90.5"]
    assert C.seed_spread_summary(spread) == "1 of 3 claims change their verdict with the seed: G1"
    # one seed: unchanged rows, empty seed columns, and the summary says there is nothing to compare (not "0 of 3")
    assert C.with_seeds({0: seed0}) == seed0 and seed0[0]["seeds"] == seed0[0]["seed_model_acc"] == ""
    assert not C.changes_with_seed("")
    one = C.seed_spread_summary(C.seed_spread(seed0))
    assert one == "only one seed's model was measured: no seed-to-seed comparison yet"
    with pytest.raises(ValueError, match="same claim id"):
        C.with_seeds({0: seed0, 1: seed1 + seed1[:1]})


def test_result3_rows_judge_each_seed_on_its_own_models():
    """G6a, G6b, G7 and the in-distribution bars from a (train, test) accuracy table and a speed table."""
    spectra = ("semicircle", "laplace", "positive")
    acc = {("laplace", "laplace"): 95.0, ("laplace", "semicircle"): 93.0, ("laplace", "positive"): 91.0,
           ("semicircle", "semicircle"): 99.0, ("semicircle", "laplace"): 40.0, ("semicircle", "positive"): 20.0,
           ("positive", "positive"): 85.0, ("positive", "semicircle"): 60.0, ("positive", "laplace"): 50.0}

    def cell(tr, te):
        return acc[tr, te], (acc[tr, te] - 1, acc[tr, te] + 1)

    speed = pd.DataFrame({"semicircle 50%": [200_000, 150_000, NAN], "semicircle 80%": [300_000, NAN, NAN]},
                         index=pd.Index(spectra, name="train"))
    rows = {r["claim"]: r for r in M.result3_rows(cell, speed, spectra, "cpu")}
    assert rows["G6a semicircle"]["holds"] == rows["G6a positive"]["holds"] == "yes"
    assert rows["G6a semicircle"]["model_acc"] == 95.0  # the Laplace model's own accuracy
    assert rows["G6b laplace"]["holds"] == "yes" and rows["G6b laplace"]["model_acc"] == 99.0
    assert rows["G7 50%"]["ours"] == 150_000 and rows["G7 50%"]["holds"] == "yes"
    assert math.isnan(rows["G7 80%"]["ours"]) and rows["G7 80%"]["holds"] == "no"  # nobody else reached 80 %
    assert math.isnan(rows["G7 50%"]["model_acc"])  # several models
    assert [rows[f"in-distribution {sp}"]["holds"] for sp in spectra] == ["yes", "yes", "no"]  # bar: 90 %
    # a semicircle model under the bar: "does not generalize" cannot be judged on it
    acc["semicircle", "semicircle"] = 60.0
    rows = {r["claim"]: r for r in M.result3_rows(cell, speed, spectra, "cpu")}
    assert rows["G6b laplace"]["holds"] == "cannot tell"


def test_cond_V_rule_counts_false_alarms_and_misses():
    from mathtx_helpers.matrix import features

    # successes: cond 1.0, 1.0, 1.2 (one false alarm at 1.035); failures: 1.5, 1.01 (one miss), NaN (flagged)
    vec = pd.DataFrame({"err": [0.0, 0.01, 0.02, 0.5, 0.3, NAN], "cond_V": [1.0, 1.0, 1.2, 1.5, 1.01, NAN]})
    g4 = features.cond_V_rule(vec, np.random.default_rng(0), 1.035)
    assert g4["fpr"] == pytest.approx(100 / 3) and g4["fnr"] == pytest.approx(100 / 3)
    assert g4["max_ok"] == 1.2
    assert g4["fpr_ci"][0] <= g4["fpr"] <= g4["fpr_ci"][1]
