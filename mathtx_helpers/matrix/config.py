"""What a matrix run is: RunConfig (the problem, the encodings, the recipe) holding a ModelConfig (the shape).

Imports no torch: the profile registry builds these without loading the training engine.

A run's folder is named by the hash of its flattened config (the model's fields inlined, with the key names
the configs had when the committed runs were made), so nesting the model config renamed no run:
    data/runs/<task>-n<n>-<spectrum>-<hash>/
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import runs
from . import encoding, spectra, tasks

SCHEDULES = ("cosine", "constant")
ATTENTION_IMPLS = ("auto", "sdpa", "matmul")


@dataclass(frozen=True)
class ModelConfig:
    """The encoder-decoder's shape. The vocabularies and maximum lengths are its run's encodings' (0 until
    build_model fills them in). The dimension names are the arithmetic decoder's (and TransformerLens')."""

    d_model: int = 128
    n_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 1
    d_mlp: int = 0  # MLP width; 0 means 4 * d_model
    tie_output: bool = True  # output projection tied to the target embedding
    attention: str = "auto"  # auto: plain matmuls on CPU, SDPA on CUDA (see model.py)
    src_vocab: int = 0
    tgt_vocab: int = 0
    max_src_len: int = 0
    max_tgt_len: int = 0

    DERIVED = ("src_vocab", "tgt_vocab", "max_src_len", "max_tgt_len")  # set from the encodings, not chosen

    def __post_init__(self):
        for name in ("d_model", "n_heads", "enc_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dec_layers < 0 or self.d_mlp < 0:
            raise ValueError(f"dec_layers and d_mlp must be >= 0, got {self.dec_layers} and {self.d_mlp}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.attention not in ATTENTION_IMPLS:
            raise ValueError(f"unknown attention {self.attention!r}; valid: {', '.join(ATTENTION_IMPLS)}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        return self.d_mlp or 4 * self.d_model


# the keys of the flattened config when the committed runs were named: others enter the hash only when set
LEGACY_KEYS = ("task", "n", "spectrum", "test_spectra", "input_encoding", "output_encoding", "upper", "d_model",
               "n_heads", "enc_layers", "dec_layers", "batch", "lr", "warmup", "schedule", "min_lr_ratio",
               "weight_decay", "grad_clip", "examples", "eval_every", "eval_size", "precision", "seed")


@dataclass(frozen=True)
class RunConfig(runs.HashedConfig):
    task: str = "eigenvalues"
    n: int = 3  # matrix size
    spectrum: str = "semicircle"  # training spectrum, or a comma mixture (ignored for inversion)
    test_spectra: tuple[str, ...] = ()  # evaluated during training; default: the training spectrum
    input_encoding: str = "FP15"
    output_encoding: str = "P1000"
    upper: bool = True  # symmetric inputs send only their upper triangle
    model: ModelConfig = field(default_factory=ModelConfig)
    batch: int = 256  # per process
    lr: float = 5e-4  # peak learning rate
    warmup: int = 500  # optimizer steps of linear warm-up
    schedule: str = "cosine"  # cosine decay to min_lr_ratio * lr at the end of the budget, or constant
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    examples: int = 1_000_000  # training budget, in examples (all processes together)
    # a curriculum on cond(A): the first curriculum_examples training examples (0: all) are drawn with
    # cond(A) <= max_cond (0: no limit); evaluation and test sets always use the whole distribution
    max_cond: float = 0.0
    curriculum_examples: int = 0
    eval_every: int = 100_000  # examples between evaluations
    eval_size: int = 500  # problems per test spectrum at each evaluation
    precision: str = "auto"  # auto: a rule on the device (core/devices.py); the resolved one is in the run folder
    seed: int = 0

    LEGACY_KEYS = LEGACY_KEYS
    MODEL_CLASS = ModelConfig

    def __post_init__(self):
        if not self.test_spectra:
            default = (tasks.INVERSION_SPECTRUM,) if self.task == "inversion" else (self.spectrum,)
            object.__setattr__(self, "test_spectra", default)
        object.__setattr__(self, "test_spectra", tuple(self.test_spectra))
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelConfig(**self.model))
        self.validate()

    def validate(self) -> None:
        """Every field checked before any work starts; one ValueError naming the valid choices."""
        from ..core.devices import PRECISIONS

        tasks.check_task(self.task)
        encoding.check_encoding(self.input_encoding)
        encoding.check_encoding(self.output_encoding)
        if self.task != "inversion":
            spectra.parse_spectrum(self.spectrum)
            for s in self.test_spectra:
                spectra.parse_spectrum(s)
        if self.task == "inversion" and self.upper:
            raise ValueError("upper=True sends an upper triangle: only for symmetric tasks, not inversion")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        for name in ("n", "batch", "examples", "eval_every", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n < 2:
            raise ValueError(f"matrix size n must be >= 2, got {self.n}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        tasks.check_max_cond(self.max_cond)
        if self.curriculum_examples < 0:
            raise ValueError(f"need curriculum_examples >= 0 (0: the whole run), got {self.curriculum_examples}")

    # the model's dimensions, read through (cfg.d_model is cfg.model.d_model)
    d_model = property(lambda self: self.model.d_model)
    n_heads = property(lambda self: self.model.n_heads)
    enc_layers = property(lambda self: self.model.enc_layers)
    dec_layers = property(lambda self: self.model.dec_layers)

    @property
    def name(self) -> str:
        return f"{self.task}-n{self.n}-{tasks.spectrum_label(self.task, self.spectrum)}-{self.key}"
