"""The token budget: every cell recomputed from the references (transformers' Qwen2-VL resize
rule and InternVL tiling, qwen-vl-utils' video budget), plus the published table pinned."""

import math

import pytest

from qwenvl_study import format_budget, token_budget
from qwenvl_study import reference as ref
from qwenvl_study.family import budget as B


def _hf_qwen2vl_image_tokens(w, h):
    rh, rw = ref.hf_smart_resize(h, w)  # transformers' processor rule, published bounds
    return (rh // 28) * (rw // 28)  # one token per 28x28 square (2x2 merged 14px patches)


def test_every_image_cell_equals_the_reference():
    table = token_budget()
    for item in B.BUDGET_INPUTS:
        row = table[item.name]
        if item.is_video:
            continue
        assert row["Qwen2-VL"] == _hf_qwen2vl_image_tokens(item.width, item.height)
        cols, rows = ref.hf_tile_grid(item.width, item.height)  # agrees with the published rule at min_num=1
        assert row["InternVL2"] == 256 * (cols * rows + (1 if cols * rows > 1 else 0))
        assert (row["Qwen-VL"], row["BLIP-2"], row["LLaVA-1.5"]) == (256, 32, 576)


def test_video_cell_equals_qwen_vl_utils_budget():
    """qwen-vl-utils 0.0.8: smart_nframes at 2 fps, per-frame max pixels = the total budget shared by
    the frames (its float value), its smart_resize; then ceil(frames / 2) x (H/28) x (W/28)."""
    q = ref.qwen_vl_utils()
    for seconds, fps, w, h in [(60, 30, 1280, 720), (10, 24, 1920, 1080), (1, 30, 640, 480), (600, 25, 3840, 2160),
                               (3, 60, 200, 2000)]:
        n = q.smart_nframes({"fps": 2.0}, total_frames=int(seconds * fps), video_fps=fps)
        max_pixels = max(min(q.VIDEO_MAX_PIXELS, q.VIDEO_TOTAL_PIXELS / n * q.FRAME_FACTOR),
                         int(q.VIDEO_MIN_PIXELS * 1.05))
        rh, rw = q.smart_resize(h, w, min_pixels=q.VIDEO_MIN_PIXELS, max_pixels=max_pixels)
        item = B.BudgetInput("v", w, h, seconds=seconds, video_fps=fps)
        assert B.visual_tokens("Qwen2-VL", item) == math.ceil(n / 2) * (rh // 28) * (rw // 28)
        assert B.visual_tokens("LLaVA-1.5", item, video_as_frames=True) == n * 576


def test_published_table_pinned():
    """The numbers the lesson quotes (also checked above against the references)."""
    t = token_budget()
    assert t["224x224"] == {"Qwen-VL": 256, "BLIP-2": 32, "LLaVA-1.5": 576, "InternVL2": 256, "Qwen2-VL": 64}
    assert t["1920x1080"]["InternVL2"] == 2304 and t["1920x1080"]["Qwen2-VL"] == 2691
    assert t["2000x200 strip"]["InternVL2"] == 2816  # 10x1 tiles + thumbnail
    video = t["1-min video (1280x720, 30 fps)"]
    assert video["Qwen2-VL"] == 60 * 15 * 26  # 120 frames → 60 tubes of 420x728 → 15x26 tokens each
    assert video["InternVL2"] == 8 * 256 and video["LLaVA-1.5"] is None and video["Qwen-VL"] is None
    as_frames = token_budget(video_as_frames=True)["1-min video (1280x720, 30 fps)"]
    assert as_frames["LLaVA-1.5"] == 120 * 576 and as_frames["BLIP-2"] == 120 * 32


def test_format_and_bad_model():
    text = format_budget(token_budget())
    assert text.splitlines()[0].split(" | ")[0].strip() == "input" and "—" in text and "2,691" in text
    with pytest.raises(ValueError, match="model must be one of"):
        B.visual_tokens("GPT-4V", B.BUDGET_INPUTS[0])
