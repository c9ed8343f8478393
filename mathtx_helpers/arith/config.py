"""What an arithmetic run is: AddConfig (the task, the recipe) holding a DecoderConfig (the model's shape).

Imports no torch: the profile registry builds these without loading the training engine.
A run's folder, data/runs/<task>-d<n>-l<L>-h<H>-<hash>/ (task: addition, subtraction, mixed, ins1-mixed), is named
by the hash of its flattened config (the model's fields inlined under the names they had before the model config
was nested; fields added later enter it only when set away from their defaults), so no run was renamed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..core import devices, runs
from . import addition


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder-only model's shape, with TransformerLens' dimension names. n_ctx and d_vocab follow from
    the task (an AddConfig sets them from n_digits)."""

    n_ctx: int = 19
    d_vocab: int = 13
    n_layers: int = 2
    n_heads: int = 3
    d_model: int = 128
    d_head: int = 32
    d_mlp: int = 512

    DERIVED = ("n_ctx", "d_vocab")  # set from the task, not chosen

    def __post_init__(self):
        for name in ("n_ctx", "d_vocab", "n_layers", "n_heads", "d_model", "d_head", "d_mlp"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


PRECISIONS = tuple(p for p in devices.PRECISIONS if p != "auto")  # AddConfig.precision: no machine-dependent "auto"
LEGACY_KEYS = ("n_digits", "n_layers", "n_heads", "d_model", "d_head", "d_mlp", "batch", "steps", "lr",
               "weight_decay", "warmup_frac", "enrich_batches", "enrich_pairs", "log_every", "eval_every", "eval_size",
               "seed")


@dataclass(frozen=True)
class AddConfig(runs.HashedConfig):
    n_digits: int = 5
    model: DecoderConfig = field(default_factory=DecoderConfig)
    batch: int = 128
    steps: int = 12_000
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_frac: float = 0.2  # linear warm-up from 1 % of lr over this share of the steps, then cosine to 0
    enrich_batches: float = 0.6  # share of batches with sum-9 enrichment
    enrich_pairs: float = 0.4  # share of column pairs forced to sum to 9 in an enriched batch
    log_every: int = 100  # steps between per-digit loss lines
    eval_every: int = 1_000  # steps between accuracy checks
    eval_size: int = 4_096  # questions per accuracy check (uniform and enriched each, per operation)
    seed: int = 372001
    # the operation mix (ARITHMETIC.md §A2-A3): the share of batches that are subtraction (each batch holds one
    # operation). 0: an addition model; 1: a subtraction-only model; in between a mixed model (the papers:
    # 0.66 from scratch, 0.8 for the ins1 route). Subtraction batches use subtraction.training_batch's enrichment
    # with the same enrich_batches / enrich_pairs.
    sub_share: float = 0.0
    # the ins1 route: the run folder name of a trained model whose embeddings, LayerNorms, heads and MLPs are
    # copied into the first layers and heads of this untrained one before training (arith/insertion.py)
    init_from: str = ""
    # the training step's matmuls: "fp32", or "bf16" autocast (fp32 weights, optimizer and loss). No "auto": a run's
    # name and bytes never depend on the machine it trains on. Evaluation and scoring stay in fp32.
    precision: str = "fp32"

    LEGACY_KEYS = LEGACY_KEYS
    MODEL_CLASS = DecoderConfig

    def __post_init__(self):
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", DecoderConfig(**self.model))
        self.validate()
        object.__setattr__(self, "model", dataclasses.replace(
            self.model, n_ctx=addition.n_ctx(self.n_digits), d_vocab=addition.D_VOCAB))

    def validate(self) -> None:
        """Every field checked before any work starts; one ValueError naming what is allowed."""
        for name in ("n_digits", "batch", "steps", "log_every", "eval_every", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 2 <= self.n_digits <= 15:
            raise ValueError(f"n_digits must be in 2..15 (the papers: 5-15), got {self.n_digits}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        for name in ("warmup_frac", "enrich_batches", "enrich_pairs", "sub_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    # the model's dimensions, read through (cfg.n_layers is cfg.model.n_layers)
    n_layers = property(lambda self: self.model.n_layers)
    n_heads = property(lambda self: self.model.n_heads)
    d_model = property(lambda self: self.model.d_model)
    d_head = property(lambda self: self.model.d_head)
    d_mlp = property(lambda self: self.model.d_mlp)

    @property
    def operations(self) -> tuple[str, ...]:
        """The operations it is trained on: ('add',), ('sub',) or ('add', 'sub')."""
        return {0.0: ("add",), 1.0: ("sub",)}.get(float(self.sub_share), ("add", "sub"))

    @property
    def task(self) -> str:
        """'addition', 'subtraction' or 'mixed', with 'ins1-' before it when it starts from another model."""
        task = {("add",): "addition", ("sub",): "subtraction"}.get(self.operations, "mixed")
        return f"ins1-{task}" if self.init_from else task

    @property
    def name(self) -> str:
        return f"{self.task}-d{self.n_digits}-l{self.n_layers}-h{self.n_heads}-{self.key}"
