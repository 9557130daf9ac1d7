"""The site's FAQ (site/faq.md), one reproducer per answer: each asserts what its answer says.

Random-weight tiny models at the real vocabulary and token ids (``tiny_config``), ours
(``qwenvl_study.Qwen2VL``) and transformers' ``Qwen2VLForConditionalGeneration`` with the same
weights (``reference.model_pair``). The function names are the FAQ's anchors (faq.md links here).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

import qwenvl_study as qs
from qwenvl_study.attention import available_backends
from qwenvl_study.chat import mm_token_type_ids
from qwenvl_study.config import tiny_config
from qwenvl_study.course import reference as ref
from qwenvl_study.grounding import box_on_resized, from_normalized, to_normalized
from qwenvl_study.rope import segments_to_batch

CFG = tiny_config()
IMG = CFG.image_token_id
VSTART, VEND = CFG.vision_start_token_id, CFG.vision_end_token_id


@pytest.fixture(scope="module")
def models():
    return ref.model_pair(CFG, seed=0)


def _text(g, n):
    return ("text", torch.randint(0, 150_000, (n,), generator=g).tolist())


def _batch(rows, seed=0):
    """segments → (input_ids, attention_mask (left-padded), pixel kwargs with random pixels)."""
    g = torch.Generator().manual_seed(seed)
    batch = segments_to_batch([[_text(g, s) if isinstance(s, int) else s for s in row] for row in rows])
    kwargs = {}
    if batch["image_grid_thw"] is not None:
        grid = batch["image_grid_thw"]
        kwargs = {"pixel_values": torch.randn(int(grid.prod(-1).sum()), 1176, generator=g), "image_grid_thw": grid}
    return batch["input_ids"], batch["attention_mask"], kwargs


def _hf_logits(hf, ids, mask, **kw):
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask, mm_token_type_ids=mm_token_type_ids(ids), **kw).logits


# 1 -------------------------------------------------------------------------------------------
def test_box_coordinates_per_model():
    """Qwen2-VL / Qwen3-VL: [0, 1000) of the image, any size; Qwen2.5-VL: pixels of the RESIZED image."""
    w, h = 1920, 1080  # a full-HD frame; a box touching its right and bottom edges
    box = (1500.0, 800.0, 1920.0, 1080.0)
    norm = to_normalized(box, (w, h))  # Qwen2-VL (and Qwen3-VL's 0-1000 scale)
    assert norm == (781, 741, 999, 999)
    back = from_normalized(norm, (w, h))
    assert max(abs(a - b) for a, b in zip(back, box)) <= 2.0  # 1/1000 of a side
    # Qwen2.5-VL: absolute pixels of the image smart_resize made: 1920x1080 -> 1932x1092
    on_resized, (rw, rh) = box_on_resized(box, (w, h))
    assert (rw, rh) == (1932, 1092)
    assert on_resized[2] == 1932 and on_resized[2] > w  # drawn on the original: "outside the image"
    # a 4K image under a 1280-token cap is scaled DOWN to 1316x728: Qwen2.5-VL answers in those pixels
    big, (bw, bh) = box_on_resized((3000.0, 1600.0, 3840.0, 2160.0), (3840, 2160), max_pixels=1280 * 28 * 28)
    assert (bw, bh) == (1316, 728) and big[2] == 1316.0  # ~1/3 of the original's coordinates
    # the 0-1000 answer (Qwen2-VL, Qwen3-VL) is resize-invariant: the same numbers on both sizes
    assert to_normalized(on_resized, (rw, rh)) == norm


# 2 -------------------------------------------------------------------------------------------
def test_min_max_pixels_and_scaling():
    """Tokens grow linearly with pixels between the clamps; max_pixels caps each image; ViT attention is N²."""
    t = [qs.count_image_tokens(s, s, special_tokens=False) for s in (448, 896, 1792)]
    assert t == [256, 1024, 4096]  # 2x the side, 4x the pixels, 4x the tokens
    assert qs.count_image_tokens(7680, 4320, special_tokens=False) <= 16384  # the published max_pixels
    cap = 1280 * 28 * 28  # a common per-image cap (max_pixels=1280*28*28)
    assert qs.count_image_tokens(2160, 3840, max_pixels=cap, special_tokens=False) <= 1280
    assert qs.count_image_tokens(8, 8, special_tokens=False) == 4  # min_pixels 3136: at least 2x2 tokens
    # memory: one eager ViT attention matrix per head is N_patches² floats (N = 4 x tokens)
    n = 4 * t[2]
    assert n == 16384 and n * n * 4 == 1024**3  # 1 GiB per head in fp32 at 1792x1792: why sdpa/varlen


# 3 -------------------------------------------------------------------------------------------
def test_video_budget_temporal_merge_and_frame_cap():
    """Two frames make one temporal patch (half the tokens of separate images); 768 frames at most."""
    per_frame = qs.count_image_tokens(420, 728, special_tokens=False)  # 15 x 26 = 390
    assert qs.count_video_tokens(120, 420, 728, special_tokens=False) == 60 * per_frame  # not 120 x
    plan = qs.plan_video(30 * 60 * 20, 30.0, 720, 1280)  # 20 min at 30 fps, 2 fps sampling
    assert plan.nframes == 768  # FPS_MAX_FRAMES: 2400 wanted, 768 kept
    assert plan.limit.startswith("per-frame floor")  # the 24576-token budget is exceeded: 128 tokens per pair
    assert plan.tokens == 384 * plan.grid_thw[1] * plan.grid_thw[2] // 4
    one_min = qs.plan_video(1800, 30.0, 720, 1280)
    assert one_min.tokens == 23400 and one_min.nframes == 120


# 4 -------------------------------------------------------------------------------------------
def safe_truncate(input_ids, max_length, pixel_values, image_grid_thw, merge_size=2):
    """Cut ``input_ids`` [1, L] to ``max_length`` without splitting an image: an image the cut would
    enter is dropped whole (its <|vision_start|> … <|vision_end|> tokens, pixel rows and grid)."""
    ids = input_ids[0].tolist()
    starts = [i for i, t in enumerate(ids) if t == VSTART]
    keep_images, cut = 0, max_length
    row = 0
    for k, s in enumerate(starts):
        end = ids.index(VEND, s)
        if end < max_length:
            keep_images, row = k + 1, row + int(image_grid_thw[k].prod())
        else:
            cut = min(cut, s)
            break
    out_ids = torch.tensor([ids[:cut]])
    if keep_images == 0:
        return out_ids, None, None
    return out_ids, pixel_values[:row], image_grid_thw[:keep_images]


def test_image_features_and_image_tokens_do_not_match(models):
    """max_length that cuts through the image pads: both models refuse; a safe cut runs and agrees."""
    ours, hf = models
    ids, mask, kw = _batch([[6, ("image", (1, 4, 6)), 8]])  # 6 pads between vision_start/end
    first_pad = int((ids[0] == IMG).nonzero()[0])
    cut = first_pad + 3  # keeps 3 of the 6 pads: what tokenizer truncation (max_length) does
    bad = ids[:, :cut]
    with pytest.raises(ValueError, match="Image features and image tokens do not match"):
        _hf_logits(hf, bad, torch.ones_like(bad), **kw)
    with pytest.raises(ValueError, match=r"= 6 pad tokens, its run holds 3"):
        ours(bad, torch.ones_like(bad), **kw)
    safe_ids, pv, grid = safe_truncate(ids, cut, kw["pixel_values"], kw["image_grid_thw"])
    assert safe_ids.shape[1] < cut and int((safe_ids == IMG).sum()) == 0 and grid is None
    a = ours(safe_ids, torch.ones_like(safe_ids))
    b = _hf_logits(hf, safe_ids, torch.ones_like(safe_ids))
    assert (a - b).abs().max() <= 1e-4
    # a max_length past the image keeps it whole
    ids2, pv2, grid2 = safe_truncate(ids, ids.shape[1] - 2, kw["pixel_values"], kw["image_grid_thw"])
    assert int((ids2 == IMG).sum()) == 6 and grid2.tolist() == [[1, 4, 6]] and pv2.shape[0] == 24
    a = ours(ids2, torch.ones_like(ids2), pixel_values=pv2, image_grid_thw=grid2)
    b = _hf_logits(hf, ids2, torch.ones_like(ids2), pixel_values=pv2, image_grid_thw=grid2)
    assert (a - b).abs().max() <= 1e-4


# 5 -------------------------------------------------------------------------------------------
def test_rope_deltas_across_generate_calls(models):
    """The delta of the image prompt moves every later id; a new generate must recompute it."""
    ours, hf = models
    ids, mask, kw = _batch([[4, ("image", (1, 8, 8)), 5]])  # 16 pads, ids span only 4 positions
    pos, delta = ours.positions(ids, mask, kw["image_grid_thw"])
    length = ids.shape[1]
    assert int(delta) == int(pos.max()) + 1 - length and int(delta) == -(16 - 4)  # 16 pads use 4 ids
    text_ids, text_mask, _ = _batch([[9]], seed=1)
    fresh = ref.hf_model(CFG, seed=0)
    first = ref.hf_generate(hf, CFG, ids, mask, max_new_tokens=6, do_sample=False, **kw)
    second = ref.hf_generate(hf, CFG, text_ids, text_mask, max_new_tokens=6, do_sample=False)
    alone = ref.hf_generate(fresh, CFG, text_ids, text_mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(second, alone)  # transformers 5.x: stale rope_deltas are not reused (PR #43952)
    assert torch.equal(first, ours.generate(ids, mask, max_new_tokens=6, **kw))
    assert torch.equal(second, ours.generate(text_ids, text_mask, max_new_tokens=6))


# 6 -------------------------------------------------------------------------------------------
def test_left_vs_right_padding(models):
    """Left padding: each row generates what it generates alone. Right padding: the short row reads a pad."""
    ours, hf = models
    g = torch.Generator().manual_seed(3)
    long_row = torch.randint(0, 150_000, (9,), generator=g)
    short_row = torch.randint(0, 150_000, (4,), generator=g)
    pad = CFG.bos_token_id
    left = torch.stack([long_row, torch.cat([torch.full((5,), pad), short_row])])
    left_mask = torch.tensor([[1] * 9, [0] * 5 + [1] * 4])
    right = torch.stack([long_row, torch.cat([short_row, torch.full((5,), pad)])])
    right_mask = torch.tensor([[1] * 9, [1] * 4 + [0] * 5])
    alone = ours.generate(short_row[None], max_new_tokens=5)
    out_left = ours.generate(left, left_mask, max_new_tokens=5)
    assert torch.equal(out_left[1:], alone)
    assert torch.equal(ref.hf_generate(hf, CFG, left, left_mask, max_new_tokens=5, do_sample=False), out_left)
    with pytest.raises(ValueError, match="left padding"):
        ours.generate(right, right_mask, max_new_tokens=5)
    with torch.no_grad():  # right-padded: the "next token" of the short row is read at a pad position
        logits_right = hf(input_ids=right, attention_mask=right_mask).logits[1, -1]
        logits_alone = hf(input_ids=short_row[None]).logits[0, -1]
    assert (logits_right - logits_alone).abs().max() > 1e-3


# 7 -------------------------------------------------------------------------------------------
def test_fp16_overflow_vs_bf16():
    """Residual activations above 65504 are inf in fp16 (then NaN), finite in bf16 (fp32's exponent range)."""
    model = qs.Qwen2VL(CFG).eval()
    with torch.no_grad():  # activations as large as a real checkpoint's outlier channels
        model.model.embed_tokens.weight.mul_(1e3)
        model.model.layers[0].mlp.down_proj.weight.mul_(300)
    ids = torch.randint(0, 150_000, (1, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h32 = model.model.embed_tokens(ids).float()
    assert torch.finfo(torch.float16).max == 65504
    results = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        m = qs.Qwen2VL(CFG).eval()
        m.load_state_dict(model.state_dict())
        m.to(dtype)
        with torch.no_grad():
            results[dtype] = m(ids).float()
    assert torch.isfinite(results[torch.float32]).all() and torch.isfinite(results[torch.bfloat16]).all()
    assert not torch.isfinite(results[torch.float16]).all()
    assert h32.abs().max() < 65504  # the inputs fit fp16; the residual stream is what overflows


# 8 -------------------------------------------------------------------------------------------
def test_attention_backends_agree():
    """flash-attn needs CUDA (not here); sdpa and eager agree to fp32 rounding, ours and transformers'."""
    reasons = available_backends("cpu", torch.float32)
    assert "CUDA" in reasons["varlen"]  # varlen = flash-attn's kernel (or torch's): said, not silently skipped
    assert importlib.util.find_spec("flash_attn") is None  # and flash-attn itself is not installed here
    ids, mask, kw = _batch([[3, ("image", (1, 4, 6)), 4], [6]], seed=2)
    out = {}
    for impl in ("eager", "sdpa"):
        ours, hf = ref.model_pair(CFG, seed=0, attn_implementation=impl)
        ours.attn_backend = impl
        ours.visual.attn_backend = impl
        with torch.no_grad():
            out[("ours", impl)] = ours(ids, mask, **kw)
        out[("hf", impl)] = _hf_logits(hf, ids, mask, **kw)
    real = mask.bool()
    ref_logits = out[("hf", "eager")][real]
    for key, logits in out.items():
        assert (logits[real] - ref_logits).abs().max() <= 1e-5, key


# 9 -------------------------------------------------------------------------------------------
def test_loss_masking_of_prompt_and_vision_tokens(models):
    """labels = -100 on the prompt, the image pads and padding: only the answer is learned."""
    ours, hf = models
    ids, mask, kw = _batch([[5, ("image", (1, 4, 4)), 6, 7]], seed=4)  # the last 7 tokens are the answer
    labels = ids.clone()
    labels[:, :-7] = -100  # system/user prompt, vision_start, 4 image pads, vision_end
    assert int((labels != -100).sum()) == 7 and not bool((labels == IMG).any())
    with torch.no_grad():
        hf_loss = hf(input_ids=ids, attention_mask=mask, labels=labels, mm_token_type_ids=mm_token_type_ids(ids),
                     **kw).loss
        logits = ours(ids, mask, **kw)
    # causal LM: the logit at position i predicts token i + 1; masked targets are skipped
    ours_loss = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100)
    assert abs(float(hf_loss) - float(ours_loss)) <= 1e-5
    unmasked = F.cross_entropy(logits[0, :-1], ids[0, 1:])
    assert abs(float(unmasked) - float(ours_loss)) > 1e-3  # leaving prompt/pads in changes the objective


# 10 ------------------------------------------------------------------------------------------
def test_lm_head_requires_grad_trap(models):
    """Tied embeddings (2B, tiny): lm_head IS embed_tokens; freezing one freezes the other."""
    _, hf = models
    assert CFG.tie_word_embeddings and qs.QWEN2_VL_2B.tie_word_embeddings
    head, embed = hf.lm_head.weight, hf.model.language_model.embed_tokens.weight
    assert head is embed
    hf.requires_grad_(True)
    hf.lm_head.requires_grad_(False)  # "freeze the head, train the embeddings"
    try:
        assert not embed.requires_grad  # ... froze the embeddings too
        ids = torch.randint(0, 150_000, (1, 6), generator=torch.Generator().manual_seed(5))
        hf.zero_grad()
        hf(input_ids=ids, labels=ids).loss.backward()
        assert embed.grad is None
        assert hf.model.language_model.layers[0].mlp.down_proj.weight.grad is not None
    finally:
        hf.zero_grad()
        hf.requires_grad_(False)
    ours = qs.Qwen2VL(CFG)
    assert not hasattr(ours, "lm_head") and ours.lm_head_weight is ours.model.embed_tokens.weight


# 11 ------------------------------------------------------------------------------------------
def test_thin_image_resize_drift():
    """13x2000: transformers rounds 13 to 0 first (-> 28x700), qwen-vl-utils clamps to 28 (-> 28x1988)."""
    qvu = ref.qwen_vl_utils()
    assert ref.hf_smart_resize(13, 2000) == qs.smart_resize(13, 2000) == (28, 700)
    assert tuple(qvu.smart_resize(13, 2000)) == qs.smart_resize(13, 2000, rule="qwen-vl-utils") == (28, 1988)
    assert qs.count_image_tokens(13, 2000) == 27 and qs.count_image_tokens(13, 2000, rule="qwen-vl-utils") == 73


# 12 ------------------------------------------------------------------------------------------
def test_mm_token_type_ids_required_by_transformers_5(models):
    """transformers 5 refuses image inputs without mm_token_type_ids; 0 text / 1 image / 2 video."""
    ours, hf = models
    ids, mask, kw = _batch([[3, ("image", (1, 4, 4)), 3]], seed=6)
    with pytest.raises(ValueError, match="mm_token_type_ids"), torch.no_grad():
        hf(input_ids=ids, attention_mask=mask, **kw)
    types = mm_token_type_ids(ids)
    assert types.tolist()[0].count(1) == 4 and set(types.unique().tolist()) == {0, 1}
    assert (ours(ids, mask, **kw) - _hf_logits(hf, ids, mask, **kw)).abs().max() <= 1e-4
