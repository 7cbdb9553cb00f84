"""Capture the op graph of an ``nn.Module`` with a TorchDispatchMode.

The forward runs on meta tensors (parameters swapped in with ``torch.func.functional_call``), so no
arithmetic is done and a large network is captured faster than one forward pass. A model that cannot
run on meta tensors (data-dependent control flow, tensors created on the CPU inside ``forward``) is
re-run on real zero-filled tensors, which costs one forward pass.

Every aten op is recorded with the tensors it reads and writes (tracked by identity), the module that
called it (global module hooks) and its canonical kind. ``scaled_dot_product_attention`` is caught one
level higher, by a TorchFunctionMode, and recorded as one fused ``attention`` op.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from chipfit.cost.graph import Graph
from chipfit.cost.handlers import TABLE, OpCost
from chipfit.cost.records import OpNode, TensorRef


class CaptureError(RuntimeError):
    """The model could not run on the given input (a user-facing error)."""


# aten overload-packet name (in-place trailing "_" stripped) -> canonical kind
_ATEN: dict[str, str] = {}


def _map(kind: str, *names: str) -> None:
    for n in names:
        _ATEN[n] = kind


_map("conv", "convolution", "_convolution", "conv2d", "conv1d", "conv3d", "mkldnn_convolution")
_map("mm", "mm", "matmul", "bmm", "dot", "mv")
_map("addmm", "addmm", "baddbmm", "addbmm")
_map("aten_linear", "linear")
_map("batch_norm", "native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
     "batch_norm", "_batch_norm_impl_index", "cudnn_batch_norm")
_map("layer_norm", "native_layer_norm", "layer_norm")
_map("group_norm", "native_group_norm", "group_norm")
_map("rms_norm", "rms_norm", "_fused_rms_norm")
for _a in ("relu", "sigmoid", "tanh", "silu", "gelu", "hardswish", "hardsigmoid", "elu", "selu", "softplus", "mish",
           "leaky_relu", "erf", "prelu", "hardtanh"):
    _map(_a, _a)
_map("prelu", "_prelu_kernel")
_map("relu6", "relu6")
_map("add", "add", "rsub")
_map("sub", "sub")
_map("mul", "mul")
_map("div", "div", "true_divide")
_map("neg", "neg")
_map("abs", "abs")
_map("pow", "pow", "square")
_map("sqrt", "sqrt")
_map("rsqrt", "rsqrt")
_map("reciprocal", "reciprocal")
_map("exp", "exp", "exp2")
_map("log", "log", "log2", "log1p")
_map("maximum", "maximum", "max.other", "fmax")
_map("minimum", "minimum", "fmin")
_map("clamp", "clamp", "clamp_min", "clamp_max", "clip")
_map("where", "where", "masked_fill", "lerp", "addcmul", "addcdiv")
_map("sign", "sign", "sgn")
_map("floor", "floor", "ceil", "trunc", "frac")
_map("round", "round")
_map("eq", "eq", "ne")
_map("gt", "gt", "ge")
_map("lt", "lt", "le")
_map("logical", "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or", "bitwise_not")
_map("fill", "fill", "zero")
_map("softmax", "_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax")
_map("max_pool", "max_pool2d_with_indices", "max_pool2d", "max_pool1d", "max_pool3d", "max_pool3d_with_indices",
     "max_pool1d_with_indices")
_map("avg_pool", "avg_pool2d", "avg_pool1d", "avg_pool3d")
_map("adaptive_avg_pool", "_adaptive_avg_pool2d", "adaptive_avg_pool2d", "adaptive_avg_pool1d",
     "_adaptive_avg_pool3d", "adaptive_avg_pool3d")
_map("adaptive_max_pool", "adaptive_max_pool2d", "adaptive_max_pool1d")
_map("mean", "mean")
_map("reduce", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "prod", "argmax",
     "argmin", "linalg_vector_norm", "norm", "logsumexp", "cumsum", "any", "all")
_map("interp", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
     "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d",
     "_upsample_bilinear2d_aa", "upsample_bicubic2d", "_upsample_bicubic2d_aa", "upsample_trilinear3d")
_map("copy", "clone", "cat", "stack", "_to_copy", "copy", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d",
     "reflection_pad3d", "replication_pad1d", "replication_pad2d", "replication_pad3d", "roll", "index_select",
     "gather", "index", "_unsafe_index", "repeat", "flip", "embedding", "scatter", "scatter_add", "narrow_copy",
     "pixel_shuffle", "pixel_unshuffle", "native_channel_shuffle", "channel_shuffle", "index_put", "slice_scatter",
     "select_scatter", "tril", "triu", "contiguous", "masked_scatter", "_index_put_impl", "im2col", "col2im")
_map("view", "_unsafe_view", "lift_fresh", "detach", "alias", "_reshape_alias", "view", "reshape", "flatten",
     "unflatten", "resolve_conj", "resolve_neg", "_shape_as_tensor", "sym_size", "sym_numel", "sym_stride")
_map("dropout", "native_dropout", "dropout", "bernoulli")

_FACTORY = {
    "empty", "zeros", "ones", "full", "arange", "scalar_tensor", "empty_like", "zeros_like", "ones_like", "full_like",
    "rand", "randn", "randint", "empty_strided", "new_empty", "new_zeros", "new_ones", "new_full", "eye", "linspace",
    "randperm", "rand_like", "randn_like", "new_empty_strided", "_local_scalar_dense", "lift_fresh_copy", "tensor",
    "normal", "uniform", "randint_like", "_efficientzerotensor", "set_", "meshgrid",
}
# element-wise kinds whose output, on meta tensors, is an empty tensor like the first operand (see _fast_meta)
_FAST_UNARY = {"relu", "sigmoid", "tanh", "silu", "gelu", "hardswish", "hardsigmoid", "elu", "selu", "softplus",
               "mish", "erf", "neg", "abs", "sqrt", "rsqrt", "reciprocal", "exp", "log", "relu6", "hardtanh",
               "leaky_relu", "clamp", "sign", "floor", "round"}
_FAST_BINARY = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"}


def _bits(dtype: torch.dtype) -> int:
    return dtype.itemsize * 8 if dtype != torch.bool else 8


def _flatten(obj, out: list) -> list:
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _flatten(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flatten(o, out)
    return out


def _pair_attr(v, ndim: int = 2) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(int(x) for x in v) if len(v) > 1 else tuple(int(v[0]) for _ in range(ndim))
    return tuple(int(v) for _ in range(ndim))


class _Recorder(TorchDispatchMode):
    """Records aten ops, with tensor identities, into OpNodes."""

    def __init__(self, module_stack: list[tuple[str, str]], meta: bool = False):
        super().__init__()
        self.meta = meta
        self.nodes: list[OpNode] = []
        self.refs: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.module_stack = module_stack
        self._tid = itertools.count()
        self._buf = itertools.count()
        self.suppress = 0
        self.unsupported: dict[str, int] = {}

    # --- tensor bookkeeping ---
    def register(self, t: torch.Tensor, role: str, name: str = "", is_param: bool = False,
                 buffer: int | None = None) -> TensorRef:
        ref = TensorRef(next(self._tid), tuple(int(d) for d in t.shape), role, _bits(t.dtype),
                        t.dtype.is_floating_point or t.dtype.is_complex, name,
                        next(self._buf) if buffer is None else buffer, is_param)
        self.refs[t] = ref
        return ref

    def ref(self, t: torch.Tensor) -> TensorRef:
        r = self.refs.get(t)
        if r is None:  # a tensor made outside the recorder (a plain attribute, a Python constant)
            r = self.register(t, "const")
        return r

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = self._fast_meta(func, args, kwargs) if self.meta else None
        if out is None:
            out = func(*args, **kwargs)
        if self.suppress:
            return out
        self.record(func, args, kwargs, out)
        return out

    def _fast_meta(self, func, args, kwargs):
        """Output of an element-wise op on meta tensors without torch's (slow, Python) meta kernel, in the cases
        where it is plainly an empty tensor like an operand; ``None`` lets the real meta kernel run."""
        name = func.overloadpacket.__name__
        if name in ("mm", "addmm", "bmm"):
            m1, m2 = args[-2:] if name == "addmm" else args[:2]
            if not (isinstance(m1, torch.Tensor) and isinstance(m2, torch.Tensor)) or m1.dtype != m2.dtype:
                return None
            return m1.new_empty((*m1.shape[:-1], m2.shape[-1]))
        inplace = name.endswith("_") and not name.startswith("_")
        kind = _ATEN.get(name[:-1] if inplace else name)
        if kind not in _FAST_UNARY and kind not in _FAST_BINARY or (kwargs and set(kwargs) - {"alpha"}):
            return None
        a = args[0] if args else None
        if not isinstance(a, torch.Tensor):
            return None
        if kind in _FAST_UNARY:
            if any(isinstance(x, torch.Tensor) for x in args[1:]):
                return None
            return a if inplace else torch.empty_like(a)
        if len(args) != 2:
            return None
        b = args[1]
        if isinstance(b, torch.Tensor):
            if b.dtype != a.dtype or b.dim() > a.dim() or not a.is_contiguous():
                return None
            # b must broadcast to a's shape (a keeps its contiguous layout, as TensorIterator does)
            if any(db not in (1, da) for da, db in zip(a.shape[::-1], b.shape[::-1], strict=False)):
                return None
        elif not isinstance(b, (float, int)) or (isinstance(b, int) and not a.is_floating_point()):
            return None
        return a if inplace else torch.empty_like(a, memory_format=torch.contiguous_format)

    def record(self, func, args, kwargs, out) -> None:
        name = func.overloadpacket.__name__
        base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
        in_tensors = _flatten(args, []) + _flatten(kwargs, [])
        out_tensors = _flatten(out, [])
        if base in _FACTORY or (not in_tensors and base not in _ATEN):
            for t in out_tensors:
                if t not in self.refs:
                    self.register(t, "const")
            return
        ins = [self.ref(t) for t in in_tensors]
        # Ops whose inputs are all weights/constants are constant-folded by deployment compilers:
        # their outputs become constants and the op is not part of the per-inference graph.
        if all(r.role in ("weight", "const") for r in ins):
            w = next((r for r in ins if r.role == "weight"), None)
            view = getattr(func, "is_view", False) or base in ("t", "_unsafe_view", "transpose", "permute")
            for t in out_tensors:
                if any(t is a for a in in_tensors):
                    continue
                if w is not None and view:  # a view of a weight is that weight
                    self.register(t, "weight", w.name, w.is_param, buffer=w.buffer)
                else:  # a folded constant, read as constant data (like a weight, but no parameters)
                    self.register(t, "weight" if w is not None else "const")
            return
        kind = _ATEN.get(base) or _ATEN.get(name)
        is_view = kind == "view" or (kind is None and getattr(func, "is_view", False)) or base in (
            "split", "split_with_sizes", "unbind", "chunk", "t", "transpose", "permute", "expand", "unsqueeze",
            "squeeze", "slice", "select", "as_strided", "narrow", "diagonal", "view_as", "unfold", "expand_as",
            "movedim", "swapaxes", "numpy_T", "real", "imag", "view_as_real", "view_as_complex")
        if is_view:
            kind = "view"
        outs: list[TensorRef] = []
        for t in out_tensors:
            same = next((r for a, r in zip(in_tensors, ins, strict=True) if a is t), None)
            if same is not None:  # in-place: a new version of the same buffer
                role = "act" if same.role != "weight" else "weight"
                outs.append(self.register(t, role, same.name, same.is_param, buffer=same.buffer))
            elif is_view:
                src = ins[0]
                outs.append(self.register(t, src.role, src.name, src.is_param, buffer=src.buffer))
            else:
                outs.append(self.register(t, "act"))
        module, module_type = self.module_stack[-1] if self.module_stack else ("", "")
        node = OpNode(len(self.nodes), str(func), kind or name, "", module, module_type, ins, outs)
        self._cost(node, base, args, kwargs)
        self.nodes.append(node)

    def _cost(self, node: OpNode, base: str, args, kwargs) -> None:
        kind = node.kind
        attrs: dict = {}
        ins = [r.shape for r in node.inputs]
        if kind == "conv":
            transposed = bool(args[6]) if len(args) > 6 else False
            attrs = {"stride": _pair_attr(args[3]) if len(args) > 3 else (1, 1),
                     "padding": _pair_attr(args[4]) if len(args) > 4 else (0, 0),
                     "dilation": _pair_attr(args[5]) if len(args) > 5 else (1, 1),
                     "transposed": transposed, "groups": int(args[8]) if len(args) > 8 else 1}
        elif kind in ("mm", "addmm", "aten_linear"):
            a_i, b_i = (1, 2) if kind == "addmm" else (0, 1)
            attrs = {"a": a_i, "b": b_i, "b_transposed": kind == "aten_linear"}
            operands = (node.inputs[a_i], node.inputs[b_i])
            kind = "linear" if any(r.role == "weight" for r in operands) else "matmul"
        elif kind in ("max_pool", "avg_pool"):
            attrs = {"kernel": _pair_attr(args[1])}
        elif kind == "adaptive_max_pool":
            i, o = node.inputs[0].shape, node.outputs[0].shape
            kind, attrs = "max_pool", {"kernel": tuple(-(-a // b) for a, b in zip(i[2:], o[2:], strict=False))}
        elif kind == "interp":
            attrs = {"mode": "nearest" if "nearest" in base else "bicubic" if "bicubic" in base
                     else "trilinear" if "trilinear" in base else "linear" if "linear1d" in base else "bilinear"}
        elif kind == "add" and kwargs.get("alpha", 1) != 1:
            kind = "add_alpha"
        elif kind == "dropout":
            kind = "mul"  # training-mode dropout: one multiply by the mask per element
        node.kind = kind
        node.attrs = attrs
        entry = TABLE.get(kind)
        if entry is None:
            node.op_type, node.supported = "unsupported", False
            self.unsupported[node.target] = self.unsupported.get(node.target, 0) + 1
            return
        cost: OpCost = entry.handler(ins, [r.shape for r in node.outputs], attrs)
        node.op_type = entry.op_type
        node.macs, node.flops, node.reads, node.writes = cost.macs, cost.flops, cost.reads, cost.writes


# Shape-preserving normalisations whose meta kernels are slow Python decompositions (batch norm: ~6 ms a call);
# on meta tensors their output is just an empty tensor like the input.
_NORMS = {F.batch_norm: "batch_norm", F.layer_norm: "layer_norm", F.group_norm: "group_norm",
          F.instance_norm: "instance_norm"}


class _FunctionCatcher(TorchFunctionMode):
    """Records F.scaled_dot_product_attention as one fused op (hiding its decomposition), and short-cuts
    normalisations on meta tensors."""

    def __init__(self, recorder: _Recorder, meta: bool):
        super().__init__()
        self.rec = recorder
        self.meta = meta

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.meta and func in _NORMS and not self.rec.suppress:
            return self._norm(_NORMS[func], args, kwargs)
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        self.rec.suppress += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self.rec.suppress -= 1
        mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
        tensors = [t for t in (*args[:3], mask) if isinstance(t, torch.Tensor)]
        ins = [self.rec.ref(t) for t in tensors]
        outs = [self.rec.register(out, "act")]
        module, module_type = self.rec.module_stack[-1] if self.rec.module_stack else ("", "")
        node = OpNode(len(self.rec.nodes), "scaled_dot_product_attention", "attention", "attention", module,
                      module_type, ins, outs, {"has_mask": mask is not None})
        cost = TABLE["attention"].handler([r.shape for r in ins], [outs[0].shape], node.attrs)
        node.macs, node.flops = cost.macs, cost.flops
        self.rec.nodes.append(node)
        return out

    def _norm(self, kind: str, args, kwargs):
        x = args[0]
        tensors = [t for t in _flatten(list(args[1:]), []) + _flatten(kwargs, []) if isinstance(t, torch.Tensor)]
        out = torch.empty_like(x)
        ins = [self.rec.ref(x)] + [self.rec.ref(t) for t in tensors]
        module, module_type = self.rec.module_stack[-1] if self.rec.module_stack else ("", "")
        node = OpNode(len(self.rec.nodes), f"F.{kind}", kind, "", module, module_type, ins,
                      [self.rec.register(out, "act")])
        self.rec._cost(node, kind, (), {})
        self.rec.nodes.append(node)
        return out


def capture_torch(model: nn.Module, inputs: Sequence[torch.Tensor] | None = None,
                  input_shape: Sequence[int] | None = None, mode: str = "auto", name: str = "") -> Graph:
    """Capture the inference op graph of ``model``.

    Args:
        model: any ``nn.Module``; it is put in eval mode for the capture and restored afterwards.
        inputs: example inputs; only their shapes and dtypes are used in meta mode.
        input_shape: shape of a single float input, used when ``inputs`` is not given.
        mode: ``meta`` (no arithmetic), ``real`` (one real forward pass) or ``auto`` (meta, then real on failure).
        name: label for reports.

    Raises:
        CaptureError: the model fails on this input (the message names the shape and the model's error).
    """
    if inputs is None:
        if input_shape is None:
            raise ValueError("give `inputs` or `input_shape`")
        inputs = (torch.zeros(tuple(int(d) for d in input_shape)),)
    inputs = tuple(inputs)
    if mode not in ("auto", "meta", "real"):
        raise ValueError(f"mode must be auto, meta or real, not {mode!r}")
    was_training = model.training
    model.eval()
    try:
        if mode in ("auto", "meta"):
            try:
                return _run(model, inputs, meta=True, name=name)
            except CaptureError:
                if mode == "meta":
                    raise
        return _run(model, inputs, meta=False, name=name)
    finally:
        model.train(was_training)


def _run(model: nn.Module, inputs: tuple[torch.Tensor, ...], meta: bool, name: str) -> Graph:
    names = {id(m): (n, type(m).__name__) for n, m in model.named_modules()}
    stack: list[tuple[str, str]] = []
    rec = _Recorder(stack, meta)
    state = {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers())}
    param_ids = {id(p) for p in model.parameters()}
    if meta:
        swapped = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
        run_inputs = tuple(torch.empty_like(x, device="meta") if isinstance(x, torch.Tensor) else x for x in inputs)
    else:
        swapped = state
        run_inputs = inputs
    seen: dict[int, TensorRef] = {}
    for k, v in swapped.items():
        is_param = id(state[k]) in param_ids
        if id(v) in seen:  # tied weights share one ref
            rec.refs[v] = seen[id(v)]
            continue
        seen[id(v)] = rec.register(v, "weight", k, is_param)
    input_refs = [rec.register(x, "input") for x in run_inputs if isinstance(x, torch.Tensor)]

    def pre(mod, _args):
        stack.append(names.get(id(mod), ("?", type(mod).__name__)))

    def post(mod, _args, _out):
        if stack:
            stack.pop()

    h1 = nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = nn.modules.module.register_module_forward_hook(post, always_call=True)
    try:
        with torch.no_grad(), _FunctionCatcher(rec, meta), rec:
            call = torch.func.functional_call if meta else None
            out = call(model, swapped, run_inputs, strict=False) if call else model(*run_inputs)
    except Exception as e:  # the model's own error, re-raised with the shape that caused it
        shapes = ", ".join("x".join(str(d) for d in x.shape) for x in inputs if isinstance(x, torch.Tensor))
        raise CaptureError(f"{name or type(model).__name__} failed on input {shapes}"
                           f"{' (meta tensors)' if meta else ''}: {type(e).__name__}: {e}") from e
    finally:
        h1.remove()
        h2.remove()
    outputs = [rec.ref(t) for t in _flatten(out, [])]
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return Graph(rec.nodes, input_refs, outputs, "torch", name or type(model).__name__, params,
                 "meta" if meta else "real")
