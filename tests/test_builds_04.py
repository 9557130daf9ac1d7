"""Notebook 04's inline build (the vision tower written in the open) equals the package's ``vision.py``.

The build cells of ``notebooks/04_vision_encoder.ipynb`` (``# build: patch_embed`` … ``vision_tower``) are
loaded by ``nbbuild``; the package tower's random weights (every tensor random) are loaded into the build
(the Conv3d kernel reshaped to the Linear's ``[d, 1176]``) and both run the same packed grids.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nbbuild import notebook_build

from qwenvl_study import VisionConfig
from qwenvl_study.attention import block_diagonal_mask, cu_seqlens_from_grid
from qwenvl_study.rope import vision_cos_sin, vision_position_ids
from qwenvl_study.vision import VisionTransformer

TOL = 1e-5  # fp32, max abs
pytestmark = pytest.mark.usefixtures("one_thread")

grids = st.lists(st.tuples(st.integers(1, 2), st.integers(1, 3).map(lambda x: 2 * x),
                           st.integers(1, 3).map(lambda x: 2 * x)), min_size=1, max_size=3)


@pytest.fixture(scope="module")
def nb():
    return notebook_build("04_vision_encoder", "vision_tower")


def _pair(nb, config: VisionConfig, seed: int = 0):
    """The package tower (random weights, std 0.02) and the build holding the same tensors."""
    pkg = VisionTransformer.random(config, seed=seed, attn_backend="eager")
    state = pkg.state_dict()
    state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].reshape(config.embed_dim, -1)
    built = nb["VisionTower"](config.embed_dim, config.depth, config.num_heads, config.hidden_size).eval()
    built.load_state_dict(state, strict=True)
    return pkg, built


def _inputs(grid, seed: int = 0):
    grid = torch.tensor(grid).reshape(-1, 3)
    rows = int(grid.prod(-1).sum())
    return torch.randn(rows, 1176, generator=torch.Generator().manual_seed(seed)), grid


def _max(a, b) -> float:
    return (a - b).abs().max().item()


def test_every_piece_equals_the_package_on_a_packed_batch(nb):
    """An image, a 2-slice video and a small image packed: each piece and the whole tower within 1e-5."""
    config = VisionConfig(depth=2, embed_dim=64, num_heads=4, hidden_size=48)
    pkg, built = _pair(nb, config)
    pv, grid = _inputs([[1, 4, 6], [2, 4, 4], [1, 2, 2]])
    with torch.no_grad():
        out = pkg(pv, grid, return_hidden_states=True)
        cu = cu_seqlens_from_grid(grid)
        cos, sin = vision_cos_sin(vision_position_ids(grid), config.head_dim)
        assert _max(built.patch_embed(pv), out.hidden_states[0]) <= TOL
        for i, block in enumerate(built.blocks):
            assert _max(block(out.hidden_states[i], cu.long(), cos, sin), out.hidden_states[i + 1]) <= TOL, i
        assert _max(built.merger(out.last_hidden_state), out.merged) <= TOL
        assert _max(built(pv, grid), out.merged) <= TOL
    assert built(pv, grid).shape == (pv.shape[0] // 4, 48)


@given(grid=grids, head_dim=st.sampled_from([4, 8, 16, 80]))
@settings(max_examples=25)
def test_positions_segments_and_rotary_equal_the_package(nb, grid, head_dim):
    g = torch.tensor(grid)
    pos = nb["vision_position_ids"](g)
    assert torch.equal(pos, vision_position_ids(g))
    cu = nb["cu_seqlens_from_grid"](g)
    assert torch.equal(cu, cu_seqlens_from_grid(g).long())
    assert torch.equal(nb["block_diagonal_mask"](cu), block_diagonal_mask(cu_seqlens_from_grid(g)))
    for mine, theirs in zip(nb["vision_cos_sin"](pos, head_dim), vision_cos_sin(pos, head_dim)):
        assert _max(mine, theirs) <= 1e-6


@given(grid=grids, depth=st.integers(1, 2), heads=st.integers(1, 3), head_dim=st.sampled_from([4, 8, 16]),
       hidden=st.sampled_from([8, 24]), seed=st.integers(0, 1000))
@settings(max_examples=20)
def test_random_towers_and_grids_equal_the_package(nb, grid, depth, heads, head_dim, hidden, seed):
    config = VisionConfig(depth=depth, embed_dim=heads * head_dim, num_heads=heads, hidden_size=hidden)
    pkg, built = _pair(nb, config, seed)
    pv, g = _inputs(grid, seed)
    with torch.no_grad():
        assert _max(built(pv, g), pkg(pv, g)) <= TOL


def test_the_builds_are_the_lesson_pieces_and_self_contained():
    from nbbuild import _cells, build_names

    assert build_names("04_vision_encoder") == ["patch_embed", "vision_rope", "packed_attention", "vision_block",
                                                "patch_merger", "vision_tower"]
    assert not any("qwenvl_study" in src for _, src in _cells("04_vision_encoder"))  # written, not imported
