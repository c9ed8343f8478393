"""RunConfig: every field validated with one clear error, run names a stable hash of the flattened config."""

from __future__ import annotations

import json

import pytest

from mathtx_helpers.matrix.config import RunConfig

TINY = dict(n=3, d_model=16, n_heads=2, enc_layers=1, dec_layers=1, batch=16, lr=1e-3, warmup=2, examples=160,
            eval_every=64, eval_size=8, precision="fp32")


@pytest.mark.parametrize("changes, message", [
    (dict(task="eigen"), "valid tasks: eigenvalues, eigenvectors, inversion"),
    (dict(input_encoding="P100"), "valid encodings: P10, P1000, B1999, FP15"),
    (dict(output_encoding="fp15"), "valid encodings: P10, P1000, B1999, FP15"),
    (dict(spectrum="wigner"), "valid spectra: semicircle, uniform, gaussian, laplace, positive, positive2, marcenko"),
    (dict(spectrum="laplace,cauchy"), "valid spectra: semicircle"),
    (dict(test_spectra=("uniform", "nope")), "unknown spectrum 'nope'; valid spectra: semicircle"),
    (dict(schedule="linear"), "valid: cosine, constant"),
    (dict(precision="fp16"), "valid: auto, fp32, bf16"),
    (dict(task="inversion"), "upper=True .* not inversion"),  # upper defaults to True
    (dict(n=1), "n must be >= 2"),
    (dict(n=0), "n must be positive"),
    (dict(d_model=30, n_heads=4), "d_model 30 is not divisible by n_heads 4"),
    (dict(n_heads=0), "n_heads must be positive"),
    (dict(batch=0), "batch must be positive"),
    (dict(lr=0.0), r"lr must be in \(0, 1\)"),
    (dict(max_cond=0.5), "max_cond must be 0 .* or >= 1"),
    (dict(curriculum_examples=-1), "curriculum_examples >= 0"),
])
def test_invalid_config_is_one_clear_value_error(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict({**TINY, **changes})


def test_valid_edge_configs():
    assert RunConfig(task="inversion", upper=False).test_spectra == ("uniform-nonsymmetric",)
    assert RunConfig(n=5, spectrum="laplace,positive").name.startswith("eigenvalues-n5-laplace+positive-")
    assert RunConfig.from_dict({"dec_layers": 0}).dec_layers == 0
    assert RunConfig(test_spectra=["uniform"]) == RunConfig(test_spectra=("uniform",))


def test_name_is_a_stable_hash():
    # regression guard: a changed hash would orphan every trained run folder (update only on purpose)
    assert RunConfig.from_dict(TINY).name == "eigenvalues-n3-semicircle-68421eb0da"
    assert RunConfig().name == RunConfig().name
    assert RunConfig(task="inversion", upper=False).name.startswith("inversion-n3-uniform-")
    cfg = RunConfig.from_dict(TINY)
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert RunConfig.from_dict(json.loads(cfg.to_json())).name == cfg.name


ALTERNATIVES = dict(task="eigenvectors", n=4, spectrum="uniform", test_spectra=("semicircle", "laplace"),
                    input_encoding="P1000", output_encoding="B1999", upper=False, d_model=32, n_heads=4,
                    enc_layers=2, dec_layers=2, batch=32, lr=2e-3, warmup=3, schedule="constant", min_lr_ratio=0.2,
                    weight_decay=0.0, grad_clip=0.5, examples=161, eval_every=65, eval_size=9, precision="bf16",
                    seed=1)


def test_name_changes_with_every_field():
    fields = set(json.loads(RunConfig().to_json()))  # the flattened config: the model's fields inline
    assert set(ALTERNATIVES) == fields, "a new RunConfig field needs an alternative value here"
    base = RunConfig.from_dict(TINY)
    names = {base.name}
    for field, value in ALTERNATIVES.items():
        assert getattr(base, field) != value
        changed = base.replace(**{field: value})
        assert changed.name not in names, field
        names.add(changed.name)


# fields added after the committed runs were named: in config.json (and the hash) only when set
LATER_FIELDS = dict(max_cond=10.0, curriculum_examples=1000)


def test_later_fields_enter_the_name_only_when_set():
    base = RunConfig.from_dict(TINY)
    assert not set(LATER_FIELDS) & set(json.loads(base.to_json()))
    names = {base.name}
    for field, value in LATER_FIELDS.items():
        changed = base.replace(**{field: value})
        assert json.loads(changed.to_json())[field] == value
        assert changed.name not in names, field
        names.add(changed.name)
        assert RunConfig.from_dict(json.loads(changed.to_json())) == changed


def test_from_dict_rejects_unknown_keys():
    d = json.loads(RunConfig.from_dict(TINY).to_json())
    with pytest.raises(ValueError, match="unknown RunConfig field 'dropout'; valid fields: .*batch, .*d_model"):
        RunConfig.from_dict({**d, "dropout": 0.1})
