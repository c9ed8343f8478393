"""The decayed initial embeddings that shipped files are coded against (matrix/train.py: decayed_init)."""

from __future__ import annotations

import numpy as np

from mathtx_helpers.matrix import train
from mathtx_helpers.profiles import get_profile


def _reference(flat: np.ndarray, factors: np.ndarray, steps: list[int]) -> dict[int, np.ndarray]:
    """The plain loop: the whole array multiplied by one factor per step, as AdamW's p.mul_(1 - lr * wd)."""
    x, out = flat.copy(), {}
    for t, f in enumerate(factors, start=1):
        np.multiply(x, f, out=x)
        if t in steps:
            out[t] = x.copy()
    return out


def test_blocked_decay_equals_the_plain_loop_bit_for_bit_and_the_cache_is_safe():
    rng = np.random.default_rng(0)
    flat = rng.standard_normal(70_001).astype(np.float32)  # not a multiple of the block
    factors = (1 - rng.random(300) * 1e-4).astype(np.float32)
    want = _reference(flat, factors, [120, 300])
    got = train._decayed(flat, factors, [120, 300])
    assert set(got) == {120, 300}
    for s in got:
        assert np.array_equal(got[s].view(np.int32), want[s].view(np.int32))
    got[300][:] = 0  # the caller's copy: the memoized answer must not change
    again = train._decayed(flat, factors, [120, 300])
    assert np.array_equal(again[300], want[300]) and not np.array_equal(want[300], flat)


def test_runs_that_differ_only_in_their_spectrum_share_their_reference():
    P = get_profile("smoke")
    a, b = P.run("eigenvalues-semicircle").config, P.run("eigenvalues-laplace").config
    other_seed = P.run("eigenvalues-semicircle-seed1").config
    steps = [a.examples // a.batch]
    ra, rb, rc = (train.decayed_init(c, steps)[steps[0]] for c in (a, b, other_seed))
    assert ra.keys() == rb.keys() and all(np.array_equal(ra[k], rb[k]) for k in ra)
    assert any(not np.array_equal(ra[k], rc[k]) for k in ra)  # another seed, other initial weights
