"""Qwen2VL (vision + LLM) vs transformers' Qwen2VLForConditionalGeneration, same random weights.

Logits ≤ 1e-4 fp32 on real positions; greedy generations identical; cached == uncached.
"""

import dataclasses

import pytest
import torch

from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.rope import segments_to_batch
from qwenvl_study.config import tiny_config

CFG = tiny_config()


@pytest.fixture(scope="module")
def models():
    return ref.model_pair(CFG, seed=0)


def _case(name, g):
    """(input_ids, attention_mask, pixel kwargs) for one named case, left-padded as the processor does."""
    def text(n):
        return ("text", torch.randint(0, 150_000, (n,), generator=g).tolist())  # below the special ids

    rows = {
        "text": [[text(9)]],
        "image": [[text(4), ("image", (1, 4, 6)), text(5)]],
        "two_images": [[text(3), ("image", (1, 4, 6)), text(2), ("image", (1, 2, 4)), text(4)]],
        "video": [[text(3), ("video", (2, 4, 4)), text(6)]],
        "padded_batch": [[text(2), ("image", (1, 4, 4)), text(3)], [text(7)]],
    }[name]
    batch = segments_to_batch(rows)
    kwargs = {}
    for kind, pixels in (("image", "pixel_values"), ("video", "pixel_values_videos")):
        grid = batch[f"{kind}_grid_thw"]
        if grid is not None:
            kwargs[pixels] = torch.randn(int(grid.prod(-1).sum()), 1176, generator=g)
            kwargs[f"{kind}_grid_thw"] = grid
    return batch["input_ids"], batch["attention_mask"], kwargs


CASES = ["text", "image", "two_images", "video", "padded_batch"]


@pytest.mark.parametrize("name", CASES)
def test_logits_equal_transformers(models, name):
    ours, hf = models
    ids, mask, kw = _case(name, torch.Generator().manual_seed(1))
    check = checks.model_logits((ours, hf), ids, mask, **kw)  # mm_token_type_ids from CFG's image / video ids
    mine, theirs = check.details["logits"], check.details["reference_logits"]
    assert mine.shape == theirs.shape == (*ids.shape, CFG.text.vocab_size)
    assert check.max_abs_error <= 1e-4  # on the real (unpadded) positions


@pytest.mark.parametrize("name", CASES)
def test_greedy_generation_equals_transformers(models, name):
    ours, hf = models
    ids, mask, kw = _case(name, torch.Generator().manual_seed(2))
    check = checks.greedy_generation((ours, hf), ids, mask, **kw, max_new_tokens=20)
    assert check.ours.shape == (ids.shape[0], 20)
    assert check.ok  # torch.equal(mine, theirs)


@pytest.mark.parametrize("name", ["image", "padded_batch"])
def test_cached_and_uncached_decoding_give_the_same_tokens(models, name):
    ours, _ = models
    ids, mask, kw = _case(name, torch.Generator().manual_seed(3))
    assert torch.equal(ours.generate(ids, mask, **kw, max_new_tokens=8, use_cache=True),
                       ours.generate(ids, mask, **kw, max_new_tokens=8, use_cache=False))


def test_sampling_equals_transformers_under_the_same_seed(models):
    ours, hf = models
    ids, mask, kw = _case("padded_batch", torch.Generator().manual_seed(4))
    opts = dict(do_sample=True, temperature=0.7, top_k=50, top_p=0.9, max_new_tokens=12)
    torch.manual_seed(123)
    mine = ours.generate(ids, mask, **kw, **opts)
    torch.manual_seed(123)
    theirs = ref.hf_generate(hf, CFG, ids, mask, **kw, **opts)
    assert torch.equal(mine, theirs)
    torch.manual_seed(7)
    assert not torch.equal(ours.generate(ids, mask, **kw, **opts), ours.generate(ids, mask, **kw, **opts))


def test_generation_stops_at_eos_and_pads_like_transformers(models):
    ours, hf = models
    ids, mask, kw = _case("padded_batch", torch.Generator().manual_seed(5))
    free = ours.generate(ids, mask, **kw, max_new_tokens=10, eos_token_id=[])
    stop = int(free[0, 3])  # make row 0's 4th token a stop token
    mine = ours.generate(ids, mask, **kw, max_new_tokens=10, eos_token_id=stop, pad_token_id=0)
    theirs = ref.hf_generate(hf, CFG, ids, mask, **kw, max_new_tokens=10, do_sample=False, eos_token_id=stop,
                             pad_token_id=0)
    assert torch.equal(mine, theirs)
    first = int((free[0] == stop).nonzero()[0])
    assert torch.equal(mine[0, : first + 1], free[0, : first + 1]) and bool((mine[0, first + 1:] == 0).all())


def test_bad_inputs_are_named(models):
    ours, _ = models
    ids, mask, kw = _case("image", torch.Generator().manual_seed(6))
    with pytest.raises(ValueError, match=r"image 0: grid \(t=1, h=4, w=4\) needs .* = 4 pad tokens, its run holds 6"):
        ours(ids, mask, pixel_values=torch.randn(16, 1176), image_grid_thw=torch.tensor([[1, 4, 4]]))
    with pytest.raises(ValueError, match=r"6 <\|image_pad\|> tokens but no pixel_values"):
        ours(ids, mask)
    with pytest.raises(ValueError, match="left padding"):
        right = torch.stack([ids[0], ids[0]])
        right_mask = torch.ones_like(right)
        right_mask[1, -2:] = 0
        ours.generate(right, right_mask, pixel_values=torch.cat([kw["pixel_values"]] * 2),
                      image_grid_thw=torch.tensor([[1, 4, 6]] * 2))
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 0, got -1"):
        ours.generate(ids, mask, **kw, max_new_tokens=-1)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 151936\)"):
        ours(torch.tensor([[151936]]))


def test_decoded_text_equals_transformers_from_a_chat_with_the_sample_image(tmp_path):
    """The full path: messages → prepare_inputs (tiny real Qwen2 tokenizer) → generate → decode."""
    from qwenvl_study.chat import load_tokenizer, model_inputs, prepare_inputs
    from qwenvl_study.course.samples import sample_path

    tok = load_tokenizer(ref.write_tiny_qwen2_tokenizer(tmp_path))
    # untied lm_head: with tied embeddings a small random model just repeats its last input token
    untied = dataclasses.replace(CFG, tie_word_embeddings=False)
    ours, hf = ref.model_pair(untied, seed=0, keep_token_ids=ref.tiny_tokenizer_ids(tok))
    messages = [{"role": "user", "content": [{"type": "image", "image": str(sample_path()), "max_pixels": 200 * 28 * 28},
                                             {"type": "text", "text": "Describe this image."}]}]
    inputs = prepare_inputs(messages, tok)
    kw = model_inputs(inputs)
    mine = ours.generate(**kw, max_new_tokens=20)
    theirs = ref.hf_generate(hf, untied, **kw, max_new_tokens=20, do_sample=False)
    assert torch.equal(mine, theirs) and len(set(mine[0].tolist())) > 1
    text = tok.batch_decode(mine, skip_special_tokens=True)
    assert text == tok.batch_decode(theirs, skip_special_tokens=True) and text[0].strip()
