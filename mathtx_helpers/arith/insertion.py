"""The papers' `ins1` route (ARITHMETIC.md §A4): a trained model copied into the first layers and heads of an
untrained, larger one before it trains on a new task (the mixed add/sub model starts from the addition model).

What is copied, per Decoder parameter (src: n_layers L_s, n_heads H_s, d_mlp m_s; dst at least as large, with the
same d_model, d_head, context and vocabulary):
    embed, pos, ln_f, unembed                   whole
    blocks[l] for l < L_s: ln1, ln2, b_O        whole
        W_QKV                                   the q, k and v rows of heads 0 .. H_s - 1
        W_O                                     heads 0 .. H_s - 1
        W_in (rows), W_out (columns)            MLP neurons 0 .. m_s - 1
Everything else keeps the untrained model's initialisation: the extra heads, MLP neurons and layers (ins1 copies
once; the papers' ins2-ins4 re-copy during training, not reproduced here).
"""

from __future__ import annotations

import torch

from .decoder import Decoder

__all__ = ["check_fits", "insert"]


def check_fits(src: Decoder, dst: Decoder) -> None:
    """One ValueError naming the first dimension that keeps src from being copied into dst."""
    s, d = src.cfg, dst.cfg
    for name in ("d_model", "d_head", "n_ctx", "d_vocab"):
        if getattr(s, name) != getattr(d, name):
            raise ValueError(f"cannot insert: {name} differs ({getattr(s, name)} in the trained model, "
                             f"{getattr(d, name)} in the new one); it must be equal")
    for name in ("n_layers", "n_heads", "d_mlp"):
        if getattr(s, name) > getattr(d, name):
            raise ValueError(f"cannot insert: the trained model's {name} ({getattr(s, name)}) is larger than the "
                             f"new one's ({getattr(d, name)})")


@torch.no_grad()
def insert(src: Decoder, dst: Decoder) -> Decoder:
    """Copy src into dst in place (see the module docstring); returns dst."""
    check_fits(src, dst)
    H, dh, m = src.cfg.n_heads, src.cfg.d_head, src.cfg.d_mlp
    for name in ("embed", "pos", "ln_f", "unembed"):
        getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
    for b_src, b_dst in zip(src.blocks, dst.blocks[:len(src.blocks)], strict=True):  # its first layers
        b_dst.ln1.load_state_dict(b_src.ln1.state_dict())
        b_dst.ln2.load_state_dict(b_src.ln2.state_dict())
        a_src, a_dst = b_src.attn, b_dst.attn
        C = src.cfg.d_model
        # W_QKV's output rows are (3, heads, d_head): q, k, v of each head
        a_dst.W_QKV.weight.view(3, a_dst.H, dh, C)[:, :H] = a_src.W_QKV.weight.view(3, H, dh, C)
        a_dst.W_QKV.bias.view(3, a_dst.H, dh)[:, :H] = a_src.W_QKV.bias.view(3, H, dh)
        a_dst.W_O[:H] = a_src.W_O
        a_dst.b_O.copy_(a_src.b_O)
        b_dst.W_in.weight[:m] = b_src.W_in.weight
        b_dst.W_in.bias[:m] = b_src.W_in.bias
        b_dst.W_out.weight[:, :m] = b_src.W_out.weight
        b_dst.W_out.bias.copy_(b_src.W_out.bias)
    return dst
