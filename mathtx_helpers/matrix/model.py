"""Encoder–decoder transformer over the number encodings' tokens, with batched greedy and beam decoding.

    src ids (B, S) ─ embed + learned positions ─ [pre-LN: self-attention, ReLU MLP] x enc_layers ─ LN ─ memory
    tgt ids (B, T) ─ embed + learned positions ─ [pre-LN: causal self-attn, cross-attn, MLP] x dec_layers ─ LN
                   ─ output projection (tied to the target embedding) ─ logits (B, T, V_tgt)

Differences from LAWT's model (PAPER.md §E.1), each chosen for speed on small problems: pre-LN instead of
post-LN (stable without a long warm-up); separate source and target vocabularies (the decoder's softmax
covers only the output encoding's ~1.3k words instead of 30k); cross-attention after self-attention (the
usual order, not LAWT's parallel one); no biases in the attention projections. Attention is either
`F.scaled_dot_product_attention` ("sdpa") or plain matmuls ("matmul"); "auto" picks matmul on CPU (2.5x faster
than fp32 under bf16 autocast on AMX CPUs, where SDPA was slower; within noise of SDPA in fp32 on CPUs without
AMX) and SDPA on CUDA. benchmarks/train_throughput.py --attention compares them on your machine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ATTENTION_IMPLS, ModelConfig

__all__ = ["ATTENTION_IMPLS", "HeadLoss", "ModelConfig", "Seq2Seq", "resolve_attention"]

def resolve_attention(impl: str, device: torch.device | str) -> str:
    if impl != "auto":
        return impl
    return "sdpa" if torch.device(device).type == "cuda" else "matmul"


def _attend(q, k, v, bias, impl: str):
    """q (B, h, Tq, hd), k and v (B, h, Tk, hd), bias additive (broadcastable to (B, h, Tq, Tk)) or None."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, h, Tq, Tk)
    if bias is not None:
        att = att + bias
    return att.softmax(dim=-1) @ v  # (B, h, Tq, hd)


class MultiHeadAttention(nn.Module):
    def __init__(self, d: int, h: int):
        super().__init__()
        self.h = h
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * d, bias=False)
        self.out = nn.Linear(d, d)
        self.impl = "matmul"

    def split(self, x):  # (B, T, d) -> (B, h, T, hd)
        B, T, d = x.shape
        return x.view(B, T, self.h, d // self.h).transpose(1, 2)

    def keys_values(self, x):  # (B, T, d) -> k, v (B, h, T, hd)
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x, bias=None, kv=None):
        """x (B, Tq, d); kv: precomputed (k, v) for cross-attention or a cache; else self-attention on x."""
        q = self.split(self.q(x))
        k, v = kv if kv is not None else self.keys_values(x)
        y = _attend(q, k, v, bias, self.impl)  # (B, h, Tq, hd)
        B, h, T, hd = y.shape
        return self.out(y.transpose(1, 2).reshape(B, T, h * hd))


class MLP(nn.Module):
    def __init__(self, d: int, d_mlp: int):
        super().__init__()
        self.up, self.down = nn.Linear(d, d_mlp), nn.Linear(d_mlp, d)

    def forward(self, x):
        return self.down(F.relu(self.up(x)))


class HeadLoss(torch.autograd.Function):
    """Mean cross-entropy of the output projection's logits, with the logits' gradient made in the forward pass.

    h (N, d), W (V, d), b (V,), target (N,) with ignore_index rows not scored -> loss (). The same function as
    F.cross_entropy(F.linear(h, W, b), target), but the (N, V) logits are turned into their gradient
    (softmax - one-hot, / scored rows) in place: one exp pass instead of log_softmax's forward and backward and
    the NLL's scatter into a fresh (N, V) zero tensor (the eigen-decomposition model's N x V is 5,000 x 1,328:
    these passes were 17 % of its training step on one CPU thread). Used for fp32 training (Seq2Seq.forward)."""

    @staticmethod
    def forward(ctx, h, W, b, target, ignore_index: int):
        logits = torch.addmm(b, h, W.t())  # (N, V)
        scored = target != ignore_index  # (N,)
        count = scored.sum().clamp_min(1)
        t = target.clamp_min(0)[:, None]  # (N, 1)
        top = logits.max(dim=1, keepdim=True).values  # (N, 1)
        picked = logits.gather(1, t)  # (N, 1)
        g = logits.sub_(top).exp_()  # unnormalised softmax, in place of the logits
        total = g.sum(dim=1, keepdim=True)  # (N, 1)
        loss = ((total.log() + top - picked).squeeze(1) * scored).sum() / count
        g.mul_((scored[:, None] / count) / total)  # softmax / count on scored rows, 0 elsewhere
        g.scatter_add_(1, t, -(scored[:, None] / count).to(g.dtype))  # minus the one-hot
        ctx.save_for_backward(g, h, W)
        return loss

    @staticmethod
    def backward(ctx, grad):
        g, h, W = ctx.saved_tensors
        g = g * grad
        dh = g @ W if ctx.needs_input_grad[0] else None  # (N, d)
        dW = g.t() @ h if ctx.needs_input_grad[1] else None  # (V, d)
        db = g.sum(0) if ctx.needs_input_grad[2] else None  # (V,)
        return dh, dW, db, None, None


class EncoderBlock(nn.Module):
    def __init__(self, d: int, h: int, d_mlp: int):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), MultiHeadAttention(d, h)
        self.ln2, self.mlp = nn.LayerNorm(d), MLP(d, d_mlp)

    def forward(self, x, bias):
        x = x + self.attn(self.ln1(x), bias)
        return x + self.mlp(self.ln2(x))


class DecoderBlock(nn.Module):
    def __init__(self, d: int, h: int, d_mlp: int):
        super().__init__()
        self.ln1, self.self_attn = nn.LayerNorm(d), MultiHeadAttention(d, h)
        self.ln2, self.cross_attn = nn.LayerNorm(d), MultiHeadAttention(d, h)
        self.ln3, self.mlp = nn.LayerNorm(d), MLP(d, d_mlp)

    def forward(self, x, self_bias, mem_kv, mem_bias, cache=None, t: int = 0):
        """cache: (k_buf, v_buf) of shape (B, h, T_max, hd) filled up to t; x holds positions t.. t+Tq-1."""
        y = self.ln1(x)
        if cache is None:
            x = x + self.self_attn(y, self_bias)
        else:
            k_new, v_new = self.self_attn.keys_values(y)  # (B, h, Tq, hd)
            Tq = y.shape[1]
            cache[0][:, :, t:t + Tq], cache[1][:, :, t:t + Tq] = k_new, v_new
            x = x + self.self_attn(y, self_bias, kv=(cache[0][:, :, :t + Tq], cache[1][:, :, :t + Tq]))
        x = x + self.cross_attn(self.ln2(x), mem_bias, kv=mem_kv)
        return x + self.mlp(self.ln3(x))


class Seq2Seq(nn.Module):
    # fp32 training computes its loss with HeadLoss when the logits have at least FUSED_LOSS_MIN entries: 1.05-1.07x
    # (one thread) and 1.21x (two) the training rate at the eigen-decomposition model's 5,000 x 1,328, but 0.96x at
    # the d64 eigenvalue model's 768 x 1,328 and 0.97x at the reference configuration's 1,152 x 1,328
    # (docs/benchmarks.md), where the plain F.cross_entropy path stays (and with it the bytes of the runs trained
    # before HeadLoss existed).
    # fused_loss = False never uses it (the A/B benchmarks' "plain-loss").
    fused_loss = True
    FUSED_LOSS_MIN = 4_000_000

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.src_emb, self.src_pos = nn.Embedding(cfg.src_vocab, d), nn.Embedding(cfg.max_src_len, d)
        self.tgt_emb, self.tgt_pos = nn.Embedding(cfg.tgt_vocab, d), nn.Embedding(cfg.max_tgt_len, d)
        self.encoder = nn.ModuleList(EncoderBlock(d, cfg.n_heads, cfg.mlp_width) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderBlock(d, cfg.n_heads, cfg.mlp_width) for _ in range(cfg.dec_layers))
        self.enc_ln, self.dec_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.tgt_vocab)
        self.apply(self._init)
        if cfg.tie_output:
            self.head.weight = self.tgt_emb.weight
        self.set_attention(resolve_attention(cfg.attention, "cpu"))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def set_attention(self, impl: str) -> None:
        for m in self.modules():
            if isinstance(m, MultiHeadAttention):
                m.impl = impl

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ forward (training)

    @staticmethod
    def padding_bias(pad_mask: torch.Tensor | None, dtype) -> torch.Tensor | None:
        """(B, S) True where padded -> additive bias (B, 1, 1, S), or None when nothing is padded."""
        if pad_mask is None or not bool(pad_mask.any()):
            return None
        return torch.zeros(pad_mask.shape, dtype=dtype, device=pad_mask.device).masked_fill(
            pad_mask, float("-inf"))[:, None, None, :]

    def encode(self, src: torch.Tensor, src_pad: torch.Tensor | None = None):
        """src (B, S) -> memory (B, S, d) and its padding bias."""
        S = src.shape[1]
        x = self.src_emb(src) + self.src_pos(torch.arange(S, device=src.device))  # (B, S, d)
        bias = self.padding_bias(src_pad, x.dtype)
        for block in self.encoder:
            x = block(x, bias)
        return self.enc_ln(x), bias

    def decode_hidden(self, tgt_in, memory, mem_bias):
        """Teacher forcing: tgt_in (B, T) -> the decoder's final hidden states (B, T, d), before the head."""
        T = tgt_in.shape[1]
        x = self.tgt_emb(tgt_in) + self.tgt_pos(torch.arange(T, device=tgt_in.device))  # (B, T, d)
        causal = torch.full((T, T), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        for block in self.decoder:
            x = block(x, causal, block.cross_attn.keys_values(memory), mem_bias)
        return self.dec_ln(x)

    def decode_logits(self, tgt_in, memory, mem_bias):
        """Teacher forcing: tgt_in (B, T) -> logits (B, T, V_tgt)."""
        return self.head(self.decode_hidden(tgt_in, memory, mem_bias))

    def forward(self, src, tgt, src_pad=None, pad_id: int = -100):
        """Mean cross-entropy of predicting tgt[:, 1:] from tgt[:, :-1] (pad_id positions ignored)."""
        memory, mem_bias = self.encode(src, src_pad)
        tgt_in = tgt[:, :-1].clamp_min(0)  # pad_id inputs follow a row's end: any id does (causal, not scored)
        target = tgt[:, 1:].flatten()  # (B * (T-1),)
        h = self.decode_hidden(tgt_in, memory, mem_bias)  # (B, T-1, d)
        autocasting = torch.is_autocast_enabled(h.device.type)
        big = h.shape[0] * h.shape[1] * self.cfg.tgt_vocab >= self.FUSED_LOSS_MIN
        if self.fused_loss and big and torch.is_grad_enabled() and not autocasting:
            return HeadLoss.apply(h.flatten(0, 1), self.head.weight, self.head.bias, target, pad_id)
        logits = self.head(h)  # (B, T-1, V)
        return F.cross_entropy(logits.float().flatten(0, 1), target, ignore_index=pad_id)

    # ------------------------------------------------------------------ decoding

    def _step_state(self, memory, mem_bias, batch: int, max_len: int):
        d, h = self.cfg.d_model, self.cfg.n_heads
        caches = [(memory.new_zeros(batch, h, max_len, d // h), memory.new_zeros(batch, h, max_len, d // h))
                  for _ in self.decoder]
        mem_kv = [block.cross_attn.keys_values(memory) for block in self.decoder]
        return caches, mem_kv

    def _step(self, tok, t, caches, mem_kv, mem_bias):
        """One decoding step: tok (B,) at position t -> log-probabilities (B, V) of position t + 1."""
        x = self.tgt_emb(tok)[:, None, :] + self.tgt_pos.weight[t]  # (B, 1, d)
        for block, cache, kv in zip(self.decoder, caches, mem_kv, strict=True):
            x = block(x, None, kv, mem_bias, cache=cache, t=t)
        return self.head(self.dec_ln(x[:, 0])).float().log_softmax(-1)  # (B, V)

    @torch.no_grad()
    def generate(self, src, bos: int, eos: int, max_len: int, src_pad=None, beam: int = 1):
        """Decode src (B, S). Returns tokens (B, T) starting with bos, and the log-probability of each
        generated token (B, T) (0 at position 0 and after eos). Rows stop at eos; positions after it hold eos.
        beam > 1 runs beam search of that width and returns the best finished hypothesis per row."""
        max_len = min(max_len, self.cfg.max_tgt_len)
        if beam > 1:
            return self._beam(src, bos, eos, max_len, src_pad, beam)
        B = src.shape[0]
        memory, mem_bias = self.encode(src, src_pad)
        caches, mem_kv = self._step_state(memory, mem_bias, B, max_len)
        tokens = torch.full((B, max_len), eos, dtype=torch.long, device=src.device)
        logp = torch.zeros(B, max_len, device=src.device)
        tokens[:, 0] = bos
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        for t in range(max_len - 1):
            lp = self._step(tokens[:, t], t, caches, mem_kv, mem_bias)  # (B, V)
            best, nxt = lp.max(-1)
            tokens[:, t + 1] = torch.where(done, eos, nxt)
            logp[:, t + 1] = torch.where(done, 0.0, best)
            done |= nxt == eos
            if bool(done.all()):
                break
        return tokens, logp

    def _beam(self, src, bos, eos, max_len, src_pad, k):
        B = src.shape[0]
        memory, mem_bias = self.encode(src, src_pad)
        rep = lambda x: None if x is None else x.repeat_interleave(k, dim=0)  # noqa: E731  (B*k, ...)
        memory, mem_bias = rep(memory), rep(mem_bias)
        caches, mem_kv = self._step_state(memory, mem_bias, B * k, max_len)
        tokens = torch.full((B * k, max_len), eos, dtype=torch.long, device=src.device)
        logp = torch.zeros(B * k, max_len, device=src.device)
        tokens[:, 0] = bos
        score = torch.full((B, k), float("-inf"), device=src.device)
        score[:, 0] = 0.0  # all beams start identical: keep one alive
        done = torch.zeros(B * k, dtype=torch.bool, device=src.device)
        for t in range(max_len - 1):
            lp = self._step(tokens[:, t], t, caches, mem_kv, mem_bias)  # (B*k, V)
            V = lp.shape[-1]
            lp = torch.where(done[:, None], torch.full_like(lp, float("-inf")), lp)
            lp[:, eos] = torch.where(done, 0.0, lp[:, eos])  # a finished beam stays, at no cost
            cand = (score.reshape(-1, 1) + lp).reshape(B, k * V)
            score, flat = cand.topk(k, dim=-1)  # (B, k)
            parent = (flat // V + torch.arange(B, device=src.device)[:, None] * k).reshape(-1)
            nxt = (flat % V).reshape(-1)
            tokens, logp, done = tokens[parent], logp[parent], done[parent]
            for c in caches:
                c[0].copy_(c[0][parent])
                c[1].copy_(c[1][parent])
            step_lp = lp[parent, nxt]
            tokens[:, t + 1] = torch.where(done, eos, nxt)
            logp[:, t + 1] = torch.where(done, 0.0, step_lp)
            done = done | (nxt == eos)
            if bool(done.all()):
                break
        best = score.argmax(-1) + torch.arange(B, device=src.device) * k
        return tokens[best], logp[best]
