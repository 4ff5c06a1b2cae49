"""Where the target's kernels part ways with the host's: every op's output compared.

    report = locate_on_target("out/export", inputs, "cortex-m4", "cmsis_nn")
    report["first_difference"]   # {"index", "op", "layer", "max_lsb", ...} or None

The firmware is built with every tensor kept (`NLPOOL_DUMP_TENSORS`: TFLM's
`preserve_all_tensors`) and writes each op's output after each input; the host TFLM
interpreter, with its reference kernels, keeps all tensors too and gives the same ones. An op
whose output differs while its inputs agree is a kernel that computes differently on the
target (e.g. a CMSIS-NN kernel); one whose inputs already differ passes a difference on.
"""

import numpy as np

from nlpool_keras.firmware.build import build_firmware, read_export
from nlpool_keras.firmware.emulator import run_firmware
from nlpool_keras.firmware.validate import export_flatbuffer, op_layers


def _op_outputs(graph):
    """[(op index, output tensor index, shape, dtype)] in op order, every output of every op."""
    rows = []
    for op in graph.ops:
        for tensor in op["outputs"]:
            details = graph.tensors[tensor]
            rows.append((op["index"], tensor, tuple(int(d) for d in details["shape"]), np.dtype(details["dtype"])))
    return rows


def host_op_outputs(micro, inputs, outputs):
    """{tensor: (N, ...) values} of the host TFLM interpreter with every tensor kept."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(
        micro, arena_size=64 << 20, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    values = {tensor: [] for _, tensor, _, _ in outputs}
    for sample in inputs:
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        for _, tensor, shape, dtype in outputs:
            values[tensor].append(np.asarray(interpreter.GetTensor(tensor, 0)["tensor_data"], dtype).reshape(shape))
    return {tensor: np.stack(v) for tensor, v in values.items()}


def locate_on_target(export_dir, inputs, target="cortex-m4", kernels="cmsis_nn", tree=None, log=None):
    """Per op, the largest |target - host| on its output(s) for int8 `inputs`; see the module."""
    from nlpool_keras.export.flatbuffer import micro_flatbuffer
    from nlpool_keras.export.preflight import read_graph

    flatbuffer, names = export_flatbuffer(export_dir)
    graph = read_graph(flatbuffer)
    outputs = _op_outputs(graph)
    sizes = [int(np.prod(shape)) * dtype.itemsize for _, _, shape, dtype in outputs]
    figures = build_firmware(export_dir, target, kernels, tree, program="dump", log=log)
    run = run_firmware(figures["elf"], target, inputs, dump_bytes=sum(sizes))
    host = host_op_outputs(micro_flatbuffer(flatbuffer), inputs, outputs)
    lsb = {graph.inputs[0]["index"]: 0}
    offset, rows = 0, []
    layers = op_layers(flatbuffer, names, read_export(export_dir).get("layer_classes", {}))
    for (index, tensor, shape, dtype), size in zip(outputs, sizes, strict=True):
        on_target = run["dump"][:, offset : offset + size].copy().view(dtype).reshape((len(inputs), *shape))
        offset += size
        lsb[tensor] = int(np.abs(on_target.astype(np.int64) - host[tensor].astype(np.int64)).max())
        op = graph.ops[index]
        inputs_lsb = max((lsb.get(t, 0) for t in op["inputs"] if t >= 0), default=0)
        rows.append(
            {
                "index": index,
                "op": op["op_name"],
                "layer": layers[index][1],
                "tensor": names.get(tensor) or graph.tensors[tensor]["name"],
                "shape": list(shape),
                "max_lsb": lsb[tensor],
                "differing_fraction": float(np.mean(on_target != host[tensor])),
                "input_max_lsb": inputs_lsb,
            }
        )
    first = next((row for row in rows if row["max_lsb"]), None)
    at_source = {}
    for row in rows:
        if row["max_lsb"] and not row["input_max_lsb"]:
            at_source[row["op"]] = max(at_source.get(row["op"], 0), row["max_lsb"])
    return {
        "target": target,
        "kernels": kernels,
        "images": int(len(inputs)),
        "ops": rows,
        "first_difference": first,
        "kernels_differing_on_equal_inputs": at_source,
    }


def format_location(report):
    first = report["first_difference"]
    if first is None:
        return f"every op's output on {report['target']} ({report['kernels']}) equals the host TFLM's"
    lines = [
        f"first op that differs on {report['target']} ({report['kernels']}): op {first['index']} {first['op']} "
        f"(layer {first['layer']}, tensor {first['tensor']}, shape {first['shape']}): {first['max_lsb']} LSB "
        f"on {100 * first['differing_fraction']:.1f} % of its values, its inputs differing by {first['input_max_lsb']}"
    ]
    for op, worst in sorted(report["kernels_differing_on_equal_inputs"].items()):
        lines.append(f"  {op}: differs by up to {worst} LSB where its inputs agree (a kernel of the target differs)")
    return "\n".join(lines)
