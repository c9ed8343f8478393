"""Number encodings, matrix framing and the vocabulary (PAPER.md §C)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mathtx_helpers.matrix import encoding as E
from mathtx_helpers.matrix import tasks

PROPS = settings(max_examples=150, deadline=None, derandomize=True, database=None)

# largest magnitudes that still round into range (FP15: 9.995e8 rounds to 1.00e9; P: 9.995e102 to 1.00e103)
LIMIT = {"FP15": 9.995e8, "P10": 9.995e102, "P1000": 9.995e102, "B1999": 9.995e102}
# below this the P encodings have no exponent word: values flush to zero
P_FLUSH = 1e-98

# (input encoding, output encoding, encoding under test): each encoding in its own vocabulary,
# plus both halves of the WIMTD pair FP15 -> P1000
VOCAB_CASES = [(e, e, e) for e in E.ENCODINGS] + [("FP15", "P1000", "FP15"), ("FP15", "P1000", "P1000")]
VOCAB_IDS = [f"{i}->{o}:{e}" for i, o, e in VOCAB_CASES]


def in_range_floats(name: str) -> st.SearchStrategy[float]:
    """Floats the encoding can represent: hypothesis' own (edge cases, subnormals) and log-uniform ones."""
    hi = float(np.nextafter(LIMIT[name], 0.0))
    plain = st.floats(min_value=-hi, max_value=hi, allow_nan=False, allow_infinity=False)
    lo_exp = -9 if name == "FP15" else -98
    hi_exp = 8 if name == "FP15" else 102
    log_uniform = st.builds(
        lambda s, m, k: s * min(m * 10.0**k, hi),
        st.sampled_from([-1.0, 1.0]),
        st.floats(min_value=1.0, max_value=10.0, exclude_max=True),
        st.integers(lo_exp, hi_exp),
    )
    return st.one_of(plain, log_uniform, st.sampled_from([0.0, -0.0, hi, -hi, 1e-7, -1e-7, 9.996, 1e-98]))


def check_round_trip(xs: list[float], inp: str, out: str, name: str, upper: bool = False) -> None:
    """Encode (B, 1, 1), (1, 1, N) and (1, N, 1) layouts; every decode path gives quantize exactly."""
    vocab = E.vocabulary(inp, out)
    x = np.array(xs, dtype=np.float64)
    q = E.quantize(x, name)
    for X in (x.reshape(-1, 1, 1), x.reshape(1, 1, -1), x.reshape(1, -1, 1)):
        ids, lengths = vocab.encode(X, name)
        Q = q.reshape(X.shape)
        shape = X.shape[1:]
        for b in range(X.shape[0]):
            for seq in (ids[b, : lengths[b]], ids[b]):  # trimmed and padded
                M = vocab.decode(seq, name, shape=shape)
                assert M is not None and M.shape == shape
                np.testing.assert_array_equal(M, Q[b])
            assert vocab.decode(ids[b, 1:], name) is not None  # the leading <s> is optional
        batch, valid = vocab.decode_batch(ids, name, shape)
        assert valid.all()
        np.testing.assert_array_equal(batch, Q)


# --------------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("inp", "out", "name"), VOCAB_CASES, ids=VOCAB_IDS)
def test_round_trip_equals_quantize(inp, out, name):
    @PROPS
    @given(st.lists(in_range_floats(name), min_size=1, max_size=12))
    def prop(xs):
        check_round_trip(xs, inp, out, name)

    prop()


@pytest.mark.parametrize("name", E.ENCODINGS)
def test_quantize_error_and_sign(name):
    @PROPS
    @given(st.lists(in_range_floats(name), min_size=1, max_size=20))
    def prop(xs):
        x = np.array(xs)
        q = E.quantize(x, name)
        assert np.all(np.isfinite(q))
        if name == "FP15":
            small = np.abs(x) < 1e-7
            assert np.all(np.abs(q - x)[small] <= 5e-10)
            normal = ~small
        else:
            normal = np.abs(x) >= P_FLUSH
            assert np.all(q[np.abs(x) < 1e-99] == 0)  # far below the smallest exponent: exactly zero
        rel = np.abs(q - x)[normal] / np.abs(x)[normal]
        assert np.all(rel <= E.MAX_RELATIVE_ERROR), (x[normal], q[normal])
        nz = q != 0
        assert np.all(np.sign(q[nz]) == np.sign(x[nz]))
        assert np.all(q[x == 0] == 0)
        np.testing.assert_array_equal(E.quantize(q, name), q)  # quantize is idempotent

    prop()


@pytest.mark.parametrize("name", E.ENCODINGS)
def test_zero_and_both_signs(name):
    xs = [0.0, -0.0, 3.14, -3.14, 1e-5, -1e-5, 123456.0, -123456.0, 5e-8, -5e-8]
    check_round_trip(xs, name, name, name)
    q = E.quantize(np.array(xs), name)
    assert q[0] == 0 and q[1] == 0
    assert np.all(np.sign(q[2:]) == np.sign(xs[2:]))


@pytest.mark.parametrize("name", E.ENCODINGS)
def test_tiny_and_subnormal_values(name):
    """Values below every encoding's resolution (down to subnormals) encode to a decodable zero."""
    xs = [5e-324, -5e-324, 1e-322, -3e-321, 1e-310, -2.2e-308, 1e-200, -1e-120]
    check_round_trip(xs, name, name, name)
    np.testing.assert_array_equal(E.quantize(np.array(xs), name), 0.0)


@pytest.mark.parametrize(("inp", "out", "name"), VOCAB_CASES, ids=VOCAB_IDS)
def test_upper_triangle_round_trip(inp, out, name):
    vocab = E.vocabulary(inp, out)
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 6):
        X = rng.uniform(-10, 10, size=(8, n, n))
        X = X + X.transpose(0, 2, 1)
        X[0, 0, -1] = X[0, -1, 0] = 0.0  # an exact zero off the diagonal
        ids, lengths = vocab.encode(X, name, upper=True)
        if name != "P10":
            assert np.all(lengths == E.sequence_length(n, n, name, upper=True) + 2)
        Q = E.quantize(X, name)
        for b in range(X.shape[0]):
            M = vocab.decode(ids[b], name, shape=(n, n), upper=True)
            np.testing.assert_array_equal(M, Q[b])
            np.testing.assert_array_equal(M, M.T)
        batch, valid = vocab.decode_batch(ids, name, (n, n), upper=True)
        assert valid.all()
        np.testing.assert_array_equal(batch, Q)
        if n > 1:  # an upper-triangle sequence is not a full matrix, and vice versa
            assert vocab.decode(ids[1], name, shape=(n, n)) is None
            full, _ = vocab.encode(X, name)
            assert vocab.decode(full[1], name, shape=(n, n), upper=True) is None


def test_p10_exact_zeros_variable_width():
    vocab = E.vocabulary("P10", "P10")
    X = np.array([
        [[0.0, 1.5], [-2.25, 0.0]],
        [[3.0, 4.0], [5.0, 6.0]],
        [[0.0, 0.0], [0.0, 0.0]],
        [[-0.0, 7e-3], [0.0, -8e5]],
    ])
    ids, lengths = vocab.encode(X, "P10")
    zeros = (X == 0).sum(axis=(1, 2))
    np.testing.assert_array_equal(lengths, 4 + 4 * 5 - 2 * zeros)  # a zero is "+ 0 E0": 3 tokens
    assert np.all(ids[np.arange(ids.shape[1])[None, :] >= lengths[:, None]] == vocab.pad)
    assert vocab.encode_tokens(X[2:3], "P10")[0] == ["<s>", "V2", "V2", *["+", "0", "E0"] * 4, "</s>"]
    Q = E.quantize(X, "P10")
    for b in range(len(X)):
        np.testing.assert_array_equal(vocab.decode(ids[b], "P10", shape=(2, 2)), Q[b])
        np.testing.assert_array_equal(vocab.decode(ids[b, : lengths[b]], "P10"), Q[b])
    batch, valid = vocab.decode_batch(ids, "P10", (2, 2))
    assert valid.all()
    np.testing.assert_array_equal(batch, Q)


# --------------------------------------------------------------------------------------------------
# out of range
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", E.ENCODINGS)
def test_out_of_range_raises_naming_the_encoding(name):
    vocab = E.vocabulary(name, name)
    lo = 9.995e8 if name == "FP15" else 1e103
    bad = [lo, -lo, 2 * lo, 1e300, -np.finfo(float).max, math.nan, math.inf, -math.inf]
    if name != "FP15":
        bad = bad[2:] + [1e103, -1e103, 9.999e102 * 10]
    for x in bad:
        with pytest.raises(ValueError, match=name):
            E.quantize(np.array([1.0, x]), name)
        with pytest.raises(ValueError, match=name):
            vocab.encode(np.array([[[1.0, x]]]), name)
        assert not E.in_range(np.array([x]), name)[0]
    ok = np.array([9.994e8, -9.994e8, 1e-300, 0.0]) if name == "FP15" else np.array([9.994e102, -9.99e102])
    assert E.in_range(ok, name).all()
    E.quantize(ok, name)


@pytest.mark.parametrize("name", E.ENCODINGS)
def test_in_range_agrees_with_raising(name):
    any_float = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.builds(lambda s, m, k: s * m * 10.0**k, st.sampled_from([-1.0, 1.0]),
                  st.floats(9.99, 10.0), st.integers(7, 9) if name == "FP15" else st.integers(101, 103)),
    )

    @PROPS
    @given(any_float)
    def prop(x):
        ok = bool(E.in_range(np.array([x]), name)[0])
        try:
            E.quantize(np.array([x]), name)
            raised = False
        except ValueError as err:
            assert name in str(err)
            raised = True
        assert ok != raised
        # the mask is element-wise: mixed arrays give the same answers
        mask = E.in_range(np.array([0.5, x, -2.0]), name)
        np.testing.assert_array_equal(mask, [True, ok, True])

    prop()


# --------------------------------------------------------------------------------------------------
# the paper's tables
# --------------------------------------------------------------------------------------------------

WORKED = [  # PAPER.md §C.2, with the ASCII '-' the vocabulary uses
    (3.14, "+ 3 1 4 E-2", "+ 314 E-2", "N314 E-2", "N314e7"),
    (-3.14, "- 3 1 4 E-2", "- 314 E-2", "N-314 E-2", "N-314e7"),
    (0.0, "+ 0 E0", "+ 0 E0", "N0 E0", "N0e0"),
    (1e-5, "+ 1 0 0 E-7", "+ 100 E-7", "N100 E-7", "N100e2"),
    (123456.0, "+ 1 2 3 E3", "+ 123 E3", "N123 E3", "N123e12"),
    (9.996, "+ 1 0 0 E-1", "+ 100 E-1", "N100 E-1", "N100e8"),
]


@pytest.mark.parametrize("row", WORKED, ids=[str(r[0]) for r in WORKED])
@pytest.mark.parametrize("inp_out", ["same", "wimtd"])
def test_worked_examples(row, inp_out):
    x, *expected = row
    for name, tokens in zip(("P10", "P1000", "B1999", "FP15"), expected, strict=True):
        if inp_out == "wimtd" and name not in ("FP15", "P1000"):
            continue
        vocab = E.vocabulary(name, name) if inp_out == "same" else E.vocabulary("FP15", "P1000")
        got = vocab.encode_tokens(np.array([[[x]]]), name)
        assert got == [["<s>", "V1", "V1", *tokens.split(), "</s>"]], name
        ids = [vocab.index[w] for w in got[0]]
        np.testing.assert_array_equal(vocab.decode(ids, name), E.quantize(np.array([[x]]), name))


def test_worked_matrix_framing_row_major():
    vocab = E.vocabulary("FP15", "P1000")
    X = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    assert vocab.encode_tokens(X, "P1000") == [[
        "<s>", "V2", "V3", "+", "100", "E-2", "+", "200", "E-2", "+", "300", "E-2",
        "+", "400", "E-2", "+", "500", "E-2", "+", "600", "E-2", "</s>"]]
    assert vocab.words[:3] == ("<s>", "</s>", "<pad>")


def test_fp15_overflow_words_decode_to_1e9():
    vocab = E.vocabulary("FP15", "FP15")
    for word, value in (("NaN", 1e9), ("-NaN", -1e9)):
        ids = [vocab.bos, vocab.dim(1), vocab.dim(1), vocab.index[word], vocab.eos]
        np.testing.assert_array_equal(vocab.decode(ids, "FP15"), [[value]])


@pytest.mark.parametrize(("inp", "out", "size"), [
    ("FP15", "P1000", 30_329), ("FP15", "FP15", 29_128), ("P1000", "P1000", 1_328),
    ("B1999", "B1999", 2_329), ("P10", "P10", 338),
])
def test_vocabulary_sizes(inp, out, size):
    vocab = E.vocabulary(inp, out)
    assert vocab.size == size == len(set(vocab.words))
    assert len(vocab.index) == size


def test_fp15_numeric_vocabulary_size():
    assert len(E.number_encoding("FP15").words) == 29_001


SEQ_TABLE = [  # PAPER.md §C.4: (rows, cols) -> P10, P1000, B1999, FP15
    ((5, 5), (127, 77, 52, 27)),
    ((5, 1), (27, 17, 12, 7)),
    ((6, 5), (152, 92, 62, 32)),
    ((6, 6), (182, 110, 74, 38)),
    ((7, 6), (212, 128, 86, 44)),
]


@pytest.mark.parametrize(("shape", "lengths"), SEQ_TABLE, ids=[f"{r}x{c}" for (r, c), _ in SEQ_TABLE])
def test_sequence_length_table(shape, lengths):
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 10, size=(3, *shape)) * rng.choice([-1, 1], size=(3, *shape))  # no zeros
    for name, expected in zip(("P10", "P1000", "B1999", "FP15"), lengths, strict=True):
        assert E.sequence_length(*shape, name) == expected
        _, got = E.vocabulary(name, name).encode(X, name)
        np.testing.assert_array_equal(got, expected + 2)  # plus <s> and </s>


# --------------------------------------------------------------------------------------------------
# decoding garbage
# --------------------------------------------------------------------------------------------------

FUZZ_SHAPES = [((1, 1), False), ((2, 3), False), ((3, 1), False), ((3, 3), False), ((3, 3), True)]
FUZZ_PER_SHAPE = 2_000  # x 5 shapes = 10,000 sequences per encoding


def _mutate(seq: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    seq = seq.copy()
    for _ in range(rng.integers(1, 4)):
        op = rng.integers(5)
        if seq.size == 0:
            break
        i = int(rng.integers(seq.size))
        if op == 0:  # drop
            seq = np.delete(seq, i)
        elif op == 1:  # swap
            j = int(rng.integers(seq.size))
            seq[i], seq[j] = seq[j], seq[i]
        elif op == 2:  # duplicate
            seq = np.insert(seq, i, seq[i])
        elif op == 3:  # replace by any word
            seq[i] = rng.integers(size)
        else:  # truncate
            seq = seq[:i]
    return seq


def _fuzz_sequences(vocab: E.Vocabulary, name: str, shape, upper: bool, rng) -> list[np.ndarray]:
    r, c = shape
    X = rng.uniform(-1e3, 1e3, size=(FUZZ_PER_SHAPE, r, c)) * 10.0 ** rng.integers(-5, 5, size=(1, 1, 1))
    X[rng.random(X.shape) < 0.2] = 0.0
    if upper:
        X = np.triu(X) + np.triu(X, 1).transpose(0, 2, 1)
    ids, lengths = vocab.encode(X, name, upper=upper)
    out = []
    for b in range(FUZZ_PER_SHAPE):
        if b % 2:
            out.append(_mutate(ids[b, : lengths[b]], rng, vocab.size))
        else:
            length = int(rng.integers(0, 61))
            hi = vocab.size + 10 if b % 4 == 0 else 40  # small ids: special words, signs, digits
            out.append(rng.integers(-10, hi, size=length))
    return out


@pytest.mark.parametrize("name", E.ENCODINGS)
def test_fuzzed_sequences_never_raise(name):
    vocab = E.vocabulary(name, name)
    rng = np.random.default_rng(1234)
    n_valid = 0
    for shape, upper in FUZZ_SHAPES:
        seqs = _fuzz_sequences(vocab, name, shape, upper, rng)
        singles = []
        for s in seqs:
            M = vocab.decode(s, name, shape=shape, upper=upper)
            assert M is None or (isinstance(M, np.ndarray) and M.shape == shape and np.isfinite(M).all())
            singles.append(M)
            free = vocab.decode(s, name)  # no expected shape
            assert free is None or (isinstance(free, np.ndarray) and free.ndim == 2)
        n_valid += sum(M is not None for M in singles)
        width = max(len(s) for s in seqs) + 1
        for prefix in ([], [vocab.bos]):  # the second batch has a leading <s> on every row
            batch = np.full((len(seqs), width + len(prefix)), vocab.pad, dtype=np.int64)
            rows = []
            for b, s in enumerate(seqs):
                row = np.array(prefix + list(s), dtype=np.int64)
                batch[b, : row.size] = row
                rows.append(row)
            values, valid = vocab.decode_batch(batch, name, shape, upper=upper)
            assert values.shape == (len(seqs), *shape) and valid.shape == (len(seqs),)
            assert np.isnan(values[~valid]).all()
            for b, row in enumerate(rows):
                M = vocab.decode(row, name, shape=shape, upper=upper) if prefix else singles[b]
                assert valid[b] == (M is not None), (b, row)
                if M is not None:
                    np.testing.assert_array_equal(values[b], M)
    assert n_valid > 100  # the mutations leave some sequences valid: both branches are exercised


def test_decode_rejects_non_integer_and_odd_inputs():
    vocab = E.vocabulary("FP15", "P1000")
    assert vocab.decode(np.array([0.5, 1.5]), "FP15") is None
    assert vocab.decode([], "P1000") is None
    assert vocab.decode(np.array([[vocab.bos]]), "P1000") is None
    assert vocab.decode(["V1", "V1"], "P1000") is None
    values, valid = vocab.decode_batch(np.zeros((0, 5), dtype=np.int64), "P1000", (1, 1))
    assert values.shape == (0, 1, 1) and valid.shape == (0,)
    values, valid = vocab.decode_batch(np.zeros((3, 0), dtype=np.int64), "P1000", (1, 1))
    assert not valid.any() and np.isnan(values).all()


# --------------------------------------------------------------------------------------------------
# names and reproducibility
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: E.check_encoding("P100"),
    lambda: E.quantize(np.ones(2), "fp15"),
    lambda: E.in_range(np.ones(2), "FP16"),
    lambda: E.number_encoding("B2000"),
    lambda: E.Vocabulary("FP15", "P999"),
    lambda: E.vocabulary("float", "P1000"),
    lambda: E.sequence_length(5, 5, "P100"),
    lambda: E.vocabulary("FP15", "P1000").encode(np.ones((1, 2, 2)), "P10000"),
])
def test_unknown_encoding_names(call):
    with pytest.raises(ValueError, match="valid encodings") as info:
        call()
    for name in E.ENCODINGS:
        assert name in str(info.value)


def test_same_seed_same_token_bytes():
    def tokens(seed: int) -> bytes:
        problems = tasks.make_problems("eigenvectors", 5, 16, np.random.default_rng(seed))
        vocab = E.Vocabulary("FP15", "P1000")  # a fresh, uncached instance
        src, _ = vocab.encode(problems.A, "FP15")
        tgt, _ = vocab.encode(problems.target, "P1000")
        return src.tobytes() + tgt.tobytes()

    assert tokens(3) == tokens(3)
    assert tokens(3) != tokens(4)
    rng = np.random.default_rng(5)
    X = rng.normal(0, 100, size=(4, 3, 3))
    for name in E.ENCODINGS:
        a, _ = E.vocabulary(name, name).encode(X, name)
        b, _ = E.Vocabulary(name, name).encode(X.copy(), name)
        assert a.tobytes() == b.tobytes()
