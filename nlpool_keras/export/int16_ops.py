"""SOFTMAX and LOGISTIC of an int8 graph evaluated in int16, where their kernels are lookup tables.

TFLM's int8 SOFTMAX and LOGISTIC compute a fixed-point exponential per element (CMSIS-NN's int8
softmax twice): about 500 and 370 instructions an element on a Cortex-M4. Their int16 kernels read
interpolated lookup tables instead (CMSIS-NN's `arm_softmax_s16`, TFLM's int16 logistic), and
TFLM and the TFLite interpreter both run them. `widen_to_int16` rewrites each int8 SOFTMAX and
LOGISTIC as

    x (int8) -> CAST -> x16 (int16) -> SOFTMAX | LOGISTIC -> y16 (int16) -> QUANTIZE -> y (int8)

CAST copies the integers q of x; x16 declares them with x's scale s and zero point 0 (the int16
kernels require 0), so x16 holds s * q = x + s * z. Softmax is unchanged by that shift (one
constant per row). The logistic is not: its input's producer (a convolution, a fully connected
layer, an addition or a multiplication: ops that requantize their output) is given a symmetric
output quantization (zero point 0, the same range, one step of up to twice the size), so that
x16 = x. `y16` has the int16 kernels' fixed output quantization (1/32768, zero point 0), and `y`
keeps its int8 quantization (1/256, -128): the ops after them read the same kind of tensor as
before. A logistic whose input another op produces stays in int8. Where an int16 result only
moves (RESHAPE, TRANSPOSE) into another widened op (LIP's gate into its window softmax), the
moves run in int16 and the QUANTIZE and CAST between them go. Where an int16 softmax's only
reader is a BATCH_MATMUL (attention: softmax(q k^T) v), the product runs in int16 on the weights
as the softmax wrote them: the values are CAST from int8 (their producer given a symmetric
quantization, as a logistic's input is), and the product is QUANTIZEd to the int8 tensor it wrote
before; the L x L weights are not rounded to int8.

    flatbuffer = widen_to_int16(flatbuffer)   # or to_int8_tflite(..., int16_ops=WIDENED_OPS)

Shapes: unchanged. SRAM: x16 and y16 take twice the bytes of the int8 tensors they stand beside,
and TFLM keeps 2 KB of lookup tables in the arena for every int16 SOFTMAX (its Prepare allocates
them per op), also one per query slice of a patch schedule.
"""

import numpy as np

from nlpool_keras.export.flatbuffer import write_model
from nlpool_keras.export.int8_graph import Int8Graph

WIDENED_OPS = ("SOFTMAX", "LOGISTIC")
INT16_OUTPUT_SCALE = 1.0 / 32768  # TFLM's int16 SOFTMAX and LOGISTIC require it, zero point 0
# ops whose int8 output quantization is free: they requantize their accumulators to it
REQUANTIZING = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL")


def widen_to_int16(flatbuffer, ops=WIDENED_OPS):
    """The flatbuffer with each int8 op of `ops` (names in WIDENED_OPS) run in int16 between a
    CAST and a QUANTIZE (module docstring); the flatbuffer itself when there is none."""
    from tensorflow.lite.python import schema_py_generated as schema

    unknown = sorted(set(ops) - set(WIDENED_OPS))
    if unknown:
        raise ValueError(f"ops must be names from {WIDENED_OPS}, received: ops={tuple(ops)!r}")
    graph = Int8Graph(flatbuffer)
    cast = _opcode(graph.model, schema, schema.BuiltinOperator.CAST)
    quantize = _opcode(graph.model, schema, schema.BuiltinOperator.QUANTIZE)
    operators = []
    for op, name in zip(graph.ops, graph.op_names, strict=True):
        source, target = int(op.inputs[0]), int(op.outputs[0])
        if name not in ops or not _widens(graph, schema, name, source, target):
            operators.append(op)
            continue
        if name == "LOGISTIC":
            _symmetric(graph.tensor(source).quantization)
        wide_in = _int16_tensor(graph, schema, source, _scale(graph, source), b"/int16")
        wide_out = _int16_tensor(graph, schema, target, INT16_OUTPUT_SCALE, b"/int16")
        op.inputs[0], op.outputs[0] = wide_in, wide_out
        operators += [_cast_op(schema, cast, source, wide_in), op, _quantize_op(schema, quantize, wide_out, target)]
    if len(operators) == len(graph.ops):
        return flatbuffer
    graph.graph.operators = _int16_matmuls(graph, schema, _joined(graph, schema, operators))
    return write_model(graph.model)


def _names(graph, operators):
    codes = [graph.model.operatorCodes[op.opcodeIndex] for op in operators]
    return [max(code.builtinCode, code.deprecatedBuiltinCode) for code in codes]


def _readers(operators):
    readers = {}
    for i, op in enumerate(operators):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(i)
    return readers


def _joined(graph, schema, operators):
    """`operators` where an int16 result only moves (RESHAPE, TRANSPOSE) into another widened op:
    the moves run in int16 and the QUANTIZE to int8 and the CAST back are dropped (one rounding
    and about 45 instructions an element fewer on a Cortex-M4)."""
    names, readers = _names(graph, operators), _readers(operators)
    moves = (schema.BuiltinOperator.RESHAPE, schema.BuiltinOperator.TRANSPOSE)
    dropped = set()
    for i, op in enumerate(operators):
        if (
            names[i] != schema.BuiltinOperator.QUANTIZE
            or graph.tensor(int(op.inputs[0])).type != schema.TensorType.INT16
        ):
            continue
        chain, tensor = [], int(op.outputs[0])
        while len(readers.get(tensor, [])) == 1 and names[readers[tensor][0]] in moves:
            chain.append(readers[tensor][0])
            tensor = int(operators[chain[-1]].outputs[0])
        end = readers.get(tensor, [])
        if not chain or len(end) != 1 or names[end[0]] != schema.BuiltinOperator.CAST:
            continue
        wide = graph.tensor(int(op.inputs[0]))
        for j in chain:
            moved = graph.tensor(int(operators[j].outputs[0]))
            moved.type, moved.quantization = schema.TensorType.INT16, wide.quantization
        operators[chain[0]].inputs[0] = op.inputs[0]
        cast = operators[end[0]]
        operators[readers[int(cast.outputs[0])][0]].inputs[0] = tensor
        dropped |= {i, end[0]}
    return [op for i, op in enumerate(operators) if i not in dropped]


def _int16_matmuls(graph, schema, operators):
    """`operators` where a BATCH_MATMUL's left operand is a widened SOFTMAX's int8 result and
    nothing else reads it (attention weights times values): the product runs in int16 on the
    weights as the softmax wrote them. Its right operand is CAST from int8, its producer (a
    requantizing op, then only moves) given a symmetric quantization as a LOGISTIC's input is, and
    its result is QUANTIZEd into the int8 tensor it wrote before. The rounding of L x L weights to
    int8 and their QUANTIZE (about 40 instructions an element on a Cortex-M4) give way to a
    QUANTIZE of the L x d results."""
    ops = schema.BuiltinOperator
    names, readers = _names(graph, operators), _readers(operators)
    producer = {int(t): i for i, op in enumerate(operators) for t in op.outputs}
    outputs = {int(t) for t in graph.graph.outputs}
    cast, quantize = _opcode(graph.model, schema, ops.CAST), _opcode(graph.model, schema, ops.QUANTIZE)
    before, after, dropped = {}, {}, set()
    for i, op in enumerate(operators):
        if names[i] != ops.BATCH_MATMUL:
            continue
        weights, values, result = int(op.inputs[0]), int(op.inputs[1]), int(op.outputs[0])
        rounding = producer.get(weights)
        if rounding is None or names[rounding] != ops.QUANTIZE or readers[weights] != [i] or weights in outputs:
            continue
        wide_weights = int(operators[rounding].inputs[0])
        chain = _requantized_through_moves(graph, schema, names, operators, producer, values, outputs)
        if graph.tensor(wide_weights).type != schema.TensorType.INT16 or chain is None:
            continue
        _symmetric(graph.tensor(chain[0]).quantization)
        for moved in chain[1:]:
            graph.tensor(moved).quantization = graph.tensor(chain[0]).quantization
        wide_values = _int16_tensor(graph, schema, values, _scale(graph, values), b"/int16")
        reach = _reach(graph.tensor(result).quantization)
        wide_result = _int16_tensor(graph, schema, result, reach / 32767, b"/int16")
        op.inputs = np.array([wide_weights, wide_values], np.int32)
        op.outputs = np.array([wide_result], np.int32)
        before[i] = _cast_op(schema, cast, values, wide_values)
        after[i] = _quantize_op(schema, quantize, wide_result, result)
        dropped.add(rounding)
    joined = []
    for i, op in enumerate(operators):
        if i not in dropped:
            joined += [before[i], op, after[i]] if i in before else [op]
    return joined


def _requantized_through_moves(graph, schema, names, operators, producer, tensor, outputs):
    """[output of the requantizing op, the moves' outputs ..., `tensor`] when `tensor` is an int8
    tensor made by a requantizing op (REQUANTIZING) followed only by RESHAPE and TRANSPOSE, none of
    them a graph output (`outputs`), else None."""
    if graph.tensor(tensor).type != schema.TensorType.INT8:
        return None
    ops = schema.BuiltinOperator
    moves, requantizing = (ops.RESHAPE, ops.TRANSPOSE), {getattr(ops, name) for name in REQUANTIZING}
    chain = [tensor]
    while chain[0] in producer and names[producer[chain[0]]] in moves:
        chain.insert(0, int(operators[producer[chain[0]]].inputs[0]))
    source = producer.get(chain[0])
    if source is None or names[source] not in requantizing or outputs.intersection(chain):
        return None
    return chain


def _scale(graph, tensor):
    return float(graph.tensor(tensor).quantization.scale[0])


def _reach(quantization):
    """The largest magnitude an int8 tensor of this quantization holds."""
    scale, zero_point = float(quantization.scale[0]), int(quantization.zeroPoint[0])
    return scale * max(128 + zero_point, 127 - zero_point)


def _widens(graph, schema, name, source, target):
    """Whether the op reading `source` and writing `target` can run in int16 here."""
    if {graph.tensor(source).type, graph.tensor(target).type} != {schema.TensorType.INT8}:
        return False
    if name != "LOGISTIC":
        return True
    producer = graph.producer.get(source)
    return (
        producer is not None
        and graph.op_names[producer] in REQUANTIZING
        and len(graph.readers[source]) == 1
        and source not in (int(t) for t in graph.graph.outputs)
    )


def _symmetric(quantization):
    """Zero point 0 and a scale that keeps the int8 range [s(-128 - z), s(127 - z)] inside
    (left as it is when the zero point is 0 already)."""
    if int(quantization.zeroPoint[0]) == 0:
        return
    reach = _reach(quantization)
    quantization.scale = np.array([reach / 127], np.float32)
    quantization.zeroPoint = np.array([0], np.int64)


def _opcode(model, schema, builtin):
    """Index of `builtin`'s operator code in `model`, added if missing."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _int16_tensor(graph, schema, like, scale, suffix):
    """A new int16 activation tensor shaped like tensor `like`, quantized (scale, 0)."""
    source = graph.tensor(like)
    tensor = schema.TensorT()
    tensor.name = (source.name or b"") + suffix
    tensor.type, tensor.buffer = schema.TensorType.INT16, 0
    tensor.shape = np.array(source.shape, np.int32)
    if source.shapeSignature is not None:
        tensor.shapeSignature = np.array(source.shapeSignature, np.int32)
    tensor.quantization = schema.QuantizationParametersT()
    tensor.quantization.scale = np.array([scale], np.float32)
    tensor.quantization.zeroPoint = np.array([0], np.int64)
    graph.graph.tensors.append(tensor)
    return len(graph.graph.tensors) - 1


def _cast_op(schema, opcode, source, target):
    options = schema.CastOptionsT()
    options.inDataType, options.outDataType = schema.TensorType.INT8, schema.TensorType.INT16
    return _op(schema, opcode, source, target, schema.BuiltinOptions.CastOptions, options)


def _quantize_op(schema, opcode, source, target):
    return _op(schema, opcode, source, target, schema.BuiltinOptions.QuantizeOptions, schema.QuantizeOptionsT())


def _op(schema, opcode, source, target, options_type, options):
    op = schema.OperatorT()
    op.opcodeIndex, op.builtinOptionsType, op.builtinOptions = opcode, options_type, options
    op.inputs, op.outputs = np.array([source], np.int32), np.array([target], np.int32)
    return op
