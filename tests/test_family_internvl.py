"""InternVL2: the tiling equals the published algorithm (and transformers where they agree), pixel
shuffle equals transformers' and inverts exactly, the projector matches transformers'."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from qwenvl_study import internvl_tile_grid, pixel_shuffle
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.family.internvl import (
    INTERNVL2_8B,
    InternVLConnector,
    InternVLMultiModalProjector,
    candidate_grids,
    dynamic_preprocess,
    internvl_image_tokens,
    internvl_num_tiles,
    pixel_unshuffle,
)

sides = st.integers(min_value=1, max_value=8000)


# ------------------------------------------------------------------ the tiling
@given(w=sides, h=sides, max_num=st.integers(1, 40))
def test_tile_grid_equals_transformers_with_min_num_1(w, h, max_num):
    """min_num=1 (the published default, every InternVL2 use): transformers' get_optimal_tiled_canvas
    and the published algorithm agree — a hypothesis sweep over sizes and max_num."""
    check = checks.tile_grid(w, h, max_num=max_num)
    assert check.ok
    cols, rows = check.ours
    assert 1 <= cols * rows <= max_num


@given(w=sides, h=sides, lo=st.integers(1, 12), span=st.integers(0, 12))
def test_tile_grid_differs_from_transformers_only_on_equal_area_ties(w, h, lo, span):
    """Any min_num: where the published order and transformers' order pick different grids, the two
    are an exact tie — same area, same distance to the image's aspect ratio (see internvl.py)."""
    check = checks.tile_grid(w, h, min_num=lo, max_num=lo + span)
    ours, theirs = check.ours, check.reference
    if ours != theirs:
        assert ours[0] * ours[1] == theirs[0] * theirs[1]
        assert abs(w / h - ours[0] / ours[1]) == abs(w / h - theirs[0] / theirs[1])


def test_tile_grid_sweep_of_common_sizes_and_max_num():
    sizes = [(224, 224), (448, 448), (640, 480), (800, 600), (1280, 720), (1920, 1080), (3840, 2160), (2000, 200),
             (200, 2000), (1080, 1920), (896, 448), (1000, 1), (1, 1000), (4480, 448), (333, 1000)]
    for w, h in sizes:
        for max_num in range(1, 13):
            assert checks.tile_grid(w, h, max_num=max_num).ok, (w, h, max_num)


@given(w=sides, h=sides, lo=st.integers(1, 12), span=st.integers(0, 12))
def test_tile_grid_is_closest_in_aspect_and_within_bounds(w, h, lo, span):
    """For any bounds: tiles within [min_num, max_num] and no candidate strictly closer in aspect."""
    hi = lo + span
    cols, rows = internvl_tile_grid(w, h, min_num=lo, max_num=hi)
    assert lo <= cols * rows <= hi
    best = abs(w / h - cols / rows)
    assert all(abs(w / h - c / r) >= best for c, r in candidate_grids(lo, hi))


def test_published_examples_pinned():
    """Hand-derived with the published rule (candidates by area; a tie in |aspect - c/r| goes to the
    later (bigger) grid when W*H > 0.5 * 448² * c*r):
    - 1920x1080 (16:9): 2/1 and 4/2 tie at |1.778 - 2| = 0.222; 2,073,600 > 0.5*448²*8 = 802,816 → (4, 2)
    - 1280x720: same tie, 921,600 > 802,816 → (4, 2); 640x360: 230,400 < 802,816 → keeps (2, 1)
    - 2000x200: aspect 10, (10, 1) is exact → (10, 1); 224x224 → (1, 1)
    - 640x480: aspect 4/3, (4, 3) is exact (12 tiles); with max_num=6 the closest is (3, 2) = 1.5."""
    assert internvl_tile_grid(1920, 1080) == (4, 2)
    assert internvl_tile_grid(1280, 720) == (4, 2)
    assert internvl_tile_grid(640, 360) == (2, 1)
    assert internvl_tile_grid(2000, 200) == (10, 1)
    assert internvl_tile_grid(224, 224) == (1, 1)
    assert internvl_tile_grid(640, 480) == (4, 3)
    assert internvl_tile_grid(640, 480, max_num=6) == (3, 2)
    # tokens: 256 per tile, + a thumbnail when more than one tile
    assert internvl_num_tiles(1920, 1080) == 9 and internvl_image_tokens(1920, 1080) == 9 * 256
    assert internvl_num_tiles(224, 224) == 1 and internvl_image_tokens(224, 224) == 256


def test_equal_area_tie_published_vs_transformers_pinned():
    """Where the two disagree (documented in internvl.py): equal-area candidates are visited in a
    different order — published: a set sorted by area; transformers: loop order sorted by area.
    5x2 (aspect 2.5) with min_num=max_num=4: (4, 1) and (2, 2) are both 1.5 away; the first one
    visited wins (the image is small, so the tie rule keeps it). Published visits (4, 1) first,
    transformers (1, 4), (2, 2), (4, 1)."""
    assert candidate_grids(4, 4) == ((4, 1), (1, 4), (2, 2))
    assert internvl_tile_grid(5, 2, min_num=4, max_num=4) == (4, 1)  # published algorithm (ours)
    assert ref.hf_tile_grid(5, 2, min_num=4, max_num=4) == (2, 2)  # transformers 5.x


@pytest.mark.parametrize("size", [(700, 300), (1920, 1080), (333, 1000), (100, 50), (448, 448)])
def test_tiles_and_thumbnail_equal_transformers_crops(size):
    w, h = size
    img = Image.fromarray(np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8))
    ours = dynamic_preprocess(img)
    theirs = ref.hf_crop_to_patches(img)
    assert len(ours) == len(theirs) == internvl_num_tiles(w, h)
    for a, b in zip(ours, theirs):
        assert np.array_equal(np.asarray(a), b)  # pixel-exact (both PIL bicubic)


def test_bad_tiling_input_raises(tmp_path):
    with pytest.raises(ValueError, match="width"):
        internvl_tile_grid(0, 10)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        dynamic_preprocess(str(tmp_path / "nope.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png: not a readable image"):
        dynamic_preprocess(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="min_num=5 is larger than max_num=2"):
        internvl_tile_grid(10, 10, min_num=5, max_num=2)


# ------------------------------------------------------------------ pixel shuffle
@given(b=st.integers(1, 2), h=st.integers(1, 8), w=st.integers(1, 8), c=st.integers(1, 6))
def test_pixel_shuffle_equals_transformers_and_inverts_exactly(b, h, w, c):
    x = torch.randn(b, 2 * h, 2 * w, c)
    check = checks.pixel_shuffle(x)
    y = check.ours
    assert y.shape == (b, h, w, 4 * c)
    assert check.ok  # bit-equal to transformers': the same reshapes and transposes
    assert torch.equal(pixel_unshuffle(y), x)  # exact inverse
    # the channel order: out[i, j] = x[2i, 2j] | x[2i, 2j+1] | x[2i+1, 2j] | x[2i+1, 2j+1]
    blocks = x.reshape(b, h, 2, w, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, 4 * c)
    assert torch.equal(y, blocks)


def test_pixel_shuffle_real_shape_and_bad_input():
    x = torch.randn(1, 32, 32, 16)
    assert pixel_shuffle(x).shape == (1, 16, 16, 64)
    with torch.device("meta"):
        assert pixel_shuffle(torch.empty(2, 32, 32, 1024)).shape == (2, 16, 16, 4096)
    with pytest.raises(ValueError, match="divisible by 2"):
        pixel_shuffle(torch.randn(1, 5, 4, 3))
    with pytest.raises(ValueError, match="channels last"):
        pixel_shuffle(torch.randn(4, 4, 3))
    with pytest.raises(ValueError, match=r"pixel_unshuffle: scale must be 1/k .* got 0"):
        pixel_unshuffle(torch.randn(1, 4, 4, 4), 0)
    with pytest.raises(ValueError, match=r"pixel_shuffle: scale must be 1/k .* got 2"):
        pixel_shuffle(torch.randn(1, 4, 4, 4), 2)


# ------------------------------------------------------------------ the projector / connector
def test_projector_equals_transformers():
    cfg = replace(INTERNVL2_8B, vit_hidden_size=8, llm_hidden_size=24)
    theirs = ref.hf_internvl_projector(cfg)
    ours = InternVLMultiModalProjector(cfg)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 9, cfg.shuffled_dim)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() <= 1e-5


def test_connector_paper_shapes():
    """InternVL2-8B: a 448 tile → InternViT (1 + 32x32 tokens x 1024) → 256 x 4096 (meta device)."""
    with torch.device("meta"):
        out = InternVLConnector()(torch.empty(3, 1025, 1024))
    assert out.shape == (3, 256, 4096) and INTERNVL2_8B.tokens_per_tile == 256
    with pytest.raises(ValueError, match="1025"):
        InternVLConnector(replace(INTERNVL2_8B, vit_hidden_size=4, llm_hidden_size=4))(torch.randn(1, 10, 4))
