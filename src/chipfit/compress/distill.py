"""Knowledge distillation as training hooks: logits with temperature (Hinton et al. 2015) and, optionally, stage
features through 1x1 adapters (FitNets, Romero et al. 2015).

Loss added to the label loss: alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) on the same augmented batch the
student sees (the teacher in eval mode, no gradient), plus feature_weight * mean over stages of the MSE between the
adapted student stage output and the teacher's, both normalised per sample (so widths and scales do not matter);
the student map is resized to the teacher's when they differ. The adapters train with the student and are saved in
its checkpoints (``TrainHooks.modules``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.compress.config import DistillConfig
from chipfit.train.engine import TrainHooks


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """The loaded teacher network, frozen (no gradients), in eval mode; returns it (changed in place).

    Loading it from a checkpoint is the loader's job (``chipfit.load.load_model(path).module``).
    """
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"the teacher must be a loaded network (torch.nn.Module), got {type(teacher).__name__}: "
                        "load it with chipfit.load.load_model(path).module")
    for q in teacher.parameters():
        q.requires_grad_(False)
    return teacher.eval()


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t / T) || softmax(s / T)), averaged over the batch."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1), log_target=True,
                    reduction="batchmean") * t * t


def _stages(model: nn.Module) -> list[nn.Module]:
    stages = getattr(model, "stages", None)
    if stages is None:
        raise ValueError(f"feature distillation needs chipfit networks with .stages; {type(model).__name__} has none "
                         "(use feature_weight=0 for logits only)")
    return list(stages)


class _Recorder:
    """Keeps the last output of each module; ``remove()`` takes its hooks off the network again."""

    def __init__(self, modules: list[nn.Module]):
        self.out: list[torch.Tensor | None] = [None] * len(modules)
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(modules)]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles, self.out = [], [None] * len(self.out)

    def _hook(self, i: int):
        def hook(_m, _inp, out):
            self.out[i] = out
        return hook


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.flatten(1), dim=1)


def distill_hooks(student: nn.Module, teacher: nn.Module, cfg: DistillConfig,
                  example_input: torch.Tensor) -> TrainHooks:
    """Hooks for ``chipfit.train.fit`` that add the distillation terms of ``cfg``."""
    teacher.eval()
    adapters = None
    recorders: list[_Recorder] = []
    if cfg.feature_weight > 0:
        s_stages, t_stages = _stages(student), _stages(teacher)
        s_rec, t_rec = _Recorder(s_stages), _Recorder(t_stages)
        recorders = [s_rec, t_rec]
        with torch.no_grad():
            was = student.training
            student.eval()
            student(example_input)
            teacher(example_input)
            student.train(was)
        # pair each student stage with the teacher's last stage at the same map size (the nearest size otherwise)
        t_sizes = [t.shape[-1] for t in t_rec.out]
        pairs = []
        for s in s_rec.out:
            same = [i for i, h in enumerate(t_sizes) if h == s.shape[-1]]
            pairs.append(same[-1] if same else min(range(len(t_sizes)), key=lambda i: abs(t_sizes[i] - s.shape[-1])))
        adapters = nn.ModuleList(nn.Conv2d(s.shape[1], t_rec.out[j].shape[1], 1)
                                 for s, j in zip(s_rec.out, pairs, strict=True))

    def extra_loss(x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: ARG001
        with torch.no_grad():
            t_logits = teacher(x)
        loss = cfg.alpha * kd_loss(logits, t_logits, cfg.temperature)
        if adapters is not None:
            feats = []
            for a, s, j in zip(adapters, s_rec.out, pairs, strict=True):
                t = t_rec.out[j]
                f = a(s)
                if f.shape[-2:] != t.shape[-2:]:
                    f = F.interpolate(f, size=t.shape[-2:], mode="bilinear", align_corners=False)
                feats.append(F.mse_loss(_norm(f), _norm(t.detach()), reduction="sum") / len(x))
            loss = loss + cfg.feature_weight * torch.stack(feats).mean()
        return loss

    def close() -> None:
        for r in recorders:
            r.remove()

    return TrainHooks(extra_loss=extra_loss, modules=adapters, close=close)
