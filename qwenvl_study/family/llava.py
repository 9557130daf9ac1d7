"""LLaVA and LLaVA-1.5: CLIP patch features → a projector → the LLM, one token per patch.

Papers: "Visual Instruction Tuning" (LLaVA, Liu et al., 2023), §4 "Visual Instruction Tuning —
Architecture": a trainable projection matrix W (one linear layer) maps CLIP ViT-L/14 grid
features (the penultimate layer, CLS dropped) to the LLM's word-embedding space; and "Improved
Baselines with Visual Instruction Tuning" (LLaVA-1.5, Liu et al., 2024), §3.2 "Improving the
connector": a two-layer MLP with GELU, and CLIP ViT-L/14 at 336 px → (336/14)² = 576 tokens.

Reference: transformers' ``LlavaMultiModalProjector`` (transformers/models/llava/modeling_llava.py;
``linear_1`` → GELU → ``linear_2``) — same names, so its weights load into ours (parity test) —
and its ``vision_feature_select_strategy="default"`` (drop the CLS token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = [
    "LlavaConfig",
    "LLAVA_1_5_7B",
    "LLAVA_7B",
    "select_image_features",
    "LlavaLinearProjector",
    "LlavaMultiModalProjector",
    "LlavaConnector",
    "shape_chain",
]


@dataclass(frozen=True)
class LlavaConfig:
    """LLaVA-1.5-7B: CLIP ViT-L/14-336 (1024) → 2-layer GELU MLP → Vicuna-7B (4096)."""

    image_size: int = 336
    patch_size: int = 14  # 336 / 14 = 24 → 576 patches (+ CLS)
    vision_hidden_size: int = 1024  # CLIP ViT-L/14
    text_hidden_size: int = 4096  # Vicuna-7B
    projector: Literal["linear", "mlp2x_gelu"] = "mlp2x_gelu"
    projector_bias: bool = True

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2  # 576


LLAVA_1_5_7B = LlavaConfig()
LLAVA_7B = LlavaConfig(image_size=224, projector="linear")  # LLaVA (v1): 224 px, 256 tokens, one Linear


def select_image_features(hidden: torch.Tensor, strategy: str = "default") -> torch.Tensor:
    """``default``: drop the CLS token ([B, 577, C] → [B, 576, C]); ``full``: keep it."""
    if hidden.dim() != 3 or hidden.shape[1] < 2:
        raise ValueError(f"vision hidden states must be [B, 1 + patches, C] (CLS first), got {tuple(hidden.shape)}")
    if strategy == "default":
        return hidden[:, 1:]  # [B, 1 + N, C] -> [B, N, C]
    if strategy == "full":
        return hidden
    raise ValueError(f"vision_feature_select_strategy must be 'default' or 'full', got {strategy!r}")


class LlavaLinearProjector(nn.Module):
    """LLaVA (v1): one matrix W, Z = W·X."""

    def __init__(self, config: LlavaConfig = LLAVA_7B):
        super().__init__()
        self.linear = nn.Linear(config.vision_hidden_size, config.text_hidden_size, bias=config.projector_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # [B, N, 1024] -> [B, N, 4096]


class LlavaMultiModalProjector(nn.Module):
    """LLaVA-1.5: Linear → GELU → Linear (transformers' names)."""

    def __init__(self, config: LlavaConfig = LLAVA_1_5_7B):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_hidden_size, config.text_hidden_size, bias=config.projector_bias)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(config.text_hidden_size, config.text_hidden_size, bias=config.projector_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.linear_1(x))  # [B, 576, 1024] -> [B, 576, 4096]
        return self.linear_2(x)  # [B, 576, 4096] -> [B, 576, 4096]


class LlavaConnector(nn.Module):
    """CLIP hidden states (with CLS) → the LLM tokens: one per patch."""

    def __init__(self, config: LlavaConfig = LLAVA_1_5_7B):
        super().__init__()
        self.config = config
        if config.projector == "linear":
            self.multi_modal_projector: nn.Module = LlavaLinearProjector(config)
        elif config.projector == "mlp2x_gelu":
            self.multi_modal_projector = LlavaMultiModalProjector(config)
        else:
            raise ValueError(f"projector must be 'linear' or 'mlp2x_gelu', got {config.projector!r}")

    def forward(self, vision_hidden: torch.Tensor) -> torch.Tensor:
        expected = (self.config.num_patches + 1, self.config.vision_hidden_size)
        if vision_hidden.dim() != 3 or tuple(vision_hidden.shape[1:]) != expected:
            raise ValueError(f"LlavaConnector expects [B, {expected[0]}, {expected[1]}] (CLS + patches), "
                             f"got {tuple(vision_hidden.shape)}")
        x = select_image_features(vision_hidden)  # [B, 577, 1024] -> [B, 576, 1024]
        return self.multi_modal_projector(x)  # -> [B, 576, 4096]


def shape_chain(config: LlavaConfig = LLAVA_1_5_7B) -> list[tuple[str, tuple[int, ...]]]:
    """The connector's stages and their shapes, from the config (for diagrams)."""
    n, c = config.num_patches, config.vision_hidden_size
    proj = "Linear" if config.projector == "linear" else "Linear → GELU → Linear"
    return [
        (f"{config.image_size}² image → CLIP ViT-L/{config.patch_size}", (n + 1, c)),
        ("drop CLS", (n, c)),
        (f"{proj} → Vicuna-7B", (n, config.text_hidden_size)),
    ]
