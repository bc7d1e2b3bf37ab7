"""plip.export: ONNX / TorchScript / OpenVINO towers, folded inputs, metadata, int8 gate, onnxruntime runtime.

Oracle throughout: the PyTorch path, ``model.encode_image`` / ``model.encode_text`` of the
same model on the same decoded images and captions (or, for the folded input conventions,
the standard definitions of ImageNet normalisation / channel order applied to the raw pixels).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import plip
from plip.errors import PlipError

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

LONG_CAPTION = " ".join(["a tall woman with a red backpack, black trousers and white running shoes"] * 8)
CAPTIONS = ["man", "bag", "a woman in a blue coat", LONG_CAPTION,
            "the person wears a yellow shirt, grey shorts and carries a black bag on the left shoulder"] * 4


@pytest.fixture(scope="module")
def model():
    return plip.load("plip-tiny-synth")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """A small synthetic text-ReID split (real JPEGs, decoded by the model's preprocessing)."""
    from plip.data.synthetic import generate_dataset
    from plip.data.textreid import load_text_reid

    root = tmp_path_factory.mktemp("gallery") / "synth"
    generated = generate_dataset(root, identities=25, images_per_id=4, seed=99, progress=False, workers=0)
    return load_text_reid("synth-pedes", generated.root, "all")


@pytest.fixture(scope="module")
def images(gallery):
    return list(gallery.gallery().image_paths[:17])


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """Both towers of the model in every available format."""
    out = {}
    for fmt in ("onnx", "torchscript", "openvino"):
        if fmt == "openvino" and _missing("openvino"):
            continue
        result = plip.export(model, tmp_path_factory.mktemp(fmt), tower="both", format=fmt, log=None)
        out[fmt] = result
    return out


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _runner(fmt: str, path: Path):
    from plip.export.formats import get_format

    return get_format(fmt).runner(Path(path))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "openvino"])
@pytest.mark.parametrize("batch", [1, 17])
def test_image_parity_with_encode_image(model, exported, images, fmt, batch):
    """Exported image graph on decoded JPEGs == model.encode_image (<= 1e-5)."""
    if fmt not in exported:
        pytest.skip(f"{fmt} runtime not installed")
    paths = images[:batch]
    expected = model.encode_image(paths).numpy()
    tensor = torch.stack([model.preprocess(p) for p in paths]).numpy()
    got = _runner(fmt, exported[fmt].files["image"])(tensor)
    assert got.shape == expected.shape == (batch, model.embed_dim)
    assert np.abs(got - expected).max() <= 1e-5


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "openvino"])
@pytest.mark.parametrize("batch", [1, 17])
def test_text_parity_with_encode_text(model, exported, fmt, batch):
    """Exported text graph == model.encode_text (<= 1e-5) for 1-token to 64+-token captions,
    padded together in one batch (the graph must honour the mask)."""
    if fmt not in exported:
        pytest.skip(f"{fmt} runtime not installed")
    captions = CAPTIONS[:batch] if batch > 1 else [LONG_CAPTION]
    ids = model.tokenizer.encode(captions)
    if batch > 1:
        assert min(map(len, ids)) <= 3 and max(map(len, ids)) == model.config.text.max_length
    expected = model.encode_text(captions).numpy()
    tokens = model.tokenizer.pad(ids)
    got = _runner(fmt, exported[fmt].files["text"])(tokens["input_ids"].numpy(), tokens["attention_mask"].numpy())
    assert np.abs(got - expected).max() <= 1e-5
    if batch == 1:  # and a one-word caption alone: sequence length 3
        single = model.tokenizer(["man"])
        got = _runner(fmt, exported[fmt].files["text"])(single["input_ids"].numpy(), single["attention_mask"].numpy())
        assert np.abs(got - model.encode_text(["man"]).numpy()).max() <= 1e-5


def test_tokenizer_json_beside_text_graph(model, exported):
    """tokenizer.json (Hugging Face tokenizers) gives the ids of plip's tokenizer, truncation included."""
    from tokenizers import Tokenizer

    text_path = Path(exported["onnx"].files["text"])
    tokenizer = Tokenizer.from_file(str(text_path.with_name("tokenizer.json")))
    for caption in ["man", "A Woman in a BLUE coat.", LONG_CAPTION]:
        assert tokenizer.encode(caption).ids == model.tokenizer.encode([caption])[0]


def _pixels(path: str, size) -> np.ndarray:
    height, width = size
    return np.asarray(Image.open(path).convert("RGB").resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


@pytest.mark.parametrize("norm,value_range,channels", [
    ("imagenet", "0-1", "bgr"), ("none", "0-255", "rgb"), ("none", "0-1", "bgr"),
])
def test_folded_input_conventions_match_plain_graph(model, exported, images, tmp_path, norm, value_range, channels):
    """A graph with a folded convention, fed pixels prepared by that convention's textbook
    definition, gives the plain graph's embeddings of the same pixels (<= 1e-5)."""
    out = tmp_path / "folded.onnx"
    result = plip.export(model, out, tower="image", input_norm=norm, input_range=value_range, channels=channels,
                         log=None)
    meta = result.metadata["image"]
    assert (meta["input_norm"], meta["input_range"], meta["channels"]) == (norm, value_range, channels)
    size = tuple(model.config.vision.image_size)
    raw = np.stack([_pixels(p, size) for p in images[:5]])  # RGB, 0..255
    pre = model.config.preprocess
    plain = ((raw / 255.0 - np.array(pre.mean)) / np.array(pre.std)).astype(np.float32).transpose(0, 3, 1, 2)
    scale = 255.0 if value_range == "0-255" else 1.0
    if norm == "imagenet":
        consumer = (raw / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    elif norm == "plip":
        consumer = (raw / 255.0 - np.array(pre.mean)) / np.array(pre.std)
    else:
        consumer = raw / 255.0 * scale
    if channels == "bgr":
        consumer = consumer[..., ::-1]
    consumer = np.ascontiguousarray(consumer.astype(np.float32).transpose(0, 3, 1, 2))
    expected = _runner("onnx", exported["onnx"].files["image"])(plain)
    got = _runner("onnx", out)(consumer)
    assert np.abs(got - expected).max() <= 1e-5
    # the plain graph is the encode_image path
    assert np.abs(expected - model.encode_image(torch.from_numpy(plain)).numpy()).max() <= 1e-5


def test_metadata_read_back(model, exported):
    """Metadata in metadata_props, the side file, TorchScript extra files and OpenVINO rt_info
    all equal what the model's config says."""
    import onnx

    from plip.export.metadata import side_file

    image_path = Path(exported["onnx"].files["image"])
    meta = plip.export.read_metadata(image_path)
    assert meta == json.loads(side_file(image_path).read_text())
    pre = model.config.preprocess
    assert meta["input_size"] == list(model.config.vision.image_size)
    assert meta["embedding_dim"] == model.embed_dim
    assert meta["mean"] == pytest.approx(list(pre.mean)) and meta["std"] == pytest.approx(list(pre.std))
    assert (meta["interpolation"], meta["channels"], meta["input_range"]) == (pre.interpolation, "rgb", "0-1")
    assert meta["output_normalized"] is True and meta["model_name"] == "plip-tiny-synth"
    proto = onnx.load(str(image_path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["plip.input_size"]) == meta["input_size"]
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    text_proto = onnx.load(str(exported["onnx"].files["text"]))
    dims = [d.dim_param for d in text_proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    text_meta = plip.export.read_metadata(exported["torchscript"].files["text"])
    assert text_meta["max_length"] == model.config.text.max_length and text_meta["format"] == "torchscript"
    if "openvino" in exported:
        assert plip.export.read_metadata(exported["openvino"].files["image"])["tower"] == "image"


def test_corrupt_or_truncated_onnx_is_a_clear_error(exported, tmp_path):
    """Half a file, garbage bytes, or a missing file: a PlipError naming the file."""
    from plip.export.runtime import make_session

    data = Path(exported["onnx"].files["image"]).read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx file\xff" * 100)
    for path in (truncated, garbage):
        with pytest.raises(PlipError, match=path.name):
            make_session(path)
        with pytest.raises(PlipError, match=path.name):
            plip.export.read_metadata(path)
    with pytest.raises(PlipError, match="no such"):
        make_session(tmp_path / "missing.onnx")


def test_export_refuses_overwrite_and_bad_arguments(model, exported, tmp_path):
    existing = Path(exported["onnx"].files["image"])
    with pytest.raises(PlipError, match="exists"):
        plip.export(model, existing.parent, tower="both", log=None)
    with pytest.raises(PlipError, match="tower"):
        plip.export(model, tmp_path / "x.onnx", tower="audio", log=None)
    with pytest.raises(PlipError, match="opset"):
        plip.export(model, tmp_path / "x.onnx", tower="image", opset=13, log=None)
    with pytest.raises(PlipError, match="input_norm"):
        plip.export(model, tmp_path / "x.onnx", tower="image", input_norm="coco", log=None)
    with pytest.raises(PlipError, match="ONNX"):
        plip.export(model, tmp_path / "x.pt", tower="image", format="torchscript", quantize="int8", log=None)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def gate_data(model, gallery):
    from plip.export.gate import gate_data_from_split

    return gate_data_from_split(model, gallery)


def test_int8_gate_refuses_broken_calibration(model, gate_data, tmp_path):
    """Calibrating on flat grey images clips every real activation: the gate must refuse and
    leave nothing behind (no file, no staging folder)."""
    from plip.export.gate import QuantizationRefused

    calibration = tmp_path / "grey"
    calibration.mkdir()
    for i in range(8):
        Image.new("RGB", (32, 64), (128, 128, 128)).save(calibration / f"{i}.png")
    out = tmp_path / "out"
    lines = []
    with pytest.raises(QuantizationRefused, match="min cosine"):
        plip.export(model, out / "image.onnx", tower="image", quantize="int8", calibration=calibration,
                    evaluation=gate_data, log=lines.append)
    assert any("cosine to float32 min" in line for line in lines)
    assert not out.exists() or list(out.iterdir()) == []


def test_int8_image_of_shipped_model_passes_default_gate(model, images, tmp_path):
    """`plip export --quantize int8 --tower image` on plip-tiny-synth with the default
    calibration and the default gate (demo gallery, min cosine 0.99, R@1 within 1 point)
    passes; the metadata names the float32 nodes; the int8 file's embeddings stay within the
    gate's cosine of model.encode_image (the oracle) on decoded JPEGs the gate did not see."""
    from plip.export.quantize import INT8_STAGES

    result = plip.export(model, tmp_path / "image.onnx", tower="image", quantize="int8", log=None)
    gate = result.gate["image"]
    assert gate["passed"] and gate["min_cosine_threshold"] == 0.99 and gate["max_r1_drop"] == 1.0
    assert gate["min_cosine"] >= 0.99 and gate["r1_fp32"] - gate["r1_int8"] <= 1.0
    quantization = plip.export.read_metadata(tmp_path / "image.onnx")["quantization"]
    assert quantization["int8_stages"] == list(INT8_STAGES)
    assert "/visual/conv1/Conv" in quantization["float32_nodes"]
    assert not any("/layer3/" in name or "/layer4/" in name for name in quantization["float32_nodes"])
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "image.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    tensor = torch.stack([model.preprocess(p) for p in images]).numpy()
    got = torch.from_numpy(_runner("onnx", tmp_path / "image.onnx")(tensor))
    cosine = torch.nn.functional.cosine_similarity(got, model.encode_image(images))
    assert float(cosine.min()) >= 0.99


def test_int8_stages_choose_what_is_quantised(model, gate_data, tmp_path, capsys):
    """`--int8-stages layer4`: only layer4's nodes are int8 (layer3 stays float32), recorded in the
    metadata; a stage the graph does not have is an error naming it, and nothing is written."""
    from plip.app.cli.main import main

    out = tmp_path / "l4.onnx"
    assert main(["export", "--model", "plip-tiny-synth", "--tower", "image", "--quantize", "int8",
                 "--int8-stages", "layer4", "--out", str(out)]) == 0
    quantization = plip.export.read_metadata(out)["quantization"]
    assert quantization["int8_stages"] == ["layer4"] and quantization["gate"]["passed"]
    assert any("/layer3/" in n for n in quantization["float32_nodes"])
    assert not any("/layer4/" in n for n in quantization["float32_nodes"])
    with pytest.raises(plip.PlipError, match=r"no Conv node in stages \['nope'\]"):
        plip.export(model, tmp_path / "bad.onnx", tower="image", quantize="int8", int8_stages=["nope"],
                    calibration_size=16, evaluation=gate_data, log=None)
    assert not (tmp_path / "bad.onnx").exists() and not list(tmp_path.glob("bad*"))


def test_int8_text_passes_gate_and_records_figures(model, gate_data, tmp_path):
    """Dynamic int8 text: close to float32 (gate passes), figures stored in the metadata,
    and the file's embeddings agree with encode_text to the measured cosine."""
    result = plip.export(model, tmp_path / "text.onnx", tower="text", quantize="int8", evaluation=gate_data, log=None)
    gate = result.gate["text"]
    assert gate["passed"] and gate["min_cosine"] >= 0.99 and gate["r1_fp32"] - gate["r1_int8"] <= 1.0
    meta = plip.export.read_metadata(tmp_path / "text.onnx")
    assert meta["quantization"]["gate"]["min_cosine"] == pytest.approx(gate["min_cosine"])
    tokens = model.tokenizer(CAPTIONS[:5])
    got = torch.from_numpy(_runner("onnx", tmp_path / "text.onnx")(tokens["input_ids"].numpy(),
                                                                  tokens["attention_mask"].numpy()))
    cosine = torch.nn.functional.cosine_similarity(got, model.encode_text(CAPTIONS[:5]))
    assert float(cosine.min()) >= 0.99


def test_onnxruntime_runtime_gives_torch_top_k(model, gallery):
    """plip.load(..., runtime="onnxruntime"): same embeddings (<= 1e-5) and the same top-10
    as the PyTorch path on a synthetic gallery, with the usual batching and ordering."""
    ort_model = plip.load("plip-tiny-synth", runtime="onnxruntime")
    paths = list(gallery.gallery().image_paths)
    captions = list(gallery.queries().captions)[:40]
    torch_img, ort_img = model.encode_image(paths, batch_size=7), ort_model.encode_image(paths, batch_size=7)
    torch_txt, ort_txt = model.encode_text(captions, batch_size=9), ort_model.encode_text(captions, batch_size=9)
    assert (ort_img - torch_img).abs().max() <= 1e-5 and (ort_txt - torch_txt).abs().max() <= 1e-5
    raw = ort_model.encode_image(paths[:3], normalize=False)
    assert (raw - model.encode_image(paths[:3], normalize=False)).abs().max() <= 1e-4
    top_torch = plip.retrieve(torch_txt, torch_img, top_k=10)
    top_ort = plip.retrieve(ort_txt, ort_img, top_k=10)
    assert torch.equal(top_torch.indices, top_ort.indices)
    # the runtime is really used: its graphs are onnxruntime sessions
    from plip.export.runtime import OrtRuntime
    from plip.inference import graphs

    graph = graphs.image_graph(ort_model, torch.zeros(1, 3, *model.config.vision.image_size))
    assert isinstance(getattr(graph, "__self__", None), OrtRuntime)


def test_missing_onnxruntime_is_one_line_error(monkeypatch, model):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(PlipError, match=r"plip-person\[onnx\]") as info:
        model.optimize_for_inference(runtime="onnxruntime")
    assert "\n" not in str(info.value)


def test_cli_export_and_help(tmp_path, capsys):
    from plip.app.cli.main import main

    out = tmp_path / "img.onnx"
    assert main(["export", "--model", "plip-tiny-synth", "--tower", "image", "--out", str(out),
                 "--channels", "bgr"]) == 0
    assert plip.export.read_metadata(out)["channels"] == "bgr"
    assert "wrote" in capsys.readouterr().out
    assert main(["export", "--model", "plip-tiny-synth", "--tower", "image", "--out", str(out)]) != 0


def test_boxmot_loads_export_and_matches_encode_image(model, images, tmp_path):
    """boxmot's own ReID runtime (ONNX backend) loads `--for boxmot` output and embeds crops
    at cosine >= 0.999 to model.encode_image on the same crops."""
    pytest.importorskip("boxmot")
    pytest.importorskip("cv2")
    import cv2
    from boxmot.reid.core.runtime import ReID

    out = tmp_path / "plip_reid.onnx"
    plip.export(model, out, tower="image", target="boxmot", log=None)
    side = json.loads(out.with_name("plip_reid.onnx.metadata.json").read_text())
    assert side["model_kwargs"]["img_size"] == list(model.config.vision.image_size)
    height, width = model.config.vision.image_size
    crops = []
    for i, path in enumerate(images[:6]):  # crops already at the input size: no resize on either side
        crop = tmp_path / f"crop{i}.png"
        Image.open(path).convert("RGB").resize((width, height), Image.Resampling.BICUBIC).save(crop)
        crops.append(crop)
    reid = ReID(out, device="cpu")
    assert tuple(reid.model.input_shape) == (height, width)
    features = reid([cv2.imread(str(c)) for c in crops])
    expected = model.encode_image([str(c) for c in crops]).numpy()
    cosine = (features * expected).sum(1) / np.linalg.norm(features, axis=1) / np.linalg.norm(expected, axis=1)
    assert features.shape == expected.shape and cosine.min() >= 0.999


def test_cli_encode_runtime_onnxruntime_matches_torch(images, tmp_path):
    """`plip encode --runtime onnxruntime` writes the embeddings `--runtime torch` writes (<= 1e-5)."""
    from safetensors.torch import load_file

    from plip.app.cli.main import main

    folder = Path(images[0]).parent.parent
    for runtime in ("torch", "onnxruntime"):
        assert main(["encode", "--model", "plip-tiny-synth", "--images", str(folder), "--out",
                     str(tmp_path / f"{runtime}.safetensors"), "--workers", "0", "--no-progress",
                     "--runtime", runtime]) == 0
    a, b = load_file(tmp_path / "torch.safetensors"), load_file(tmp_path / "onnxruntime.safetensors")
    floats = [k for k, v in a.items() if v.is_floating_point()]
    assert floats and all((a[k] - b[k]).abs().max() <= 1e-5 for k in floats)
