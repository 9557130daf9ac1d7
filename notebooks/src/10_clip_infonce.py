# %% [markdown]
# # 10 · CLIP and InfoNCE — the contrastive loss behind the vision encoders, and zero-shot classification
#
# **Paper:** CLIP, "Learning Transferable Visual Models From Natural Language Supervision" (Radford et al., 2021),
# §2.3 and Figure 3 (the loss in numpy-like pseudocode), §2.5 (the learned temperature); OpenCLIP (Cherti et al.,
# 2023) trains the same loss at scale. Qwen-VL's ViT-bigG and LLaVA's ViT-L/14 were CLIP-trained;
# Qwen2-VL's ViT starts from DFN's CLIP ViT.
# **Code:** `qwenvl_study/family/clip.py` (`clip_loss`, `clip_logits`, `LogitScale`, `train_toy_clip`).
# **Reference:** transformers' `CLIPModel` loss (`image_text_contrastive_loss` in `modeling_clip.py`); open_clip's
# `ClipLoss` where it can be imported.
#
# A batch holds N (image, text) pairs. CLIP embeds both sides, and asks each image to pick *its* text among the
# N texts — and each text its image. That is two N-way classification problems over one similarity matrix: the
# **symmetric InfoNCE** loss (the course notes: a learnable temperature, matched pairs pulled together, the rest of
# the batch pushed apart). This lesson builds it in a few lines, proves it against transformers' `CLIPModel`, trains
# a toy CLIP with it, and then uses a CLIP the way it was meant to be used without any training: **zero-shot
# classification** from class names.

# %%
from qwenvl_study.course.env import preamble

preamble();

# %%
import math

import numpy as np
import torch
import torch.nn.functional as F

import qwenvl_study as qs
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.course import figures as viz
from qwenvl_study.family import clip

# %% [markdown]
# ## 1. The formula, step by step
#
# With image embeddings $I_i$ and text embeddings $T_j$ ($i, j = 1..N$):
#
# 1. **normalise**: $\hat I_i = I_i / \lVert I_i \rVert$, $\hat T_j = T_j / \lVert T_j \rVert$;
# 2. **cosine similarities**: $S_{ij} = \hat I_i \cdot \hat T_j \in [-1, 1]$ — the true pairs sit on the diagonal;
# 3. **scale**: logits $= s \cdot S$ with $s = e^{t} = 1/\tau$, a learned inverse temperature;
# 4. **image → text**: softmax over each *row*, cross-entropy with the diagonal as target:
#    $\mathcal L_{I\to T} = -\frac1N \sum_i \log \frac{e^{s S_{ii}}}{\sum_j e^{s S_{ij}}}$;
# 5. **text → image**: the same over each *column*: $\mathcal L_{T\to I} = -\frac1N \sum_j \log \frac{e^{s S_{jj}}}{\sum_i e^{s S_{ij}}}$;
# 6. $\mathcal L = \frac12 (\mathcal L_{I\to T} + \mathcal L_{T\to I})$.
#
# In code, the whole loss (rows = images, columns = texts):

# %%
# build: info_nce
import torch


def info_nce(image_features, text_features, scale):
    """CLIP's symmetric InfoNCE over N (image, text) pairs; pair i sits on the diagonal."""
    img = image_features / image_features.norm(dim=-1, keepdim=True)  # [N, D], unit rows
    txt = text_features / text_features.norm(dim=-1, keepdim=True)  # [N, D], unit rows
    logits = scale * img @ txt.T  # [N, D] @ [D, N] -> [N, N]: row i = image i against every text
    loss_i2t = -logits.log_softmax(dim=1).diagonal().mean()  # each image picks its text among the row
    loss_t2i = -logits.log_softmax(dim=0).diagonal().mean()  # each text picks its image among the column
    return (loss_i2t + loss_t2i) / 2


# %% [markdown]
# The figure runs these steps (through the package's `clip_logits`) on three pairs; the diagonal is bold.

# %%
images = torch.tensor([[1.0, 0.0, 0.2], [0.1, 1.0, 0.0], [0.6, 0.6, 0.5]])
texts = torch.tensor([[0.9, 0.1, 0.0], [0.0, 1.0, 0.3], [0.5, 0.4, 0.8]])
viz.draw_infonce_example(images, texts, logit_scale=10.0);

# %% [markdown]
# The same numbers through the package: row-wise and column-wise cross-entropy of the logits give the two halves,
# and their mean is `clip_loss` — and the build.

# %%
# NBVAL_CHECK_OUTPUT
per_image, per_text = clip.clip_logits(images, texts, 10.0)
labels = torch.arange(3)
l_i2t = F.cross_entropy(per_image, labels)  # rows: image → text
l_t2i = F.cross_entropy(per_text, labels)  # columns (= rows of the transpose): text → image
print("logits_per_text is the transpose of logits_per_image:", torch.equal(per_text, per_image.T))
print("(L_I→T + L_T→I) / 2 == clip_loss:", abs((l_i2t + l_t2i).item() / 2 - qs.clip_loss(images, texts, 10.0).item()) <= 1e-6)
print(f"the build: {info_nce(images, texts, 10.0).item():.6f} | clip_loss: {qs.clip_loss(images, texts, 10.0).item():.6f}")

# %% [markdown]
# ## 2. A hand-derived example
#
# Two pairs. Images $i_1 = (1, 0)$, $i_2 = (0, 1)$; texts $t_1 = (1, 0)$, $t_2 = (3, 4) \to (0.6, 0.8)$ after
# normalising. So $S = \begin{pmatrix} 1 & 0.6 \\ 0 & 0.8 \end{pmatrix}$. With two classes,
# $-\log \mathrm{softmax}(a, b)_1 = \log(1 + e^{b - a})$, hence at scale $s$:
#
# - rows: $\log(1 + e^{-0.4 s})$ and $\log(1 + e^{-0.8 s})$;
# - columns: $(1, 0) \to \log(1 + e^{-s})$ and $(0.6, 0.8) \to \log(1 + e^{-0.2 s})$.
#
# At $s = 1$: $\frac12\left[\frac12(0.51302 + 0.37110) + \frac12(0.31326 + 0.59814)\right] = \frac12(0.44206 + 0.45570) = 0.44888$.

# %%
# NBVAL_CHECK_OUTPUT
img2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
txt2 = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
softplus = lambda z: math.log1p(math.exp(z))
for s in (1.0, 2.0, 1 / 0.07):
    by_hand = 0.5 * (0.5 * (softplus(-0.4 * s) + softplus(-0.8 * s)) + 0.5 * (softplus(-s) + softplus(-0.2 * s)))
    ours, built = qs.clip_loss(img2, txt2, s).item(), info_nce(img2, txt2, s).item()
    print(f"s = {s:6.3f}: by hand {by_hand:.5f} — clip_loss and the build equal (<= 1e-6): "
          f"{abs(ours - by_hand) <= 1e-6 and abs(built - by_hand) <= 1e-6}")

# %% [markdown]
# ## 3. Against the references
#
# transformers' `CLIPModel` normalises the pooled embeddings, forms `logits_per_text = T·Iᵀ·exp(t)` and applies
# `image_text_contrastive_loss` (the mean of the two cross-entropies). open_clip's `ClipLoss` takes normalised
# features and the multiplier; it is compared when open_clip can be imported — not here: `open_clip_torch`
# needs torchvision, which does not work with this CPU torch (the cell says so when it skips). The checklist:
# the build, the package and `CLIPModel`'s loss on three random batches (batch, width, scale):

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
worst = 0.0
worst_build = 0.0
for n, d, s in [(4, 8, 1.0), (16, 32, 1 / 0.07), (64, 16, 100.0)]:
    i, t = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    check = checks.clip_loss(i, t, s)  # the package vs CLIPModel's loss
    worst = max(worst, check.max_abs_error)
    worst_build = max(worst_build, abs(info_nce(i, t, s).item() - check.ours), abs(info_nce(i, t, s).item() - check.reference))
    print(f"N={n:>2} D={d:>2} s={s:6.2f}: loss {check.reference:.4f} (CLIPModel)")
print("clip_loss vs CLIPModel's loss, 3 batches: max |diff| <= 1e-5:", worst <= 1e-5)
print("the build vs clip_loss and CLIPModel's loss: max |diff| <= 1e-5:", worst_build <= 1e-5)
try:
    open_clip_loss = ref.open_clip_loss()
except ImportError as err:
    print("open_clip ClipLoss: skipped —", err)
else:
    i, t = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    theirs = open_clip_loss(F.normalize(i, dim=-1), F.normalize(t, dim=-1), torch.tensor(1 / 0.07)).item()
    print("open_clip ClipLoss: |diff| <= 1e-5:", abs(qs.clip_loss(i, t, 1 / 0.07).item() - theirs) <= 1e-5)

# %%
print(f"measured: max |clip_loss - CLIPModel loss| = {worst:.1e}; max |build - either| = {worst_build:.1e}")

# %% [markdown]
# ## 4. The temperature
#
# Cosines live in [-1, 1]. Without a scale, even a perfect model produces a soft distribution: for N
# orthonormal pairs the loss is $\log(1 + (N-1)e^{-s})$ — $\log(1 + (N-1)/e)$ at $s = 1$ — and since two cosines
# differ by at most 2, *no* arrangement can go below $\log(1 + (N-1)e^{-2s})$. CLIP therefore **learns**
# $t$ with $s = e^t$, initialised at $1/0.07 \approx 14.3$, and clips $s$ at **100** (open_clip clamps $t$ to
# $[0, \ln 100]$ after each step). transformers' `CLIPConfig` starts `logit_scale` at 2.6592 = ln(1/0.07).

# %%
# NBVAL_CHECK_OUTPUT
eye = torch.eye(8)
print("LOGIT_SCALE_INIT = ln(1/0.07):", abs(clip.LOGIT_SCALE_INIT - math.log(1 / 0.07)) < 1e-12,
      "| exp:", round(math.exp(clip.LOGIT_SCALE_INIT), 2), "| clamp at", clip.LOGIT_SCALE_MAX)
for s in (1.0, 1 / 0.07, 100.0):
    formula = math.log(1 + 7 * math.exp(-s))
    print(f"8 perfect pairs, s = {s:6.2f}: loss matches log(1 + 7 e^-s): {abs(qs.clip_loss(eye, eye, s).item() - formula) <= 1e-6}")

# %%
viz.plot_temperature_effect([0.9, 0.7, 0.5, 0.1, -0.2]);

# %% [markdown]
# ## 5. A toy CLIP that trains in a second
#
# Synthetic pairs share a hidden 8-d latent z: "image" = tanh(z·A) + noise (32-d), "text" = z·B + noise (24-d).
# Two small MLP encoders map them into a 16-d joint space; Adam minimises `clip_loss` on batches of 64 with a
# learned logit scale (clamped at 100). Every random draw comes from a fixed random seed (and the run uses one
# thread), so it repeats exactly. Chance level for a batch of 64 is ln 64 ≈ 4.16: with all logits equal, each
# row's softmax is uniform and the loss is exactly log N.

# %%
history = clip.train_toy_clip(steps=200, seed=0)
again = clip.train_toy_clip(steps=200, seed=0)

# %%
# NBVAL_CHECK_OUTPUT
first, last = np.mean(history.loss[:5]), np.mean(history.loss[-20:])
print("deterministic (same seed, same losses):", history.loss == again.loss)
print("loss fell below a quarter of its start:", last < first / 4, "| below chance (ln 64):", last < math.log(64))
print("held-out top-1 retrieval >= 90% after training:", history.accuracy_after >= 0.9,
      "| below 20% before:", history.accuracy_before < 0.2)
print("logit scale stayed within the clamp:", max(history.logit_scale) <= clip.LOGIT_SCALE_MAX + 1e-3)

# %%
print(f"loss {first:.2f} → {last:.3f}; held-out loss {history.eval_loss_before:.2f} → {history.eval_loss_after:.3f}; "
      f"logit scale {history.logit_scale[0]:.1f} → {history.logit_scale[-1]:.1f}; "
      f"top-1 {history.accuracy_before:.0%} → {history.accuracy_after:.0%}")
viz.plot_clip_training(history);

# %%
viz.draw_similarity_matrices(history, n=12);

# %% [markdown]
# Before training the similarity matrix is noise (and the first losses sit *above* ln 64: random cosines
# times 14.3 are confidently wrong); after, the diagonal — each image with its own text — stands out. Now the same run with the temperature
# **frozen at s = 1**: the loss cannot drop below $\log(1 + 63e^{-2}) \approx 2.254$ for a batch of 64, because
# cosines scaled by 1 cannot make a confident softmax over 64 candidates (a true pair's logit exceeds a wrong one
# by at most 2). The figure draws both lines: chance and that floor.

# %%
frozen = clip.train_toy_clip(steps=200, seed=0, learn_temperature=False, logit_scale_init=0.0)

# %%
# NBVAL_CHECK_OUTPUT
floor = math.log(1 + 63 * math.exp(-2))  # at s = 1, S_ij - S_ii >= -2 for every row of 64
print("frozen s = 1: final loss above the s = 1 floor log(1 + 63 e^-2):",
      np.mean(frozen.loss[-20:]) >= floor - 1e-6)
print("learned temperature ends far lower:", np.mean(history.loss[-20:]) < np.mean(frozen.loss[-20:]) / 4)

# %%
print(f"frozen s = 1: final {np.mean(frozen.loss[-20:]):.3f} (floor {floor:.3f}); learned: {np.mean(history.loss[-20:]):.3f}")
viz.plot_clip_training(frozen, floor=floor, floor_label=f"floor at s = 1: log(1 + 63 e^-2) = {floor:.3f}");

# %% [markdown]
# ## 6. Zero-shot classification: class names become a classifier
#
# A trained CLIP classifies images into classes it was never trained on (CLIP §3.1): write each class name into a
# sentence — a **prompt template** such as "a photo of a {}." — embed the sentences with the text encoder, and pick
# the class whose text embedding is closest to the image's. With several templates per class ("a photo of a {}.",
# "a drawing of a {}.", "a close-up photo of the {}.", …) each class gets the *average* of its normalised
# embeddings (a prompt ensemble), normalised again. The classifier is a [K, D] matrix computed once; an image costs
# one image-encoder pass and a matrix product:

# %%
# build: zero_shot
def class_embeddings(encode_text, class_names, templates):
    """[K, D]: for each class, its templates' text embeddings, normalised, averaged and normalised again."""
    rows = []
    for name in class_names:
        emb = encode_text([template.format(name) for template in templates])  # [T, D]: one per template
        emb = emb / emb.norm(dim=-1, keepdim=True)
        mean = emb.mean(dim=0)  # the prompt ensemble
        rows.append(mean / mean.norm())
    return torch.stack(rows)  # [K, D]


def zero_shot_logits(image_features, classes, scale):
    """[B, K] = scale * cosine(image, class); argmax over K is the predicted class."""
    img = image_features / image_features.norm(dim=-1, keepdim=True)  # [B, D]
    return scale * img @ classes.T  # [B, D] @ [D, K] -> [B, K]


# %% [markdown]
# The mechanism, run on transformers' `CLIPModel` at a tiny config (random weights: 2 layers, width 32, 32×32
# images, a byte-level stand-in for CLIP's tokenizer — `<bos>` + UTF-8 bytes + `<eos>`, pooled at `<eos>` as CLIP
# does). The checklist: with **one** template, the build's logits are exactly `CLIPModel`'s `logits_per_image` (the
# same normalisation and `logit_scale`); with three, the classes are averaged prompts.

# %%
# NBVAL_CHECK_OUTPUT
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from qwenvl_study.course.samples import sample_path
from qwenvl_study.patching import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

torch.manual_seed(0)
tiny_clip = CLIPModel(CLIPConfig(
    text_config=dict(vocab_size=258, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=64, bos_token_id=256, eos_token_id=257, pad_token_id=0),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                       patch_size=8), projection_dim=16)).eval()


def tokenize(texts):  # <bos>=256, bytes+1, <eos>=257, right-padded with 0 (the mask hides the pads)
    rows = [[256] + [b + 1 for b in text.encode()][:60] + [257] for text in texts]
    width = max(map(len, rows))
    return dict(input_ids=torch.tensor([r + [0] * (width - len(r)) for r in rows]),
                attention_mask=torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]))


def encode_text(texts):
    return tiny_clip.get_text_features(**tokenize(texts)).pooler_output  # [T, 16]: the projected <eos> state


mean, std = torch.tensor(OPENAI_CLIP_MEAN), torch.tensor(OPENAI_CLIP_STD)
sample = Image.open(sample_path()).convert("RGB").resize((32, 32), Image.BICUBIC)
pixels = (torch.tensor(np.asarray(sample), dtype=torch.float32) / 255 - mean) / std  # [32, 32, 3], rescaled 1/255
pixels = pixels.permute(2, 0, 1)[None]  # [1, 3, 32, 32], CLIP's mean/std
classes = ["circle", "square", "triangle", "bar"]
templates = ["a photo of a {}.", "a drawing of a {}.", "a close-up photo of the {}."]
with torch.no_grad():
    image_emb = tiny_clip.get_image_features(pixel_values=pixels).pooler_output  # [1, 16]
    scale = tiny_clip.logit_scale.exp()
    one = zero_shot_logits(image_emb, class_embeddings(encode_text, classes, templates[:1]), scale)
    reference = tiny_clip(**tokenize([templates[0].format(c) for c in classes]), pixel_values=pixels).logits_per_image
    ensemble = zero_shot_logits(image_emb, class_embeddings(encode_text, classes, templates), scale)
print("one template: build == CLIPModel logits_per_image (<= 1e-5):", (one - reference).abs().max().item() <= 1e-5)
for name, logits in (("1 template", one), ("3 templates", ensemble)):
    probs = logits.softmax(dim=-1)[0]
    print(f"{name:<12} " + "  ".join(f"{c} {p:.3f}" for c, p in zip(classes, probs.tolist())),
          f"→ argmax: {classes[int(probs.argmax())]}")

# %%
print(f"measured: max |build - CLIPModel logits_per_image| = {(one - reference).abs().max().item():.1e}")

# %% [markdown]
# The random tiny CLIP has learned nothing: its probabilities are arbitrary (random cosines times the initial
# scale 14.3), change with the templates, and its argmax means nothing — only the plumbing is real. A **trained** CLIP turns the same plumbing into a classifier: CLIP
# ViT-L/14 at 336 px reaches **76.2%** zero-shot top-1 on ImageNet (CLIP §3.1, about the accuracy of a supervised
# ResNet-50, without seeing one of ImageNet's 1.28M labelled images). The templates matter: on ImageNet "A photo
# of a {label}." alone gains 1.3 points over the bare class name, and an ensemble of 80 templates another 3.5
# (§3.1.4); over 36 data sets, prompt engineering and ensembling add almost 5 points. That is the property the VLMs
# of lesson 09 inherit when they start from a CLIP-trained ViT: image features already aligned with language.

# %% [markdown]
# ## Exercises
#
# By hand first, then in code. Solutions (each asserting its answer, run in CI by `tests/test_solutions.py`):
# `notebooks/solutions/10_clip_infonce.py`.
#
# ### Exercise 10.1 — the batch size sets the loss scale
# With all logits equal (an untrained model's limit), what is the loss for a batch of N = 16, 64 and 256? And
# the lowest loss reachable with the scale frozen at s = 1, $\log(1 + (N-1)e^{-2})$? Check the first with
# `clip_loss` on identical embeddings, the second by training the toy CLIP with `batch_size=16` and the scale
# frozen at 1 (`learn_temperature=False, logit_scale_init=0.0`): its loss must stay above your floor.
#
# ### Exercise 10.2 — how cold must a perfect batch be?
# 8 perfectly separated pairs (orthonormal embeddings) have loss $\log(1 + 7e^{-s})$. Which scale s gives a loss of
# 0.01? What temperature τ = 1/s is that, and is it inside CLIP's clamp? Check with `clip_loss(eye, eye, s)`.
#
# ### Exercise 10.3 — the cost of a prompt ensemble
# Building the classifier for ImageNet's 1000 classes with CLIP's 80 templates: how many sentences go through the
# text encoder, and how many at test time per image? For the 4 classes × 3 templates above, count the sentences
# the build encodes (wrap `encode_text`), and confirm that with one template per class the result equals
# `CLIPModel`'s `logits_per_image`.

# %% [markdown]
# ## Summary
#
# - Symmetric InfoNCE is six lines: normalise, `scale · I Tᵀ`, log-softmax over rows and over columns, take the
#   diagonal; equal to the package and to transformers' `CLIPModel` loss (≤ 1e-5, measured above).
# - The temperature decides how confident the softmax can be: at s = 1 a batch of 64 cannot go below 2.254; CLIP
#   learns s from 1/0.07 and clamps it at 100.
# - Zero-shot classification is the same similarity with class prompts as the "texts": average the templates'
#   embeddings per class, take the argmax — exact against `CLIPModel` on one template; useful only once trained.
