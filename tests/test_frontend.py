"""Front ends computed from scratch agree with the buffers the original wrote."""

import numpy as np
import pytest
import torch
from conftest import OFFICIAL, require_fixtures

import redimnet
from redimnet.frontend import MelSpectrogramFrontEnd, TFMelFrontEnd, make_frontend

FIXTURE_NAMES = require_fixtures()


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_filters_and_windows_match_the_checkpoint(name):
    """A fresh model's front-end constants equal (to float32 rounding) those stored by the original."""
    checkpoint = torch.load(OFFICIAL / f"{name}.pt", weights_only=True)
    fresh = redimnet.ReDimNet(checkpoint["model_config"])
    loaded = redimnet.load_checkpoint(OFFICIAL / f"{name}.pt")
    for key, value in fresh.frontend.state_dict().items():
        stored = loaded.frontend.state_dict()[key]
        assert value.shape == stored.shape, key
        assert torch.allclose(value, stored, atol=2e-6, rtol=1e-5), (name, key, (value - stored).abs().max())


def test_mel_frontend_against_numpy_reference():
    """Power mel spectrogram checked against a direct numpy DFT of reflect-padded frames."""
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(4000).astype(np.float32) * 0.1
    frontend = MelSpectrogramFrontEnd(n_mels=20, hop_length=160, preemphasis=False, spec_norm=None)
    power = frontend.mel_power(torch.from_numpy(wave)[None]).numpy()[0]

    n_fft, win = 512, 400
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start : start + win] = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hamming
    frames = 1 + (len(padded) - n_fft) // 160
    spectra = np.stack([np.abs(np.fft.rfft(padded[i * 160 : i * 160 + n_fft] * window)) ** 2 for i in range(frames)])
    reference = spectra @ frontend.mel_filters.double().numpy()
    assert power.shape == (20, frames) == (20, frontend.num_frames(len(wave)))
    np.testing.assert_allclose(power, reference.T, rtol=1e-3, atol=1e-3 * reference.max())


def test_preemphasis_reflects_the_first_sample():
    frontend = MelSpectrogramFrontEnd(n_mels=8)
    x = torch.tensor([[1.0, 2.0, 4.0, 8.0]])
    y = frontend.preemphasis(x)
    expected = torch.tensor([[1.0 - 0.97 * 2.0, 2.0 - 0.97, 4.0 - 0.97 * 2.0, 8.0 - 0.97 * 4.0]])
    assert torch.allclose(y, expected)


@pytest.mark.parametrize("frontend_cls", [MelSpectrogramFrontEnd, TFMelFrontEnd])
def test_frame_count(frontend_cls):
    frontend = frontend_cls(n_mels=16, hop_length=160)
    for length in (1000, 16000, 16001, 32159):
        features = frontend(torch.randn(1, length))
        assert features.shape == (1, 16, frontend.num_frames(length))


def test_features_keep_dtype_and_have_zero_time_mean():
    frontend = MelSpectrogramFrontEnd(n_mels=16)
    features = frontend(torch.randn(2, 8000, dtype=torch.float64))
    assert features.dtype == torch.float64
    assert features.mean(dim=-1).abs().max() < 1e-4


def test_spec_augment_only_in_training():
    config = redimnet.build("b0").config.replace(
        spec_params={"do_spec_aug": True, "freq_mask_width": (4, 8), "time_mask_width": (5, 10)}
    )
    frontend = make_frontend(config)
    wave = torch.randn(4, 16000)
    frontend.eval()
    clean = frontend(wave)
    assert torch.equal(clean, frontend(wave))
    frontend.train()
    torch.manual_seed(0)
    masked = frontend(wave)
    zero_rows = (masked == 0).all(dim=2).sum(dim=1)  # masked frequency bins per example
    zero_cols = (masked == 0).all(dim=1).sum(dim=1)  # masked frames per example
    assert (zero_rows >= 4).all() and (zero_rows < 8).all()
    assert (zero_cols >= 5).all() and (zero_cols < 10).all()
    unmasked = masked != 0
    assert torch.equal(masked[unmasked], clean[unmasked])
