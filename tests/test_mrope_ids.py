"""M-RoPE position ids (``mrope_position_ids``) vs transformers, the paper's rule, and its conventions.

Three kinds of evidence:
- parity with the installed transformers (5.x ``Qwen2VLModel.get_rope_index``) on every case where
  its rule agrees with the paper's (hypothesis over random rows, grids and padding);
- the one case where it does not (a video with more temporal patches than merged rows/columns),
  pinned with both outputs;
- small hand-worked examples pinning the release-time conventions (ids derived in comments), and
  hypothesis properties of the rule itself (start = previous max + 1, raster offsets, padding).
"""

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from qwenvl_study.course import reference as ref
from qwenvl_study.rope import (IMAGE_TOKEN_ID, VIDEO_TOKEN_ID, VISION_END_TOKEN_ID, VISION_START_TOKEN_ID,
                               mrope_cos_sin, mrope_position_ids, rope_cos_sin, segments_to_batch)

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: threads only add synchronisation (conftest)

VS, VE, IMG, VID = VISION_START_TOKEN_ID, VISION_END_TOKEN_ID, IMAGE_TOKEN_ID, VIDEO_TOKEN_ID
T = 872  # an ordinary text token

# --------------------------------------------------------------------------------------------- strategies
even = st.integers(1, 4).map(lambda x: 2 * x)  # h, w in patches: 2..8 (h', w' = 1..4 merged)
text_seg = st.tuples(st.just("text"), st.integers(1, 4))
image_seg = st.tuples(st.just("image"), st.tuples(st.just(1), even, even))


@st.composite
def video_seg(draw, agree: bool | None):
    """A video grid; ``agree=True``: t <= max(h', w') (transformers 5.x and the paper agree)."""
    h, w = draw(even), draw(even)
    widest = max(h, w) // 2
    t = draw(st.integers(1, widest) if agree else st.integers(1, 6))
    return "video", (t, h, w)


@st.composite
def batches(draw, agree: bool | None = None, pad_side=None):
    rows = draw(st.lists(st.lists(st.one_of(text_seg, image_seg, video_seg(agree)), min_size=1, max_size=5),
                         min_size=1, max_size=3))
    side = pad_side or draw(st.sampled_from(["left", "right"]))
    longest = segments_to_batch(rows)["input_ids"].shape[1]
    case = segments_to_batch(rows, pad_side=side, length=longest + draw(st.integers(0, 3)))
    return rows, case


def _videos_agree(rows) -> bool:
    return all(v[0] <= max(v[1], v[2]) // 2 for row in rows for kind, v in row if kind == "video")


# --------------------------------------------------------------------------------------------- parity
@given(data=batches(agree=True))
def test_ids_equal_transformers_where_the_rules_agree(data):
    """Every video has t <= max(h', w'), so transformers 5.x must give our ids on every real token."""
    _, case = data
    ids, deltas = mrope_position_ids(**case)
    hf_ids, hf_deltas = ref.hf_rope_index(**case)
    real = case["attention_mask"].bool()  # [B, L]
    assert torch.equal(ids[:, real], hf_ids[:, real])
    # conventions: masked places 1 (release-time) vs 0 (5.x); deltas over padded vs unpadded length
    assert (ids[:, ~real] == 1).all() and (hf_ids[:, ~real] == 0).all()
    length, n_real = real.shape[1], real.sum(-1, keepdim=True)
    assert torch.equal(hf_deltas, deltas + (length - n_real))


@given(data=batches(agree=None))
def test_transformers_5x_differs_exactly_when_a_video_is_longer_than_wide(data):
    """5.x advances by max(h', w') after a video: equal ids iff no video has t > max(h', w')."""
    rows, case = data
    ids, _ = mrope_position_ids(**case)
    hf_ids, _ = ref.hf_rope_index(**case)
    real = case["attention_mask"].bool()
    event(f"rules agree: {_videos_agree(rows)}")
    # a video is always followed by <|vision_end|>, so a long video always shifts what follows
    assert torch.equal(ids[:, real], hf_ids[:, real]) == _videos_agree(rows)


def test_drift_case_pinned_both_behaviours():
    """text, <vs>, video 3x4x4 (t=3 > h'=w'=2), <ve>, text — the paper vs transformers 5.x.

    ids 0, 1 for text and <vs>; the video starts at 2: t = 2, 3, 4 (one per temporal patch),
    h, w = 2..3. Its maximum id is 4, so the paper (and transformers 4.45) continue at 5: <ve> = 5,
    text = 6. transformers 5.x continues at 2 + max(h', w') = 4: <ve> = 4, text = 5 — <ve> gets the
    temporal id of the video's last two frames, the sequence's positions overlap.
    """
    case = segments_to_batch([[("text", 1), ("video", (3, 4, 4)), ("text", 1)]])
    assert case["input_ids"][0].tolist() == [T, VS] + [VID] * 12 + [VE, T]
    ids, deltas = mrope_position_ids(**case)
    hf_ids, hf_deltas = ref.hf_rope_index(**case)
    t_ids = [2] * 4 + [3] * 4 + [4] * 4
    h_ids = [2, 2, 3, 3] * 3
    w_ids = [2, 3, 2, 3] * 3
    assert ids[:, 0].tolist() == [[0, 1, *t_ids, 5, 6], [0, 1, *h_ids, 5, 6], [0, 1, *w_ids, 5, 6]]
    assert hf_ids[:, 0].tolist() == [[0, 1, *t_ids, 4, 5], [0, 1, *h_ids, 4, 5], [0, 1, *w_ids, 4, 5]]
    assert deltas.tolist() == [[7 - 16]] and hf_deltas.tolist() == [[6 - 16]]  # max + 1 - L (L = 16)
    # with t <= max(h', w') (video 2x4x4) the two agree: both continue at 2 + 2 = 4
    case = segments_to_batch([[("text", 1), ("video", (2, 4, 4)), ("text", 1)]])
    ids, _ = mrope_position_ids(**case)
    assert torch.equal(ids, ref.hf_rope_index(**case)[0]) and ids[0, 0, -2:].tolist() == [4, 5]


# --------------------------------------------------------------------------------------------- pinned examples
def test_text_image_text_worked_example():
    """text(2) <vs> image 1x4x4 <ve> text(1): the brief's "text(3) - image - text(2)".

    T=0, T=1, <vs>=2; the image (h' = w' = 2, 4 tokens in raster order) starts at 3: t stays 3,
    h = 3,3,4,4, w = 3,4,3,4; its max is 4, so <ve>=5, T=6. deltas = (6 + 1) - 9 tokens = -2.
    """
    case = segments_to_batch([[("text", 2), ("image", (1, 4, 4)), ("text", 1)]])
    ids, deltas = mrope_position_ids(**case)
    assert ids[:, 0].tolist() == [[0, 1, 2, 3, 3, 3, 3, 5, 6],
                                  [0, 1, 2, 3, 3, 4, 4, 5, 6],
                                  [0, 1, 2, 3, 4, 3, 4, 5, 6]]
    assert deltas.tolist() == [[-2]]


def test_non_square_image_worked_example():
    """<vs> image 1x4x6 <ve>: h' = 2 rows, w' = 3 columns; <vs>=0, image starts at 1, max 1+2 = 3, <ve>=4."""
    ids, deltas = mrope_position_ids(**segments_to_batch([[("image", (1, 4, 6))]]))
    assert ids[:, 0].tolist() == [[0, 1, 1, 1, 1, 1, 1, 4],
                                  [0, 1, 1, 1, 2, 2, 2, 4],
                                  [0, 1, 2, 3, 1, 2, 3, 4]]
    assert deltas.tolist() == [[5 - 8]]


def test_left_padded_batch_worked_example():
    """Row 0: T <vs> image 1x4x4 <ve> (7 tokens); row 1: T T T left-padded by 4.

    Row 0: T=0, <vs>=1, image t=2, h=2,2,3,3, w=2,3,2,3, <ve>=4 → deltas 5 - 7 = -2.
    Row 1: padded places 1 (release-time convention), then 0, 1, 2 → deltas 3 - 7 = -4.
    transformers 5.x: row 1's deltas = 3 - 3 = 0 = -4 + (7 - 3) (unpadded length), padded places 0.
    """
    case = segments_to_batch([[("text", 1), ("image", (1, 4, 4))], [("text", 3)]], pad_side="left")
    assert case["attention_mask"].tolist() == [[1] * 7, [0] * 4 + [1] * 3]
    ids, deltas = mrope_position_ids(**case)
    assert ids[:, 0].tolist() == [[0, 1, 2, 2, 2, 2, 4], [0, 1, 2, 2, 3, 3, 4], [0, 1, 2, 3, 2, 3, 4]]
    assert ids[:, 1].tolist() == [[1, 1, 1, 1, 0, 1, 2]] * 3
    assert deltas.tolist() == [[-2], [-4]]
    hf_ids, hf_deltas = ref.hf_rope_index(**case)
    assert hf_ids[:, 1].tolist() == [[0, 0, 0, 0, 0, 1, 2]] * 3 and hf_deltas.tolist() == [[-2], [0]]


def test_text_only_is_cumsum_of_the_mask_and_1d_rope():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    input_ids = torch.full_like(mask, T)
    ids, deltas = mrope_position_ids(input_ids, attention_mask=mask)
    assert ids.tolist() == [[[1, 1, 0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 1, 1, 1]]] * 3
    assert deltas.tolist() == [[3 - 5], [5 - 5], [2 - 5]]
    real = mask.bool()
    assert torch.equal(ids[0][real], (mask.cumsum(-1) - 1)[real])
    assert torch.equal(ids[:, real], ref.hf_rope_index(input_ids, attention_mask=mask)[0][:, real])
    plain, plain_deltas = mrope_position_ids(input_ids)  # no mask: 0..L-1, deltas 0
    assert plain.tolist() == [[list(range(5))] * 3] * 3 and plain_deltas.tolist() == [[0]] * 3
    # three equal rows: M-RoPE's cos/sin are 1D RoPE's, bit for bit
    cos, sin = mrope_cos_sin(ids, 128, 1e6, (16, 24, 24))
    cos1, sin1 = rope_cos_sin(ids[0], 128, 1e6)
    assert torch.equal(cos, cos1) and torch.equal(sin, sin1)


# --------------------------------------------------------------------------------------------- properties
def _units(row):
    """(kind, n_tokens, grid) per position unit of a row: each text token, <vs>, the pads, <ve>."""
    for kind, value in row:
        if kind == "text":
            yield from [("text", 1, None)] * value
        else:
            t, h, w = value
            yield from [("text", 1, None), (kind, t * h * w // 4, (t, h // 2, w // 2)), ("text", 1, None)]


@given(data=batches(agree=None))
def test_the_paper_rule_properties(data):
    rows, case = data
    ids, deltas = mrope_position_ids(**case)
    B, L = case["input_ids"].shape
    assert ids.shape == (3, B, L) and ids.dtype == torch.long
    assert deltas.shape == (B, 1) and deltas.dtype == torch.long
    real = case["attention_mask"].bool()
    assert (ids[:, real] >= 0).all() and (ids[:, ~real] == 1).all()
    for b, row in enumerate(rows):
        row_ids = ids[:, b, real[b]]  # [3, n_real]
        prev_max, pos = -1, 0
        for kind, n, grid in _units(row):
            unit = row_ids[:, pos:pos + n]  # [3, n]
            # each segment starts at the previous segment's maximum id + 1
            assert unit.min() == prev_max + 1
            if kind == "text":  # the same id on t, h, w
                assert (unit == unit[0]).all()
            else:  # raster order over (t, h', w'); an image (t = 1) keeps t constant
                offsets = torch.stack(torch.unravel_index(torch.arange(n), grid))  # [3, n]
                assert torch.equal(unit - unit.min(), offsets)
            prev_max, pos = int(unit.max()), pos + n
        assert pos == row_ids.shape[1]
        assert int(deltas[b]) == prev_max + 1 - L  # max id + 1 - padded length


@given(data=batches(agree=None, pad_side="left"), extra=st.integers(1, 4))
def test_padding_does_not_move_real_ids(data, extra):
    rows, left = data
    right = segments_to_batch(rows, pad_side="right", length=left["input_ids"].shape[1] + extra)
    ids_l, deltas_l = mrope_position_ids(**left)
    ids_r, deltas_r = mrope_position_ids(**right)
    tight, deltas_t = mrope_position_ids(**segments_to_batch([row for row in rows[:1]]))
    assert torch.equal(ids_l[:, left["attention_mask"].bool()], ids_r[:, right["attention_mask"].bool()])
    len_l, len_r = left["input_ids"].shape[1], right["input_ids"].shape[1]
    assert torch.equal(deltas_l + len_l, deltas_r + len_r)  # the same max id + 1
    assert torch.equal(ids_l[:, 0, left["attention_mask"][0].bool()], tight[:, 0])  # same as alone, unpadded
    assert int(deltas_t) + tight.shape[-1] == int(deltas_l[0]) + len_l


@given(data=batches(agree=None, pad_side="left"), k=st.integers(1, 4))
def test_deltas_continue_the_ids_during_generation(data, k):
    """Left-padded prompt + k generated text tokens: id of the j-th new token = L_prompt + j + delta."""
    _, prompt = data
    ids, deltas = mrope_position_ids(**prompt)
    B, L = prompt["input_ids"].shape
    full = dict(prompt, input_ids=torch.cat([prompt["input_ids"], torch.full((B, k), T)], dim=1),
                attention_mask=torch.cat([prompt["attention_mask"], torch.ones(B, k, dtype=torch.long)], dim=1))
    full_ids, _ = mrope_position_ids(**full)
    assert torch.equal(full_ids[:, :, :L], ids)
    cache_position = torch.arange(L, L + k)  # [k] index of each new token in the padded row
    assert torch.equal(full_ids[:, :, L:], (cache_position + deltas).expand(3, B, k))


# --------------------------------------------------------------------------------------------- errors
def _one(tokens):
    return torch.tensor([tokens])


@pytest.mark.parametrize("call, message", [
    (lambda: mrope_position_ids(_one([VS, IMG, IMG, IMG, VE]), torch.tensor([[1, 4, 4]])),
     r"image 0: grid \(t=1, h=4, w=4\) needs t\*h\*w/merge\^2 = 4 pad tokens, its run holds 3"),
    (lambda: mrope_position_ids(_one([VS, IMG, VE]), torch.tensor([[1, 2, 2], [1, 2, 2]])),
     r"input_ids hold 1 image pad tokens .* in 1 run\(s\) \(1 at row 0, position 1\); image_grid_thw has 2 image"),
    (lambda: mrope_position_ids(_one([T, VS, VID, VE])),
     r"input_ids hold 1 video pad tokens .*video_grid_thw has 0 video\(s\)"),
    (lambda: mrope_position_ids(_one([VS, IMG, VE]), torch.tensor([[1, 3, 4]])),
     r"image_grid_thw\[0\] = \(t=1, h=3, w=4\).*spatial_merge_size=2"),
    (lambda: mrope_position_ids(_one([VS] + [VID] * 2 + [VE]), video_grid_thw=torch.tensor([[1, 2, 2], [2, 0, 2]])),
     r"video_grid_thw\[1\] = \(t=2, h=0, w=2\)"),
    (lambda: mrope_position_ids(_one([T, IMG, VE]), torch.tensor([[1, 2, 2]])),
     r"image 0: .* row 0, position 1 is not directly preceded by <\|vision_start\|> \(id 151652\)"),
    (lambda: mrope_position_ids(torch.tensor([T, T])), r"input_ids must have shape \[batch, seq_len\], got \[2\]"),
    (lambda: mrope_position_ids(torch.tensor([[0.5]])), r"input_ids must hold integer token ids"),
    (lambda: mrope_position_ids(_one([T, T]), attention_mask=torch.ones(1, 3)), r"attention_mask must have the shape"),
    (lambda: mrope_position_ids(_one([T, T]), attention_mask=torch.tensor([[1, 2]])), r"only 0 \(padding\) and 1"),
    (lambda: mrope_position_ids(_one([VS, IMG, VE]), torch.tensor([1, 2, 2])), r"image_grid_thw must have shape"),
    (lambda: mrope_position_ids(_one([VS, IMG, VE]), torch.tensor([[1.0, 2, 2]])), r"must hold integers"),
    (lambda: mrope_position_ids(_one([T]), spatial_merge_size=0), r"spatial_merge_size must be an integer >= 1"),
])
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_masked_places_inside_a_row_are_skipped_like_the_references():
    """Both references drop masked places before counting; ours compacts such rows the same way."""
    input_ids = torch.tensor([[T, 5, T, VS] + [IMG] * 4 + [VE] + [T] * 5,  # place 1: a masked word
                              [T, VS] + [VID] * 4 + [0] + [VID] * 4 + [VE, T, T]])  # place 6: inside the video
    mask = torch.ones_like(input_ids)
    mask[0, 1] = mask[1, 6] = 0
    video = torch.tensor([[2, 4, 4]])
    ids, deltas = mrope_position_ids(input_ids, torch.tensor([[1, 4, 4]]), video, mask)
    hf_ids, hf_deltas = ref.hf_rope_index(input_ids, torch.tensor([[1, 4, 4]]), video, mask)
    real = mask.bool()
    assert torch.equal(ids[:, real], hf_ids[:, real]) and (ids[:, ~real] == 1).all()
    assert torch.equal(hf_deltas, deltas + (real.shape[1] - real.sum(-1, keepdim=True)))
    # row 1 gets the ids of the same tokens written without the masked place
    alone, _ = mrope_position_ids(input_ids[1:, real[1]], video_grid_thw=video)
    assert torch.equal(ids[:, 1, real[1]], alone[:, 0])


def test_masked_pad_tokens_are_ignored_like_the_reference():
    """A pad token under attention_mask == 0 is padding, not an image token (both references drop it)."""
    ids = _one([IMG, VS, IMG, VE])
    mask = torch.tensor([[0, 1, 1, 1]])
    ours, _ = mrope_position_ids(ids, torch.tensor([[1, 2, 2]]), attention_mask=mask)
    assert ours.tolist() == [[[1, 0, 1, 2]]] * 3
    assert torch.equal(ours[:, mask.bool()], ref.hf_rope_index(ids, torch.tensor([[1, 2, 2]]), None, mask)[0][:, mask.bool()])


def test_segments_to_batch_lays_out_tokens_like_the_processor():
    case = segments_to_batch([[("text", [7, 8]), ("image", (1, 2, 4))], [("video", (2, 2, 2))]], pad_side="right",
                             length=7)
    assert case["input_ids"].tolist() == [[7, 8, VS, IMG, IMG, VE, 151643], [VS, VID, VID, VE, 151643, 151643, 151643]]
    assert case["attention_mask"].tolist() == [[1] * 6 + [0], [1] * 4 + [0] * 3]
    assert case["image_grid_thw"].tolist() == [[1, 2, 4]] and case["video_grid_thw"].tolist() == [[2, 2, 2]]
    assert segments_to_batch([[("text", 2)]])["image_grid_thw"] is None
    for rows, kwargs, message in [([[("audio", 3)]], {}, "segment kind must be"),
                                  ([[("image", (1, 3, 4))]], {}, r"row 0: image grid \(t=1, h=3, w=4\)"),
                                  ([[("text", 5)]], {"length": 4}, "length=4 is shorter than the longest row"),
                                  ([[("text", 5)]], {"pad_side": "middle"}, "pad_side must be")]:
        with pytest.raises(ValueError, match=message):
            segments_to_batch(rows, **kwargs)


def test_segments_to_batch_bad_segments():
    with pytest.raises(ValueError, match="a text segment needs a length >= 0, got -1"):
        segments_to_batch([[("text", -1)]])
    with pytest.raises(ValueError, match=r"image grid must be \(t, h, w\), got \(1, 2\)"):
        segments_to_batch([[("image", (1, 2))]])
