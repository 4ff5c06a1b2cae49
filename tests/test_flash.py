"""Flash-lean flatbuffers (names stripped, the TFLM-only form), `export --compress` and
the rescaling folded into the input (the export's default) or kept in the graph, each checked against the
converter's flatbuffer in TFLM and TFLite."""

import json
import re

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.export import to_int8_tflite
from nlpool_keras.export.flatbuffer import flash_breakdown, micro_flatbuffer, read_model, strip_names, write_model
from nlpool_keras.export.preflight import read_graph
from nlpool_keras.export.preprocessing import pin_pixel_range, to_model_range, without_preprocessing
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.deploy import export_for_tflm
from nlpool_keras.tflm.interpreter import quantize, tflite_reference_outputs
from nlpool_keras.tflm.validate import input_details, input_range, quantize_pixels, validate


def _model(name="flash", preprocessing=True):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs) if preprocessing else inputs
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


@pytest.fixture(scope="module")
def flatbuffer(images):
    return to_int8_tflite(_model(), images[0][:16])


def test_stripped_and_micro_forms_run_like_the_converter_output(images, flatbuffer):
    from tensorflow.lite.tools import flatbuffer_utils

    inputs = quantize(images[0][:8], input_details(flatbuffer))
    stripped, names = strip_names(flatbuffer)
    original = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer)).subgraphs[0].tensors
    assert names == {i: t.name.decode() for i, t in enumerate(original)} and any("pool" in n for n in names.values())
    assert len(stripped) < len(flatbuffer)
    np.testing.assert_array_equal(
        tflite_reference_outputs(stripped, inputs), tflite_reference_outputs(flatbuffer, inputs)
    )

    micro = micro_flatbuffer(flatbuffer)
    plain, lean = run_tflm(flatbuffer, inputs), run_tflm(micro, inputs)
    np.testing.assert_array_equal(lean.outputs, plain.outputs)
    assert lean.arena_bytes <= plain.arena_bytes
    before, after = flash_breakdown(stripped), flash_breakdown(micro)
    assert after["constant_bytes"] == before["constant_bytes"] and after["name_bytes"] == 0
    assert after["zero_point_bytes"] < before["zero_point_bytes"] and after["flash_bytes"] < before["flash_bytes"]
    assert after["flash_per_constant_byte"] == pytest.approx(len(micro) / after["constant_bytes"], abs=1e-4)
    with pytest.raises(ValueError, match="zero_point"):  # the TFLite interpreter wants a zero point per scale
        tflite_reference_outputs(micro, inputs)

    # equal shapes, constants and quantization tables are written once: the same model, fewer bytes
    unshared = write_model(read_model(micro))
    assert len(micro) < len(unshared)
    shared_tensors, unshared_tensors = (read_model(m).subgraphs[0].tensors for m in (micro, unshared))
    for a, b in zip(shared_tensors, unshared_tensors, strict=True):
        np.testing.assert_array_equal(a.shape, b.shape)
        assert (a.quantization is None) == (b.quantization is None)
        if a.quantization is not None:
            np.testing.assert_array_equal(a.quantization.scale, b.quantization.scale)
            np.testing.assert_array_equal(a.quantization.zeroPoint, b.quantization.zeroPoint)


def test_export_writes_the_names_sidecar_and_the_micro_form(images, tmp_path):
    summary = export_for_tflm(_model(), images[0][:16], str(tmp_path), name="lean")
    with open(summary["tflite"], "rb") as f:
        stripped = f.read()
    names = json.loads((tmp_path / "lean.names.json").read_text())
    assert "pool" in " ".join(names.values()) and summary["tflite_bytes"] == len(stripped)
    assert summary["flash_bytes"] == len(micro_flatbuffer(stripped)) < len(stripped) < summary["converter_bytes"]
    assert f"lean_data_len = {summary['flash_bytes']};" in (tmp_path / "model_data.cc").read_text()
    assert summary["flash"]["flash_bytes"] == summary["flash_bytes"] and summary["input_range"] == [-1, 1]  # folded


def test_compressed_export_registers_decode_and_keeps_tflm_outputs(images, tmp_path):
    model = _model("few_values")
    rng = np.random.default_rng(0)
    for layer in model.layers:  # kernels from 4 values: each channel LUT-compresses to 2-bit indices
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.choice([-0.3, -0.1, 0.1, 0.3], kernel.shape).astype("float32"), bias])
    plain = export_for_tflm(model, images[0][:16], str(tmp_path / "plain"), name="m")
    packed = export_for_tflm(model, images[0][:16], str(tmp_path / "packed"), name="m", compress=True)
    assert packed["flash_bytes"] < plain["flash_bytes"] and "TFLM_DECODE" in packed["ops"]
    ops_header = (tmp_path / "packed" / "model_ops.h").read_text()
    assert "resolver.AddDecode()" in ops_header and "USE_TFLM_COMPRESSION" in ops_header
    assert "AddDecode" not in (tmp_path / "plain" / "model_ops.h").read_text()

    def firmware_bytes(folder):
        source = (folder / "model_data.cc").read_text()
        body = source.split("= {")[1].split("};")[0]
        return bytes(int(token, 16) for token in body.replace(",", " ").split())

    inputs = quantize(images[0][:6], input_details(to_int8_tflite(model, images[0][:16])))
    np.testing.assert_array_equal(
        run_tflm(firmware_bytes(tmp_path / "packed"), inputs).outputs,
        run_tflm(firmware_bytes(tmp_path / "plain"), inputs).outputs,
    )


def test_export_without_preprocessing_takes_minus_one_to_one(images, tmp_path):
    model = _model("bare")
    bare = without_preprocessing(model)
    pixels = images[0][:8]
    np.testing.assert_allclose(
        bare.predict(to_model_range(pixels), verbose=0), model.predict(pixels, verbose=0), atol=1e-5
    )
    summary = export_for_tflm(model, images[0][:16], str(tmp_path))  # folded: the default
    with open(summary["tflite"], "rb") as f:
        flatbuffer = f.read()
    assert summary["input_range"] == [-1, 1] and input_range(input_details(flatbuffer)) == (-1, 1)
    assert input_range(input_details(to_int8_tflite(model, images[0][:16]))) == (0, 255)
    report = validate(flatbuffer, images[0], images[1], model, progress=False)
    assert report["input_range"] == [-1, 1] and report["argmax_agreement_tflm_vs_float"] >= 0.9
    with pytest.raises(ValueError, match="has no 'rescale' layer"):
        without_preprocessing(_model("already_bare", preprocessing=False))


@pytest.mark.parametrize("preprocessing", [True, False])
def test_both_pixel_inputs_take_pixel_minus_128_and_only_the_folded_graph_skips_the_rescaling(
    images, tmp_path, preprocessing
):
    pixels = np.clip(images[0][:16], 10, 240)  # pinning gives the whole pixel range all the same
    summary = export_for_tflm(_model("px"), pixels, str(tmp_path), fold_rescale=not preprocessing)
    with open(summary["tflite"], "rb") as f:
        graph = read_graph(f.read())
    details = graph.inputs[0]
    scale, zero_point = details["quantization"]
    assert (np.float32(scale), zero_point) == ((np.float32(1.0), -128) if preprocessing else (np.float32(1 / 127.5), 0))
    every_pixel = np.arange(256, dtype="float32").reshape(1, 16, 16, 1)
    expected = np.arange(-128, 128).reshape(every_pixel.shape)  # p - 128
    np.testing.assert_array_equal(quantize_pixels(every_pixel, details), expected)
    held = scale * (np.arange(-128, 128) - zero_point)  # what each int8 level stands for
    wanted = np.arange(256) if preprocessing else to_model_range(np.arange(256))
    np.testing.assert_allclose(held - wanted, 0 if preprocessing else -1 / 255, atol=1e-6)
    readers = [op["op_name"] for op in graph.ops if details["index"] in op["inputs"]]
    assert readers == (["MUL"] if preprocessing else ["CONV_2D"])
    assert summary["input"]["rescale"] == ("in graph" if preprocessing else "folded")
    assert summary["input"]["zero_point"] == zero_point and "int8 p - 128" in summary["input"]["pixels"]
    main = (tmp_path / "main.cc").read_text()
    assert "return (int8_t)(p - 128);" in main and "int8_of_pixel(128)" in main


def test_only_the_zoo_rescaling_is_folded_and_a_model_without_one_takes_pixels_in_its_graph(images, tmp_path):
    plain = export_for_tflm(_model("plain", preprocessing=False), images[0][:16], str(tmp_path / "plain"))
    assert plain["input"]["rescale"] == "in graph" and plain["input_range"] == [0, 255]
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255, name="rescale")(inputs)))
    other = keras.Model(inputs, outputs, name="unit_range")
    with pytest.raises(ValueError, match=r"'rescale' layer that is not the zoo's .* Rescaling with scale and offset"):
        export_for_tflm(other, images[0][:16], str(tmp_path / "other"))
    kept = export_for_tflm(other, images[0][:16], str(tmp_path / "kept"), fold_rescale=False)
    assert kept["input"]["rescale"] == "in graph"


def test_calibration_must_be_pixels_and_is_pinned_to_the_whole_range_only_when_short_of_it(images):
    assert (images[0].min(), images[0].max()) == (0, 255)  # real images reach both ends: left as they are
    np.testing.assert_array_equal(pin_pixel_range(images[0]), images[0])
    short = np.clip(images[0][:4], 10, 240)
    pinned = pin_pixel_range(short)
    assert (pinned.min(), pinned.max()) == (0, 255) and np.sum(pinned != short) == 2
    np.testing.assert_array_equal(pin_pixel_range(np.full((1, 2, 1, 1), 7.0)).ravel(), [0, 255])
    with pytest.raises(ValueError, match=r"pixels in \[0, 255\], received values in \[-1, 1\]"):
        pin_pixel_range(np.linspace(-1, 1, 12, dtype="float32").reshape(1, 2, 2, 3))
    for shape in [(2, 2, 3), (1, 1, 1, 1), (1, 0, 4, 3)]:
        with pytest.raises(ValueError, match=re.escape(f"with at least 2 values, received shape {shape}")):
            pin_pixel_range(np.zeros(shape))
    with pytest.raises(ValueError, match=r"received values in \[nan, nan\]"):
        pin_pixel_range(np.full((1, 2, 1, 1), np.nan))


def test_an_input_quantization_other_than_the_pixel_forms_is_refused(images, tmp_path, monkeypatch):
    from nlpool_keras.tflm import deploy

    # calibration short of the whole pixel range, left unpinned: the converter's scale is another
    monkeypatch.setattr(deploy, "pin_pixel_range", lambda pixels: np.asarray(pixels, "float32"))
    with pytest.raises(RuntimeError, match=r"not as the 'folded' pixel input; its firmware could not take pixels"):
        export_for_tflm(_model("short"), np.clip(images[0][:16], 10, 240), str(tmp_path))
