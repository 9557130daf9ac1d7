"""Solutions to the exercises of notebook 02 "Vision 2D-RoPE"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/02_vision_rope.py`` works too).
"""

import torch

from qwenvl_study.course import reference as ref
from qwenvl_study.rope import apply_rotary_vision, inverse_frequencies, vision_cos_sin, vision_position_ids

# 1. A 4x6-patch image has 2x3 merge groups. Groups in raster order: (0,0) (0,1) (0,2) (1,0) (1,1) (1,2); inside a
#    group its 4 patches in raster order. Group (gr, gc) holds patches (2gr, 2gc), (2gr, 2gc+1), (2gr+1, 2gc),
#    (2gr+1, 2gc+1). Patch (2, 3) is in group (1, 1) -- the 5th group, rows 16..19 -- at place (0, 1): row 17.
by_hand = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (1, 2), (1, 3), (0, 4), (0, 5), (1, 4), (1, 5),
           (2, 0), (2, 1), (3, 0), (3, 1), (2, 2), (2, 3), (3, 2), (3, 3), (2, 4), (2, 5), (3, 4), (3, 5)]
ids = vision_position_ids([[1, 4, 6]])
assert [tuple(p) for p in ids.tolist()] == by_hand
assert torch.equal(ids, ref.hf_vision_position_ids(torch.tensor([[1, 4, 6]])))
assert by_hand.index((2, 3)) == 17
print("1. rows 0-7:", by_hand[:8], "...; patch (2, 3) is row", by_hand.index((2, 3)))

# 2. Swapped halves: pairs 0..19 turn with the column, 20..39 with the row. For (row 0, col 5) pairs 0..19 turn
#    (by 5 * theta^(-2i/40)) and 20..39 stay at angle 0 -- the opposite of transformers. The error is as large as
#    cos can be wrong (up to 2); and it is exactly transformers' rotation of the transposed ids (col, row).
head_dim = 80


def swapped_angles(pos, head_dim, theta=10000.0):
    inv = inverse_frequencies(head_dim // 2, theta)  # [hd/4]
    return torch.cat([pos[:, 1, None].float() * inv, pos[:, 0, None].float() * inv], dim=-1)  # columns first


pos = vision_position_ids([[1, 6, 8]])  # [48, 2]
angles = swapped_angles(pos, head_dim)
emb = torch.cat([angles, angles], dim=-1)
cos_swapped, sin_swapped = emb.cos(), emb.sin()
hf_cos, hf_sin = ref.hf_vision_cos_sin(pos, head_dim)
error = max((cos_swapped - hf_cos).abs().max(), (sin_swapped - hf_sin).abs().max()).item()
probe = swapped_angles(torch.tensor([[0, 5]]), head_dim)[0]
assert bool((probe[:20] != 0).all()) and bool((probe[20:] == 0).all())
assert error > 1.0  # parity is gone
hf_cos_t, hf_sin_t = ref.hf_vision_cos_sin(pos.flip(-1), head_dim)  # transformers on (col, row)
assert torch.allclose(cos_swapped, hf_cos_t, atol=1e-6) and torch.allclose(sin_swapped, hf_sin_t, atol=1e-6)
print(f"2. swapped halves: max |cos/sin - transformers| = {error:.2f}; equal to transformers on transposed ids")

# 3. Additive positions: score = (q + p_a) . (k + p_b) = q.k + q.p_b + p_a.k + p_a.p_b. Only the last term depends
#    on the offset alone (for sinusoids); q.p_b and p_a.k depend on the absolute places, so one offset gives many
#    scores. With rotation the spread is float32 rounding (~1e-5); without it, the size of the scores themselves.
H, W = 10, 12
r, c = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
grid = torch.stack([r.flatten(), c.flatten()], dim=1)  # [120, 2]
cos, sin = vision_cos_sin(grid, head_dim)
g = torch.Generator().manual_seed(0)
q1, k1 = torch.randn(2, head_dim, generator=g)
offset = (grid[None, :, 0] - grid[:, None, 0] + H) * (2 * W) + (grid[None, :, 1] - grid[:, None, 1] + W)


def spread(scores):
    hi = torch.full((4 * H * W,), -1e9).scatter_reduce(0, offset.flatten(), scores.flatten(), "amax")
    lo = torch.full((4 * H * W,), 1e9).scatter_reduce(0, offset.flatten(), scores.flatten(), "amin")
    return (hi - lo)[hi > -1e9].max().item()


qr, kr = apply_rotary_vision(q1.expand(H * W, 1, head_dim), k1.expand(H * W, 1, head_dim), cos, sin)
rotated = qr[:, 0] @ kr[:, 0].T
p = torch.cat([cos[:, : head_dim // 2], sin[:, : head_dim // 2]], dim=-1)  # a sinusoidal position vector [120, 80]
added = (q1 + p) @ (k1 + p).T
s_rot, s_add = spread(rotated), spread(added)
assert s_rot <= 1e-4 * rotated.abs().max().item()
assert s_add > 0.1 * added.abs().max().item()
print(f"3. spread within one offset: rotation {s_rot:.1e}, added positions {s_add:.1f} (scores up to "
      f"{added.abs().max():.1f})")
