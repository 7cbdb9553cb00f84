"""A weight-sharing supernet of a search space, trained once; a candidate's accuracy from inherited weights.

One :class:`Supernet` holds every architecture of a :class:`~chipfit.nas.space.SearchSpace`:

- **Widths** share by channel prefix: a layer is stored at the stage's largest width and a narrower choice uses the
  first channels of it (OFA's channel sorting without the sort).
- **Kernels** share by centre crop: a slot stores the largest kernel of each op kind and a 3x3 choice uses the
  centre 3x3 of the 7x7 (Cai et al., Once-for-All, ICLR 2020). Expansions share the first hidden channels.
- **Ops of different kinds** (quadra, conv, skip, convnext, mbv2) keep apart weights per slot: a plain depthwise
  conv and a quadratic one are different functions.
- **BatchNorm** (MBConv spaces) uses batch statistics while training; before a candidate is evaluated its
  statistics are re-estimated on a few training batches (:meth:`Supernet.recalibrate`), as SPOS does; until then
  evaluation uses batch statistics too. LayerNorm (metaformer spaces) needs none.

Training is single-path uniform sampling (Guo et al., SPOS, ECCV 2020): every training step draws one architecture
uniformly from the space (torch's RNG, so a resumed run draws the same sequence) and updates its weights only. It
runs through :func:`chipfit.train.fit` like any model: resumable, under ``torchrun``, with the same progress and
checkpoints. ``.config`` is the space, so a checkpoint is refused for another space.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.nas.space import Arch, Op, SearchSpace, SpaceError

SHARED_KINDS = ("quadra", "conv", "skip", "convnext", "mbv2")


def _crop(w: torch.Tensor, k: int) -> torch.Tensor:
    """The centre k x k of a (..., K, K) kernel."""
    off = (w.shape[-1] - k) // 2
    return w[..., off:off + k, off:off + k] if off else w


def _hidden(width: int, expansion: float) -> int:
    return max(int(round(width * expansion)), 1)


class SlicedLayerNorm(nn.Module):
    """LayerNorm over the first ``c`` channels of a channels-first map (``c`` = the input's channels)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        y = F.layer_norm(x.permute(0, 2, 3, 1), (c,), self.weight[:c], self.bias[:c], self.eps)
        return y.permute(0, 3, 1, 2)


class SlicedBatchNorm(nn.Module):
    """BatchNorm over the first ``c`` channels. Training: batch statistics, nothing stored (the stored ones would
    mix candidates). Calibration: batch statistics, averaged into the running ones with equal weight per batch
    (``momentum=None``). Evaluation: the running ones."""

    calibrating = False

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))
        self.eps = eps

    def reset(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.batches.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        w, b = self.weight[:c], self.bias[:c]
        if self.calibrating:
            with torch.no_grad():
                n = int(self.batches)
                mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)
                self.running_mean[:c] = (self.running_mean[:c] * n + mean) / (n + 1) if n else mean
                self.running_var[:c] = (self.running_var[:c] * n + var) / (n + 1) if n else var
            return F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)
        if self.training or not int(self.batches):  # never calibrated (e.g. the training run's validation)
            return F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], w, b, False, 0.0, self.eps)


class SharedConv(nn.Module):
    """A conv stored at its largest shape (out, in / groups, K, K); a call takes the first out/in channels and the
    centre k x k. ``depthwise``: groups = the channels of the input."""

    def __init__(self, cin: int, cout: int, kernel: int, *, bias: bool, depthwise: bool = False):
        super().__init__()
        self.depthwise = depthwise
        self.weight = nn.Parameter(torch.empty(cout, 1 if depthwise else cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, x: torch.Tensor, cout: int | None = None, k: int | None = None, stride: int = 1,
                padding: int | None = None) -> torch.Tensor:
        cin = x.shape[1]
        k = k or self.weight.shape[-1]
        if self.depthwise:
            cout, w = cin, _crop(self.weight[:cin], k)
        else:
            cout = cout or self.weight.shape[0]
            w = _crop(self.weight[:cout, :cin], k)
        b = self.bias[:cout] if self.bias is not None else None
        pad = k // 2 if padding is None else padding
        return F.conv2d(x, w, b, stride, pad, groups=cin if self.depthwise else 1)


class SharedQuadraDW(nn.Module):
    """The QuadraBlock's depthwise quadratic conv a(x) * b(x) + c(x), stored at the largest kernel."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.a, self.b, self.c = (SharedConv(channels, channels, kernel, bias=True, depthwise=True) for _ in range(3))

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.a(x, k=k) * self.b(x, k=k) + self.c(x, k=k)


class SharedMetaBlock(nn.Module):
    """Every metaformer op of one kind in one slot: QuadraBlock / ConvBlock / SkipBlock (two residual halves) or a
    ConvNeXt block (one), at the stage's largest width, kernel and expansion (see ``chipfit.models.blocks``)."""

    def __init__(self, kind: str, width: int, kernel: int, expansion: float, layer_scale: float):
        super().__init__()
        self.kind = kind
        hidden = _hidden(width, expansion)
        if kind == "quadra":
            self.mixer: nn.Module | None = SharedQuadraDW(width, kernel)
        elif kind in ("conv", "convnext"):
            self.mixer = SharedConv(width, width, kernel, bias=True, depthwise=True)
        else:
            self.mixer = None
        self.norm1 = SlicedLayerNorm(width) if kind != "convnext" else None
        self.norm2 = SlicedLayerNorm(width)
        self.pw1 = SharedConv(width, hidden, 1, bias=True)
        self.pw2 = SharedConv(hidden, width, 1, bias=True)
        self.gamma1 = nn.Parameter(torch.full((width,), layer_scale)) if layer_scale > 0 and kind != "convnext" \
            else None
        self.gamma2 = nn.Parameter(torch.full((width,), layer_scale)) if layer_scale > 0 else None

    @staticmethod
    def _scale(g: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        return y if g is None else y * g[: y.shape[1]].view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor, op: Op) -> torch.Tensor:
        c, hidden = x.shape[1], _hidden(x.shape[1], op.expansion)
        if self.kind == "convnext":
            y = self.pw2(F.gelu(self.pw1(self.norm2(self.mixer(x, k=op.kernel_size)), hidden)), c)
            return x + self._scale(self.gamma2, y)
        y = self.norm1(x)
        if self.mixer is not None:
            y = self.mixer(y, k=op.kernel_size)
        x = x + self._scale(self.gamma1, y)
        return x + self._scale(self.gamma2, self.pw2(F.gelu(self.pw1(self.norm2(x), hidden)), c))


class SharedMBConv(nn.Module):
    """Every MBConv op of one slot: 1x1 expand (BN, ReLU6; absent at expansion 1), k x k depthwise with the slot's
    stride (BN, ReLU6), 1x1 project (BN), residual at stride 1 with equal widths."""

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        self.stride = stride
        self.expand = SharedConv(cin, hidden, 1, bias=False)
        self.bn1 = SlicedBatchNorm(hidden)
        self.dw = SharedConv(hidden, hidden, kernel, bias=False, depthwise=True)
        self.bn2 = SlicedBatchNorm(hidden)
        self.project = SharedConv(hidden, cout, 1, bias=False)
        self.bn3 = SlicedBatchNorm(cout)

    def forward(self, x: torch.Tensor, op: Op, cout: int) -> torch.Tensor:
        cin, t = x.shape[1], int(op.expansion)
        y = x if t == 1 else F.relu6(self.bn1(self.expand(x, cin * t)))
        y = F.relu6(self.bn2(self.dw(y, k=op.kernel_size, stride=self.stride)))
        y = self.bn3(self.project(y, cout))
        return x + y if self.stride == 1 and cin == cout else y


def _kinds(ops: Iterable[Op]) -> dict[str, tuple[int, float]]:
    """Per op kind of a slot: the largest kernel and expansion it needs."""
    out: dict[str, tuple[int, float]] = {}
    for o in ops:
        if o.is_identity:
            continue
        if o.kind not in SHARED_KINDS:
            raise SpaceError(f"the supernet shares weights for the op kinds {', '.join(SHARED_KINDS)}; "
                             f"{o.label()!r} has none (search it with a space of those kinds)")
        k, e = out.get(o.kind, (1, 0.0))
        out[o.kind] = (max(k, o.kernel_size), max(e, float(o.expansion)))
    return out


class Supernet(nn.Module):
    """All networks of ``space`` in one module (see the module docstring).

    ``set_arch(arch)`` fixes the architecture the forward pass runs; ``set_arch(None)`` (the default) samples one
    per forward pass in training mode and runs the largest in evaluation mode.
    """

    find_unused_parameters = True  # every step trains one path: DistributedDataParallel must expect unused weights

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.config = space  # what checkpoints identify the model by
        self._arch: Arch | None = None
        fam = space.family
        w_max = [max(st.widths) for st in space.stages]
        stem_max = space.stem_channels or (w_max[0] if fam == "metaformer" else 32)
        k, s = space.stem_kernel, space.stem_stride
        self._stem_pad = ((k - s + 1) // 2 if k > s else 0) if fam == "metaformer" else k // 2
        self.stem = SharedConv(space.in_chans, stem_max, k, bias=fam == "metaformer")
        self.stem_norm: nn.Module = SlicedLayerNorm(stem_max) if fam == "metaformer" else SlicedBatchNorm(stem_max)
        self.entries = nn.ModuleList()
        self.slots = nn.ModuleList()
        cin_max = stem_max
        for st, wm in zip(space.stages, w_max, strict=True):
            if fam == "metaformer":
                kern = 2 if st.stride == 2 else 1
                self.entries.append(nn.ModuleDict({"norm": SlicedLayerNorm(cin_max),
                                                   "conv": SharedConv(cin_max, wm, kern, bias=True)}))
            else:
                self.entries.append(nn.Module())
            stage_slots = nn.ModuleList()
            for j in range(st.slots):
                kinds = _kinds(st.slot_ops(j))
                if fam == "metaformer":
                    stage_slots.append(nn.ModuleDict({kind: SharedMetaBlock(kind, wm, kk, e, space.layer_scale)
                                                      for kind, (kk, e) in kinds.items()}))
                else:
                    cin = cin_max if j == 0 else wm
                    stage_slots.append(nn.ModuleDict({kind: SharedMBConv(cin, wm, kk, int(e), st.stride if j == 0
                                                                         else 1) for kind, (kk, e) in kinds.items()}))
            self.slots.append(stage_slots)
            cin_max = wm
        if fam == "metaformer":
            self.head_norm: nn.Module = SlicedLayerNorm(cin_max)
            self.head_conv = None
            head = cin_max
        else:
            head = space.head_channels or 1280
            self.head_conv = SharedConv(cin_max, head, 1, bias=False)
            self.head_norm = SlicedBatchNorm(head)
        self.fc = nn.Linear(head, space.num_classes)
        self._init()

    def _init(self) -> None:
        metaformer = self.space.family == "metaformer"
        for m in self.modules():
            if isinstance(m, SharedConv):
                if metaformer:
                    nn.init.trunc_normal_(m.weight, std=0.02)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if metaformer:
            nn.init.trunc_normal_(self.fc.weight, std=0.02)
        else:
            nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    # --- which path runs -------------------------------------------------------------------------------------------

    def set_arch(self, arch: Arch | None) -> Supernet:
        if arch is not None:
            self.space.check(arch)
        self._arch = arch
        return self

    def sample_arch(self) -> Arch:
        """A uniform draw from torch's RNG (so a resumed training run draws the same sequence)."""
        def pick(n: int) -> int:
            return int(torch.randint(n, ())) if n > 1 else 0

        sp = self.space
        return Arch(tuple(pick(len(st.widths)) for st in sp.stages),
                    tuple(tuple(pick(len(st.slot_ops(j))) for j in range(st.slots)) for st in sp.stages),
                    pick(len(sp.input_sizes)))

    def current_arch(self) -> Arch:
        if self._arch is not None:
            return self._arch
        return self.sample_arch() if self.training else self.space.largest()

    # --- the forward pass, in parts (the gradient strategy runs the slots itself) ----------------------------------

    def stem_forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        sp = self.space
        size = sp.input_size(arch)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        c0 = sp.stem_channels or sp.widths_of(arch)[0]
        y = self.stem_norm(self.stem(x, c0, stride=sp.stem_stride, padding=self._stem_pad))
        return y if sp.family == "metaformer" else F.relu6(y)

    def enter_stage(self, i: int, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """The stage's downsampler (metaformer: LayerNorm + 2x2 conv stride 2, or a 1x1 projection when the width
        changes at stride 1). MBConv stages stride in their first block."""
        st, w = self.space.stages[i], self.space.widths_of(arch)[i]
        if self.space.family != "metaformer" or (st.stride == 1 and x.shape[1] == w):
            return x
        e = self.entries[i]
        return e["conv"](e["norm"](x), w, stride=st.stride, padding=0)

    def slot_forward(self, i: int, j: int, op: Op, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        if op.is_identity:
            return x
        m = self.slots[i][j][op.kind]
        if self.space.family == "metaformer":
            return m(x, op)
        return m(x, op, self.space.widths_of(arch)[i])

    def head_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head_conv is not None:
            x = F.relu6(self.head_norm(self.head_conv(x)))
            return self.fc(x.mean((2, 3)))
        p, c, n = x.mean((2, 3)), x.shape[1], self.head_norm
        p = F.layer_norm(p, (c,), n.weight[:c], n.bias[:c], n.eps)
        return F.linear(p, self.fc.weight[:, :c], self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch = self.current_arch()
        ops = self.space.ops_of(arch)
        x = self.stem_forward(x, arch)
        for i in range(len(self.space.stages)):
            x = self.enter_stage(i, x, arch)
            for j, op in enumerate(ops[i]):
                x = self.slot_forward(i, j, op, x, arch)
        return self.head_forward(x)

    # --- evaluating a candidate ------------------------------------------------------------------------------------

    def has_batchnorm(self) -> bool:
        return any(isinstance(m, SlicedBatchNorm) for m in self.modules())

    @torch.no_grad()
    def recalibrate(self, arch: Arch, batches: Iterable[torch.Tensor]) -> int:
        """Re-estimate the BatchNorm statistics of ``arch`` on ``batches`` of images; returns the batches used (0
        when the space has no BatchNorm)."""
        bns = [m for m in self.modules() if isinstance(m, SlicedBatchNorm)]
        if not bns:
            return 0
        for m in bns:
            m.reset()
            m.calibrating = True
        prev, was = self._arch, self.training
        self.set_arch(arch)
        self.train()
        n = 0
        try:
            for x in batches:
                self(x)
                for m in bns:
                    if m.calibrating:
                        m.batches += 1
                n += 1
        finally:
            for m in bns:
                m.calibrating = False
            self._arch = prev
            self.train(was)
        return n


def estimate_accuracy(net: Supernet, arch: Arch, data: Any, *, n_val: int = 2000, calib_batches: int = 4,
                      batch_size: int = 256, split: str = "val") -> float:
    """Top-1 accuracy of ``arch`` with the supernet's weights on the first ``n_val`` images of ``split``, after
    re-estimating its BatchNorm statistics on ``calib_batches`` training batches (the same batches every call, so
    candidates are compared on equal terms)."""
    if net.has_batchnorm():
        g = torch.Generator().manual_seed(0)
        it = data.batches("train", batch_size, train=False, generator=g)
        net.recalibrate(arch, (x for _, (x, _y) in zip(range(calib_batches), it, strict=False)))
    prev, was = net._arch, net.training
    net.set_arch(arch)
    net.eval()
    correct = seen = 0
    try:
        with torch.no_grad():
            for x, y in data.batches(split, batch_size):
                if seen >= n_val:
                    break
                take = min(len(y), n_val - seen)
                out = net(x[:take])
                correct += int((out.argmax(1) == y[:take]).sum())
                seen += take
    finally:
        net._arch = prev
        net.train(was)
    if not seen:
        raise ValueError(f"the {split!r} split of {getattr(data, 'name', 'the data')} holds no images")
    return correct / seen


def extract(net: Supernet, arch: Arch) -> nn.Module:
    """The zoo network of ``arch`` (``build_model(space.expand(arch))``) holding the supernet's weights for it:
    sliced to its widths, kernels cropped, BatchNorm statistics as last recalibrated. Its output equals the
    supernet's on that path, so it can be costed, exported or fine-tuned like any zoo network."""
    from chipfit.models.build import build_model

    sp = net.space
    model = build_model(sp.expand(arch))
    model.train(net.training)
    meta = sp.family == "metaformer"
    stem, stages = model.stem, list(model.stages)
    with torch.no_grad():
        _put_conv(stem[0], net.stem)
        _put_norm(stem[1], net.stem_norm)
        if not meta:
            head_conv = stages.pop()  # the 1x1 conv to head_channels closes the mobilenetv2 stages
            _put_conv(head_conv[0], net.head_conv)
            _put_norm(head_conv[1], net.head_norm)
        zoo = [m for stage in stages for m in stage]
        widths, ops = sp.widths_of(arch), sp.ops_of(arch)
        cin = sp.stem_channels or widths[0]
        for i, st in enumerate(sp.stages):
            if meta and (st.stride == 2 or cin != widths[i]):
                entry = zoo.pop(0)
                _put_norm(entry[0], net.entries[i]["norm"])
                _put_conv(entry[1], net.entries[i]["conv"])
            for j, op in enumerate(ops[i]):
                if not op.is_identity:
                    _put_block(zoo.pop(0), net.slots[i][j][op.kind], op)
            cin = widths[i]
        assert not zoo, f"extract: {len(zoo)} zoo modules left unmatched"
        if meta:
            _put_norm(model.head.norm, net.head_norm)
        model.head.fc.weight.copy_(net.fc.weight[:, : model.head.fc.in_features])
        model.head.fc.bias.copy_(net.fc.bias)
    return model


def _put_conv(dst: nn.Module, src: SharedConv) -> None:
    """Copy a shared conv's slice into a zoo conv (nn.Conv2d, or the three filters of a quadratic one)."""
    out, inn, k = dst.weight.shape[0], dst.weight.shape[1], dst.weight.shape[-1]
    dst.weight.copy_(_crop(src.weight[:out, :inn], k))
    if dst.bias is not None:
        dst.bias.copy_(src.bias[:out])


def _put_norm(dst: nn.Module, src: nn.Module) -> None:
    c = dst.weight.shape[0]
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    if isinstance(dst, nn.BatchNorm2d):
        dst.running_mean.copy_(src.running_mean[:c])
        dst.running_var.copy_(src.running_var[:c])


def _put_block(dst: nn.Module, src: nn.Module, op: Op) -> None:
    if isinstance(src, SharedMBConv):
        body = list(dst.body)
        if int(op.expansion) != 1:
            e = body.pop(0)
            _put_conv(e[0], src.expand)
            _put_norm(e[1], src.bn1)
        (dw, bn2), (pj, bn3) = body[0][:2], body[1][:2]
        for d, s in ((dw, src.dw), (pj, src.project)):
            _put_conv(d, s)
        _put_norm(bn2, src.bn2)
        _put_norm(bn3, src.bn3)
        return
    if src.kind == "quadra":
        for name in ("a", "b", "c"):
            shared = getattr(src.mixer, name)
            k = dst.mixer.weight_a.shape[-1]
            c = dst.mixer.weight_a.shape[0]
            getattr(dst.mixer, f"weight_{name}").copy_(_crop(shared.weight[:c], k))
            getattr(dst.mixer, f"bias_{name}").copy_(shared.bias[:c])
    elif src.kind == "conv":
        _put_conv(dst.mixer, src.mixer)
    elif src.kind == "convnext":
        _put_conv(dst.dwconv, src.mixer)
    if src.norm1 is not None:
        _put_norm(dst.norm1, src.norm1)
    _put_norm(dst.norm2 if src.kind != "convnext" else dst.norm, src.norm2)
    _put_conv(dst.pw1, src.pw1)
    _put_conv(dst.pw2, src.pw2)
    for g_name, shared in (("gamma1", src.gamma1), ("gamma2", src.gamma2 if src.kind != "convnext" else None),
                           ("gamma", src.gamma2 if src.kind == "convnext" else None)):
        if shared is not None and hasattr(dst, g_name) and hasattr(getattr(dst, g_name), "gamma"):
            g = getattr(dst, g_name).gamma
            g.copy_(shared[: g.shape[0]].view_as(g))


def train_supernet(space: SearchSpace, data: Any, cfg: Any) -> Any:
    """Train the supernet of ``space`` on ``data`` with :func:`chipfit.train.fit` (``cfg``: a ``TrainConfig``; its
    ``out`` holds ``last.pt`` / ``best.pt``, ``resume`` continues). Returns the ``TrainResult`` (its ``.model`` is
    the supernet; validation and test accuracy are those of the largest architecture)."""
    from chipfit.train import fit

    return fit(Supernet(space), data, cfg)


def load_supernet(path: str | Any) -> Supernet:
    """A supernet from a checkpoint ``train_supernet`` wrote (``last.pt`` or ``best.pt``), its space read from it.

    Raises:
        CheckpointError: the file is not a supernet checkpoint, naming it.
    """
    import json

    from chipfit.train.checkpoint import CheckpointError, check_weights, load_checkpoint

    state = load_checkpoint(path)
    spec = json.loads(state["model_spec"])
    if spec.get("class") != "Supernet" or not isinstance(spec.get("config"), dict):
        raise CheckpointError(f"{path}: holds a {spec.get('name') or spec.get('class')}, not a search supernet "
                              "(train one with chipfit search --supernet-epochs N)")
    try:
        space = SearchSpace.from_dict(spec["config"])
    except SpaceError as e:
        raise CheckpointError(f"{path}: its search space does not load ({e})") from None
    net = Supernet(space)
    check_weights(net, state["model"], path)
    net.load_state_dict(state["model"])
    return net


__all__ = ["SHARED_KINDS", "Supernet", "estimate_accuracy", "extract", "load_supernet", "train_supernet"]
