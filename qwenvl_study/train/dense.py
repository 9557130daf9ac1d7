"""Stage 0v: the ViT's own pretraining, standing for the pretrained vision tower the paper starts from.

Qwen2-VL does not train its ViT from nothing: paper §2.1 initialises it from DFN's ViT (a CLIP-style
model trained contrastively on billions of image-text pairs), just as its LLM starts from Qwen2.
Stage 0 stands for Qwen2 (the LLM learns the answer language from text); this stage stands for the
DFN ViT. With no image-text corpus here, the tower learns from the one thing the synthetic world
gives for free: a dense label of every patch. A linear head on each merged token (discarded after
the stage) predicts, for each of the 2x2 patches the token covers:

- ``area``: what fills the patch: background or one of the 12 (colour, kind) classes, as the fraction
  of its 14x14 pixels each covers (a soft target, cross-entropy);
- ``centre``: whether a shape's box centre falls in the patch (logistic; box centres are >= 18 px
  apart, so at most one per 14-px patch);
- for a patch holding a centre: the shape's class (cross-entropy over 12) and its box
  (centre offset inside the patch and side, in patch units; L1);
- optionally (``Stage.where_weight`` > 0), for a patch holding a centre: *where* the shape is — its box
  ``(x1, y1, x2, y2)`` as fractions of the canvas, the numbers a "Find ..." answer writes (x 1000; L1);
  with ``Stage.where_on = "shape"`` on every patch a shape covers the most of, not only its centre patch
  (so that any token of the shape the LLM attends to holds the place).

The ``where`` target is the one a 2D-RoPE ViT cannot take from its inputs directly: rotary positions
are relative (on a blank canvas every token is the same), so a token's absolute place can only be
*computed*, from how much canvas lies on each side of it (a softmax over all tokens has a denominator
that depends on it). Asked for it (``--where 5``: weight 5), the 4-block tower computes it: held-out
error 0.029 of the canvas after the 800 steps (0.21 for a guess of the mean; the class at a centre
0.80 instead of 0.89), and a ridge probe on the merged tokens finds the box (R^2 0.87-0.92; not asked:
below 0). It is not in the recipe (measured, not adopted: ``recipe.py``, notebook 11, Going deeper).

That is a tiny detector: the features the LLM will need for "how many", "find", "describe" and
"which way" end up in the merged tokens, and stage 1 onwards aligns them with the LLM exactly as the
paper's stages do. Like every stage, the loss of a distributed run is each term's *sum* over the
rank's patches divided by the *global* count (so DDP's average equals the 1-process gradient).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from ..config import MERGE_SIZE, PATCH_SIZE
from .course import COURSE_MEDIA, CourseMedia
from .data import COLOURS, KINDS, Scene, draw_shape, random_scene, render

__all__ = ["CLASSES", "N_AREA", "N_WHERE", "DenseHead", "DenseBatch", "dense_example", "dense_batch", "dense_loss",
           "dense_scores", "label_map", "where_rows", "VIDEO_SHARE",
           "WHERE_ON"]

CLASSES: tuple[tuple[str, str], ...] = tuple((c, k) for c in COLOURS for k in KINDS)  # 12 (colour, kind)
N_AREA = len(CLASSES) + 1  # 0 = background
_OUT = N_AREA + 1 + 3 + len(CLASSES)  # area logits | centre logit | box (dx, dy, side) | class logits
N_WHERE = 4  # (x1, y1, x2, y2) / (width, height): the optional "where" outputs after the 29
VIDEO_SHARE = 0.3  # this share of the images is drawn at the video frame budget (56x56): small shapes too
WHERE_ON = ("centre", "shape")  # which patches carry the where target: the centre patch, or every patch of the shape


def label_map(scene: Scene, *, instances: bool = False) -> Image.Image:
    """The scene drawn with class ids instead of colours (``"L"`` image: 0 background, 1-12 a class;
    ``instances``: 1 + the shape's index instead), by ``data.draw_shape`` itself (the same geometry)."""
    lab = Image.new("L", scene.size, 0)
    draw = ImageDraw.Draw(lab)
    for k, s in enumerate(scene.shapes):
        draw_shape(draw, s, fill=1 + (k if instances else CLASSES.index((s.colour, s.kind))))
    return lab


def _patch_shares(scene: Scene, gh: int, gw: int, ids: int, *, instances: bool = False) -> np.ndarray:
    """``[gh, gw, ids]``: the fraction of each 14x14 patch that ``label_map`` id 0 .. ids-1 fills."""
    p = PATCH_SIZE
    lab = np.asarray(label_map(scene, instances=instances).resize((gw * p, gh * p), Image.NEAREST))  # [H', W']
    patches = lab.reshape(gh, p, gw, p).transpose(0, 2, 1, 3).reshape(gh, gw, p * p)  # [gh, gw, 196]
    return np.stack([(patches == c).mean(-1) for c in range(ids)], -1).astype(np.float32)


def where_rows(batch: "DenseBatch") -> torch.Tensor:
    """``[N]`` bool: the patches that carry a where target (all-zero rows carry none; a box has x2 > 0)."""
    return batch.where.abs().sum(-1) > 0


def _canvas_box(s, scene: Scene) -> tuple[float, float, float, float]:
    return s.x / scene.width, s.y / scene.height, (s.x + s.side) / scene.width, (s.y + s.side) / scene.height


@dataclass
class DenseBatch:
    """Pixels and per-patch targets, patches in the ViT's 2x2-merge order."""

    pixel_values: torch.Tensor  # [N, 1176]
    grid_thw: torch.Tensor  # [n, 3]
    area: torch.Tensor  # [N, 13] fractions, rows sum to 1
    centre: torch.Tensor  # [N] 1.0 where a box centre lies
    box: torch.Tensor  # [N, 3] (dx, dy, side) in patch units, where centre
    cls: torch.Tensor  # [N] class 0-11 of the centred shape (only read where centre)
    where: torch.Tensor  # [N, 4] a shape's box as fractions of the canvas; all-zero rows carry no target


def _merge_order(a: np.ndarray, gh: int, gw: int, m: int = MERGE_SIZE) -> np.ndarray:
    """Row-major ``[gh, gw, ...]`` -> ``[gh * gw, ...]`` in the merge order (each m x m block consecutive;
    m = 1: row-major)."""
    rest = a.shape[2:]
    return a.reshape(gh // m, m, gw // m, m, *rest).swapaxes(1, 2).reshape(gh * gw, *rest)


def dense_example(scene: Scene, *, video_budget: bool = False, media: CourseMedia = COURSE_MEDIA,
                  where_on: str = "centre") -> tuple:
    """One image of ``scene`` through the course model's pipeline, and its per-patch targets (``where_on``:
    which patches hold the where target, ``WHERE_ON``)."""
    if where_on not in WHERE_ON:
        raise ValueError(f"where_on must be one of {WHERE_ON}, got {where_on!r}")
    opts = media.options(video=video_budget)
    item = {"type": "image", "image": render(scene), **opts}
    vision = media.vision_inputs([{"role": "user", "content": [item]}])  # the course model's pipeline
    pixels, grid = vision["pixel_values"], vision["image_grid_thw"]  # [gh*gw, 1176], [1, 3]
    gh, gw = int(grid[0, 1]), int(grid[0, 2])
    p = PATCH_SIZE
    area = _patch_shares(scene, gh, gw, N_AREA)  # [gh, gw, 13]: background and the 12 classes
    centre = np.zeros((gh, gw), np.float32)
    box = np.zeros((gh, gw, 3), np.float32)
    where = np.zeros((gh, gw, N_WHERE), np.float32)
    cls = np.zeros((gh, gw), np.int64)
    sx, sy = gw * p / scene.width, gh * p / scene.height
    for s in scene.shapes:
        cx, cy = (s.x + s.side / 2) * sx, (s.y + s.side / 2) * sy  # box centre in resized pixels
        r, c = min(gh - 1, int(cy // p)), min(gw - 1, int(cx // p))
        centre[r, c] = 1.0
        box[r, c] = (cx / p - c, cy / p - r, s.side * (sx + sy) / 2 / p)
        cls[r, c] = CLASSES.index((s.colour, s.kind))
        where[r, c] = _canvas_box(s, scene)
    if where_on == "shape":  # every patch: the box of the shape that covers the most of it (none: no target)
        share = _patch_shares(scene, gh, gw, 1 + len(scene.shapes), instances=True)[..., 1:]  # [gh, gw, shapes]
        boxes = np.array([_canvas_box(s, scene) for s in scene.shapes], np.float32)  # [shapes, 4]
        where = np.where(share.max(-1, keepdims=True) > 0, boxes[share.argmax(-1)], 0).astype(np.float32)
    order = [torch.from_numpy(_merge_order(a, gh, gw, media.merge_size)) for a in (area, centre, box, cls, where)]
    return (pixels, grid, *order)


def dense_batch(seed: int, indices: Sequence[int], media: CourseMedia = COURSE_MEDIA,
                where_on: str = "centre") -> DenseBatch:
    """The images ``indices`` of the set ``seed`` (a pure function, like every set of the course)."""
    parts = []
    for i in indices:
        rng = random.Random(f"{seed}:{i}")
        parts.append(dense_example(random_scene(rng), video_budget=rng.random() < VIDEO_SHARE, media=media,
                                   where_on=where_on))
    cols = list(zip(*parts))
    return DenseBatch(*(torch.cat(c) for c in cols))


class DenseHead(nn.Module):
    """Linear: merged token ``[N/4, hidden]`` -> per patch ``[N, 13 + 1 + 3 + 12]`` (+ 4 with ``where``;
    discarded after stage 0v)."""

    def __init__(self, hidden: int, merge_size: int = MERGE_SIZE, where: bool = False) -> None:
        super().__init__()
        self.per_token = merge_size ** 2
        self.width = _OUT + (N_WHERE if where else 0)
        self.proj = nn.Linear(hidden, self.per_token * self.width)

    def forward(self, merged: torch.Tensor) -> torch.Tensor:
        return self.proj(merged).reshape(-1, self.width)  # [N/4, hidden] -> [N/4, 4*29] -> [N, 29] (33: where)


def dense_loss(out: torch.Tensor, batch: DenseBatch, counts: tuple[float, ...] | None = None,
               where_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of the four terms (five with ``where_weight`` > 0: ``out`` then has the 4 ``where`` columns),
    each a *sum* over this batch's patches (or centres, or where rows) divided by ``counts`` = (patches,
    centres[, where rows]) of the global batch (default: this batch's own; where rows default to centres)."""
    m = batch.centre > 0
    w = where_rows(batch)
    n_patch, n_centre, *rest = counts or (float(out.shape[0]), float(m.sum()), float(w.sum()))
    n_where = rest[0] if rest else n_centre
    area = -(batch.area * F.log_softmax(out[:, :N_AREA], -1)).sum() / n_patch
    centre = F.binary_cross_entropy_with_logits(out[:, N_AREA], batch.centre, reduction="sum") / n_patch
    box = F.l1_loss(out[m][:, N_AREA + 1:N_AREA + 4], batch.box[m], reduction="sum") / (3 * max(n_centre, 1.0))
    cls = F.cross_entropy(out[m][:, N_AREA + 4:_OUT], batch.cls[m], reduction="sum") / max(n_centre, 1.0)
    terms = [("area", area), ("centre", centre), ("box", box), ("class", cls)]
    if where_weight > 0:  # the shape's box as fractions of the canvas (L1 per coordinate)
        where = F.l1_loss(out[w][:, _OUT:_OUT + N_WHERE], batch.where[w], reduction="sum") / (N_WHERE * max(n_where, 1.0))
        terms.append(("where", where_weight * where))
    parts = {k: float(v.detach()) for k, v in terms}
    return sum(v for _, v in terms), parts


@torch.no_grad()
def dense_scores(visual: nn.Module, head: DenseHead, n: int = 200, seed: int = 7770,
                 media: CourseMedia = COURSE_MEDIA) -> dict[str, float]:
    """Held-out: class accuracy at the true centres, and per image whether the number of predicted
    centres equals the number of shapes; with a ``where`` head, the mean absolute error of the box
    fractions at the true centres (and that of always guessing their mean, for scale), and the share of
    those boxes with IoU >= 0.5 (the tower's own "Find ..." score, no LLM in the way)."""
    batch = dense_batch(seed, range(n), media)
    out = head(visual(batch.pixel_values, batch.grid_thw))
    m = batch.centre > 0
    cls_acc = (out[m][:, N_AREA + 4:_OUT].argmax(-1) == batch.cls[m]).float().mean()
    pred = out[:, N_AREA] > 0
    sizes = batch.grid_thw.prod(-1).tolist()
    right, k = 0, 0
    for size in sizes:
        right += int(pred[k:k + size].sum() == batch.centre[k:k + size].sum())
        k += size
    scores = {"class_at_centre": round(float(cls_acc), 3), "count_from_centres": round(right / len(sizes), 3)}
    if head.width > _OUT:
        target = batch.where[m]
        scores["where_error"] = round(float((out[m][:, _OUT:] - target).abs().mean()), 4)
        scores["where_error_of_the_mean"] = round(float((target - target.mean(0)).abs().mean()), 4)
        from .evaluate import iou  # the tower's own boxes, scored like a "Find ..." answer (IoU >= 0.5)

        hits = [iou(a, b) >= 0.5 for a, b in zip(out[m][:, _OUT:].tolist(), target.tolist())]
        scores["where_boxes_iou50"] = round(sum(hits) / max(1, len(hits)), 3)
    return scores
