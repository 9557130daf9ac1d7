"""The data contract of issue 12, checked on the rendered pixels (not only on the generator's own records)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qwenvl_study.grounding import parse_grounding, to_normalized
from qwenvl_study.train import data as D


def _pixel(image, x, y):
    return tuple(int(v) for v in np.asarray(image)[int(y), int(x)])


def _check_canvas(scene):
    w, h = scene.size
    assert D.CANVAS_MIN <= w <= D.CANVAS_MAX and D.CANVAS_MIN <= h <= D.CANVAS_MAX
    assert max(w, h) <= 3 * min(w, h)
    assert all(200 <= c <= 255 for c in scene.background)


def _check_shapes(scene, image):
    w, h = scene.size
    short = min(w, h)
    arr = np.asarray(image)
    assert image.size == (w, h) and image.mode == "RGB"
    for s in scene.shapes:
        x1, y1, x2, y2 = s.box
        assert 0 <= x1 and 0 <= y1 and x2 <= w and y2 <= h
        assert max(14, 0.15 * short) <= s.side <= 0.4 * short
        colour = D.COLOURS[s.colour]
        cx, cy = x1 + s.side / 2, y1 + s.side / 2
        if s.kind == "triangle":  # apex up: filled just above the base's middle, empty at the top corners
            assert _pixel(image, cx, y2 - 2) == colour
            assert _pixel(image, x1, y1) == scene.background and _pixel(image, x2 - 1, y1) == scene.background
            assert _pixel(image, x1 + 1, y2 - 1) == colour  # the base lies on the box's bottom edge
        elif s.kind == "square":  # fills the box: all four corners
            assert _pixel(image, cx, cy) == colour
            assert _pixel(image, x1, y1) == colour and _pixel(image, x2 - 1, y2 - 1) == colour
        else:  # circle: centre filled, corners empty, the top of the circle touches the box's top edge
            assert _pixel(image, cx, cy) == colour
            assert _pixel(image, x1, y1) == scene.background
            assert _pixel(image, cx, y1) == colour
        # nothing drawn just outside the box on the left (shapes are >= 4 px apart)
        if x1 >= 1:
            column = arr[y1:y2, x1 - 1]
            assert (column == np.array(scene.background)).all()
    for i, a in enumerate(scene.shapes):
        for b in scene.shapes[i + 1:]:
            assert D._apart(a.box, b.box, 4)
    # every pixel outside the boxes is background
    mask = np.ones((h, w), bool)
    for s in scene.shapes:
        x1, y1, x2, y2 = s.box
        mask[y1:y2, x1:x2] = False
    assert (arr[mask] == np.array(scene.background)).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**6), task=st.sampled_from(["count", "find", "describe"]))
def test_image_samples_follow_the_contract(seed, index, task):
    s = D.make_sample(seed, index, task)
    _check_canvas(s.scene)
    _check_shapes(s.scene, s.media)
    shapes = s.scene.shapes
    assert 1 <= len(shapes) <= 5
    if task == "count":
        assert s.question == "How many shapes are there?" and s.answer == str(len(shapes)) and s.answer.isdigit()
    elif task == "describe":
        order = sorted(shapes, key=lambda t: (t.x + t.side / 2, t.y + t.side / 2))
        assert s.answer == ", ".join(f"{t.colour} {t.kind}" for t in order)
    else:
        target = s.target
        assert sum(t.name == target.name for t in shapes) == 1  # only asked when unique
        assert s.question == f"Find the {target.colour} {target.kind}."
        (box,) = parse_grounding(s.answer)
        assert box.phrase == f"the {target.name}" and box.box == to_normalized(target.box, s.scene.size)
        assert s.answer.startswith("<|object_ref_start|>the ") and s.answer.endswith("<|box_end|>")


def _centroid(frame, colour):
    arr = np.asarray(frame)
    ys, xs = np.nonzero((arr == np.array(colour)).all(-1))
    return xs.mean(), ys.mean()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**6))
def test_videos_follow_the_contract(seed, index):
    frames, first, mover, direction, scenes = D.random_video(__import__("random").Random(f"{seed}:{index}"))
    assert 4 <= len(frames) <= 12 and len(frames) % 2 == 0
    assert len({f.size for f in frames}) == 1
    _check_canvas(first)
    for frame, scene in zip(frames, scenes):
        _check_shapes(scene, frame)
    assert len(first.shapes) - 1 <= 2
    # straight line, constant speed, >= 30% of the extent, in the stated direction
    xs = [sc.shapes[0].x for sc in scenes]
    ys = [sc.shapes[0].y for sc in scenes]
    w, h = first.size
    along, across, extent = (xs, ys, w) if direction in ("left", "right") else (ys, xs, h)
    assert len(set(across)) == 1
    steps = np.diff(along)
    assert np.all(np.abs(steps - steps.mean()) <= 1)  # constant speed up to integer rounding
    assert abs(along[-1] - along[0]) >= 0.3 * extent
    sign = 1 if direction in ("right", "down") else -1
    assert sign * (along[-1] - along[0]) > 0
    # the statics are off the path and never share the mover's (colour, kind)
    x0, y0, s = xs[0], ys[0], mover.side
    swept = (min(xs), min(ys), max(xs) + s, max(ys) + s)
    for other in first.shapes[1:]:
        assert D._apart(other.box, swept, 4) and other.name != mover.name
    # the pixels agree: the mover's colour centroid moves the stated way (when its colour is unique)
    if all(o.colour != mover.colour for o in first.shapes[1:]):
        (ax, ay), (bx, by) = _centroid(frames[0], D.COLOURS[mover.colour]), _centroid(frames[-1], D.COLOURS[mover.colour])
        delta = {"right": bx - ax, "left": ax - bx, "down": by - ay, "up": ay - by}[direction]
        assert delta >= 0.3 * extent - 1


def test_direction_sample_question_and_answer():
    s = D.make_sample(7, 3, "direction")
    assert s.is_video and s.answer in D.DIRECTIONS
    assert s.question == f"Which way does the {s.scene.shapes[0].colour} {s.scene.shapes[0].kind} move?"


def test_deterministic_and_seeds_differ():
    a, b = D.make_sample(11, 5), D.make_sample(11, 5)
    assert (a.question, a.answer) == (b.question, b.answer)
    ma = a.media if not a.is_video else a.media[0]
    mb = b.media if not b.is_video else b.media[0]
    assert ma.tobytes() == mb.tobytes()
    answers = {D.make_sample(seed, 0, "describe").answer for seed in range(8)}
    assert len(answers) > 4


def test_training_and_heldout_seeds_are_distinct():
    from qwenvl_study.train.evaluate import HELDOUT_SEEDS
    from qwenvl_study.train.loop import STAGE_SEED
    from qwenvl_study.train.recipe import STAGES

    train_seeds = [STAGE_SEED + s.index if s.seed is None else s.seed for s in STAGES]
    assert not set(train_seeds) & set(HELDOUT_SEEDS.values())
    vision = [seed for seed, s in zip(train_seeds, STAGES) if s.data == "vision"]
    assert len(set(vision)) == len(vision)  # no two vision stages draw the same samples


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_shapes"):
        D.random_scene(__import__("random").Random(0), n_shapes=6)
    with pytest.raises(ValueError, match="unknown task"):
        D.make_sample(0, 0, "colour")


def test_text_samples_state_the_scene():
    s = D.make_text_sample(3, 1)
    assert s.media is None and s.question.endswith("?") or s.question.endswith(".")
    for i in range(20):
        t = D.make_text_sample(4, i)
        if t.task == "count":
            assert t.question.count(";") + 1 == int(t.answer)


# ---------------------------------------------------------------------------------------------
# Ranges beyond training (the evaluation splits of issue 13): same contract, other canvas / video ranges
# ---------------------------------------------------------------------------------------------
def test_default_ranges_draw_the_samples_of_before():
    """The range keywords are additive: the contract's samples for existing seeds, bit for bit
    (digest of 18 mixed samples with their pixels and 18 text samples, taken before the keywords existed)."""
    import hashlib

    h = hashlib.sha256()
    for seed in (0, 101, 102):
        for i in range(6):
            s = D.make_sample(seed, i, mix={"count": 1, "find": 1, "describe": 1, "direction": 1}, max_turns=3)
            h.update(repr((s.task, s.question, s.answer, s.extra_turns)).encode())
            for f in (s.media if s.is_video else [s.media]):
                h.update(f.tobytes())
            h.update(D.make_text_sample(seed, i).question.encode())
    assert h.hexdigest() == "613b290c871502ec2ab53e838adb24a8a83604dc97b943025de4e9f5696a5a5c"
    a = D.make_sample(3, 4, "find")
    b = D.make_sample(3, 4, "find", sides=D.SIDES, ratio=D.RATIO, frames=D.FRAMES)
    assert (a.question, a.answer, a.media.tobytes()) == (b.question, b.answer, b.media.tobytes())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**6), task=st.sampled_from(["count", "find", "describe"]),
       ranges=st.sampled_from([((336, 672), (1, 3)), ((56, 336), (3, 6)), ((80, 200), (2, 2.5))]))
def test_split_images_follow_their_ranges_and_the_contract(seed, index, task, ranges):
    sides, ratio = ranges
    s = D.make_sample(seed, index, task, sides=sides, ratio=ratio)
    w, h = s.scene.size
    assert sides[0] <= w <= sides[1] and sides[0] <= h <= sides[1]
    assert ratio[0] * min(w, h) <= max(w, h) <= ratio[1] * min(w, h)
    assert all(200 <= c <= 255 for c in s.scene.background) and 1 <= len(s.scene.shapes) <= D.MAX_SHAPES
    _check_shapes(s.scene, s.media)
    again = D.make_sample(seed, index, task, sides=sides, ratio=ratio)  # a pure function of (seed, index)
    assert (again.answer, again.media.tobytes()) == (s.answer, s.media.tobytes())


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**6))
def test_longer_videos_keep_the_motion_rules(seed, index):
    s = D.make_sample(seed, index, "direction", frames=(16, 24))
    assert s.is_video and 16 <= len(s.media) <= 24 and len(s.media) % 2 == 0
    rng = __import__("random").Random(f"{seed}:{index}")
    frames, first, mover, direction, scenes = D.random_video(rng, frames=(16, 24))
    assert [f.tobytes() for f in frames] == [f.tobytes() for f in s.media] and direction == s.answer
    along = [sc.shapes[0].x if direction in ("left", "right") else sc.shapes[0].y for sc in scenes]
    extent = first.width if direction in ("left", "right") else first.height
    assert abs(along[-1] - along[0]) >= 0.3 * extent
    for frame, scene in zip(frames[::5], scenes[::5]):
        _check_shapes(scene, frame)


def test_ranges_that_cannot_be_drawn_are_refused():
    for bad, match in ((dict(sides=(10, 20)), "sides"), (dict(sides=(300, 200)), "sides"),
                       (dict(ratio=(0.5, 2)), "ratio"), (dict(ratio=(7, 8)), "cannot be met"),
                       (dict(frames=(3, 8)), "frames"), (dict(frames=(8, 4)), "frames"), (dict(sides=56), "pair")):
        with pytest.raises(ValueError, match=match):
            D.make_sample(0, 0, "count", **bad)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), index=st.integers(0, 10**6), task=st.sampled_from(["count", "find", "describe"]),
       max_shapes=st.integers(1, 4))
def test_max_shapes_draws_easy_scenes_of_the_contract(seed, index, task, max_shapes):
    """A curriculum's easy scenes (``Stage.max_shapes``): 1 to ``max_shapes`` shapes, otherwise the contract."""
    s = D.make_sample(seed, index, task, max_shapes=max_shapes)
    assert 1 <= len(s.scene.shapes) <= max_shapes
    _check_shapes(s.scene, s.media)
    if task == "count":
        assert s.answer == str(len(s.scene.shapes))


def test_max_shapes_reaches_every_count_and_refuses_bad_values():
    counts = {len(D.make_sample(7, i, "describe", max_shapes=2).scene.shapes) for i in range(40)}
    assert counts == {1, 2}
    full = D.make_sample(7, 3, "describe", max_shapes=D.MAX_SHAPES)  # the default: the contract's stream
    assert full.answer == D.make_sample(7, 3, "describe").answer
    for bad in (0, 6, 2.0, True):
        with pytest.raises(ValueError, match="max_shapes"):
            D.make_sample(7, 3, "describe", max_shapes=bad)
