"""Where TFLM and the TFLite interpreter part ways: every op's output compared on the same inputs.

    report = per_op_diff(flatbuffer, quantized_inputs)
    print(format_per_op(report))

For each op k, a truncated copy of the flatbuffer (ops 0..k, op k's output the graph's output)
runs in TFLM (a child process) and in the TFLite interpreter with its reference kernels; a copy
per op, because with several graph outputs both interpreters may overwrite an earlier output in
place before it is read. For each op, in execution order: the
largest |TFLM - TFLite| on its output in LSB, the fraction of values that differ and the largest
difference on its inputs; then the first op that differs, the largest difference per op type,
and the op types whose kernels differ on equal inputs (the source of the divergence, as opposed
to ops that pass on or amplify a difference they receive).
"""

import numpy as np

from nlpool_keras.tflm.child import run_tflm
from nlpool_keras.tflm.interpreter import tflite_reference_outputs


def truncated(flatbuffer, index):
    """The flatbuffer cut after op `index`: ops 0..index, whose output is the graph's output."""
    from nlpool_keras.export.flatbuffer import read_model, write_model

    model = read_model(flatbuffer)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[: index + 1]
    graph.outputs = np.array([graph.operators[index].outputs[0]], dtype=np.int32)
    return write_model(model)


def per_op_diff(flatbuffer, quantized_inputs, log=None, names=None):
    """Compares TFLM with the TFLite interpreter on every op's output for `quantized_inputs`
    (an integer batch in the input's type); `names` ({tensor index: name}) name the
    tensors of a flatbuffer whose names were stripped.

    Returns:
        dict: `ops` (per op in execution order: index, op, tensor, shape, max_lsb, differing
        fraction, input_max_lsb), `first_difference` (the first op whose output differs, or
        None), `by_op_type` ({op: largest max_lsb}), `kernels_differing_on_equal_inputs`
        ({op: largest max_lsb where the op's inputs agreed}), `images`.
    """
    from nlpool_keras.export.preflight import read_graph

    graph = read_graph(flatbuffer)
    lsb = {graph.inputs[0]["index"]: 0}  # both interpreters read the same input
    rows = []
    for index, op in enumerate(graph.ops):
        copy = truncated(flatbuffer, index)
        micro = run_tflm(copy, quantized_inputs).outputs.astype(np.int64)
        reference = tflite_reference_outputs(copy, quantized_inputs).astype(np.int64)
        tensor = op["outputs"][0]
        lsb[tensor] = int(np.abs(micro - reference).max())
        rows.append(
            {
                "index": index,
                "op": op["op_name"],
                "tensor": (names or {}).get(tensor) or graph.tensors[tensor]["name"],
                "shape": [int(d) for d in graph.tensors[tensor]["shape"]],
                "max_lsb": lsb[tensor],
                "differing": round(float(np.mean(micro != reference)), 6),
                "input_max_lsb": max((lsb[t] for t in op["inputs"] if t in lsb), default=0),
            }
        )
        if log:
            log(f"op {index} {op['op_name']}: {lsb[tensor]} LSB")
    by_type, on_equal_inputs = {}, {}
    for row in rows:
        by_type[row["op"]] = max(by_type.get(row["op"], 0), row["max_lsb"])
        if row["input_max_lsb"] == 0 and row["max_lsb"]:
            on_equal_inputs[row["op"]] = max(on_equal_inputs.get(row["op"], 0), row["max_lsb"])
    return {
        "images": int(len(quantized_inputs)),
        "ops": rows,
        "first_difference": next((row for row in rows if row["max_lsb"] > 0), None),
        "by_op_type": by_type,
        "kernels_differing_on_equal_inputs": on_equal_inputs,
    }


def format_per_op(report, limit=12):
    """The first difference, the op types that differ, and the first `limit` differing ops."""
    first = report["first_difference"]
    if first is None:
        return f"  TFLM and TFLite agree on every op's output ({report['images']} images)"
    lines = [
        f"  first difference: op {first['index']} {first['op']} -> {first['tensor']}: up to {first['max_lsb']} LSB "
        f"on {100 * first['differing']:.2f} % of its values ({report['images']} images)",
        "  largest difference per op type: " + _by_size(report["by_op_type"]),
        "  kernels that differ on equal inputs: " + (_by_size(report["kernels_differing_on_equal_inputs"]) or "none"),
        "  differing ops (in order):",
    ]
    differing = [row for row in report["ops"] if row["max_lsb"]]
    lines += [
        f"    {r['index']:>4} {r['op']:<24}{r['max_lsb']:>5} LSB (inputs {r['input_max_lsb']:>3})  {r['tensor']}"
        for r in differing[:limit]
    ]
    if len(differing) > limit:
        lines.append(f"    ... {len(differing) - limit} more (JSON: ops)")
    return "\n".join(lines)


def _by_size(lsb_by_op):
    return ", ".join(f"{op} {lsb} LSB" for op, lsb in sorted(lsb_by_op.items(), key=lambda kv: -kv[1]) if lsb)
