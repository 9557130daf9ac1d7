"""The connectors of the VLM family: paper shapes, parity with the references, BLIP-2's masks."""

from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qwenvl_study.course import checks
from qwenvl_study.family.blip2 import (
    BLIP2_QFORMER,
    MASK_KINDS,
    Blip2Connector,
    QFormerConfig,
    QFormerModel,
    instruct_mask,
    itc_mask,
    itg_mask,
    itm_mask,
    qformer_mask,
)
from qwenvl_study.family.budget import connector_chains
from qwenvl_study.family.llava import (LLAVA_1_5_7B, LLAVA_7B, LlavaConnector, LlavaMultiModalProjector,
                                       select_image_features)
from qwenvl_study.family.minigpt import (
    MINIGPT_V2,
    MiniGPT4Projection,
    MiniGPTv2Projection,
    concat_adjacent_tokens,
    split_adjacent_tokens,
)
from qwenvl_study.family.qwen_vl import QWEN_VL, QwenVLConfig, QwenVLConnector, QwenVLResampler, sincos_2d

TINY_QFORMER = QFormerConfig(num_query_tokens=4, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                             intermediate_size=64, encoder_hidden_size=24, num_image_tokens=5)


# ------------------------------------------------------------------ paper shapes (meta device: no memory)
def _meta_out(module_factory, *shape):
    with torch.device("meta"):
        return module_factory()(torch.empty(*shape)).shape


def test_paper_shapes_of_every_connector():
    """Qwen-VL 1024x1664 → 256x4096; BLIP-2 257x1024 → 32x768 (→ 32x2560 into OPT-2.7B);
    LLaVA-1.5 577x1024 → 576x4096; LLaVA 257x1024 → 256x4096; MiniGPT-4 32x768 → 32x4096;
    MiniGPT-v2 1025x1408 → 256x4096. Shapes only: the real-size modules live on the meta device."""
    assert _meta_out(QwenVLConnector, 1, 1024, 1664) == (1, 256, 4096)
    assert QWEN_VL.num_heads == 32 and QWEN_VL.grid == 32 and QWEN_VL.query_grid == 16
    with torch.device("meta"):
        blip2 = Blip2Connector()
        image = torch.empty(2, 257, 1024)
        assert blip2.qformer_output(image).shape == (2, 32, 768)
        assert blip2(image).shape == (2, 32, 2560)
    assert _meta_out(LlavaConnector, 1, 577, 1024) == (1, 576, 4096)
    assert _meta_out(lambda: LlavaConnector(LLAVA_7B), 1, 257, 1024) == (1, 256, 4096)
    assert _meta_out(MiniGPT4Projection, 1, 32, 768) == (1, 32, 4096)
    assert _meta_out(MiniGPTv2Projection, 1, 1025, 1408) == (1, 256, 4096)


def test_shape_chains_end_where_the_modules_end():
    """The diagrams' shapes (``connector_chains``) are what the modules output."""
    chains = connector_chains()
    assert chains["Qwen-VL"][-1][1] == (256, 4096)
    assert chains["BLIP-2"][-1][1] == (32, 2560) and chains["BLIP-2"][0][1] == (257, 1024)
    assert chains["LLaVA-1.5"][-1][1] == (576, 4096)
    assert chains["MiniGPT-v2"][-1][1] == (256, 4096)
    assert chains["InternVL2 (per tile)"][-1][1] == (256, 4096)
    assert chains["Qwen2-VL (448x448)"][-1][1] == (256, 3584)  # 32x32 patches, 2x2 merged, Qwen2-7B


def test_bad_inputs_name_the_expected_shape():
    tiny = QwenVLConfig(image_size=56, patch_size=7, vit_width=24, num_queries=16, output_dim=32, head_dim=8)
    with pytest.raises(ValueError, match="24"):
        QwenVLResampler(tiny)(torch.randn(1, 64, 25))
    with pytest.raises(ValueError, match="num_queries must be a square"):
        QwenVLConfig(num_queries=250)
    with pytest.raises(ValueError, match="577"):
        LlavaConnector(replace(LLAVA_1_5_7B, vision_hidden_size=4, text_hidden_size=4))(torch.randn(1, 10, 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        concat_adjacent_tokens(torch.randn(1, 10, 3))
    with pytest.raises(ValueError, match="k .* must be an integer >= 1, got 0"):
        concat_adjacent_tokens(torch.randn(1, 4, 2), 0)
    with pytest.raises(ValueError, match="QwenVLConfig.head_dim must be a positive integer, got 0"):
        QwenVLConfig(head_dim=0)
    with pytest.raises(ValueError, match="QFormerConfig.num_attention_heads must be a positive integer, got 0"):
        QFormerConfig(num_attention_heads=0)
    with pytest.raises(ValueError, match=r"must be \[B, 1 \+ patches, C\] \(CLS first\), got \(3, 4\)"):
        select_image_features(torch.zeros(3, 4))
    qformer = QFormerModel(TINY_QFORMER)
    with pytest.raises(ValueError, match=r"query_length must be an integer in \[0, 7\].*got 10"):
        qformer(torch.randn(1, 7, 32), torch.randn(1, 5, 24), None, 10)
    with pytest.raises(ValueError, match="same batch size, got 2 and 1"):
        qformer(torch.randn(2, 7, 32), torch.randn(1, 5, 24), None, 4)


# ------------------------------------------------------------------ Qwen-VL
def test_qwen_vl_resampler_equals_published_forward():
    """Ours (batch-first, attention written out) vs the published forward recomputed with
    nn.MultiheadAttention (sequence-first) and numpy float32 sin-cos tables; keys get the 4x4
    query table bicubically interpolated to 8x8, as ``get_abs_pos`` does."""
    cfg = QwenVLConfig(image_size=56, patch_size=7, vit_width=24, num_queries=16, output_dim=32, head_dim=8)
    resampler = QwenVLResampler(cfg)
    check = checks.qwen_vl_resampler(torch.randn(2, 64, 24), resampler=resampler)
    assert check.ours.shape == (2, 16, 32)
    assert check.max_abs_error <= 1e-5
    assert check.details["pos_embed"] <= 1e-6


def test_qwen_vl_sincos_layout_pinned():
    """Position (row 0, col 1) of the 16x16 grid: the first half encodes the column (sin(1·ω_k),
    cos(1·ω_k)), the second half the row (sin 0 = 0, cos 0 = 1); ω_0 = 1."""
    pos = sincos_2d(4096, 16)
    assert pos.shape == (256, 4096)
    p = pos[1]  # raster order: row 0, column 1
    assert torch.isclose(p[0], torch.tensor(0.8414710)) and torch.isclose(p[1024], torch.tensor(0.5403023))
    assert torch.all(p[2048:3072] == 0) and torch.all(p[3072:] == 1)


# ------------------------------------------------------------------ BLIP-2 masks
def test_masks_hand_derived_2_queries_2_text():
    """Rows attend to columns; order Q1 Q2 T1 T2 (BLIP-2 Figure 2; LAVIS for the construction)."""
    assert itc_mask(2, 2).int().tolist() == [[1, 1, 0, 0],  # Q1: queries only
                                              [1, 1, 0, 0],
                                              [0, 0, 1, 1],  # T1: text only (bi-directional within text)
                                              [0, 0, 1, 1]]
    assert itm_mask(2, 2).int().tolist() == [[1, 1, 1, 1]] * 4
    assert itg_mask(2, 2).int().tolist() == [[1, 1, 0, 0],  # queries never see the text
                                              [1, 1, 0, 0],
                                              [1, 1, 1, 0],  # T1: all queries + itself
                                              [1, 1, 1, 1]]  # T2: all queries + T1, T2
    assert instruct_mask(2, 2).int().tolist() == [[1, 1, 1, 1]] * 4  # instruction joins the queries


def test_itg_with_padding_pinned():
    """LAVIS multiplies the causal mask by the padding mask's columns: a padded T3 is never seen."""
    m = itg_mask(1, 3, text_padding=torch.tensor([1, 1, 0]))
    assert m.int().tolist() == [[1, 0, 0, 0],
                                [1, 1, 0, 0],
                                [1, 1, 1, 0],
                                [1, 1, 1, 0]]


@given(q=st.integers(0, 12), t=st.integers(0, 12))
def test_mask_properties(q, t):
    n = q + t
    itc, itm, itg = itc_mask(q, t), itm_mask(q, t), itg_mask(q, t)
    assert itc.shape == itm.shape == itg.shape == (n, n)
    assert itm.all() and torch.equal(itc, itc.T)  # ITM all ones; ITC symmetric
    assert torch.equal(itc[:q, :q], itg[:q, :q]) and not itg[:q, q:].any()  # queries: same in ITC and ITG
    assert itg[q:, :q].all()  # text sees every query in ITG...
    assert not itc[q:, :q].any()  # ...and none in ITC
    assert torch.equal(itg[q:, q:], torch.ones(t, t, dtype=torch.bool).tril())  # causal text
    assert torch.diagonal(itg).all() and torch.diagonal(itc).all()  # everyone sees itself
    assert torch.equal(qformer_mask("instruct", q, t), itm)


def test_bad_mask_arguments():
    with pytest.raises(ValueError, match="mask kind"):
        qformer_mask("causal", 2, 2)
    with pytest.raises(ValueError, match="num_text"):
        itc_mask(2, -1)
    with pytest.raises(ValueError, match="one entry per text token"):
        itg_mask(2, 3, text_padding=torch.ones(2))


# ------------------------------------------------------------------ BLIP-2 Q-Former vs transformers
@pytest.fixture(scope="module")
def qformers():
    torch.manual_seed(1)
    return checks.qformer_pair(TINY_QFORMER)  # ours holds transformers' state dict: same names, same shapes


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_qformer_equals_transformers_under_every_mask(qformers, kind):
    embeds, image = torch.randn(2, 4 + 3, 32), torch.randn(2, 5, 24)
    check = checks.qformer(embeds, image, qformer_mask(kind, 4, 3), 4, pair=qformers)
    assert check.max_abs_error <= 1e-5


def test_qformer_queries_only_equals_transformers(qformers):
    q, image = torch.randn(3, 4, 32), torch.randn(3, 5, 24)
    assert checks.qformer(q, image, pair=qformers).max_abs_error <= 1e-5


def test_itc_joint_pass_equals_separate_passes(qformers):
    """ITC as LAVIS runs it — queries (with the image) and text in two separate passes — equals one
    joint pass under the ITC mask; under ITG the queries' outputs are also the queries-only ones."""
    ours, _ = qformers
    q, text, image = torch.randn(1, 4, 32), torch.randn(1, 3, 32), torch.randn(1, 5, 24)
    joint_in = torch.cat([q, text], dim=1)
    with torch.no_grad():
        joint = ours(joint_in, image, itc_mask(4, 3), query_length=4)
        queries_alone = ours(q, image)
        text_alone = ours(text, image, query_length=0)  # no queries: no cross-attention at all
        itg = ours(joint_in, image, itg_mask(4, 3), query_length=4)
    assert (joint[:, :4] - queries_alone).abs().max().item() <= 1e-5
    assert (joint[:, 4:] - text_alone).abs().max().item() <= 1e-5
    assert (itg[:, :4] - queries_alone).abs().max().item() <= 1e-5


def test_blip2_connector_tiny_runs():
    cfg = replace(TINY_QFORMER, llm_hidden_size=12)
    out = Blip2Connector(cfg)(torch.randn(2, 5, 24), text_embeds=torch.randn(2, 3, 32), mask=instruct_mask(4, 3))
    assert out.shape == (2, 4, 12)
    assert BLIP2_QFORMER.num_query_tokens == 32 and BLIP2_QFORMER.hidden_size == 768


# ------------------------------------------------------------------ LLaVA, MiniGPT
def test_llava_projector_equals_transformers():
    cfg = replace(LLAVA_1_5_7B, vision_hidden_size=16, text_hidden_size=24)
    ours, theirs = checks.llava_pair(cfg)  # strict state-dict load: same names, same shapes
    assert isinstance(ours, LlavaMultiModalProjector)
    assert checks.llava_projector(torch.randn(2, 9, 16), pair=(ours, theirs)).max_abs_error <= 1e-5


@given(b=st.integers(1, 2), n=st.integers(1, 16), c=st.integers(1, 5))
def test_minigpt_v2_concatenates_four_consecutive_tokens(b, n, c):
    """Token i of the output is input tokens 4i..4i+3 side by side (raster order: a 1x4 strip)."""
    x = torch.randn(b, 4 * n, c)
    y = concat_adjacent_tokens(x)
    assert y.shape == (b, n, 4 * c)
    expected = torch.stack([torch.cat([x[:, 4 * i + k] for k in range(4)], dim=-1) for i in range(n)], dim=1)
    assert torch.equal(y, expected)
    assert torch.equal(split_adjacent_tokens(y), x)


def test_minigpt_v2_tiny_forward():
    cfg = replace(MINIGPT_V2, image_size=28, patch_size=7, vit_hidden_size=3, llm_hidden_size=5)
    x = torch.randn(2, 17, 3)  # CLS + 4x4 patches
    m = MiniGPTv2Projection(cfg)
    out = m(x)
    assert out.shape == (2, 4, 5)
    assert torch.allclose(out, m.llama_proj(x[:, 1:].reshape(2, 4, 12)))
