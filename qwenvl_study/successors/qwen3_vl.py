"""Qwen3-VL: what changed after Qwen2-VL / Qwen2.5-VL, and only that.

Qwen3-VL (model card and technical report, 2025), "Model Architecture Updates":

1. **16 px patches** (32 px per merged token; processor bounds 65,536-16,777,216 pixels, mean/std
   0.5): ``resolution.count_image_tokens(..., model="qwen3-vl")``. The patch Conv3d has a bias.
2. **Learned position embeddings beside 2D-RoPE.** A square table (e.g. 48x48 = 2304 entries) is
   bilinearly interpolated (align_corners) to each image's patch grid and added after the patch
   embedding; the blocks still rotate q, k by (row, column): :func:`position_embeddings`.
   Blocks are Qwen2-VL's LayerNorm blocks with a tanh-GELU MLP; no window attention (Qwen2.5-VL's).
3. **Interleaved MRoPE.** Qwen2-VL gives the temporal, height and width ids contiguous chunks of the
   rotary frequencies (16/24/24 pairs: t gets the fastest ones only); Qwen3-VL interleaves them,
   pair j → t, h, w, t, h, w, ... (sections [24, 20, 20]: the last 4 pairs are t), so every axis
   spans low and high frequencies: :func:`interleaved_mrope_angles`.
4. **DeepStack.** The hidden states after a few ViT blocks (``deepstack_visual_indexes``, e.g. 8,
   16, 24) each go through their own merger (LayerNorm over the 4 merged rows) and are *added* to
   the visual tokens' hidden states after the first LLM layers (one per layer):
   :meth:`VisionTransformer.forward` returns ``(merged, deepstack_features)``; :func:`deepstack_add`.
5. **Textual timestamps.** A video is written frame group by frame group,
   ``<0.5 seconds><|vision_start|><|video_pad|>…<|vision_end|>``, the time of each temporal patch
   being the mean of its two frames' times; the M-RoPE temporal id no longer carries time (each frame
   group is its own segment with t = 1): :func:`video_timestamps`, :func:`video_placeholder`, :func:`rope_index`.
6. **Grounding on a 0-1000 grid** again (relative coordinates; Qwen2.5-VL used absolute pixels),
   in Qwen2.5-VL's JSON form: :func:`to_grid`, :func:`from_grid`.

Reused unchanged from the Qwen2-VL core: ``patching.PatchEmbed`` (the Conv3d, here with a bias),
``vision.VisionAttention``, ``vision.VisionRotaryEmbedding``, ``vision.VisionBlock.forward``,
``attention.cu_seqlens_from_grid``, ``rope.mrope_position_ids`` (the id rule), ``rope.inverse_frequencies``.

Reference: transformers/models/qwen3_vl/modeling_qwen3_vl.py (``Qwen3VLVisionModel``,
``Qwen3VLVisionPatchMerger``, ``Qwen3VLTextRotaryEmbedding``, ``Qwen3VLModel.get_rope_index``,
``Qwen3VLTextModel._deepstack_process``), processing_qwen3_vl.py (``Qwen3VLProcessor.replace_video_token``,
``_calculate_timestamps``) and transformers/vision_utils.py (``get_vision_interpolation_indices_and_weights``).
Parity: tests/test_successors_qwen3_vl.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import AttentionBackendChoice, cu_seqlens_from_grid
from ..config import require_block_indexes, require_positive, require_vision_heads
from ..patching import PatchEmbed
from ..resolution import check_grids
from ..rope import (IMAGE_TOKEN_ID, VIDEO_TOKEN_ID, VISION_START_TOKEN_ID, inverse_frequencies, mrope_position_ids)
from ..vision import VisionAttention, VisionBlock as Qwen2VLVisionBlock, VisionRotaryEmbedding, check_vision_inputs
from . import load_strict

__all__ = [
    "MROPE_SECTION",
    "VisionConfig",
    "position_embeddings",
    "VisionMlp",
    "VisionBlock",
    "PatchMerger",
    "VisionTransformer",
    "interleaved_mrope_angles",
    "interleaved_mrope_cos_sin",
    "chunked_axis_of_pair",
    "interleaved_axis_of_pair",
    "deepstack_add",
    "split_video_grids",
    "rope_index",
    "video_timestamps",
    "video_placeholder",
    "to_grid",
    "from_grid",
]

MROPE_SECTION = (24, 20, 20)  # published Qwen3-VL text config (head_dim 128: 64 frequency pairs)


@dataclass(frozen=True)
class VisionConfig:
    """Qwen3-VL's ViT (transformers' ``Qwen3VLVisionConfig`` defaults and names)."""

    depth: int = 27
    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_heads: int = 16
    out_hidden_size: int = 3584
    in_channels: int = 3
    patch_size: int = 16
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    num_position_embeddings: int = 2304  # 48 x 48 learned positions
    deepstack_visual_indexes: tuple[int, ...] = (8, 16, 24)
    hidden_act: str = "gelu_pytorch_tanh"
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        require_positive(self, "depth", "hidden_size", "intermediate_size", "num_heads", "out_hidden_size",
                         "in_channels", "patch_size", "spatial_merge_size", "temporal_patch_size",
                         "num_position_embeddings")
        require_vision_heads(self.hidden_size, self.num_heads, "hidden_size")
        if math.isqrt(self.num_position_embeddings) ** 2 != self.num_position_embeddings:
            raise ValueError(f"num_position_embeddings={self.num_position_embeddings} must be a square (side x side)")
        if self.hidden_act != "gelu_pytorch_tanh":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (Qwen3-VL uses 'gelu_pytorch_tanh')")
        require_block_indexes(self, "deepstack_visual_indexes", self.depth)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def grid_side(self) -> int:
        return math.isqrt(self.num_position_embeddings)

    @classmethod
    def from_transformers(cls, config: Any) -> "VisionConfig":
        """From transformers' ``Qwen3VLVisionConfig``."""
        rope = getattr(config, "rope_parameters", None) or {}
        return cls(depth=config.depth, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
                   num_heads=config.num_heads, out_hidden_size=config.out_hidden_size,
                   in_channels=config.in_channels, patch_size=config.patch_size,
                   spatial_merge_size=config.spatial_merge_size, temporal_patch_size=config.temporal_patch_size,
                   num_position_embeddings=config.num_position_embeddings,
                   deepstack_visual_indexes=tuple(config.deepstack_visual_indexes), hidden_act=config.hidden_act,
                   rope_theta=float(rope.get("rope_theta", 10000.0)))


# ---------------------------------------------------------------------------------------------
# 2. Learned position embeddings, interpolated to each grid
# ---------------------------------------------------------------------------------------------
def position_embeddings(table: torch.Tensor, grid_thw: torch.Tensor, spatial_merge_size: int = 2) -> torch.Tensor:
    """``table [side*side, d]`` (learned, row-major) → one embedding per patch ``[N, d]``, in pixel_values order.

    For each (t, h, w): the side x side table is resized to h x w by bilinear interpolation with
    aligned corners (patch (r, c) reads the table at (r·(side-1)/(h-1), c·(side-1)/(w-1))), its rows
    put in the processor's merge-group order (as ``rope.vision_position_ids``), repeated for each slice.
    """
    side = math.isqrt(table.shape[0])
    grid = check_grids(grid_thw, spatial_merge_size)  # [n, 3]; h, w multiples of the merge
    image = table.view(side, side, -1).permute(2, 0, 1)[None].float()  # [1, d, side, side]
    m, out = spatial_merge_size, []
    for t, h, w in grid.tolist():
        x = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=True)[0]  # [d, h, w]
        x = x.permute(1, 2, 0).reshape(h // m, m, w // m, m, -1).permute(0, 2, 1, 3, 4)  # merge groups adjacent
        out.append(x.reshape(h * w, -1).repeat(t, 1))  # [t*h*w, d]
    return torch.cat(out).to(table.dtype)


# ---------------------------------------------------------------------------------------------
# The block (tanh-GELU MLP), the merger (Qwen2-VL's with other names; a post-shuffle norm for DeepStack)
# ---------------------------------------------------------------------------------------------
class VisionMlp(nn.Module):
    """linear_fc2(gelu_tanh(linear_fc1(x))) (Qwen2-VL: QuickGELU; Qwen2.5-VL: SwiGLU)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.linear_fc1 = nn.Linear(dim, hidden_dim)
        self.linear_fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_fc2(F.gelu(self.linear_fc1(x), approximate="tanh"))  # [N, d] -> [N, I] -> [N, d]


class VisionBlock(nn.Module):
    """Qwen2-VL's LayerNorm block, the MLP swapped for :class:`VisionMlp`."""

    forward = Qwen2VLVisionBlock.forward

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.attn = VisionAttention(d, config.num_heads)
        self.mlp = VisionMlp(d, config.intermediate_size)


class PatchMerger(nn.Module):
    """norm → 4 merged rows as one → fc1 → GELU → fc2 (Qwen2-VL's merger).

    ``postshuffle_norm=True`` (the DeepStack mergers) normalises the concatenated 4·d row instead of
    each d row."""

    def __init__(self, dim: int, context_dim: int, spatial_merge_size: int = 2, postshuffle_norm: bool = False) -> None:
        super().__init__()
        self.hidden_size = context_dim * spatial_merge_size**2
        self.postshuffle_norm = postshuffle_norm
        self.norm = nn.LayerNorm(self.hidden_size if postshuffle_norm else context_dim, eps=1e-6)
        self.linear_fc1 = nn.Linear(self.hidden_size, self.hidden_size)
        self.linear_fc2 = nn.Linear(self.hidden_size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.postshuffle_norm:
            x = self.norm(x.view(-1, self.hidden_size))  # [N, d] -> [N/4, 4d] -> norm
        else:
            x = self.norm(x).view(-1, self.hidden_size)  # norm -> [N/4, 4d]
        return self.linear_fc2(F.gelu(self.linear_fc1(x)))  # [N/4, 4d] -> [N/4, out]


class VisionTransformer(AttentionBackendChoice, nn.Module):
    """Qwen3-VL's ViT: ``forward(pixel_values [N, 3*2*16*16], grid_thw) -> (merged [N/4, out], [deepstack [N/4, out], ...])``."""

    def __init__(self, config: VisionConfig, attn_backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.patch_size, config.temporal_patch_size, config.in_channels,
                                      config.hidden_size)
        kernel = (config.temporal_patch_size, config.patch_size, config.patch_size)
        self.patch_embed.proj = nn.Conv3d(config.in_channels, config.hidden_size, kernel, kernel, bias=True)  # + bias
        self.pos_embed = nn.Embedding(config.num_position_embeddings, config.hidden_size)
        self.rotary_pos_emb = VisionRotaryEmbedding(config.head_dim, config.rope_theta, config.spatial_merge_size)
        self.attn_backend = attn_backend  # stored on the tower, passed to each block per call
        self.blocks = nn.ModuleList(VisionBlock(config) for _ in range(config.depth))
        self.merger = PatchMerger(config.out_hidden_size, config.hidden_size, config.spatial_merge_size)
        self.deepstack_merger_list = nn.ModuleList(
            PatchMerger(config.out_hidden_size, config.hidden_size, config.spatial_merge_size, postshuffle_norm=True)
            for _ in config.deepstack_visual_indexes)

    @classmethod
    def from_transformers(cls, module: nn.Module, attn_backend: str = "auto") -> "VisionTransformer":
        """Ours with the weights of transformers' ``Qwen3VLVisionModel`` (strict)."""
        model = cls(VisionConfig.from_transformers(module.config), attn_backend)
        weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return load_strict(model.to(next(module.parameters()).dtype), weights, "qwen3_vl.VisionTransformer").eval()

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        c = self.config
        grid = check_vision_inputs(pixel_values, grid_thw, c.spatial_merge_size,
                                   c.in_channels * c.temporal_patch_size * c.patch_size**2)  # Qwen2-VL's check
        cu_seqlens = cu_seqlens_from_grid(grid).to(pixel_values.device)
        x = self.patch_embed(pixel_values)  # [N, 1536] -> [N, d]
        x = x + position_embeddings(self.pos_embed.weight, grid, c.spatial_merge_size).to(x)  # + learned positions
        cos, sin = self.rotary_pos_emb(grid, device=x.device)  # 2D-RoPE as in Qwen2-VL
        deepstack = []
        for i, block in enumerate(self.blocks):
            x = block(x, cu_seqlens, cos, sin, self.attn_backend)  # [N, d]
            if i in c.deepstack_visual_indexes:  # an intermediate layer, through its own merger
                deepstack.append(self.deepstack_merger_list[c.deepstack_visual_indexes.index(i)](x))  # [N/4, out]
        return self.merger(x), deepstack  # [N/4, out], len(deepstack_visual_indexes) x [N/4, out]


def deepstack_add(hidden_states: torch.Tensor, visual_mask: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """After LLM layer k: ``hidden [B, L, D]`` with ``feature [n_visual, D]`` (DeepStack level k) added at the
    visual places (``visual_mask [B, L]``, in row-major order) — ``Qwen3VLTextModel._deepstack_process``."""
    if int(visual_mask.sum()) != feature.shape[0]:
        raise ValueError(f"{int(visual_mask.sum())} visual places but {feature.shape[0]} DeepStack rows")
    out = hidden_states.clone()
    out[visual_mask] = out[visual_mask] + feature.to(out.dtype)
    return out


# ---------------------------------------------------------------------------------------------
# 3. Interleaved MRoPE
# ---------------------------------------------------------------------------------------------
def chunked_axis_of_pair(head_dim: int, mrope_section: Sequence[int]) -> list[int]:
    """Qwen2-VL: frequency pair j → axis 0/1/2 (t/h/w) in contiguous chunks ([16, 24, 24]: 0*16, 1*24, 2*24)."""
    return [axis for axis, n in enumerate(mrope_section) for _ in range(n)][: head_dim // 2]


def interleaved_axis_of_pair(head_dim: int, mrope_section: Sequence[int]) -> list[int]:
    """Qwen3-VL: pair j → axis j % 3 while every axis has pairs left (h, w: ``section[1]``, ``section[2]``
    each), the rest → t. [24, 20, 20] → t h w t h w … (20 times) then t t t t."""
    _, nh, nw = mrope_section
    return [(j % 3 if (j % 3 == 1 and j < 3 * nh) or (j % 3 == 2 and j < 3 * nw) else 0)
            for j in range(head_dim // 2)]


def interleaved_mrope_angles(position_ids: torch.Tensor, head_dim: int, theta: float,
                             mrope_section: Sequence[int] = MROPE_SECTION) -> torch.Tensor:
    """``[3, B, L]`` (t, h, w) ids → angles ``[B, L, head_dim/2]``: pair j rotates by the id of its axis."""
    if len(mrope_section) != 3 or sum(mrope_section) != head_dim // 2:
        raise ValueError(f"mrope_section {list(mrope_section)} must be 3 parts summing to head_dim/2 = {head_dim // 2}")
    if position_ids.ndim == 2:
        position_ids = position_ids.unsqueeze(0).expand(3, -1, -1)
    if position_ids.ndim != 3 or position_ids.shape[0] != 3:
        raise ValueError(f"position ids must be [3, B, L] or [B, L], got shape {tuple(position_ids.shape)}")
    angles = position_ids[..., None].float() * inverse_frequencies(head_dim, theta).to(position_ids.device)  # [3,B,L,hd/2]
    axis = torch.tensor(interleaved_axis_of_pair(head_dim, mrope_section), device=position_ids.device)  # [hd/2]
    return angles.gather(0, axis.expand(1, *angles.shape[1:]))[0]  # pick row axis[j] for pair j: [B, L, hd/2]


def interleaved_mrope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float,
                              mrope_section: Sequence[int] = MROPE_SECTION) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin [B, L, head_dim]`` (float32, duplicated halves as ``rope.mrope_cos_sin``)."""
    angles = interleaved_mrope_angles(position_ids, head_dim, theta, mrope_section)
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


# ---------------------------------------------------------------------------------------------
# 5. Timestamps and the id rule (each frame group its own segment)
# ---------------------------------------------------------------------------------------------
def split_video_grids(video_grid_thw: torch.Tensor | None) -> torch.Tensor | None:
    """``[n, 3]`` (t, h, w) → one (1, h, w) row per temporal patch: each frame group is a segment."""
    if video_grid_thw is None:
        return None
    g = check_grids(video_grid_thw, 1, name="video_grid_thw")  # shape and t, h, w >= 1; the merge: rope's check
    g = torch.repeat_interleave(g, g[:, 0], dim=0)  # [sum t, 3]
    g[:, 0] = 1
    return g


def rope_index(input_ids: torch.Tensor, image_grid_thw: torch.Tensor | None = None,
               video_grid_thw: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, *,
               spatial_merge_size: int = 2, image_token_id: int = IMAGE_TOKEN_ID, video_token_id: int = VIDEO_TOKEN_ID,
               vision_start_token_id: int = VISION_START_TOKEN_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3-VL's M-RoPE ids: Qwen2-VL's rule (``rope.mrope_position_ids``, its conventions too) with every
    video split into its frame groups (t = 1 each, separated by their timestamp text). With t = 1 the
    paper's "max + 1" and transformers 5.x's "+ max(h', w')" coincide: no drift."""
    return mrope_position_ids(input_ids, image_grid_thw, split_video_grids(video_grid_thw), attention_mask,
                              spatial_merge_size=spatial_merge_size, image_token_id=image_token_id,
                              video_token_id=video_token_id, vision_start_token_id=vision_start_token_id)


def video_timestamps(frame_indices: Sequence[int], fps: float, temporal_patch_size: int = 2) -> list[float]:
    """Seconds of each temporal patch: the mean of its first and last frame's ``index / fps``
    (an incomplete last group repeats its last frame)."""
    idx = [int(i) for i in frame_indices]
    if not idx or fps <= 0:
        raise ValueError(f"need at least one frame index and fps > 0, got {len(idx)} indices, fps={fps}")
    idx += [idx[-1]] * (-len(idx) % temporal_patch_size)
    times = [i / fps for i in idx]
    return [(times[k] + times[k + temporal_patch_size - 1]) / 2 for k in range(0, len(times), temporal_patch_size)]


def video_placeholder(timestamps: Sequence[float], tokens_per_frame: int, *, video_token: str = "<|video_pad|>",
                      vision_start: str = "<|vision_start|>", vision_end: str = "<|vision_end|>") -> str:
    """The prompt text of a video: ``<t seconds>`` + start + pads + end per temporal patch (one decimal)."""
    return "".join(f"<{t:.1f} seconds>{vision_start}{video_token * tokens_per_frame}{vision_end}" for t in timestamps)


# ---------------------------------------------------------------------------------------------
# 6. Grounding on a 0-1000 grid
# ---------------------------------------------------------------------------------------------
GRID = 1000


def to_grid(box: Sequence[float], size: Sequence[int]) -> tuple[int, int, int, int]:
    """Pixel box on an image of ``size`` = (width, height) → integers in [0, 1000] (``round(1000·x/size)``)."""
    w, h = (int(v) for v in size)
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h):
        raise ValueError(f"box {tuple(box)!r} is not a (x1, y1, x2, y2) box inside the {w}x{h} image")
    return round(GRID * x1 / w), round(GRID * y1 / h), round(GRID * x2 / w), round(GRID * y2 / h)


def from_grid(box: Sequence[float], size: Sequence[int]) -> tuple[float, float, float, float]:
    """[0, 1000] box → pixels of an image of ``size`` = (width, height) (``n · size / 1000``)."""
    w, h = (int(v) for v in size)
    if min(box) < 0 or max(box) > GRID:
        raise ValueError(f"box {tuple(box)!r} must lie in [0, {GRID}]")
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1 * w / GRID, y1 * h / GRID, x2 * w / GRID, y2 * h / GRID
