"""Solutions to the exercises of notebook 10 "CLIP and InfoNCE"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/10_clip_infonce.py`` works too). Exercise 3 runs the
notebook's own zero-shot build (loaded with tests/nbbuild.py).
"""

import math
import sys
from pathlib import Path

import numpy as np
import torch

import qwenvl_study as qs
from qwenvl_study.family import clip

# 1. All logits equal: every softmax is uniform over N, so the loss is log N: 2.773 (16), 4.159 (64), 5.545 (256).
#    Frozen at s = 1, a true pair beats a wrong one by at most 2: floor log(1 + (N-1)e^-2) = 1.109, 2.254, 3.570.
floors = {}
for n in (16, 64, 256):
    same = torch.ones(n, 4)
    assert abs(qs.clip_loss(same, same, 1 / 0.07).item() - math.log(n)) < 1e-5
    floors[n] = math.log(1 + (n - 1) * math.exp(-2))
assert [round(math.log(n), 3) for n in (16, 64, 256)] == [2.773, 4.159, 5.545]
assert [round(floors[n], 3) for n in (16, 64, 256)] == [1.109, 2.254, 3.570]
frozen = clip.train_toy_clip(steps=100, seed=0, batch_size=16, learn_temperature=False, logit_scale_init=0.0)
assert min(frozen.loss) >= floors[16] and np.mean(frozen.loss[-20:]) < math.log(16)  # learned, but above the floor
print(f"1. chance log N = {', '.join(f'{math.log(n):.3f}' for n in floors)}; s = 1 floors "
      f"{', '.join(f'{f:.3f}' for f in floors.values())}; frozen toy run at N = 16 ends at {np.mean(frozen.loss[-20:]):.3f}")

# 2. log(1 + 7e^-s) = 0.01  <=>  7e^-s = e^0.01 - 1  <=>  s = ln(7 / (e^0.01 - 1)) = 6.546, tau = 0.153:
#    inside CLIP's clamp (1 <= s <= 100).
s = math.log(7 / math.expm1(0.01))
eye = torch.eye(8)
assert abs(s - 6.546) < 1e-3 and abs(1 / s - 0.153) < 1e-3 and 1 <= s <= clip.LOGIT_SCALE_MAX
assert abs(qs.clip_loss(eye, eye, s).item() - 0.01) < 1e-6
print(f"2. s = {s:.3f} (tau = {1 / s:.3f}): loss {qs.clip_loss(eye, eye, s).item():.4f}")

# 3. 1000 classes x 80 templates = 80,000 sentences, once, to build the [1000, D] classifier; at test time no text
#    at all: one image pass and a [1, D] @ [D, 1000] product. 4 classes x 3 templates = 12 sentences.
assert 1000 * 80 == 80_000
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from nbbuild import notebook_build  # noqa: E402
from transformers import CLIPConfig, CLIPModel  # noqa: E402

ns = notebook_build("10_clip_infonce", "zero_shot")
torch.manual_seed(0)
model = CLIPModel(CLIPConfig(
    text_config=dict(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=64, bos_token_id=256, eos_token_id=257, pad_token_id=0),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                       patch_size=8), projection_dim=16)).eval()


def tokenize(texts):
    rows = [[256] + [b + 1 for b in text.encode()] + [257] for text in texts]
    width = max(map(len, rows))
    return dict(input_ids=torch.tensor([r + [0] * (width - len(r)) for r in rows]),
                attention_mask=torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]))


encoded = []


def encode_text(texts):
    encoded.extend(texts)
    return model.get_text_features(**tokenize(texts)).pooler_output


classes = ["circle", "square", "triangle", "bar"]
templates = ["a photo of a {}.", "a drawing of a {}.", "a close-up photo of the {}."]
pixels = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    image = model.get_image_features(pixel_values=pixels).pooler_output
    ns["class_embeddings"](encode_text, classes, templates)
    assert len(encoded) == 4 * 3 == 12
    one = ns["zero_shot_logits"](image, ns["class_embeddings"](encode_text, classes, templates[:1]),
                                 model.logit_scale.exp())
    reference = model(**tokenize([templates[0].format(c) for c in classes]), pixel_values=pixels).logits_per_image
assert (one - reference).abs().max().item() <= 1e-5
print(f"3. ImageNet: 80,000 sentences once, 0 per image; here {4 * 3} sentences; one template == CLIPModel "
      f"(max |diff| {(one - reference).abs().max().item():.1e})")
