"""Predictions: fixed test sets (reproducible bytes, tamper check) and the per-problem prediction table."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from mathtx_helpers.core import store
from mathtx_helpers.matrix import predict, tasks, train
from mathtx_helpers.matrix.config import RunConfig
from mathtx_helpers.matrix.train import Codec

TINY = dict(n=3, d_model=16, n_heads=2, enc_layers=1, dec_layers=1, batch=16, lr=1e-3, warmup=2, examples=64,
            eval_every=64, eval_size=8, precision="fp32")
COLUMNS = {"problem", "reference", "prediction", "tokens", "logprobs", "valid", "err", "cond_A", "logprob_sum",
           "logprob_min"}
TASK_COLUMNS = {"eigenvalues": {"eigval_err"}, "eigenvectors": {"eigval_err", "norm_err", "orth_adjacent",
                                                                "orth_full", "cond_V"}, "inversion": {"inv_err"}}


pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """A tiny finished run (4 steps): (data folder, config)."""
    d = tmp_path_factory.mktemp("predict") / "data"
    cfg = RunConfig.from_dict(TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "DATA", d)
        train.train(cfg, progress=False)
    return d, cfg


# ------------------------------------------------------------------------------------------ test sets


@pytest.mark.parametrize("task, spectrum", [("eigenvalues", "laplace"), ("inversion", "ignored")])
def test_testset_is_reproducible_to_the_byte(tmp_path, monkeypatch, task, spectrum):
    files, later = [], time.time() + 3 * 3600
    for folder in ("a", "b"):
        with monkeypatch.context() as mp:
            mp.setattr(store, "DATA", tmp_path / folder)
            if folder == "b":  # regenerated hours later: the bytes must not depend on the clock
                mp.setattr(time, "time", lambda: later)
            name, probs = predict.testset(task, 3, spectrum, 50, seed=7)
        path = tmp_path / folder / "testsets" / f"{name}.npz"
        files.append((name, probs, path.read_bytes(), path.with_suffix(".sha256").read_text()))
    (n1, p1, b1, s1), (n2, p2, b2, s2) = files
    assert n1 == n2 and b1 == b2 and s1 == s2
    assert np.array_equal(p1.A, p2.A) and np.array_equal(p1.target, p2.target) and p1.spectrum == p2.spectrum
    assert len(p1) == 50 and p1.A.shape == (50, 3, 3)
    assert np.allclose(p1.target, tasks.solve(task, p1.A), atol=1e-10)


def test_testset_reloads_what_it_wrote(data):
    name, probs = predict.testset("eigenvalues", 3, "semicircle", 40, seed=3)
    path = data / "testsets" / f"{name}.npz"
    before = (path.stat().st_mtime_ns, path.read_bytes())
    name2, again = predict.testset("eigenvalues", 3, "semicircle", 40, seed=3)
    assert name2 == name and (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert again.A.dtype == probs.A.dtype and np.array_equal(again.A, probs.A)
    assert np.array_equal(again.target, probs.target) and again.spectrum == probs.spectrum == "semicircle"
    other_name, other = predict.testset("eigenvalues", 3, "semicircle", 40, seed=4)
    assert other_name != name and not np.array_equal(other.A, probs.A)
    # the output encoding decides which draws are kept: a set for another one is its own file
    b_name, _ = predict.testset("eigenvalues", 3, "semicircle", 40, seed=3, output_encoding="B1999")
    assert b_name != name and (data / "testsets" / f"{b_name}.npz").exists()
    assert name == "eigenvalues-n3-semicircle-FP15-40-s3-v2"  # P1000 sets keep the names they always had


def test_testsets_of_different_spectra_are_independent_draws(data):
    # positive is |semicircle eigenvalues| on the same construction: a shared stream would make the positive
    # test set's spectra the absolute values of the semicircle set's, row for row
    _, semi = predict.testset("eigenvalues", 3, "semicircle", 200, seed=11)
    _, pos = predict.testset("eigenvalues", 3, "positive", 200, seed=11)
    same = np.isclose(np.sort(np.abs(semi.target), axis=1), np.sort(pos.target, axis=1), rtol=1e-2).all(axis=1)
    assert same.mean() < 0.05
    _, vec = predict.testset("eigenvectors", 3, "semicircle", 200, seed=11)
    assert not np.array_equal(vec.A, semi.A)


def test_tampered_testset_is_refused(data):
    name, _ = predict.testset("eigenvalues", 3, "semicircle", 30, seed=5)
    path = data / "testsets" / f"{name}.npz"
    raw = bytearray(path.read_bytes())
    raw[-40] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"does not match its recorded sha256; delete both files"):
        predict.testset("eigenvalues", 3, "semicircle", 30, seed=5)
    assert path.read_bytes() == bytes(raw)  # refused, not silently regenerated


# ------------------------------------------------------------------------------------------ prediction table


def test_predictions_table_marks_invalid_rows():
    """Half the rows hold the encoded reference (valid, tiny error), half garbage (invalid, err inf)."""
    cfg = RunConfig.from_dict(TINY)
    codec = Codec(cfg)
    probs = tasks.make_problems("eigenvalues", 3, 8, np.random.default_rng(0))
    _, tgt, _ = codec.tensors(probs, "cpu")
    tokens = tgt.numpy().copy()
    tokens[1::2, 3:] = codec.tgt.eos  # rows cut short: invalid
    logp = np.where(np.arange(tokens.shape[1]) > 0, -0.25, 0.0) * np.ones(tokens.shape)
    P, valid = codec.tgt.decode_batch(tokens, cfg.output_encoding, codec.target_shape)
    assert valid.tolist() == [True, False] * 4
    df = predict.predictions_table(probs, P, valid, tokens, logp, codec.tgt.eos)
    assert set(df.columns) == COLUMNS | TASK_COLUMNS["eigenvalues"] and len(df) == 8
    assert (df["prediction"].isna() == ~df["valid"]).all()
    assert np.isinf(df["err"][~df["valid"]]).all() and (df["err"][df["valid"]] < 0.01).all()
    assert df["eigval_err"][~df["valid"]].isna().all()
    lengths = [len(t) for t in df["tokens"]]
    assert lengths[1::2] == [4] * 4 and all(t[-1] == codec.tgt.eos for t in df["tokens"])
    assert [len(lp) for lp in df["logprobs"]] == [n - 1 for n in lengths]  # one per generated token
    assert np.allclose(df["logprob_sum"], [-0.25 * (n - 1) for n in lengths])
    assert (df["logprob_min"] == -0.25).all()


def test_predict_writes_a_complete_table_and_reuses_it(trained, monkeypatch):
    d, cfg = trained
    monkeypatch.setattr(store, "DATA", d)
    out = predict.predict(cfg, size=40, batch=16, device="cpu", progress=False)
    assert out.parent == train.run_dir(cfg) / "predictions" and out.suffix == ".parquet"
    df = pd.read_parquet(out)
    assert len(df) == 40
    assert set(df.columns) == COLUMNS | TASK_COLUMNS["eigenvalues"]
    _, probs = predict.testset("eigenvalues", 3, "semicircle", 40)
    assert np.array_equal(np.stack(df["problem"]), probs.A.reshape(40, -1))
    assert np.array_equal(np.stack(df["reference"]), probs.target.reshape(40, -1))
    valid = df["valid"].to_numpy()
    assert (df["prediction"].isna().to_numpy() == ~valid).all()
    assert np.isinf(df["err"].to_numpy()[~valid]).all() and np.isfinite(df["err"].to_numpy()[valid]).all()
    assert np.isfinite(df["cond_A"]).all() and (df["cond_A"] >= 1).all()
    # the table agrees with decoding the same test set again, and the verifier agrees with the table
    model, codec, precision = train.load_model(cfg, "cpu")
    P, valid2, tokens, logp = train.decode_problems(model, codec, probs, torch.device("cpu"), precision)
    assert (valid2 == valid).all()
    for i in range(40):
        assert np.array_equal(df["tokens"][i], tokens[i, :len(df["tokens"][i])])
        assert df["logprob_sum"][i] == pytest.approx(logp[i].sum(), abs=1e-5)
        assert df["logprob_min"][i] == pytest.approx(df["logprobs"][i].min(), abs=0)
    assert np.array_equal(df["err"].to_numpy(), tasks.verify("eigenvalues", probs.A, P))
    # a second call reuses the file without loading the model
    stamp = (out.stat().st_mtime_ns, out.read_bytes())

    def no_model(*args, **kwargs):
        raise AssertionError("an existing prediction table must be reused")

    monkeypatch.setattr(predict, "load_model", no_model)
    assert predict.predict(cfg, size=40, batch=16, device="cpu", progress=False) == out
    assert (out.stat().st_mtime_ns, out.read_bytes()) == stamp


def test_predict_beam_gets_its_own_table(trained, monkeypatch):
    d, cfg = trained
    monkeypatch.setattr(store, "DATA", d)
    greedy = predict.predict(cfg, size=12, device="cpu", progress=False)
    beam = predict.predict(cfg, size=12, beam=2, device="cpu", progress=False)
    assert beam != greedy and beam.stem.endswith("-beam2")
    g, b = pd.read_parquet(greedy), pd.read_parquet(beam)
    assert len(b) == 12 and set(b.columns) == set(g.columns)
    assert np.array_equal(np.stack(b["problem"]), np.stack(g["problem"]))
    assert (b["prediction"].isna() == ~b["valid"]).all()
    assert np.allclose(b["logprob_sum"], [lp.sum() for lp in b["logprobs"]], atol=1e-5)


def test_predictions_decode_in_fp32_on_a_cpu_whatever_trained_the_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    cfg = RunConfig.from_dict({**TINY, "precision": "bf16"})
    train.train(cfg, progress=False)
    model, codec, trained_in = train.load_model(cfg, "cpu")
    assert trained_in == "bf16"
    out = predict.predict(cfg, size=24, batch=8, device="cpu", progress=False)
    assert out.name.endswith("-fp32.parquet")  # not the name a bf16-decoded table had before the rule
    df = pd.read_parquet(out)
    _, probs = predict.testset("eigenvalues", 3, "semicircle", 24)
    _, _, tokens, logp = train.decode_problems(model, codec, probs, torch.device("cpu"), "fp32", batch=8)
    for i in range(24):
        T = len(df["tokens"][i])
        assert np.array_equal(df["tokens"][i], tokens[i, :T])
        assert np.array_equal(df["logprobs"][i], logp[i, 1:T])  # the fp32 decoding's own log-probabilities


def test_a_table_is_named_by_its_decoding_batch_and_precision_even_without_a_record(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    cfg = RunConfig.from_dict({**TINY, "precision": "bf16"})
    folder = train.train(cfg, progress=False)
    default = predict.predict(cfg, size=8, device="cpu", progress=False)
    small = predict.predict(cfg, size=8, batch=3, device="cpu", progress=False)
    assert default.name.endswith("-s12345-v2-fp32.parquet") and small.name.endswith("-v2-b3-fp32.parquet")
    (folder / "precision").unlink()  # a folder written before runs recorded their precision
    default.unlink()
    assert predict.predict(cfg, size=8, device="cpu", progress=False) == default  # not named as an fp32 run's


def test_decode_precision_rule():
    from mathtx_helpers.core import devices

    assert devices.decode_precision("bf16", "cpu") == "fp32"
    assert devices.decode_precision("fp32", "cpu") == "fp32"
    assert devices.decode_precision("bf16", torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="valid: fp32, bf16"):
        devices.decode_precision("auto", "cpu")


def test_predict_scores_each_arithmetic_run_on_the_test_sets_of_its_operations(monkeypatch, capsys):
    """`python -m mathtx_helpers predict` on the arithmetic runs: an addition model gets the addition test sets, a
    subtraction model the subtraction ones, a mixed model both; asking a model for an operation it never learned
    is one clear error."""
    from mathtx_helpers import jobs, profiles
    from mathtx_helpers.arith import predict as arith_predict
    from mathtx_helpers.core import runs

    prof = profiles.get_profile("smoke")
    asked = {}

    def fake(cfg, name, size):
        asked.setdefault(cfg.name, []).append(name)
        return pd.DataFrame({"correct": [True] * size})

    monkeypatch.setattr(runs, "status_of", lambda cfg: "done")
    monkeypatch.setattr(arith_predict, "predictions", fake)
    specs = [prof.run(n) for n in ("addition-2layer", "subtraction-2layer", "mixed-3layer")]
    assert jobs.predict_runs(prof, specs) == 0
    add, sub = set(arith_predict.ADD_TEST_SETS), set(arith_predict.SUB_TEST_SETS)
    got = [set(asked[s.config.name]) for s in specs]
    assert got == [add, sub, add | sub]
    assert "0 errors in" in capsys.readouterr().out
    monkeypatch.undo()
    with pytest.raises(ValueError, match="subtraction only; test sets: sub uniform"):
        arith_predict.predictions(specs[1].config, "uniform", 10)
