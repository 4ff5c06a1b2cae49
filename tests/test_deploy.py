"""Export pre-flight, firmware files, TFLM validation and bad input, on tiny models and real images."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.export import WIDENED_OPS, to_int8_tflite
from nlpool_keras.export.flatbuffer import micro_flatbuffer
from nlpool_keras.export.preflight import preflight
from nlpool_keras.tflm import TFLMError, TFLMModel
from nlpool_keras.tflm.child import TFLMWorker, run_tflm
from nlpool_keras.tflm.deploy import export_for_tflm
from nlpool_keras.tflm.interpreter import quantize
from nlpool_keras.tflm.validate import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_sa_model(name="tiny"):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = nk.SelfAttentivePooling2D(2, patch_size=2, num_heads=2, name="pool")(x)  # 16 -> 8, 64 tokens
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


@pytest.fixture(scope="module")
def flatbuffer(images):
    return to_int8_tflite(_tiny_sa_model(), images[0][:16])


def test_preflight_names_the_layer_behind_an_op_tflm_lacks(images):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, name="features")(inputs)
    x = keras.layers.UpSampling2D(2, name="upsample")(x)  # TILE: TFLite has it in int8, TFLM does not
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    ops, problems = preflight(to_int8_tflite(model, images[0][:4]), model)
    assert "TILE" in ops
    assert any("TILE is not among TFLM's int8 kernels" in line and "(layer 'upsample')" in line for line in problems)
    assert not any("layer 'features'" in line for line in problems), problems
    with pytest.raises(ValueError, match="converts to ops TFLM cannot run:\n.*TILE"):
        export_for_tflm(model, images[0][:4], "/nonexistent/never-written")


def test_export_writes_firmware_that_compiles(images, tmp_path):
    summary = export_for_tflm(_tiny_sa_model("tiny-sa"), images[0][:16], str(tmp_path), name="tiny-sa")
    with open(summary["tflite"], "rb") as f:
        stripped = f.read()
    flatbuffer = micro_flatbuffer(stripped)  # the form model_data.cc holds
    assert summary["flash_bytes"] == len(flatbuffer) and summary["ops"] == preflight(stripped)[0]
    micro = TFLMModel(flatbuffer)
    micro.invoke_quantized(np.zeros((1, 32, 32, 3), np.int8))
    assert summary["tflm_arena_bytes"] == micro.arena_bytes > 0
    source = (tmp_path / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char tiny_sa_data[]" in source
    assert f"tiny_sa_data_len = {len(flatbuffer)};" in source
    ops_header = (tmp_path / "model_ops.h").read_text()
    assert f"MicroMutableOpResolver<{len(summary['ops'])}>" in ops_header
    assert ops_header.count("resolver.Add") == len(summary["ops"]) and "AddSoftmax" in ops_header
    arena = int(ops_header.split("tiny_sa_arena_size = ")[1].split(";")[0])
    assert arena % 16 == 0 and arena >= summary["tflm_arena_bytes"]
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler on this machine")
    subprocess.run([compiler, "-std=c++17", "-c", "model_data.cc", "-o", "model_data.o"], cwd=tmp_path, check=True)
    symbols = subprocess.run(["nm", str(tmp_path / "model_data.o")], capture_output=True, text=True).stdout
    address = int(next(line for line in symbols.splitlines() if line.endswith(" tiny_sa_data")).split()[0], 16)
    assert address % 16 == 0


def test_export_runs_softmax_and_logistic_in_int16_when_asked(images, tmp_path):
    model = _tiny_sa_model("tiny-sa")
    narrow = export_for_tflm(model, images[0][:16], str(tmp_path / "narrow"))
    wide = export_for_tflm(model, images[0][:16], str(tmp_path / "wide"), int16_ops=WIDENED_OPS)
    assert wide["int16_ops"] == ["SOFTMAX", "LOGISTIC"] and narrow["int16_ops"] == []
    assert {"CAST", "QUANTIZE"} <= set(wide["ops"]) and "CAST" not in narrow["ops"]
    for summary in (wide, narrow):
        with open(summary["tflite"], "rb") as f:
            assert preflight(f.read())[1] == []
    # int16 tensors beside the int8 ones and 2 KB of tables per SOFTMAX: the arena grows
    assert narrow["tflm_arena_bytes"] + 2 * 2052 <= wide["tflm_arena_bytes"] < 2 * narrow["tflm_arena_bytes"]


def test_validation_agrees_with_tflm_and_tflite_run_here(images, flatbuffer):
    model = _tiny_sa_model()
    report = validate(flatbuffer, images[0], images[1], progress=False, chunk=15)
    micro = TFLMModel(micro_flatbuffer(flatbuffer))
    direct = micro.invoke_quantized(quantize(images[0], micro.input_details))
    assert report["images"] == 40 and report["input_range"] == [0, 255]
    assert report["top1_tflm"] == pytest.approx(np.mean(direct.argmax(1) == images[1]))
    assert report["tflm_arena_bytes"] == micro.arena_bytes and report["flash_bytes"] == len(
        micro_flatbuffer(flatbuffer)
    )
    assert len(micro.invoke_seconds) == 40 and min(micro.invoke_seconds) > 0 and report["tflm_ms_per_image"] > 0
    assert report["max_lsb_diff_tflm_vs_tflite"] <= 1 and report["argmax_agreement_tflm_vs_tflite"] >= 0.95
    assert "SOFTMAX" in report["ops"] and "top1_float" not in report
    calibrated = to_int8_tflite(model, images[0][:16])
    with_float = validate(calibrated, images[0], images[1], model, progress=False)
    assert 0 <= with_float["top1_float"] <= 1 and with_float["argmax_agreement_tflm_vs_float"] >= 0.7
    # the output error in float units, from TFLM's own outputs and the output quantization
    calibrated_micro = TFLMModel(calibrated)
    outputs = calibrated_micro.invoke_quantized(quantize(images[0], calibrated_micro.input_details))
    quantization = calibrated_micro.output_details["quantization_parameters"]
    scale, zero_point = quantization["scales"][0], quantization["zero_points"][0]
    error = np.abs((outputs.astype("float64") - zero_point) * scale - model.predict(images[0], verbose=0))
    assert with_float["mean_abs_error_tflm_vs_float"] == pytest.approx(error.mean(), rel=1e-4)
    assert with_float["max_abs_error_tflm_vs_float"] == pytest.approx(error.max(), rel=1e-4)
    assert with_float["argmax_agreement_tflite_vs_float"] >= 0.7 and with_float["mean_abs_error_tflite_vs_float"] > 0


def test_too_small_arena_is_a_clear_error(flatbuffer):
    with pytest.raises(TFLMError, match="(?i)arena|allocate"):
        run_tflm(flatbuffer, arena_size=2048)


def test_one_worker_runs_models_in_turn_and_outlives_their_failures(flatbuffer, images):
    """A worker's child runs each model as the in-process interpreter does; a refused model, a
    timeout and a crash each raise and leave the worker usable."""
    other = to_int8_tflite(_tiny_sa_model("other"), images[0][:16])
    batch = quantize(images[0][:3], TFLMModel(flatbuffer).input_details)

    def check(worker, model):
        expected = TFLMModel(model)
        np.testing.assert_array_equal(worker.run(model, batch).outputs, expected.invoke_quantized(batch))
        assert worker.run(model).arena_bytes == expected.arena_bytes

    with TFLMWorker() as worker:
        for model in (flatbuffer, other, flatbuffer):
            check(worker, model)
        worker.arena_size = 2048
        with pytest.raises(TFLMError, match="(?i)arena|allocate"):
            worker.run(flatbuffer)
        worker.arena_size = 4 * 1024 * 1024
        check(worker, other)
        worker.timeout = 0
        with pytest.raises(TFLMError, match="did not finish within timeout=0 s"):
            worker.run(other, batch)
        worker.timeout = 600
        check(worker, flatbuffer)
        with pytest.raises(TFLMError, match="exited with status 1: .*JSONDecodeError"):
            worker._ask("not a request")  # the child ends with a traceback, as on a crash
        check(worker, other)


def test_not_a_flatbuffer_and_truncated_files_fail_clearly(flatbuffer, tmp_path):
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        preflight(b"GIF89a, not a model")
    for name, data in {"text.tflite": b"hello", "truncated.tflite": flatbuffer[: len(flatbuffer) // 2]}.items():
        path = tmp_path / name
        path.write_bytes(data)
        done = subprocess.run(
            [sys.executable, "-m", "nlpool_keras.cli", "validate", str(path), "--per-class", "1"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert "nlpool validate: error:" in done.stderr and "flatbuffer" in done.stderr


def test_mutated_flatbuffers_never_take_the_caller_down(flatbuffer):
    rng = np.random.default_rng(0)
    outcomes = {"ran": 0, "refused": 0}
    for _ in range(60):
        mutated = bytearray(flatbuffer)
        for position in rng.integers(0, len(mutated), rng.integers(1, 6)):
            mutated[position] = rng.integers(0, 256)
        try:
            ops, problems = preflight(bytes(mutated))
            if problems:
                raise ValueError(problems)
            run_tflm(bytes(mutated), np.zeros((1, 32, 32, 3), np.int8), timeout=120)
            outcomes["ran"] += 1
        except (ValueError, TFLMError) as error:
            assert str(error)  # every refusal says why
            outcomes["refused"] += 1
    assert sum(outcomes.values()) == 60 and outcomes["refused"] > 0, outcomes


def test_per_op_diff_finds_the_kernel_that_differs_and_passes_a_graph_that_agrees():
    """Two graphs through `per_op_diff`: int8 FULLY_CONNECTED rounds 1 LSB differently in TFLM
    and in TFLite on some values (measured: ~0.2 %), and the difference passes to the ops after
    it; a convolution and max pooling agree exactly."""
    import keras

    from nlpool_keras.tflm.diff import format_per_op, per_op_diff

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    calibration = rng.normal(0, 1, (32, 8, 8, 16)).astype("float32")
    inputs = np.random.default_rng(1).integers(-128, 128, (50, 8, 8, 16)).astype(np.int8)
    dense = keras.Sequential(
        [keras.Input((8, 8, 16)), keras.layers.Reshape((64, 16)), keras.layers.Dense(32), keras.layers.Dense(16)]
    )
    report = per_op_diff(to_int8_tflite(dense, calibration), inputs)
    assert [row["op"] for row in report["ops"]] == ["FULLY_CONNECTED", "RESHAPE", "FULLY_CONNECTED"]
    first = report["first_difference"]
    assert first["index"] == 0 and first["op"] == "FULLY_CONNECTED" and first["max_lsb"] == 1
    assert 0 < first["differing"] < 0.05 and report["kernels_differing_on_equal_inputs"] == {"FULLY_CONNECTED": 1}
    assert report["ops"][1]["input_max_lsb"] == 1  # the reshape passes the difference on
    assert "first difference: op 0 FULLY_CONNECTED" in format_per_op(report)

    conv = keras.Sequential(
        [
            keras.Input((8, 8, 16)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
        ]
    )
    agreeing = per_op_diff(to_int8_tflite(conv, calibration), inputs)
    assert agreeing["first_difference"] is None and len(agreeing["ops"]) == 2
    assert "agree on every op's output" in format_per_op(agreeing)


def test_self_attentive_projections_are_convolutions_whose_kernels_agree(images):
    """The q, k, v and output projections export as 1x1 CONV_2D (FULLY_CONNECTED rounds
    differently in TFLM and TFLite, see above): no kernel of the layer's int8 graph differs
    between the two interpreters on equal inputs."""
    from nlpool_keras.tflm.diff import per_op_diff
    from nlpool_keras.tflm.validate import input_details

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    outputs = nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2)(x)  # 16 -> 8, 36 tokens
    flatbuffer = to_int8_tflite(keras.Model(inputs, outputs), images[0][:16])
    ops = preflight(flatbuffer)[0]
    assert "FULLY_CONNECTED" not in ops and {"BATCH_MATMUL", "CONV_2D", "LOGISTIC"} <= set(ops)
    report = per_op_diff(flatbuffer, quantize(images[0][:8], input_details(flatbuffer)))
    assert report["kernels_differing_on_equal_inputs"] == {}, report["first_difference"]


def test_validate_per_op_reports_every_op(flatbuffer, tmp_path, capsys):
    import json

    from nlpool_keras.cli import main
    from nlpool_keras.export.preflight import read_graph
    from tests.conftest import ARCHIVE

    path = tmp_path / "tiny.tflite"
    path.write_bytes(flatbuffer)
    report_path = tmp_path / "validation.json"
    command = [
        "validate",
        str(path),
        "--data",
        ARCHIVE,
        "--per-class",
        "1",
        "--per-op",
        "2",
        "--output",
        str(report_path),
    ]
    assert main(command) == 0
    per_op = json.loads(report_path.read_text())["per_op"]
    assert per_op["images"] == 2 and len(per_op["ops"]) == len(read_graph(flatbuffer).ops)
    assert ("first difference" in capsys.readouterr().out) == (per_op["first_difference"] is not None)
