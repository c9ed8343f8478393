"""A small decoder-only transformer with named capture and patch points, for the arithmetic track.

    tokens (B, T) ─ embed + learned positions ─ resid (B, T, C)
        [ pre-LN: causal multi-head attention ─ + ─ pre-LN: ReLU MLP ─ + ] x n_layers ─ LN ─ unembed ─ (B, T, V)

The shape of TransformerLens' HookedTransformer as the papers configured it (pre-LN, ReLU MLP, learned
positions, untied unembedding, biases everywhere), written out so the interpretability code can read and
overwrite any intermediate value. Every forward pass takes an optional `Hooks`:

    L{l}.resid_pre      (B, T, C)        residual stream entering block l (L0.resid_pre = embeddings)
    L{l}.attn.pattern   (B, H, T, T)     attention weights (query x key)
    L{l}.attn.z         (B, T, H, dh)    per-head attention-weighted values, before W_O
    L{l}.attn.result    (B, T, H, C)     per-head output (z @ W_O[h]), what a head writes to the stream
    L{l}.mlp.post       (B, T, d_mlp)    MLP hidden activations after the ReLU
    L{l}.resid_post     (B, T, C)        residual stream leaving block l

`hooks.cache[name]` receives a detached copy of every name in `hooks.capture`; `hooks.patch[name]` is a function
tensor -> tensor applied where the value is made (so a patched z changes that head's result and everything
downstream). Without hooks the forward pass is the plain fast path used for training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig

__all__ = ["Decoder", "DecoderConfig", "Hooks"]


@dataclass
class Hooks:
    capture: set[str] = field(default_factory=set)
    patch: dict[str, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def wants(self, name: str) -> bool:
        """Whether `name` is captured or patched (values nobody reads are not made: see Attention)."""
        return name in self.capture or name in self.patch

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name in self.patch:
            x = self.patch[name](x)
        if name in self.capture:
            self.cache[name] = x.detach()
        return x


class Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        H, C, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_QKV = nn.Linear(C, 3 * H * dh)
        self.W_O = nn.Parameter(torch.empty(H, dh, C))  # per head, so a head's output is z_h @ W_O[h]
        self.b_O = nn.Parameter(torch.zeros(C))
        nn.init.normal_(self.W_O, std=1 / math.sqrt(H * dh))
        self.H, self.dh = H, dh
        self.register_buffer("mask", torch.triu(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool), 1),
                             persistent=False)

    def forward(self, x: torch.Tensor, hooks: Hooks | None, prefix: str) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.W_QKV(x).view(B, T, 3, self.H, self.dh).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, dh)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.dh))  # (B, H, T, T)
        att = att.masked_fill(self.mask[:T, :T], float("-inf")).softmax(-1)
        if hooks is not None:
            att = hooks(f"{prefix}.pattern", att)
        z = (att @ v).transpose(1, 2)  # (B, T, H, dh)
        if hooks is not None:
            z = hooks(f"{prefix}.z", z)
        if hooks is None or not hooks.wants(f"{prefix}.result"):  # the fast path, same bytes as without hooks
            return z.reshape(B, T, -1) @ self.W_O.view(-1, self.W_O.shape[-1]) + self.b_O
        result = hooks(f"{prefix}.result", torch.einsum("bthd,hdc->bthc", z, self.W_O))  # (B, T, H, C)
        return result.sum(2) + self.b_O


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.W_in, self.W_out = nn.Linear(cfg.d_model, cfg.d_mlp), nn.Linear(cfg.d_mlp, cfg.d_model)

    def forward(self, x: torch.Tensor, hooks: Hooks | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), hooks, f"L{layer}.attn")
        h = F.relu(self.W_in(self.ln2(x)))  # (B, T, d_mlp)
        if hooks is not None:
            h = hooks(f"L{layer}.mlp.post", h)
        return x + self.W_out(h)


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.unembed = nn.Linear(cfg.d_model, cfg.d_vocab)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, hooks: Hooks | None = None,
                start: tuple[int, torch.Tensor] | None = None) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, V); the logits at p predict the token at p + 1.
        start = (l, resid_pre of block l for these tokens, as captured) skips the blocks before l: the same
        bytes as the full pass when nothing before block l is patched (ablations of later nodes use it)."""
        T = tokens.shape[1]
        first, x = start if start is not None else (0, self.embed(tokens) + self.pos.weight[:T])  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            if layer < first:
                continue
            if hooks is not None:
                x = hooks(f"L{layer}.resid_pre", x)
            x = block(x, hooks, layer)
            if hooks is not None:
                x = hooks(f"L{layer}.resid_post", x)
        return self.unembed(self.ln_f(x))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def hook_names(cfg: DecoderConfig) -> list[str]:
    names = []
    for layer in range(cfg.n_layers):
        names += [f"L{layer}.{s}" for s in ("resid_pre", "attn.pattern", "attn.z", "attn.result", "mlp.post",
                                            "resid_post")]
    return names
