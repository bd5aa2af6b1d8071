"""Property-based: random bytes, arrays, shapes and rates give an embedding or a documented error, nothing else."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import redimnet
from redimnet.audio.read import AudioError, prepare_waveform, read_audio
from redimnet.embedding.embedder import Embedder
from redimnet.errors import RedimnetError


@pytest.fixture(scope="module")
def embedder():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield Embedder(redimnet.build("b0").eval(), device="cpu", max_seconds=0.5, overlap_seconds=0.1)
    torch.set_num_threads(previous)


WAV_HEADER = (
    b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00"
    b"\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x08\x00\x00"
)

file_contents = st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=2048).map(lambda tail: WAV_HEADER + tail),  # a valid header, random payload
    st.binary(max_size=512).map(lambda tail: b"fLaC" + tail),
    st.binary(max_size=512).map(lambda tail: b"OggS" + tail),
    st.tuples(st.integers(0, len(WAV_HEADER)), st.binary(max_size=64)).map(lambda c: WAV_HEADER[: c[0]] + c[1]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=file_contents, suffix=st.sampled_from([".wav", ".flac", ".ogg", ".bin"]))
def test_random_files_read_or_fail_cleanly(tmp_path, content, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(content)
    try:
        wave = read_audio(path)
    except AudioError as error:
        assert str(path) in str(error)
        return
    assert wave.dtype == np.float32 and wave.ndim == 1 and np.all(np.isfinite(wave))


dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int32, np.uint8, np.int8])
shapes = st.one_of(
    st.tuples(st.integers(0, 3000)),  # [T]
    st.tuples(st.integers(0, 4), st.integers(0, 1500)),  # [channels, T]
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),  # odd shapes, kept small
)
arrays = dtypes.flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        shapes,
        elements=(
            st.one_of(
                st.floats(-1.5, 1.5, width=16 if dtype == np.float16 else 32),  # plausible audio
                st.floats(allow_nan=True, allow_infinity=True, width=16 if dtype == np.float16 else 32),
            )
            if np.issubdtype(dtype, np.floating)
            else None
        ),
    )
)
rates = st.one_of(
    st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    st.integers(-10, 100000),
    st.integers(10**6, 10**18),
    st.floats(allow_nan=True, allow_infinity=True),
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(array=arrays, rate=rates)
def test_random_arrays_embed_or_fail_cleanly(embedder, array, rate):
    try:
        wave = prepare_waveform(array, rate)
    except AudioError:
        wave = None
    if wave is not None:
        assert wave.dtype == np.float32 and wave.ndim == 1 and np.all(np.isfinite(wave))
        if len(wave) > 200000:  # absurd rates (e.g. 1 Hz) make huge inputs: the model is not needed for those
            return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            embedding = embedder.embed(array, rate)
        except AudioError:
            return
        except RedimnetError as error:  # any other documented error would still be acceptable, but say so
            pytest.fail(f"unexpected {type(error).__name__}: {error}")
    assert wave is not None, "the embedder accepted what the reader refused"
    assert embedding.shape == (192,) and np.all(np.isfinite(embedding))


# Plausible audio (finite noise over a tone, a common rate, long enough for the model) always reaches the
# network: the property above is not vacuous, and nothing plausible is refused.
def _as_audio(noise: np.ndarray, dtype) -> np.ndarray:
    tone = 0.3 * np.sin(np.arange(noise.shape[-1]) * 0.3)
    wave = 0.5 * noise + tone
    if np.issubdtype(dtype, np.integer):
        return (wave * np.iinfo(dtype).max).astype(dtype)
    return wave.astype(dtype)


plausible = st.tuples(
    hnp.arrays(
        np.float64,
        st.one_of(st.tuples(st.integers(1000, 3000)), st.tuples(st.integers(1, 4), st.integers(1000, 3000))),
        elements=st.floats(-1, 1),
    ),
    st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int32]),
).map(lambda drawn: _as_audio(*drawn))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(array=plausible, rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]))
def test_plausible_arrays_always_embed(embedder, array, rate):
    embedding = embedder.embed(array, rate)
    assert embedding.shape == (192,) and embedding.dtype == np.float32 and np.all(np.isfinite(embedding))


# Checkpoint configurations: random, huge or nonsensical model_config values in a tiny file load or
# raise CheckpointError, never allocate large memory, never raise anything else.
_sizes = st.one_of(st.integers(-2, 64), st.integers(65, 10**12), st.sampled_from([3000, 10**9, 2**31, 2**63]))
_stage = st.tuples(
    st.sampled_from([1, 2, 3, 0, 4]),
    st.one_of(st.integers(0, 3), st.integers(4, 10**7)),
    st.integers(1, 4) | _sizes,
    st.just([(3, 3)]),
    st.none() | st.integers(1, 64) | _sizes,
)
_config = st.fixed_dictionaries(
    {
        "F": _sizes,
        "C": _sizes,
        "stages_setup": st.lists(_stage, min_size=1, max_size=6),
    },
    optional={
        "group_divisor": st.none() | _sizes,
        "embed_dim": _sizes,
        "out_channels": st.none() | _sizes,
        "num_classes": st.none() | _sizes,
        "hop_length": _sizes,
        "block_1d_type": st.sampled_from(["fc", "conv", "att", "conv+att"]),
        "block_2d_type": st.sampled_from(["convnext_like", "basic_resnet", "basic_resnet_fwse"]),
        "pooling_func": st.sampled_from(["TAP", "ASTP", "MHASTP", "MQMHASTP"]),
        "feat_type": st.sampled_from(["pt", "tf"]),
        "spec_params": st.fixed_dictionaries({}, optional={"n_fft": _sizes, "win_length": _sizes}),
    },
)


# Valid configurations (so the size checks, not validation, must stop them), from tiny to absurd.
_valid_config = st.fixed_dictionaries(
    {
        "F": st.integers(1, 10**5).map(lambda k: 48 * k),  # divisible by any four strides of 2 and one of 3
        "C": st.one_of(st.integers(1, 64), st.integers(65, 10**9)),
        "block_1d_type": st.sampled_from(["fc", "conv"]),
        "block_2d_type": st.sampled_from(["convnext_like", "basic_resnet", "basic_resnet_fwse"]),
        "group_divisor": st.sampled_from([None, 1]),
        "embed_dim": st.one_of(st.integers(1, 256), st.integers(257, 10**9)),
        "stages_setup": st.lists(
            st.tuples(
                st.sampled_from([1, 2]),
                st.one_of(st.integers(0, 3), st.integers(4, 10**6)),
                st.integers(1, 4),
                st.just([(3, 3)]),
                st.none() | st.integers(1, 8),
            ),
            min_size=1,
            max_size=4,
        ),
    },
    optional={
        "feat_type": st.sampled_from(["pt", "tf"]),
        "spec_params": st.integers(1, 2**22).map(lambda n: {"n_fft": n, "win_length": n}),
    },
)


@pytest.fixture(scope="module")
def probe():
    """A fresh process that loads checkpoints and reports each load's peak memory."""
    from memory_probe import MemoryProbe

    probe = MemoryProbe("import torch, redimnet; torch.set_num_threads(1)")
    yield probe
    probe.close()


LOAD = "redimnet.load_checkpoint(path)"


@pytest.mark.slow
def test_probe_sees_an_allocation_below_an_earlier_peak(probe):
    """The measurement can fail: a 250 MB allocation after a 400 MB one is still seen (ru_maxrss would not)."""
    allocate = "import numpy; numpy.ones(size // 8).sum()"
    big, raised = probe.run(allocate, size=400 * 2**20)
    assert raised is None and 380 < big < 600
    smaller, raised = probe.run(allocate, size=250 * 2**20)
    assert raised is None and 230 < smaller < 400
    nothing, raised = probe.run("pass")
    assert raised is None and nothing < 20


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.one_of(_config, _valid_config), with_tensor=st.booleans())
def test_fuzz_checkpoint_configs_never_allocate(tmp_path, probe, config, with_tensor):
    path = tmp_path / "fuzz.pt"
    state = {"linear.weight": torch.zeros(4, 4)} if with_tensor else {}
    torch.save({"model_config": config, "state_dict": state}, path)
    peak_mb, raised = probe.run(LOAD, path=str(path))
    assert raised is None or raised[0] == "CheckpointError", (config, raised)
    assert peak_mb < 300, (config, peak_mb)
