"""Problems, targets, verifiers and property errors of the three tasks (PAPER.md §B.5, §D)."""

from __future__ import annotations

import numpy as np
import pytest

from mathtx_helpers.matrix import encoding, tasks

SIZES = (3, 4, 5, 6)
BATCH = 200


@pytest.fixture(scope="module")
def problems() -> dict[tuple[str, int], tasks.Problems]:
    """One fixed batch per task and size (FP15 inputs, P1000 outputs: the WIMTD setting)."""
    return {(t, n): tasks.make_problems(t, n, BATCH, np.random.default_rng(100 * n + i))
            for i, t in enumerate(tasks.TASKS) for n in SIZES}


def _sinkhorn_unit(V: np.ndarray, iters: int = 10_000) -> np.ndarray:
    """Rescale rows and columns of V (B, n, n) until every row and every column has unit norm."""
    V = V.copy()
    for _ in range(iters):
        V /= np.linalg.norm(V, axis=2, keepdims=True)
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        if tasks.norm_error(V).max() < 1e-11:
            break
    return V


def _eigvec_prediction(A: np.ndarray) -> np.ndarray:
    return tasks.solve("eigenvectors", A)


# --------------------------------------------------------------------------------------------------
# exact and rounded solutions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("n", SIZES)
def test_exact_solutions_pass(problems, task, n):
    p = problems[task, n]
    P = tasks.solve(task, p.A)
    assert P.shape == (BATCH, *tasks.target_shape(task, n))
    np.testing.assert_allclose(p.target, P, rtol=1e-12, atol=1e-12)
    err = tasks.verify(task, p.A, P)
    assert err.shape == (BATCH,)
    assert np.all(err < 1e-9), err.max()
    assert tasks.accuracy(err) == {tau: 1.0 for tau in tasks.TOLERANCES}


@pytest.mark.parametrize("task", ["eigenvalues", "eigenvectors"])
@pytest.mark.parametrize("n", SIZES)
def test_p1000_ceiling_passes_at_5pc(problems, task, n):
    p = problems[task, n]
    P = encoding.quantize(p.target, "P1000")
    err = tasks.verify(task, p.A, P)
    np.testing.assert_array_equal(err, tasks.ceiling_errors(p, "P1000"))
    assert np.all(err < 0.05), err.max()
    assert np.all(err > 0) or task == "eigenvalues"  # rounding is visible to the verifier


@pytest.mark.parametrize("n", SIZES)
def test_p1000_ceiling_inversion_well_conditioned(problems, n):
    p = problems["inversion", n]
    err = tasks.ceiling_errors(p, "P1000")
    good = tasks.cond(p.A) < 30
    assert good.sum() > 20
    assert np.all(err[good] < 0.05), err[good].max()
    # ill-conditioned inputs can fail even with the best encodable answer (PAPER.md §A.5)
    assert np.any(err[~good] >= 0.05) or n == 3


# --------------------------------------------------------------------------------------------------
# perturbed solutions fail
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_scaled_eigenvalues_fail(problems, n):
    p = problems["eigenvalues", n]
    err = tasks.verify("eigenvalues", p.A, 1.1 * p.target)
    np.testing.assert_allclose(err, 0.1, rtol=1e-9)
    assert tasks.accuracy(err)[0.05] == 0.0
    # the verifier compares in decreasing order: the increasing order is wrong
    err_rev = tasks.verify("eigenvalues", p.A, p.target[:, ::-1])
    assert np.all(err_rev > 0.05)


def _mixed_extremes(A):
    """Exact eigen-decompositions with the first eigenvector replaced by a unit mix of the extreme two:
    eigenvalues right, every column unit-norm, not orthogonal; the verifier's error is then at least
    max|lambda| / 2 / sum|lambda| >= 1 / (2 n). Returns the prediction and its eigenvector block (a view)."""
    P = _eigvec_prediction(A)
    V = P[:, 1:, :]
    V[:, :, 0] = (V[:, :, 0] + V[:, :, -1]) / np.sqrt(2)
    return P, V


@pytest.mark.parametrize("n", SIZES)
def test_mixed_eigenvector_pair_fails(problems, n):
    p = problems["eigenvectors", n]
    P, V = _mixed_extremes(p.A)
    err = tasks.verify("eigenvectors", p.A, P)
    assert np.all(err > 0.05), err.min()


@pytest.mark.parametrize("n", SIZES)
def test_rotated_eigenvector_pair_fails(problems, n):
    """An orthogonal rotation inside the plane of two eigenvectors with distinct eigenvalues also fails."""
    p = problems["eigenvectors", n]
    P = _eigvec_prediction(p.A)
    V = P[:, 1:, :]
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    v0, v1 = V[:, :, 0].copy(), V[:, :, -1].copy()
    V[:, :, 0], V[:, :, -1] = c * v0 - s * v1, s * v0 + c * v1
    assert np.all(tasks.orthogonality_full(V) < 1e-12)
    assert np.all(tasks.verify("eigenvectors", p.A, P) > 0.05)


@pytest.mark.parametrize("n", SIZES)
def test_noisy_inverse_fails(problems, n):
    p = problems["inversion", n]
    inv = tasks.solve("inversion", p.A)
    rng = np.random.default_rng(n)
    # 10% too large: A P - I = 0.1 I, error exactly 0.1
    np.testing.assert_allclose(tasks.verify("inversion", p.A, 1.1 * inv), 0.1, rtol=1e-6)
    # 10% multiplicative noise of random sign: A P - I = 0.1 S, error 0.1 n
    signs = rng.choice([-1.0, 1.0], size=inv.shape)
    err = tasks.verify("inversion", p.A, inv @ (np.eye(n) + 0.1 * signs))
    np.testing.assert_allclose(err, 0.1 * n, rtol=1e-6)
    # 10% independent noise on each entry: (almost) every prediction fails
    err = tasks.verify("inversion", p.A, inv * (1 + 0.1 * rng.standard_normal(inv.shape)))
    assert np.mean(err > 0.05) > 0.97 and np.median(err) > 0.2


# --------------------------------------------------------------------------------------------------
# eigenvector verifier invariances
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_eigenvector_verifier_invariances(problems, n):
    p = problems["eigenvectors", n]
    rng = np.random.default_rng(n)
    for P in (_eigvec_prediction(p.A), encoding.quantize(p.target, "P1000")):
        base = tasks.verify("eigenvectors", p.A, P)
        flipped = P.copy()
        flipped[:, 1:, :] *= rng.choice([-1.0, 1.0], size=(BATCH, 1, n))  # sign of each column
        np.testing.assert_allclose(tasks.verify("eigenvectors", p.A, flipped), base, rtol=0, atol=1e-12)
        reversed_ = P[:, :, ::-1]  # reverse order of the eigenpairs: the decreasing convention
        np.testing.assert_allclose(tasks.verify("eigenvectors", p.A, reversed_), base, rtol=0, atol=1e-12)
        perm = rng.permutation(n)
        np.testing.assert_allclose(tasks.verify("eigenvectors", p.A, P[:, :, perm]), base, rtol=0, atol=1e-12)
    # the order of eigenvalues and eigenvectors must agree: reversing only the eigenvalues fails
    bad = _eigvec_prediction(p.A)
    bad[:, 0, :] = bad[:, 0, ::-1]
    assert np.all(tasks.verify("eigenvectors", p.A, bad) > 0.05)


def test_eigenvector_verifier_accepts_any_basis_of_a_degenerate_eigenspace():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    lam = np.array([-3.0, 2.0, 2.0, 2.0, 7.0])
    A = (Q * lam) @ Q.T
    A = (A + A.T)[None] / 2
    R, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    V = Q.copy()
    V[:, 1:4] = Q[:, 1:4] @ R  # another orthonormal basis of the eigenvalue-2 eigenspace
    P = np.concatenate([lam[None, :], V], axis=0)[None]
    assert tasks.verify("eigenvectors", A, P)[0] < 1e-12


# --------------------------------------------------------------------------------------------------
# property errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_property_errors_on_exact_eigenvectors(problems, n):
    p = problems["eigenvectors", n]
    props = tasks.property_errors("eigenvectors", p.A, _eigvec_prediction(p.A))
    assert set(props) == {"err", "cond_A", "eigval_err", "norm_err", "orth_adjacent", "orth_full", "cond_V"}
    for key in ("err", "eigval_err", "norm_err", "orth_adjacent", "orth_full"):
        assert props[key].shape == (BATCH,)
        assert np.all(props[key] < 1e-9), (key, props[key].max())
    np.testing.assert_allclose(props["cond_V"], 1.0, atol=1e-9)
    np.testing.assert_allclose(props["cond_A"], np.linalg.cond(p.A), rtol=1e-9)


@pytest.mark.parametrize("n", SIZES)
def test_property_errors_roughly_right_pattern(problems, n):
    """Right eigenvalues and unit vectors that are not orthogonal: the paper's failed predictions."""
    p = problems["eigenvectors", n]
    P, V = _mixed_extremes(p.A)
    props = tasks.property_errors("eigenvectors", p.A, P)
    assert np.all(props["eigval_err"] < 1e-12)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0, atol=1e-12)  # every column has unit norm
    assert np.all(props["orth_full"] > 1 / np.sqrt(2) - 1e-9)  # <v0', v_last> = 1 / sqrt(2)
    assert np.all(props["norm_err"] > 1e-3)  # norm_err also reads the rows, which the mix changed
    assert np.all(props["err"] > 0.05)

    # renormalised so that every row AND every column has unit norm: only orthogonality tells
    P[:, 1:, :] = _sinkhorn_unit(V)
    props = tasks.property_errors("eigenvectors", p.A, P)
    assert np.all(props["eigval_err"] < 1e-12)
    assert np.all(props["norm_err"] < 1e-9), props["norm_err"].max()
    # (with unit rows and columns a few 3x3 ones end up almost orthogonal, yet still far from eigenvectors)
    assert np.mean(props["orth_full"] > 0.1) > 0.9 and np.median(props["orth_full"]) > 0.4
    assert np.all(props["err"] > 0.05)  # and the verifier rejects every one of them


@pytest.mark.parametrize("n", SIZES)
def test_property_errors_eigenvalue_error(problems, n):
    p = problems["eigenvectors", n]
    P = _eigvec_prediction(p.A)
    P[:, 0, :] *= 1.1
    props = tasks.property_errors("eigenvectors", p.A, P)
    np.testing.assert_allclose(props["eigval_err"], 0.1, rtol=1e-9)
    P[:, 0, :] = P[:, 0, ::-1] / 1.1  # eigval_err sorts the predicted eigenvalues first
    np.testing.assert_allclose(tasks.property_errors("eigenvectors", p.A, P)["eigval_err"], 0, atol=1e-12)
    ev = tasks.property_errors("eigenvalues", problems["eigenvalues", n].A, 1.1 * problems["eigenvalues", n].target)
    np.testing.assert_allclose(ev["eigval_err"], ev["err"])
    np.testing.assert_allclose(ev["eigval_err"], 0.1, rtol=1e-9)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_invalid_prediction_is_inf_and_nan(problems, task):
    p = problems[task, 5]
    P = tasks.solve(task, p.A)
    P[0, 0, 0] = np.nan
    P[1, -1, -1] = np.inf
    props = tasks.property_errors(task, p.A, P)
    assert props["err"][0] == np.inf and props["err"][1] == np.inf
    assert np.all(props["err"][2:] < 1e-9)
    assert np.all(np.isfinite(props["cond_A"]))
    for key, value in props.items():
        if key not in ("err", "cond_A"):
            assert np.isnan(value[:2]).all(), key
            assert np.isfinite(value[2:]).all(), key
    assert tasks.accuracy(props["err"])[0.05] == pytest.approx((BATCH - 2) / BATCH)


def test_eigenvector_zero_prediction_has_error_inf():
    A = np.eye(3)[None]
    assert tasks.verify("eigenvectors", A, np.zeros((1, 4, 3)))[0] == np.inf


def test_norm_and_orthogonality_helpers():
    V = np.diag([1.0, 2.0, 1.0])[None]
    assert tasks.norm_error(V)[0] == pytest.approx(1.0)
    assert tasks.orthogonality_full(V)[0] == pytest.approx(3.0)
    # rows 0 and 2 have cosine 0.5 but an un-normalised dot product of 2: the legacy proxy keeps it
    W = np.array([[[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, np.sqrt(3.0), 0.0]]])
    assert tasks.orthogonality_adjacent(W, legacy=False)[0] == pytest.approx(0.5)
    assert tasks.orthogonality_adjacent(W)[0] == pytest.approx(2.0)
    assert tasks.orthogonality_adjacent(np.zeros((1, 3, 3)), legacy=False)[0] == np.inf
    assert tasks.cond(np.zeros((1, 3, 3)))[0] == np.inf
    assert tasks.cond(np.full((1, 2, 2), np.nan))[0] == np.inf


@pytest.mark.parametrize("n", SIZES)
def test_inversion_properties(problems, n):
    p = problems["inversion", n]
    inv = tasks.solve("inversion", p.A)
    props = tasks.property_errors("inversion", p.A, inv)
    assert set(props) == {"err", "cond_A", "inv_err"}
    assert np.all(props["inv_err"] < 1e-12)
    np.testing.assert_allclose(props["cond_A"], np.linalg.cond(p.A), rtol=1e-9)
    noisy = tasks.property_errors("inversion", p.A, 1.1 * inv)
    np.testing.assert_allclose(noisy["inv_err"], 0.1, rtol=1e-9)


def test_verify_rejects_wrong_shapes():
    A = np.eye(4)[None]
    for task, shape in (("eigenvalues", (1, 4, 4)), ("eigenvectors", (1, 4, 4)), ("inversion", (1, 4, 1))):
        with pytest.raises(ValueError, match=task):
            tasks.verify(task, A, np.zeros(shape))


def test_accuracy_is_strict():
    acc = tasks.accuracy(np.array([0.0, 0.005, 0.0199, 0.05, np.inf]))
    assert acc == {0.005: 0.2, 0.01: 0.4, 0.02: 0.6, 0.05: 0.6}
    assert all(np.isnan(v) for v in tasks.accuracy(np.array([])).values())


# --------------------------------------------------------------------------------------------------
# make_problems
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", tasks.TASKS)
def test_make_problems_reproducible(task):
    a = tasks.make_problems(task, 5, 32, np.random.default_rng(1))
    b = tasks.make_problems(task, 5, 32, np.random.default_rng(1))
    c = tasks.make_problems(task, 5, 32, np.random.default_rng(2))
    assert a.A.tobytes() == b.A.tobytes() and a.target.tobytes() == b.target.tobytes()
    assert a.A.tobytes() != c.A.tobytes()
    assert a.task == task
    assert a.spectrum == ("uniform-nonsymmetric" if task == "inversion" else "semicircle")


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("batch", [0, 1, 7, 64])
def test_make_problems_batch_size(task, batch):
    p = tasks.make_problems(task, 4, batch, np.random.default_rng(batch))
    assert len(p) == batch
    assert p.A.shape == (batch, 4, 4)
    assert p.target.shape == (batch, *tasks.target_shape(task, 4))


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize(("inp", "out"), [("FP15", "P1000"), ("FP15", "FP15"), ("P10", "B1999"), ("B1999", None)])
def test_inputs_are_exactly_encodable(task, inp, out):
    p = tasks.make_problems(task, 5, 64, np.random.default_rng(3), spectrum="laplace,positive",
                            input_encoding=inp, output_encoding=out)
    np.testing.assert_array_equal(encoding.quantize(p.A, inp), p.A)
    vocab = encoding.vocabulary(inp, out or inp)
    ids, _ = vocab.encode(p.A, inp)
    np.testing.assert_array_equal(vocab.decode_batch(ids, inp, (5, 5))[0], p.A)
    if out is not None:
        assert encoding.in_range(p.target, out).all()
    if task != "inversion":
        np.testing.assert_array_equal(p.A, p.A.transpose(0, 2, 1))
        assert p.spectrum == "laplace,positive"
    else:
        assert not np.array_equal(p.A, p.A.transpose(0, 2, 1))
        assert np.abs(p.A).max() <= 10
        resid = np.abs(p.A @ p.target - np.eye(5)).max(axis=(1, 2))
        assert np.all(resid <= tasks.INVERSION_RESIDUAL_MAX)


@pytest.mark.parametrize("n", SIZES)
def test_target_orders(problems, n):
    ev = problems["eigenvalues", n].target[:, :, 0]
    assert np.all(np.diff(ev, axis=1) <= 0)  # decreasing
    vec = problems["eigenvectors", n].target
    assert np.all(np.diff(vec[:, 0, :], axis=1) >= 0)  # row 0 increasing
    V = vec[:, 1:, :]  # columns are unit eigenvectors
    np.testing.assert_allclose(V.transpose(0, 2, 1) @ V, np.broadcast_to(np.eye(n), V.shape), atol=1e-12)
    A = problems["eigenvectors", n].A
    np.testing.assert_allclose(A @ V, V * vec[:, :1, :], atol=1e-9 * np.abs(A).max())
    # the eigenvalues task's reference and the eigenvector task's row 0 are the same numbers
    A2 = problems["eigenvalues", n].A
    np.testing.assert_allclose(tasks.solve("eigenvectors", A2)[:, 0, ::-1], ev, atol=1e-12 * np.abs(ev).max())


def test_fp15_output_limit_redraws():
    """Targets the output encoding cannot represent are redrawn: FP15 inverses stay below 1e9."""
    p = tasks.make_problems("inversion", 3, 200, np.random.default_rng(4), output_encoding="FP15")
    assert encoding.in_range(p.target, "FP15").all()


def test_problem_shapes_and_flags():
    assert [tasks.is_symmetric_task(t) for t in tasks.TASKS] == [True, True, False]
    assert tasks.target_shape("eigenvalues", 5) == (5, 1)
    assert tasks.target_shape("eigenvectors", 5) == (6, 5)
    assert tasks.target_shape("inversion", 5) == (5, 5)


@pytest.mark.parametrize("call", [
    lambda: tasks.check_task("eigenvalue"),
    lambda: tasks.is_symmetric_task("inverse"),
    lambda: tasks.target_shape("Eigenvectors", 5),
    lambda: tasks.solve("svd", np.eye(3)[None]),
    lambda: tasks.make_problems("transpose", 5, 2, np.random.default_rng(0)),
    lambda: tasks.verify("syminverse", np.eye(3)[None], np.eye(3)[None]),
    lambda: tasks.property_errors("", np.eye(3)[None], np.eye(3)[None]),
])
def test_unknown_task_names(call):
    with pytest.raises(ValueError, match="valid tasks") as info:
        call()
    for name in tasks.TASKS:
        assert name in str(info.value)


def test_make_problems_checks_its_other_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="valid encodings"):
        tasks.make_problems("eigenvalues", 5, 2, rng, input_encoding="FP16")
    with pytest.raises(ValueError, match="valid encodings"):
        tasks.make_problems("eigenvalues", 5, 2, rng, output_encoding="P100")
    with pytest.raises(ValueError, match="valid spectra"):
        tasks.make_problems("eigenvectors", 5, 2, rng, spectrum="wigner")


def test_max_cond_draws_the_conditioned_distribution():
    """max_cond redraws inputs above it: every drawn cond(A) is below it, the draw is reproducible, and the
    well-conditioned share of the unconditioned draw is what it keeps (cond(A) <= 10: about 60 % for 3x3
    U[-10, 10], checked against the unconditioned sample's own fraction)."""
    free = tasks.make_problems("inversion", 3, 4000, np.random.default_rng(0))
    share = float(np.mean(tasks.cond(free.A) <= 10))
    assert 0.5 < share < 0.7
    kept = tasks.make_problems("inversion", 3, 500, np.random.default_rng(1), max_cond=10.0)
    assert tasks.cond(kept.A).max() <= 10
    again = tasks.make_problems("inversion", 3, 500, np.random.default_rng(1), max_cond=10.0)
    assert np.array_equal(kept.A, again.A)
    eig = tasks.make_problems("eigenvalues", 3, 200, np.random.default_rng(2), "laplace", max_cond=5.0)
    assert tasks.cond(eig.A).max() <= 5
    with pytest.raises(ValueError, match="max_cond must be 0"):
        tasks.make_problems("inversion", 3, 10, np.random.default_rng(0), max_cond=0.5)
