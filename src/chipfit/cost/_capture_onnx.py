"""Capture the op graph of an ONNX file with onnx's shape inference.

ONNX ops are translated into the canonical kinds of ``chipfit.cost.handlers.TABLE``, so both front ends
share every cost formula. Initializers are weights; ops whose inputs are all constants (shape arithmetic)
are folded away as a deployment compiler would. Unlike torch views, ONNX Transpose/Slice/Split materialise
their outputs, so they count as copies.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from pathlib import Path

from chipfit.cost.graph import Graph
from chipfit.cost.handlers import TABLE
from chipfit.cost.records import OpNode, TensorRef


class OnnxError(ValueError):
    """The ONNX file cannot be read or shaped (a user-facing error)."""


_SIMPLE = {
    "Conv": "conv", "ConvTranspose": "conv", "Gemm": "gemm", "MatMul": "mm",
    "BatchNormalization": "batch_norm", "LayerNormalization": "layer_norm", "GroupNormalization": "group_norm",
    "InstanceNormalization": "instance_norm", "RMSNormalization": "rms_norm",
    "Relu": "relu", "Clip": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Gelu": "gelu", "Erf": "erf",
    "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid", "LeakyRelu": "leaky_relu", "PRelu": "prelu",
    "Elu": "elu", "Selu": "selu", "Softplus": "softplus", "Mish": "mish",
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Sqrt": "sqrt", "Reciprocal": "reciprocal",
    "Exp": "exp", "Log": "log", "Neg": "neg", "Abs": "abs", "Max": "maximum", "Min": "minimum", "Where": "where",
    "Equal": "eq", "Greater": "gt", "GreaterOrEqual": "gt", "Less": "lt", "LessOrEqual": "lt", "Not": "logical",
    "And": "logical", "Or": "logical", "Floor": "floor", "Ceil": "floor", "Round": "round", "Sign": "sign",
    "Softmax": "softmax", "LogSoftmax": "softmax",
    "MaxPool": "max_pool", "AveragePool": "avg_pool", "GlobalAveragePool": "adaptive_avg_pool",
    "GlobalMaxPool": "max_pool",
    "ReduceMean": "mean", "ReduceSum": "reduce", "ReduceMax": "reduce", "ReduceMin": "reduce",
    "ReduceL2": "reduce", "ReduceProd": "reduce", "ReduceSumSquare": "reduce", "ArgMax": "reduce",
    "Resize": "interp", "Upsample": "interp",
    "Concat": "copy", "Split": "copy", "Slice": "copy", "Transpose": "copy", "Pad": "copy", "Tile": "copy",
    "Gather": "copy", "GatherElements": "copy", "Expand": "copy", "DepthToSpace": "copy", "SpaceToDepth": "copy",
    "ScatterND": "copy", "Cast": "copy", "Trilu": "copy",
    "Reshape": "view", "Flatten": "view", "Squeeze": "view", "Unsqueeze": "view", "Identity": "view",
    "Dropout": "view",
}
_CONST_SOURCES = {"Shape", "Size", "Constant", "ConstantOfShape", "Range", "EyeLike", "RandomNormal",
                  "RandomUniform"}
_CONTROL_INPUTS = {"BatchNormalization": (3, 4), "Resize": (1, 2, 3), "Upsample": (1,), "Clip": (1, 2),
                   "Pad": (1, 2, 3), "Reshape": (1,), "Expand": (1,), "Tile": (1,)}
_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 16: 16}


def capture_onnx(path: str | Path, input_shape: Sequence[int] | None = None) -> Graph:
    """Capture the graph of an ONNX file.

    Args:
        path: the .onnx file.
        input_shape: shape for the first graph input, replacing symbolic (dynamic) dimensions.

    Raises:
        OnnxError: unreadable or invalid file, or shapes that inference cannot resolve.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    path = Path(path)
    if not path.is_file():
        raise OnnxError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf's DecodeError, onnx's ValidationError and others: all say the file is bad
        raise OnnxError(f"{path} is not a valid ONNX model: {_first_line(e)}") from e
    graph = model.graph
    _check_text(model, path)
    init_names = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in init_names]
    if input_shape is not None and not all(isinstance(v, numbers.Integral) and v > 0 for v in input_shape):
        raise OnnxError(f"{path}: --input {list(input_shape)} must be positive whole numbers")
    if input_shape is not None and real_inputs:
        dims = real_inputs[0].type.tensor_type.shape.dim
        if len(dims) != len(input_shape):
            raise OnnxError(f"{path}: input {real_inputs[0].name!r} has {len(dims)} dimensions, "
                            f"--input gives {len(input_shape)}")
        for d, v in zip(dims, input_shape, strict=True):
            if d.HasField("dim_value") and d.dim_value != v:
                raise OnnxError(f"{path}: input {real_inputs[0].name!r} is fixed at "
                                f"{[x.dim_value for x in dims]}; cannot profile it at {list(input_shape)}")
            d.Clear()
            d.dim_value = int(v)
    try:
        model = shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise OnnxError(f"{path}: shape inference failed: {_first_line(e)}") from e
    graph = model.graph

    info: dict[str, tuple[tuple[int, ...] | None, int]] = {}
    for vi in itertools.chain(graph.input, graph.value_info, graph.output):
        tt = vi.type.tensor_type
        shape = None
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            shape = None if any(d is None for d in dims) else tuple(dims)
        info[vi.name] = (shape, tt.elem_type)
    for init in graph.initializer:
        info[init.name] = (tuple(init.dims), init.data_type)
    unknown = [o for n in graph.node for o in n.output if o and info.get(o, (None,))[0] is None]
    if unknown:
        info.update(_shapes_by_running(model, unknown, path))

    tid = itertools.count()
    refs: dict[str, TensorRef] = {}
    # initializers that steer an op rather than parameterise it (statistics, scales, bounds): not params
    control = {n.input[i] for n in graph.node for i in _CONTROL_INPUTS.get(n.op_type, ()) if len(n.input) > i}

    def make(name: str, role: str, buffer: int | None = None) -> TensorRef:
        shape, et = info.get(name, (None, 1))
        if shape is None:
            raise OnnxError(f"{path}: the shape of tensor {name!r} is unknown after shape inference; give --input "
                            "with the concrete input shape")
        t = next(tid)
        is_float = et in _FLOAT_TYPES
        ref = TensorRef(t, shape, role, _BITS.get(et, 32), is_float, name if role == "weight" else "",
                        t if buffer is None else buffer, role == "weight" and is_float and name not in control)
        refs[name] = ref
        return ref

    for init in graph.initializer:
        make(init.name, "weight" if init.data_type in _FLOAT_TYPES else "const")
    inputs = [make(i.name, "input") for i in real_inputs]
    params = 0
    for init in graph.initializer:
        try:
            size = numpy_helper.to_array(init).size
        except ValueError:  # the checker leaves raw data that does not fill the dims alone
            raise OnnxError(f"{path}: initializer {init.name!r} holds data that does not fit its dims "
                            f"{list(init.dims)}") from None
        if init.data_type in _FLOAT_TYPES and init.name not in control:
            params += size

    nodes: list[OpNode] = []
    for node in graph.node:
        ins = [refs[n] for n in node.input if n]
        in_missing = [n for n in node.input if n and n not in refs]
        if in_missing:
            raise OnnxError(f"{path}: node {node.name!r} reads {in_missing[0]!r}, which nothing produces")
        if node.op_type in _CONST_SOURCES or (ins and all(r.role in ("weight", "const") for r in ins)):
            w = next((r for r in ins if r.role == "weight"), None)
            for o in node.output:
                if o:
                    info.setdefault(o, ((), 1))
                    if info[o][0] is None:
                        info[o] = ((), info[o][1])
                    make(o, "weight" if w is not None and node.op_type not in _CONST_SOURCES else "const")
            continue
        kind = _SIMPLE.get(node.op_type)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        is_view = kind == "view"
        outs = [make(o, "act", buffer=ins[0].buffer if is_view and ins else None) for o in node.output if o]
        module = _module_of(node)
        op = OpNode(len(nodes), node.op_type, kind or node.op_type, "", module, node.name, ins, outs)
        _cost(op, node.op_type, attrs, len(node.input), path)
        nodes.append(op)
    outputs = [refs[o.name] for o in graph.output if o.name in refs]
    return Graph(nodes, inputs, outputs, "onnx", path.stem, int(params), "onnx")


def _shapes_by_running(model, names: list[str], path: Path) -> dict[str, tuple[tuple[int, ...], int]]:
    """Shapes that static inference leaves open (data-dependent Slice/Reshape): run the model once in
    ONNX Runtime on zero inputs and read them off."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    feeds = {}
    init_names = {i.name for i in m.graph.initializer}
    for i in m.graph.input:
        if i.name in init_names:
            continue
        tt = i.type.tensor_type
        dims = [d.dim_value for d in tt.shape.dim]
        if any(d <= 0 for d in dims):
            raise OnnxError(f"{path}: input {i.name!r} has dynamic dimensions; give --input with its shape")
        feeds[i.name] = np.zeros(dims, dtype=onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
    try:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        values = sess.run(names, feeds)
    except Exception as e:
        raise OnnxError(f"{path}: shapes of {len(names)} tensors are data-dependent and running the model in ONNX "
                        f"Runtime to find them failed: {_first_line(e)}") from e
    out = {}
    for n, v in zip(names, values, strict=True):
        v = np.asarray(v)
        out[n] = (tuple(int(d) for d in v.shape), onnx.helper.np_dtype_to_tensor_dtype(v.dtype))
    return out


def _first_line(e: BaseException, most: int = 200) -> str:
    """``Type: first line of the message``, cut to ``most`` characters (some messages are empty, some span pages)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= most else text[:most - 3] + "..."


def _check_text(model, path: Path) -> None:
    """Refuse names that are not UTF-8: protobuf hands them over as bytes, which no string operation takes."""
    g = model.graph
    named = [("graph input", v.name) for v in g.input] + [("graph output", v.name) for v in g.output]
    named += [("value info", v.name) for v in g.value_info] + [("initializer", i.name) for i in g.initializer]
    for i, node in enumerate(g.node):
        where = f"node {i}"
        named += [(where, node.name), (f"{where} op type", node.op_type), (f"{where} domain", node.domain)]
        named += [(f"{where} input", t) for t in node.input] + [(f"{where} output", t) for t in node.output]
        named += [(f"{where} attribute", a.name) for a in node.attribute]
        named += [(f"{where} metadata", t) for p in node.metadata_props for t in (p.key, p.value)]
    for what, text in named:
        if not isinstance(text, str):
            raise OnnxError(f"{path}: a name ({what}) is not valid UTF-8 text: {text[:40]!r}")


def _module_of(node) -> str:
    """The module path of a node: from the torch exporter's name scopes, else from a /a/a.0/conv/Conv name."""
    parts: list[str] = []
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            parts = [s.strip(" '\"") for s in p.value.strip("[]").split(",")][:-1]
            break
    else:
        if "/" in node.name:
            parts = [p for p in node.name.split("/") if p][:-1]
    module = ""
    for part in filter(None, parts):
        module = part if module and part.startswith(module + ".") else f"{module}.{part}" if module else part
    return module


def _cost(op: OpNode, op_type: str, attrs: dict, n_inputs: int, path: Path) -> None:
    kind = op.kind
    ins = [t.shape for t in op.inputs]
    a: dict = {}
    if op_type == "Conv":
        a = {"groups": int(attrs.get("group", 1)), "stride": tuple(attrs.get("strides", (1, 1)))}
    elif op_type == "ConvTranspose":
        a = {"groups": int(attrs.get("group", 1)), "transposed": True}
    elif kind in ("gemm", "mm"):
        a_i, b_i = 0, 1
        a = {"a": a_i, "b": b_i, "b_transposed": bool(attrs.get("transB", 0))}
        if attrs.get("transA"):
            s = ins[0]
            ins = [(*s[:-2], s[-1], s[-2]), *ins[1:]]
        kind = "linear" if any(op.inputs[i].role == "weight" for i in (a_i, b_i)) else "matmul"
    elif kind in ("max_pool", "avg_pool"):
        if op_type == "GlobalMaxPool":
            a = {"kernel": tuple(ins[0][2:])}
        else:
            a = {"kernel": tuple(attrs.get("kernel_shape", (1,)))}
    elif kind == "interp":
        mode = attrs.get("mode", b"nearest")
        mode = mode.decode("utf-8", "replace") if isinstance(mode, bytes) else str(mode)
        if mode not in ("nearest", "linear", "cubic"):
            raise OnnxError(f"{path}: node {op.module_type!r} ({op_type}) has mode {mode[:40]!r}; ONNX knows nearest, "
                            "linear and cubic")
        ndim = len(op.outputs[0].shape) - 2
        a = {"mode": {"linear": {1: "linear", 2: "bilinear", 3: "trilinear"}.get(ndim, "bilinear"),
                      "cubic": "bicubic"}.get(mode, "nearest")}
    op.kind, op.attrs = kind, a
    entry = TABLE.get(kind)
    if entry is None:
        op.op_type, op.supported = "unsupported", False
        return
    cost = entry.handler(ins, [t.shape for t in op.outputs], a)
    op.op_type = entry.op_type
    op.macs, op.flops, op.reads, op.writes = cost.macs, cost.flops, cost.reads, cost.writes
