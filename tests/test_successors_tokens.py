"""count_image_tokens / count_video_tokens(..., model=...) vs transformers' processors with each model's defaults."""

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qwenvl_study.course import reference_successors as rs
from qwenvl_study.resolution import MODELS, PRESETS, count_image_tokens, count_video_tokens, smart_resize_frames

models = st.sampled_from(MODELS)


def _ratio_ok(h, w):
    return max(h, w) / min(h, w) <= 200


def test_presets_are_the_published_defaults():
    q3 = PRESETS["qwen3-vl"]
    assert (q3.patch_size, q3.patch_size * q3.merge_size, q3.min_pixels, q3.max_pixels) == (16, 32, 65_536, 16_777_216)
    assert q3.image_mean == q3.image_std == (0.5, 0.5, 0.5)
    assert PRESETS["qwen2.5-vl"] == PRESETS["qwen2-vl"]  # Qwen2.5-VL kept Qwen2-VL's processor
    assert count_image_tokens(224, 224) == count_image_tokens(224, 224, model="qwen2-vl") == 66  # default unchanged
    # 224x224 under Qwen3-VL: 50,176 px < 65,536 → scaled up to 256x256 → 8x8 merged tokens
    assert count_image_tokens(224, 224, model="qwen3-vl") == 64 + 2


@given(h=st.integers(1, 20000), w=st.integers(1, 20000), model=models)
def test_image_tokens_equal_the_processor_arithmetic(h, w, model):
    assume(_ratio_ok(h, w))
    assert count_image_tokens(h, w, model=model, special_tokens=False) * 4 == rs.hf_image_patch_count(h, w, model)


@settings(max_examples=12)
@given(h=st.integers(1, 900), w=st.integers(1, 900), model=models)
def test_image_tokens_equal_the_processor_on_real_images(h, w, model):
    assume(_ratio_ok(h, w))
    assert count_image_tokens(h, w, model=model, special_tokens=False) == rs.hf_image_tokens(h, w, model)


@given(n=st.integers(2, 200), h=st.integers(1, 4000), w=st.integers(1, 4000), model=models)
def test_video_tokens_equal_the_video_processor(n, h, w, model):
    assume(_ratio_ok(h, w) and (model != "qwen3-vl" or _ratio_ok(max(h, 32), max(w, 32))))
    assert count_video_tokens(n, h, w, model=model, special_tokens=False) == rs.hf_video_tokens(n, h, w, model)


def test_qwen3_video_wrappers_per_frame_group_match_the_processor_prompt():
    """Qwen3-VL writes <t seconds><|vision_start|>pads<|vision_end|> per temporal patch: +2 per group."""
    n, h, w = 8, 360, 640
    rh, rw = smart_resize_frames(n, h, w)
    grid = (n // 2, rh // 16, rw // 16)
    text = rs.hf3_video_placeholder(grid, list(range(0, 4 * n, 4)), 24.0)
    pads, starts = text.count("<|video_pad|>"), text.count("<|vision_start|>")
    assert count_video_tokens(n, h, w, model="qwen3-vl") == pads + 2 * starts
    assert count_video_tokens(n, h, w, model="qwen3-vl", special_tokens=False) == pads
    assert count_video_tokens(n, h, w, model="qwen2.5-vl") == count_video_tokens(n, h, w, special_tokens=False) + 2


def test_bad_model_and_frames_are_named():
    with pytest.raises(ValueError, match="model must be one of"):
        count_image_tokens(100, 100, model="qwen4-vl")
    with pytest.raises(ValueError, match="num_frames"):
        count_video_tokens(1, 100, 100, model="qwen3-vl")  # a Qwen3-VL clip needs >= 2 frames (as transformers)
