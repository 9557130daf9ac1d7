"""Notebook 10's inline builds: InfoNCE equals the package's ``clip_loss`` and transformers' ``CLIPModel`` loss
(hypothesis over batch, width, scale; <= 1e-5), and the zero-shot classifier equals ``CLIPModel``'s
``logits_per_image`` with one template per class (the prompt ensemble: normalised mean of normalised embeddings)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from nbbuild import notebook_build

import qwenvl_study as qs
from qwenvl_study.course import reference as ref

STEM = "10_clip_infonce"
NS = notebook_build(STEM, "zero_shot")  # every build cell of the notebook, in order


@given(n=st.integers(2, 12), d=st.integers(1, 16), scale=st.floats(0.5, 100.0), seed=st.integers(0, 2**16))
def test_info_nce_equals_the_package(n, d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    image, text = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert abs(NS["info_nce"](image, text, scale).item() - qs.clip_loss(image, text, scale).item()) <= 1e-5


@pytest.mark.parametrize("n, d, scale", [(2, 3, 1.0), (16, 32, 1 / 0.07), (64, 16, 100.0)])
def test_info_nce_equals_clipmodels_loss(n, d, scale):
    g = torch.Generator().manual_seed(n)
    image, text = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert abs(NS["info_nce"](image, text, scale).item() - ref.hf_clip_loss(image, text, scale).item()) <= 1e-5


def test_info_nce_is_not_symmetric_in_its_halves_by_accident():
    # rows and columns differ on this batch: a build that used the same half twice would fail here
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    assert NS["info_nce"](image, text, 1.0).item() == pytest.approx(0.44888, abs=1e-5)


@pytest.fixture(scope="module")
def tiny_clip():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=258, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=64, bos_token_id=256, eos_token_id=257, pad_token_id=0),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=8), projection_dim=8)).eval()


def _tokenize(texts):
    rows = [[256] + [b + 1 for b in text.encode()] + [257] for text in texts]
    width = max(map(len, rows))
    return dict(input_ids=torch.tensor([r + [0] * (width - len(r)) for r in rows]),
                attention_mask=torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]))


_word = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=6)


@settings(max_examples=8)
@given(classes=st.lists(_word, min_size=1, max_size=4, unique=True), template=st.sampled_from(["a {}", "{}!", "x {} y"]),
       batch=st.integers(1, 3))
def test_zero_shot_with_one_template_equals_clipmodel(tiny_clip, classes, template, batch):
    encode = lambda texts: tiny_clip.get_text_features(**_tokenize(texts)).pooler_output
    pixels = torch.randn(batch, 3, 16, 16)
    with torch.no_grad():
        image = tiny_clip.get_image_features(pixel_values=pixels).pooler_output
        ours = NS["zero_shot_logits"](image, NS["class_embeddings"](encode, classes, [template]),
                                      tiny_clip.logit_scale.exp())
        theirs = tiny_clip(**_tokenize([template.format(c) for c in classes]), pixel_values=pixels).logits_per_image
    assert ours.shape == theirs.shape == (batch, len(classes))
    assert (ours - theirs).abs().max().item() <= 1e-5


@given(k=st.integers(1, 5), t=st.integers(1, 6), d=st.integers(2, 8), seed=st.integers(0, 2**16))
def test_prompt_ensemble_is_the_normalised_mean_of_normalised_embeddings(k, t, d, seed):
    table = torch.randn(k, t, d, generator=torch.Generator().manual_seed(seed))  # class x template x width
    templates = [f"{{}}#{j}" for j in range(t)]
    encode = lambda texts: torch.stack([table[int(s.split("#")[0]), int(s.split("#")[1])] for s in texts])
    ours = NS["class_embeddings"](encode, [str(i) for i in range(k)], templates)
    expected = F.normalize(F.normalize(table, dim=-1).mean(dim=1), dim=-1)  # independent: torch's normalize
    assert (ours - expected).abs().max().item() <= 1e-6
