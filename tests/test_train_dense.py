"""Stage 0v's targets (``train/dense.py``): the label map is the rendered scene, the per-patch targets
are consistent with the scene, and the loss falls when the head is right."""

import random

import numpy as np
import pytest
import torch

from qwenvl_study.grounding import to_normalized
from qwenvl_study.train import data as D
from qwenvl_study.train.dense import (CLASSES, N_AREA, N_WHERE, DenseHead, _merge_order, dense_batch, dense_example,
                                      dense_loss, label_map)
from qwenvl_study.train.loop import SMOKE_MODEL, TrainConfig, build_model, dense_head
from qwenvl_study.train.recipe import STAGES
from qwenvl_study.train.vocab import build_vocab, course_tokenizer


@pytest.mark.parametrize("index", range(12))
def test_label_map_covers_exactly_the_drawn_pixels(index):
    scene = D.random_scene(random.Random(f"dense:{index}"))
    img, lab = np.asarray(D.render(scene)), np.asarray(label_map(scene))
    background = (img == np.array(scene.background)).all(-1)
    assert ((lab > 0) == ~background).all()
    for s in scene.shapes:  # each shape's class id sits at its box centre
        assert lab[s.y + s.side // 2, s.x + s.side // 2] == 1 + CLASSES.index((s.colour, s.kind))


@pytest.mark.parametrize("index", range(8))
def test_targets_agree_with_the_scene(index):
    scene = D.random_scene(random.Random(f"dense:{index}"))
    pixels, grid, area, centre, box, cls, where = dense_example(scene)
    n = int(grid.prod())
    assert pixels.shape == (n, 1176) and area.shape == (n, N_AREA) and centre.shape == box.shape[:1] == (n,)
    assert torch.allclose(area.sum(-1), torch.ones(n))
    assert int(centre.sum()) == len(scene.shapes)  # one centre patch per shape (centres >= 18 px apart)
    assert sorted(cls[centre > 0].tolist()) == sorted(CLASSES.index((s.colour, s.kind)) for s in scene.shapes)
    assert ((box[centre > 0][:, :2] >= 0) & (box[centre > 0][:, :2] <= 1)).all()  # the centre lies in its patch
    # "where": each centre patch holds its shape's box as fractions of the canvas, the "Find" answer / 1000
    expected = sorted((s.x / scene.width, s.y / scene.height, (s.x + s.side) / scene.width,
                       (s.y + s.side) / scene.height) for s in scene.shapes)
    got = sorted(tuple(r) for r in where[centre > 0].tolist())
    assert np.allclose(got, expected, atol=1e-6) and where[centre == 0].abs().sum() == 0
    for s in scene.shapes:  # x 1000 it is the "Find ..." answer's box (to_normalized), to the grid's 1/1000
        grid_box = np.array(to_normalized(s.box, scene.size)) / 1000
        assert np.abs(np.array(got) - grid_box).max(-1).min() < 1.001e-3
    gh, gw = int(grid[0, 1]), int(grid[0, 2])  # the box's centre lies in that patch's span of the canvas
    col, row = np.meshgrid(np.arange(gw), np.arange(gh))
    order = torch.from_numpy(_merge_order(np.stack([row, col], -1), gh, gw))  # (row, col) in the targets' order
    for (r, c), w in zip(order[centre > 0].tolist(), where[centre > 0].tolist()):
        cx, cy = (w[0] + w[2]) / 2 * gw, (w[1] + w[3]) / 2 * gh
        assert c <= cx <= c + 1 and r <= cy <= r + 1


def _perfect_head_output(batch):
    """The 29 outputs per patch of a head that knows every target of ``batch`` (logits at +-30)."""
    n = batch.centre.shape[0]
    out = torch.full((n, N_AREA + 4 + len(CLASSES)), -30.0)
    out[:, :N_AREA] = torch.log(batch.area.clamp_min(1e-9))
    out[:, N_AREA] = torch.where(batch.centre > 0, 30.0, -30.0)
    out[:, N_AREA + 1:N_AREA + 4] = batch.box
    out[torch.arange(n), N_AREA + 4 + batch.cls] = 30.0
    return out


def test_loss_is_lower_for_the_true_targets_than_for_a_wrong_head():
    batch = dense_batch(5, range(4))
    n = batch.centre.shape[0]
    perfect = _perfect_head_output(batch)
    good, parts = dense_loss(perfect, batch)
    bad, _ = dense_loss(torch.zeros_like(perfect), batch)
    assert parts["box"] < 1e-6 and parts["class"] < 1e-6 and parts["centre"] < 1e-6
    assert good < 0.5 * bad
    head = DenseHead(16)
    assert head(torch.zeros(n // 4, 16)).shape == perfect.shape  # 4 patches per merged token


def test_where_term_is_off_by_default_and_falls_when_the_head_knows_the_place():
    batch = dense_batch(5, range(4))
    n = batch.centre.shape[0]
    perfect = _perfect_head_output(batch)
    right = torch.cat([perfect, batch.where], 1)
    wrong = torch.cat([perfect, 1 - batch.where], 1)  # mirrored: every shape on the other side
    off, parts = dense_loss(right, batch)
    assert "where" not in parts and torch.allclose(off, dense_loss(perfect, batch)[0])
    good, parts = dense_loss(right, batch, where_weight=5.0)
    bad, bad_parts = dense_loss(wrong, batch, where_weight=5.0)
    assert parts["where"] < 1e-6 < 0.5 < bad_parts["where"] and good < bad
    head = DenseHead(16, where=True)
    assert head(torch.zeros(n // 4, 16)).shape == (n, N_AREA + 4 + len(CLASSES) + N_WHERE)


@pytest.mark.parametrize("index", range(8))
def test_where_on_every_patch_of_a_shape(index):
    """``where_on="shape"``: a patch holds a box exactly where some shape covers it (background < 1), the box
    of a shape of the patch's largest class, and its centre patches keep the centre variant's boxes."""
    scene = D.random_scene(random.Random(f"dense:{index}"))
    _, _, area, centre, _, _, where_c = dense_example(scene)
    _, _, area_s, centre_s, _, _, where_s = dense_example(scene, where_on="shape")
    assert torch.equal(area, area_s) and torch.equal(centre, centre_s)  # only the where target changes
    held = where_s.abs().sum(-1) > 0
    assert torch.equal(held, area[:, 0] < 1)  # every patch with a shape's pixel, no background patch
    boxes = {tuple(np.float32(v) for v in (s.x / scene.width, s.y / scene.height, (s.x + s.side) / scene.width,
                                            (s.y + s.side) / scene.height)): CLASSES.index((s.colour, s.kind))
             for s in scene.shapes}
    for row, a in zip(where_s[held].tolist(), area[held]):
        key = tuple(np.float32(v) for v in row)
        assert key in boxes and a[1 + boxes[key]] == a[1:].max()
    assert held.sum() > centre.sum() or len(scene.shapes) == held.sum()
    assert torch.allclose(where_s[centre > 0], where_c[centre > 0])


def test_where_on_shape_loss_counts_its_rows_and_rejects_unknown_modes():
    batch = dense_batch(5, range(4), where_on="shape")
    perfect = _perfect_head_output(batch)
    rows = float((batch.where.abs().sum(-1) > 0).sum())
    assert rows > float(batch.centre.sum())
    off = torch.cat([perfect, batch.where + 0.1], 1)  # every held row 0.1 off in each coordinate
    _, parts = dense_loss(off, batch, where_weight=1.0)
    assert parts["where"] == pytest.approx(0.1, rel=1e-4)  # the mean over the rows that carry the target
    _, half = dense_loss(off, batch, (float(batch.centre.numel()), float(batch.centre.sum()), 2 * rows), 1.0)
    assert half["where"] == pytest.approx(0.05, rel=1e-4)  # a global count twice this rank's halves its share
    with pytest.raises(ValueError, match="where_on must be one of"):
        dense_example(D.random_scene(random.Random("dense:0")), where_on="everywhere")


def test_dense_scores_score_the_towers_own_boxes():
    """With a where head, ``dense_scores`` reports the share of its boxes at the centres with IoU >= 0.5: 1.0 for
    a head that writes the true boxes, 0.0 for one that writes every box mirrored."""
    from dataclasses import replace

    from qwenvl_study.train import dense as Dn

    vocab = build_vocab(course_tokenizer())
    model = build_model(vocab, TrainConfig(model=SMOKE_MODEL))
    head = dense_head(model, TrainConfig(), replace(STAGES[1], where_weight=5.0))
    batch = dense_batch(7770, range(6))

    class Oracle(torch.nn.Module):  # the head's outputs, the where columns replaced by the truth (or its mirror)
        width = head.width

        def __init__(self, mirror):
            super().__init__()
            self.mirror = mirror

        def forward(self, merged):
            out = head(merged).detach().clone()
            out[:, Dn._OUT:] = 1 - batch.where if self.mirror else batch.where
            return out

    assert Dn.dense_scores(model.visual, Oracle(False), n=6)["where_boxes_iou50"] == 1.0
    assert Dn.dense_scores(model.visual, Oracle(True), n=6)["where_boxes_iou50"] < 0.2
