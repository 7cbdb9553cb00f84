"""FCOS targets on hand-made boxes, the FCOS loss (finite, zero-positive images, GIoU 0 for a perfect box, falls
under gradient descent), and the segmentation loss against plain cross-entropy, OHEM and auxiliary heads."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.train.dense import default_ranges, fcos_loss, fcos_targets, segmentation_loss


def points(h: int, w: int, strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres of every cell of every level, finest first (as a detector's ``points(h, w)``)."""
    xy, st = [], []
    for s in strides:
        ys, xs = torch.meshgrid(torch.arange(0, h, s) + s / 2, torch.arange(0, w, s) + s / 2, indexing="ij")
        xy.append(torch.stack([xs.flatten(), ys.flatten()], 1))
        st.append(torch.full((xs.numel(),), s))
    return torch.cat(xy).float(), torch.cat(st)


def _at(xy: torch.Tensor, x: float, y: float, stride: int | None = None, strides: torch.Tensor | None = None) -> int:
    hit = (xy[:, 0] == x) & (xy[:, 1] == y)
    if stride is not None:
        hit &= strides == stride
    return int(hit.nonzero().item())


# ---- targets ---------------------------------------------------------------------------------------------------


def test_default_ranges():
    assert default_ranges([8, 16, 32, 64, 128]) == [(0, 64), (64, 128), (128, 256), (256, 512), (512, math.inf)]
    assert default_ranges(torch.tensor([8, 8, 32])) == [(0, 64), (64, math.inf)]  # no gap between levels
    assert default_ranges([16]) == [(0, math.inf)]


def test_one_box_positive_points():
    xy, st = points(32, 32, (8,))
    t = fcos_targets(xy, st, torch.tensor([[0.0, 0, 24, 24]]), torch.tensor([2]))
    # inside the box and within 1.5 strides (12 px) of its centre (12, 12): x, y in {4, 12, 20}
    pos = {(float(x), float(y)) for x, y in xy[t.cls >= 0]}
    assert pos == {(x, y) for x in (4.0, 12.0, 20.0) for y in (4.0, 12.0, 20.0)}
    assert set(t.cls[t.cls >= 0].tolist()) == {2} and set(t.gt_index[t.cls >= 0].tolist()) == {0}
    c = _at(xy, 12, 12)
    assert t.box[c].tolist() == [12, 12, 12, 12] and t.ctr[c].item() == pytest.approx(1.0)
    corner = _at(xy, 4, 4)
    assert t.box[corner].tolist() == [4, 4, 20, 20]
    assert t.ctr[corner].item() == pytest.approx(math.sqrt(4 / 20 * 4 / 20))
    bg = t.cls < 0
    assert (t.box[bg] == 0).all() and (t.ctr[bg] == 0).all() and (t.gt_index[bg] == -1).all()


def test_level_ranges_choose_the_level():
    xy, st = points(128, 128, (8, 16))  # ranges (0, 64] and (64, inf)
    small = fcos_targets(xy, st, torch.tensor([[0.0, 0, 24, 24]]), torch.tensor([0]))
    assert set(st[small.cls >= 0].tolist()) == {8}
    big = fcos_targets(xy, st, torch.tensor([[0.0, 0, 128, 128]]), torch.tensor([0]))
    assert set(st[big.cls >= 0].tolist()) == {16}  # max(l, t, r, b) > 64 near the centre
    both = fcos_targets(xy, st, torch.tensor([[0.0, 0, 128, 128]]), torch.tensor([0]), ranges=[(0, 1e9), (0, 1e9)])
    assert set(st[both.cls >= 0].tolist()) == {8, 16}
    with pytest.raises(ValueError, match="ranges for 2 distinct strides"):
        fcos_targets(xy, st, torch.tensor([[0.0, 0, 24, 24]]), torch.tensor([0]), ranges=[(0, 64)])


def test_tiny_box_gets_a_point():
    xy, st = points(32, 32, (8, 16))
    # no point lies inside (5, 5, 7, 7): the point nearest its centre (6, 6), on the stride-8 level, takes it
    t = fcos_targets(xy, st, torch.tensor([[5.0, 5, 7, 7]]), torch.tensor([1]))
    assert (t.cls >= 0).sum() == 1
    p = _at(xy, 4, 4, 8, st)
    assert t.cls[p] == 1 and t.box[p].tolist() == [-1, -1, 3, 3] and t.ctr[p] == 1.0
    # a point inside a tiny box is an ordinary positive
    t = fcos_targets(xy, st, torch.tensor([[3.0, 3, 6, 6]]), torch.tensor([0]))
    assert (t.cls >= 0).sum() == 1 and t.box[p].tolist() == [1, 1, 2, 2] and t.ctr[p] == pytest.approx(0.5)
    # a thin box between the rows of points: the level for max(w, h) / 2 = 30, nearest to its centre (30, 10)
    t = fcos_targets(xy, st, torch.tensor([[0.0, 9, 60, 11]]), torch.tensor([0]))
    assert (t.cls >= 0).sum() == 1 and t.cls[_at(xy, 28, 12, 8, st)] == 0


def test_overlap_smaller_box_wins():
    xy, st = points(32, 32, (8,))
    boxes = torch.tensor([[0.0, 0, 32, 32], [8, 8, 24, 24]])
    t = fcos_targets(xy, st, boxes, torch.tensor([0, 1]))
    for x, y in [(12, 12), (12, 20), (20, 12), (20, 20)]:  # inside both: the small box
        assert t.cls[_at(xy, x, y)] == 1 and t.gt_index[_at(xy, x, y)] == 1
    # the big box's candidates (within 12 px of (16, 16)) all went to the small one: it takes the free point of its
    # level nearest its centre, (12, 4) (first of four at equal distance)
    assert (t.gt_index == 0).nonzero().flatten().tolist() == [_at(xy, 12, 4)]
    assert t.cls[_at(xy, 12, 4)] == 0 and t.box[_at(xy, 12, 4)].tolist() == [12, 4, 20, 28]


def test_no_boxes_all_background():
    xy, st = points(16, 16, (8,))
    t = fcos_targets(xy, st, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert (t.cls == -1).all() and (t.box == 0).all() and (t.ctr == 0).all()
    with pytest.raises(ValueError, match="x2 < x1"):
        fcos_targets(xy, st, torch.tensor([[10.0, 0, 5, 5]]), torch.tensor([0]))


# ---- FCOS loss -------------------------------------------------------------------------------------------------


def _outputs(b: int, a: int, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"cls": torch.randn(b, a, k, generator=g, requires_grad=True),
            "box": (torch.rand(b, a, 4, generator=g) * 10 + 1).requires_grad_(),
            "ctr": torch.randn(b, a, generator=g, requires_grad=True)}


def test_loss_finite_and_backward():
    xy, st = points(32, 32, (8, 16))
    out = _outputs(2, len(xy), 3)
    boxes = [torch.tensor([[0.0, 0, 24, 24], [5, 5, 7, 7]]), torch.tensor([[4.0, 8, 30, 31]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    r = fcos_loss(out, xy, st, boxes, labels, 3)
    assert all(math.isfinite(r[k].item()) for k in ("loss", "cls", "box", "ctr"))
    assert r["num_pos"] > 2
    assert r["loss"].item() == pytest.approx((r["cls"] + r["box"] + r["ctr"]).item())
    r["loss"].backward()
    assert all(torch.isfinite(out[k].grad).all() for k in out)
    with pytest.raises(ValueError, match="labels reach 3"):
        fcos_loss(out, xy, st, boxes, [torch.tensor([0, 3]), torch.tensor([1])], 3)


def test_zero_positive_batch_has_only_the_focal_term():
    xy, st = points(32, 32, (8,))
    out = _outputs(2, len(xy), 3)
    none = [torch.zeros(0, 4)] * 2
    r = fcos_loss(out, xy, st, none, [torch.zeros(0, dtype=torch.long)] * 2, 3)
    assert r["num_pos"] == 0 and r["box"].item() == 0.0 and r["ctr"].item() == 0.0
    p = torch.sigmoid(out["cls"])
    focal = (0.75 * p**2 * -torch.log(1 - p)).sum()  # all targets 0: (1 - alpha) p^gamma (-log(1 - p)), / max(0, 1)
    assert r["loss"].item() == pytest.approx(focal.item(), rel=1e-5)
    r["loss"].backward()
    assert out["box"].grad is not None and (out["box"].grad == 0).all()


def test_giou_loss_zero_for_perfect_box():
    xy, st = points(32, 32, (8, 16))
    boxes, labels = torch.tensor([[0.0, 0, 24, 24], [5, 5, 7, 7]]), torch.tensor([0, 1])
    t = fcos_targets(xy, st, boxes, labels)
    out = _outputs(1, len(xy), 2)
    out["box"] = t.box[None].clone()  # the forced point's negative distances decode to the box all the same
    r = fcos_loss(out, xy, st, [boxes], [labels], 2)
    assert r["box"].item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_descent_lowers_the_loss():
    torch.manual_seed(0)
    xy, st = points(32, 32, (8, 16))
    a, k = len(xy), 2
    feats = torch.randn(2, a, 16)  # fixed per-point features of two images
    head = nn.Linear(16, k + 4 + 1)
    nn.init.constant_(head.bias[:k], -math.log(99))  # FCOS's prior: p = 0.01
    boxes = [torch.tensor([[0.0, 0, 20, 20]]), torch.tensor([[8.0, 12, 32, 30], [2, 2, 9, 9]])]
    labels = [torch.tensor([0]), torch.tensor([1, 0])]
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    losses = []
    for _ in range(50):
        z = head(feats)
        out = {"cls": z[..., :k], "box": z[..., k:k + 4].exp() * st[:, None].float(), "ctr": z[..., -1]}
        r = fcos_loss(out, xy, st, boxes, labels, k)
        opt.zero_grad()
        r["loss"].backward()
        opt.step()
        losses.append(r["loss"].item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0]


# ---- segmentation loss -----------------------------------------------------------------------------------------


def _seg(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    masks = torch.randint(0, 4, (2, 8, 8), generator=g)
    masks[0, :2] = 255
    return logits, masks


def test_segmentation_loss_is_cross_entropy_with_ignore():
    logits, masks = _seg()
    r = segmentation_loss(logits, masks)
    assert r["loss"].item() == pytest.approx(F.cross_entropy(logits, masks, ignore_index=255).item())
    assert r["aux"].item() == 0.0
    all_ignored = torch.full_like(masks, 255)
    z = segmentation_loss(logits, all_ignored)["loss"]
    assert z.item() == 0.0
    z.backward()
    assert logits.grad is not None


def test_ohem_keeps_the_hardest_pixels():
    logits, masks = _seg()
    per_pixel = F.cross_entropy(logits, masks, ignore_index=255, reduction="none")[masks != 255]
    n = per_pixel.numel()
    top = per_pixel.sort(descending=True).values
    r = segmentation_loss(logits, masks, ohem_fraction=0.25, ohem_thresh=None)
    assert r["loss"].item() == pytest.approx(top[: int(0.25 * n)].mean().item())
    # with a threshold, every pixel below probability 0.7 counts when they are more than the fraction
    hard = per_pixel[per_pixel > -math.log(0.7)]
    assert hard.numel() > n // 16
    r = segmentation_loss(logits, masks, ohem_fraction=1 / 16, ohem_thresh=0.7)
    assert r["loss"].item() == pytest.approx(hard.mean().item())
    with pytest.raises(ValueError, match="fraction"):
        segmentation_loss(logits, masks, ohem_fraction=0.0)


def test_auxiliary_heads_are_resized_and_weighted():
    logits, masks = _seg()
    aux = torch.randn(2, 4, 4, 4, requires_grad=True)  # a coarser head
    r = segmentation_loss(logits, masks, aux=[aux], aux_weight=0.4)
    up = F.interpolate(aux, size=(8, 8), mode="bilinear", align_corners=False)
    expect_aux = F.cross_entropy(up, masks, ignore_index=255)
    assert r["aux"].item() == pytest.approx(expect_aux.item())
    assert r["loss"].item() == pytest.approx((r["main"] + 0.4 * expect_aux).item())
    r["loss"].backward()
    assert aux.grad is not None and logits.grad is not None
