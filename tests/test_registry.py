"""The model registry: architectures b0-b6, M, S with their published weights, one table for every entry point."""

import argparse
import importlib.util
import json

import pytest
from conftest import PROJECT_ROOT, official_file

import redimnet
from redimnet.hub import registry
from redimnet.models.complexity import count_macs, count_parameters

# From ../shared/fixtures/README.md: parameters (M) and GMACs for 2 s of audio,
# measured on the original implementation; printed to two decimals.
TABLE = {
    "b0": (1.00, 0.42),
    "b1": (2.13, 0.60),
    "b2": (4.89, 0.94),
    "b3": (3.23, 2.92),
    "b4": (6.44, 4.74),
    "b5": (7.66, 8.82),
    "b6": (15.02, 20.13),
}

# The authors' release files (README of the original repository): {model}-{dataset}-{train_type}.pt
PUBLISHED_FILES = sorted(
    [f"b{i}-vox2-{t}.pt" for i in range(7) for t in ("ptn", "ft_lm")]
    + [f"{m}-{d}.pt" for m in "MS" for d in ("vb2+vox2+cnc-ft_mix", "vb2-ptn")]
)


def within(value: float, printed: float, relative: float = 0.01) -> bool:
    """Within 1 % of the printed number, or equal to it after rounding to two decimals."""
    return abs(value - printed) <= relative * printed or round(value + 1e-12, 2) == printed


@pytest.fixture
def clean_registry(monkeypatch):
    """Families registered by a test are forgotten afterwards."""
    from redimnet.models.common import family

    monkeypatch.setattr(family, "_FAMILIES", dict(family._FAMILIES))


def test_list_models_and_weights_agree():
    assert redimnet.list_models("redimnet") == ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "M", "S"]
    assert redimnet.list_models()[:9] == redimnet.list_models("redimnet")  # other families follow
    weights = [w for w in redimnet.list_weights() if redimnet.get_weights(w).architecture.family == "redimnet"]
    assert sorted(redimnet.get_weights(name).file_name for name in weights) == PUBLISHED_FILES
    assert {redimnet.get_weights(name).arch for name in weights} == set(redimnet.list_models("redimnet"))
    for name in weights:
        entry = redimnet.get_weights(name)
        assert entry.name == name == f"{entry.arch}.{entry.dataset}-{entry.train_type}"
        assert entry.url == "https://github.com/IDRnD/ReDimNet/releases/download/latest/" + entry.file_name
        assert name in redimnet.list_weights(entry.arch)
        assert entry.license == ("MIT" if entry.arch.startswith("b") else "CC BY-NC-SA 4.0")
    assert redimnet.DEFAULT_WEIGHTS == "b2.vox2-ft_lm" and redimnet.DEFAULT_WEIGHTS in weights


def test_published_numbers_in_one_place():
    """The release EERs are the architecture's paper EERs for b0-b6 (one table, no second copy)."""
    for name in ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]:
        arch = redimnet.get_architecture(name)
        assert redimnet.get_weights(name).eer == arch.paper_eer
        assert arch.default_weights.name == f"{name}.vox2-ft_lm"
    assert redimnet.get_weights("M").eer == (0.835, 0.745, 1.284)
    assert redimnet.get_weights("S.vb2+vox2+cnc-ft_mix").eer == (0.936, 0.874, 1.510)
    known = {w: redimnet.get_weights(w).sha256 for w in redimnet.list_weights() if redimnet.get_weights(w).sha256}
    assert sorted(known) == ["b2.vox2-ft_lm", "b2.vox2-ptn", "b5.vox2-ft_lm"]
    assert known["b2.vox2-ft_lm"] == "c9b6bb2f6747caa28a41eaf2e372d66b0d1563baef186d18f5e99abd5e71e06f"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("b2.vox2-ft_lm", "b2.vox2-ft_lm"),
        ("B2.VOX2-FT_LM", "b2.vox2-ft_lm"),
        ("b2", "b2.vox2-ft_lm"),
        ("b2.ptn", "b2.vox2-ptn"),
        ("m", "M.vb2+vox2+cnc-ft_mix"),
        ("M.vb2", "M.vb2-ptn"),
        ("S.ft_mix", "S.vb2+vox2+cnc-ft_mix"),
    ],
)
def test_weight_names(text, expected):
    assert redimnet.get_weights(text).name == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("b9", "unknown model 'b9'.*b0, b1"),
        ("b2.vb2-ptn", "b2.vb2-ptn is not published.*b2.vox2-ft_lm"),
        ("b2.vox2", "b2.vox2 is ambiguous"),
    ],
)
def test_weight_name_errors(text, message):
    with pytest.raises(registry.UnknownModelError, match=message):
        redimnet.get_weights(text)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_preset_matches_published_config(name):
    published = json.loads(official_file("configs.json").read_text())[name]
    assert redimnet.get_preset(name).config == redimnet.ModelConfig.from_dict(published)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TABLE))
def test_parameters_and_gmacs(name):
    """Counted on the built network: close to the original's figures, and equal to the stored ones."""
    model = redimnet.build(name)
    params = count_parameters(model)
    macs = count_macs(model, seconds=2.0)
    expected_params, expected_gmacs = TABLE[name]
    assert abs(params / 1e6 - expected_params) <= 0.01 * expected_params, params
    assert within(macs / 1e9, expected_gmacs), macs
    arch = redimnet.get_architecture(name)
    assert (arch.parameters, arch.macs_2s) == (params, macs)


def test_build_overrides_and_errors():
    model = redimnet.build("b2", num_classes=10, embed_dim=256)
    assert model.config.num_classes == 10 and model.embedding.out_features == 256
    assert redimnet.build("B0").config == redimnet.get_preset("b0").config
    with pytest.raises(ValueError, match="unknown model 'b9'"):
        redimnet.build("b9")
    with pytest.raises(ValueError, match="colour"):
        redimnet.build("b0", colour="red")


@pytest.mark.parametrize("name", ["M", "s"])
def test_build_without_weights_explains_file_only_architectures(name):
    with pytest.raises(registry.UnknownModelError, match="published only inside its weight files.*ft_mix"):
        redimnet.build(name)
    assert not redimnet.get_architecture(name).buildable


def test_build_with_weights_goes_through_the_loader(monkeypatch):
    seen = []
    monkeypatch.setattr(
        "redimnet.hub.pretrained.load_weights",
        lambda weights, **options: seen.append((weights.name, options)) or "model",
    )
    assert redimnet.build("b2", weights="vox2-ptn", cache_dir="/somewhere") == "model"
    assert redimnet.build("b3.ft_lm") == "model"
    assert redimnet.load() == "model" and redimnet.load("M") == "model"
    assert seen == [
        ("b2.vox2-ptn", {"cache_dir": "/somewhere"}),
        ("b3.vox2-ft_lm", {}),
        (redimnet.DEFAULT_WEIGHTS, {}),
        ("M.vb2+vox2+cnc-ft_mix", {}),
    ]


def test_macs_scale_with_duration():
    model = redimnet.build("b0")
    assert 1.9 < count_macs(model, 4.0) / count_macs(model, 2.0) < 2.1


def _hubconf():
    spec = importlib.util.spec_from_file_location("redimnet_hubconf_under_test", PROJECT_ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_entry_reachable_from_python_hub_and_cli(monkeypatch):
    """redimnet.load, hubconf.py (both argument styles) and the CLI's --model read the same table."""
    from redimnet.cli.models import add_model_arguments, model_from_arguments

    loaded = []
    monkeypatch.setattr(
        "redimnet.hub.pretrained.load_weights", lambda weights, **options: loaded.append(weights) or weights
    )
    hub = _hubconf()
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    for name in redimnet.list_weights():
        entry = redimnet.get_weights(name)
        assert redimnet.load(name) is entry
        assert hub.ReDimNet(weights=name) is entry
        assert hub.ReDimNet(model_name=entry.arch, train_type=entry.train_type, dataset=entry.dataset) is entry
        assert model_from_arguments(parser.parse_args(["--model", name])) is entry
        assert (
            model_from_arguments(
                parser.parse_args(["--model", entry.arch, "--train-type", entry.train_type, "--dataset", entry.dataset])
            )
            is entry
        )
    assert len(loaded) == 5 * len(redimnet.list_weights())
    default = redimnet.get_weights(redimnet.DEFAULT_WEIGHTS)
    assert hub.ReDimNet() is default and model_from_arguments(parser.parse_args([])) is default
    assert redimnet.from_pretrained() is default


def test_one_resolver_reads_every_form_of_a_name():
    """resolve_weights: default, full name, shortened tag, architecture with or without train type / dataset."""
    default = redimnet.get_weights(redimnet.DEFAULT_WEIGHTS)
    assert registry.resolve_weights() is default
    assert registry.resolve_weights("b3.vox2-ptn").name == "b3.vox2-ptn"
    assert registry.resolve_weights("b3.ptn").name == "b3.vox2-ptn"
    assert registry.resolve_weights("B5").name == "b5.vox2-ft_lm"
    assert registry.resolve_weights("M", train_type="ptn").name == "M.vb2-ptn"
    assert registry.resolve_weights(train_type="ptn").name == f"{default.arch}.vox2-ptn"
    with pytest.raises(registry.UnknownModelError, match="already names the weights"):
        registry.resolve_weights("b2.vox2-ptn", train_type="ft_lm")
    with pytest.raises(registry.UnknownModelError, match="unknown model"):
        registry.resolve_weights("b9")


def test_from_pretrained_defaults_to_the_default_weights(monkeypatch):
    loaded = []
    monkeypatch.setattr("redimnet.hub.pretrained.load_weights", lambda weights, **options: loaded.append(weights.name))
    redimnet.from_pretrained()
    redimnet.from_pretrained(train_type="ptn")
    redimnet.from_pretrained("b2.vox2-ptn")
    arch = redimnet.get_weights(redimnet.DEFAULT_WEIGHTS).arch
    assert loaded == [redimnet.DEFAULT_WEIGHTS, f"{arch}.vox2-ptn", "b2.vox2-ptn"]


def test_hub_embedder_accepts_every_embedder_option(monkeypatch):
    import inspect

    monkeypatch.setattr("redimnet.hub.pretrained.load_weights", lambda weights, **options: redimnet.build("b0"))
    names = set(inspect.signature(redimnet.Embedder).parameters) - {"model"}
    assert "keep_freed_memory" in names
    embedder = _hubconf().ReDimNetEmbedder("b0", keep_freed_memory=False, optimize=False, batch_size=3)
    assert embedder.batch_size == 3


def test_a_new_family_registers_cleanly(clean_registry, tmp_path):
    """Another model family joins with one family object holding its classes, architectures and weights;
    every lookup (names, building, checkpoints) reads it without being changed."""
    from redimnet.models import families
    from redimnet.models.common.family import Family, FamilyParts, register_family
    from redimnet.models.redimnet import ReDimNet
    from redimnet.models.redimnet.config import ModelConfig
    from redimnet.models.redimnet.keymap import original_names

    class ToyConfig(ModelConfig):
        family = "toy"

    class Toy(ReDimNet):
        config_class = ToyConfig

    toy = register_family(
        Family(
            "toy",
            "a toy family",
            lambda: FamilyParts(ToyConfig, Toy, original_names),
            marks=lambda options: isinstance(options, dict) and options.get("C") == 4,
            release_url="http://127.0.0.1:9/",
        )
    )
    options = dict(F=24, C=4, embed_dim=16, stages_setup=[(1, 1, 1, [(3, 3)], None)])
    toy.add_architecture("toy-s", options)
    toy.add_weights("toy-s", "synthetic", "ptn", "MIT")
    assert redimnet.list_models("toy") == ["toy-s"] and redimnet.list_models()[-1] == "toy-s"
    model = redimnet.build("TOY-S")
    assert isinstance(model, Toy) and model.embedding.out_features == 16
    assert redimnet.get_weights("toy-s").url == "http://127.0.0.1:9/toy-s-synthetic-ptn.pt"
    assert redimnet.get_weights("toy-s").cache_name == "toy-toy-s-synthetic-ptn.pt"
    assert families.detect_family(options) == "toy" and families.family_of(model) is toy
    redimnet.save_checkpoint(model, tmp_path / "toy.pt")
    assert isinstance(redimnet.load_checkpoint(tmp_path / "toy.pt"), Toy)
    with pytest.raises(ValueError, match="taken"):
        toy.add_architecture("B2", options)
    with pytest.raises(ValueError, match="register the architecture 'y'"):
        toy.add_weights("y", "d", "t", "MIT")
    with pytest.raises(ValueError, match="already registered"):
        register_family(Family("toy", "another toy", toy._load_parts))
