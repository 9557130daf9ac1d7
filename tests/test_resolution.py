"""smart_resize and token counts vs transformers (and vs qwen-vl-utils for its rule)."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from qwenvl_study import count_image_tokens, count_video_tokens, smart_resize
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.resolution import (MAX_PIXELS, MIN_PIXELS, ceil_by_factor, floor_by_factor, grid_tokens, image_grid_thw,
                                     round_by_factor, video_grid_thw)

sides = st.integers(min_value=1, max_value=20000)
bounds = st.tuples(st.integers(1, 4000), st.integers(1, 4000)).map(sorted).map(
    lambda b: (b[0] * 28, b[1] * 28 * 28))


def _ratio_ok(h, w):
    return max(h, w) / min(h, w) <= 200


@given(h=sides, w=sides)
def test_smart_resize_equals_transformers_at_published_bounds(h, w):
    assume(_ratio_ok(h, w))
    assert checks.smart_resize(h, w).ok


@given(h=sides, w=sides, b=bounds)
def test_smart_resize_equals_transformers_for_any_bounds(h, w, b):
    assume(_ratio_ok(h, w))
    lo, hi = b
    assert checks.smart_resize(h, w, min_pixels=lo, max_pixels=hi).ok


@given(h=sides, w=sides, b=bounds)
def test_qwen_vl_utils_rule_equals_qwen_vl_utils(h, w, b):
    assume(_ratio_ok(h, w))
    lo, hi = b
    check = checks.qwen_vl_utils_resize(h, w, min_pixels=lo, max_pixels=hi)
    assume(min(check.reference) > 0)  # see test_qwen_vl_utils_zero_side_is_clamped
    assert check.ok


@given(h=sides, w=sides)
def test_resized_sides_are_multiples_of_28_within_bounds(h, w):
    assume(_ratio_ok(h, w))
    for rule in ("transformers", "qwen-vl-utils"):
        rh, rw = smart_resize(h, w, rule=rule)
        assert rh % 28 == 0 and rw % 28 == 0 and rh >= 28 and rw >= 28
        assert MIN_PIXELS <= rh * rw <= MAX_PIXELS
        assert count_image_tokens(h, w, rule=rule, special_tokens=False) >= 4  # never fewer than 4 merged


@given(number=st.one_of(st.integers(0, 10**7), st.floats(0, 1e7)), factor=st.sampled_from([2, 14, 28]))
def test_rounding_helpers_equal_qwen_vl_utils(number, factor):
    """The three helpers smart_resize (and media's frame counts) use are qwen-vl-utils' own."""
    q = ref.qwen_vl_utils()
    assert round_by_factor(number, factor) == q.round_by_factor(number, factor)
    assert ceil_by_factor(number, factor) == q.ceil_by_factor(number, factor)
    assert floor_by_factor(number, factor) == q.floor_by_factor(number, factor)


def test_grid_tokens_count_merged_tokens_like_the_processor():
    """transformers' processor expands one image pad per merged token: grid.prod() // merge_size**2."""
    proc = ref.hf_image_processor()
    for h, w in [(224, 224), (480, 640), (1080, 1920), (13, 2000)]:
        grid = image_grid_thw(h, w)
        assert grid_tokens(grid) == proc.get_number_of_image_patches(h, w, {}) // proc.merge_size**2
        assert grid_tokens(grid, special_tokens=True) == count_image_tokens(h, w)
    with pytest.raises(ValueError, match=r"grid \(t=1, h=3, w=4\).*merge_size=2"):
        grid_tokens((1, 3, 4))
    with pytest.raises(ValueError, match=r"grid \(t=0, h=2, w=2\)"):
        grid_tokens((0, 2, 2))


def test_thin_image_drift_between_the_two_references():
    """Pinned: a side that rounds to 0 at factor 28. transformers rounds 13 → 0 then scales up
    by sqrt(min_pixels / area); qwen-vl-utils first clamps 13 → 28 and keeps the width."""
    assert ref.hf_smart_resize(13, 2000) == smart_resize(13, 2000) == (28, 700)
    assert ref.qwen_vl_utils().smart_resize(13, 2000) == smart_resize(13, 2000, rule="qwen-vl-utils") == (28, 1988)
    # 28x700 → 2x50 patches → 25 merged (+2); 28x1988 → 2x142 patches → 71 merged (+2)
    assert count_image_tokens(13, 2000) == 27
    assert count_image_tokens(13, 2000, rule="qwen-vl-utils") == 73


def test_qwen_vl_utils_zero_side_is_clamped():
    """qwen-vl-utils' shrink branch has no ≥ factor clamp: 100x20000 under 3136 max pixels gives a
    0-pixel height (PIL then fails). Ours keeps the clamp, as transformers does."""
    theirs = ref.qwen_vl_utils().smart_resize(100, 20000, min_pixels=784, max_pixels=3136)
    assert theirs[0] == 0
    assert smart_resize(100, 20000, min_pixels=784, max_pixels=3136, rule="qwen-vl-utils")[0] == 28


@pytest.mark.parametrize("h, w, tokens", [(224, 224, 66), (448, 448, 258), (720, 1280, 1198), (1080, 1920, 2693),
                                          (2160, 3840, 10551), (200, 2000, 499)])
def test_common_sizes_match_the_processor(h, w, tokens):
    t, gh, gw = image_grid_thw(h, w)
    assert t * gh * gw == ref.hf_image_processor().get_number_of_image_patches(h, w, {})
    assert count_image_tokens(h, w) == tokens == gh * gw // 4 + 2
    assert count_image_tokens(h, w, special_tokens=False) == tokens - 2


@given(n=st.integers(1, 64), h=sides, w=sides, b=bounds)
def test_video_tokens_equal_transformers_video_processor(n, h, w, b):
    assume(_ratio_ok(h, w))
    lo, hi = b
    patches = ref.hf_video_patch_count(n, h, w, min_pixels=lo, max_pixels=hi)
    assert count_video_tokens(n, h, w, min_pixels=lo, max_pixels=hi, special_tokens=False) * 4 == patches


@given(n=st.integers(1, 64), h=st.integers(28, 2000), w=st.integers(28, 2000))
def test_video_tokens_pair_frames(n, h, w):
    assume(_ratio_ok(h, w))
    t, gh, gw = video_grid_thw(n, h, w)
    assert t == (n + 1) // 2
    assert count_video_tokens(n, h, w) == t * gh * gw // 4 + 2
    assert count_video_tokens(n + (n % 2), h, w) == count_video_tokens(n, h, w)  # odd: last frame repeated


@pytest.mark.parametrize("call, match", [
    (lambda: smart_resize(10, 2001), r"aspect ratio 200\.10 of a 10x2001"),
    (lambda: smart_resize(0, 10), "height must be an integer >= 1, got 0"),
    (lambda: smart_resize(10, -3), "width must be an integer >= 1, got -3"),
    (lambda: smart_resize(10, 10, min_pixels=5000, max_pixels=4000), "min_pixels=5000 is larger than max_pixels=4000"),
    (lambda: smart_resize(10, 10, rule="pil"), "rule must be one of"),
    (lambda: count_video_tokens(0, 28, 28), "num_frames must be an integer >= 1, got 0"),
])
def test_bad_input_raises_clear_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
