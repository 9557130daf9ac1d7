"""After Qwen2-VL: what Qwen2.5-VL and Qwen3-VL changed, each change built on the Qwen2-VL core.

Only the changes live here; every unchanged piece is imported from the Qwen2-VL modules, so a
difference reads as a difference and not as a copy:

- :mod:`.qwen2_5_vl` — window attention in the ViT (112 px windows; full attention only in
  ``fullatt_block_indexes``) with the token reordering it needs; RMSNorm + SwiGLU blocks;
  absolute-time M-RoPE (a video's temporal id grows with seconds); grounding in absolute pixels of
  the resized image. Reused: ``patching.PatchEmbed``, ``vision.VisionAttention`` (2D-RoPE via
  ``rope.vision_cos_sin``), ``vision.PatchMerger``, ``vision.VisionBlock.forward``,
  ``attention.cu_seqlens_from_grid``, ``language.RMSNorm``.
- :mod:`.qwen3_vl` — 16 px patches; learned position embeddings interpolated to the grid beside
  2D-RoPE; interleaved MRoPE (sections [24, 20, 20]); DeepStack (features of intermediate ViT
  blocks, each through its own merger, added to the first LLM layers); textual timestamps per
  frame; grounding on a 0-1000 grid. Reused: the same ViT pieces, ``rope.mrope_position_ids``
  (Qwen3-VL's rule is Qwen2-VL's with each video frame its own segment), ``rope.inverse_frequencies``.

Token counts per model (published processor defaults) are ``resolution.count_image_tokens(...,
model=...)`` / ``count_video_tokens(..., model=...)``. Each piece is checked against transformers'
``Qwen2_5_VL*`` / ``Qwen3VL*`` in tests/test_successors_*.py (adapters in
``qwenvl_study/course/reference_successors.py``).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

__all__ = ["load_strict", "as_grid"]


def as_grid(name: str, grid: object) -> torch.Tensor:
    """``None`` / ``[n, 3]`` integers → ``LongTensor[n, 3]`` on the CPU; ValueError naming ``name`` otherwise."""
    if grid is None:
        return torch.zeros(0, 3, dtype=torch.long)
    g = torch.as_tensor(grid).cpu()
    if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {g.dtype}")
    if g.ndim != 2 or g.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [num_items, 3] (t, h, w), got {list(g.shape)}")
    if (g < 1).any():
        raise ValueError(f"{name} {g.tolist()}: t, h, w must be >= 1")
    return g.long()


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    """``model.load_state_dict(state_dict, strict=True)``; every missing, unexpected or mis-shaped
    tensor listed in one ValueError naming ``what``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshaped = sorted(f"{k}: given {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                       for k in set(own) & set(state_dict) if tuple(state_dict[k].shape) != tuple(own[k].shape))
    problems = [f"{label} {len(v)}: {', '.join(v)}" for label, v in
                (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if v]
    if problems:
        raise ValueError(f"{what}.load_state_dict: " + " | ".join(problems))
    model.load_state_dict(dict(state_dict), strict=True)
    return model
