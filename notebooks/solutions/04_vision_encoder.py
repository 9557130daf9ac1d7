"""Solutions to the exercises of notebook 04 "Inside the vision encoder"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/04_vision_encoder.py`` works too).
"""

import torch

import qwenvl_study as qs
from qwenvl_study.attention import block_diagonal_mask, cu_seqlens_from_grid
from qwenvl_study.patching import PatchEmbed, patchify
from qwenvl_study.resolution import smart_resize
from qwenvl_study.vision import VisionTransformer

# 1. One row = one tube: 3 colour channels x 2 frames (an image is two identical frames) x 14 x 14 pixels
#    = 1176 numbers. The 2B's patch embedding maps 1176 -> 1280 with no bias: 1176 * 1280 = 1,505,280 weights.
#    The Conv3d's kernel = stride = the whole tube, so it never slides: each output is one dot product, i.e. a
#    Linear(1176, 1280) whose weight is the kernel [1280, 3, 2, 14, 14] flattened to [1280, 1176].
assert 3 * 2 * 14 * 14 == 1176 and 1176 * 1280 == 1_505_280
rows, grid = patchify(torch.rand(1, 3, 28, 28))  # one 28x28 image -> a 2x2 grid of patches
assert tuple(rows.shape) == (4, 1176) and tuple(grid) == (1, 2, 2)
embed = PatchEmbed(embed_dim=1280)
assert sum(p.numel() for p in embed.parameters()) == 1_505_280
linear = torch.nn.Linear(1176, 1280, bias=False)
with torch.no_grad():
    linear.weight.copy_(embed.proj.weight.reshape(1280, 1176))  # the kernel, flattened in (C, T, P, P) order
    conv_vs_linear = (embed(rows) - linear(rows)).abs().max().item()
assert conv_vs_linear <= 1e-5
print(f"1. a row holds 3*2*14*14 = 1176 values; patch embedding 1,505,280 weights; Conv3d vs Linear {conv_vs_linear:.1e}")

# 2. One block (d = 1280, MLP 5120): norm1 + norm2 = 2 * 2 * 1280 = 5,120; qkv 1280*3840 + 3840 = 4,919,040;
#    proj 1280*1280 + 1280 = 1,639,680; fc1 1280*5120 + 5120 = 6,558,720; fc2 5120*1280 + 1280 = 6,554,880
#    -> 19,677,440. Merger: ln_q 2,560; mlp.0 5120*5120 + 5120 = 26,219,520; mlp.2 5120*1536 + 1536 = 7,865,856
#    -> 34,087,936. Tower: 1,505,280 + 32 * 19,677,440 + 34,087,936 = 665,271,296.
#    7B: only mlp.2's output changes (1536 -> 3584): + 5120*2048 + 2048 = 10,487,808 -> 675,759,104 = the "675M".
block = 2 * 2 * 1280 + (1280 * 3840 + 3840) + (1280 * 1280 + 1280) + (1280 * 5120 + 5120) + (5120 * 1280 + 1280)
merger = 2 * 1280 + (5120 * 5120 + 5120) + (5120 * 1536 + 1536)
tower = 1176 * 1280 + 32 * block + merger
assert (block, merger, tower) == (19_677_440, 34_087_936, 665_271_296)
with torch.device("meta"):
    vit = VisionTransformer(qs.QWEN2_VL_2B.vision)
count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
assert (count(vit.blocks[0]), count(vit.merger), count(vit)) == (block, merger, tower)
assert tower == qs.count_parameters(qs.QWEN2_VL_2B).vision
seven_b = tower + 5120 * (3584 - 1536) + (3584 - 1536)
assert seven_b == qs.count_parameters(qs.QWEN2_VL_7B).vision == 675_759_104
print(f"2. block {block:,}, merger {merger:,}, tower {tower:,}; 7B tower {seven_b:,} (the paper's 675M)")

# 3. 448x448 is a multiple of 28 inside the bounds: grid (1, 32, 32) = 1024 rows, one segment. The 4-frame
#    224x224 video: (2, 16, 16) = 512 rows in 2 segments of 256 (one per 2-frame slice). N = 1536 rows in;
#    merged tokens out = 1536 / 4 = 384 (256 + 128). Kept pairs: 1024² + 2 * 256² = 1,179,648 of
#    1536² = 2,359,296 — exactly half.
assert smart_resize(448, 448) == (448, 448) and smart_resize(224, 224) == (224, 224)
packed = torch.tensor([[1, 32, 32], [2, 16, 16]])
cu = cu_seqlens_from_grid(packed)
assert cu.tolist() == [0, 1024, 1280, 1536]
kept = int(block_diagonal_mask(cu).sum())
assert kept == 1024**2 + 2 * 256**2 == 1_179_648 and 2 * kept == 1536**2
small = VisionTransformer.random(qs.VisionConfig(depth=1, embed_dim=32, num_heads=2, hidden_size=16))
with torch.no_grad():
    out = small(torch.randn(1536, 1176), packed)
assert tuple(out.shape) == (384, 16)
print(f"3. rows in 1536, segments {cu.tolist()}, tokens out {out.shape[0]}, pairs kept {kept:,} of {1536**2:,} (50%)")
