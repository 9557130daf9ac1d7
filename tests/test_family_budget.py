"""The token budget: every cell recomputed from the references (transformers' Qwen2-VL resize
rule and InternVL tiling, qwen-vl-utils' video budget), plus the published table pinned."""

import math

import pytest

from qwenvl_study import format_budget, token_budget
from qwenvl_study.course import reference as ref
from qwenvl_study.family import budget as B


def _hf_qwen2vl_image_tokens(w, h):
    """transformers' processor: its patch count for the image, 4 patches (2x2) per merged token."""
    processor = ref.hf_image_processor()  # the published bounds
    return processor.get_number_of_image_patches(h, w, {}) // processor.merge_size**2


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
    """qwen-vl-utils 0.0.8's own fetch_video (on a shape-only stand-in: ``reference.qvu_plan_video``)
    picks the frames and the frame size; transformers' processor turns them into a grid (frames in
    pairs, 14-px patches, 4 per merged token)."""
    processor = ref.hf_image_processor()
    for seconds, fps, w, h in [(60, 30, 1280, 720), (10, 24, 1920, 1080), (1, 30, 640, 480), (600, 25, 3840, 2160),
                               (3, 60, 200, 2000)]:
        indices, (rh, rw) = ref.qvu_plan_video(int(seconds * fps), float(fps), h, w)
        n = len(indices)
        patches_per_frame = processor.get_number_of_image_patches(rh, rw, {})  # (rh, rw) is kept as it is
        item = B.BudgetInput("v", w, h, seconds=seconds, video_fps=fps)
        assert B.visual_tokens("Qwen2-VL", item) == math.ceil(n / 2) * patches_per_frame // 4
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
    with pytest.raises(ValueError, match="at least one input row"):
        format_budget({})
