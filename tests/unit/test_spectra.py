"""Random matrix ensembles and their eigenvalue laws (PAPER.md §B.2–B.4)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import quad

from mathtx_helpers.matrix import spectra as S

N_MOMENT = 20_000  # 5x5 matrices for the moment tests
ASYMPTOTIC = ("semicircle", "positive", "marcenko")


def _eigs(name: str, seed: int, batch: int, n: int) -> np.ndarray:
    M = S.symmetric_matrices(name, np.random.default_rng(seed), batch, n)
    return np.linalg.eigvalsh(M)  # (B, n)


@pytest.fixture(scope="module")
def semicircle_200() -> np.ndarray:
    return _eigs("semicircle", 11, 8, 200).ravel()


def test_laws_cover_exactly_the_spectra():
    assert set(S.EXACT_AT_EVERY_N) | set(ASYMPTOTIC) == set(S.SPECTRA)
    assert not set(S.EXACT_AT_EVERY_N) & set(ASYMPTOTIC)
    assert S.sigma(5) == pytest.approx(12.910, abs=1e-3) and S.sigma(6) == pytest.approx(14.142, abs=1e-3)


# --------------------------------------------------------------------------------------------------
# moments
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [s for s in S.SPECTRA if s != "marcenko"])
def test_second_moment_is_sigma_squared(name):
    n = 5
    lam = _eigs(name, 1, N_MOMENT, n)
    per_matrix = (lam**2).mean(axis=1)  # eigenvalues of one matrix are dependent: average them first
    mean, se = per_matrix.mean(), per_matrix.std(ddof=1) / np.sqrt(N_MOMENT)
    target = n * S.COEFF**2 / 3
    assert target == pytest.approx(S.sigma(n) ** 2)
    assert abs(mean - target) < 5 * se, (mean, target, se)
    assert se < 0.02 * target  # the test is sharp enough to mean something


def test_marcenko_first_moment():
    n = 5
    lam = _eigs("marcenko", 2, N_MOMENT, n)
    per_matrix = lam.mean(axis=1)
    mean, se = per_matrix.mean(), per_matrix.std(ddof=1) / np.sqrt(N_MOMENT)
    assert abs(mean - n * S.COEFF / 3) < 5 * se, (mean, se)
    # and its second moment is not matched to sigma^2 (PAPER.md §B.4: ~546 for n = 5)
    assert (lam**2).mean() > 2 * S.sigma(n) ** 2


# --------------------------------------------------------------------------------------------------
# laws (Kolmogorov-Smirnov)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", S.EXACT_AT_EVERY_N)
def test_exact_laws_at_n5(name):
    lam = _eigs(name, 3, 2_000, 5).ravel()
    res = stats.kstest(lam, S.eigenvalue_law(name, 5).cdf)
    assert res.pvalue > 1e-3, res


@pytest.mark.parametrize("name", ASYMPTOTIC)
def test_asymptotic_laws_at_n200(name):
    lam = _eigs(name, 4, 6, 200).ravel()
    res = stats.kstest(lam, S.eigenvalue_law(name, 200).cdf)
    assert res.statistic < 0.03, res


def test_ks_has_power(semicircle_200):
    """The same KS check rejects a wrong law of the same variance."""
    own = stats.kstest(semicircle_200, S.eigenvalue_law("semicircle", 200).cdf).statistic
    gauss = stats.kstest(semicircle_200, S.eigenvalue_law("gaussian", 200).cdf).statistic
    assert own < 0.03
    assert gauss > 0.035 and gauss > 4 * own, (own, gauss)
    # both laws really have the same variance: the difference is in the shape
    assert S.eigenvalue_law("semicircle", 200).var() == pytest.approx(S.eigenvalue_law("gaussian", 200).var())


def test_wrong_scale_is_rejected(semicircle_200):
    wrong = S.eigenvalue_law("semicircle", 150)  # radius 13% too small
    assert stats.kstest(semicircle_200, wrong.cdf).statistic > 0.04


@pytest.mark.parametrize("name", S.SPECTRA)
def test_laws_are_distributions(name):
    law = S.eigenvalue_law(name, 5)
    x = np.linspace(-200, 400, 6001)
    cdf = law.cdf(x)
    assert np.all(np.diff(cdf) >= -1e-12)
    assert cdf[0] == pytest.approx(0, abs=1e-9) and cdf[-1] == pytest.approx(1, abs=1e-9)
    assert np.all(law.pdf(x) >= 0)
    # the pdf integrates to the cdf (marcenko's pdf has an integrable 1/sqrt singularity at 0)
    lo = -200.0 if name not in ("positive", "positive2", "marcenko") else 0.0
    edges = (-np.sqrt(3) * S.sigma(5), 0.0, np.sqrt(3) * S.sigma(5))  # kinks of the uniform and folded laws
    for b in (-10.0, 3.0, 12.0, 40.0):
        pts = [p for p in edges if lo < p < b] or None
        integral, _ = quad(law.pdf, lo, b, points=pts, limit=200) if b > lo else (0.0, 0.0)
        assert integral == pytest.approx(float(law.cdf(b)) - float(law.cdf(lo)), abs=1e-6), b


# --------------------------------------------------------------------------------------------------
# structure
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", S.SPECTRA)
@pytest.mark.parametrize("n", [2, 5, 6, 30])
def test_symmetric_exactly(name, n):
    M = S.symmetric_matrices(name, np.random.default_rng(n), 50, n)
    assert M.shape == (50, n, n) and M.dtype == np.float64
    assert np.array_equal(M, M.transpose(0, 2, 1))
    assert np.isfinite(M).all()


@pytest.mark.parametrize("name", ["positive", "positive2", "marcenko"])
def test_positive_semidefinite(name):
    M = S.symmetric_matrices(name, np.random.default_rng(5), 2_000, 5)
    lam = np.linalg.eigvalsh(M)
    scale = np.abs(lam).max(axis=1)
    assert np.all(lam[:, 0] >= -1e-9 * scale)


@pytest.mark.parametrize("name", ["semicircle", "uniform", "gaussian", "laplace"])
def test_signed_spectra_are_indefinite(name):
    lam = _eigs(name, 6, 500, 5)
    assert (lam[:, 0] < 0).mean() > 0.5  # most matrices have a negative eigenvalue


def test_semicircle_is_wigner():
    n, B = 5, 2_000
    M = S.symmetric_matrices("semicircle", np.random.default_rng(7), B, n)
    assert np.abs(M).max() <= S.COEFF
    free = M[:, *np.triu_indices(n)]  # the n(n+1)/2 free entries: iid U[-10, 10]
    assert stats.kstest(free.ravel(), stats.uniform(-S.COEFF, 2 * S.COEFF).cdf).pvalue > 1e-3
    # the diagonal is drawn like the off-diagonal entries (PAPER.md §B.2)
    assert stats.kstest(M[:, 0, 0], stats.uniform(-S.COEFF, 2 * S.COEFF).cdf).pvalue > 1e-3


def test_replaced_spectra_keep_the_eigenvalues():
    """M = Q^T diag(d) Q with an orthogonal Q: the pooled eigenvalues are exactly the drawn d."""
    for name in ("uniform", "gaussian", "laplace", "positive2"):
        lam = _eigs(name, 8, 200, 6)
        rng = np.random.default_rng(8)
        # replay the generator: Wigner draw, then the new spectrum
        W = S.wigner(rng, 200, 6)
        w = np.linalg.eigvalsh(W)
        d = S._eigenvalues(name, rng, w, 6, S.COEFF)
        np.testing.assert_allclose(lam, np.sort(d, axis=1), atol=1e-9 * np.abs(d).max())


def test_positive_is_abs_of_wigner_eigenvalues():
    lam = _eigs("positive", 9, 100, 5)
    w = np.linalg.eigvalsh(S.wigner(np.random.default_rng(9), 100, 5))
    np.testing.assert_allclose(lam, np.sort(np.abs(w), axis=1), atol=1e-9)


def test_mixture_picks_each_component():
    M = S.symmetric_matrices("positive,gaussian", np.random.default_rng(10), 400, 5)
    lam = np.linalg.eigvalsh(M)
    psd = lam[:, 0] >= -1e-9 * np.abs(lam).max(axis=1)
    # positive: always PSD; gaussian: PSD with probability 1/32
    assert 0.35 < psd.mean() < 0.7
    assert (~psd).sum() > 100
    M3 = S.symmetric_matrices("semicircle, marcenko ,positive2", np.random.default_rng(11), 600, 4)
    lam3 = np.linalg.eigvalsh(M3)
    assert (lam3[:, 0] < 0).mean() > 0.2  # the semicircle part
    assert (lam3[:, 0] >= -1e-9 * np.abs(lam3).max(axis=1)).mean() > 0.5  # marcenko and positive2


def test_same_seed_same_bytes():
    for name in (*S.SPECTRA, "laplace,positive,marcenko"):
        a = S.symmetric_matrices(name, np.random.default_rng(12), 20, 5)
        b = S.symmetric_matrices(name, np.random.default_rng(12), 20, 5)
        c = S.symmetric_matrices(name, np.random.default_rng(13), 20, 5)
        assert a.tobytes() == b.tobytes()
        assert a.tobytes() != c.tobytes()
    u = S.uniform_matrices(np.random.default_rng(1), 3, 4)
    assert u.tobytes() == S.uniform_matrices(np.random.default_rng(1), 3, 4).tobytes()
    assert not np.array_equal(u, u.transpose(0, 2, 1))


def test_batch_zero():
    assert S.symmetric_matrices("gaussian,positive", np.random.default_rng(0), 0, 5).shape == (0, 5, 5)


def test_min_eigen_gap():
    e = np.array([[3.0, -1.0, 2.5, 10.0], [0.0, 0.0, 1.0, 2.0]])
    np.testing.assert_allclose(S.min_eigen_gap(e), [0.5, 0.0])


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spectrum", ["wigner", "semicircle,normal", "", "Gaussian", "laplace;positive"])
def test_unknown_spectrum_names(spectrum):
    for call in (lambda: S.parse_spectrum(spectrum),
                 lambda: S.symmetric_matrices(spectrum, np.random.default_rng(0), 2, 5),
                 lambda: S.eigenvalue_law(spectrum, 5)):
        with pytest.raises(ValueError, match="valid spectra") as info:
            call()
        for name in S.SPECTRA:
            assert name in str(info.value)


def test_too_many_components():
    with pytest.raises(ValueError, match="at most 5"):
        S.parse_spectrum(",".join(S.SPECTRA[:6]))


@pytest.mark.parametrize("n", [1, 0, -3])
def test_n_below_two(n):
    rng = np.random.default_rng(0)
    for call in (lambda: S.symmetric_matrices("semicircle", rng, 2, n),
                 lambda: S.symmetric_matrices("gaussian", rng, 2, n),
                 lambda: S.wigner(rng, 2, n),
                 lambda: S.uniform_matrices(rng, 2, n)):
        with pytest.raises(ValueError, match=">= 2"):
            call()


def test_negative_batch():
    with pytest.raises(ValueError, match="batch"):
        S.symmetric_matrices("semicircle", np.random.default_rng(0), -1, 5)
