"""Qwen2.5-VL's changes (qwenvl_study.successors.qwen2_5_vl) vs transformers' Qwen2_5_VL*.

- window_index == vision_utils.get_vision_window_index (hypothesis over grids and window sizes);
- the ViT (window + full attention, RMSNorm, SwiGLU) == Qwen2_5_VisionTransformerPretrainedModel, same weights;
- absolute-time M-RoPE == 5.x Qwen2_5_VLModel.get_rope_index on real tokens wherever the rules agree,
  the drift (5.x advances by max(h', w') after a video) pinned by hand and as "equal <=> rules agree";
- grounding in absolute pixels of the resized image.
"""

import math

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from qwenvl_study.course import reference_successors as rs
from qwenvl_study.rope import VIDEO_TOKEN_ID, VISION_END_TOKEN_ID, VISION_START_TOKEN_ID, segments_to_batch
from qwenvl_study.successors import qwen2_5_vl as q

pytestmark = pytest.mark.usefixtures("one_thread")

even = st.integers(1, 14).map(lambda x: 2 * x)
grids = st.lists(st.tuples(st.integers(1, 3), even, even), min_size=1, max_size=3)


# --------------------------------------------------------------------------------------------- windows
@settings(max_examples=30)
@given(grid=grids, window=st.sampled_from([28, 56, 112, 224]))
def test_window_index_equals_transformers(grid, window):
    g = torch.tensor(grid)
    ours = q.window_index(g, window_size=window)
    theirs = rs.hf25_window_index(g, window_size=window)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_window_index_worked_example():
    """A 1x12x20 grid (168x280 px) → 6x10 merged tokens → windows of 4x4: 2 rows x 3 columns of windows,
    sizes 4x4, 4x4, 4x2 / 2x4, 2x4, 2x2 merged tokens (x4 patches each)."""
    index, cu = q.window_index([[1, 12, 20]])
    assert cu.tolist() == [0, 64, 128, 160, 192, 224, 240]
    assert index[:16].tolist() == [r * 10 + c for r in range(4) for c in range(4)]  # first window, raster order
    assert sorted(index.tolist()) == list(range(60))


# --------------------------------------------------------------------------------------------- the ViT
@pytest.fixture(scope="module")
def towers():
    hf = rs.hf25_vision_model()
    return hf, q.VisionTransformer.from_transformers(hf, attn_backend="eager")


@pytest.mark.parametrize("grid", [[[1, 16, 20], [2, 8, 12], [1, 10, 6]], [[1, 8, 8]], [[3, 18, 10]]])
def test_vit_equals_transformers(towers, grid):
    hf, ours = towers
    g = torch.tensor(grid)
    x = torch.randn(int(g.prod(-1).sum()), 3 * 2 * 14 * 14)
    with torch.no_grad():
        want = hf(x, grid_thw=g).pooler_output
        got = ours(x, g)
        got_sdpa = q.VisionTransformer.from_transformers(hf, attn_backend="sdpa")(x, g)
    assert got.shape == want.shape == (x.shape[0] // 4, 24)
    assert (got - want).abs().max() <= 1e-5 and (got_sdpa - want).abs().max() <= 1e-5


def test_block_is_rmsnorm_swiglu_and_loading_is_strict(towers):
    hf, ours = towers
    block = ours.blocks[0]
    assert type(block.norm1).__name__ == "RMSNorm" and hasattr(block.mlp, "gate_proj")
    assert type(ours.merger.ln_q).__name__ == "RMSNorm"
    sd = dict(hf.state_dict())
    sd.pop("blocks.0.mlp.up_proj.bias")
    with pytest.raises(ValueError, match=r"missing 1: blocks\.0\.mlp\.up_proj\.bias"):
        q.load_strict(q.VisionTransformer(ours.config), sd, "qwen2_5_vl.VisionTransformer")


def test_window_blocks_only_see_their_window():
    """With no full-attention block, changing one window's pixels changes only that window's merged tokens."""
    cfg = q.VisionConfig(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=24,
                         fullatt_block_indexes=())
    torch.manual_seed(1)
    model = q.VisionTransformer(cfg, attn_backend="eager").eval()
    grid = torch.tensor([[1, 16, 16]])  # 8x8 merged tokens = 2x2 windows of 4x4
    x = torch.randn(256, 1176)
    index, _ = q.window_index(grid)
    first_window = index[:16]  # merged tokens of window 0
    y = x.clone().view(64, 4, -1)
    y[first_window] += 1.0  # its 64 patches
    with torch.no_grad():
        a, b = model(x, grid), model(y.view(256, -1), grid)
    changed = (a - b).abs().amax(-1) > 1e-6
    assert changed[first_window].all() and changed.sum() == 16
    full = q.VisionTransformer(q.VisionConfig(**{**cfg.__dict__, "fullatt_block_indexes": (1,)}), "eager").eval()
    full.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert ((full(x, grid) - full(y.view(256, -1), grid)).abs().amax(-1) > 1e-6).all()  # one full block: all


# --------------------------------------------------------------------------------------------- absolute-time M-RoPE
text_seg = st.tuples(st.just("text"), st.integers(1, 4))
image_seg = st.tuples(st.just("image"), st.tuples(st.just(1), st.integers(1, 4).map(lambda x: 2 * x),
                                                   st.integers(1, 4).map(lambda x: 2 * x)))
video_seg = st.tuples(st.just("video"), st.tuples(st.integers(1, 5), st.integers(1, 4).map(lambda x: 2 * x),
                                                   st.integers(1, 4).map(lambda x: 2 * x)))
FPS = [0.5, 1.0, 2.0, 3.0, 4.0, 24.0, 25.0, 29.97]


@st.composite
def batches(draw):
    rows = draw(st.lists(st.lists(st.one_of(text_seg, image_seg, video_seg), min_size=1, max_size=5),
                         min_size=1, max_size=3))
    side = draw(st.sampled_from(["left", "right"]))
    longest = segments_to_batch(rows)["input_ids"].shape[1]
    case = segments_to_batch(rows, pad_side=side, length=longest + draw(st.integers(0, 3)))
    videos = [v for row in rows for kind, v in row if kind == "video"]
    spg = [2 / draw(st.sampled_from(FPS)) for _ in videos]  # temporal_patch_size / fps
    return videos, case, (spg or None), draw(st.sampled_from([1, 2, 4, 25]))


def _agree(videos, spg, tps) -> bool:
    """5.x continues at s + max(h', w'), ours at the video's max + 1 = s + max(last t id + 1, h', w')."""
    spg = spg or [1.0] * len(videos)
    last = [int((torch.arange(t) * (tps * torch.tensor(s, dtype=torch.float32))).long()[-1])  # float32, as both
            for (t, _, _), s in zip(videos, spg)]
    return all(lt + 1 <= max(h, w) // 2 for lt, (_, h, w) in zip(last, videos))


@settings(max_examples=80)
@given(data=batches())
def test_rope_index_equals_transformers_exactly_where_the_rules_agree(data):
    videos, case, spg, tps = data
    ids, deltas = q.rope_index(**case, second_per_grid_ts=spg, tokens_per_second=tps)
    hf_ids, hf_deltas = rs.hf25_rope_index(**case, second_per_grid_ts=spg, tokens_per_second=tps)
    real = case["attention_mask"].bool()
    agree = _agree(videos, spg, tps)
    event(f"rules agree: {agree}")
    assert torch.equal(ids[:, real], hf_ids[:, real]) == agree
    if agree:  # conventions as Qwen2-VL's: masked 1 vs 0, deltas over the padded vs unpadded length
        assert (ids[:, ~real] == 1).all() and (hf_ids[:, ~real] == 0).all()
        assert torch.equal(hf_deltas, deltas + (real.shape[1] - real.sum(-1, keepdim=True)))


def test_absolute_time_worked_example_and_drift_pinned():
    """text, video 3x4x4 at 1 fps (second_per_grid_t = 2 s), text; tokens_per_second = 2.

    The video starts at 1 (after T=0... <vs>=1: ids 0, 1), so s = 2; temporal ids s + floor(i * 2 * 2) =
    2, 6, 10 (4 ids per 2-second step); h, w = 2..3. Its max is 10: ours continue at 11 (<ve>), 12 (text).
    transformers 5.x continues at s + max(h', w') = 4: <ve> = 4, text = 5, inside the video's range.
    """
    case = segments_to_batch([[("text", 1), ("video", (3, 4, 4)), ("text", 1)]])
    ids, deltas = q.rope_index(**case, second_per_grid_ts=[2.0], tokens_per_second=2)
    hf_ids, _ = rs.hf25_rope_index(**case, second_per_grid_ts=[2.0], tokens_per_second=2)
    t_ids = [2] * 4 + [6] * 4 + [10] * 4
    assert ids[0, 0].tolist() == [0, 1, *t_ids, 11, 12]
    assert ids[1, 0].tolist() == [0, 1, *[2, 2, 3, 3] * 3, 11, 12]
    assert hf_ids[0, 0].tolist() == [0, 1, *t_ids, 4, 5]
    assert deltas.tolist() == [[13 - 16]]


def test_same_moment_same_temporal_id_across_fps():
    """Two 8-second videos, at 2 fps (8 temporal patches) and 1 fps (4): the frame group starting at second 4
    gets temporal offset 8 in both (absolute time); Qwen2-VL's frame index gives 4 vs 2."""
    ids = []
    for t, fps in ((8, 2.0), (4, 1.0)):
        case = segments_to_batch([[("text", 1), ("video", (t, 2, 2))]])
        tid, _ = q.rope_index(**case, second_per_grid_ts=[2 / fps], tokens_per_second=2)
        ids.append(tid[0, 0, 2:-1].tolist())  # one token per temporal patch (h' = w' = 1)
    s = 2
    assert [i - s for i in ids[0]] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert [i - s for i in ids[1]] == [0, 4, 8, 12]
    assert ids[0][4] == ids[1][2]  # second 4


def test_rope_index_bad_input_named():
    case = segments_to_batch([[("text", 1), ("video", (2, 4, 4))]])
    with pytest.raises(ValueError, match="second_per_grid_ts has 2 values for 1 videos"):
        q.rope_index(**case, second_per_grid_ts=[1.0, 2.0])
    bad = case["input_ids"].clone()
    bad[0, 1] = 872  # the pads no longer follow <|vision_start|>
    with pytest.raises(ValueError, match="do not follow <|vision_start|>"):
        q.rope_index(bad, video_grid_thw=case["video_grid_thw"])
    assert VISION_START_TOKEN_ID != VISION_END_TOKEN_ID != VIDEO_TOKEN_ID


# --------------------------------------------------------------------------------------------- grounding
@given(w=st.integers(56, 3000), h=st.integers(56, 3000), data=st.data())
def test_absolute_grounding_round_trip(w, h, data):
    x1 = data.draw(st.floats(0, w)); x2 = data.draw(st.floats(x1, w))
    y1 = data.draw(st.floats(0, h)); y2 = data.draw(st.floats(y1, h))
    box, (rw, rh) = q.to_absolute((x1, y1, x2, y2), (w, h))
    assert rw % 28 == 0 and rh % 28 == 0 and all(isinstance(v, int) for v in box)
    back = q.from_absolute(box, (w, h), (rw, rh))
    tol = (0.5 * w / rw + 1e-9, 0.5 * h / rh + 1e-9)  # half a resized pixel
    assert all(abs(a - b) <= tol[i % 2] for i, (a, b) in enumerate(zip(back, (x1, y1, x2, y2))))
    text = q.format_box_json(box, "cat")
    assert q.parse_boxes_json(f"```json\n[{text}]\n```") == [("cat", box)]
    assert math.isfinite(sum(back))
