"""Notebook 05's inline build (the decoder layer written in the open) equals the package's ``language.py``.

The build cells of ``notebooks/05_language_model.ipynb`` (``# build: rms_norm`` … ``decoder_layer``) are
loaded by ``nbbuild``. The package layer gets random weights in every tensor (norm weights too, so a build
that ignored them would fail), the build loads them by name, and both run the same inputs: random
embeddings of order 1, arbitrary 3-row M-RoPE positions, with and without left padding.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nbbuild import notebook_build

from qwenvl_study.attention import causal_mask, repeat_kv
from qwenvl_study.config import TextConfig
from qwenvl_study.language import Qwen2DecoderLayer, decoder_mask
from qwenvl_study.rope import mrope_cos_sin

TOL = 1e-5  # fp32, max abs
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def nb():
    return notebook_build("05_language_model", "decoder_layer")


def _config(heads: int = 4, kv_heads: int = 2, section=(2, 3, 3), intermediate: int = 48) -> TextConfig:
    head_dim = 2 * sum(section)
    return TextConfig(vocab_size=16, hidden_size=heads * head_dim, intermediate_size=intermediate,
                      num_hidden_layers=1, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      mrope_section=section)


def _pair(nb, config: TextConfig, seed: int = 0):
    """The package layer with every tensor random, and the build holding the same tensors."""
    pkg = Qwen2DecoderLayer(config, 0).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pkg.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.2
            p.copy_(1 + noise if name.endswith("layernorm.weight") else noise)
    built = nb["DecoderLayer"](config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
                               config.head_dim, config.intermediate_size, config.rms_norm_eps).eval()
    built.load_state_dict(pkg.state_dict(), strict=True)
    return pkg, built


def _inputs(config: TextConfig, batch: int, length: int, seed: int = 0, max_pos: int = 40):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, config.hidden_size, generator=gen)
    pos = torch.randint(0, max_pos, (3, batch, length), generator=gen)
    return x, pos


def _max(a, b) -> float:
    return (a - b).abs().max().item()


def test_every_piece_equals_the_package(nb):
    config = _config()
    pkg, built = _pair(nb, config)
    x, pos = _inputs(config, 2, 9)
    cos, sin = mrope_cos_sin(pos, config.head_dim, config.rope_theta, config.mrope_section)
    mine = nb["mrope_cos_sin"](pos, config.head_dim, config.rope_theta, config.mrope_section)
    assert _max(mine[0], cos) <= 1e-6 and _max(mine[1], sin) <= 1e-6
    with torch.no_grad():
        assert _max(built.input_layernorm(x), pkg.input_layernorm(x)) <= TOL
        assert _max(built.mlp(x), pkg.mlp(x)) <= TOL
        assert _max(built.self_attn(x, cos, sin), pkg.self_attn(x, cos, sin, None, backend="eager", causal=True)) <= TOL
        out = built(x, cos, sin)
        assert _max(out, pkg(x, cos, sin, None, backend="eager", causal=True)) <= TOL
        assert _max(out, pkg(x, cos, sin, None, backend="sdpa", causal=True)) <= TOL
    assert out.abs().max() > 1  # inputs of order 1: the tolerance is tight, not vacuous


@given(query=st.integers(0, 6), extra=st.integers(0, 6), heads=st.integers(1, 4), rep=st.integers(1, 3))
@settings(max_examples=30)
def test_causal_mask_and_kv_repeat_equal_the_package(nb, query, extra, heads, rep):
    assert torch.equal(nb["causal_mask"](query, query + extra), causal_mask(query, query + extra))
    kv = torch.randn(2, heads, 5, 4)
    assert torch.equal(nb["repeat_kv"](kv, rep), repeat_kv(kv, rep))


@given(batch=st.integers(1, 3), length=st.integers(1, 12), kv_heads=st.sampled_from([1, 2, 4]),
       group=st.integers(1, 3), section=st.sampled_from([(2, 3, 3), (1, 1, 2), (4, 2, 2)]),
       pad=st.integers(0, 5), seed=st.integers(0, 1000))
@settings(max_examples=30)
def test_random_layers_positions_and_padding_equal_the_package(nb, batch, length, kv_heads, group, section, pad,
                                                               seed):
    config = _config(heads=kv_heads * group, kv_heads=kv_heads, section=section)
    pkg, built = _pair(nb, config, seed)
    x, pos = _inputs(config, batch, length, seed)
    cos, sin = mrope_cos_sin(pos, config.head_dim, config.rope_theta, config.mrope_section)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, :min(pad, length - 1)] = 0  # left padding in the first row (one real token at least)
    with torch.no_grad():
        mine = built(x, cos, sin, mask)
        theirs = pkg(x, cos, sin, decoder_mask(mask, length), backend="eager")
    real = mask.bool()
    assert _max(mine[real], theirs[real]) <= TOL  # padded rows are never read (both give their own filler)
    assert torch.isfinite(mine).all()


def test_the_builds_are_the_lesson_pieces_and_self_contained():
    from nbbuild import _cells, build_names

    assert build_names("05_language_model") == ["rms_norm", "swiglu", "mrope", "gqa_attention", "decoder_layer"]
    assert not any("qwenvl_study" in src for _, src in _cells("05_language_model"))  # written, not imported
