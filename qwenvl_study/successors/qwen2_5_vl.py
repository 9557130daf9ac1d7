"""Qwen2.5-VL: what changed after Qwen2-VL, and only that.

Qwen2.5-VL technical report (Bai et al., 2025), §2.1 "Model Architecture" and §2.1.1-2.1.2:

1. **Window attention in the ViT.** Most blocks attend only inside windows of 112x112 pixels
   (8x8 patches = 4x4 merged tokens); four blocks (indexes 7, 15, 23, 31 of 32) keep full attention
   over the image. The tokens are reordered window by window (in units of one 2x2 merge group, so
   the merger still sees its 4 rows adjacent) and restored after the merger: :func:`window_index`.
2. **RMSNorm + SwiGLU** in every ViT block (Qwen2-VL: LayerNorm + QuickGELU MLP); the merger's
   norm is an RMSNorm too.
3. **Absolute-time M-RoPE.** A video's temporal id grows with seconds, not with the frame index:
   temporal patch i gets ``floor(i * second_per_grid_t * tokens_per_second)`` (published
   ``tokens_per_second = 2``; ``second_per_grid_t = temporal_patch_size / fps``), so two videos
   sampled at different fps get the same ids for the same moment: :func:`rope_index`.
4. **Grounding in absolute pixels** of the resized image (the image the model sees), written as
   JSON ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}``, instead of Qwen2-VL's [0, 1000) grid.

Reused unchanged from the Qwen2-VL core: ``patching.PatchEmbed`` (Conv3d 2x14x14, no bias),
``vision.VisionAttention`` (fused qkv, 2D-RoPE, packed attention), ``vision.VisionRotaryEmbedding``,
``vision.PatchMerger`` (its ``ln_q`` swapped for an RMSNorm), ``vision.VisionBlock.forward`` (the
pre-norm residual order), ``attention.cu_seqlens_from_grid``, ``language.RMSNorm``.

Reference: transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py (``Qwen2_5_VisionTransformerPretrainedModel``,
``Qwen2_5_VLVisionBlock``, ``Qwen2_5_VLMLP``, ``Qwen2_5_VLPatchMerger``, ``Qwen2_5_VLModel.get_rope_index``)
and transformers/vision_utils.py (``get_vision_window_index``). Parity: tests/test_successors_qwen2_5_vl.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import AttentionBackendChoice, cu_seqlens_from_grid
from ..config import require_block_indexes, require_positive, require_vision_heads
from ..language import RMSNorm
from ..patching import PatchEmbed
from ..resolution import MAX_PIXELS, MIN_PIXELS, check_grids, check_int, smart_resize
from ..rope import IMAGE_TOKEN_ID, VIDEO_TOKEN_ID, VISION_START_TOKEN_ID
from ..vision import (PatchMerger, VisionAttention, VisionBlock as Qwen2VLVisionBlock, VisionRotaryEmbedding,
                      check_vision_inputs)
from . import load_strict

__all__ = [
    "TOKENS_PER_SECOND",
    "VisionConfig",
    "window_index",
    "SwiGLUMlp",
    "VisionBlock",
    "VisionTransformer",
    "rope_index",
    "to_absolute",
    "from_absolute",
    "format_box_json",
    "parse_boxes_json",
]

TOKENS_PER_SECOND = 2  # published Qwen2.5-VL config.json (vision_config.tokens_per_second); transformers' class default is 4


@dataclass(frozen=True)
class VisionConfig:
    """Qwen2.5-VL's ViT (published 7B defaults; names as transformers' ``Qwen2_5_VLVisionConfig``)."""

    depth: int = 32
    hidden_size: int = 1280  # ViT width
    intermediate_size: int = 3420  # SwiGLU hidden width
    num_heads: int = 16
    out_hidden_size: int = 3584  # merger output = LLM width
    in_channels: int = 3
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    window_size: int = 112  # pixels per window side
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    hidden_act: str = "silu"
    tokens_per_second: int = TOKENS_PER_SECOND
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        require_positive(self, "depth", "hidden_size", "intermediate_size", "num_heads", "out_hidden_size",
                         "in_channels", "patch_size", "spatial_merge_size", "temporal_patch_size", "window_size")
        require_vision_heads(self.hidden_size, self.num_heads, "hidden_size")
        if self.window_size % (self.patch_size * self.spatial_merge_size):
            raise ValueError(f"window_size={self.window_size} must be a multiple of patch_size * spatial_merge_size "
                             f"= {self.patch_size * self.spatial_merge_size}")
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (Qwen2.5-VL uses 'silu')")
        require_block_indexes(self, "fullatt_block_indexes", self.depth)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_transformers(cls, config: Any) -> "VisionConfig":
        """From transformers' ``Qwen2_5_VLVisionConfig``."""
        rope = getattr(config, "rope_parameters", None) or {}
        return cls(depth=config.depth, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
                   num_heads=config.num_heads, out_hidden_size=config.out_hidden_size,
                   in_channels=config.in_channels, patch_size=config.patch_size,
                   spatial_merge_size=config.spatial_merge_size, temporal_patch_size=config.temporal_patch_size,
                   window_size=config.window_size, fullatt_block_indexes=tuple(config.fullatt_block_indexes),
                   hidden_act=config.hidden_act, tokens_per_second=config.tokens_per_second,
                   rope_theta=float(rope.get("rope_theta", 10000.0)))


# ---------------------------------------------------------------------------------------------
# 1. Window attention: which tokens share a window, and the order that makes windows contiguous
# ---------------------------------------------------------------------------------------------
def window_index(grid_thw: torch.Tensor | Sequence[Sequence[int]], *, window_size: int = 112, patch_size: int = 14,
                 spatial_merge_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Window order of the merged tokens and the windows' boundaries: ``(index [N/4], cu_window_seqlens)``.

    Each (t, h, w) grid has h' x w' merged tokens (h' = h / merge) per temporal slice; windows are
    ``window_size / patch_size / merge`` (= 4) merged tokens on a side, cut from the top-left (the
    last row/column of windows may be smaller), visited in raster order, slice by slice, image by
    image; inside a window its tokens in raster order. ``index[k]`` = which merged token (in the
    processor's order) goes to place k. ``cu_window_seqlens`` (int32) counts *patches* (4 per merged
    token): ``[0, end of window 0, end of window 1, ...]``, for :func:`attention.attention`'s packed layout.
    """
    m = check_int("spatial_merge_size", spatial_merge_size)
    grid = check_grids(grid_thw, m)  # [n, 3]; t, h, w >= 1, h and w multiples of m
    side = window_size // m // check_int("patch_size", patch_size)  # merged tokens per window side
    if side < 1:
        raise ValueError(f"window_size={window_size} is smaller than one merged token ({m * patch_size} px)")
    order, lengths, offset = [], [], 0
    for t, h, w in grid.tolist():
        hp, wp = h // m, w // m
        nh, nw = -(-hp // side), -(-wp // side)  # windows per column / row (ceil)
        ids = torch.arange(t * hp * wp).view(t, hp, wp) + offset  # [t, h', w'] merged-token ids
        ids = F.pad(ids, (0, nw * side - wp, 0, nh * side - hp), value=-1)  # [t, nh*s, nw*s], -1 = outside
        ids = ids.view(t, nh, side, nw, side).permute(0, 1, 3, 2, 4).reshape(t * nh * nw, side * side)  # window rows
        keep = ids >= 0
        order.append(ids[keep])  # windows in raster order, each in raster order
        lengths.append(keep.sum(1))  # merged tokens per window
        offset += t * hp * wp
    counts = torch.cat(lengths) * m * m  # patches per window
    cu = F.pad(counts.cumsum(0), (1, 0)).to(torch.int32)
    return torch.cat(order), cu


def _reorder(x: torch.Tensor, index: torch.Tensor, unit: int) -> torch.Tensor:
    """Rows in groups of ``unit`` (one merge group) permuted by ``index``: ``[N, ...] -> [N, ...]``."""
    return x.reshape(x.shape[0] // unit, unit, *x.shape[1:])[index].reshape(x.shape)


# ---------------------------------------------------------------------------------------------
# 2. The block: RMSNorm + SwiGLU (attention unchanged)
# ---------------------------------------------------------------------------------------------
class SwiGLUMlp(nn.Module):
    """down(silu(gate(x)) * up(x)), with biases (Qwen2-VL: fc2(quick_gelu(fc1(x))))."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim)
        self.up_proj = nn.Linear(dim, hidden_dim)
        self.down_proj = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # [N, d] -> 2 x [N, I] -> [N, d]


class VisionBlock(nn.Module):
    """x + attn(rmsnorm1(x)); x + swiglu(rmsnorm2(x)) — Qwen2-VL's block with two parts swapped."""

    forward = Qwen2VLVisionBlock.forward  # the same pre-norm residual order, the same attention

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.norm1 = RMSNorm(d, eps=1e-6)
        self.norm2 = RMSNorm(d, eps=1e-6)
        self.attn = VisionAttention(d, config.num_heads)
        self.mlp = SwiGLUMlp(d, config.intermediate_size)


class VisionTransformer(AttentionBackendChoice, nn.Module):
    """Qwen2.5-VL's ViT: ``forward(pixel_values [N, 1176], grid_thw [n, 3]) -> merged [N/4, out_hidden_size]``.

    patch embed → reorder merge groups window by window (rows and their 2D-RoPE angles alike) →
    blocks (full attention per image/slice in ``fullatt_block_indexes``, else per window) → merger
    → undo the reorder, so the merged tokens come out in the processor's order as in Qwen2-VL.
    """

    def __init__(self, config: VisionConfig, attn_backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.patch_size, config.temporal_patch_size, config.in_channels,
                                      config.hidden_size)
        self.rotary_pos_emb = VisionRotaryEmbedding(config.head_dim, config.rope_theta, config.spatial_merge_size)
        self.attn_backend = attn_backend  # stored on the tower, passed to each block per call
        self.blocks = nn.ModuleList(VisionBlock(config) for _ in range(config.depth))
        self.merger = PatchMerger(config.out_hidden_size, config.hidden_size, config.spatial_merge_size)
        self.merger.ln_q = RMSNorm(config.hidden_size, eps=1e-6)  # the one change in the merger

    @classmethod
    def from_transformers(cls, module: nn.Module, attn_backend: str = "auto") -> "VisionTransformer":
        """Ours with the weights of transformers' ``Qwen2_5_VisionTransformerPretrainedModel`` (strict)."""
        model = cls(VisionConfig.from_transformers(module.config), attn_backend)
        weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return load_strict(model.to(next(module.parameters()).dtype), weights, "qwen2_5_vl.VisionTransformer").eval()

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        c = self.config
        grid = check_vision_inputs(pixel_values, grid_thw, c.spatial_merge_size,
                                   c.in_channels * c.temporal_patch_size * c.patch_size**2)  # Qwen2-VL's check
        unit = c.spatial_merge_size**2
        index, cu_window = window_index(grid, window_size=c.window_size, patch_size=c.patch_size,
                                        spatial_merge_size=c.spatial_merge_size)
        cu_full = cu_seqlens_from_grid(grid).to(pixel_values.device)  # one segment per image / temporal slice
        cu_window = cu_window.to(pixel_values.device)
        index = index.to(pixel_values.device)
        x = self.patch_embed(pixel_values)  # [N, 1176] -> [N, d]
        x = _reorder(x, index, unit)  # [N, d], windows contiguous
        cos, sin = self.rotary_pos_emb(grid, device=x.device)  # [N, hd] each, processor order
        cos, sin = _reorder(cos, index, unit), _reorder(sin, index, unit)  # follow the rows
        for i, block in enumerate(self.blocks):
            x = block(x, cu_full if i in c.fullatt_block_indexes else cu_window, cos, sin, self.attn_backend)  # [N, d]
        merged = self.merger(x)  # [N, d] -> [N/4, out] (window order)
        return merged[torch.argsort(index)]  # back to the processor's order


# ---------------------------------------------------------------------------------------------
# 3. Absolute-time M-RoPE
# ---------------------------------------------------------------------------------------------
def rope_index(
    input_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | Sequence[float] | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    spatial_merge_size: int = 2,
    tokens_per_second: int = TOKENS_PER_SECOND,
    image_token_id: int = IMAGE_TOKEN_ID,
    video_token_id: int = VIDEO_TOKEN_ID,
    vision_start_token_id: int = VISION_START_TOKEN_ID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen2.5-VL's M-RoPE ids ``(LongTensor[3, B, L], deltas LongTensor[B, 1])``.

    Qwen2-VL's rule (``rope.mrope_position_ids``: text ids +1 per token; a vision segment starting
    at s gives (s + i, s + j, s + k); the next segment starts at the segment's max + 1) with one
    change: a **video**'s temporal id is ``s + floor(i * tokens_per_second * second_per_grid_t)``
    (float32, as the reference) — seconds, not the frame index. Images keep i = 0.
    ``second_per_grid_ts`` (one per video, default 1.0) is ``temporal_patch_size / fps``.

    Conventions as ``rope.mrope_position_ids`` (the release-time reference): masked places get 1,
    ``deltas = max id + 1 - padded length``. transformers 5.x ``Qwen2_5_VLModel.get_rope_index``
    advances by max(h', w') after a vision segment, so it differs after any video whose last
    temporal id ``floor((t-1)·interval)`` reaches max(h', w') — at 2 tokens per second that is any
    video longer than max(h', w')/2 seconds (pinned in the tests, drawn in notebook 13).
    """
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [B, L], got shape {tuple(input_ids.shape)}")
    device = input_ids.device
    m = check_int("spatial_merge_size", spatial_merge_size)
    grids = {image_token_id: check_grids(image_grid_thw, m, name="image_grid_thw").tolist(),
             video_token_id: check_grids(video_grid_thw, m, name="video_grid_thw").tolist()}
    n_videos = len(grids[video_token_id])
    spg = (torch.ones(n_videos) if second_per_grid_ts is None
           else torch.as_tensor(second_per_grid_ts, dtype=torch.float32).reshape(-1))
    if spg.numel() != n_videos:
        raise ValueError(f"second_per_grid_ts has {spg.numel()} values for {n_videos} videos")
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    B, L = input_ids.shape
    position_ids = torch.ones(3, B, L, dtype=torch.long)
    deltas = torch.zeros(B, 1, dtype=torch.long)
    used = {image_token_id: 0, video_token_id: 0}
    for b in range(B):
        tokens = input_ids[b][mask[b]].tolist()
        pieces, start, p = [], 0, 0
        while p < len(tokens):
            q = p
            if tokens[p] in grids:  # a run of image / video pads
                kind = tokens[p]
                while q < len(tokens) and tokens[q] == kind:
                    q += 1
                name = "image" if kind == image_token_id else "video"
                if p == 0 or tokens[p - 1] != vision_start_token_id:
                    raise ValueError(f"row {b}: the {name} pads at real position {p} do not follow <|vision_start|>")
                k = used[kind]
                if k >= len(grids[kind]):
                    raise ValueError(f"row {b}: more {name} runs than {name}_grid_thw rows ({len(grids[kind])})")
                t, h, w = grids[kind][k]
                hp, wp = h // m, w // m
                if q - p != t * hp * wp:
                    raise ValueError(f"row {b}: {name} {k} has {q - p} pad tokens, its grid {(t, h, w)} needs "
                                     f"{t * hp * wp}")
                interval = tokens_per_second * spg[used[video_token_id]] if kind == video_token_id else 1
                temporal = (torch.arange(t) * interval).long()  # frame index -> seconds x tokens_per_second
                ti, hi, wi = torch.meshgrid(temporal, torch.arange(hp), torch.arange(wp), indexing="ij")
                piece = torch.stack([ti, hi, wi]).reshape(3, -1) + start  # [3, t*h'*w']
                used[kind] += 1
            else:  # a run of text
                while q < len(tokens) and tokens[q] not in grids:
                    q += 1
                piece = torch.arange(q - p).expand(3, -1) + start  # [3, n]
            pieces.append(piece)
            start = int(piece.max()) + 1  # the next segment starts after this one's maximum
            p = q
        if pieces:
            ids = torch.cat(pieces, dim=1)  # [3, n_real]
            position_ids[:, b, mask[b]] = ids
            deltas[b] = int(ids.max()) + 1 - L
        else:
            deltas[b] = -L
    for kind, name in ((image_token_id, "image"), (video_token_id, "video")):
        if used[kind] != len(grids[kind]):
            raise ValueError(f"{len(grids[kind])} {name} grids given, {used[kind]} {name} runs found in input_ids")
    return position_ids.to(device), deltas.to(device)


# ---------------------------------------------------------------------------------------------
# 4. Grounding in absolute pixels of the resized image
# ---------------------------------------------------------------------------------------------
def to_absolute(box: Sequence[float], size: Sequence[int], *, min_pixels: int = MIN_PIXELS,
                max_pixels: int = MAX_PIXELS) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """A pixel box on the original image (``size`` = (width, height)) → ``(box in integer pixels of the
    smart-resized image, its (width, height))`` — what Qwen2.5-VL reads and writes."""
    w, h = (int(v) for v in size)
    rh, rw = smart_resize(h, w, min_pixels=min_pixels, max_pixels=max_pixels)
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h):
        raise ValueError(f"box {tuple(box)!r} is not a (x1, y1, x2, y2) box inside the {w}x{h} image")
    return (round(x1 * rw / w), round(y1 * rh / h), round(x2 * rw / w), round(y2 * rh / h)), (rw, rh)


def from_absolute(box: Sequence[float], size: Sequence[int], resized: Sequence[int]) -> tuple[float, ...]:
    """A box in pixels of the resized image (``resized`` = (width, height)) → pixels of the original ``size``."""
    (w, h), (rw, rh) = size, resized
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1 * w / rw, y1 * h / rh, x2 * w / rw, y2 * h / rh


def format_box_json(box: Sequence[int], label: str) -> str:
    """``{"bbox_2d": [x1, y1, x2, y2], "label": "..."}`` — Qwen2.5-VL's (and Qwen3-VL's) answer format."""
    return json.dumps({"bbox_2d": [int(v) for v in box], "label": label}, ensure_ascii=False)


def parse_boxes_json(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """(label, box) for every ``{"bbox_2d": [...], "label": ...}`` in an answer (inside ```json fences or not)."""
    text = re.sub(r"```(?:json)?", "", text)
    out = []
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            item = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        box = item.get("bbox_2d")
        if isinstance(box, list) and len(box) == 4:
            out.append((str(item.get("label", "")), tuple(int(round(v)) for v in box)))
    return out
