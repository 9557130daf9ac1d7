"""The vision encoder: a 665M ViT (2B) over packed variable-length sequences, then the 2x2 PatchMerger.

Paper §2.1 (model architecture): a ViT the paper puts at 675M parameters (32 blocks of width 1280, 16 heads;
665.3M / 675.8M / 699.4M in 2B / 7B / 72B, because the merger's last Linear outputs the LLM's width)
with 14x14 patches and **2D-RoPE** instead of absolute positions; images keep their native
resolution, so several images of different sizes are *packed* into one sequence and each attends
only to itself; a video is cut into 2-frame tubes (an image is two identical frames); finally an
MLP compresses each 2x2 group of adjacent patches into one LLM token (1280·4 = 5120 → LLM width).

Reference: transformers/models/qwen2_vl/modeling_qwen2_vl.py —
``Qwen2VisionTransformerPretrainedModel``, ``Qwen2VLVisionBlock``, ``VisionAttention``,
``VisionMlp``, ``PatchMerger``. Module and parameter names mirror the published checkpoint, so
its ``visual.*`` tensors load with the prefix stripped (391 tensors for the 2B tower).

Pieces reused from earlier lessons: :class:`~qwenvl_study.patching.PatchEmbed` (Conv3d),
:func:`~qwenvl_study.rope.vision_position_ids`, :func:`~qwenvl_study.rope.vision_cos_sin`,
:func:`~qwenvl_study.rope.apply_rotary_vision`; attention comes from :mod:`qwenvl_study.attention`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from .attention import AttentionBackendChoice, attention, cu_seqlens_from_grid
from .checkpoint import check_state_dict
from .config import MERGE_SIZE, VisionConfig, vision_config_from_hf
from .patching import PatchEmbed
from .resolution import check_grids
from .rope import apply_rotary_vision, vision_cos_sin, vision_position_ids

__all__ = [
    "QuickGELUActivation",
    "VisionRotaryEmbedding",
    "VisionAttention",
    "VisionMlp",
    "VisionBlock",
    "PatchMerger",
    "VisionOutput",
    "VisionTransformer",
    "check_vision_inputs",
]


class QuickGELUActivation(nn.Module):
    """x · sigmoid(1.702 x) — the CLIP-style GELU approximation the ViT's MLP uses.

    ``inplace=True`` overwrites its input when autograd is off (inference): the same arithmetic
    with one temporary instead of three — on a CPU, fresh large buffers cost page faults.
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace and not torch.is_grad_enabled():
            return x.mul_(torch.sigmoid_(x * 1.702))
        return x * torch.sigmoid(1.702 * x)


class VisionRotaryEmbedding(nn.Module):
    """2D-RoPE tables for a batch of grids: ``grid_thw [n, 3]`` → ``cos, sin [N, head_dim]``.

    Nothing is stored (no buffers, so nothing in the state dict — as the published checkpoint):
    the (row, column) of every patch comes from :func:`vision_position_ids` and the angles from
    :func:`vision_cos_sin`, once per forward, shared by all blocks.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, spatial_merge_size: int = MERGE_SIZE) -> None:
        super().__init__()
        self.head_dim, self.theta, self.spatial_merge_size = head_dim, theta, spatial_merge_size

    def forward(self, grid_thw: torch.Tensor, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        position_ids = vision_position_ids(grid_thw, self.spatial_merge_size).to(device)  # [N, 2] (row, col)
        return vision_cos_sin(position_ids, self.head_dim, self.theta)  # [N, 2] -> [N, hd] each


class VisionAttention(nn.Module):
    """Fused qkv → 2D-RoPE on q, k → attention inside each segment of ``cu_seqlens`` → proj."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cu_seqlens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                backend: str = "auto") -> torch.Tensor:
        n = x.shape[0]
        q, k, v = self.qkv(x).view(n, 3, self.num_heads, self.head_dim).unbind(1)  # [N, d] -> 3 x [N, H, hd]
        q, k = apply_rotary_vision(q, k, cos, sin)  # rotate by (row, col); [N, H, hd]
        out = attention(q, k, v, backend=backend, cu_seqlens=cu_seqlens)  # [N, H, hd]
        return self.proj(out.reshape(n, -1))  # [N, H, hd] -> [N, d] -> [N, d]


class VisionMlp(nn.Module):
    """fc1 (d → 4d) → QuickGELU → fc2 (4d → d)."""

    def __init__(self, dim: int, hidden_dim: int, hidden_act: str = "quick_gelu") -> None:
        super().__init__()
        if hidden_act != "quick_gelu":
            raise ValueError(f"vision hidden_act {hidden_act!r} is not supported (Qwen2-VL uses 'quick_gelu')")
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = QuickGELUActivation(inplace=True)  # its input is fc1's fresh output
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # [N, d] -> [N, 4d] -> [N, d]


class VisionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)); x + mlp(norm2(x)). LayerNorm eps 1e-6."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.attn = VisionAttention(d, config.num_heads)
        self.mlp = VisionMlp(d, config.mlp_hidden_dim, config.hidden_act)

    def forward(self, x: torch.Tensor, cu_seqlens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                backend: str = "auto") -> torch.Tensor:
        # x + f(x), summed into f's fresh output (the block's input stays intact; autograd-safe: a
        # Linear's backward never needs its output) — one [N, d] buffer fewer per residual
        x = self.attn(self.norm1(x), cu_seqlens, cos, sin, backend).add_(x)  # [N, d]
        return self.mlp(self.norm2(x)).add_(x)  # [N, d]


class PatchMerger(nn.Module):
    """LayerNorm → 4 adjacent rows (one 2x2 group) as one row of 4d → Linear → GELU → Linear → LLM width."""

    def __init__(self, dim: int, context_dim: int, spatial_merge_size: int = MERGE_SIZE) -> None:
        super().__init__()
        self.hidden_size = context_dim * spatial_merge_size**2  # 1280 * 4 = 5120
        self.ln_q = nn.LayerNorm(context_dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(self.hidden_size, self.hidden_size), nn.GELU(),
                                 nn.Linear(self.hidden_size, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * x.shape[1] % self.hidden_size:
            raise ValueError(f"PatchMerger: {x.shape[0]} rows cannot be grouped into merge groups of "
                             f"{self.hidden_size // x.shape[1]}")
        x = self.ln_q(x).view(-1, self.hidden_size)  # [N, 1280] -> [N/4, 5120] (rows 4k..4k+3 = one 2x2 group)
        return self.mlp(x)  # [N/4, 5120] -> [N/4, 5120] -> [N/4, hidden]


class VisionOutput(NamedTuple):
    """What ``VisionTransformer.forward(..., return_hidden_states=True)`` returns.

    ``merged [N/4, hidden]``: the LLM-ready tokens (transformers' ``pooler_output``);
    ``last_hidden_state [N, embed_dim]``: the last block's output, before the merger;
    ``hidden_states``: depth + 1 tensors ``[N, embed_dim]`` — the patch embeddings, then every
    block's output (transformers' ``output_hidden_states=True`` convention), for layer-by-layer
    comparisons.
    """

    merged: torch.Tensor
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...]


def check_vision_inputs(pixel_values: torch.Tensor, grid_thw: Any, merge_size: int, patch_dim: int) -> torch.Tensor:
    """The ViTs' one input check (Qwen2-VL's and the successors'): ``grid_thw`` through
    :func:`~qwenvl_study.resolution.check_grids` (at least one row), ``pixel_values`` a floating-point
    ``[sum of t*h*w, patch_dim]`` tensor → the grid ``LongTensor[n, 3]``; ValueError otherwise."""
    grid = check_grids(grid_thw, merge_size, min_items=1)  # [n, 3]
    n = int(grid.prod(-1).sum())
    if not torch.is_tensor(pixel_values) or not pixel_values.is_floating_point():
        raise ValueError(f"pixel_values must be a floating-point tensor [N, {patch_dim}], got "
                         f"{getattr(pixel_values, 'dtype', type(pixel_values).__name__)}")
    if pixel_values.ndim != 2 or pixel_values.shape != (n, patch_dim):
        raise ValueError(f"pixel_values has shape {tuple(pixel_values.shape)}; grid_thw {grid.tolist()} "
                         f"needs [{n}, {patch_dim}] (sum of t*h*w rows of {patch_dim} values)")
    return grid


class VisionTransformer(AttentionBackendChoice, nn.Module):
    """Qwen2-VL's vision tower: ``forward(pixel_values [N, 1176], grid_thw [n, 3]) → [N/4, hidden]``.

    ``attn_backend``: "auto" (varlen on CUDA with fp16/bf16, else sdpa), "eager", "sdpa" or
    "varlen" (see :mod:`qwenvl_study.attention`); settable later through :attr:`attn_backend` (stored
    on the tower, passed to each block per call: :class:`~qwenvl_study.attention.AttentionBackendChoice`).
    ``load_state_dict`` is strict and lists every missing, unexpected and mis-shaped tensor in one
    ``ValueError`` (:func:`~qwenvl_study.checkpoint.check_state_dict`, the check ``load_pretrained`` runs).
    """

    def __init__(self, config: VisionConfig, attn_backend: str = "auto") -> None:
        super().__init__()
        if not isinstance(config, VisionConfig):
            raise ValueError(f"VisionTransformer needs a VisionConfig, got {type(config).__name__} "
                             f"(use VisionTransformer.from_hf_config for a config.json dict)")
        self.config = config
        self.spatial_merge_size = config.spatial_merge_size
        self.patch_embed = PatchEmbed(config.patch_size, config.temporal_patch_size, config.in_chans, config.embed_dim)
        self.rotary_pos_emb = VisionRotaryEmbedding(config.head_dim, config.rope_theta, config.spatial_merge_size)
        self.blocks = nn.ModuleList(VisionBlock(config) for _ in range(config.depth))
        self.merger = PatchMerger(config.hidden_size, config.embed_dim, config.spatial_merge_size)
        self.attn_backend = attn_backend

    @classmethod
    def random(cls, config: VisionConfig, *, seed: int = 0, std: float = 0.02,
               attn_backend: str = "auto") -> "VisionTransformer":
        """A random-weight tower, built fast (the 2B tower in ~2 s instead of ~12 s of default init).

        Built on the meta device (no init), then every tensor is filled from one seeded pool of
        N(0, 1) samples at a random offset, times ``std`` (LayerNorm weights: 1 + that) —
        transformers' own init uses std 0.02 too, but zero biases and unit LayerNorms, which a
        parity check could not tell from missing ones; here every tensor is random. Within a
        tensor no value repeats (the pool is larger than the largest tensor).
        """
        with torch.device("meta"):
            model = cls(config, attn_backend)
        model = model.to_empty(device="cpu")
        params = dict(model.named_parameters())
        gen = torch.Generator().manual_seed(seed)
        pool = torch.randn(max(p.numel() for p in params.values()) * 5 // 4 + 1, generator=gen)  # [pool]
        with torch.no_grad():
            for name, p in params.items():
                off = int(torch.randint(0, pool.numel() - p.numel() + 1, (1,), generator=gen))
                window = pool[off: off + p.numel()].view_as(p) * std  # [numel] -> p's shape
                p.copy_(window + 1 if name.endswith(("norm1.weight", "norm2.weight", "ln_q.weight")) else window)
        return model.eval()

    @classmethod
    def from_hf_config(cls, vision_config: Mapping[str, Any], attn_backend: str = "auto") -> "VisionTransformer":
        """Build from the ``vision_config`` dict of a checkpoint ``config.json`` (4.x or 5.x key names)."""
        return cls(vision_config_from_hf(vision_config), attn_backend)

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor, *,
                return_hidden_states: bool = False) -> torch.Tensor | VisionOutput:
        """``[N, 1176]`` rows (several images / videos packed) → merged tokens ``[N/4, hidden]``.

        ``return_hidden_states=True`` returns a :class:`VisionOutput` (merged tokens, the pre-merger
        states and the depth + 1 per-block hidden states).
        """
        grid = check_vision_inputs(pixel_values, grid_thw, self.spatial_merge_size, self.config.patch_dim)
        cu_seqlens = cu_seqlens_from_grid(grid).to(pixel_values.device)  # [segments + 1]: one per temporal slice
        x = self.patch_embed(pixel_values)  # [N, 1176] -> [N, 1280]
        cos, sin = self.rotary_pos_emb(grid, device=x.device)  # [N, hd] each, float32, computed once
        hidden = [x]
        for block in self.blocks:
            x = block(x, cu_seqlens, cos, sin, self.attn_backend)  # [N, 1280]
            hidden.append(x)
        merged = self.merger(x)  # [N, 1280] -> [N/4, hidden]
        if return_hidden_states:
            return VisionOutput(merged, x, tuple(hidden))
        return merged

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Load the published ``visual.*`` tensors (prefix stripped). All problems in one ValueError:
        missing and unexpected names (when ``strict``) and mis-shaped tensors (always)."""
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"VisionTransformer.load_state_dict: expected a mapping of tensor names to tensors, "
                             f"got {type(state_dict).__name__}")
        check_state_dict({k: tuple(v.shape) for k, v in self.state_dict().items()},
                         {k: tuple(v.shape) for k, v in state_dict.items()},
                         "VisionTransformer.load_state_dict:", strict=strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
