"""The shared analyses of notebooks 03-05, on predictions whose properties are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mathtx_helpers.core import stats
from mathtx_helpers.matrix import curves, encoding, failures, features, predict, tasks


def table(problems: tasks.Problems, P: np.ndarray) -> pd.DataFrame:
    valid = np.isfinite(P).all(axis=(1, 2))
    B = len(problems)
    tokens = np.zeros((B, 3), dtype=np.int64)
    logp = np.full((B, 3), -0.1)
    return predict.predictions_table(problems, P, valid, tokens, logp, eos=0)


@pytest.fixture(scope="module")
def eigvec_table():
    """100 eigen-decompositions: 60 exact, 30 with one unit eigenvector tilted towards another (exact eigenvalues),
    8 with doubled eigenvalues (exact eigenvectors: absurd), 2 invalid."""
    probs = tasks.make_problems("eigenvectors", 3, 100, np.random.default_rng(0), "semicircle", "FP15", "P1000")
    A = probs.A.astype(float)
    lam, V = np.linalg.eigh(A)  # exact for the rounded input
    P = np.concatenate([lam[:, None, :], V], axis=1)  # row 0 eigenvalues, then eigenvectors in the columns
    # mix eigenvector i with s * eigenvector j (j: the largest |eigenvalue|), renormalised: unit, cos 0.33 to
    # v_j, rows within 18 % of unit norm, and V^T A V gets off-diagonal entries s|l_j|/sqrt(1+s^2): err > 20 %
    s = 0.35
    for b in range(60, 90):
        j = int(np.abs(lam[b]).argmax())
        i = (j + 1) % 3
        P[b, 1:, i] = (V[b, :, i] + s * V[b, :, j]) / np.sqrt(1 + s * s)
    P[90:98, 0] *= 2
    P[98:] = np.nan
    return table(probs, P)


def test_share_ci_brackets_the_share_with_the_binomial_width():
    rng = np.random.default_rng(1)
    mask = np.zeros(1000, dtype=bool)
    mask[:300] = True
    p, lo, hi = stats.share_ci(mask, rng)
    assert p == 0.3 and lo < 0.3 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.3 * 0.7 / 1000), rel=0.15)
    assert all(math.isnan(x) for x in stats.share_ci(np.array([], bool), rng))


def test_bootstrap_ci_of_a_mean_agrees_with_share_ci():
    rng = np.random.default_rng(2)
    x = (np.arange(500) % 4 == 0).astype(float)
    value, lo, hi = stats.bootstrap_ci(np.mean, x, rng=rng, n_boot=2000)
    _, lo2, hi2 = stats.share_ci(x.astype(bool), rng)
    assert value == 0.25 and lo == pytest.approx(lo2, abs=0.012) and hi == pytest.approx(hi2, abs=0.012)
    with pytest.raises(ValueError, match="same length"):
        stats.bootstrap_ci(np.mean, x, x[:10], rng=rng)


def test_property_table_counts_what_was_built(eigvec_table):
    t = failures.property_table(eigvec_table).set_index("tolerance")
    assert t.loc["5%", "accuracy correct"] == 60 and t.loc["5%", "accuracy %"] == 60
    assert t.loc["5%", "eigenvalues wrong"] == 10  # 8 doubled + 2 invalid
    assert t.loc["0.5%", "accuracy %"] == 60  # exact answers pass at every tolerance
    assert list(t.index)[0] == "0.5%" and len(t) == len(tasks.TABLE_TOLERANCES)
    assert (t["accuracy %"].diff().dropna() >= 0).all()  # looser tolerance, never fewer passes


def test_failure_shares_of_known_failures(eigvec_table):
    s = failures.failure_shares(eigvec_table, np.random.default_rng(3)).set_index("key")
    assert s.loc["eigenvalues within 2%", "count"] == 30 and s.loc["eigenvalues within 2%", "share %"] == 75
    assert s.loc["not orthogonal (full)", "count"] == 32  # the 30 skewed, and the 2 invalid (fail everything)
    assert s.loc["not orthogonal (adjacent)", "count"] <= 32  # a proxy: adjacent rows of V_hat only
    assert s.loc["absurd", "count"] == 10 and s.loc["absurd", "of"] == "100 predictions"
    assert (s["ci low %"] <= s["share %"]).all() and (s["share %"] <= s["ci high %"]).all()


def test_failure_shares_of_eigenvalue_near_misses():
    probs = tasks.make_problems("eigenvalues", 3, 40, np.random.default_rng(4), "semicircle", "FP15", "P1000")
    P = probs.target.astype(float).copy()
    P[:10] *= 1.08  # 8 % off: a near miss
    P[10:15] *= -3  # absurd
    s = failures.failure_shares(table(probs, P), np.random.default_rng(5)).set_index("key")
    assert s.loc["near miss 10%", "count"] == 10 and s.loc["near miss 10%", "of"] == "15 failures at 5%"
    assert s.loc["absurd", "count"] == 5


def test_threshold_rates_and_split_stats():
    score = np.array([1.0, 1.01, 1.02, 1.5, 2.0, np.nan])
    fail = np.array([False, False, True, True, True, True])
    fpr, fnr = features.threshold_rates(score, fail, 1.015)
    assert fpr == 0 and fnr == 0  # 1.02 > 1.015 is flagged, and so is the NaN
    fpr, fnr = features.threshold_rates(score, fail, 1.6)
    assert fpr == 0 and fnr == 0.5
    st = features.split_stats(score, fail)
    assert st["success max"] == 1.01 and st["failure min"] == 1.02 and st["failures"] == 4


def test_a_separating_feature_predicts_failures_and_noise_does_not():
    rng = np.random.default_rng(6)
    fail = rng.random(2000) < 0.2
    families = {"separating": pd.DataFrame({"x": fail + rng.normal(0, 0.05, 2000)}),
                "noise": pd.DataFrame({"x": rng.normal(size=2000)})}
    summary, roc = features.predict_failures(families, fail, seed=0, n_boot=50)
    s = summary.set_index("features")
    assert s.loc["separating", "AUC"] == 1.0 and s.loc["separating", "caught at 1% false alarms"] == 1.0
    assert abs(s.loc["noise", "AUC"] - 0.5) < 0.1
    assert s.loc["noise", "AUC ci low"] < 0.5 < s.loc["noise", "AUC ci high"]
    assert set(roc["features"]) == {"separating", "noise"} and s.loc["noise", "test"] == 1000


def test_predict_failures_without_both_classes_reports_nan():
    summary, roc = features.predict_failures({"x": pd.DataFrame({"x": np.arange(10.0)})}, np.zeros(10, bool), 0)
    assert math.isnan(summary.loc[0, "AUC"]) and roc.empty


def test_problem_and_solution_features():
    A = np.array([np.diag([3.0, 1.0, -2.0]), np.diag([5.0, 4.9, 0.0])])
    f = features.problem_features("eigenvalues", A)
    assert f["min eigen-gap"].tolist() == pytest.approx([2.0, 0.1]) and f["spectral radius"].tolist() == [3.0, 5.0]
    assert np.isinf(f["log10 |det A|"][1])
    probs = tasks.Problems("eigenvalues", "x", A, tasks.solve("eigenvalues", A))
    P = probs.target.copy()
    P[1] *= 1.5
    sol = features.solution_features("eigenvalues", table(probs, P), 3)
    assert sol.iloc[0].max() < 1e-12 and (sol.iloc[1] > 0.1).all()


def test_examples_to_reach():
    metrics = [{"examples": e, "acc": {"s": {"0.05": a}}} for e, a in [(100, 0.2), (200, 0.85), (300, 0.95)]]
    assert curves.examples_to_reach(metrics, "s", 0.8) == 200
    assert curves.examples_to_reach(metrics, "s", 0.9) == 300
    assert math.isnan(curves.examples_to_reach(metrics, "s", 0.99))


def test_prediction_tables_read_an_original_dump_and_refuse_a_missing_one(tmp_path):
    from test_dumps import write_dump

    from mathtx_helpers.profiles import get_profile

    probs = tasks.make_problems("eigenvectors", 5, 4, np.random.default_rng(8))
    exact = encoding.quantize(probs.target, "P1000")
    path = tmp_path / "eigenvectors_4.pred"
    write_dump(path, probs, ["perfect", exact[1], exact[2] * 1.3, "perfect"], judged=[1, 1, 0, 1])
    tables = failures.prediction_tables(get_profile("smoke"), str(path), "eigenvectors")
    assert list(tables) == ["eigenvectors"] and failures.matrix_size(tables["eigenvectors"]) == 5
    assert failures.failed(tables["eigenvectors"]).tolist() == [False, False, True, False]
    shares = failures.failure_shares(tables["eigenvectors"], np.random.default_rng(0))
    assert shares.set_index("key").loc["absurd", "of"] == "4 predictions"
    with pytest.raises(ValueError, match="is not a file; valid sources: 'ours'"):
        failures.prediction_tables(get_profile("smoke"), str(tmp_path / "nope.pred"))


def test_error_rate_upper_is_the_rule_of_three_at_zero_and_covers_the_truth():
    assert stats.error_rate_upper(0, 100_000) == pytest.approx(3 / 100_000, rel=0.01)
    assert stats.error_rate_upper(10, 10) == 1.0
    # coverage: over many binomial draws, the 95 % upper bound is above the true rate about 95 % of the time
    rng = np.random.default_rng(0)
    p, n = 0.002, 2_000
    covered = np.mean([stats.error_rate_upper(int(k), n) >= p for k in rng.binomial(n, p, 2_000)])
    assert 0.93 <= covered <= 0.995
    with pytest.raises(ValueError, match="errors <= n"):
        stats.error_rate_upper(5, 3)


def test_nines_count_leading_nines():
    assert [stats.nines(a) for a in (0.5, 0.985, 0.99, 0.99939, 0.999999)] == [0, 1, 2, 3, 6]
    assert stats.nines(1.0) == float("inf")


@pytest.mark.parametrize("levels", [3, 1000])  # heavy ties (a cascade length) and almost none (a confidence)
def test_auc_ci_is_the_bootstrap_of_sklearns_auc(levels):
    rng = np.random.default_rng(5)
    n = 400
    score = rng.integers(0, levels, n).astype(float)
    fail = rng.random(n) < 0.15 + 0.5 * (score > score.mean())  # informative, not perfect
    want = stats.bootstrap_ci(stats.auc, fail, score, rng=np.random.default_rng(9), n_boot=200)
    got = stats.auc_ci(fail, score, rng=np.random.default_rng(9), n_boot=200)
    assert got[0] == want[0] and 0.5 < got[0] < 1
    assert np.allclose(got[1:], want[1:], rtol=0, atol=1e-12)
    assert np.isnan(stats.auc_ci(np.zeros(5, bool), np.arange(5.0), rng=rng)[0])  # one class: no AUC


# --------------------------------------------------------------------------------------------------
# An eigenvalue prediction's mean, spread and shape
# --------------------------------------------------------------------------------------------------


def _spectra(rng, B=200, n=3):
    return -np.sort(-rng.normal(size=(B, n)) * 3, axis=1)


@pytest.mark.parametrize("n", [3, 5])
def test_spectrum_errors_see_a_shift_as_mean_a_stretch_as_spread_and_nothing_else(n):
    rng = np.random.default_rng(0)
    L = _spectra(rng, n=n)
    m, s, t = failures.spectrum_parts(L)
    np.testing.assert_allclose(m, L.mean(1))
    A = [np.diag(x) for x in L[:3]]  # the spread is sqrt(||A||_F^2 / n - mean^2) of any matrix with this spectrum
    np.testing.assert_allclose(s[:3], [np.sqrt((a ** 2).sum() / n - np.trace(a) ** 2 / n ** 2) for a in A])
    assert t.shape == (len(L), n - 2) and ((t >= 0) & (t <= 1)).all()
    exact = failures.spectrum_errors(L, L)
    assert (exact.to_numpy() == 0).all()
    shifted = failures.spectrum_errors(L, L + 0.7)
    np.testing.assert_allclose(shifted["mean"], 0.7 / np.abs(L).mean(1))
    np.testing.assert_allclose(shifted[["spread", "shape"]].to_numpy(), 0, atol=1e-12)
    mean = L.mean(1, keepdims=True)
    stretched = failures.spectrum_errors(L, mean + 1.3 * (L - mean))
    np.testing.assert_allclose(stretched["spread"], 0.3)
    np.testing.assert_allclose(stretched[["mean", "shape"]].to_numpy(), 0, atol=1e-12)


def test_a_middle_eigenvalue_moved_keeping_mean_and_spread_is_a_shape_error_only():
    L = np.array([[3.0, 1.0, -4.0]])
    m, s, t = failures.spectrum_parts(L)
    # the spectrum of mean 0 and spread s whose middle eigenvalue sits at 1/2 between the extremes: (1, 0, -1) * k
    other = np.array([[1.0, 0.0, -1.0]]) * s[0] / np.sqrt(2 / 3)
    e = failures.spectrum_errors(L, other)
    np.testing.assert_allclose(e[["mean", "spread"]].to_numpy(), 0, atol=1e-12)
    np.testing.assert_allclose(e["shape"], abs(0.5 - t[0, 0]))
    # and giving it back its true shape restores it exactly
    np.testing.assert_allclose(failures.with_true_shape(L, other), L)


def test_with_true_shape_keeps_the_predictions_mean_and_spread():
    rng = np.random.default_rng(1)
    L = _spectra(rng, n=4)
    L_hat = _spectra(rng, n=4)
    fixed = failures.with_true_shape(L, L_hat)
    e = failures.spectrum_errors(L, fixed)
    np.testing.assert_allclose(e["shape"], 0, atol=1e-12)
    got, want = failures.spectrum_parts(fixed), failures.spectrum_parts(L_hat)
    np.testing.assert_allclose(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1])


def test_missing_predictions_give_nan_errors():
    L = _spectra(np.random.default_rng(2), B=3)
    L_hat = L.copy()
    L_hat[1] = np.nan
    e = failures.spectrum_errors(L, L_hat)
    assert e.iloc[1].isna().all() and not e.iloc[[0, 2]].isna().any().any()


def test_spectrum_table_reads_prediction_tables():
    """The exact predictions score 100 % with no error; a shape-only error is repaired by the true shape and not by
    the true mean and spread; an invalid prediction fails and stays out of the medians."""
    rng = np.random.default_rng(3)
    L = _spectra(rng, B=50)
    m, s, _ = failures.spectrum_parts(L)
    middle = (m[:, None] + s[:, None] * np.array([1.0, 0.0, -1.0]) / np.sqrt(2 / 3))  # mean and spread kept, t = 1/2

    def table(P, valid):
        predictions = [p[:, None] if ok else None for p, ok in zip(P, valid, strict=True)]
        return pd.DataFrame({"reference": list(L), "prediction": predictions, "valid": valid})

    valid = np.ones(len(L), dtype=bool)
    broken = valid.copy()
    broken[0] = False
    t = failures.spectrum_table({("exact", 0): table(L, valid), ("middle", 0): table(middle, valid),
                                 ("exact", 1): table(L, broken)})
    assert t.loc[("exact", 0)].tolist() == [100.0, 0.0, 0.0, 0.0, 100.0, 100.0]
    row = t.loc[("middle", 0)]
    assert row["mean error"] < 1e-12 and row["spread error"] < 1e-12 and row["shape error"] > 0
    assert row["accuracy, true shape %"] == 100.0
    assert row["accuracy, true mean and spread %"] == row["accuracy %"] < 100.0
    assert t.loc[("exact", 1), "accuracy %"] == 98.0 and t.loc[("exact", 1), "shape error"] == 0.0
