"""A small decoder-only transformer with named capture and patch points, for the arithmetic track.

    tokens (B, T) ─ embed + learned positions ─ resid (B, T, C)
        [ pre-LN: causal multi-head attention ─ + ─ pre-LN: ReLU MLP ─ + ] x n_layers ─ LN ─ unembed ─ (B, T, V)

The shape of TransformerLens' HookedTransformer as the papers configured it (pre-LN, ReLU MLP, learned
positions, untied unembedding, biases everywhere), written out so the interpretability code can read and
overwrite any intermediate value. Every forward pass takes an optional `Hooks`:

    L{l}.resid_pre      (B, T, C)        residual stream entering block l (L0.resid_pre = embeddings)
    L{l}.attn.k, .v     (B, H, T, dh)    keys and values (Prefix: a later pass computes positions q.. alone)
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

__all__ = ["Decoder", "DecoderConfig", "Hooks", "Prefix"]


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


@dataclass
class Prefix:
    """The keys and values of positions 0 .. q-1 of an unpatched run, per layer (each (B, H, q, dh)): what a pass
    that changes nothing before position q needs to compute the positions q.. alone (Decoder.forward)."""

    q: int
    kv: list[tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def of(cls, cache: dict[str, torch.Tensor], q: int, n_layers: int) -> Prefix:
        """From a capture of every layer's 'L{l}.attn.k' and 'L{l}.attn.v' (prefix_names)."""
        return cls(q, [(cache[f"L{l}.attn.k"][:, :, :q], cache[f"L{l}.attn.v"][:, :, :q]) for l in range(n_layers)])


def prefix_names(n_layers: int) -> list[str]:
    return [f"L{l}.attn.{x}" for l in range(n_layers) for x in "kv"]


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

    def forward(self, x: torch.Tensor, hooks: Hooks | None, prefix: str,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None, out_from: int = 0) -> torch.Tensor:
        """x (B, T, C): every position, or with kv = the earlier positions' keys and values (B, H, q, dh) each,
        the positions q .. q+T-1 only. out_from > 0 (no hooks): the output of x's positions out_from.. only
        (B, T - out_from, C); every position still gives its key and value."""
        B, T, _ = x.shape
        q, k, v = self.W_QKV(x).view(B, T, 3, self.H, self.dh).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, dh)
        if out_from:
            q, T = q[:, :, out_from:], T - out_from  # (B, H, T - out_from, dh)
        if hooks is not None:
            k, v = hooks(f"{prefix}.k", k), hooks(f"{prefix}.v", v)
        if kv is not None:
            k, v = torch.cat([kv[0], k], 2), torch.cat([kv[1], v], 2)  # (B, H, q + T, dh)
        Tk = k.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.dh))  # (B, H, T, Tk)
        att = att.masked_fill(self.mask[Tk - T:Tk, :Tk], float("-inf")).softmax(-1)
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

    def forward(self, x: torch.Tensor, hooks: Hooks | None, layer: int,
                kv: tuple[torch.Tensor, torch.Tensor] | None = None, out_from: int = 0) -> torch.Tensor:
        """x (B, T, C) -> (B, T - out_from, C): the positions out_from.. of the block's output."""
        x = x[:, out_from:] + self.attn(self.ln1(x), hooks, f"L{layer}.attn", kv, out_from)
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
                start: tuple[int, torch.Tensor] | None = None, prefix: Prefix | None = None) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, V); the logits at p predict the token at p + 1.
        start = (l, resid_pre of block l for these tokens, as captured) skips the blocks before l: the same
        bytes as the full pass when nothing before block l is patched (ablations of later nodes use it).
        prefix (Prefix.of a run of the same tokens) computes the positions q .. T-1 only, from the unpatched
        run's keys and values before q: logits (B, T - q, V), and every hook sees positions q.. (index 0 = q); the
        same bytes as the full pass's positions q.. when nothing before q is patched (causal attention: no
        position before q can see a change at q). With both, start's input holds the positions q.. only."""
        T = tokens.shape[1]
        q0 = prefix.q if prefix is not None else 0
        if start is not None:
            first, x = start
        else:
            first, x = 0, (self.embed(tokens) + self.pos.weight[:T])[:, q0:]  # (B, T - q0, C)
        for layer, block in enumerate(self.blocks):
            if layer < first:
                continue
            if hooks is not None:
                x = hooks(f"L{layer}.resid_pre", x)
            x = block(x, hooks, layer, prefix.kv[layer] if prefix is not None else None)
            if hooks is not None:
                x = hooks(f"L{layer}.resid_post", x)
        return self.unembed(self.ln_f(x))

    def logits_at(self, tokens: torch.Tensor, positions: slice) -> torch.Tensor:
        """self(tokens)[:, positions], with the last block computing the queries, attention outputs and MLPs of
        those positions only (every position still gives its key and value, so each softmax runs over as many keys
        as in the full pass). Equal to the full pass up to float rounding (other matmul shapes); the same bytes at
        the answer positions on the CPUs measured (benchmarks/arith_throughput.py checks it). For teacher-forced
        scoring, where 8 of a 5-digit question's 19 positions are computed in the last block: about a third of the
        2-layer model's work saved (docs/benchmarks.md). No hooks: the interpretability passes see every
        position."""
        T = tokens.shape[1]
        start, stop, step = positions.indices(T)
        if step != 1 or start >= stop:
            raise ValueError(f"logits_at needs a non-empty slice with step 1, got {positions}")
        x = self.embed(tokens) + self.pos.weight[:T]  # (B, T, C)
        last = len(self.blocks) - 1
        for layer, block in enumerate(self.blocks):
            x = block(x, None, layer, out_from=start if layer == last else 0)
        return self.unembed(self.ln_f(x[:, :stop - start]))  # (B, stop - start, V)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def hook_names(cfg: DecoderConfig) -> list[str]:
    names = []
    for layer in range(cfg.n_layers):
        names += [f"L{layer}.{s}" for s in ("resid_pre", "attn.k", "attn.v", "attn.pattern", "attn.z", "attn.result",
                                            "mlp.post", "resid_post")]
    return names
