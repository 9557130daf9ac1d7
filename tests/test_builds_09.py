"""Notebook 09's inline builds equal the package: InternVL's pixel shuffle (bit-equal, hypothesis over shapes)
and Qwen-VL's resampler with its 2D sin-cos table (the package's weights loaded into the build, <= 1e-5)."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nbbuild import notebook_build

from qwenvl_study.family import internvl, qwen_vl

STEM = "09_vlm_family"
NS = notebook_build(STEM, "pixel_shuffle")  # every build cell of the notebook, in order


@given(b=st.integers(1, 2), rows=st.integers(1, 4), cols=st.integers(1, 4), c=st.integers(1, 5),
       k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_pixel_shuffle_equals_the_package(b, rows, cols, c, k, seed):
    x = torch.randn(b, rows * k, cols * k, c, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(NS["pixel_shuffle"](x, k), internvl.pixel_shuffle(x, 1 / k))


@given(dim=st.sampled_from([4, 8, 12, 32]), grid=st.integers(1, 6))
def test_sincos_table_equals_the_package(dim, grid):
    assert torch.equal(NS["sincos_2d"](dim, grid), qwen_vl.sincos_2d(dim, grid))


@settings(max_examples=25)
@given(side=st.integers(1, 4), grid=st.integers(1, 7), heads=st.sampled_from([1, 2, 4]), vit=st.sampled_from([8, 24]),
       batch=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_resampler_equals_the_package(side, grid, heads, vit, batch, seed):
    torch.manual_seed(seed)
    config = qwen_vl.QwenVLConfig(image_size=grid * 7, patch_size=7, vit_width=vit, num_queries=side * side,
                                  output_dim=8 * heads, head_dim=8)
    package = qwen_vl.QwenVLResampler(config)
    with torch.no_grad():  # LayerNorms and biases away from 1 / 0, so a missing one shows
        for p in package.parameters():
            p.add_(0.1 * torch.randn_like(p))
    built = NS["Resampler"](config.vit_width, config.output_dim, config.num_queries, config.num_heads)
    built.load_state_dict(package.state_dict(), strict=True)
    x = torch.randn(batch, grid * grid, vit)
    with torch.no_grad():
        ours, theirs = built(x), package(x)
    assert ours.shape == theirs.shape == (batch, side * side, config.output_dim)
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_resampler_at_the_notebook_config_matches_to_float_precision():
    torch.manual_seed(0)
    small = qwen_vl.QwenVLConfig(image_size=56, patch_size=7, vit_width=24, num_queries=16, output_dim=32, head_dim=8)
    package = qwen_vl.QwenVLResampler(small)
    built = NS["Resampler"](24, 32, 16, small.num_heads)
    built.load_state_dict(package.state_dict(), strict=True)
    x = torch.randn(2, 64, 24)
    with torch.no_grad():
        err = (built(x) - package(x)).abs().max().item()
    assert err <= 1e-6, err
    assert math.isqrt(small.num_queries) == 4
