"""InternVL2: dynamic high-resolution tiling, pixel shuffle and the MLP projector.

Paper: "How Far Are We to GPT-4V? Closing the Gap to Commercial Multimodal Models with
Open-Source Suites" (InternVL 1.5, Chen et al., 2024), §3.2 "Dynamic High-Resolution" (the
tiling: a grid of 448x448 tiles whose aspect ratio is closest to the image's, 1..12 tiles in
training, plus a 448x448 thumbnail) and §3.1 "Pixel Shuffle" (1024 patch tokens of a 448 tile
→ 256 tokens of 4x the channels, then an MLP into the LLM). InternVL2 keeps this design.

Published algorithm: ``dynamic_preprocess`` / ``find_closest_aspect_ratio`` in OpenGVLab/InternVL
(internvl_chat/internvl/train/dataset.py, and the model cards' inference snippet) and
``pixel_shuffle`` in internvl_chat/internvl/model/internvl_chat/modeling_internvl_chat.py.
Checked against transformers 5.x: ``get_optimal_tiled_canvas`` / ``crop_image_to_patches`` in
transformers/models/got_ocr2/image_processing_pil_got_ocr2.py (InternVL's image processor),
``InternVLModel.pixel_shuffle`` and ``InternVLMultiModalProjector`` in
transformers/models/internvl/modeling_internvl.py.

The one place the two differ: candidates of *equal area* are visited in a different order.
The published code builds a ``set`` of (cols, rows) and sorts it by area (so equal-area grids come
in the set's iteration order); transformers builds a list in loop order (cols outer, rows inner)
and sorts it by area. Ties in aspect-ratio distance between two equal-area grids are then broken
differently. With ``min_num=1`` (the published default and every InternVL2 use) no such tie can
win, and the two agree; from ``min_num >= 4`` they can disagree (e.g. a 5x2 image with
``min_num=max_num=4``: published (4, 1), transformers (2, 2)). This module follows the published
algorithm; tests pin both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from ..patching import check_pixel_limit, open_image
from ..resolution import check_int

__all__ = [
    "InternVLConfig",
    "INTERNVL2_8B",
    "MAX_TILES",
    "candidate_grids",
    "published_candidate_grids",
    "find_closest_aspect_ratio",
    "internvl_tile_grid",
    "internvl_tile_boxes",
    "internvl_num_tiles",
    "internvl_image_tokens",
    "dynamic_preprocess",
    "pixel_shuffle",
    "pixel_unshuffle",
    "InternVLMultiModalProjector",
    "InternVLConnector",
    "shape_chain",
]


@dataclass(frozen=True)
class InternVLConfig:
    """InternVL2-8B's connector: InternViT-300M-448px (width 1024) → InternLM2.5-7B (4096)."""

    image_size: int = 448  # tile side
    patch_size: int = 14  # 448 / 14 = 32 → 1024 patch tokens per tile (+ 1 CLS)
    vit_hidden_size: int = 1024  # InternViT-300M-448px
    llm_hidden_size: int = 4096  # InternLM2.5-7B-chat
    downsample_ratio: float = 0.5  # pixel shuffle: 32x32 → 16x16, channels x4
    min_num: int = 1
    max_num: int = 12
    use_thumbnail: bool = True
    layer_norm_eps: float = 1e-5  # nn.LayerNorm's default (published mlp1 and transformers alike)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size  # 32

    @property
    def tokens_per_tile(self) -> int:
        return int(self.grid * self.downsample_ratio) ** 2  # 256

    @property
    def shuffled_dim(self) -> int:
        return self.vit_hidden_size * int(1 / self.downsample_ratio) ** 2  # 4096


INTERNVL2_8B = InternVLConfig()


# ---------------------------------------------------------------------------------------------
# Dynamic high resolution: the tiling
# ---------------------------------------------------------------------------------------------
# At most this many tiles per image (max_num). InternVL2 uses 12; 256 tiles are 65,536 tokens (8x
# InternVL2's 8K context) and a 51M-pixel canvas. Beyond it a tiling is refused before any work.
MAX_TILES = 256


def _check_tiling_args(width: int, height: int, min_num: int, max_num: int, image_size: int) -> None:
    for name, value in (("width", width), ("height", height), ("min_num", min_num), ("max_num", max_num),
                        ("image_size", image_size)):
        check_int(name, value)
    if min_num > max_num:
        raise ValueError(f"min_num={min_num} is larger than max_num={max_num}")
    if max_num > MAX_TILES:
        raise ValueError(f"max_num={max_num} tiles is over the limit of {MAX_TILES} (internvl.MAX_TILES; "
                         f"InternVL2 uses 12)")


def published_candidate_grids(min_num: int = 1, max_num: int = 12) -> tuple[tuple[int, int], ...]:
    """The published code, verbatim in spirit: a ``set`` of (i, j) over n in [min_num, max_num],
    sorted by area (``sorted`` is stable, so equal-area grids keep the set's iteration order).
    O(max_num³): 3000 tiles take minutes — :func:`candidate_grids` is the fast twin."""
    grids = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    )
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def _first_visits(min_num: int, max_num: int):
    """The grids of the published loop in the order it first meets them, each once.

    (i, j) first appears at n = max(min_num, i, j), and within one n in (i, j) order. A set's
    iteration order depends only on the sequence of *new* keys inserted (re-adding a key changes
    nothing), so ``set(_first_visits(...))`` iterates exactly like the published set.
    """
    for i in range(1, min_num + 1):  # n = min_num: every (i, j) with i, j <= min_num
        for j in range(1, min(min_num, max_num // i) + 1):
            if i * j >= min_num:
                yield i, j
    for n in range(min_num + 1, max_num + 1):  # then, per n, the grids with max(i, j) == n
        for i in range(1, min(n - 1, max_num // n) + 1):
            if i * n >= min_num:
                yield i, n
        for j in range(1, min(n, max_num // n) + 1):
            if n * j >= min_num:
                yield n, j


@lru_cache(maxsize=64)
def candidate_grids(min_num: int = 1, max_num: int = 12) -> tuple[tuple[int, int], ...]:
    """Every (cols, rows) with min_num <= cols*rows <= max_num, in the published visiting order.

    Same tuple as :func:`published_candidate_grids` (a property test checks it), built from the
    grids that exist — O(max_num log max_num) instead of O(max_num³). Memoised.
    """
    return tuple(sorted(set(_first_visits(min_num, max_num)), key=lambda g: g[0] * g[1]))


def find_closest_aspect_ratio(aspect_ratio: float, grids: Sequence[tuple[int, int]], width: int, height: int,
                              image_size: int = 448) -> tuple[int, int]:
    """The grid whose cols/rows is closest to ``aspect_ratio`` (= width / height).

    Tie rule (exact float equality of the distances): a later grid replaces the best one when
    the image covers more than half of that grid's pixel area,
    ``width * height > 0.5 * image_size**2 * cols * rows`` — i.e. a large image takes the
    bigger of two equally shaped grids, a small one keeps the smaller.
    """
    best_diff = float("inf")
    best = (1, 1)
    area = width * height
    for cols, rows in grids:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best_diff, best = diff, (cols, rows)
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def internvl_tile_grid(width: int, height: int, *, min_num: int = 1, max_num: int = 12,
                       image_size: int = 448) -> tuple[int, int]:
    """(cols, rows) of 448x448 tiles for a ``width`` x ``height`` image (published algorithm).

    1920x1080 → (4, 2): 2/1 and 4/2 are equally close to 16/9, and 1920*1080 > 0.5*448²*8.
    """
    _check_tiling_args(width, height, min_num, max_num, image_size)
    return find_closest_aspect_ratio(width / height, candidate_grids(min_num, max_num), width, height, image_size)


def internvl_tile_boxes(width: int, height: int, *, min_num: int = 1, max_num: int = 12,
                        image_size: int = 448) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    """The resized size (W', H') = (cols*448, rows*448) and each tile's box (left, top, right, bottom),
    in raster order (row by row), in resized-image pixels."""
    cols, rows = internvl_tile_grid(width, height, min_num=min_num, max_num=max_num, image_size=image_size)
    boxes = [((i % cols) * image_size, (i // cols) * image_size, (i % cols + 1) * image_size,
              (i // cols + 1) * image_size) for i in range(cols * rows)]
    return (cols * image_size, rows * image_size), boxes


def internvl_num_tiles(width: int, height: int, *, min_num: int = 1, max_num: int = 12, image_size: int = 448,
                       use_thumbnail: bool = True) -> int:
    """Tiles sent to the ViT: cols*rows, plus the thumbnail when there is more than one tile."""
    cols, rows = internvl_tile_grid(width, height, min_num=min_num, max_num=max_num, image_size=image_size)
    n = cols * rows
    return n + (1 if use_thumbnail and n != 1 else 0)


def internvl_image_tokens(width: int, height: int, *, config: InternVLConfig = INTERNVL2_8B,
                          max_num: int | None = None) -> int:
    """Visual tokens InternVL2 sends to the LLM: 256 per tile (thumbnail included)."""
    tiles = internvl_num_tiles(width, height, min_num=config.min_num,
                               max_num=config.max_num if max_num is None else max_num,
                               image_size=config.image_size, use_thumbnail=config.use_thumbnail)
    return tiles * config.tokens_per_tile


def dynamic_preprocess(image: Image.Image | str | Path, *, min_num: int = 1, max_num: int = 12, image_size: int = 448,
                       use_thumbnail: bool = True) -> list[Image.Image]:
    """Resize to (cols*448, rows*448), cut the tiles in raster order, append a 448x448 thumbnail
    of the whole image when there is more than one tile. PIL bicubic resizes, as published
    (``Image.resize``'s default for RGB) and as transformers' PIL processor. ``image``: a PIL image or
    a path (bad files raise ValueError / FileNotFoundError naming them)."""
    image = open_image(image)
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    (tw, th), boxes = internvl_tile_boxes(rgb.width, rgb.height, min_num=min_num, max_num=max_num,
                                          image_size=image_size)
    check_pixel_limit(th, tw, name="InternVL tile canvas", why=f" ({len(boxes)} tiles of {image_size}x{image_size})")
    resized = rgb.resize((tw, th), resample=Image.Resampling.BICUBIC)  # [H, W] -> [rows*448, cols*448]
    tiles = [resized.crop(box) for box in boxes]  # cols*rows x [448, 448]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(rgb.resize((image_size, image_size), resample=Image.Resampling.BICUBIC))  # [448, 448]
    return tiles


# ---------------------------------------------------------------------------------------------
# Pixel shuffle: 2x2 neighbouring patch tokens → one token with 4x the channels
# ---------------------------------------------------------------------------------------------
def _shuffle_factor(x: torch.Tensor, scale: float, name: str) -> int:
    """k = 1/scale for a channels-last ``x [B, H, W, C]``; ValueError for anything else."""
    if x.dim() != 4:
        raise ValueError(f"{name} expects [B, H, W, C] (channels last), got shape {tuple(x.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1 \
            or abs(1 / scale - round(1 / scale)) > 1e-9:
        raise ValueError(f"{name}: scale must be 1/k for an integer k >= 1 (0.5 merges 2x2), got {scale!r}")
    return round(1 / scale)


def _check_shuffle(x: torch.Tensor, scale: float) -> tuple[int, int, int, int, int]:
    k = _shuffle_factor(x, scale, "pixel_shuffle")
    n, w, h, c = x.shape
    if w % k or h % k:
        raise ValueError(f"pixel_shuffle with scale {scale}: both spatial sides must be divisible by {k}, "
                         f"got shape {tuple(x.shape)}")
    return n, w, h, c, k


def pixel_shuffle(x: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """InternVL's pixel shuffle, channels last: ``[B, 32, 32, C]`` → ``[B, 16, 16, 4C]``.

    Exactly the published reshape/transpose sequence (the ``ps_version='v2'`` path that InternVL2
    uses: the second transpose swaps the axes back), so the channel order matches InternVL's. With
    offsets a, b in {0, 1}: ``out[:, i, j, (2a + b)*C : (2a + b + 1)*C] == x[:, 2i + a, 2j + b]``.
    InternVL reshapes raster-order patch tokens to ``[B, rows, cols, C]``, so each output token is
    its 2x2 block concatenated in raster order — (0,0), (0,1), (1,0), (1,1) — the same grouping
    and order as Qwen2-VL's 2x2 merger. Scale 1/k merges kxk blocks likewise.
    """
    n, w, h, c, k = _check_shuffle(x, scale)
    x = x.reshape(n, w, h // k, c * k)  # [N, W, H, C] -> [N, W, H/2, 2C]
    x = x.permute(0, 2, 1, 3)  # -> [N, H/2, W, 2C]
    x = x.reshape(n, h // k, w // k, c * k * k)  # -> [N, H/2, W/2, 4C]
    return x.permute(0, 2, 1, 3).contiguous()  # -> [N, W/2, H/2, 4C]


def pixel_unshuffle(x: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """The exact inverse of :func:`pixel_shuffle`: ``[B, 16, 16, 4C]`` → ``[B, 32, 32, C]``."""
    k = _shuffle_factor(x, scale, "pixel_unshuffle")
    if x.shape[-1] % (k * k):
        raise ValueError(f"pixel_unshuffle with scale {scale}: channels {x.shape[-1]} must be divisible by "
                         f"{k * k}")
    n, w2, h2, c4 = x.shape
    c = c4 // (k * k)
    x = x.permute(0, 2, 1, 3)  # [N, W/2, H/2, 4C] -> [N, H/2, W/2, 4C]
    x = x.reshape(n, h2, w2 * k, c * k)  # -> [N, H/2, W, 2C]
    x = x.permute(0, 2, 1, 3)  # -> [N, W, H/2, 2C]
    return x.reshape(n, w2 * k, h2 * k, c).contiguous()  # -> [N, W, H, C]


# ---------------------------------------------------------------------------------------------
# The connector: drop CLS → [B, 32, 32, C] → pixel shuffle → [B, 256, 4C] → MLP → [B, 256, D]
# ---------------------------------------------------------------------------------------------
class InternVLMultiModalProjector(nn.Module):
    """LayerNorm(4C) → Linear(4C, D) → GELU → Linear(D, D) (published ``mlp1``; transformers'
    ``InternVLMultiModalProjector`` names, so weights load across)."""

    def __init__(self, config: InternVLConfig = INTERNVL2_8B):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.shuffled_dim, eps=config.layer_norm_eps)
        self.linear_1 = nn.Linear(config.shuffled_dim, config.llm_hidden_size)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(config.llm_hidden_size, config.llm_hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x)  # [B, 256, 4096]
        x = self.act(self.linear_1(x))  # [B, 256, 4096] -> [B, 256, D]
        return self.linear_2(x)  # [B, 256, D] -> [B, 256, D]


class InternVLConnector(nn.Module):
    """ViT features of one tile (with CLS) → the LLM tokens of that tile."""

    def __init__(self, config: InternVLConfig = INTERNVL2_8B):
        super().__init__()
        self.config = config
        self.multi_modal_projector = InternVLMultiModalProjector(config)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = cfg.grid * cfg.grid + 1
        if vision_features.dim() != 3 or vision_features.shape[1] != expected:
            raise ValueError(f"InternVLConnector expects [tiles, {expected}, {cfg.vit_hidden_size}] "
                             f"(CLS + {cfg.grid}x{cfg.grid} patches), got {tuple(vision_features.shape)}")
        b = vision_features.shape[0]
        x = vision_features[:, 1:, :]  # [B, 1025, 1024] -> [B, 1024, 1024] (drop CLS)
        x = x.reshape(b, cfg.grid, cfg.grid, -1)  # -> [B, 32, 32, 1024]
        x = pixel_shuffle(x, cfg.downsample_ratio)  # -> [B, 16, 16, 4096]
        x = x.reshape(b, -1, x.shape[-1])  # -> [B, 256, 4096]
        return self.multi_modal_projector(x)  # -> [B, 256, 4096 (LLM)]


def shape_chain(config: InternVLConfig = INTERNVL2_8B) -> list[tuple[str, tuple[int, ...]]]:
    """The connector's stages and their shapes for one tile, from the config (for diagrams)."""
    g, c = config.grid, config.vit_hidden_size
    g2 = int(g * config.downsample_ratio)
    return [
        (f"{config.image_size}² tile → InternViT /{config.patch_size}", (g * g + 1, c)),
        ("drop CLS, to a grid", (g, g, c)),
        ("pixel shuffle (2x2 → channels)", (g2, g2, config.shuffled_dim)),
        ("MLP: LN → Linear → GELU → Linear", (g2 * g2, config.llm_hidden_size)),
    ]
