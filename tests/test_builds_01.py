"""Notebook 01's inline builds (`# build:` cells) equal the package: smart_resize and the token count
bit-equal on any size and bounds (hypothesis), the aspect guard refusing the same images, and the
build's pixel_values equal to ``patching.preprocess_image`` (<= 1e-6) on random images.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from nbbuild import notebook_build
from PIL import Image

from qwenvl_study import count_image_tokens, preprocess_image, smart_resize
from qwenvl_study.resolution import MAX_RATIO

NB = "01_dynamic_resolution"
sides = st.integers(min_value=1, max_value=20000)
small_sides = st.integers(min_value=1, max_value=120)  # the min-pixels branch and its rounding
bounds = st.tuples(st.integers(1, 4000), st.one_of(st.integers(1, 4000), st.integers(1, 16))).map(sorted).map(
    lambda b: (b[0] * 28, b[1] * 28 * 28))  # small max_pixels too: the shrink branch's 28-px floor


@pytest.fixture(scope="module")
def build():
    return notebook_build(NB, "count_image_tokens")


def _ok(h, w):
    return max(h, w) / min(h, w) <= MAX_RATIO


@given(h=st.one_of(sides, small_sides), w=st.one_of(sides, small_sides))
def test_smart_resize_build_equals_package(build, h, w):
    if _ok(h, w):
        assert build["smart_resize"](h, w) == smart_resize(h, w)
        assert build["count_image_tokens"](h, w) == count_image_tokens(h, w)
        assert build["count_image_tokens"](h, w, special_tokens=False) == count_image_tokens(h, w, special_tokens=False)
    else:  # the aspect guard: both refuse
        with pytest.raises(ValueError):
            build["smart_resize"](h, w)
        with pytest.raises(ValueError):
            smart_resize(h, w)


@given(h=sides, w=sides, b=bounds)
@example(h=100, w=1000, b=(28, 784))  # shrinks the short side below 28 px: the floor keeps 28
@example(h=1000, w=100, b=(28, 784))
def test_smart_resize_build_equals_package_for_any_bounds(build, h, w, b):
    lo, hi = b
    if _ok(h, w):
        assert build["smart_resize"](h, w, min_pixels=lo, max_pixels=hi) == smart_resize(h, w, min_pixels=lo,
                                                                                            max_pixels=hi)
        assert build["count_image_tokens"](h, w, min_pixels=lo, max_pixels=hi) == count_image_tokens(
            h, w, min_pixels=lo, max_pixels=hi)


def test_the_lesson_facts_hold_for_the_build(build):
    tokens = build["count_image_tokens"]
    assert tokens(224, 224) == 66 and tokens(300, 1000) == 398
    assert tokens(18, 32, special_tokens=False) == 6  # 32x18: scaled up, but to 2x3, not 4
    assert tokens(19, 19, special_tokens=False) == 9 and tokens(70, 70, special_tokens=False) == 4


@pytest.mark.parametrize("seed", range(4))
def test_pixel_values_build_equals_package(seed):
    pixel_values = notebook_build(NB, "pixel_values")["pixel_values"]
    rng = np.random.default_rng(seed)
    h, w = (int(x) for x in rng.integers(10, 200, size=2))
    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    rows, grid = pixel_values(image)
    ours, ours_grid = preprocess_image(image)
    assert list(grid) == ours_grid[0].tolist()
    assert rows.shape == ours.shape and rows.dtype == ours.dtype
    assert (rows - ours).abs().max().item() <= 1e-6


def test_the_builds_are_self_contained():
    from nbbuild import _cells

    names = [name for name, _ in _cells(NB)]
    assert names == ["smart_resize", "count_image_tokens", "pixel_values"]
    assert not any("qwenvl_study" in src for _, src in _cells(NB))  # written in the open, not imported
