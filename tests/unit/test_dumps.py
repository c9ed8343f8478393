"""The reader of the original code's verbose evaluation dumps (PAPER.md §D.5), on files written here."""

from __future__ import annotations

import numpy as np
import pytest

from mathtx_helpers.matrix import dumps, encoding, tasks


def words(M: np.ndarray, with_dims: bool) -> list[str]:
    toks = encoding.vocabulary("P1000", "P1000").encode_tokens(M[None], "P1000")[0][1:-1]  # drop <s> </s>
    return toks if with_dims else toks[2:]


def write_dump(path, problems: tasks.Problems, hyps: list, judged: list[int], python_lists: bool = False):
    """The D.5 layout: Equation line, numpy-printed src, tgt words, hypothesis line, blank line."""
    lines = []
    for k, (A, T, hyp, ok) in enumerate(zip(problems.A, problems.target, hyps, judged, strict=True)):
        lines.append(f"Equation {k} ({ok}/1)")
        lines.extend(("src=" + np.array2string(A, precision=3, max_line_width=500)).splitlines())
        tgt = words(encoding.quantize(T, "P1000"), with_dims=k % 2 == 0)
        lines.append("tgt=" + (str(tgt) if python_lists else " ".join(tgt)))
        if isinstance(hyp, str) and hyp == "perfect":
            lines.append("1 " + " ".join(tgt))
        elif isinstance(hyp, str):
            lines.append(f"0 -3.25 {hyp}")
        else:
            lines.append(f"{ok} -0.0123 " + " ".join(words(hyp, with_dims=True)))
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("task", ["eigenvectors", "inversion"])
@pytest.mark.parametrize("python_lists", [False, True])
def test_dump_round_trips_into_the_predictions_table(tmp_path, task, python_lists):
    rng = np.random.default_rng(3)
    probs = tasks.make_problems(task, 5, 6, rng)
    exact = encoding.quantize(probs.target, "P1000")
    bad = exact.copy()
    bad[:, 1:] *= 1.3  # far off
    hyps = ["perfect", exact[1], bad[2], "+ 12 garbage E-1", exact[4], "perfect"]
    path = tmp_path / "x.pred"
    write_dump(path, probs, hyps, judged=[1, 1, 0, 0, 1, 1], python_lists=python_lists)

    df = dumps.read_dump(path, task)

    assert list(df.equation) == list(range(6))
    assert list(df.valid) == [True, True, True, False, True, True]
    assert df.prediction[3] is None and np.isinf(df.err[3])
    assert list(df.perfect_match) == [True, False, False, False, False, True]
    assert list(df.judged_correct) == [True, True, False, False, True, True]
    assert df.logprob_sum[1] == pytest.approx(-0.0123)
    # inputs are read back to the printed precision, and errors are the verifier's on them
    A = np.stack(df.problem).reshape(-1, 5, 5)
    np.testing.assert_allclose(A, probs.A, atol=6e-4)
    P = np.stack([p if p is not None else np.full(exact[0].size, np.nan) for p in df.prediction])
    np.testing.assert_allclose(df.err, tasks.verify(task, A, P.reshape(exact.shape)))
    assert df.err[2] > 0.05 and df.err[2] > df.err[[0, 1, 4, 5]].max()


def test_dump_errors_are_one_clear_line(tmp_path):
    empty = tmp_path / "empty.pred"
    empty.write_text("nothing here\n")
    with pytest.raises(ValueError, match="no 'Equation k"):
        dumps.read_dump(empty, "eigenvectors")
    with pytest.raises(ValueError, match="valid tasks"):
        dumps.read_dump(empty, "transpose")
    broken = tmp_path / "broken.pred"
    broken.write_text("Equation 0 (1/1)\nsrc=[[1. 2.]\n [3. 4.]]\n")
    with pytest.raises(ValueError, match="no 'tgt=' line"):
        dumps.read_dump(broken, "inversion")
