"""The engine on a CUDA device: the same model and loop as on CPU. Skipped where no GPU is present (CI has none);
run on a GPU machine with `python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_model import BOS, EOS, naive_greedy, sources, tiny_model

from mathtx_helpers.core import runs, store
from mathtx_helpers.matrix import predict, train
from mathtx_helpers.matrix.config import RunConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")
TINY = dict(task="eigenvalues", n=3, d_model=32, n_heads=2, enc_layers=1, dec_layers=1, batch=64, lr=1e-3,
            warmup=5, examples=64 * 12, eval_every=64 * 4, eval_size=32)


@pytest.fixture(autouse=True)
def exact_matmuls():
    """No TF32: the CPU comparisons below are of fp32 arithmetic on both sides."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("impl", ["matmul", "sdpa"])
def test_cuda_logits_match_cpu(impl):
    model = tiny_model(0, impl=impl)
    src = sources(24, 7, 0)
    tgt = torch.randint(2, 13, (24, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        memory, bias = model.encode(src)
        ref = model.decode_logits(tgt, memory, bias)
        model_cuda = model.to(CUDA)
        memory, bias = model_cuda.encode(src.to(CUDA))
        got = model_cuda.decode_logits(tgt.to(CUDA), memory, bias).cpu()
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_cuda_cached_greedy_equals_naive_greedy(seed):
    model = tiny_model(seed, eos_bias=1.0).to(CUDA)
    src = sources(24, 7, seed).to(CUDA)
    tokens, logp = model.generate(src, BOS, EOS, 12)
    # naive_greedy builds its prefix on the CPU; run it on a CPU copy of the same weights
    ref_tokens, ref_logp = naive_greedy(model.cpu(), src.cpu(), 12)
    assert torch.equal(tokens.cpu(), ref_tokens)
    torch.testing.assert_close(logp.cpu(), ref_logp, atol=1e-4, rtol=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_run_trains_checkpoints_and_predicts(tmp_path, monkeypatch, precision):
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    cfg = RunConfig.from_dict({**TINY, "precision": precision})
    folder = train.train(cfg, device="cuda", progress=False, checkpoint_steps=5)
    state = runs.load_checkpoint(folder / "checkpoint.pt")
    assert state["done"] and state["step"] == 12 and state["precision"] == precision
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [m["examples"] for m in lines] == [256, 512, 768]
    assert all(np.isfinite(m["loss"]) and m["loss"] > 0 for m in lines)
    out = predict.predict(cfg, size=40, batch=16, device="cuda", progress=False)
    df = pd.read_parquet(out)
    assert len(df) == 40 and (df["prediction"].isna().to_numpy() == ~df["valid"].to_numpy()).all()
    # the CUDA-trained weights load on the CPU and decode there too
    model, codec, _ = train.load_model(cfg, "cpu")
    assert next(model.parameters()).device.type == "cpu"


def test_cuda_resume_continues_from_the_checkpoint(tmp_path, monkeypatch):
    """Killed after its first checkpoint (simulated: the loop stops there), a run resumes from that step.
    (Bit-identity is a CPU promise: CUDA kernels may reorder sums between launches.)"""
    monkeypatch.setattr(store, "DATA", tmp_path / "data")
    cfg = RunConfig.from_dict({**TINY, "precision": "fp32"})
    calls = {"n": 0}
    real_step = train.training_step

    def dying_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "training_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, device="cuda", progress=False, checkpoint_steps=5)
    assert runs.load_checkpoint(train.run_dir(cfg) / "checkpoint.pt")["step"] == 5
    monkeypatch.setattr(train, "training_step", real_step)
    folder = train.train(cfg, device="cuda", progress=False, checkpoint_steps=5)
    state = runs.load_checkpoint(folder / "checkpoint.pt")
    assert state["done"] and state["step"] == 12
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [m["examples"] for m in lines] == [256, 512, 768]
