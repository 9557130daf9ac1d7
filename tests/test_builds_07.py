"""Notebook 07's inline builds (cells ``# build: ...``) equal the package, so the lesson and the core cannot drift.

- ``smart_nframes`` / ``frame_indices`` vs ``media.smart_nframes`` / ``media.frame_indices`` (default preset, with
  and without ``fps`` / ``nframes``), refusing the same inputs;
- ``video_grid`` (per-frame budget, qwen-vl-utils' ``smart_resize``, tube grid, tokens) vs ``media.plan_video``;
- ``video_position_ids`` vs ``rope.mrope_position_ids`` on a video segment after text.
All bit-equal (integers), hypothesis over frame counts, frame rates, sizes and grids.
"""

import pytest
import torch
from hypothesis import assume, example, given
from hypothesis import strategies as st
from nbbuild import notebook_build

from qwenvl_study import media
from qwenvl_study.rope import VIDEO_TOKEN_ID, mrope_position_ids, segments_to_batch

pytestmark = pytest.mark.usefixtures("one_thread")

NB = "07_video_and_gif"
frame_rates = st.sampled_from([1.0, 5.0, 10.0, 23.976, 24.0, 25.0, 29.97, 30.0, 60.0, 120.0])
options = st.one_of(st.just({}), st.builds(lambda f: {"fps": f}, st.sampled_from([0.5, 1.0, 3.0, 4.0])),
                    st.builds(lambda n: {"nframes": n}, st.integers(1, 60)))


@given(total=st.integers(1, 200_000), fps=frame_rates, opts=options)
def test_smart_nframes_and_frame_indices_equal_the_package(total, fps, opts):
    ns = notebook_build(NB, "smart_nframes")
    try:
        expected = media.smart_nframes(dict(opts), total, fps)
    except ValueError:
        with pytest.raises(ValueError):
            ns["smart_nframes"](total, fps, **opts)
        return
    n = ns["smart_nframes"](total, fps, **opts)
    assert n == expected
    assert ns["frame_indices"](total, n) == media.frame_indices(total, n)


thin = st.tuples(st.integers(8, 40), st.floats(100, 200)).map(lambda s: (s[0], int(s[0] * s[1])))  # [H, W]
sizes = st.one_of(st.tuples(st.integers(8, 4000), st.integers(8, 4000)), thin, thin.map(lambda s: s[::-1]))


@given(total=st.one_of(st.integers(2, 2_000), st.integers(2, 200_000)), fps=frame_rates, size=sizes,
       opts=st.one_of(st.just({}), st.builds(lambda f: {"fps": f}, st.sampled_from([0.5, 1.0, 3.0]))))
@example(total=36_000, fps=30.0, size=(20, 4000), opts={})  # 20 min of 20x4000: the shrink clamps H' to 28
@example(total=36_000, fps=30.0, size=(4000, 20), opts={})  # ... and W'
def test_video_grid_equals_plan_video(total, fps, size, opts):
    """Thin frames (aspect 100-200) of long videos reach the shrink branch's >= 28 px clamp."""
    height, width = size
    assume(max(height, width) / min(height, width) <= 200)  # the package refuses aspect ratios over 200
    video_grid = notebook_build(NB, "video_grid")["video_grid"]
    try:
        plan = media.plan_video(total, fps, height, width, dict(opts))
    except ValueError:
        with pytest.raises(ValueError):
            video_grid(total, fps, height, width, **opts)
        return
    n, size, grid, tokens = video_grid(total, fps, height, width, **opts)
    assert (n, size, grid, tokens) == (plan.nframes, (plan.resized_height, plan.resized_width), plan.grid_thw,
                                       plan.tokens)


even = st.integers(1, 12).map(lambda x: 2 * x)


@given(t=st.integers(1, 40), h=even, w=even, before=st.integers(0, 4))
def test_video_position_ids_equal_the_package(t, h, w, before):
    video_position_ids = notebook_build(NB, "video_position_ids")["video_position_ids"]
    case = segments_to_batch([[("text", before), ("video", (t, h, w)), ("text", 1)]])
    ids, next_id = video_position_ids((t, h, w), start=before + 1)  # after the text and <|vision_start|>
    package, _ = mrope_position_ids(**case)
    pads = case["input_ids"][0] == VIDEO_TOKEN_ID
    assert torch.equal(ids, package[:, 0, pads])
    assert next_id == int(package[0, 0, -2])  # <|vision_end|> gets the next segment's first id
