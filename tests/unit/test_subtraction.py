"""Subtraction and mixed models: the format, the borrow classes, the enrichment, ins1 insertion, the training
batches' operation mix (ARITHMETIC.md §A1-A4, §B3)."""

import math
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mathtx_helpers.arith import addition, circuits, insertion, pairs, subtraction
from mathtx_helpers.arith import train as arith_train
from mathtx_helpers.arith.config import AddConfig, DecoderConfig
from mathtx_helpers.arith.decoder import Decoder
from mathtx_helpers.core import runs

N = 5


def _class_by_definition(a: int, b: int, n: int) -> str:
    """Schoolbook subtraction a - b on n-digit strings: the borrow chain and its longest run of equal columns."""
    x, y = f"{a:0{n}d}"[::-1], f"{b:0{n}d}"[::-1]
    borrow, run, best, any_borrow = 0, 0, 0, False
    for dx, dy in zip(x, y, strict=True):
        passes = dx == dy and borrow == 1
        run = run + 1 if passes else 0
        best = max(best, run)
        borrow = 1 if int(dx) - int(dy) - borrow < 0 else 0
        any_borrow |= borrow == 1
    return ("N" if a < b else "M") + str(min(1 + best, 4) if any_borrow else 0)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 99_999), st.integers(0, 99_999))
def test_tokens_answers_and_classes_match_integer_subtraction(a, b):
    D, Dp, op = addition.parse_op(f"{a:05d}-{b:05d}")
    assert op == addition.MINUS
    tok = addition.tokens(D, Dp, op)[0]
    assert addition.text(tok) == f"{a:05d}-{b:05d}={'-' if a < b else '+'}{abs(a - b):06d}"
    assert subtraction.classes(D, Dp)[0] == _class_by_definition(a, b, N)
    assert subtraction.borrows_in(D, Dp)[0, N] == (a < b)  # the borrow out of the top column is the sign


def test_the_papers_examples():
    D, Dp, op = addition.parse_op("12345-67890")
    assert addition.text(addition.tokens(D, Dp, op)[0]) == "12345-67890=-055545"
    D, Dp, op = addition.parse_op("099111-099111")
    assert addition.text(addition.tokens(D, Dp, op)[0]) == "099111-099111=+0000000"  # zero is '+'
    # addition is unchanged by the operator argument
    D, Dp = addition.parse("12345+67890")
    assert addition.text(addition.tokens(D, Dp)[0]) == "12345+67890=+080235"


def test_uniform_questions_follow_the_analytic_class_laws():
    """Uniform digits: P(D < D') = (1 - 10^-n) / 2; no column borrows iff every Dk >= D'k: (55/100)^n."""
    D, Dp = subtraction.sample(200_000, N, np.random.default_rng(0))
    c = subtraction.classes(D, Dp)
    neg, m0 = np.char.startswith(c, "N").mean(), (c == "M0").mean()
    for share, law in ((neg, (1 - 10.0 ** -N) / 2), (m0, 0.55 ** N)):
        assert abs(share - law) < 4 * np.sqrt(law * (1 - law) / len(c))
    assert set(c) <= set(subtraction.CLASSES)


@pytest.mark.parametrize("label", subtraction.CLASSES)
def test_probes_have_exactly_their_class(label):
    D, Dp = subtraction.probes(label, 300, N, np.random.default_rng(3))
    assert D.shape == Dp.shape == (300, N)
    assert (subtraction.classes(D, Dp) == label).all()
    assert ((0 <= D) & (D <= 9) & (0 <= Dp) & (Dp <= 9)).all()  # digits only: no borrow maker drew a 10


def test_probes_name_the_valid_classes():
    with pytest.raises(ValueError, match="M0, M1, M2, M3, M4\\+, N1"):
        subtraction.probes("N0", 10, N, np.random.default_rng(0))
    with pytest.raises(ValueError, match="impossible"):
        subtraction.probes("M4", 10, 3, np.random.default_rng(0))
    assert (subtraction.classes(*subtraction.probes("M4+", 20, N, np.random.default_rng(0))) == "M4").all()


def test_enriched_batches_make_borrow_cascades_negative_answers_and_zeros():
    rng = np.random.default_rng(5)
    uniform = subtraction.classes(*subtraction.sample(50_000, N, rng))
    batches = [subtraction.training_batch(512, N, rng, enrich_batches=1.0, enrich_pairs=0.4) for _ in range(150)]
    D, Dp = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    enriched = subtraction.classes(D, Dp)
    long_ = lambda c: np.isin(c, ["M3", "M4", "N3", "N4"]).mean()  # noqa: E731
    assert long_(enriched) > 5 * long_(uniform)
    zero = (D == Dp).all(1).mean()
    assert 0.005 < zero < 0.05  # ZERO_SHARE = 1 % (plus the equal pairs' own zeros)
    # with no enrichment, the batch is the uniform sample of the same draws
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    b = subtraction.training_batch(64, N, r1, enrich_batches=0.0, enrich_pairs=0.4)
    r2.random()
    np.testing.assert_array_equal(b[0], subtraction.sample(64, N, r2)[0])


def test_mixed_batches_follow_the_operation_mix_and_single_operations_draw_nothing():
    mixed = AddConfig(sub_share=0.66, batch=8)
    rng = np.random.default_rng(0)
    ops = [arith_train.training_batch(mixed, rng)[2] for _ in range(3_000)]
    share = np.mean(np.array(ops) == addition.MINUS)
    assert abs(share - 0.66) < 4 * np.sqrt(0.66 * 0.34 / 3_000)
    # an addition run's batches are exactly the ones it drew before operations existed (same bytes, same runs)
    r1, r2 = np.random.default_rng(1), np.random.default_rng(1)
    D, Dp, op = arith_train.training_batch(AddConfig(batch=8), r1)
    D2, Dp2 = addition.training_batch(8, 5, r2, 0.6, 0.4)
    assert op == addition.PLUS and np.array_equal(D, D2) and np.array_equal(Dp, Dp2)


def test_configs_name_their_task_and_keep_the_addition_runs_names():
    assert AddConfig().name.startswith("addition-d5-l2-h3-")
    assert AddConfig().key == AddConfig(sub_share=0.0, init_from="").key  # new fields at defaults: same hash
    assert AddConfig(sub_share=1.0).name.startswith("subtraction-")
    assert AddConfig(sub_share=0.66).operations == ("add", "sub")
    assert AddConfig(sub_share=0.8, init_from="addition-d5-l2-h3-abc").name.startswith("ins1-mixed-")
    with pytest.raises(ValueError, match="sub_share"):
        AddConfig(sub_share=1.5)
    sets = arith_train.eval_sets(AddConfig(sub_share=0.5, eval_size=16))
    assert list(sets) == ["add uniform", "add enriched", "sub uniform", "sub enriched"]
    assert list(arith_train.eval_sets(AddConfig(eval_size=16))) == ["uniform", "enriched"]


# --------------------------------------------------------------------------------------------------
# ins1
# --------------------------------------------------------------------------------------------------


def _model(seed: int, **shape) -> Decoder:
    torch.manual_seed(seed)
    return Decoder(DecoderConfig(d_model=32, d_head=8, d_mlp=64, **shape)).eval()


def test_inserting_into_the_same_shape_reproduces_the_model_exactly():
    src, dst = _model(0), _model(1)
    insertion.insert(src, dst)
    tok = torch.from_numpy(addition.tokens(*addition.sample(32, N, np.random.default_rng(0))))
    with torch.no_grad():
        assert torch.equal(dst(tok), src(tok))


def test_inserting_into_a_larger_model_copies_the_first_heads_and_layers_only():
    src, dst = _model(0), _model(1, n_layers=3, n_heads=4)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    insertion.insert(src, dst)
    H, dh, C = 3, 8, 32
    for l in range(2):
        a_s, a_d = src.blocks[l].attn, dst.blocks[l].attn
        q_s, q_d = a_s.W_QKV.weight.view(3, H, dh, C), a_d.W_QKV.weight.view(3, 4, dh, C)
        assert torch.equal(q_d[:, :H], q_s)
        assert torch.equal(q_d[:, H], before[f"blocks.{l}.attn.W_QKV.weight"].view(3, 4, dh, C)[:, H])  # head 3 new
        assert torch.equal(a_d.W_O[:H], a_s.W_O) and torch.equal(a_d.W_O[H], before[f"blocks.{l}.attn.W_O"][H])
        assert torch.equal(dst.blocks[l].W_in.weight, src.blocks[l].W_in.weight)
    for k, v in dst.blocks[2].state_dict().items():  # the third layer keeps its initialisation
        assert torch.equal(v, before[f"blocks.2.{k}"])
    assert torch.equal(dst.embed.weight, src.embed.weight) and torch.equal(dst.unembed.bias, src.unembed.bias)


def test_insertion_names_the_dimension_that_does_not_fit():
    with pytest.raises(ValueError, match="d_head differs"):
        insertion.insert(_model(0), Decoder(DecoderConfig(d_model=32, d_head=16, d_mlp=64)))
    with pytest.raises(ValueError, match="n_layers .3. is larger"):
        insertion.insert(_model(0, n_layers=3), _model(1))


# --------------------------------------------------------------------------------------------------
# Training: mixed runs resume exactly; ins1 starts from the trained model
# --------------------------------------------------------------------------------------------------

TINY = dict(d_model=16, d_head=4, d_mlp=32, batch=16, steps=30, log_every=5, eval_every=10, eval_size=32)


def test_a_mixed_run_resumes_bit_identically_and_logs_both_operations(data, one_thread):
    cfg = AddConfig.from_dict({**TINY, "sub_share": 0.66})
    full = arith_train.train(cfg, progress=False)
    final = torch.load(full / "checkpoint.pt", weights_only=False)["model"]
    shutil.rmtree(full)
    arith_train.train(cfg, progress=False, stop_after=13)
    arith_train.train(cfg, progress=False)
    resumed = torch.load(full / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(w, resumed[k]) for k, w in final.items())
    last = runs.read_metrics(full)[-1]
    assert set(last["acc"]) == {"add uniform", "add enriched", "sub uniform", "sub enriched"}


def test_ins1_starts_from_the_trained_model_and_needs_it_finished(data, one_thread):
    add = AddConfig.from_dict(TINY)
    ins = AddConfig.from_dict({**TINY, "n_layers": 3, "n_heads": 5, "sub_share": 0.8, "init_from": add.name,
                               "steps": 1, "eval_every": 1, "log_every": 1})
    with pytest.raises(ValueError, match="train that run first"):
        arith_train.train(ins, progress=False)
    arith_train.train(add, progress=False)
    arith_train.train(ins, progress=False, stop_after=0)  # the inserted model, before any step
    start = torch.load(arith_train.run_dir(ins) / "checkpoint.pt", weights_only=False)["model"]
    trained = arith_train.load(add).state_dict()
    assert torch.equal(start["embed.weight"], trained["embed.weight"])
    assert torch.equal(start["blocks.1.attn.W_O"][:3], trained["blocks.1.attn.W_O"])


def test_subtraction_predictions_count_errors_per_class(data, one_thread):
    from mathtx_helpers.arith import predict as arith_predict

    cfg = AddConfig.from_dict({**TINY, "sub_share": 1.0})
    arith_train.train(cfg, progress=False)
    df = arith_predict.predictions(cfg, "N3", 40)
    assert len(df) == 40 and (df["class"] == "N3").all() and (df["cascade"] == 3).all()
    assert (df["correct"] == ((df["wrong"] == "") & df["sign_ok"])).all()
    sizes = arith_predict.test_sizes((100, 50, 10), "sub")
    assert list(sizes)[:3] == ["sub uniform", "sub enriched", "M0"] and sizes["N4"] == 10
    add = AddConfig.from_dict(TINY)
    with pytest.raises(ValueError, match="addition only"):
        arith_predict.predictions(add, "sub uniform", 10)


def test_curves_find_the_first_step_at_a_target():
    from mathtx_helpers.arith import curves

    metrics = [{"step": 100, "questions": 800, "loss": 1.0},
               {"step": 200, "questions": 1600, "acc": {"add uniform": 0.5, "sub uniform": 0.1}},
               {"step": 400, "questions": 3200, "acc": {"add uniform": 0.995, "sub uniform": 0.8}},
               {"step": 600, "questions": 4800, "acc": {"add uniform": 0.98, "sub uniform": 0.999}}]
    c = curves.accuracy_curves(metrics)
    assert len(c) == 6
    assert curves.steps_to(c, "add uniform", 99) == 400  # the first time, even though it dips later
    assert curves.steps_to(c, "sub uniform", 99.9) == 600
    assert math.isnan(curves.steps_to(c, "sub uniform", 99.99))
    with pytest.raises(ValueError, match="sets: add uniform, sub uniform"):
        curves.steps_to(c, "uniform", 99)
    # every set: the last of their first steps; NaN when one never gets there, in whichever order they come
    assert curves.steps_to_every(c, ["add uniform", "sub uniform"], 99) == 600
    for names in (["add uniform", "sub uniform"], ["sub uniform", "add uniform"]):
        assert math.isnan(curves.steps_to_every(c, names, 99.95))


@pytest.mark.parametrize("add_step,sub_step,holds", [(400, 600, "yes"), (600, 400, "no"), (400, math.nan, "yes"),
                                                     (math.nan, 400, "no"), (math.nan, math.nan, "cannot tell")])
def test_c2_addition_first_reads_a_run_that_never_learns_subtraction(add_step, sub_step, holds):
    from mathtx_helpers.arith import claims

    row = claims.C2.row(sub_step - add_step, "cpu", target=99, add_step=add_step, sub_step=sub_step)
    assert row["holds"] == holds


@pytest.mark.parametrize("scratch,ins1,holds", [(12_000, 7_000, "yes"), (7_000, 12_000, "no"),
                                                (math.nan, 7_000, "yes"), (12_000, math.nan, "no"),
                                                (math.nan, math.nan, "cannot tell")])
def test_c5_ins1_faster_reads_a_model_that_never_reaches_both(scratch, ins1, holds):
    from mathtx_helpers.arith import claims

    assert claims.C5.row(scratch / ins1, "cpu", target=99, scratch=scratch, ins1=ins1)["holds"] == holds


# --------------------------------------------------------------------------------------------------
# Intervention pairs for the subtraction sub-tasks (pairs.py)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,k", [("MD", 0), ("MD", 2), ("MD", 4), ("MB", 1), ("MB", 4), ("MT", 2), ("MT", 4),
                                    ("SGN", N + 1)])
def test_subtraction_pairs_differ_only_where_the_hypothesis_says(kind, k):
    """Checked against the integer answers: the pair differs in one column, every pair changes the predicted token,
    and the store question's own token is what swapping the named feature gives."""
    clean, store, expected = pairs.intervention_pairs(kind, k, 2_000, N, np.random.default_rng(k))
    (sign_c, A_clean), (sign_s, A_store) = subtraction.answer(*clean), subtraction.answer(*store)
    column = {"MD": k, "SGN": N - 1}.get(kind, k - 1)
    differ = (clean[0] != store[0]) | (clean[1] != store[1])
    assert differ[:, column].all() and not np.delete(differ, column, axis=1).any()
    if kind == "SGN":
        assert (sign_c != sign_s).all() and (expected == sign_s).all()
        return
    assert (sign_c == addition.PLUS).all() and (sign_s == addition.PLUS).all()  # class M: D >= D' in both
    assert (expected != A_clean[:, k]).all() and (expected == A_store[:, k]).all()
    b_clean, b_store = subtraction.borrows_in(*clean)[:, k], subtraction.borrows_in(*store)[:, k]
    if kind == "MD":  # the base difference changes, the borrow into column k does not
        assert (b_clean == b_store).all()
        assert ((clean[0][:, k] - clean[1][:, k]) % 10 != (store[0][:, k] - store[1][:, k]) % 10).all()
    else:  # only the borrow into column k differs, and it stops there: no higher digit moves
        assert (b_clean != b_store).all()
        np.testing.assert_array_equal(A_clean[:, k + 1:], A_store[:, k + 1:])
    if kind == "MT":  # the borrow passes through an equal column in one question and is absorbed in the other
        equal = lambda q: q[0][:, k - 1] == q[1][:, k - 1]  # noqa: E731
        assert (equal(clean) != equal(store)).all()
        for q in (clean, store):
            assert (subtraction.borrows_in(*q)[:, k - 1] == 1).all()


def test_subtraction_hypotheses_are_tested_on_their_digits_and_refuse_others():
    assert list(pairs.digits_tested("MD", N)) == [0, 1, 2, 3, 4]
    assert list(pairs.digits_tested("MB", N)) == [1, 2, 3, 4]
    assert list(pairs.digits_tested("MT", N)) == [2, 3, 4]
    assert pairs.label("SGN", N + 1) == "sign.SGN" and pairs.predicted_at("SGN", N + 1, N) == 2 * N + 1
    assert pairs.operator("MB") == addition.MINUS and pairs.operator("SA") == addition.PLUS
    with pytest.raises(ValueError, match="A2.MT..A4.MT"):
        pairs.intervention_pairs("MT", 5, 4, N, np.random.default_rng(0))
    with pytest.raises(ValueError, match="SA, SC, ST, MD, MB, MT, SGN"):
        pairs.intervention_pairs("MZ", 1, 4, N, np.random.default_rng(0))


def test_subtraction_hypotheses_on_an_untrained_model_hold_nowhere_and_name_the_sign():
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(d_model=32, d_head=8, d_mlp=64)).eval()
    rows = circuits.hypotheses(model, 32, np.random.default_rng(0), kinds=pairs.SUB_KINDS)
    assert len(rows) == 5 + 4 + 3 + 1 and not rows.holds.any()
    assert rows.hypothesis.iloc[-1] == "sign.SGN" and rows.position.iloc[-1] == 2 * N + 1
    with pytest.raises(ValueError, match="valid: SA"):
        circuits.hypotheses(model, 32, np.random.default_rng(0), kinds=("MZ",))
