"""Presets b0-b6: configurations, parameter counts and GMACs."""

import json

import pytest

import redimnet
from conftest import official_file
from redimnet.complexity import count_macs, count_parameters

# From ../shared/fixtures/README.md: parameters (M) and GMACs for 2 s of audio,
# measured on the original implementation; printed to two decimals.
TABLE = {"b0": (1.00, 0.42), "b1": (2.13, 0.60), "b2": (4.89, 0.94), "b3": (3.23, 2.92),
         "b4": (6.44, 4.74), "b5": (7.66, 8.82), "b6": (15.02, 20.13)}


def within(value: float, printed: float, relative: float = 0.01) -> bool:
    """Within 1 % of the printed number, or equal to it after rounding to two decimals."""
    return abs(value - printed) <= relative * printed or round(value + 1e-12, 2) == printed


def test_list_models():
    assert redimnet.list_models() == ["b0", "b1", "b2", "b3", "b4", "b5", "b6"]


@pytest.mark.parametrize("name", sorted(TABLE))
def test_preset_matches_published_config(name):
    published = json.loads(official_file("configs.json").read_text())[name]
    assert redimnet.get_preset(name).config == redimnet.ModelConfig.from_dict(published)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_parameters_and_gmacs(name):
    model = redimnet.build(name)
    params_m = count_parameters(model) / 1e6
    gmacs = count_macs(model, seconds=2.0) / 1e9
    expected_params, expected_gmacs = TABLE[name]
    assert abs(params_m - expected_params) <= 0.01 * expected_params, params_m
    assert within(gmacs, expected_gmacs), gmacs


def test_build_overrides_and_errors():
    model = redimnet.build("b2", num_classes=10, embed_dim=256)
    assert model.config.num_classes == 10 and model.embedding.out_features == 256
    assert redimnet.build("B0").config == redimnet.get_preset("b0").config
    with pytest.raises(ValueError, match="unknown model 'b9'"):
        redimnet.build("b9")
    with pytest.raises(ValueError, match="colour"):
        redimnet.build("b0", colour="red")


def test_macs_scale_with_duration():
    model = redimnet.build("b0")
    assert 1.9 < count_macs(model, 4.0) / count_macs(model, 2.0) < 2.1
