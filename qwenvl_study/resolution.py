"""Naive Dynamic Resolution: how many pixels, patches and tokens an image or video becomes.

Paper §2.1 "Naive Dynamic Resolution": images keep (close to) their native resolution; both sides
are rounded to multiples of 28 (= 14-pixel patch x 2x2 merge) and the pixel count is clamped to
[min_pixels, max_pixels]. Each 28x28 square becomes one LLM token; an image is wrapped in
``<|vision_start|> … <|vision_end|>`` (the 2 special tokens).

Reference: ``smart_resize`` in transformers/models/qwen2_vl/image_processing_pil_qwen2_vl.py
(``rule="transformers"``, the default) and in qwen-vl-utils' vision_process.py
(``rule="qwen-vl-utils"``). They differ for very thin images: qwen-vl-utils first clamps each
rounded side to at least ``factor``, transformers does not (13x2000 → 28x700 vs 28x1988).

Defaults are the published Qwen2-VL-2B-Instruct ``preprocessor_config.json``:
``min_pixels=3136`` (56*56, i.e. at least 2x2 merged tokens) and ``max_pixels=12845056``
(28*28*16384, i.e. at most 16384 merged tokens).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np
import torch

from .config import MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE  # the published patch sizes (their one home)

__all__ = [
    "PATCH_SIZE",
    "MERGE_SIZE",
    "TEMPORAL_PATCH_SIZE",
    "FACTOR",
    "MIN_PIXELS",
    "MAX_PIXELS",
    "MAX_RATIO",
    "Rule",
    "check_int",
    "check_grid",
    "check_grids",
    "round_by_factor",
    "ceil_by_factor",
    "floor_by_factor",
    "smart_resize",
    "image_grid_thw",
    "video_grid_thw",
    "count_image_tokens",
    "count_video_tokens",
    "grid_tokens",
    "MODELS",
    "ModelName",
    "ProcessorPreset",
    "PRESETS",
    "smart_resize_frames",
]

FACTOR = PATCH_SIZE * MERGE_SIZE  # 28
MIN_PIXELS = 56 * 56  # 3136
MAX_PIXELS = 28 * 28 * 16384  # 12845056
MAX_RATIO = 200

Rule = Literal["transformers", "qwen-vl-utils"]
ModelName = Literal["qwen2-vl", "qwen2.5-vl", "qwen3-vl"]
RULES = ("transformers", "qwen-vl-utils")


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``int(value)`` if it is an integer (numpy integers too; not a bool) >= ``minimum``; else
    ValueError naming it and the limit."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_grids(grid_thw: Any, merge_size: int = MERGE_SIZE, *, name: str = "grid_thw", min_items: int = 0,
                item: str | None = None) -> torch.Tensor:
    """The one grid check: ``[n, 3]`` patch grids ``(t, h, w)`` (tensor, array or nested list;
    ``None`` = none), each >= 1 with h and w multiples of ``merge_size`` → ``LongTensor[n, 3]``.

    A ValueError names the item (``name[i]``, or ``item`` when given), its values and the limit.
    """
    g = torch.as_tensor(torch.zeros(0, 3, dtype=torch.long) if grid_thw is None else grid_thw)
    if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers (t, h, w in patches), got dtype {g.dtype}")
    if g.ndim != 2 or g.shape[-1] != 3 or g.shape[0] < min_items:
        at_least = f" with at least {min_items} row(s)" if min_items else ""
        raise ValueError(f"{name} must have shape [num_items, 3] (t, h, w){at_least}, got {list(g.shape)}")
    rows = g.cpu().numpy()  # [n, 3] (numpy: no thread pool for these tiny checks)
    bad = np.flatnonzero((rows < 1).any(-1) | (rows[:, 1:] % merge_size != 0).any(-1))  # [n_bad]
    if len(bad):
        t, h, w = rows[bad[0]].tolist()
        rule = f" and h, w multiples of spatial_merge_size={merge_size}" if merge_size > 1 else ""
        raise ValueError(f"{item or f'{name}[{bad[0]}] ='} (t={t}, h={h}, w={w}): t, h, w must be >= 1{rule}")
    return g.long()


def check_grid(grid: Sequence[int], merge_size: int = MERGE_SIZE, *, item: str = "grid") -> tuple[int, int, int]:
    """One ``(t, h, w)`` through :func:`check_grids` → python ints; errors name ``item``."""
    t, h, w = check_grids([list(grid)], merge_size, name=item, item=item)[0].tolist()
    return t, h, w


def _check_pixels(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def round_by_factor(number: float, factor: int) -> int:
    """The multiple of ``factor`` nearest to ``number`` (Python's round: halves to even)."""
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    """The smallest multiple of ``factor`` >= ``number``."""
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    """The largest multiple of ``factor`` <= ``number``."""
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = FACTOR,
    min_pixels: float = MIN_PIXELS,
    max_pixels: float = MAX_PIXELS,
    rule: Rule = "transformers",
) -> tuple[int, int]:
    """The (height, width) an image is resized to: multiples of ``factor``, pixels in bounds.

    1. round each side to the nearest multiple of ``factor`` (Python's round: halves to even);
    2. too many pixels → scale both sides by beta = sqrt(H*W / max_pixels) and floor;
       too few → scale by sqrt(min_pixels / (H*W)) and ceil. The aspect ratio is kept as well
       as multiples of ``factor`` allow.

    ``rule="qwen-vl-utils"`` additionally clamps each rounded side to ``>= factor`` before the
    checks (what the course lesson's pipeline runs first); see the module docstring for the difference.
    ``min_pixels`` / ``max_pixels`` may be floats: qwen-vl-utils' per-frame video budget
    (``total_pixels / nframes * 2``) is one, and rounding it would change ``beta``.
    """
    height, width = check_int("height", height), check_int("width", width)  # numpy integers → int
    factor = check_int("factor", factor)
    min_pixels, max_pixels = _check_pixels("min_pixels", min_pixels), _check_pixels("max_pixels", max_pixels)
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels={min_pixels} is larger than max_pixels={max_pixels}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_RATIO:
        raise ValueError(f"aspect ratio {ratio:.2f} of a {height}x{width} (HxW) image exceeds the limit "
                         f"of {MAX_RATIO}")

    h_bar = round_by_factor(height, factor)
    w_bar = round_by_factor(width, factor)
    if rule == "qwen-vl-utils":
        h_bar, w_bar = max(factor, h_bar), max(factor, w_bar)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def image_grid_thw(
    height: int,
    width: int,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    patch_size: int = PATCH_SIZE,
    merge_size: int = MERGE_SIZE,
    rule: Rule = "transformers",
) -> tuple[int, int, int]:
    """(t, h, w) patch grid of an image: t = 1 (one tube of two identical frames)."""
    rh, rw = smart_resize(height, width, factor=patch_size * merge_size, min_pixels=min_pixels,
                          max_pixels=max_pixels, rule=rule)
    return 1, rh // patch_size, rw // patch_size


def video_grid_thw(
    num_frames: int,
    height: int,
    width: int,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    patch_size: int = PATCH_SIZE,
    merge_size: int = MERGE_SIZE,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
    rule: Rule = "transformers",
) -> tuple[int, int, int]:
    """(t, h, w) patch grid of a video: frames go in pairs, an odd count repeats the last frame."""
    check_int("num_frames", num_frames)
    _, gh, gw = image_grid_thw(height, width, min_pixels=min_pixels, max_pixels=max_pixels,
                               patch_size=patch_size, merge_size=merge_size, rule=rule)
    return math.ceil(num_frames / temporal_patch_size), gh, gw


def count_image_tokens(
    height: int,
    width: int,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    special_tokens: bool = True,
    rule: Rule = "transformers",
    model: ModelName = "qwen2-vl",
) -> int:
    """LLM tokens for one image: (H'/28)*(W'/28) merged tokens, +2 for vision_start/vision_end.

    224x224 → 224x224 → 16x16 patches = 256 → 64 merged tokens → 66 with the special tokens.
    With ``min_pixels >= 3136`` (the published minimum) an image never gets fewer than 4 merged
    tokens. ``model`` picks the published processor defaults (:data:`PRESETS`): Qwen2.5-VL keeps
    Qwen2-VL's; Qwen3-VL has 16 px patches (32 px per merged token) and bounds 65,536-16,777,216
    pixels. ``min_pixels`` / ``max_pixels`` (None = the model's) override them.
    """
    p = _preset(model)
    grid = image_grid_thw(height, width, min_pixels=p.min_pixels if min_pixels is None else min_pixels,
                          max_pixels=p.max_pixels if max_pixels is None else max_pixels,
                          patch_size=p.patch_size, merge_size=p.merge_size, rule=rule)
    return grid_tokens(grid, merge_size=p.merge_size, special_tokens=special_tokens)


def count_video_tokens(
    num_frames: int,
    height: int,
    width: int,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    special_tokens: bool = True,
    rule: Rule = "transformers",
    model: ModelName = "qwen2-vl",
) -> int:
    """LLM tokens for a video of ``num_frames`` (already sampled) frames of HxW.

    Frames go in pairs (temporal patch 2): ceil(num_frames / 2) * (H'/f) * (W'/f), f = 28 (32 for
    Qwen3-VL). Qwen2-VL / Qwen2.5-VL: the pixel bounds are per frame (``smart_resize``), +2 wrapper
    tokens. Qwen3-VL: the bounds are on the whole clip (frames x H' x W', :func:`smart_resize_frames`,
    transformers' ``Qwen3VLVideoProcessor`` class defaults 131,072-786,432 pixels) and every temporal
    patch is its own ``<|vision_start|> … <|vision_end|>`` run after a textual timestamp: +2 per
    temporal patch (the timestamp text, e.g. ``<0.5 seconds>``, is tokenizer-dependent and not counted;
    ``rule`` does not apply: transformers' one rule is used).
    """
    p = _preset(model)
    lo = p.video_min_pixels if min_pixels is None else min_pixels
    hi = p.video_max_pixels if max_pixels is None else max_pixels
    if not p.whole_clip_budget:
        grid = video_grid_thw(num_frames, height, width, min_pixels=lo, max_pixels=hi,
                              patch_size=p.patch_size, merge_size=p.merge_size, rule=rule)
        return grid_tokens(grid, merge_size=p.merge_size, special_tokens=special_tokens)
    check_int("num_frames", num_frames)
    rh, rw = smart_resize_frames(num_frames, height, width, factor=p.patch_size * p.merge_size,
                                 temporal_factor=TEMPORAL_PATCH_SIZE, min_pixels=lo, max_pixels=hi)
    t = math.ceil(num_frames / TEMPORAL_PATCH_SIZE)
    per_slice = grid_tokens((1, rh // p.patch_size, rw // p.patch_size), merge_size=p.merge_size)
    return t * (per_slice + (2 if special_tokens else 0))


def grid_tokens(grid_thw: tuple[int, int, int], *, merge_size: int = MERGE_SIZE, special_tokens: bool = False) -> int:
    """LLM tokens of one image / video grid (t, h, w) in patches: t*h*w / merge² (+2 for the wrappers).

    Each 2x2 group of patches (of one temporal slice) is one merged token, i.e. one ``<|image_pad|>``
    / ``<|video_pad|>`` position; ``special_tokens`` adds ``<|vision_start|>`` and ``<|vision_end|>``.
    """
    t, h, w = check_grid(grid_thw, merge_size)
    return t * h * w // merge_size**2 + (2 if special_tokens else 0)


# ---------------------------------------------------------------------------------------------
# The successors' processor defaults (lesson 13; qwenvl_study.successors)
# ---------------------------------------------------------------------------------------------
class ProcessorPreset(NamedTuple):
    """A model's published processor defaults: patch/merge sizes, pixel bounds, normalisation."""

    patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    video_min_pixels: int
    video_max_pixels: int
    whole_clip_budget: bool  # video bounds on frames x H x W (Qwen3-VL) rather than per frame
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PRESETS: dict[str, ProcessorPreset] = {
    # Qwen2-VL-2B-Instruct / Qwen2.5-VL-7B-Instruct preprocessor_config.json (identical)
    "qwen2-vl": ProcessorPreset(PATCH_SIZE, MERGE_SIZE, MIN_PIXELS, MAX_PIXELS, MIN_PIXELS, MAX_PIXELS, False,
                                _CLIP_MEAN, _CLIP_STD),
    "qwen2.5-vl": ProcessorPreset(PATCH_SIZE, MERGE_SIZE, MIN_PIXELS, MAX_PIXELS, MIN_PIXELS, MAX_PIXELS, False,
                                  _CLIP_MEAN, _CLIP_STD),
    # Qwen3-VL-*-Instruct preprocessor_config.json (16 px patches, 32 px per merged token, mean/std 0.5);
    # video: transformers' Qwen3VLVideoProcessor class defaults (128*32*32 .. 768*32*32 pixels per clip)
    "qwen3-vl": ProcessorPreset(16, 2, 65_536, 16_777_216, 128 * 32 * 32, 768 * 32 * 32, True,
                                (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
MODELS: tuple[str, ...] = tuple(PRESETS)


def _preset(model: str) -> ProcessorPreset:
    if model not in PRESETS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return PRESETS[model]


def smart_resize_frames(
    num_frames: int,
    height: int,
    width: int,
    *,
    factor: int = 32,
    temporal_factor: int = TEMPORAL_PATCH_SIZE,
    min_pixels: float = 128 * 32 * 32,
    max_pixels: float = 768 * 32 * 32,
) -> tuple[int, int]:
    """Qwen3-VL's video resize: like :func:`smart_resize`, but the bounds are on the whole clip.

    Sides under ``factor`` are first scaled up (keeping the aspect); each side is rounded to a multiple
    of ``factor`` and the frame count to a multiple of ``temporal_factor``; if frames x H' x W' exceeds
    ``max_pixels`` both sides shrink by beta = sqrt(frames*H*W / max_pixels) (floor), if it is under
    ``min_pixels`` they grow (ceil). Reference: ``smart_resize`` in
    transformers/models/glm4v/video_processing_glm4v.py, used by ``Qwen3VLVideoProcessor``.
    """
    check_int("num_frames", num_frames, temporal_factor)
    check_int("height", height)
    check_int("width", width)
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_RATIO:
        raise ValueError(f"aspect ratio {ratio:.2f} of a {height}x{width} (HxW) video exceeds the limit of {MAX_RATIO}")
    h_bar, w_bar = round_by_factor(height, factor), round_by_factor(width, factor)
    t_bar = round_by_factor(num_frames, temporal_factor)
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt(num_frames * height * width / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar
