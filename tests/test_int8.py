"""int8 CPU inference: the quantised network stays close to float32 on speech, in every verb and in export.

The model quantised here is the small trained ReDimNet shipped for the diarization tests (a model with
random weights would say little about accuracy); one quantisation is shared by the whole module through
a cache folder, as the command line shares it between runs.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import redimnet
from redimnet.cli import main
from redimnet.examples import example_files
from redimnet.testing import synth

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from redimnet.fast import int8  # noqa: E402

TRAINED = Path(__file__).parent / "data" / "diarization" / "redimnet_synthetic.pt"


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


def speech_clips():
    """The shipped speech plus synthetic voices that are not in the calibration audio."""
    clips = [soundfile.read(path, dtype="float32")[0] for path in example_files().values()]
    rng = np.random.default_rng(5)
    for speaker in range(4):
        voice = synth.voice_for(99, speaker)
        speech = synth.synthesize(voice, 3.0 + speaker, rng)
        clips.append(synth.record(speech, rng, 0.2, 20.0))
    return clips


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("int8-cache")


@pytest.fixture(scope="module")
def trained():
    return redimnet.load_checkpoint(TRAINED)


@pytest.fixture(scope="module")
def embedders(trained, cache, one_thread):
    return (
        redimnet.Embedder(trained, device="cpu"),
        redimnet.Embedder(trained, device="cpu", precision="int8", cache_dir=cache),
    )


@pytest.mark.slow
def test_int8_embeddings_of_speech_stay_close_to_float32(embedders):
    fp32, quantised = embedders
    assert isinstance(quantised.network, int8.Int8Network) and quantised.precision == "int8"
    clips = speech_clips()
    cosines = [cosine(fp32.embed(clip), quantised.embed(clip)) for clip in clips]
    assert min(cosines) >= 0.98 and np.mean(cosines) >= 0.99, cosines
    # not merely the same vector for everything: different speakers stay apart as in float32
    a1, a2, b1 = (quantised.embed(clip) for clip in clips[:3])
    assert cosine(a1, a2) > cosine(a1, b1)
    # a batch of equal-length windows gives the rows it gives one by one, up to the int8 kernels'
    # rounding, which differs a little between batch sizes (no state between calls, rows not mixed)
    batch = quantised.network(torch.from_numpy(np.stack([clips[0][:20000], clips[1][:20000]])))
    single = quantised.network(torch.from_numpy(clips[1][None, :20000]))
    assert cosine(batch[1], single[0]) >= 0.9999 and cosine(batch[0], single[0]) < 0.99


def test_narrow_convolution_groups_are_widened_with_the_same_outputs(tmp_path):
    """The rewritten file's convolutions, run with its own weights and group counts (by torch, on
    the file's tensors), give the original outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    torch.manual_seed(3)
    layers = [  # name, in channels, out channels, groups, kernel size
        ("narrow", 32, 32, 8, 3),  # 4 channels per group
        ("odd", 32, 24, 8, 3),  # 3 outputs per group
        ("depthwise", 24, 24, 24, 3),
        ("wide", 24, 24, 2, 1),  # 12 per group, but 24 channels allow no wider group of 16
    ]
    weights = {name: torch.randn(out, cin // groups, k, k) for name, cin, out, groups, k in layers}
    nodes, previous = [], "x"
    for name, _, _, groups, k in layers:
        pad = k // 2
        nodes.append(
            helper.make_node(
                "Conv", [previous, name], [name + "_out"], group=groups, pads=[pad] * 4, kernel_shape=[k, k]
            )
        )
        previous = name + "_out"
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32, 4, 11])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w.numpy(), name) for name, w in weights.items()],
    )
    path = tmp_path / "convs.onnx"
    onnx.save(helper.make_model(graph), str(path))

    def run(kernels, groups):
        y = torch.randn(2, 32, 4, 11, generator=torch.Generator().manual_seed(5))
        for (name, _, _, _, k), g in zip(layers, groups):
            y = torch.nn.functional.conv2d(y, kernels[name], padding=k // 2, groups=g)
        return y

    before = run(weights, [groups for _, _, _, groups, _ in layers])
    assert int8.widen_groups(path) == 2
    saved = onnx.load(str(path)).graph
    groups = [next(a.i for a in node.attribute if a.name == "group") for node in saved.node]
    assert groups == [2, 2, 24, 2]  # 16 channels per group; the depthwise one and the 12-wide one untouched
    kernels = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in saved.initializer}
    torch.testing.assert_close(run(kernels, groups), before, atol=1e-4, rtol=1e-4)
    assert int8.widen_groups(path) == 0  # nothing narrow is left


def _conv_graph(tmp_path, layers, shape):
    """An ONNX file of convolutions in a row: ``layers`` = (name, weight, group, pads), input ``shape``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, previous = [], "x"
    for name, weight, groups, pads in layers:
        kernel = list(weight.shape[2:])
        nodes.append(
            helper.make_node("Conv", [previous, name], [name + "_out"], group=groups, pads=pads, kernel_shape=kernel)
        )
        previous = name + "_out"
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight.numpy(), name) for name, weight, _, _ in layers],
    )
    path = tmp_path / "convs.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _run_onnx(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_grouped_convolutions_with_one_output_per_group_become_depthwise_plus_sums(tmp_path):
    """b0's stage-end squeeze shape (2-3 inputs per output) is split; other groupings stay; the
    rewritten file computes what torch computes with the original weights."""
    import onnx
    from onnx import numpy_helper

    torch.manual_seed(4)
    weights = {
        "squeeze": (torch.randn(8, 3, 3, 3), 8),  # 24 -> 8 channels, 3 inputs per output
        "two_out": (torch.randn(8, 2, 3, 3), 4),  # 8 -> 8, 2 inputs and 2 outputs per group: stays
        "depthwise": (torch.randn(8, 1, 3, 3), 8),  # stays
    }
    layers = [(name, w, g, [1, 1, 1, 1]) for name, (w, g) in weights.items()]
    path = _conv_graph(tmp_path, layers, (2, 24, 5, 9))
    x = torch.randn(2, 24, 5, 9, generator=torch.Generator().manual_seed(6))
    expected = x
    for weight, groups in weights.values():
        expected = torch.nn.functional.conv2d(expected, weight, padding=1, groups=groups)

    assert int8.split_summed_groups(path) == 1
    saved = onnx.load(str(path)).graph
    groups = [next((a.i for a in node.attribute if a.name == "group"), 1) for node in saved.node]
    assert [node.op_type for node in saved.node] == ["Conv"] * 4
    assert groups == [24, 1, 4, 8]  # depthwise over the 24 inputs, then a dense 1x1 adding each group's three
    sums = numpy_helper.to_array(next(t for t in saved.initializer if t.name == saved.node[1].input[1]))
    assert sums.shape == (8, 24, 1, 1) and set(np.unique(sums)) == {0.0, 1.0} and sums.sum() == 24
    np.testing.assert_allclose(_run_onnx(path, x.numpy()), expected.numpy(), atol=1e-4, rtol=1e-4)
    assert int8.split_summed_groups(path) == 0


def test_the_int8_graph_splits_squeezes_and_reshapes_rows_through_5d(tmp_path):
    """A model with a stage-end squeeze (a grouped convolution with one output per group): its int8
    file runs it as a depthwise convolution and a 1x1 one, its 2D -> 1D reshapes transpose a 5D
    view, its stem is normalised in the 1D view, and it still computes the float model."""
    import onnx
    import onnxruntime
    from onnx import numpy_helper

    config = dict(F=24, C=4, hop_length=160, embed_dim=32, group_divisor=1)
    config["stages_setup"] = [(1, 1, 1, [(3, 3)], 4), (2, 1, 2, [(3, 3)], 4)]
    torch.manual_seed(0)
    model = redimnet.ReDimNet(redimnet.ModelConfig.from_dict(config)).eval()
    squeeze = model.backbone.stages[1].squeeze.conv
    assert squeeze.groups == squeeze.out_channels and squeeze.in_channels == 2 * squeeze.groups
    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(24000) * 0.1).astype(np.float32) for _ in range(3)]
    path = int8.quantize_onnx(model, tmp_path / "small.onnx", waves)

    graph = onnx.load(str(path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    dequantised = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            shape = weights[dequantised.get(node.input[1], node.input[1])].shape
            convs.append((node.name, shape, next((a.i for a in node.attribute if a.name == "group"), 1)))
    assert not [c for c in convs if c[2] > 1 and c[1][0] == c[2] and c[1][1] > 1], convs
    assert any(groups == 16 and shape[1] == 1 and "squeeze" in name for name, shape, groups in convs), convs
    # the stem's and each stage's 2D -> 1D reshape reach OpenVINO through a 5D transpose
    # (on its channels-last layout a 4D one ran 3x slower)
    transposes = [n for n in graph.node if n.op_type == "Transpose" and len(n.attribute[0].ints) == 5]
    assert len(transposes) == 1 + len(config["stages_setup"]), [n.name for n in transposes]
    # the stem's layer norm reduces over the channel axis of the [N, F, C, T] rows, not of the image
    means = [n for n in graph.node if n.op_type == "ReduceMean" and n.name.startswith("/backbone/")]
    stem_axes = [weights[n.input[1]].tolist() for n in means if "stages" not in n.name]
    assert stem_axes == [[2], [2]], [n.name for n in means]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(torch.from_numpy(waves[0][None])).numpy()
    assert cosine(session.run(None, {session.get_inputs()[0].name: waves[0][None]})[0][0], expected[0]) > 0.99


@pytest.mark.slow
def test_the_quantised_model_is_cached_and_keyed_by_the_weights(trained, cache, embedders, monkeypatch):
    cached = sorted((cache / "int8").glob("*.onnx"))
    assert len(cached) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("quantised again although the cache holds this model")

    monkeypatch.setattr(int8, "quantize_onnx", refuse)
    again = int8.int8_network(trained, cache_dir=cache)
    assert again.path == cached[0]
    other = redimnet.load_checkpoint(TRAINED)
    with torch.no_grad():
        other.embedding.weight.mul_(1.01)
    with pytest.raises(AssertionError, match="quantised again"):  # other weights: another file
        int8.int8_network(other, cache_dir=cache)


@pytest.mark.slow
def test_export_writes_a_standard_int8_onnx_file(tmp_path, capsys):
    import onnx
    import onnxruntime

    out = tmp_path / "model.int8.onnx"
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for name, path in example_files().items():
        (calibration / f"{name}.flac").write_bytes(path.read_bytes())
    argv = ["export", "--format", "onnx", "--precision", "int8", "--checkpoint", str(TRAINED), "-o", str(out)]
    assert main([*argv, "--int8-calibration", str(calibration)]) == 0
    assert "int8" in capsys.readouterr().out
    graph = onnx.load(str(out)).graph
    quantised = {node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"}
    weights = {init.name for init in graph.initializer if init.data_type == onnx.TensorProto.INT8}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert quantised and weights
    # the backbone's convolutions read dequantised int8 weights; the front end and the embedding stay float32
    producers = {output: node for node in graph.node for output in node.output}
    backbone = [c for c in convs if c.name.startswith("/backbone/")]
    assert backbone and all(producers[c.input[1]].op_type == "DequantizeLinear" for c in backbone)
    assert all(c.input[1] not in producers for c in convs if c.name.startswith("/frontend/"))
    assert not any(node.op_type == "QuantizeLinear" and "/embedding/" in node.name for node in graph.node)
    # the stage mixers' weighted sums are int8 too (both inputs dequantised); other products stay float32
    mixers = [n for n in graph.node if n.op_type in ("Mul", "Add") and "/mixer/" in n.name]
    assert mixers and all(producers[i].op_type == "DequantizeLinear" for n in mixers for i in n.input)
    front = [n for n in graph.node if n.op_type == "Mul" and n.name.startswith("/frontend/")]
    dequantised = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    assert front and not any(i in dequantised for n in front for i in n.input)
    # any ONNX runtime reads it: onnxruntime, batch and length free, close to the float model
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    clip = soundfile.read(example_files()["speaker_b_1"], dtype="float32")[0]
    waves = np.stack([clip[:30000], clip[-30000:]])
    got = session.run(None, {"waveform": waves})[0]
    with torch.inference_mode():
        expected = redimnet.load_checkpoint(TRAINED)(torch.from_numpy(waves)).numpy()
    assert got.shape == expected.shape
    assert min(cosine(g, e) for g, e in zip(got, expected)) >= 0.98


def test_export_refuses_int8_torchscript_and_calibration_without_int8(tmp_path, capsys):
    base = ["export", "--checkpoint", str(TRAINED), "-o", str(tmp_path / "m.ts")]
    assert main([*base, "--format", "torchscript", "--precision", "int8"]) == 2
    assert "--precision int8 is written as ONNX only" in capsys.readouterr().err
    assert main([*base, "--format", "torchscript", "--int8-calibration", str(tmp_path)]) == 2
    assert "--int8-calibration is only used with --precision int8" in capsys.readouterr().err
    assert not (tmp_path / "m.ts").exists()


@pytest.mark.slow
def test_precision_int8_in_every_verb(tmp_path, cache, embedders, capsys, one_thread):
    from redimnet.embedding import io as embeddings_io

    model = ["--checkpoint", str(TRAINED), "--cache-dir", str(cache)]
    files = example_files()
    a1, a2, b1 = str(files["speaker_a_1"]), str(files["speaker_a_2"]), str(files["speaker_b_1"])
    fp32, quantised = embedders

    out = tmp_path / "emb.npz"
    assert main(["embed", a1, b1, "-o", str(out), "--precision", "int8", "--no-progress", *model]) == 0
    ids, matrix = embeddings_io.load_embeddings(out)
    assert cosine(matrix[list(ids).index("speaker_a_1.flac")], fp32.embed_file(a1)) >= 0.98

    capsys.readouterr()
    assert main(["verify", a1, a2, "--precision", "int8", *model]) in (0, 1)
    printed = capsys.readouterr().out
    score = float(printed.split()[1])
    assert score == pytest.approx(cosine(quantised.embed_file(a1), quantised.embed_file(a2)), abs=1e-4)

    db = str(tmp_path / "speakers.db")
    assert main(["enroll", "ann", a1, "--db", db, "--precision", "int8", *model]) == 0
    capsys.readouterr()
    assert main(["identify", a2, "--db", db, "--precision", "int8", *model]) == 0
    assert "ann" in capsys.readouterr().out

    conversation = tmp_path / "conversation.wav"
    clips = [soundfile.read(path, dtype="float32")[0] for path in (a1, b1, a2)]
    soundfile.write(conversation, np.concatenate(clips), 16000)
    rttm = tmp_path / "rttm"
    assert main(["diarize", str(conversation), "-o", str(rttm), "--precision", "int8", *model]) == 0
    assert any(rttm.iterdir())


@pytest.mark.slow
def test_serve_builds_an_int8_embedder(tmp_path, cache, embedders):
    from redimnet.cli import build_parser
    from redimnet.cli.embed import embedder_from_arguments

    argv = ["serve", "--checkpoint", str(TRAINED), "--cache-dir", str(cache), "--precision", "int8"]
    args = build_parser().parse_args([*argv, "--db", str(tmp_path / "db.sqlite"), "--threads", "1"])
    embedder = embedder_from_arguments(args)  # what each service process runs
    assert embedder.precision == "int8" and isinstance(embedder.network, int8.Int8Network)
    clip = example_files()["speaker_a_1"]
    assert cosine(embedder.embed_file(clip), embedders[0].embed_file(clip)) >= 0.98


def test_int8_refuses_a_gpu_and_calibration_without_int8(trained):
    with pytest.raises(redimnet.errors.InvalidArgumentError, match="calibration audio is only used with"):
        redimnet.Embedder(trained, device="cpu", calibration=[str(TRAINED)])
    if torch.cuda.is_available():
        with pytest.raises(redimnet.errors.InvalidArgumentError, match="int8 inference runs on the CPU"):
            redimnet.Embedder(trained, device="cuda", precision="int8")
    with pytest.raises(redimnet.errors.InvalidArgumentError, match="unknown precision 'int4'; choose one of"):
        redimnet.Embedder(trained, device="cpu", precision="int4")


def test_calibration_audio_from_user_files(tmp_path):
    long = np.random.default_rng(0).standard_normal(16000 * 40).astype(np.float32) * 0.1
    soundfile.write(tmp_path / "long.wav", long, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "short.wav", long[:8000], 16000)  # 0.5 s: too short to use
    (tmp_path / "sub").mkdir()
    soundfile.write(tmp_path / "sub" / "rate.wav", long[: 16000 * 3], 8000)  # 6 s at 8 kHz, resampled
    waves = int8.calibration_waves([tmp_path])
    assert all(w.dtype == np.float32 and 16000 <= len(w) <= 6 * 16000 for w in waves)
    total = sum(len(w) for w in waves)
    assert 40 * 16000 <= total <= int8.CALIBRATION_SECONDS * 16000  # the long file is cut into windows
    np.testing.assert_array_equal(waves[0], long[: 6 * 16000])  # the first window is the file's start
    with pytest.raises(int8.Int8Error, match="every file is shorter than 1 s"):
        int8.calibration_waves([tmp_path / "short.wav"])
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(int8.Int8Error, match="calibration audio: .*notes.wav"):
        int8.calibration_waves([tmp_path / "notes.wav"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(int8.Int8Error, match="contains no audio files"):
        int8.calibration_waves([empty])


@pytest.mark.slow
def test_default_calibration_audio_is_speech_like_and_fixed():
    first, second = int8.calibration_waves(), int8.calibration_waves()
    assert len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))
    seconds = sum(len(w) for w in first) / 16000
    assert 120 <= seconds <= int8.CALIBRATION_SECONDS
    assert all(0.01 < float(np.sqrt(np.mean(w**2))) < 1.0 for w in first)


def test_missing_openvino_names_the_extra(monkeypatch, trained):
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ModuleNotFoundError("No module named 'openvino'", name="openvino")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    monkeypatch.delitem(__import__("sys").modules, "openvino", raising=False)
    with pytest.raises(redimnet._utils.optional.MissingDependencyError, match=r'pip install "redimnet\[int8\]"'):
        int8.int8_network(trained, cache_dir=os.devnull)
