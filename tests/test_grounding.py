"""grounding.py: boxes ⇄ [0, 1000), parse(format(x)) == x, the sample image's true boxes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qwenvl_study.grounding import (GroundedBox, box_on_resized, draw_boxes, format_box, format_grounding,
                                    from_normalized, parse_grounding, rescale_box, to_normalized)
from qwenvl_study.course.samples import SAMPLE_OBJECTS, SAMPLE_SIZE, make_sample_image
from qwenvl_study.resolution import smart_resize


@st.composite
def box_on_image(draw, max_side=1000):
    w, h = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    xs = sorted(draw(st.lists(st.integers(0, w), min_size=2, max_size=2)))
    ys = sorted(draw(st.lists(st.integers(0, h), min_size=2, max_size=2)))
    return (xs[0], ys[0], xs[1], ys[1]), (w, h)


@given(case=box_on_image())
def test_round_trip_within_one_pixel_up_to_1000px(case):
    box, size = case
    norm = to_normalized(box, size)
    assert all(0 <= v < 1000 and isinstance(v, int) for v in norm)
    back = from_normalized(norm, size)
    assert max(abs(a - b) for a, b in zip(back, box)) <= 1.0


@given(case=box_on_image(max_side=8000))
def test_round_trip_error_is_bounded_by_the_step(case):
    box, (w, h) = case
    back = from_normalized(to_normalized(box, (w, h)), (w, h))
    errs = [abs(back[i] - box[i]) for i in range(4)]
    assert max(errs[0], errs[2]) <= w / 1000 + 1e-9 and max(errs[1], errs[3]) <= h / 1000 + 1e-9
    # away from the far edge (where 1000 is clamped to 999) it is half a step
    if box[2] < w * 0.999 and box[3] < h * 0.999:
        assert max(errs[0], errs[2]) <= w / 2000 + 1e-9 and max(errs[1], errs[3]) <= h / 2000 + 1e-9


_phrase = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
                    .filter(lambda p: "<|" not in p))
_norm_box = st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999), st.integers(0, 999)).map(
    lambda b: (min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])))


@given(items=st.lists(st.builds(GroundedBox, _phrase, _norm_box), max_size=6))
def test_parse_of_format_is_identity(items):
    assert parse_grounding(format_grounding(items)) == items


def test_sample_objects_round_trip_on_the_original_and_the_resized_image():
    w, h = SAMPLE_SIZE
    rh, rw = smart_resize(h, w)  # 640x480 → 644x476: not the same aspect
    for name, (_, _, box) in SAMPLE_OBJECTS.items():
        norm = to_normalized(box, SAMPLE_SIZE)
        answer = f"<|object_ref_start|>{name}<|object_ref_end|>" + format_box(norm)
        (parsed,) = parse_grounding(answer)
        assert parsed == GroundedBox(name, norm)
        assert max(abs(a - b) for a, b in zip(from_normalized(parsed.box, SAMPLE_SIZE), box)) <= 1.0
        # the same normalised box on the resized image: the box the model sees, within one grid unit
        on_resized, resized_size = box_on_resized(box, SAMPLE_SIZE)
        assert resized_size == (rw, rh)
        assert max(abs(a - b) for a, b in zip(to_normalized(on_resized, resized_size), norm)) <= 1
        assert on_resized == pytest.approx(rescale_box(box, SAMPLE_SIZE, (rw, rh)))
    assert to_normalized(SAMPLE_OBJECTS["red circle"][2], SAMPLE_SIZE) == (94, 354, 344, 688)  # pinned


def test_parse_is_robust():
    answer = ("Sure! <|object_ref_start|> the cars <|object_ref_end|>\n<|box_start|>( 10 , 20 ) ,( 30,40 )<|box_end|> "
              "<|box_start|>(50,60),(70,80)<|box_end|> and also <|box_start|>(1,2),(3,4)<|box_end|>.")
    assert parse_grounding(answer) == [GroundedBox(" the cars ", (10, 20, 30, 40)),
                                       GroundedBox(" the cars ", (50, 60, 70, 80)),
                                       GroundedBox(None, (1, 2, 3, 4))]
    assert parse_grounding(answer, strip_phrases=True)[0].phrase == "the cars"
    # decoded with skip_special_tokens=True: only the bare coordinates are left
    assert parse_grounding("the red circle(94,354),(344,688)") == [GroundedBox(None, (94, 354, 344, 688))]
    assert parse_grounding("no boxes here") == []
    with pytest.raises(ValueError, match=r"box \(10, 20, 1000, 40\) at character 0: coordinates must lie in \[0, 1000\)"):
        parse_grounding("<|box_start|>(10,20),(1000,40)<|box_end|>")
    with pytest.raises(ValueError, match="outside the 640x480 image"):
        to_normalized((0, 0, 641, 10), SAMPLE_SIZE)
    with pytest.raises(ValueError, match="x1 <= x2"):
        format_box((5, 5, 1, 9))
    with pytest.raises(ValueError, match=r"image size must be \(width, height\) with positive integers, got 100"):
        to_normalized((0, 0, 1, 1), 100)
    with pytest.raises(ValueError, match="a box is four finite numbers"):
        to_normalized((0, 0, "a", 1), (100, 100))
    with pytest.raises(ValueError, match="needs the model's answer as a str, got NoneType"):
        parse_grounding(None)
    # numpy numbers are numbers
    assert to_normalized(tuple(np.array([0, 0, 50, 50])), (np.int64(100), np.int64(100))) == (0, 0, 500, 500)


def test_draw_boxes_outlines_the_true_box():
    items = [GroundedBox(name, to_normalized(box, SAMPLE_SIZE)) for name, (_, _, box) in SAMPLE_OBJECTS.items()]
    drawn = np.asarray(draw_boxes(make_sample_image(), items, colours=("#000000",), width=2)).astype(int)
    x1, y1, x2, y2 = (round(v) for v in from_normalized(items[1].box, SAMPLE_SIZE))  # the green square
    assert (drawn[(y1 + y2) // 2, x1] == 0).all() and (drawn[y2, (x1 + x2) // 2] == 0).all()
    assert (drawn[(y1 + y2) // 2, (x1 + x2) // 2] == [0x2C, 0xA0, 0x2C]).all()  # inside: still the square
