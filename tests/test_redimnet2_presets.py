"""ReDimNet2 presets: the release configurations, their sizes within 1 % of the reference counts."""

import json

import pytest
from conftest import fixture_file

import redimnet
from redimnet.models.complexity import count_macs, count_parameters
from redimnet.models.redimnet2 import presets

# configs.json's measured counts beside the official README's (M params, GMACs for 2 s).
REFERENCE = {
    "b0": (1.115, 0.361),
    "b1": (2.161, 0.589),
    "b2": (3.678, 0.969),
    "b3": (4.182, 2.689),
    "b4": (6.660, 4.587),
    "b5": (8.959, 9.528),
    "b6": (12.395, 12.908),
    "b6_vb2": (12.459, 12.908),
}


@pytest.mark.parametrize("name", sorted(presets.OPTIONS))
def test_preset_is_the_release_configuration(name):
    reference = json.loads(fixture_file("redimnet2", "configs.json").read_text())[name]
    assert redimnet.ReDimNet2Config.from_dict(presets.options(name)) == redimnet.ReDimNet2Config.from_dict(reference)


@pytest.mark.parametrize("name", sorted(presets.OPTIONS))
def test_preset_size_within_one_percent(name):
    params_m, gmacs = REFERENCE[name]
    parameters, macs = presets.MEASURED[name]
    assert abs(parameters / 1e6 / params_m - 1) <= 0.01
    assert abs(macs / 1e9 / gmacs - 1) <= 0.01
    model = redimnet.ReDimNet2(presets.options(name))
    assert count_parameters(model) == parameters  # the stored count is this implementation's
    if name in ("b0", "b2"):  # a fresh MAC count for two sizes (the large ones take long)
        assert count_macs(model) == macs


def test_release_table():
    names = {presets.file_name(*release[:3]) for release in presets.RELEASES}
    assert len(names) == 16
    assert "b6-vb2+vox2_v0-lm.pt" in names and "b0-vox2-ptn.pt" in names
    assert (
        presets.url("b2", "vox2", "lm")
        == "https://github.com/PalabraAI/redimnet2/releases/download/v1.0.0/b2-vox2-lm.pt"
    )
