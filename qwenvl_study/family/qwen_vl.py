"""Qwen-VL's position-aware vision-language adapter: one cross-attention layer, 256 queries.

Paper: "Qwen-VL: A Versatile Vision-Language Model for Understanding, Localization, Text Reading,
and Beyond" (Bai et al., 2023), §2.1 "Position-aware Vision-Language Adapter": a single-layer
cross-attention module, randomly initialised, with 256 learnable query vectors; the ViT-bigG/14
features of a 448x448 image (32x32 = 1024 patches, width 1664) are the keys; 2D absolute
positional encodings are added to the query-key pairs. The output (256 x 4096) goes to Qwen-7B.

Reference: the published ``visual.py`` of Qwen/Qwen-VL (``Resampler``, ``get_abs_pos``,
``get_2d_sincos_pos_embed`` and ``VisionTransformer.attn_pool / ln_post / proj``). Its attention
is ``torch.nn.MultiheadAttention`` (sequence-first); ours is written out (batch-first) with the
same parameter names (``in_proj_weight``, ``in_proj_bias``, ``out_proj``), and
``reference.qwen_vl_resampler_reference`` recomputes the published forward with
``nn.MultiheadAttention`` itself and numpy sin-cos tables for the parity test.

Two details worth knowing:
- the sin-cos table is built for the 16x16 *query* grid; the keys (32x32 patches) get that
  table bicubically interpolated to 32x32 (``get_abs_pos``), not a fresh 32x32 table;
- in each position vector the first half encodes the column (x), the second half the row (y)
  (the published grid is ``np.meshgrid(w, h)``: "w goes first").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require_positive

__all__ = [
    "QwenVLConfig",
    "QWEN_VL",
    "sincos_1d",
    "sincos_2d",
    "interpolate_pos",
    "CrossAttention",
    "QwenVLResampler",
    "QwenVLConnector",
    "shape_chain",
]


@dataclass(frozen=True)
class QwenVLConfig:
    """The published Qwen-VL visual config: ViT-bigG/14 at 448 (width 1664) → Qwen-7B (4096)."""

    image_size: int = 448
    patch_size: int = 14  # 448 / 14 = 32 → 1024 patches
    vit_width: int = 1664  # ViT-bigG (the adapter's kv_dim)
    num_queries: int = 256  # a 16x16 grid of queries
    output_dim: int = 4096  # Qwen-7B hidden size (the adapter works at this width)
    head_dim: int = 128  # num_heads = output_dim // 128 = 32
    layer_norm_eps: float = 1e-6

    @property
    def num_heads(self) -> int:
        return self.output_dim // self.head_dim

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size  # 32

    @property
    def query_grid(self) -> int:
        return math.isqrt(self.num_queries)  # 16

    def __post_init__(self) -> None:
        require_positive(self, "image_size", "patch_size", "vit_width", "num_queries", "output_dim", "head_dim")
        if math.isqrt(self.num_queries) ** 2 != self.num_queries:
            raise ValueError(f"num_queries must be a square (a grid of queries), got {self.num_queries}")
        if self.output_dim % 4 or self.output_dim % self.head_dim:
            raise ValueError(f"output_dim={self.output_dim} must be divisible by 4 (sin-cos halves) and by "
                             f"head_dim={self.head_dim}")


QWEN_VL = QwenVLConfig()


# ---------------------------------------------------------------------------------------------
# 2D absolute sin-cos positions
# ---------------------------------------------------------------------------------------------
def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """[M] positions → [M, dim]: (sin(pos·ω_k), cos(pos·ω_k)), ω_k = 10000^(-k/(dim/2))."""
    if dim % 2:
        raise ValueError(f"sin-cos dimension must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)  # [dim/2]
    omega = 1.0 / 10000**omega
    out = pos.to(torch.float64).reshape(-1, 1) * omega[None, :]  # [M, dim/2] outer product
    return torch.cat([out.sin(), out.cos()], dim=1)  # [M, dim]


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """[grid*grid, dim] float32, raster order: first half encodes the column, second the row."""
    if dim % 4:
        raise ValueError(f"2D sin-cos dimension must be divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")  # [G, G] each
    emb_x = sincos_1d(dim // 2, cols.reshape(-1))  # [G*G, dim/2]: the column (x)
    emb_y = sincos_1d(dim // 2, rows.reshape(-1))  # [G*G, dim/2]: the row (y)
    return torch.cat([emb_x, emb_y], dim=1).float()  # [G*G, dim]


def interpolate_pos(pos: torch.Tensor, length: int) -> torch.Tensor:
    """[L, D] positions of a sqrt(L) grid → [length, D] by bicubic resize (published ``get_abs_pos``)."""
    src, tgt = math.isqrt(pos.shape[0]), math.isqrt(length)
    if tgt * tgt != length:
        raise ValueError(f"the key sequence must be a square grid of patches, got {length} tokens")
    if src == tgt:
        return pos
    grid = pos.float().reshape(1, src, src, -1).permute(0, 3, 1, 2)  # [L, D] -> [1, D, src, src]
    grid = F.interpolate(grid, size=(tgt, tgt), mode="bicubic", align_corners=False)  # -> [1, D, tgt, tgt]
    return grid.permute(0, 2, 3, 1).reshape(tgt * tgt, -1).to(pos.dtype)  # -> [tgt*tgt, D]


# ---------------------------------------------------------------------------------------------
# The cross-attention layer (nn.MultiheadAttention's parameters, written out, batch-first)
# ---------------------------------------------------------------------------------------------
class CrossAttention(nn.Module):
    """Multi-head attention of queries over keys/values; parameter names as nn.MultiheadAttention."""

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, q_len, d = query.shape
        k_len, h = key.shape[1], self.num_heads
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)  # 3 x [D, D]
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)  # 3 x [D]
        q = F.linear(query, w_q, b_q).reshape(b, q_len, h, d // h).transpose(1, 2)  # [B, Q, D] -> [B, h, Q, D/h]
        k = F.linear(key, w_k, b_k).reshape(b, k_len, h, d // h).transpose(1, 2)  # [B, K, D] -> [B, h, K, D/h]
        v = F.linear(value, w_v, b_v).reshape(b, k_len, h, d // h).transpose(1, 2)  # [B, K, D] -> [B, h, K, D/h]
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)  # [B, h, Q, K]
        out = scores.softmax(dim=-1) @ v  # [B, h, Q, D/h]
        out = out.transpose(1, 2).reshape(b, q_len, d)  # -> [B, Q, D]
        return self.out_proj(out)  # [B, Q, D]


class QwenVLResampler(nn.Module):
    """256 learned queries cross-attend once to the ViT patches (published ``Resampler``)."""

    def __init__(self, config: QwenVLConfig = QWEN_VL):
        super().__init__()
        self.config = config
        d = config.output_dim
        self.register_buffer("pos_embed", sincos_2d(d, config.query_grid))  # [256, D], fixed
        self.query = nn.Parameter(torch.empty(config.num_queries, d))  # [256, D]
        nn.init.trunc_normal_(self.query, std=0.02)
        self.kv_proj = nn.Linear(config.vit_width, d, bias=False) if config.vit_width != d else nn.Identity()
        self.attn = CrossAttention(d, config.num_heads)
        self.ln_q = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.ln_kv = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.vit_width:
            raise ValueError(f"QwenVLResampler expects [B, patches, {self.config.vit_width}], got {tuple(x.shape)}")
        key_pos = interpolate_pos(self.pos_embed, x.shape[1]).to(x.dtype)  # [256, D] -> [1024, D]
        x = self.ln_kv(self.kv_proj(x))  # [B, 1024, 1664] -> [B, 1024, D]
        q = self.ln_q(self.query)  # [256, D]
        q = (q + self.pos_embed.to(q.dtype)).expand(x.shape[0], -1, -1)  # -> [B, 256, D] (+ query positions)
        return self.attn(q, x + key_pos, x)  # keys get positions, values don't -> [B, 256, D]


class QwenVLConnector(nn.Module):
    """``attn_pool`` (the resampler) → ``ln_post`` → ``@ proj``: [B, 1024, 1664] → [B, 256, 4096]."""

    def __init__(self, config: QwenVLConfig = QWEN_VL):
        super().__init__()
        self.config = config
        d = config.output_dim
        self.attn_pool = QwenVLResampler(config)
        self.ln_post = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.proj = nn.Parameter(d**-0.5 * torch.randn(d, d))  # [D, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn_pool(x)  # [B, 1024, 1664] -> [B, 256, D]
        x = self.ln_post(x)  # [B, 256, D]
        return x @ self.proj  # [B, 256, D] @ [D, D] -> [B, 256, D]


def shape_chain(config: QwenVLConfig = QWEN_VL) -> list[tuple[str, tuple[int, ...]]]:
    """The connector's stages and their shapes, from the config (for diagrams)."""
    g = config.grid
    return [
        (f"{config.image_size}² image → ViT-bigG/{config.patch_size}", (g * g, config.vit_width)),
        ("kv_proj + LN (keys += 2D sin-cos)", (g * g, config.output_dim)),
        (f"{config.num_queries} queries (+ 2D sin-cos) cross-attend", (config.num_queries, config.output_dim)),
        ("ln_post, @ proj → Qwen-7B", (config.num_queries, config.output_dim)),
    ]
