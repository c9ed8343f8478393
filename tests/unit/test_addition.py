"""The arithmetic track: questions and classes, the decoder's hooks, exact resume, interventions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mathtx_helpers.arith import addition, circuits
from mathtx_helpers.arith import predict as arith_predict
from mathtx_helpers.arith import train as arith_train
from mathtx_helpers.arith.config import AddConfig
from mathtx_helpers.arith.decoder import Decoder, DecoderConfig, Hooks, Prefix, hook_names, prefix_names
from mathtx_helpers.core import runs

N = 5


def _ints(D: np.ndarray) -> np.ndarray:
    return D @ (10 ** np.arange(D.shape[1]))


def _class_by_definition(a: int, b: int, n: int) -> int:
    """Sk from the papers' words, one question at a time: 0 without carries, else 1 + the longest run of
    sum-9 columns that a carry passes through."""
    da = [(a // 10**k) % 10 for k in range(n)]
    db = [(b // 10**k) % 10 for k in range(n)]
    carry, run, best, any_carry = 0, 0, 0, False
    for k in range(n):
        s = da[k] + db[k]
        run = run + 1 if (s == 9 and carry) else 0
        best = max(best, run)
        carry = (s + carry) >= 10
        any_carry |= carry
    return min(1 + best, 5) if any_carry else 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 99_999), st.integers(0, 99_999))
def test_tokens_answers_and_classes_match_integer_addition(a, b):
    D, Dp = addition.parse(f"{a:05d}+{b:05d}")
    tok = addition.tokens(D, Dp)[0]
    assert addition.text(tok) == f"{a:05d}+{b:05d}=+{a + b:06d}"
    assert _ints(addition.answer_digits(D, Dp))[0] == a + b
    assert addition.cascade_length(D, Dp)[0] == _class_by_definition(a, b, N)


def test_positions_follow_the_papers_names():
    names = addition.position_names(N)
    assert len(names) == addition.n_ctx(N) == 19
    assert names[addition.answer_position(0, N)] == "A0" and names[addition.answer_position(5, N)] == "A5"
    assert names[addition.digit_position(3, N)] == "D3" and names[addition.digit_position(3, N, second=True)] == "D'3"
    with pytest.raises(ValueError, match="A0..A5"):
        addition.answer_position(6, N)


def test_parse_rejects_other_questions():
    for bad in ("12-34", "123+45", "12a+345"):
        with pytest.raises(ValueError):
            addition.parse(bad)


@pytest.mark.parametrize("length", range(6))
def test_probes_have_exactly_their_class(length):
    D, Dp = addition.probes(length, 300, N, np.random.default_rng(length))
    assert D.shape == (300, N) and (addition.cascade_length(D, Dp) == length).all()


def test_enrichment_makes_sum_nine_pairs_at_the_asked_rate():
    rng = np.random.default_rng(0)
    D, Dp = addition.sample(20_000, N, rng, enrich_pairs=0.4)
    share = ((D + Dp) == 9).mean()
    assert abs(share - (0.4 + 0.6 * 0.1)) < 0.01  # forced pairs plus the uniform pairs that sum to 9 anyway
    D, Dp = addition.sample(20_000, N, rng)
    assert abs(((D + Dp) == 9).mean() - 0.1) < 0.01


# --------------------------------------------------------------------------------------------------
# The decoder and its hooks
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(one_thread):
    torch.manual_seed(0)
    return Decoder(DecoderConfig(d_model=32, d_head=8, d_mlp=64)).eval()


@pytest.fixture(scope="module")
def tok():
    return addition.tokens(*addition.sample(64, N, np.random.default_rng(1)))


def test_hooks_capture_without_changing_the_output(model, tok):
    t = torch.from_numpy(tok)
    names = set(hook_names(model.cfg))
    hooks = Hooks(capture=names)
    with torch.no_grad():
        torch.testing.assert_close(model(t, hooks), model(t))
    assert set(hooks.cache) == names
    assert hooks.cache["L0.attn.result"].shape == (64, 19, 3, 32)
    torch.testing.assert_close(hooks.cache["L0.attn.pattern"].sum(-1), torch.ones(64, 3, 19))


def test_hooks_that_read_no_head_result_give_the_plain_passs_bytes(model, tok):
    t = torch.from_numpy(tok)
    with torch.no_grad():
        plain = model(t)
        assert torch.equal(model(t, Hooks(capture={"L0.attn.z", "L1.mlp.post"})), plain)  # the fast path
        # identity patches of z and of the MLP: still the same bytes (an ablation's baseline is the clean run)
        same = Hooks(patch={"L1.attn.z": lambda z: z, "L0.mlp.post": lambda h: h})
        assert torch.equal(model(t, same), plain)


def test_starting_at_a_later_block_gives_the_full_passs_bytes(model, tok):
    t = torch.from_numpy(tok)
    inputs = circuits.capture(model, tok, ["L0.resid_pre", "L1.resid_pre"])
    patch = {"L1.attn.z": lambda z: z * 0.5}
    with torch.no_grad():
        full = model(t, Hooks(patch=patch))
        assert torch.equal(model(t, Hooks(patch=patch), start=(1, inputs["L1.resid_pre"])), full)
        assert torch.equal(model(t, start=(0, inputs["L0.resid_pre"])), model(t))
        assert not torch.equal(full, model(t))  # the patch did change something: the test reads a real change


@pytest.mark.parametrize("shape", [dict(d_model=32, d_head=8, d_mlp=64, n_layers=1),
                                   dict(d_model=32, d_head=8, d_mlp=64, n_layers=2),
                                   dict(d_model=128, d_head=32, d_mlp=512, n_layers=2),  # the cpu profile's models
                                   dict(d_model=128, d_head=32, d_mlp=512, n_layers=3, n_heads=4)])
def test_logits_at_some_positions_are_the_full_passs_bytes(one_thread, tok, shape):
    """Decoder.logits_at (scoring's pass: the last block at the asked positions only) gives the full pass's
    logits there, for the answer positions and any other run of positions, at several batch sizes (other matmul
    shapes: equal up to float rounding, the same greedy tokens)."""
    torch.manual_seed(3)
    m = Decoder(DecoderConfig(**shape)).eval()
    t = torch.from_numpy(tok)
    with torch.no_grad():
        full = m(t)
        for positions in (addition.answer_slice(N), slice(0, 19), slice(4, 5), slice(18, None), slice(0, 1)):
            for b in (1, 7, 64):
                got = m.logits_at(t[:b], positions)
                assert got.shape == full[:b, positions].shape
                torch.testing.assert_close(got, full[:b, positions], rtol=1e-6, atol=1e-6)
                assert torch.equal(got.argmax(-1), full[:b, positions].argmax(-1))
    with pytest.raises(ValueError, match="step 1"):
        m.logits_at(t, slice(0, 19, 2))
    with pytest.raises(ValueError, match="non-empty"):
        m.logits_at(t, slice(5, 5))


def test_score_reads_the_trainings_answer_logits(model, tok):
    """score() (logits_at) gives the predictions of the logits training's loss reads (answer_logits: the full
    pass)."""
    D, Dp = addition.sample(300, N, np.random.default_rng(4))
    s = arith_train.score(model, D, Dp, batch=128)
    with torch.no_grad():
        logits = arith_train.answer_logits(model, torch.from_numpy(addition.tokens(D, Dp)), N)
    P = logits.argmax(-1).numpy()
    sign, A = addition.answer(D, Dp)
    np.testing.assert_array_equal(s["wrong_digits"], P[:, 1:][:, ::-1] != A)
    np.testing.assert_array_equal(s["sign_ok"], P[:, 0] == sign)
    np.testing.assert_allclose(s["confidence"], torch.log_softmax(logits, -1).max(-1).values.min(1).values.numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("q", [1, 9, 12, 17])
def test_a_pass_from_a_prefix_gives_the_full_passs_later_positions(model, tok, q):
    """Decoder.forward(prefix=...) computes positions q.. alone from the clean run's keys and values: what the
    full pass computes there, with a patch at q or later too."""
    t = torch.from_numpy(tok)
    L = model.cfg.n_layers
    cache = circuits.capture(model, tok, prefix_names(L) + ["L1.resid_pre"])
    prefix = Prefix.of(cache, q, L)

    def halve_from(at):
        def patch(z):
            z = z.clone()
            z[:, at:] *= 0.5
            return z
        return patch

    with torch.no_grad():
        full = model(t, Hooks(patch={"L1.attn.z": halve_from(q)}))
        suffix = model(t, Hooks(patch={"L1.attn.z": halve_from(0)}), start=(1, cache["L1.resid_pre"][:, q:]),
                       prefix=prefix)
        assert suffix.shape == (len(tok), t.shape[1] - q, model.cfg.d_vocab)
        torch.testing.assert_close(suffix, full[:, q:], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(model(t, prefix=prefix), model(t)[:, q:], rtol=1e-6, atol=1e-6)
        assert not torch.allclose(full[:, q:], model(t)[:, q:])  # the patch changed something: a real test


def test_patched_runs_from_the_clean_run_answer_as_the_full_pass(model, tok):
    """_patched_from (the ablations' and interventions' shortcut) against the full patched pass, for a patch in
    every block at every position, and an intervention's head pair."""
    other = addition.tokens(*addition.sample(len(tok), N, np.random.default_rng(2)))
    names = [f"L{l}.attn.z" for l in range(model.cfg.n_layers)]
    clean = circuits._clean_run(model, tok, names)
    stored = circuits.capture(model, other, names)
    np.testing.assert_array_equal(clean.pred, circuits.answers(model, tok))
    changed = 0
    for p in range(tok.shape[1]):
        for layer in range(model.cfg.n_layers):
            key = f"L{layer}.attn.z"
            patch = {key: circuits._replace((slice(None), p), stored[key][:, p])}
            full = circuits.answers(model, tok, Hooks(patch=patch))
            short = circuits._patched_from(model, clean, p, layer,
                                           {key: circuits._replace((slice(None), 0), stored[key][:, p])})
            np.testing.assert_array_equal(short, full)
            changed += int((full != clean.pred).any())
        nodes = ("L0H1", "L1H2")
        np.testing.assert_array_equal(circuits._patched_answers(model, tok, stored, nodes, p, clean),
                                      circuits._patched_answers(model, tok, stored, nodes, p))
    assert changed > 0  # some patches did change answers


def test_later_node_ablations_skip_nothing_they_need(model, tok):
    """node_ablation and the interventions start later nodes' runs at their block: their answers are those of
    the full pass with the same patch."""
    cache = circuits.capture(model, tok, ["L1.attn.z"])
    mean = {"L1.attn.z": cache["L1.attn.z"].mean(0)}
    hooks = Hooks(patch=circuits._node_patch("L1H0", 14, mean))
    full = circuits.answers(model, tok, hooks)
    table = circuits.node_ablation(model, tok, [14])
    row = table[(table.node == "L1H0")].iloc[0]
    assert row["fail %"] == 100 * circuits.wrong_digits(full, tok).any(1).mean()


def test_attention_is_causal(model, tok):
    t = torch.from_numpy(tok)
    t2 = t.clone()
    t2[:, 15:] = (t2[:, 15:] + 1) % 10
    with torch.no_grad():
        torch.testing.assert_close(model(t)[:, :15], model(t2)[:, :15])


def test_patching_a_head_with_its_own_output_is_the_identity(model, tok):
    same = circuits.patch_nodes(model, tok, tok, ("L0H1", "L1H2"), position=14)
    np.testing.assert_array_equal(same, circuits.answers(model, tok))


def test_ablating_with_the_mean_of_identical_questions_changes_nothing(model, tok):
    one = np.repeat(tok[:1], 8, axis=0)
    base = circuits.wrong_digits(circuits.answers(model, one), one).any(1).mean()
    pos = circuits.position_ablation(model, one)
    nodes = circuits.node_ablation(model, one, positions=[12, 16])
    assert np.allclose(pos["fail %"], 100 * base) and np.allclose(nodes["fail %"], 100 * base)


# --------------------------------------------------------------------------------------------------
# Interventions: the question pairs and what the hypotheses predict
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,k", [("SA", 0), ("SA", 4), ("SC", 1), ("SC", 5), ("ST", 2), ("ST", 5)])
def test_intervention_pairs_differ_only_where_the_hypothesis_says(kind, k):
    clean, store, expected = circuits.intervention_pairs(kind, k, 400, N, np.random.default_rng(k))
    A_clean, A_store = addition.answer_digits(*clean), addition.answer_digits(*store)
    column = k if kind == "SA" else k - 1
    differ = (clean[0] != store[0]) | (clean[1] != store[1])
    assert not np.delete(differ, column, axis=1).any()
    assert (expected != A_clean[:, k]).all()  # every pair tests something
    assert (expected == A_store[:, k]).all()  # and the store question's Ak is what moving its feature gives
    if kind != "SA":  # only the carry into column k differs
        c_clean, c_store = addition.carries_in(*clean)[:, k], addition.carries_in(*store)[:, k]
        assert (c_clean != c_store).all()
    else:
        assert (addition.carries_in(*clean)[:, k] == addition.carries_in(*store)[:, k]).all()


def test_no_hypothesis_holds_on_an_untrained_model(model):
    """An untrained model answers nothing right, so no pair is usable and no hypothesis can hold; an unknown
    hypothesis kind is refused."""
    rows = circuits.hypotheses(model, 64, np.random.default_rng(0))
    assert len(rows) == 5 + 5 + 4 and not rows["holds"].any()
    with pytest.raises(ValueError, match="SA, SC, ST"):
        circuits.intervention_pairs("XY", 1, 4, N, np.random.default_rng(0))


def test_tri_state_questions_have_their_labels():
    D, Dp, label = circuits.tri_state_questions(2, 200, N, np.random.default_rng(0))
    np.testing.assert_array_equal(addition.tri_state(D, Dp)[:, 2], label)
    assert (addition.carries_in(D, Dp)[:, 2] == 0).all()


# --------------------------------------------------------------------------------------------------
# Training: the schedule, validation, exact resume
# --------------------------------------------------------------------------------------------------

TINY = dict(d_model=16, d_head=4, d_mlp=32, batch=16, steps=30, log_every=5, eval_every=10, eval_size=32)


def test_schedule_warms_up_from_one_percent_then_decays_to_zero():
    cfg = AddConfig(steps=1000)
    assert arith_train.learning_rate(cfg, 0) == pytest.approx(0.01 * cfg.lr)
    assert arith_train.learning_rate(cfg, 200) == pytest.approx(cfg.lr)
    assert arith_train.learning_rate(cfg, 1000) == pytest.approx(0.0, abs=1e-12)


def test_bad_configs_fail_before_any_work():
    with pytest.raises(ValueError, match="enrich_pairs must be in"):
        AddConfig(enrich_pairs=1.5)
    with pytest.raises(ValueError, match="unknown AddConfig field 'layers'"):
        AddConfig.from_dict({"layers": 2})
    with pytest.raises(ValueError, match="valid: uniform, enriched, cascade0"):
        arith_predict.test_set("hard", 10, N)


def test_precision_is_one_of_two_and_fp32_keeps_every_run_name():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'auto'"):
        AddConfig(precision="auto")  # no machine-dependent choice: a run's name says what it trains in
    assert AddConfig(precision="fp32").key == AddConfig().key
    assert AddConfig(precision="bf16").key != AddConfig().key


def test_bf16_autocast_changes_the_training_arithmetic_only(data, one_thread):
    fp32 = AddConfig.from_dict(TINY)
    bf16 = fp32.replace(precision="bf16")
    a = torch.load(arith_train.train(fp32, progress=False) / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(arith_train.train(bf16, progress=False) / "checkpoint.pt", weights_only=False)["model"]
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in b.values())  # fp32 master weights
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the matmuls ran in bf16
    close = [torch.allclose(a[k], b[k], atol=0.05, rtol=0.05) for k in a]  # the same run, to bf16's rounding
    assert sum(close) >= 0.9 * len(close)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_is_bit_identical(data, one_thread, precision):
    cfg = AddConfig.from_dict({**TINY, "precision": precision})
    full = arith_train.train(cfg, progress=False)
    final = torch.load(full / "checkpoint.pt", weights_only=False)
    metrics = (full / "metrics.jsonl").read_text()
    shutil.rmtree(full)
    arith_train.train(cfg, progress=False, stop_after=13)  # interrupted between two evaluations
    assert arith_train.run_status(cfg) == "partial"
    arith_train.train(cfg, progress=False)
    resumed = torch.load(full / "checkpoint.pt", weights_only=False)
    for name, w in final["model"].items():
        assert torch.equal(w, resumed["model"][name]), name
    strip = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
             for line in metrics.splitlines()]
    again = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
             for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert strip == again and len(strip) == 6


def test_predictions_count_errors_per_class(data, one_thread):
    cfg = AddConfig.from_dict(TINY)
    arith_train.train(cfg, progress=False)
    df = arith_predict.predictions(cfg, "cascade3", 50)
    assert len(df) == 50 and (df["cascade"] == 3).all()
    D, Dp = arith_predict.operands(df, N)
    assert (addition.cascade_length(D, Dp) == 3).all()
    assert (df["correct"] == ((df["wrong"] == "") & df["sign_ok"])).all()
    assert arith_predict.predictions(cfg, "cascade3", 50).equals(df)  # cached


def test_cached_tables_are_keyed_by_their_parameters(data):
    cfg = AddConfig.from_dict(TINY)
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": [len(calls)]})

    first = arith_predict.cached_table(cfg, "t", {"size": 1}, compute)
    again = arith_predict.cached_table(cfg, "t", {"size": 1}, compute)
    other = arith_predict.cached_table(cfg, "t", {"size": 2}, compute)
    assert len(calls) == 2 and first.equals(again) and other.x.iloc[0] == 2


def test_a_metrics_line_cut_by_a_kill_is_dropped_on_resume(data, one_thread):
    cfg = AddConfig.from_dict(TINY)
    folder = arith_train.train(cfg, progress=False, stop_after=12)
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"step": 15, "questions": 24')  # a kill in the middle of an append
    arith_train.train(cfg, progress=False)
    lines = runs.read_metrics(folder)
    assert [m["step"] for m in lines] == [5, 10, 15, 20, 25, 30]


def test_pair_attention_reads_the_digit_pair_at_the_token_before_the_answer_digit():
    att = np.zeros((2, 3, 19, 19))
    q = addition.answer_position(2, N) - 1
    att[1, 2, q, addition.digit_position(1, N)] = 0.3
    att[1, 2, q, addition.digit_position(1, N, second=True)] = 0.5
    att[0, 0, q + 1, addition.digit_position(1, N)] = 1.0  # another query: not counted
    a = circuits.pair_attention(att, 2, 1)
    assert a.shape == (2, 3) and a[1, 2] == pytest.approx(0.8) and a.sum() == pytest.approx(0.8)


def test_coverage_and_subtraction_study_never_share_a_cached_table(data, one_thread, monkeypatch):
    """A mixed model's coverage map and its subtraction circuit study ablate different question sets: with the
    same question count and seed (notebook 08 at the smoke profile) each must still read its own table."""
    import hashlib

    from mathtx_helpers.arith import circuits, pairs
    from mathtx_helpers.arith import study as arith_study

    ablate = circuits.position_ablation

    def marked(model, tok):  # the table, stamped with the questions it was computed on
        return ablate(model, tok).assign(questions=hashlib.sha256(np.ascontiguousarray(tok)).hexdigest()[:12])

    monkeypatch.setattr(circuits, "position_ablation", marked)
    cfg = AddConfig.from_dict({**TINY, "sub_share": 0.5})
    arith_train.train(cfg, progress=False)
    questions = 60
    cover = arith_study.coverage_study(cfg, questions, seed=0)  # first, as notebook 08 runs them
    Ds, Dps = arith_study.analysis_questions(N, questions, "sub")
    study = arith_study.circuit_study(cfg, Ds, Dps, questions, 4, seed=0, op=addition.MINUS,
                                      kinds=pairs.SUB_KINDS, tag="-sub")
    own = hashlib.sha256(np.ascontiguousarray(study.tok)).hexdigest()[:12]
    assert (study.pos["questions"] == own).all()
    assert own not in set(cover.pos["questions"])  # the two studies did ablate different questions
