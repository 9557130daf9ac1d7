"""preprocess_image / patchify / PatchEmbed vs transformers' PIL image processor and PatchEmbed."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from qwenvl_study import PatchEmbed, patchify, preprocess_image
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.patching import open_image, resize_image, unpatchify
from qwenvl_study.course.samples import sample_path

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: threads only add synchronisation (conftest)


def _image(h: int, w: int, mode: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    if mode == "P+transparency":
        img = img.convert("RGB").convert("P")
        img.info["transparency"] = 7
        return img
    return img.convert(mode)


@given(h=st.integers(1, 400), w=st.integers(1, 400), mode=st.sampled_from(["RGB", "L", "RGBA", "LA", "P", "P+transparency"]),
       lo=st.integers(1, 64), hi=st.integers(64, 512), seed=st.integers(0, 2**16))
def test_preprocess_image_equals_the_pil_processor(h, w, mode, lo, hi, seed):
    if max(h, w) / min(h, w) > 200:
        return
    img = _image(h, w, mode, seed)
    min_pixels, max_pixels = lo * 28 * 28, hi * 28 * 28
    check = checks.preprocess_image(img, min_pixels=min_pixels, max_pixels=max_pixels)
    (pv, grid), (hpv, hgrid) = check.ours, check.reference
    assert check.details["grid_equal"] and grid.dtype == torch.long and grid.shape == (1, 3)
    assert pv.dtype == torch.float32 and pv.shape == hpv.shape and pv.shape[1] == 1176
    assert check.max_abs_error <= 1e-6


@given(h=st.integers(1, 400), w=st.integers(1, 400), lo=st.integers(1, 64), hi=st.integers(64, 512),
       seed=st.integers(0, 2**16))
def test_resize_image_equals_qwen_vl_utils_fetch_image(h, w, lo, hi, seed):
    """The resize step alone, against a reference that returns the resized image: qwen-vl-utils'
    fetch_image (its smart_resize rule, PIL bicubic) on RGB images."""
    if max(h, w) / min(h, w) > 200:
        return
    img = _image(h, w, "RGB", seed)
    min_pixels, max_pixels = lo * 28 * 28, hi * 28 * 28
    theirs = ref.qwen_vl_utils().fetch_image({"image": img, "min_pixels": min_pixels, "max_pixels": max_pixels})
    ours = resize_image(img, min_pixels=min_pixels, max_pixels=max_pixels, rule="qwen-vl-utils")
    assert ours.size == theirs.size and np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_sample_image_and_path_input_equal_the_processor():
    check = checks.preprocess_image(sample_path())
    grid = check.ours[1]
    assert check.details["grid_equal"] and tuple(grid[0].tolist()) == (1, 34, 46)
    assert check.max_abs_error <= 1e-6


def test_224_image_is_256_rows_of_1176():
    pv, grid = preprocess_image(_image(224, 224, "RGB", 0))
    assert pv.shape == (256, 1176) and grid.tolist() == [[1, 16, 16]]


def test_an_image_is_two_identical_frames():
    pv, _ = preprocess_image(_image(56, 84, "RGB", 1))
    tubes = pv.view(-1, 3, 2, 14, 14)  # [N, C, T, P, P]
    assert torch.equal(tubes[:, :, 0], tubes[:, :, 1])


@given(t=st.integers(1, 5), gh=st.integers(1, 4), gw=st.integers(1, 4), c=st.sampled_from([1, 3]))
def test_unpatchify_inverts_patchify(t, gh, gw, c):
    frames = torch.randn(t, c, gh * 28, gw * 28)
    patches, grid = patchify(frames)
    assert grid == ((t + 1) // 2, gh * 2, gw * 2)
    back = unpatchify(patches, grid, channels=c)
    assert torch.equal(back[:t], frames)
    if t % 2:  # odd frame counts repeat the last frame
        assert torch.equal(back[t], frames[-1])


def test_patchify_of_one_frame_equals_the_processor_patchify():
    frames = torch.randn(1, 3, 56, 84)
    ours, (gt, gh, gw) = patchify(frames)
    theirs, th, tw = ref.hf_image_processor().patchify(frames[0].numpy(), patch_size=14, merge_size=2,
                                                       temporal_patch_size=2)
    assert (gt, gh, gw) == (1, th, tw)
    assert torch.equal(ours, torch.from_numpy(np.ascontiguousarray(theirs)))


def test_patchify_rows_keep_merge_groups_adjacent():
    """Row 4k..4k+3 are the 2x2 patches of merge group k (raster order inside and across groups)."""
    gh, gw = 4, 6
    frames = torch.zeros(2, 1, gh * 14, gw * 14)
    for r in range(gh):
        for c in range(gw):
            frames[:, :, r * 14:(r + 1) * 14, c * 14:(c + 1) * 14] = r * 100 + c
    rows, _ = patchify(frames)
    ids = rows[:, 0].long().tolist()
    expected = [(2 * i + a) * 100 + 2 * j + b for i in range(gh // 2) for j in range(gw // 2)
                for a in range(2) for b in range(2)]
    assert ids == expected


_EMBEDS: dict[int, PatchEmbed] = {}  # one random PatchEmbed per width (building the 1280-wide one is the slow part)


@given(n=st.integers(1, 64), dim=st.sampled_from([8, 64, 1280]))
def test_conv3d_patch_embed_equals_its_linear_twin(n, dim):
    if dim not in _EMBEDS:
        _EMBEDS[dim] = PatchEmbed(embed_dim=dim)
    embed = _EMBEDS[dim]
    x = torch.randn(n, 1176)
    out = embed(x)
    assert out.shape == (n, dim)
    assert (out - embed.as_linear()(x)).abs().max().item() <= 1e-5


def test_patch_embed_equals_transformers_patch_embed():
    from transformers.models.qwen2_vl.modeling_qwen2_vl import PatchEmbed as HFPatchEmbed

    ours, theirs = PatchEmbed(embed_dim=32), HFPatchEmbed(embed_dim=32)
    theirs.load_state_dict(ours.state_dict())  # same parameter names: proj.weight
    x = torch.randn(20, 1176)
    assert (ours(x) - theirs(x)).abs().max().item() <= 1e-6


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        preprocess_image(tmp_path / "nope.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="garbage.png: not a readable image"):
        preprocess_image(garbage)
    good = tmp_path / "good.png"
    _image(64, 64, "RGB", 0).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated.png"):
        preprocess_image(truncated)
    with pytest.raises(ValueError, match=r"zero size \(0x10\)"):
        preprocess_image(Image.new("RGB", (0, 10)))
    with pytest.raises(ValueError, match="aspect ratio 201.00"):
        preprocess_image(Image.new("RGB", (201, 1)))
    with pytest.raises(ValueError, match="min_pixels=9999 is larger than max_pixels=3136"):
        preprocess_image(good, min_pixels=9999, max_pixels=3136)
    with pytest.raises(ValueError, match=r"frames of shape \(1, 3, 30, 28\)"):
        patchify(torch.zeros(1, 3, 30, 28))
    with pytest.raises(ValueError, match="expected a PIL image, a path or bytes, got int"):
        preprocess_image(5)
    with pytest.raises(ValueError, match="expected a PIL image, a path or bytes, got NoneType"):
        open_image(None)
    with pytest.raises(ValueError, match=r"grid \(1, 1, 3\): .*multiples of merge_size=2"):
        unpatchify(torch.zeros(3, 1176), (1, 1, 3))
    with pytest.raises(ValueError, match=r"PatchEmbed: pixel_values must be \[N, 1176\].*got shape \(3, 100\)"):
        PatchEmbed(embed_dim=8)(torch.zeros(3, 100))
