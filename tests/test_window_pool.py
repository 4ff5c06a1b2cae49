"""The project's custom ops for the learned poolings: the window softmax as one op
(`export.window_pool`, `firmware/kernels/window_softmax_pool.h`) and the attention's int16
softmax from a table (`export.table_softmax`, `firmware/kernels/table_softmax.h`). Run in the host
build of the pinned TFLM, each kernel equals a NumPy version of its integer equations on random
inputs and stays within rounding of the float equations; fused self-attentive and LIP layers give
the unfused graph's outputs within a few LSB and, on the emulated Cortex-M4, exactly the host's.
The host interpreter is built once into build/host_tflm (minutes on a fresh machine)."""

import keras
import numpy as np
import pytest

import nlpool_keras as nk
from nlpool_keras.export import table_softmax, window_pool
from nlpool_keras.export.int8_graph import Int8Graph
from nlpool_keras.export.tflite import to_int8_tflite
from nlpool_keras.firmware.host_runtime import HostInterpreter
from nlpool_keras.profile import settle_batchnorm
from nlpool_keras.tflm.interpreter import TFLMError, TFLMModel, project_ops, quantize


def _single_op_model(x_shape, z_shape, y_shape, quant, parameters, op=window_pool.OP_NAME):
    """A flatbuffer of one custom op: inputs x and z (None: none), its int32 constant, output y
    (int16 where `quant["y"]` is None)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    def tensor(shape, kind, buffer=0, scale_zero=None):
        t = schema.TensorT()
        t.shape, t.type, t.buffer = np.asarray(shape, np.int32), kind, buffer
        if scale_zero is not None:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [scale_zero[0]], [scale_zero[1]]
        return t

    empty, data = schema.BufferT(), schema.BufferT()
    data.data = np.frombuffer(parameters.tobytes(), np.uint8)
    int8 = schema.TensorType.INT8
    graph = schema.SubGraphT()
    inputs = [tensor(x_shape, int8, scale_zero=quant["x"])]
    inputs += [] if z_shape is None else [tensor(z_shape, int8, scale_zero=quant["z"])]
    output = (
        tensor(y_shape, schema.TensorType.INT16, scale_zero=(1 / 32768, 0))
        if quant["y"] is None
        else tensor(y_shape, int8, scale_zero=quant["y"])
    )
    graph.tensors = inputs + [tensor([len(parameters)], schema.TensorType.INT32, 1), output]
    n = len(inputs)
    custom = schema.OperatorT()
    custom.opcodeIndex, custom.inputs = 0, np.arange(n + 1, dtype=np.int32)
    custom.outputs = np.asarray([n + 1], np.int32)
    graph.operators, graph.inputs = [custom], np.arange(n, dtype=np.int32)
    graph.outputs = np.asarray([n + 1], np.int32)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = op, 1
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], [empty, data]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _windows(size, pool, pad, out):
    return [(max(o * pool - pad, 0), min(o * pool - pad + pool, size)) for o in range(out)]


def reference_integers(x, z, parameters, out_shape):
    """The kernel's integer equations in NumPy (int64 throughout): x (H, W, C), z (Hz, Wz, C)."""
    kh, kw, pad_top, pad_left, x_zero, y_zero, multiplier, shift, rh, rw, top, left = (int(v) for v in parameters[:12])
    table = parameters[12:].astype(np.int64)
    height, width, _ = x.shape
    y = np.zeros(out_shape, np.int64)
    for oy, (r0, r1) in enumerate(_windows(height, kh, pad_top, out_shape[0])):
        for ox, (c0, c1) in enumerate(_windows(width, kw, pad_left, out_shape[1])):
            rows, cols = np.arange(r0, r1), np.arange(c0, c1)
            zw = z[((rows + top) // rh)[:, None], ((cols + left) // rw)[None, :]].astype(np.int64)
            w = table[zw + 128]
            num = ((x[r0:r1, c0:c1].astype(np.int64) - x_zero) * w).sum((0, 1))
            den = w.sum((0, 1))
            r = np.sign(num) * ((2 * np.abs(num) * 256 + den) // (2 * den))  # half away from zero
            y[oy, ox] = y_zero + ((r * multiplier + (1 << (shift - 1))) >> shift)
    return np.clip(y, -128, 127)


def reference_float(x, z, quant, pool, pads, repeat, offset, gate_scale, out_shape):
    """The layers' equation: sum over each window of softmax(gate_scale * sigmoid(z)) * x."""
    (xs, xz), (zs, zz) = quant["x"], quant["z"]
    xf = (x.astype(np.float64) - xz) * xs
    logits = gate_scale / (1 + np.exp(-(z.astype(np.float64) - zz) * zs))
    y = np.zeros(out_shape)
    for oy, (r0, r1) in enumerate(_windows(x.shape[0], pool[0], pads[0], out_shape[0])):
        for ox, (c0, c1) in enumerate(_windows(x.shape[1], pool[1], pads[1], out_shape[1])):
            rows, cols = np.arange(r0, r1), np.arange(c0, c1)
            a = logits[((rows + offset[0]) // repeat[0])[:, None], ((cols + offset[1]) // repeat[1])[None, :]]
            w = np.exp(a - a.max((0, 1)))
            y[oy, ox] = (w * xf[r0:r1, c0:c1]).sum((0, 1)) / w.sum((0, 1))
    return y


def _case(rng):
    pool = tuple(int(v) for v in rng.integers(1, 5, 2))
    height = int(rng.integers(pool[0], 13))
    width = int(rng.integers(pool[1], 13))
    channels = int(rng.integers(1, 6))
    same = bool(rng.integers(2))
    out = [-(-s // p) if same else s // p for s, p in ((height, pool[0]), (width, pool[1]))]
    pads = [max((o - 1) * p + p - s, 0) // 2 if same else 0 for o, p, s in zip(out, pool, (height, width), strict=True)]
    repeat = tuple(int(v) for v in rng.integers(1, 4, 2))
    offset = tuple(int(rng.integers(0, r)) for r in repeat)
    z_size = [-(-(s + o) // r) for s, o, r in zip((height, width), offset, repeat, strict=True)]
    quant = {
        "x": (float(rng.uniform(0.005, 0.1)), int(rng.integers(-128, 128))),
        "z": (float(rng.uniform(0.01, 0.2)), int(rng.integers(-40, 40))),
        "y": (float(rng.uniform(0.005, 0.1)), int(rng.integers(-128, 128))),
    }
    gate_scale = float(rng.choice([1.0, 4.0, 12.0]))
    x = rng.integers(-128, 128, (height, width, channels)).astype(np.int8)
    z = rng.integers(-128, 128, (*z_size, channels)).astype(np.int8)
    parameters = window_pool.window_pool_parameters(
        quant["x"], quant["z"], quant["y"], pool, pads, gate_scale, repeat, offset
    )
    return x, z, quant, pool, pads, repeat, offset, gate_scale, (*out, channels), parameters


def test_kernel_equals_its_integer_equations_and_the_layers_float_equations():
    rng = np.random.default_rng(0)
    for _ in range(60):
        x, z, quant, pool, pads, repeat, offset, gate_scale, out_shape, parameters = _case(rng)
        model = _single_op_model((1, *x.shape), (1, *z.shape), (1, *out_shape), quant, parameters)
        interpreter = HostInterpreter(model)
        interpreter.set_input(x[None], 0)
        interpreter.set_input(z[None], 1)
        interpreter.invoke()
        got = interpreter.get_output(0)[0].astype(np.int64)
        np.testing.assert_array_equal(got, reference_integers(x, z, parameters, out_shape))
        y_scale, y_zero = quant["y"]
        expected = reference_float(x, z, quant, pool, pads, repeat, offset, gate_scale, out_shape) / y_scale + y_zero
        inside = (expected > -127.5) & (expected < 126.5)  # away from the clamp
        # the table's weights are rounded to integers of at most W: a relative error of about
        # e^gate_scale / (2 W) on each; the two roundings add one LSB
        tolerance = 1.0 + np.abs(expected - y_zero) * np.exp(gate_scale) / window_pool.weight_scale(pool[0] * pool[1])
        assert np.all(np.abs(got - expected)[inside] <= tolerance[inside])


def test_parameters_keep_the_kernel_in_32_bits():
    for window in (1, 4, 9, 16):
        top = window_pool.weight_scale(window)
        assert window * 255 * top * 512 < 2**31 and top >= 2**10
    parameters = window_pool.window_pool_parameters((0.02, 3), (0.05, -7), (0.01, 1), (2, 2), (0, 1), 12.0)
    table = parameters[window_pool.HEADER :]
    assert len(table) == 256 and table.min() >= 1 and table.max() == window_pool.weight_scale(4)
    assert np.all(np.diff(table) >= 0)  # the weights rise with the logit, as sigmoid and exp do
    multiplier, shift = parameters[6:8]
    assert 2**30 <= multiplier < 2**31 and multiplier / 2.0**shift == pytest.approx(0.02 / 0.01 / 256, rel=1e-9)
    for scale in (0.49, 1e-4, 2.0**-30):  # the kernel shifts the product's high word: 32 <= shift <= 62
        multiplier, shift = window_pool.multiplier_and_shift(scale)
        assert 32 <= shift <= 62 and multiplier / 2.0**shift == pytest.approx(scale, rel=1e-9)
    for scale in (0.5, 3.0, 2.0**-33):
        with pytest.raises(ValueError, match="outside"):
            window_pool.multiplier_and_shift(scale)


def reference_table_softmax(x, table):
    """The table softmax's integer equations in NumPy: x (rows, L) int8 -> int16."""
    y = np.zeros(x.shape, np.int64)
    for r, row in enumerate(x.astype(np.int64)):
        top, total = row[0], int(table[0])
        for v in row[1:]:
            if v > top:
                total, top = ((total * int(table[v - top]) + (1 << 15)) >> 16) + int(table[0]), v
            else:
                total += int(table[top - v])
        reciprocal = ((1 << 46) + total // 2) // total
        y[r] = np.minimum((table[top - row].astype(np.int64) * reciprocal + (1 << 30)) >> 31, 32767)
    return y


def test_table_softmax_equals_its_integer_equations_and_a_float_softmax():
    rng = np.random.default_rng(1)
    for _ in range(30):
        rows, length = int(rng.integers(1, 6)), int(rng.choice([1, 3, 4, 17, 144, 300]))
        scale, beta = float(rng.uniform(0.01, 0.3)), float(rng.choice([1.0, 0.5]))
        low = int(rng.integers(-128, 100))
        x = rng.integers(low, 128, (rows, length)).astype(np.int8)
        table = table_softmax.table_softmax_table(scale, beta)
        assert table[0] == 65536 and np.all(np.diff(table) <= 0)
        model = _single_op_model((rows, length), None, (rows, length), {"x": (scale, 0), "y": None}, table,
                                 op=table_softmax.OP_NAME)  # fmt: skip
        interpreter = HostInterpreter(model)
        interpreter.set_input(x, 0)
        interpreter.invoke()
        got = interpreter.get_output(0).astype(np.int64)
        np.testing.assert_array_equal(got, reference_table_softmax(x, table))
        logits = beta * scale * x.astype(np.float64)
        expected = np.exp(logits - logits.max(1, keepdims=True))
        expected = 32768 * expected / expected.sum(1, keepdims=True)
        # the table's rounding (half a unit of 2^16 on each weight) and the running sum's rescales
        assert np.abs(got - np.minimum(expected, 32767)).max() <= 2 + 0.002 * expected.max()


def _fusable(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = nk.SelfAttentivePooling2D(2, patch_size=3, num_heads=2, name="sa_pool")(x)  # 32 -> 16, tokens 11 x 11
    x = nk.LocalImportancePooling2D(2, gate_scale=4.0, name="lip_pool")(x)  # 8
    x = nk.SelfAttentivePooling2D(2, patch_size=1, name="sa_pool_2")(x)  # 4, a token per position
    x = nk.LocalImportancePooling2D(2, name="lip_pool_2")(x)  # 2
    x = nk.LocalImportancePooling2D(2, name="lip_pool_3")(x)  # 1: its average pool's output has the pooled shape
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x), name="fusable")
    settle_batchnorm(model)
    return model


@pytest.mark.parametrize("int16_ops", [(), ("SOFTMAX", "LOGISTIC")])
def test_fused_poolings_give_the_unfused_graphs_outputs_within_a_few_lsb(images, int16_ops):
    model = _fusable()
    pixels = images[0][:24]
    flatbuffer = to_int8_tflite(model, pixels, num_calibration=16, int16_ops=int16_ops)
    pools = window_pool.window_pools(model)
    assert [p.get("repeat") for p in pools] == [(3, 3), None, (1, 1), None, None] and pools[1]["gate_scale"] == 4.0
    fused = table_softmax.fuse_table_softmaxes(window_pool.fuse_window_softmax_pools(flatbuffer, pools))
    names = Int8Graph(fused).op_names
    assert "AVERAGE_POOL_2D" not in names and "LOGISTIC" not in names
    if int16_ops:  # the attentions' CAST and int16 SOFTMAX are one table softmax each
        assert project_ops(fused) == sorted([table_softmax.OP_NAME, window_pool.OP_NAME])
        assert names.count("CUSTOM") == 7 and "SOFTMAX" not in names
    else:  # their int8 SOFTMAX stays
        assert project_ops(fused) == [window_pool.OP_NAME] and names.count("CUSTOM") == 5 and "SOFTMAX" in names
    assert len(fused) < len(flatbuffer)
    unfused_model = TFLMModel(flatbuffer)
    inputs = quantize(pixels, unfused_model.input_details)
    unfused = unfused_model.invoke_quantized(inputs).astype(int)
    # the host build of the pinned TFLM runs the builtin ops as the wheel's TFLM does
    np.testing.assert_array_equal(TFLMModel(flatbuffer, interpreter=HostInterpreter).invoke_quantized(inputs), unfused)
    host = TFLMModel(fused, interpreter=HostInterpreter)
    got = host.invoke_quantized(inputs).astype(int)
    assert 0 < host.arena_bytes
    assert np.abs(got - unfused).max() <= 6 and np.mean(got.argmax(1) == unfused.argmax(1)) >= 0.9
    # the float model: the fused graph is no further from it than the unfused one, give or take
    float_out = model.predict(pixels, verbose=0)
    scale, zero = (
        host.output_details["quantization_parameters"]["scales"][0],
        host.output_details["quantization_parameters"]["zero_points"][0],
    )
    error = [np.abs((out - zero) * scale - float_out).mean() for out in (got, unfused)]
    assert error[0] <= 1.5 * error[1] + scale


@pytest.mark.parametrize("kernels", ["cmsis_nn", "reference"])
def test_fused_export_on_the_target_equals_the_host_interpreter(images, tmp_path, kernels):
    from nlpool_keras.firmware.validate import validate_on_target
    from nlpool_keras.tflm.deploy import export_for_tflm

    folder = str(tmp_path / "fused")
    widened = ("SOFTMAX", "LOGISTIC")
    summary = export_for_tflm(
        _fusable(), images[0][:16], folder, int16_ops=widened, fuse_pools=True, interpreter=HostInterpreter
    )
    assert summary["fused_pools"] and summary["tflm_arena_bytes"] > 0
    assert {window_pool.OP_NAME, table_softmax.OP_NAME} <= set(summary["ops"]) and "SOFTMAX" not in summary["ops"]
    with open(f"{folder}/model_ops.h") as f:
        assert "nlpool::RegisterCustomOps(resolver)" in f.read()
    report = validate_on_target(folder, images[0][:8], images[1][:8], "cortex-m4", kernels)
    assert report["max_lsb_diff_target_vs_host"] == 0 and report["argmax_agreement_target_vs_host"] == 1.0
    assert set(report["per_pooling_layer"]) == {"sa_pool", "lip_pool", "sa_pool_2", "lip_pool_2", "lip_pool_3"}
    for op, count in ((window_pool.OP_NAME, 5), (table_softmax.OP_NAME, 2)):
        rows = [row for row in report["per_op_first_image"] if row["op"] == op]
        assert len(rows) == count and all(row["instructions"] > 0 for row in rows)


def test_custom_ops_are_refused_where_they_cannot_run(images, tmp_path):
    from nlpool_keras.tflm.deploy import export_for_tflm

    model = _fusable()
    flatbuffer = to_int8_tflite(model, images[0][:8])
    fused = window_pool.fuse_window_softmax_pools(flatbuffer, window_pool.window_pools(model))
    with pytest.raises(TFLMError, match="NLPOOL_WINDOW_SOFTMAX_POOL.*HostInterpreter"):
        TFLMModel(fused)
    with pytest.raises(ValueError, match=r"pools\[5\]"):  # one pooling more than the graph has
        window_pool.fuse_window_softmax_pools(flatbuffer, window_pool.window_pools(model) + [{"pool_size": (2, 2)}])
    with pytest.raises(ValueError, match="fuse_pools=True needs interpreter"):
        export_for_tflm(model, images[0][:8], str(tmp_path / "a"), fuse_pools=True)
    with pytest.raises(ValueError, match="whole graph only"):
        export_for_tflm(model, images[0][:8], str(tmp_path / "b"), fuse_pools=True, interpreter=HostInterpreter,
                        schedule={"cut": "lip_pool", "tiles": 2})  # fmt: skip
    floor = keras.Sequential([keras.Input((10, 10, 4)), nk.SelfAttentivePooling2D(2, patch_size=3, token_grid="floor")])
    with pytest.raises(ValueError, match="token_grid='floor'"):
        window_pool.window_pools(floor)
