"""Rotary position embeddings: 1D RoPE, the ViT's 2D-RoPE, and the LLM's M-RoPE.

Paper §2.1: the ViT drops absolute position embeddings for **2D-RoPE** — half of each head's
rotary frequencies rotate by the patch's row, half by its column. The LLM uses **Multimodal
RoPE (M-RoPE)**: the rotary half-dimension is split into (temporal, height, width) sections
(``mrope_section = [16, 24, 24]`` pairs for head_dim 128) and each section rotates by its own
position id. Text gets the same id on all three, so M-RoPE on text *is* 1D RoPE.

Reference: transformers/models/qwen2_vl/modeling_qwen2_vl.py — ``Qwen2VLVisionRotaryEmbedding``,
``apply_rotary_pos_emb_vision``, ``Qwen2VLRotaryEmbedding`` (``recomposition_frequencies``),
``apply_rotary_pos_emb`` and ``Qwen2VLModel.get_rope_index``.

Layout conventions (as the reference, "rotate_half" style): the angle vector of length
head_dim/2 is duplicated, ``cos = cat(cos(a), cos(a))``, and ``x*cos + rotate_half(x)*sin``.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "inverse_frequencies",
    "rotate_half",
    "rope_cos_sin",
    "apply_rotary",
    "vision_position_ids",
    "vision_rotary_angles",
    "vision_cos_sin",
    "apply_rotary_vision",
    "mrope_angles",
    "mrope_cos_sin",
    "apply_mrope",
]


def inverse_frequencies(dim: int, theta: float) -> torch.Tensor:
    """theta^(-2i/dim) for i in [0, dim/2): ``[dim/2]`` float32 (the reference's formula, bit for bit)."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] → [-x2, x1] over the last dimension."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


# ---------------------------------------------------------------------------------------------
# 1D RoPE (text-only LLMs; and M-RoPE with three equal id rows reduces to it)
# ---------------------------------------------------------------------------------------------
def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``position_ids [..., L]`` → ``cos, sin [..., L, head_dim]`` (float32)."""
    angles = position_ids[..., None].float() * inverse_frequencies(head_dim, theta).to(position_ids.device)
    emb = torch.cat((angles, angles), dim=-1)  # [..., L, hd/2] -> [..., L, hd]
    return emb.cos(), emb.sin()


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 unsqueeze_dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``q, k [B, heads, L, hd]`` by ``cos, sin [B, L, hd]`` (broadcast over heads)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim).to(q.dtype), sin.unsqueeze(unsqueeze_dim).to(q.dtype)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


# ---------------------------------------------------------------------------------------------
# Vision 2D-RoPE
# ---------------------------------------------------------------------------------------------
def vision_position_ids(grid_thw: torch.Tensor | Sequence[Sequence[int]], spatial_merge_size: int = 2) -> torch.Tensor:
    """(row, column) of every patch, in the processor's row order: ``LongTensor[N, 2]``.

    For each image/video (t, h, w): the h x w grid is visited 2x2 merge group by group (groups in
    raster order, the 4 patches of a group in raster order), repeated for each of the t temporal
    slices. Several grids are concatenated in order.
    """
    grid = torch.as_tensor(grid_thw, dtype=torch.long).reshape(-1, 3)
    m = spatial_merge_size
    out = []
    for t, h, w in grid.tolist():
        if h % m or w % m:
            raise ValueError(f"grid (t={t}, h={h}, w={w}): h and w must be multiples of spatial_merge_size={m}")
        rows = torch.arange(h).view(h, 1).expand(h, w)  # [h, w]
        cols = torch.arange(w).view(1, w).expand(h, w)  # [h, w]
        rc = torch.stack([rows, cols], dim=-1)  # [h, w, 2]
        rc = rc.view(h // m, m, w // m, m, 2).permute(0, 2, 1, 3, 4).reshape(h * w, 2)  # merge groups adjacent
        out.append(rc.repeat(t, 1))  # [t*h*w, 2]
    if not out:
        return torch.zeros(0, 2, dtype=torch.long)
    return torch.cat(out, dim=0)


def vision_rotary_angles(position_ids: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """``[N, 2]`` (row, col) → rotation angles ``[N, head_dim/2]``: first half rows, second half columns.

    Each axis gets head_dim/4 frequencies theta^(-2i/(head_dim/2)); head_dim 80 → 20 per axis.
    """
    inv = inverse_frequencies(head_dim // 2, theta).to(position_ids.device)  # [hd/4]
    angles = position_ids[..., None].float() * inv  # [N, 2, hd/4]
    return torch.cat([angles[:, 0], angles[:, 1]], dim=-1)  # [N, hd/2]


def vision_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, 2]`` → ``cos, sin [N, head_dim]`` (float32)."""
    angles = vision_rotary_angles(position_ids, head_dim, theta)
    emb = torch.cat([angles, angles], dim=-1)  # [N, hd/2] -> [N, hd]
    return emb.cos(), emb.sin()


def apply_rotary_vision(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``q, k [N, heads, hd]`` by ``cos, sin [N, hd]``; computed in float32, cast back."""
    cos, sin = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()  # [N, 1, hd]
    return _rotate_vision(q, cos, sin), _rotate_vision(k, cos, sin)


def _rotate_vision(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x·cos + rotate_half(x)·sin in float32 — the reference's arithmetic (bit for bit) with 3 fresh
    buffers instead of 5 (in-place products); ``.float()`` is a no-op for float32 input."""
    xf = x.float()
    out = xf * cos  # [N, H, hd]
    return out.add_(rotate_half(xf).mul_(sin)).to(x.dtype)  # + rotate_half(x) * sin


# ---------------------------------------------------------------------------------------------
# M-RoPE application (the id builder, mrope_position_ids, lives below)
# ---------------------------------------------------------------------------------------------
def mrope_angles(position_ids: torch.Tensor, head_dim: int, theta: float,
                 mrope_section: Sequence[int]) -> torch.Tensor:
    """``position_ids [3, B, L]`` → angles ``[B, L, head_dim/2]``.

    Frequency pair j belongs to section 0 (temporal), 1 (height) or 2 (width) by
    ``mrope_section`` (e.g. 16 / 24 / 24 pairs) and rotates by that row's id.
    """
    if sum(mrope_section) != head_dim // 2:
        raise ValueError(f"mrope_section {list(mrope_section)} must sum to head_dim/2 = {head_dim // 2}")
    if position_ids.ndim == 2:
        position_ids = position_ids.unsqueeze(0).expand(3, -1, -1)
    inv = inverse_frequencies(head_dim, theta).to(position_ids.device)  # [hd/2]
    angles = position_ids[..., None].float() * inv  # [3, B, L, hd/2]
    chunks = angles.split(list(mrope_section), dim=-1)
    return torch.cat([c[i % 3] for i, c in enumerate(chunks)], dim=-1)  # [B, L, hd/2]


def mrope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float,
                  mrope_section: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[3, B, L]`` ids → ``cos, sin [B, L, head_dim]`` (float32)."""
    angles = mrope_angles(position_ids, head_dim, theta, mrope_section)
    emb = torch.cat([angles, angles], dim=-1)  # [B, L, hd/2] -> [B, L, hd]
    return emb.cos(), emb.sin()


def apply_mrope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``q [B, Hq, L, hd]`` and ``k [B, Hkv, L, hd]`` by M-RoPE ``cos, sin [B, L, hd]``."""
    return apply_rotary(q, k, cos, sin, unsqueeze_dim=1)
