"""Solutions to the exercises of notebook 13 "After Qwen2-VL"; each asserts its answer.

Run by tests/test_successors_solutions.py (``python notebooks/solutions/13_after_qwen2_vl.py`` works too).
"""

import torch

from qwenvl_study.course import reference_successors as rs
from qwenvl_study.resolution import count_image_tokens, smart_resize
from qwenvl_study.rope import inverse_frequencies, segments_to_batch
from qwenvl_study.successors import qwen2_5_vl as q25
from qwenvl_study.successors import qwen3_vl as q3

# 1. Windows of a 420x588 image. It is already a multiple of 28 inside the bounds, so smart_resize keeps it:
#    30x42 patches -> 15x21 merged tokens -> windows of 4x4 merged tokens: ceil(15/4) = 4 rows (4, 4, 4, 3) and
#    ceil(21/4) = 6 columns (4, 4, 4, 4, 4, 1) = 24 windows; the smallest is 3x1 merged tokens = 12 patches.
assert smart_resize(420, 588) == (420, 588)
index, cu = q25.window_index([[1, 30, 42]])
sizes = torch.diff(cu)
assert len(sizes) == 4 * 6 == 24 and int(sizes.min()) == 3 * 1 * 4 and int(sizes.sum()) == 30 * 42
assert torch.equal(cu, rs.hf25_window_index(torch.tensor([[1, 30, 42]]))[1])
print(f"1. {len(sizes)} windows, the smallest {int(sizes.min())} patches")

# 2. A 20 s video at 2 fps: 40 frames -> t = 20 frame groups, second_per_grid_t = 2 / 2 = 1 s, so the temporal
#    step is 1 * tokens_per_second (2) = 2 ids per group: ids s + 0, 2, ..., 38 with s = 2 (after T and <vs>).
#    Ours: <|vision_end|> = max + 1 = 41, the text 42. transformers 5.x: s + max(h', w') = 2 + 8 = 10, text 11 —
#    inside the video's temporal range 2..40: 5.x's text overlaps the video.
case = segments_to_batch([[("text", 1), ("video", (20, 16, 16)), ("text", 1)]])
ours, _ = q25.rope_index(**case, second_per_grid_ts=[1.0], tokens_per_second=2)
theirs, _ = rs.hf25_rope_index(**case, second_per_grid_ts=[1.0], tokens_per_second=2)
assert ours[0, 0, -1] == 42 and theirs[0, 0, -1] == 11
assert int(ours[0, 0, 2:-2].max()) == 40 and 2 <= int(theirs[0, 0, -1]) <= 40
print(f"2. text after the video: ours {int(ours[0, 0, -1])}, transformers 5.x {int(theirs[0, 0, -1])} (overlaps)")

# 3. Frequencies theta^(-2j/128), j = 0 fastest. Chunks [16, 24, 24]: t = pairs 0..15, w = pairs 40..63, so the
#    slowest width frequency is pair 63 and the slowest temporal one pair 15 (time never sees slow frequencies).
#    Interleaved [24, 20, 20]: w = pairs 2, 5, ..., 59 (slowest: 59), t = 0, 3, ..., 57 and 60..63 (slowest: 63).
inv = inverse_frequencies(128, 5e6)
chunked, inter = q3.chunked_axis_of_pair(128, (16, 24, 24)), q3.interleaved_axis_of_pair(128, (24, 20, 20))
slowest = {name: {axis: max(j for j, a in enumerate(assign) if a == axis) for axis in (0, 2)}
           for name, assign in (("chunked", chunked), ("interleaved", inter))}
assert slowest == {"chunked": {0: 15, 2: 63}, "interleaved": {0: 63, 2: 59}}
_, sin = rs.hf3_text_rotary_cos_sin(torch.tensor([[[0]], [[0]], [[1]]]))  # only the width id is 1
rotated_by_w = (sin[0, 0, :64] != 0).nonzero().flatten().tolist()  # pairs whose angle moved (sin, not cos:
# a slow pair's angle ~1e-7 leaves cos at exactly 1.0 in float32)
assert rotated_by_w == [j for j, a in enumerate(inter) if a == 2] and max(rotated_by_w) == 59
print(f"3. slowest w pair: chunked 63 ({inv[63]:.2e}), interleaved 59 ({inv[59]:.2e}); "
      f"slowest t pair: chunked 15 ({inv[15]:.2e}), interleaved 63")

# 4. Small images: Qwen2-VL rounds each side to 28 px (a 224 px side = 8 tokens), Qwen3-VL raises any image to
#    >= 65,536 px = 256x256 = 8x8 tokens. So for sides up to 238 (round(s/28) <= 8) Qwen3-VL spends at least as much.
#    At 239, round(239/28) = 9 -> 81 tokens for Qwen2-VL, and Qwen3-VL's min-pixels rescale computes
#    239 * sqrt(65536 / 239²) = 256.0000000x in floating point, whose ceil to 32 px is 288: 9x9 too — equal.
#    At 240 the rescale is exactly 256 -> 8x8 = 64 < 81. Above, 32 px tokens are (28/32)² ≈ 0.77 as many.
first = next(s for s in range(1, 2001) if count_image_tokens(s, s, model="qwen3-vl") < count_image_tokens(s, s))
assert first == 240
assert smart_resize(239, 239, factor=32, min_pixels=65536, max_pixels=16777216) == (288, 288)
assert smart_resize(240, 240, factor=32, min_pixels=65536, max_pixels=16777216) == (256, 256)
assert all(count_image_tokens(s, s, model="qwen3-vl") >= count_image_tokens(s, s) for s in range(1, 240))
ratio = (count_image_tokens(1792, 1792, model="qwen3-vl") - 2) / (count_image_tokens(1792, 1792) - 2)
assert abs(ratio - (28 / 32) ** 2) < 1e-9  # 1792 is a multiple of both 28 and 32
print(f"4. smallest side where Qwen3-VL is cheaper: {first} px; large images: x{ratio:.3f}")
