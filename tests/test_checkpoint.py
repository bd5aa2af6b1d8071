"""Loading rejects every kind of bad file with a CheckpointError, and saving round-trips."""

import io
import os
import pickle
import re
import zipfile

import pytest
import torch
from conftest import official_file

import redimnet
from redimnet import CheckpointError

SMALL = dict(
    F=24,
    C=4,
    hop_length=160,
    embed_dim=32,
    group_divisor=2,
    stages_setup=[(1, 1, 1, [(3, 3)], 4), (2, 1, 2, [(3, 3)], 4)],
)


def original_content():
    return torch.load(official_file("b0.pt"), weights_only=True)


def write(path, content):
    torch.save(content, path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nothing.pt"):
        redimnet.load_checkpoint(tmp_path / "nothing.pt")


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match="directory"):
        redimnet.load_checkpoint(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        redimnet.load_checkpoint(tmp_path / "empty.pt")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not weights\n" * 20)
    with pytest.raises(CheckpointError, match="not .*PyTorch checkpoint"):
        redimnet.load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    data = official_file("b0.pt").read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        redimnet.load_checkpoint(path)


def test_corrupted_member(tmp_path):
    b0 = official_file("b0.pt")
    data = bytearray(b0.read_bytes())
    with zipfile.ZipFile(b0) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    # Flip bytes inside the largest stored tensor: the CRC no longer matches.
    middle = info.header_offset + 100 + info.file_size // 2
    data[middle : middle + 8] = bytes(8)
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        redimnet.load_checkpoint(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model_config": {}, "state_dict": {}, "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        redimnet.load_checkpoint(path)
    assert not marker.exists(), "loading a checkpoint must never run code"


def test_legacy_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pt"
    torch.save(_Exploit(marker), path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError):
        redimnet.load_checkpoint(path)
    assert not marker.exists()


def test_raw_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "raw.pkl"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        redimnet.load_checkpoint(path)
    assert not marker.exists()


def test_not_in_release_format(tmp_path):
    with pytest.raises(CheckpointError, match="release format.*a Tensor"):
        redimnet.load_checkpoint(write(tmp_path / "t.pt", torch.zeros(3)))
    bare = original_content()["state_dict"]
    with pytest.raises(CheckpointError, match="'model_config' and 'state_dict'"):
        redimnet.load_checkpoint(write(tmp_path / "bare.pt", bare))


def test_invalid_model_config(tmp_path):
    content = original_content()
    content["model_config"]["block_2d_type"] = "mobilenet"
    with pytest.raises(CheckpointError, match="invalid model_config.*block_2d_type"):
        redimnet.load_checkpoint(write(tmp_path / "bad.pt", content))
    content = original_content()
    content["model_config"]["secret_option"] = 3
    with pytest.raises(CheckpointError, match="secret_option"):
        redimnet.load_checkpoint(write(tmp_path / "bad2.pt", content))


def test_missing_key(tmp_path):
    content = original_content()
    del content["state_dict"]["backbone.stage1.3.conv_block.bn1.running_var"]
    with pytest.raises(CheckpointError, match="missing keys: backbone.stage1.3.conv_block.bn1.running_var"):
        redimnet.load_checkpoint(write(tmp_path / "missing.pt", content))


def test_unexpected_key(tmp_path):
    content = original_content()
    content["state_dict"]["backbone.stage9.0.w"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected keys: backbone.stage9.0.w"):
        redimnet.load_checkpoint(write(tmp_path / "extra.pt", content))


def test_mis_shaped_key(tmp_path):
    content = original_content()
    content["state_dict"]["linear.weight"] = torch.zeros(10, 10)
    with pytest.raises(CheckpointError, match=r"linear.weight has shape \(10, 10\), expected \(192, 1200\)"):
        redimnet.load_checkpoint(write(tmp_path / "shape.pt", content))


def test_non_tensor_value(tmp_path):
    content = original_content()
    content["state_dict"]["linear.bias"] = [0.0] * 192
    with pytest.raises(CheckpointError, match="not tensors: linear.bias"):
        redimnet.load_checkpoint(write(tmp_path / "list.pt", content))


def test_state_dict_of_another_model(tmp_path):
    content = original_content()
    content["model_config"]["C"] = 12
    with pytest.raises(CheckpointError, match="mis-shaped|missing|unexpected"):
        redimnet.load_checkpoint(write(tmp_path / "other.pt", content))


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        SMALL,
        {
            **SMALL,
            "block_2d_type": "basic_resnet_fwse",
            "block_1d_type": "fc",
            "pooling_func": "MQMHASTP",
            "out_channels": 64,
            "emb_bn": True,
            "num_classes": 3,
            "group_divisor": None,
        },
        {
            **SMALL,
            "block_1d_type": "att",
            "feat_type": "tf",
            "pooling_func": "MHASTP",
            "spec_params": {"do_spec_aug": True},
        },
        {**SMALL, "block_1d_type": "conv", "spec_params": {"spec_norm": "bn", "do_preemph": False}},
    ],
)
def test_save_then_load_round_trip(tmp_path, options):
    torch.manual_seed(0)
    model = redimnet.ReDimNet(redimnet.ModelConfig.from_dict(options))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    model.eval()
    path = redimnet.save_checkpoint(model, tmp_path / "sub" / "model.pt")
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"], "no temporary files may be left"
    loaded = redimnet.load_checkpoint(path)
    assert loaded.config == model.config
    wave = torch.randn(2, 8000)
    with torch.no_grad():
        assert torch.equal(loaded(wave), model(wave))


def test_save_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError):
        redimnet.save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_file_object_bytes_are_the_release_format(tmp_path):
    """What we write is a plain dict of config + tensors that torch loads with weights_only."""
    path = redimnet.save_checkpoint(redimnet.ReDimNet(redimnet.ModelConfig.from_dict(SMALL)), tmp_path / "m.pt")
    content = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
    assert set(content) == {"model_config", "state_dict"}
    assert all(isinstance(v, torch.Tensor) for v in content["state_dict"].values())
    assert "backbone.stage0.0.w" in content["state_dict"] and "bn.running_mean" in content["state_dict"]


# --------------------------------------------------------------------------------------------
# checkpoints that cannot hurt: size ceiling, dtypes, finite values


@pytest.fixture(scope="module")
def probe():
    """A fresh process that loads checkpoints and reports each load's peak memory (tests/memory_probe.py)."""
    from memory_probe import MemoryProbe

    probe = MemoryProbe("import torch, redimnet; torch.set_num_threads(1)")
    yield probe
    probe.close()


def _small_model_content():
    torch.manual_seed(0)
    model = redimnet.ReDimNet(redimnet.ModelConfig.from_dict(SMALL))
    return {
        "model_config": model.config.to_dict(),
        "state_dict": redimnet.models.checkpoint.to_original_state_dict(model),
    }


@pytest.mark.parametrize("channels", [3000, 10**9, 2**63])
def test_huge_config_with_tiny_file_allocates_nothing(tmp_path, probe, channels):
    """A 2 KB file asking for C=3000 (or 10**9) used to allocate 4-36 GB before noticing its empty state_dict."""
    config = redimnet.get_preset("b2").config.replace(C=channels).to_dict()
    path = write(tmp_path / "huge.pt", {"model_config": config, "state_dict": {}})
    assert path.stat().st_size < 4096
    peak_mb, raised = probe.run("redimnet.load_checkpoint(path)", path=str(path))
    assert raised is not None and raised[0] == "CheckpointError"
    assert re.search(
        "huge.pt: model_config describes a network (of [0-9,]+ parameters and "
        "buffers, more than the ceiling|that cannot be built)",
        raised[1],
    ), raised
    assert peak_mb < 100


def test_too_many_blocks_refused_before_building(tmp_path):
    config = dict(SMALL, stages_setup=[(1, 10**6, 1, [(3, 3)], None)])
    path = write(tmp_path / "deep.pt", {"model_config": config, "state_dict": {}})
    with pytest.raises(CheckpointError, match="1000001 blocks, more than the 1000 allowed.*max_parameters=None"):
        redimnet.load_checkpoint(path)


def test_huge_tf_front_end_refused_before_building(tmp_path):
    config = dict(SMALL, feat_type="tf", spec_params={"n_fft": 2**20, "win_length": 2**20})
    path = write(tmp_path / "front.pt", {"model_config": config, "state_dict": {}})
    with pytest.raises(CheckpointError, match="front end of [0-9,]+ values, more than the 4,000,000 allowed"):
        redimnet.load_checkpoint(path)


def test_size_ceiling_is_an_opt_in(tmp_path):
    path = write(tmp_path / "small.pt", _small_model_content())
    values = sum(t.numel() for t in torch.load(path, weights_only=True)["state_dict"].values())
    with pytest.raises(
        CheckpointError, match=f"network of {values:,} parameters and buffers, more than the ceiling of {values - 1:,}"
    ):
        redimnet.load_checkpoint(path, max_parameters=values - 1)
    assert isinstance(redimnet.load_checkpoint(path, max_parameters=values), redimnet.ReDimNet)
    assert isinstance(redimnet.load_checkpoint(path, max_parameters=None), redimnet.ReDimNet)
    with pytest.raises(ValueError, match="max_parameters must be a positive integer or None"):
        redimnet.load_checkpoint(path, max_parameters=0)
    assert redimnet.models.checkpoint.MAX_PARAMETERS >= 3 * redimnet.get_architecture("b6").parameters


@pytest.mark.slow
def test_size_ceiling_from_the_environment(tmp_path, monkeypatch, capsys):
    """Command-line users opt in through REDIMNET_MAX_PARAMETERS (a number or 'none')."""
    from redimnet.cli import main

    path = write(tmp_path / "small.pt", _small_model_content())
    values = sum(t.numel() for t in torch.load(path, weights_only=True)["state_dict"].values())
    monkeypatch.setenv("REDIMNET_MAX_PARAMETERS", str(values - 1))
    with pytest.raises(CheckpointError, match=f"ceiling of {values - 1:,}.*set REDIMNET_MAX_PARAMETERS=none"):
        redimnet.load_checkpoint(path)
    assert main(["info", "--checkpoint", str(path)]) == 2
    assert f"more than the ceiling of {values - 1:,}" in capsys.readouterr().err
    assert isinstance(redimnet.load_checkpoint(path, max_parameters=None), redimnet.ReDimNet)  # the caller wins
    monkeypatch.setenv("REDIMNET_MAX_PARAMETERS", "none")
    assert main(["info", "--checkpoint", str(path)]) == 0
    monkeypatch.setenv("REDIMNET_MAX_PARAMETERS", "lots")
    with pytest.raises(CheckpointError, match="REDIMNET_MAX_PARAMETERS='lots' is not a positive whole number"):
        redimnet.load_checkpoint(path)


@pytest.mark.parametrize(
    "key, bad, message",
    [
        (
            "linear.weight",
            lambda t: t.index_put_((torch.tensor([3]), torch.tensor([5])), torch.tensor(float("nan"))),
            "tensor linear.weight holds 1 non-finite value",
        ),
        ("bn.running_var", lambda t: t.fill_(float("inf")), "tensor bn.running_var holds .* non-finite"),
        (
            "linear.bias",
            lambda t: t.to(torch.int32),
            "tensor linear.bias holds torch.int32 values where floating-point",
        ),
        ("linear.weight", lambda t: t.to(torch.complex64), "tensor linear.weight holds complex values"),
        ("bn.num_batches_tracked", lambda t: t.to(torch.complex64), "holds complex values"),
        ("bn.num_batches_tracked", lambda t: t.double(), "float64 values where an integer count belongs"),
    ],
)
def test_bad_tensor_values_are_named(tmp_path, key, bad, message):
    content = _small_model_content()
    content["state_dict"][key] = bad(content["state_dict"][key].clone())
    with pytest.raises(CheckpointError, match=message):
        redimnet.load_checkpoint(write(tmp_path / "bad.pt", content))


@pytest.mark.slow
def test_first_bad_tensor_is_named(tmp_path):
    content = _small_model_content()
    names = list(content["state_dict"])
    first, later = names[3], names[-3]
    for name in (later, first):
        if content["state_dict"][name].is_floating_point():
            content["state_dict"][name] = torch.full_like(content["state_dict"][name], float("nan"))
    with pytest.raises(CheckpointError, match=f"tensor {first} "):
        redimnet.load_checkpoint(write(tmp_path / "nan.pt", content))


@pytest.mark.slow
def test_other_float_precisions_still_load(tmp_path):
    content = _small_model_content()
    content["state_dict"] = {k: (v.half() if v.is_floating_point() else v) for k, v in content["state_dict"].items()}
    assert isinstance(redimnet.load_checkpoint(write(tmp_path / "half.pt", content)), redimnet.ReDimNet)
