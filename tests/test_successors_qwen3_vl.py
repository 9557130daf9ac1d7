"""Qwen3-VL's changes (qwenvl_study.successors.qwen3_vl) vs transformers' Qwen3VL*.

- the ViT (16 px patches with a bias, learned positions interpolated beside 2D-RoPE, DeepStack mergers)
  == Qwen3VLVisionModel: pooler_output and every deepstack feature, same weights;
- the interpolated position embeddings == vision_utils' gather indices and weights (hypothesis over grids);
- interleaved MRoPE == Qwen3VLTextRotaryEmbedding (hypothesis over ids), the frequency assignment pinned;
- M-RoPE ids == 5.x Qwen3VLModel.get_rope_index on every real token (no drift: frame groups have t = 1);
- textual timestamps == Qwen3VLProcessor; DeepStack's addition == Qwen3VLTextModel._deepstack_process;
- grounding on the 0-1000 grid.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenvl_study.course import reference_successors as rs
from qwenvl_study.rope import mrope_cos_sin, segments_to_batch
from qwenvl_study.successors import qwen3_vl as q

pytestmark = pytest.mark.usefixtures("one_thread")

even = st.integers(1, 12).map(lambda x: 2 * x)


# --------------------------------------------------------------------------------------------- the ViT
@pytest.fixture(scope="module")
def towers():
    hf = rs.hf3_vision_model()
    return hf, q.VisionTransformer.from_transformers(hf, attn_backend="eager")


@pytest.mark.parametrize("grid", [[[1, 16, 20], [2, 8, 12], [1, 10, 6]], [[1, 6, 6]], [[2, 4, 14]]])
def test_vit_and_deepstack_equal_transformers(towers, grid):
    hf, ours = towers
    g = torch.tensor(grid)
    x = torch.randn(int(g.prod(-1).sum()), 3 * 2 * 16 * 16)
    with torch.no_grad():
        want = hf(x, grid_thw=g)
        merged, deepstack = ours(x, g)
    assert merged.shape == want.pooler_output.shape == (x.shape[0] // 4, 24)
    assert (merged - want.pooler_output).abs().max() <= 1e-5
    assert len(deepstack) == len(want.deepstack_features) == 2
    for a, b in zip(deepstack, want.deepstack_features):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-5


def test_loading_is_strict_and_names_the_tensor(towers):
    hf, ours = towers
    sd = dict(hf.state_dict())
    sd["deepstack_merger_list.5.norm.weight"] = sd["merger.norm.weight"]
    with pytest.raises(ValueError, match=r"1 unexpected tensors:\n    deepstack_merger_list\.5\.norm\.weight"):
        q.load_strict(q.VisionTransformer(ours.config), sd, "qwen3_vl.VisionTransformer")


@settings(max_examples=30)
@given(grid=st.lists(st.tuples(st.integers(1, 2), even, even), min_size=1, max_size=3), side=st.sampled_from([3, 4, 7]))
def test_position_embeddings_equal_the_reference_gather(grid, side):
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights

    table = torch.randn(side * side, 8)
    g = torch.tensor(grid)
    idx, wts = get_vision_interpolation_indices_and_weights(g, num_grid_per_side=side, mode="bilinear",
                                                           align_corners=True, spatial_merge_size=2)
    want = (table[idx] * wts[:, :, None]).sum(1)  # what Qwen3VLVisionModel adds after the patch embedding
    got = q.position_embeddings(table, g)
    assert (got - want).abs().max() <= 1e-5


def test_position_embeddings_corners_are_the_table_corners():
    table = torch.arange(16.0).view(16, 1)  # 4x4 table holding its own index
    pe = q.position_embeddings(table, [[1, 6, 8]]).view(-1)  # merge-group order
    # first patch = top-left of the grid = table[0]; last patch of the last group = bottom-right = table[15]
    assert pe[0] == 0 and pe[-1] == 15


# --------------------------------------------------------------------------------------------- interleaved MRoPE
def test_frequency_assignment_pinned():
    chunk = q.chunked_axis_of_pair(128, (16, 24, 24))
    inter = q.interleaved_axis_of_pair(128, (24, 20, 20))
    assert chunk[:16] == [0] * 16 and chunk[16:40] == [1] * 24 and chunk[40:] == [2] * 24
    assert inter[:6] == [0, 1, 2, 0, 1, 2] and inter[60:] == [0, 0, 0, 0]
    assert [inter.count(a) for a in range(3)] == [24, 20, 20]


def test_frequency_assignment_read_from_transformers():
    """Give one axis id 1 and the others 0: the pairs transformers rotates (sin != 0) are that axis's pairs."""
    for axis in range(3):
        pos = torch.zeros(3, 1, 1, dtype=torch.long)
        pos[axis] = 1
        _, sin = rs.hf3_text_rotary_cos_sin(pos)
        moved = (sin[0, 0, :64] != 0).nonzero().flatten().tolist()
        assert moved == [j for j, a in enumerate(q.interleaved_axis_of_pair(128, (24, 20, 20))) if a == axis]


@given(ids=st.lists(st.integers(0, 100_000), min_size=3 * 2 * 5, max_size=3 * 2 * 5),
       theta=st.sampled_from([1e4, 1e6, 5e6]))
def test_interleaved_mrope_equals_transformers(ids, theta):
    pos = torch.tensor(ids).view(3, 2, 5)
    cos, sin = q.interleaved_mrope_cos_sin(pos, 128, theta)
    hf_cos, hf_sin = rs.hf3_text_rotary_cos_sin(pos, 128, theta)
    assert (cos - hf_cos).abs().max() <= 1e-6 and (sin - hf_sin).abs().max() <= 1e-6


def test_interleaved_differs_from_chunked_only_when_axes_differ():
    text = torch.arange(7).expand(3, 1, 7)  # t = h = w: both layouts are 1D RoPE
    assert torch.equal(q.interleaved_mrope_cos_sin(text, 128, 5e6)[0], mrope_cos_sin(text, 128, 5e6, (24, 20, 20))[0])
    vision = torch.tensor([[[3]], [[5]], [[9]]])
    assert not torch.equal(q.interleaved_mrope_cos_sin(vision, 128, 5e6)[0],
                           mrope_cos_sin(vision, 128, 5e6, (24, 20, 20))[0])


# --------------------------------------------------------------------------------------------- ids and timestamps
@st.composite
def batches(draw):
    """Rows of text, images and videos written as Qwen3-VL writes them: per frame group a timestamp (text)
    then its own <|vision_start|> pads <|vision_end|>; video_grid_thw keeps one (t, h, w) per video."""
    rows, videos = [], []
    for _ in range(draw(st.integers(1, 3))):
        row = []
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["text", "image", "video"]))
            h, w = draw(even.filter(lambda x: x <= 8)), draw(even.filter(lambda x: x <= 8))
            if kind == "text":
                row.append(("text", draw(st.integers(1, 4))))
            elif kind == "image":
                row.append(("image", (1, h, w)))
            else:
                t = draw(st.integers(1, 5))
                videos.append((t, h, w))
                for _ in range(t):
                    row += [("text", 5), ("video", (1, h, w))]  # "<0.5 seconds>" then the frame group
        rows.append(row)
    longest = segments_to_batch(rows)["input_ids"].shape[1]
    case = segments_to_batch(rows, pad_side=draw(st.sampled_from(["left", "right"])),
                             length=longest + draw(st.integers(0, 3)))
    case["video_grid_thw"] = torch.tensor(videos) if videos else None
    return case


@given(case=batches())
def test_rope_index_equals_transformers_on_every_real_token(case):
    ids, deltas = q.rope_index(**case)
    hf_ids, hf_deltas = rs.hf3_rope_index(**case)
    real = case["attention_mask"].bool()
    assert torch.equal(ids[:, real], hf_ids[:, real])
    assert torch.equal(hf_deltas, deltas + (real.shape[1] - real.sum(-1, keepdim=True)))


def test_a_video_frame_group_has_constant_temporal_id_and_time_lives_in_text():
    """<vs> 4 pads <ve> per frame group (1x4x4): each group starts at the previous max + 1, t = h start."""
    rows = [[("text", 5), ("video", (1, 4, 4)), ("text", 5), ("video", (1, 4, 4))]]
    case = segments_to_batch(rows)
    ids, _ = q.rope_index(case["input_ids"], video_grid_thw=torch.tensor([[2, 4, 4]]))
    # text 0..4, <vs> 5, group at 6: t 6 6 6 6, h 6 6 7 7; <ve> 8, text 9..13, <vs> 14, group at 15
    assert ids[0, 0, :12].tolist() == [0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 8, 9]
    assert ids[0, 0, 17:21].tolist() == [15] * 4 and ids[1, 0, 17:21].tolist() == [15, 15, 16, 16]


@given(n=st.integers(1, 40), step=st.integers(1, 30), fps=st.sampled_from([1.0, 2.0, 23.976, 24.0, 25.0, 30.0, 60.0]))
def test_timestamps_equal_the_processor(n, step, fps):
    frames = list(range(0, n * step, step))
    assert q.video_timestamps(frames, fps) == rs.hf3_timestamps(frames, fps)


def test_video_placeholder_equals_the_processor():
    frames = [0, 12, 25, 37, 50, 62]
    grid = (3, 4, 6)  # 6 tokens per frame group
    ours = q.video_placeholder(q.video_timestamps(frames, 25.0), 6)
    assert ours == rs.hf3_video_placeholder(grid, frames, 25.0)
    assert ours.startswith("<0.2 seconds><|vision_start|>") and ours.count("<|vision_start|>") == 3


def test_deepstack_add_equals_transformers():
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel

    hidden = torch.randn(2, 7, 16)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, 2:5] = mask[1, 1:3] = True
    feature = torch.randn(5, 16)
    want = Qwen3VLTextModel._deepstack_process(None, hidden, mask, feature)
    assert torch.equal(q.deepstack_add(hidden, mask, feature), want)
    with pytest.raises(ValueError, match="5 visual places but 4 DeepStack rows"):
        q.deepstack_add(hidden, mask, feature[:4])


# --------------------------------------------------------------------------------------------- grounding
@given(w=st.integers(1, 4000), h=st.integers(1, 4000), data=st.data())
def test_grid_grounding_round_trip(w, h, data):
    x1 = data.draw(st.floats(0, w)); x2 = data.draw(st.floats(x1, w))
    y1 = data.draw(st.floats(0, h)); y2 = data.draw(st.floats(y1, h))
    box = q.to_grid((x1, y1, x2, y2), (w, h))
    assert all(0 <= v <= 1000 for v in box)
    back = q.from_grid(box, (w, h))
    assert all(abs(a - b) <= s / 2000 + 1e-9 for a, b, s in zip(back, (x1, y1, x2, y2), (w, h, w, h)))


@pytest.mark.parametrize("module, field", [("qwen2_5_vl", "fullatt_block_indexes"), ("qwen3_vl", "deepstack_visual_indexes")])
def test_block_indexes_outside_the_tower_are_refused(module, field):
    import dataclasses
    import importlib

    config_cls = importlib.import_module(f"qwenvl_study.successors.{module}").VisionConfig
    depth = config_cls().depth
    with pytest.raises(ValueError, match=rf"{field} \[{depth}\] lie outside the {depth} blocks"):
        dataclasses.replace(config_cls(), **{field: (0, depth)})
