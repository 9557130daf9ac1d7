"""The course model's answer-only loss and its gradients equal transformers' on the same weights and batch.

transformers' ``Qwen2VLForConditionalGeneration(labels=...)`` (5.x: ``ForCausalLMLoss``, shift by one,
ignore_index -100, mean over supervised tokens) vs ``course.answer_loss`` on ``CourseQwen2VL``'s logits,
for a right-padded batch of images, a video and a multi-turn chat; tolerance 1e-5 (fp32).
"""

import pytest
import torch

from qwenvl_study.chat import mm_token_type_ids
from qwenvl_study.course import reference as ref
from qwenvl_study.train.course import CourseQwen2VL, answer_loss, collate, course_config, encode_sample
from qwenvl_study.train.data import make_sample
from qwenvl_study.train.vocab import build_vocab, course_tokenizer


@pytest.fixture(scope="module")
def setup():
    tok = course_tokenizer()
    vocab = build_vocab(tok)
    config = course_config(vocab, vision_width=64, vision_depth=2, text_width=64, text_layers=2, text_heads=4,
                           mlp=128)
    hf = ref.hf_model(config, seed=3)
    with torch.no_grad():  # transformers' init leaves biases 0 and norms 1: randomise them so a mix-up shows
        g = torch.Generator().manual_seed(1)
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_q" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    ours = CourseQwen2VL(config, vocab)
    ours.load_state_dict(ref.published_state_dict(hf), strict=True)
    # a 4-frame video: t = 2 <= max(h', w') = 2, where transformers 5.x's M-RoPE rule and the paper's
    # (ours) agree; longer videos at this pixel budget follow the paper (README: the 5.x drift)
    video = next(s for s in (make_sample(5, i, "direction") for i in range(100)) if len(s.media) == 4)
    samples = [make_sample(5, 0, "find"), make_sample(5, 1, "describe"), video,
               make_sample(5, 3, "count", max_turns=3)]
    batch = collate([encode_sample(s, tok, vocab) for s in samples], vocab.special("<|endoftext|>"))
    return ours, hf, batch, config


def _hf_loss(hf, batch, config):
    kwargs = {k: v for k, v in batch.items() if k != "labels"}
    out = hf(**kwargs, labels=batch["labels"],
             mm_token_type_ids=mm_token_type_ids(batch["input_ids"], config.image_token_id, config.video_token_id))
    return out.loss


def test_batch_has_images_video_padding_and_masked_labels(setup):
    _, _, batch, config = setup
    assert "pixel_values" in batch and "pixel_values_videos" in batch
    assert (batch["attention_mask"] == 0).any()  # right padding present
    sup = batch["labels"] != -100
    assert not sup[batch["input_ids"] == config.image_token_id].any()
    assert 0 < int(sup.sum()) < int(batch["attention_mask"].sum()) // 2


def test_loss_equals_transformers(setup):
    ours, hf, batch, config = setup
    ours.train(), hf.train()
    kwargs = {k: v for k, v in batch.items() if k != "labels"}
    loss = answer_loss(ours(**kwargs), batch["labels"])
    ref_loss = _hf_loss(hf, batch, config)
    print(f"loss ours {loss.item():.7f} transformers {ref_loss.item():.7f}")
    assert abs(loss.item() - ref_loss.item()) <= 1e-5, (loss.item(), ref_loss.item())
    assert loss.item() > 1.0  # a random model: far from 0, so equal losses mean something


def test_gradients_equal_transformers(setup):
    ours, hf, batch, config = setup
    ours.zero_grad(), hf.zero_grad()
    kwargs = {k: v for k, v in batch.items() if k != "labels"}
    answer_loss(ours(**kwargs), batch["labels"]).backward()
    _hf_loss(hf, batch, config).backward()
    from qwenvl_study.checkpoint import published_key

    hf_grads = {published_key(k): p.grad for k, p in hf.named_parameters()}
    worst, checked = 0.0, 0
    for name, p in ours.named_parameters():
        g_ref = hf_grads[name]
        assert p.grad is not None and g_ref is not None, name
        worst = max(worst, (p.grad - g_ref).abs().max().item())
        checked += 1
    print(f"gradients: worst abs difference {worst:.2e} over {checked} tensors")
    assert checked == len(list(ours.parameters())) and worst <= 1e-5, worst
    assert any(p.grad.abs().max() > 1e-4 for n, p in ours.named_parameters() if n.startswith("visual."))
