"""Per-op figures of an int8 .tflite graph: shapes, activation bytes, MACs, and the liveness peak.

The graph is read with the TFLite interpreter (`read_graph`: ops in execution order, tensors with
shapes and types). A tensor is an activation when an op produces it or it is a model
input; the other tensors an op reads are constants (weights, biases, shapes).
"""

import numpy as np

from nlpool_keras.export.preflight import read_graph
from nlpool_keras.export.window_pool import OP_NAME as WINDOW_POOL_OP

# ops whose multiply-accumulates are counted (elementwise ops count none); the window softmax
# pool weighs each element of its input once
_MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV", WINDOW_POOL_OP)


def _bytes(tensor):
    return int(np.prod(tensor["shape"])) * np.dtype(tensor["dtype"]).itemsize


def _macs(op, tensors):
    name = op["op_name"]
    if name not in _MAC_OPS:
        return 0
    output = tensors[op["outputs"][0]]["shape"]
    first, second = (tensors[i]["shape"] for i in op["inputs"][:2])
    if name == WINDOW_POOL_OP:  # x (1, H, W, C): one multiply-add per element
        return int(np.prod(first))
    if name == "CONV_2D":  # filter (C_out, kh, kw, C_in / groups)
        return int(np.prod(output)) * int(np.prod(second[1:]))
    if name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, C_out)
        return int(np.prod(output)) * int(second[1] * second[2])
    if name == "FULLY_CONNECTED":  # weights (units, depth)
        return int(np.prod(output)) * int(second[-1])
    if name == "BATCH_MATMUL":  # the contracted axis of the first operand (adj_x is not used by our export)
        return int(np.prod(output)) * int(first[-1])
    return int(np.prod(tensors[op["inputs"][2]]["shape"])) * int(second[0])  # TRANSPOSE_CONV: input x filter


def graph_profile(flatbuffer):
    """Reads an int8 flatbuffer's graph.

    Returns:
        dict with `ops` (one dict per op in execution order: index, op, output
        tensor name, output shape, output bytes, MACs, constant bytes read,
        live bytes while it runs), `macs`, `constant_bytes`, `peak_activation_bytes`
        (the largest sum of live activation tensors at any op: a lower bound for
        a planner that does not alias tensors, scratch buffers excluded),
        `peak_op` (its index) and `flash_bytes` (the flatbuffer's size).
    """
    graph = read_graph(flatbuffer)
    ops, tensors = graph.ops, graph.tensors
    inputs, outputs = [d["index"] for d in graph.inputs], [d["index"] for d in graph.outputs]
    produced = {t: step for step, op in enumerate(ops) for t in op["outputs"]}
    birth = {**{t: 0 for t in inputs}, **produced}
    death = {t: len(ops) - 1 for t in outputs}
    for step, op in enumerate(ops):
        for t in op["inputs"]:
            if t in birth:
                death[t] = max(death.get(t, 0), step)
    rows, constant_ids = [], set()
    for step, op in enumerate(ops):
        live = sum(_bytes(tensors[t]) for t in birth if birth[t] <= step <= death.get(t, birth[t]))
        constants = [t for t in op["inputs"] if t >= 0 and t not in birth]
        constant_ids.update(constants)
        output = tensors[op["outputs"][0]]
        rows.append(
            {
                "index": step,
                "op": op["op_name"],
                "tensor": output["name"],
                "output_shape": [int(d) for d in output["shape"]],
                "output_bytes": _bytes(output),
                "macs": _macs(op, tensors),
                "constant_bytes": sum(_bytes(tensors[t]) for t in constants),
                "live_bytes": live,
            }
        )
    peak = max(rows, key=lambda row: row["live_bytes"])
    return {
        "ops": rows,
        "macs": sum(row["macs"] for row in rows),
        "constant_bytes": sum(_bytes(tensors[t]) for t in constant_ids),
        "peak_activation_bytes": peak["live_bytes"],
        "peak_op": peak["index"],
        "flash_bytes": len(flatbuffer),
    }
