"""Solutions to the exercises of notebook 03 "M-RoPE"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/03_mrope.py`` works too).
"""

import torch

from qwenvl_study import rope
from qwenvl_study.course import reference as ref
from qwenvl_study.resolution import smart_resize
from qwenvl_study.rope import VIDEO_TOKEN_ID, mrope_position_ids, segments_to_batch

# 1. A 56x84 image: both sides are multiples of 28 and 56*84 = 4,704 pixels lie in [3136, 12845056], so
#    smart_resize keeps it: 4x6 patches, grid (1, 4, 6) -> 2x3 merged = 6 pad tokens.
#    Tokens: text 0, 1; <|vision_start|> 2; the image starts at 3: t = 3 for all six, h = 3, 3, 3, 4, 4, 4,
#    w = 3, 4, 5, 3, 4, 5; its maximum is 3 + max(1, 2, 3) - 1 = 5, so <|vision_end|> gets 6 and the text 7.
#    L = 2 + 1 + 6 + 1 + 1 = 11 tokens, max id + 1 = 8: delta = 8 - 11 = -3; the first generated token sits at
#    cache position 11 and gets id 11 + (-3) = 8 on t, h and w.
assert smart_resize(56, 84) == (56, 84)
case = segments_to_batch([[("text", 2), ("image", (1, 4, 6)), ("text", 1)]])
ids, delta = mrope_position_ids(**case)
by_hand = [[0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7],
           [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7],
           [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]]
assert ids[:, 0].tolist() == by_hand and int(delta) == -3 and case["input_ids"].shape[1] + int(delta) == 8
print("1. t", by_hand[0], "| h", by_hand[1], "| w", by_hand[2], "| delta -3, the next id 8")

# 2. (a) Text has the same id on all three rows, so any split gives the same angles: text cos/sin do not change.
#    With [64, 0, 0] every pair reads the t id, which is constant over an image: its six tokens get identical
#    cos/sin, so q.k between two image tokens no longer depends on their row or column — the image is a bag of
#    tokens to attention, its 2D layout lost (the 1D order is lost too: all share one position).
#    (b) [8, 28, 28] is legal: text is unchanged again; image tokens still differ, time just gets fewer (the
#    fastest) frequencies and space more. (c) [16, 24, 16] sums to 56, not head_dim / 2 = 64: refused.
hd, theta = 128, 1e6
text_ids, _ = mrope_position_ids(**segments_to_batch([[("text", 7)]]))
image_ids = ids[:, :, 3:9]  # the six image tokens of exercise 1
for section in ([64, 0, 0], [8, 28, 28], [0, 0, 64]):
    assert all(torch.equal(a, b) for a, b in zip(rope.mrope_cos_sin(text_ids, hd, theta, section),
                                                 rope.mrope_cos_sin(text_ids, hd, theta, [16, 24, 24])))
cos, sin = rope.mrope_cos_sin(image_ids, hd, theta, [64, 0, 0])
assert (cos == cos[:, :1]).all() and (sin == sin[:, :1]).all()  # six identical rotations
cos, _ = rope.mrope_cos_sin(image_ids, hd, theta, [8, 28, 28])
assert len({tuple(row.tolist()) for row in cos[0]}) == 6  # six different rotations
try:
    rope.mrope_cos_sin(image_ids, hd, theta, [16, 24, 16])
    raise AssertionError("[16, 24, 16] should be refused")
except ValueError as err:
    assert "summing to head_dim/2 = 64" in str(err)
print("2. text: unchanged by any split; [64, 0, 0]: all 6 image tokens rotate alike (layout lost); "
      "[8, 28, 28]: legal; [16, 24, 16]: refused (sums to 56, not 64)")

# 3. h' = w' = 4. Ours: the text after the video starts at s + max(t, 4) + 1 (s = 2: text, <vs>); 5.x at
#    s + max(h', w') + 1 = 7 always. They agree for t <= 4 and differ from t = 5 on: t > max(h', w').
#    t temporal patches = 2t frames = t seconds at 2 fps, so any such video longer than 4 s drifts. With t = 5
#    the text after the video gets 5.x's t id 7 (<|vision_end|> 6), and the video's last temporal patch
#    (t id 2 + 4 = 6, its 16 tokens) shares t id 6 with <|vision_end|>; patches with t id >= 6 collide.
first = None
for t in range(1, 9):
    case = segments_to_batch([[("text", 1), ("video", (t, 8, 8)), ("text", 1)]])
    ours, _ = mrope_position_ids(**case)
    theirs, _ = ref.hf_rope_index(**case)
    assert int(ours[0, 0, -1]) == 2 + max(t, 4) + 1 and int(theirs[0, 0, -1]) == 7
    if first is None and not torch.equal(ours, theirs):
        first = t
        pads = case["input_ids"][0] == VIDEO_TOKEN_ID
        shared = int((ours[0, 0, pads] >= int(theirs[0, 0, -2])).sum())  # video t ids >= 5.x's <|vision_end|>
assert first == 5 and shared == 16
print(f"3. they differ from t = {first} (> max(h', w') = 4): a 112x112 video longer than 4 s at 2 fps; "
      f"then {shared} video tokens share t ids with what follows in 5.x")
