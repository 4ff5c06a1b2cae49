"""Flash-lean flatbuffers (names stripped, the TFLM-only form), `export --compress` and
`export --no-preprocessing`, each checked against the converter's flatbuffer in TFLM and TFLite."""

import json

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.export import to_int8_tflite
from nlpool_keras.export.flatbuffer import flash_breakdown, micro_flatbuffer, read_model, strip_names, write_model
from nlpool_keras.export.preprocessing import to_model_range, without_preprocessing
from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.deploy import export_for_tflm
from nlpool_keras.tflm.interpreter import quantize, tflite_reference_outputs
from nlpool_keras.tflm.validate import input_details, input_range, validate


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
    assert summary["flash"]["flash_bytes"] == summary["flash_bytes"] and summary["input_range"] == [0, 255]


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
    summary = export_for_tflm(model, images[0][:16], str(tmp_path), preprocessing=False)
    with open(summary["tflite"], "rb") as f:
        flatbuffer = f.read()
    assert summary["input_range"] == [-1, 1] and input_range(input_details(flatbuffer)) == (-1, 1)
    assert input_range(input_details(to_int8_tflite(model, images[0][:16]))) == (0, 255)
    report = validate(flatbuffer, images[0], images[1], model, progress=False)
    assert report["input_range"] == [-1, 1] and report["argmax_agreement_tflm_vs_float"] >= 0.9
    with pytest.raises(ValueError, match="has no 'rescale' layer"):
        without_preprocessing(_model("already_bare", preprocessing=False))
