"""Solutions to the exercises of notebook 09 "The VLM family side by side"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/09_vlm_family.py`` works too). The notebook's
builds equal the package (tests/test_builds_09.py), so the package stands in for them here.
"""

import torch

from qwenvl_study.family import internvl, llava, qwen_vl

# 1. [1025, 3200] -> drop CLS -> [32, 32, 3200] = 3,276,800 values -> scale 0.5: [16, 16, 12800] (4x the channels,
#    a quarter of the tokens) -> scale 0.25: [8, 8, 51200]. Every shape holds the same 3,276,800 values.
tile = torch.randn(1, 1025, 3200)[:, 1:].reshape(1, 32, 32, 3200)
half, quarter = internvl.pixel_shuffle(tile, 0.5), internvl.pixel_shuffle(tile, 0.25)
assert tuple(half.shape) == (1, 16, 16, 12800) and tuple(quarter.shape) == (1, 8, 8, 51200)
assert tile.numel() == half.numel() == quarter.numel() == 3_276_800
print(f"1. {tuple(tile.shape[1:])} -> {tuple(half.shape[1:])} -> {tuple(quarter.shape[1:])}, "
      f"{tile.numel():,} values each")

# 2. LLaVA: 1024*4096 + 4096 = 4,198,400. LLaVA-1.5: that + 4096*4096 + 4096 = 20,979,712.
#    Of a ~7B model: 0.06% and 0.3% of the parameters learn in stage 1.
count = lambda module: sum(p.numel() for p in module.parameters())
with torch.device("meta"):
    v1, v15 = count(llava.LlavaLinearProjector(llava.LLAVA_7B)), count(llava.LlavaMultiModalProjector(llava.LLAVA_1_5_7B))
assert v1 == 1024 * 4096 + 4096 == 4_198_400
assert v15 == v1 + 4096 * 4096 + 4096 == 20_979_712
print(f"2. LLaVA {v1:,} ({v1 / 7e9:.2%} of 7B), LLaVA-1.5 {v15:,} ({v15 / 7e9:.2%})")

# 3. 224²: (224/14)² = 256 patches -> 256 queries: no compression; 448²: 1024 patches -> 256: 4x.
#    One head scores 256 x 256 = 65,536 query-key pairs at 224² and 256 x 1024 = 262,144 at 448².
for image, patches in ((224, 256), (448, 1024)):
    assert (image // 14) ** 2 == patches
small = qwen_vl.QwenVLConfig(image_size=56, patch_size=7, vit_width=24, num_queries=16, output_dim=32, head_dim=8)
resampler = qwen_vl.QwenVLResampler(small)
with torch.no_grad():
    shapes = [tuple(resampler(torch.randn(1, g * g, 24)).shape) for g in (4, 8)]
assert shapes == [(1, 16, 32), (1, 16, 32)]  # 16 -> 16 (1x) and 64 -> 16 (4x): the output never changes
assert (qwen_vl.QWEN_VL.num_queries * 256, qwen_vl.QWEN_VL.num_queries * 1024) == (65_536, 262_144)
print(f"3. 256 tokens at 224² (1x) and at 448² (4x); small config outputs {shapes}")

# 4. Image tower: 48 * (4*1664² + 2*1664*8192) = 48 * 38,338,560 = 1,840,250,880 (measured 1,842,777,344: the rest is
#    biases, LayerNorms, the patch and position embeddings). Text tower: 32 * (4*1280² + 2*1280*5120) + 49408*1280 =
#    629,145,600 + 63,242,240 = 692,387,840 (measured 693,021,440). Together ~2.53B: the 2.54B is both towers.
image_estimate = 48 * (4 * 1664**2 + 2 * 1664 * 8192)
text_estimate = 32 * (4 * 1280**2 + 2 * 1280 * 5120) + 49408 * 1280
from transformers import CLIPConfig, CLIPModel  # noqa: E402

bigg = CLIPConfig(vision_config=dict(hidden_size=1664, intermediate_size=8192, num_hidden_layers=48, num_attention_heads=16,
                                     patch_size=14, image_size=224),
                  text_config=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                                   vocab_size=49408, max_position_embeddings=77), projection_dim=1280)
with torch.device("meta"):
    model = CLIPModel(bigg)
image_tower, text_tower, whole = count(model.vision_model), count(model.text_model), count(model)
assert image_estimate == 1_840_250_880 and text_estimate == 692_387_840
assert (image_tower, text_tower, whole) == (1_842_777_344, 693_021_440, 2_539_567_105)
assert abs(image_tower - image_estimate) / image_tower < 0.002 and abs(text_tower - text_estimate) / text_tower < 0.001
assert round(whole / 1e9, 2) == 2.54 and round((image_estimate + text_estimate) / 1e9, 2) == 2.53
print(f"4. image tower ~{image_estimate / 1e9:.2f}B (measured {image_tower:,}), text tower ~{text_estimate / 1e9:.2f}B "
      f"(measured {text_tower:,}); whole CLIP {whole / 1e9:.2f}B")
