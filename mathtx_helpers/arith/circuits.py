"""What an addition model computes: ablations, attention, interchange interventions and PCA (ARITHMETIC.md §C2).

Everything runs a trained `Decoder` on question batches with `Hooks` (decoder.py) and compares the
teacher-forced predicted answers with the true ones. Names follow the papers: position Pp, node PpLlHh (head h of
layer l at position p) or PpLlM (the MLP layer at p); answer digit Ak (A0 = units) is predicted at the token
before it. Ablation means are computed per layer and per position over the question set (the authors' library
reused layer 0's means for every layer, ARITHMETIC.md §C3; we do not).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import addition, pairs
from .decoder import Decoder, Hooks, Prefix, prefix_names

# Bump when an analysis below changes what it returns: cached tables (arith_train.cached_table) carry it.
VERSION = 1

# --------------------------------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def answers(model: Decoder, tok: np.ndarray | torch.Tensor, hooks: Hooks | None = None) -> np.ndarray:
    """(B, n+2) teacher-forced argmax at the answer positions: sign, A(n) .. A0 (token order)."""
    tok = torch.as_tensor(tok)
    n = addition.digits_of(tok.shape[1])
    return model(tok, hooks)[:, addition.answer_slice(n)].argmax(-1).numpy()


def _inputs(model: Decoder) -> list[str]:
    """The names of every block's input (Decoder.forward's `start` points)."""
    return [f"L{l}.resid_pre" for l in range(model.cfg.n_layers)]


@dataclass
class _Clean:
    """An unpatched run of some questions, kept so that a patched run recomputes only what its patch can change:
    the blocks from the first patched one, the positions from the patched one (Decoder.forward's start and
    prefix). The answers come out the same as a full patched pass's (tested)."""

    tok: torch.Tensor  # (B, T)
    cache: dict[str, torch.Tensor]  # every block's input, keys and values, and what else was asked
    pred: np.ndarray  # (B, n+2) its answers


@torch.no_grad()
def _clean_run(model: Decoder, tok: np.ndarray, extra: list[str] | tuple[str, ...] = ()) -> _Clean:
    tok = torch.as_tensor(tok)
    hooks = Hooks(capture=set(_inputs(model) + prefix_names(model.cfg.n_layers) + list(extra)))
    logits = model(tok, hooks)
    answer = addition.answer_slice(addition.digits_of(tok.shape[1]))
    return _Clean(tok, hooks.cache, logits[:, answer].argmax(-1).numpy())


@torch.no_grad()
def _patched_from(model: Decoder, clean: _Clean, q: int, first: int, patch: dict) -> np.ndarray:
    """(B, n+2) answers of the clean questions with `patch` applied in block `first` or later at position q or
    later: patch functions see positions q.. only (index 0 is position q). Only blocks first.. at positions q..
    are computed; the answer tokens predicted before q are the clean run's (causal attention)."""
    s = addition.answer_slice(addition.digits_of(clean.tok.shape[1]))
    if q >= s.stop:  # no answer token is predicted at or after q
        return clean.pred.copy()
    start = (first, clean.cache[f"L{first}.resid_pre"][:, q:])
    logits = model(clean.tok, Hooks(patch=patch), start, Prefix.of(clean.cache, q, model.cfg.n_layers))  # (B, T-q, V)
    pred = clean.pred.copy()
    lo = max(q, s.start)
    pred[:, lo - s.start:] = logits[:, lo - q:s.stop - q].argmax(-1).numpy()
    return pred


def wrong_digits(pred: np.ndarray, tok: np.ndarray) -> np.ndarray:
    """(B, n+2) True where a predicted answer token differs from the true one (sign first, then A(n) .. A0)."""
    n = addition.digits_of(tok.shape[1])
    return pred != np.asarray(tok)[:, 2 * n + 2:]


@torch.no_grad()
def capture(model: Decoder, tok: np.ndarray, names: list[str]) -> dict[str, torch.Tensor]:
    hooks = Hooks(capture=set(names))
    model(torch.as_tensor(tok), hooks)
    return hooks.cache


def correct_questions(model: Decoder, D: np.ndarray, Dp: np.ndarray, op: int = addition.PLUS) -> np.ndarray:
    """Tokens of the questions D op D' the model answers correctly (the library drops failed questions before
    ablating, so every failure seen in an ablation is caused by it)."""
    tok = addition.tokens(D, Dp, op)
    ok = ~wrong_digits(answers(model, tok), tok).any(1)
    return tok[ok]


def _digit_labels(n: int) -> list[str]:
    return ["sign"] + [f"A{k}" for k in range(n, -1, -1)]


def _impact(wrong: np.ndarray, n: int, min_share: float) -> str:
    """Answer tokens wrong in at least min_share of the questions, compacted like the library: 'A5..2' -> 'A5432'."""
    labels = _digit_labels(n)
    hit = [lab for lab, share in zip(labels, wrong.mean(0), strict=True) if share >= min_share]
    digits = "".join(h[1:] for h in hit if h != "sign")
    return ("sign " if "sign" in hit else "") + (f"A{digits}" if digits else "")


# --------------------------------------------------------------------------------------------------
# Ablations
# --------------------------------------------------------------------------------------------------


def _replace(index: tuple, value: torch.Tensor):
    """A patch: x -> a copy of x with x[index] = value (e.g. index (slice(None), p, h): head h at position p)."""
    def patch(x):
        x = x.clone()
        x[index] = value
        return x
    return patch


def _parse_node(node: str) -> tuple[int, int | None]:
    """'L1H2' -> (1, 2); 'L0M' -> (0, None)."""
    layer, _, head = node[1:].partition("H")
    return (int(layer), int(head)) if head else (int(node[1:].removesuffix("M")), None)


def position_ablation(model: Decoder, tok: np.ndarray, min_share: float = 0.01) -> pd.DataFrame:
    """Per token position: overwrite the residual stream there, after every block, with its mean over the
    questions; the share of questions answered wrongly and the answer digits that break."""
    L, n = model.cfg.n_layers, addition.digits_of(tok.shape[1])
    names = [f"L{l}.resid_post" for l in range(L)]
    clean = _clean_run(model, tok, names)
    means = {k: clean.cache[k].mean(0) for k in names}
    rows = []
    for p, name in enumerate(addition.position_names(n)):
        patch = {key: _replace((slice(None), 0), mean[p]) for key, mean in means.items()}  # 0: position p
        wrong = wrong_digits(_patched_from(model, clean, p, 0, patch), tok)
        rows.append({"position": p, "token": name, "fail %": 100 * wrong.any(1).mean(),
                     "impact": _impact(wrong, n, min_share)})
    return pd.DataFrame(rows)


def node_names(model: Decoder) -> list[str]:
    """Rows of the node maps: L0H0 .. L0H(H-1), L0M, L1H0, ..."""
    cfg = model.cfg
    return [name for l in range(cfg.n_layers) for name in [f"L{l}H{h}" for h in range(cfg.n_heads)] + [f"L{l}M"]]


def _node_patch(node: str, p: int, mean: dict[str, torch.Tensor], at: int | None = None) -> dict:
    """Patch that mean-ablates one node (a head's z, or the whole MLP's hidden layer) at position p (found at
    index `at` of the patched tensors: 0 in a pass that starts at p, _patched_from)."""
    layer, h = _parse_node(node)
    at = p if at is None else at
    if h is None:
        key = f"L{layer}.mlp.post"
        return {key: _replace((slice(None), at), mean[key][p])}
    key = f"L{layer}.attn.z"
    return {key: _replace((slice(None), at, h), mean[key][p, h])}


def node_ablation(model: Decoder, tok: np.ndarray, positions: list[int], min_share: float = 0.01) -> pd.DataFrame:
    """For each position and node (every head, every MLP layer): mean-ablate the node there; the share of
    questions answered wrongly and the answer digits it breaks. Means are per layer and per position."""
    L, n = model.cfg.n_layers, addition.digits_of(tok.shape[1])
    ablated = [f"L{l}.attn.z" for l in range(L)] + [f"L{l}.mlp.post" for l in range(L)]
    clean = _clean_run(model, tok, ablated)
    mean = {k: clean.cache[k].mean(0) for k in ablated}
    names = addition.position_names(n)
    rows = []
    for p in positions:
        for node in node_names(model):
            layer = _parse_node(node)[0]  # neither the blocks before the node's nor the positions before p rerun
            wrong = wrong_digits(_patched_from(model, clean, p, layer, _node_patch(node, p, mean, at=0)), tok)
            rows.append({"position": p, "token": names[p], "node": node, "fail %": 100 * wrong.any(1).mean(),
                         "impact": _impact(wrong, n, min_share),
                         **{f"wrong {lab} %": 100 * w for lab, w in zip(_digit_labels(n), wrong.mean(0), strict=True)}})
    return pd.DataFrame(rows)


def operation_coverage(model: Decoder, tok_by_class: dict[str, np.ndarray], positions: list[int],
                       min_fail: float = 1.0) -> pd.DataFrame:
    """The operation-coverage map (ARITHMETIC.md §B3, §E4): for each question class ('add', 'sub' = D >= D',
    'neg' = D < D', each its own correctly answered questions), mean-ablate every node at every position and count
    the failures. One row per (position, node) with the fail % per class and `serves`: the classes it breaks in at
    least `min_fail` % of the questions ('add+sub+neg', '' for none). A node serving more than one operation is
    polysemantic in the papers' sense. Ablation means are per class (each class's own activations)."""
    tables = {label: node_ablation(model, tok, positions).set_index(["position", "token", "node"])["fail %"]
              for label, tok in tok_by_class.items()}
    out = pd.DataFrame(tables).reset_index()
    labels = list(tok_by_class)
    out["serves"] = ["+".join(lab for lab in labels if row[lab] >= min_fail) for _, row in out.iterrows()]
    return out


def serves_operations(serves: pd.Series) -> pd.Series:
    """'add+neg' -> {'add', 'sub'}: the operations (add, sub) a coverage row's classes belong to."""
    return serves.map(lambda s: {"add" if c == "add" else "sub" for c in s.split("+") if c})


@torch.no_grad()
def mean_attention(model: Decoder, tok: np.ndarray) -> np.ndarray:
    """(L, H, T, T) attention patterns averaged over the questions."""
    cache = capture(model, tok, [f"L{l}.attn.pattern" for l in range(model.cfg.n_layers)])
    return np.stack([cache[f"L{l}.attn.pattern"].mean(0).numpy() for l in range(model.cfg.n_layers)])


def pair_attention(att: np.ndarray, k: int, column: int) -> np.ndarray:
    """(L, H) attention each head gives to the digit pair (D_column, D'_column) at the token before answer digit
    Ak, from mean_attention's (L, H, T, T) array: the double staircase in numbers."""
    n = addition.digits_of(att.shape[-1])
    q = addition.answer_position(k, n) - 1
    keys = [addition.digit_position(column, n), addition.digit_position(column, n, second=True)]
    return att[:, :, q, keys].astype(np.float64).sum(-1)


def best_pair_attention(att: np.ndarray, k: int, column: int) -> tuple[float, str]:
    """The largest attention one head gives to (D_column, D'_column) at the token before Ak, and that head."""
    a = pair_attention(att, k, column)  # (L, H)
    l, h = np.unravel_index(a.argmax(), a.shape)
    return float(a.max()), f"L{l}H{h}"



# --------------------------------------------------------------------------------------------------
# Interchange interventions
# --------------------------------------------------------------------------------------------------

KINDS = pairs.KINDS
digits_tested = pairs.digits_tested  # re-exported: the hypotheses' digits and pairs live in pairs.py
intervention_pairs = pairs.intervention_pairs


def patch_nodes(model: Decoder, clean_tok: np.ndarray, store_tok: np.ndarray, nodes: tuple[str, ...],
                position: int) -> np.ndarray:
    """Run the clean questions with the given heads' outputs (z) at `position` taken from the store
    questions; -> predicted answer tokens (B, n+2)."""
    stored = capture(model, store_tok, [f"L{l}.attn.z" for l in range(model.cfg.n_layers)])
    return _patched_answers(model, clean_tok, stored, nodes, position)


def _patched_answers(model: Decoder, clean_tok: np.ndarray, stored: dict[str, torch.Tensor], nodes: tuple[str, ...],
                     position: int, clean: _Clean | None = None) -> np.ndarray:
    """clean: the clean questions' unpatched run, to recompute only the blocks from the first patched one and the
    positions from `position` (_patched_from); without it, the full pass."""
    heads: dict[int, list[int]] = {}
    for node in nodes:
        layer, h = _parse_node(node)
        heads.setdefault(layer, []).append(h)
    at = 0 if clean is not None else position
    patch = {f"L{l}.attn.z": _replace((slice(None), at, hs), stored[f"L{l}.attn.z"][:, position, hs])
             for l, hs in heads.items()}
    if clean is None:
        return answers(model, clean_tok, Hooks(patch=patch))
    return _patched_from(model, clean, position, min(heads), patch)


def candidates(model: Decoder, max_heads: int = 2) -> list[tuple[str, ...]]:
    """Single heads, and pairs of heads of one layer ("virtual heads", needed for the base add)."""
    cfg, out = model.cfg, []
    for l in range(cfg.n_layers):
        heads = [f"L{l}H{h}" for h in range(cfg.n_heads)]
        for r in range(1, max_heads + 1):
            out += list(itertools.combinations(heads, r))
    return out


@dataclass(frozen=True)
class Test:
    kind: str
    k: int  # answer digit Ak (the sign: n+1)
    position: int  # where the patched node sits (the token before Ak, or earlier)
    nodes: tuple[str, ...]
    strong: float  # share of pairs with exactly the predicted answer: Ak as predicted, every other token clean
    weak: float  # share of pairs where Ak is as predicted (other digits may move)


@dataclass
class _Pairs:
    """Intervention pairs of one hypothesis, ready to patch: the clean tokens, the store questions' head
    outputs, and the answer tokens the hypothesis predicts."""

    kind: str
    k: int
    p: int  # the token that predicts the hypothesis' answer token (the token before Ak; '=' for the sign)
    col: int  # that token's column in the (sign, A(n) .. A0) answer-token order
    clean: np.ndarray
    stored: dict[str, torch.Tensor]
    want: np.ndarray
    run: _Clean  # the clean questions' unpatched run (_patched_from)


def _prepare(model: Decoder, kind: str, k: int, size: int, rng: np.random.Generator) -> _Pairs | None:
    """Draw the pairs and drop those whose clean or store question the model gets wrong unpatched (None if
    no pair is left)."""
    n = addition.digits_of(model.cfg.n_ctx)
    clean, store_, expected = intervention_pairs(kind, k, size, n, rng)
    op = pairs.operator(kind)
    ct, st = addition.tokens(*clean, op), addition.tokens(*store_, op)
    ok = ~wrong_digits(answers(model, ct), ct).any(1) & ~wrong_digits(answers(model, st), st).any(1)
    if not ok.any():
        return None
    ct, st = ct[ok], st[ok]
    col = pairs.answer_column(kind, k, n)
    want = ct[:, 2 * n + 2:].copy()
    want[:, col] = expected[ok]
    stored = capture(model, st, [f"L{l}.attn.z" for l in range(model.cfg.n_layers)])
    return _Pairs(kind, k, pairs.predicted_at(kind, k, n), col, ct, stored, want, _clean_run(model, ct))


def _run(model: Decoder, pr: _Pairs, nodes_to_try: list[tuple[str, ...]], positions: list[int]) -> list[Test]:
    tests = []
    for q in positions:
        if q > pr.p:
            raise ValueError(f"a node at P{q} cannot influence {pairs.label(pr.kind, pr.k)}, which is predicted "
                             f"at P{pr.p}")
        for nodes in nodes_to_try:
            pred = _patched_answers(model, pr.clean, pr.stored, nodes, q, pr.run)
            tests.append(Test(pr.kind, pr.k, q, nodes, strong=float((pred == pr.want).all(1).mean()),
                              weak=float((pred[:, pr.col] == pr.want[:, pr.col]).mean())))
    return sorted(tests, key=lambda t: (-t.strong, len(t.nodes), t.nodes))


def test_hypothesis(model: Decoder, kind: str, k: int, size: int, rng: np.random.Generator,
                    nodes_to_try: list[tuple[str, ...]] | None = None,
                    positions: list[int] | None = None) -> list[Test]:
    """Interchange intervention for hypothesis `kind` of answer token k (pairs.py), for every candidate node (or
    head pair) at each of `positions` (default: the token that predicts it; a node at an earlier position may
    compute the feature for later ones to read); sorted best first. Pairs where the clean or store question is
    answered wrongly without intervention are dropped."""
    pr = _prepare(model, kind, k, size, rng)
    if pr is None:
        return []
    return _run(model, pr, nodes_to_try or candidates(model), positions or [pr.p])


def hypotheses(model: Decoder, size: int, rng: np.random.Generator, threshold: float = 0.9,
               earlier: list[int] | None = None, kinds: tuple[str, ...] = pairs.ADD_KINDS) -> pd.DataFrame:
    """Every sub-task hypothesis of `kinds` (addition: SA for A0..A(n-1), SC for A1..An, ST for A2..An;
    subtraction, pairs.SUB_KINDS: MD, MB, MT and the sign) with its best node (the fewest heads among those
    passing the strong test, else the best strong score) and whether it holds (strong >= threshold). Nodes are
    searched at the token that predicts the answer token first; where none holds there, also at the `earlier`
    positions before it (e.g. the useful positions of a node ablation), as the authors' search looks at every
    useful position."""
    n = addition.digits_of(model.cfg.n_ctx)
    for kind in kinds:
        pairs.operator(kind)  # an unknown kind: one ValueError before any work
    rows = []
    for kind in kinds:
        for k in digits_tested(kind, n):
            p = pairs.predicted_at(kind, k, n)
            pr = _prepare(model, kind, k, size, np.random.default_rng(int(rng.integers(2**32))))
            if pr is None:  # no pair the model answers correctly: nothing to test
                rows.append({"hypothesis": pairs.label(kind, k), "kind": kind, "digit": k, "position": p,
                             "node": "—", "strong %": np.nan, "weak %": np.nan, "holds": False})
                continue
            tests = _run(model, pr, candidates(model), [p])
            more = [q for q in (earlier or []) if q < p]
            if more and not any(t.strong >= threshold for t in tests):
                tests += _run(model, pr, candidates(model), more)
            best = max(tests, key=lambda t: (t.strong >= threshold, -len(t.nodes) if t.strong >= threshold else 0,
                                             t.strong, t.position))
            rows.append({"hypothesis": pairs.label(kind, k), "kind": kind, "digit": k, "position": best.position,
                         "node": "+".join(best.nodes), "strong %": 100 * best.strong, "weak %": 100 * best.weak,
                         "holds": best.strong >= threshold})
    return pd.DataFrame(rows)


def confirmed_nodes(hyp: pd.DataFrame) -> set[tuple[int, str]]:
    """The (position, head) pairs of the hypotheses that hold: a head pair 'L0H0+L0H2' counts as both heads."""
    return {(int(r.position), node) for r in hyp[hyp.holds].itertuples() for node in r.node.split("+")}


# --------------------------------------------------------------------------------------------------
# PCA of a head's output on the three tri-state classes
# --------------------------------------------------------------------------------------------------


def tri_state_questions(column: int, size: int, n: int, rng: np.random.Generator):
    """`size` questions of each tri-state of `column` (sum <= 8, = 9, >= 10), no carry from below it;
    -> (D, Dp, label) with label 0, 1, 2."""
    Ds, Dps, labels = [], [], []
    for label in (0, 1, 2):
        D, Dp = addition.sample(size, n, rng)
        for j in range(column):  # no carries from lower columns
            D[:, j], Dp[:, j] = pairs.pair_below(9, size, rng)
        if label == 0:
            D[:, column], Dp[:, column] = pairs.pair_below(9, size, rng)
        elif label == 1:
            Dp[:, column] = 9 - D[:, column]
        else:
            D[:, column], Dp[:, column] = pairs.pair_at_least_10(size, rng)
        Ds.append(D)
        Dps.append(Dp)
        labels.append(np.full(size, label))
    return np.concatenate(Ds), np.concatenate(Dps), np.concatenate(labels)


def head_pca(model: Decoder, node: str, position: int, column: int, size: int, rng: np.random.Generator):
    """The output of head `node` (e.g. 'L0H2') at `position` on the tri-state questions of `column`, projected
    on its first two principal components -> (DataFrame pc1, pc2, tri-state, column sum; explained-variance
    ratios; silhouette of the three classes in the PC1-PC2 plane)."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    n = addition.digits_of(model.cfg.n_ctx)
    D, Dp, label = tri_state_questions(column, size, n, rng)
    layer, h = _parse_node(node)
    out = capture(model, addition.tokens(D, Dp), [f"L{layer}.attn.result"])[f"L{layer}.attn.result"]
    X = out[:, position, h].numpy().astype(np.float64)  # (B, C)
    pca = PCA(n_components=min(6, X.shape[1]), random_state=0).fit(X)
    Z = pca.transform(X)[:, :2]
    names = np.array(["sum <= 8", "sum = 9", "sum >= 10"])
    df = pd.DataFrame({"pc1": Z[:, 0], "pc2": Z[:, 1], "tri-state": names[label],
                       "column sum": D[:, column] + Dp[:, column]})
    sil = float(silhouette_score(Z, label)) if np.ptp(Z) > 0 else float("nan")
    return df, pca.explained_variance_ratio_, sil
