"""Training configs: the shipped recipes are valid, and bad ones fail naming file and key."""

import pytest

import redimnet
from redimnet.cli import main as cli_main
from redimnet.errors import ConfigError as RecipeError
from redimnet.models.families import build_model
from redimnet.recipes import list_recipes, recipe_path, resolve_config
from redimnet.training.config import ConfigError, TrainingConfig, load_config

CONFIGS = [recipe_path(name) for name in list_recipes()]
# Recipes for the published models (VoxCeleb), small ones for synthetic speakers (minutes on a CPU), and the
# segmentation network's (tests/test_train_segmentation.py).
SYNTHETIC = ["synthetic_small", "redimnet2_synthetic_small"]
SEGMENTATION = ["segmentation_small"]
PAPER_CONFIGS = [path for path in CONFIGS if path.stem not in SYNTHETIC + SEGMENTATION]


def test_every_model_size_has_pretrain_and_lm_configs():
    names = {p.name for p in CONFIGS}
    buildable = [n for n in redimnet.list_models("redimnet") if redimnet.get_architecture(n).buildable]
    assert buildable == ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]  # M, S: configuration only in their files
    for preset in buildable:
        assert f"{preset}_pretrain.yaml" in names and f"{preset}_lm.yaml" in names
    for index in range(7):  # ReDimNet2, whose authors have not published a recipe
        assert f"redimnet2_b{index}_pretrain.yaml" in names and f"redimnet2_b{index}_lm.yaml" in names


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid_and_follow_the_paper(path):
    config = load_config(path)
    model_config = config.model_config()
    assert model_config.num_classes is None
    if path.name.startswith("redimnet2_"):  # WeSpeaker's ReDimNet2 recipe: 10 ms hop, SphereFace2
        assert isinstance(build_model(model_config), redimnet.ReDimNet2)
        assert model_config.hop_length == 160 and config.loss.type == "sphereface2"
        assert config.loss.scale == 32 and config.loss.sphereface2_lambda == 0.7
    else:
        assert model_config.hop_length == 240  # 15 ms at 16 kHz
        assert config.loss.scale == 32 and config.loss.type == "aam"
    assert config.data.speed_perturb == (0.9, 1.1)
    assert config.optimizer.nesterov and config.optimizer.momentum == 0.9 and config.optimizer.weight_decay == 2e-5
    if path.name.endswith("_pretrain.yaml"):
        assert config.data.crop_seconds == 2.0 and config.loss.margin == 0.2
    else:
        assert config.data.crop_seconds == 6.0 and config.loss.margin > 0.2 and config.model.init_from


@pytest.mark.parametrize("name, model_class", list(zip(SYNTHETIC, [redimnet.ReDimNet, redimnet.ReDimNet2])))
def test_synthetic_recipes_build_small_models_of_their_family(name, model_class):
    config = load_config(recipe_path(name))
    model = build_model(config.model_config())
    assert type(model) is model_class
    assert sum(p.numel() for p in model.parameters()) < 200_000 and model.embed_dim == 64
    assert config.train.epochs == 12 and config.data.crop_seconds == 1.0 and config.augment.prob == 0.0
    assert config.data.wav_scp == "data/synthetic/lists/wav.scp" and config.train.output_dir == f"exp/{name}"


def _write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, key",
    [
        ("train:\n  epochz: 3\n", "train.epochz"),
        ("loss:\n  type: arcface\n", "loss.type"),
        ("optimizer:\n  lr: -1\n", "optimizer.lr"),
        ("data:\n  speed_perturb: [1.0]\n", "data.speed_perturb"),
        ("data:\n  batch_size: 2.5\n", "data.batch_size"),
        ("augment:\n  snr: {noise: [10, 0]}\n", "augment.snr"),
        ("model:\n  preset: b9\n", "model.preset"),
        ("model:\n  overrides: {C: 0}\n", "model.overrides"),
        ("model:\n  overrides: {num_classes: 10}\n", "model.overrides.num_classes"),
        ("data:\n  wav_scp: a.scp\n", "data.utt2spk"),
        ("bogus:\n  x: 1\n", "bogus"),
        ("optimizer:\n  lr: 0.01\n  final_lr: 0.1\n", "optimizer.final_lr"),
    ],
)
def test_invalid_configs_name_the_file_and_key(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and key in str(error.value)


def test_yaml_syntax_error_gives_line(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_config(path)


def test_set_overrides_are_validated_too(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: 3\n")
    assert load_config(path, ["train.epochs=7"]).train.epochs == 7
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(path, ["train.epochs=zero"])


def test_missing_data_paths_fail_before_training(tmp_path):
    config = TrainingConfig.from_dict({"data": {"csv": str(tmp_path / "nope.csv")}}, source="x.yaml")
    with pytest.raises(ConfigError, match="data.csv.*does not exist"):
        config.check_paths()


def test_cli_reports_bad_config_without_traceback(tmp_path, capsys):
    path = _write(tmp_path, "train:\n  epochz: 3\n")
    assert cli_main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("redimnet: error:") and "train.epochz" in err and "Traceback" not in err


def test_spec_augment_option_reaches_the_model():
    config = TrainingConfig.from_dict({"model": {"preset": "b0"}, "augment": {"spec_augment": True}})
    assert config.model_config().spec_params["do_spec_aug"] is True


@pytest.mark.parametrize(
    "text, key",
    [
        ("optimizer:\n  lr: .inf\n", "optimizer.lr"),
        ("optimizer:\n  weight_decay: .nan\n", "optimizer.weight_decay"),
        ("train:\n  grad_clip: .inf\n", "train.grad_clip"),
        ("augment:\n  snr: {noise: [.nan, 5]}\n", "augment.snr.noise[0]"),
        ("validation:\n  max_seconds: .inf\n", "validation.max_seconds"),
        ("model:\n  overrides: {spec_params: {x: -.inf}}\n", "model.overrides.spec_params.x"),
    ],
)
def test_non_finite_numbers_are_refused_everywhere(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="not a finite number") as error:
        load_config(path)
    assert f"{path}: {key}:" in str(error.value)


def test_set_override_with_infinite_learning_rate_is_refused(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="optimizer.lr: inf is not a finite number"):
        load_config(path, ["optimizer.lr=.inf"])
    assert cli_main(["train", "--config", str(path), "--set", "optimizer.lr=.inf"]) == 2


def test_recipes_are_addressable_by_name_and_path(tmp_path, capsys):
    assert cli_main(["train", "--list-configs"]) == 0
    listed = capsys.readouterr().out.split()
    assert "b2_pretrain" in listed and "b2_lm" in listed and len(listed) == len(CONFIGS)
    assert resolve_config("b2_pretrain") == resolve_config("b2_pretrain.yaml") == recipe_path("b2_pretrain")
    assert resolve_config("b2_pretrain").read_text().startswith("# ReDimNet-B2 pre-training")
    own = tmp_path / "b2_pretrain.yaml"  # a file of the same name wins over the shipped recipe
    own.write_text(recipe_path("b2_pretrain").read_text())
    assert resolve_config(own) == own


@pytest.mark.parametrize(
    "given, message",
    [
        ("b9_pretrain", "no shipped recipe named 'b9_pretrain'; the recipes are: b0_lm, "),
        ("missing/b2.yaml", "config missing/b2.yaml not found .*--list-configs"),
    ],
)
def test_unknown_recipe_is_a_clear_usage_error(given, message, capsys):
    with pytest.raises(RecipeError, match=message):
        resolve_config(given)
    assert cli_main(["train", "--config", given]) == 2
    assert "redimnet: error: " in capsys.readouterr().err
    assert cli_main(["train"]) == 2
    assert "--config is required" in capsys.readouterr().err


def test_recipes_resolve_to_the_configs_they_were_before_the_bases():
    """Every shipped recipe, laid over its base, gives exactly the config its complete file gave
    (tests/data/recipes_resolved.json was written from the complete files)."""
    import json

    from conftest import PROJECT_ROOT

    from redimnet.training.config import TrainingConfig

    expected = json.loads((PROJECT_ROOT / "tests" / "data" / "recipes_resolved.json").read_text())
    # the speaker-embedding recipes (a segmentation recipe has no base)
    speaker_recipes = [name for name in list_recipes() if isinstance(load_config(recipe_path(name)), TrainingConfig)]
    assert "segmentation_small" in list_recipes() and "segmentation_small" not in speaker_recipes
    assert sorted(expected) == speaker_recipes
    for name in speaker_recipes:
        resolved = json.loads(json.dumps(load_config(recipe_path(name)).to_dict()))
        assert resolved == expected[name], name


def test_a_config_on_a_base_sets_only_what_differs(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("base: pretrain\nmodel:\n  preset: b1\ndata:\n  batch_size: 8\ntrain:\n  output_dir: exp/mine\n")
    config = load_config(own)
    assert config.model.preset == "b1" and config.data.batch_size == 8 and config.train.output_dir == "exp/mine"
    assert config.loss.margin == 0.2 and config.data.crop_seconds == 2.0  # from the base
    for bad, message in [
        ("nope", "not a shipped base"),
        ("../b2_pretrain", "not a shipped base"),
        ("[1]", "not a shipped"),
    ]:
        own.write_text(f"base: {bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(own)
