"""MiniGPT-4 and MiniGPT-v2: a single linear layer into the LLM.

Papers: "MiniGPT-4: Enhancing Vision-Language Understanding with Advanced Large Language Models"
(Zhu et al., 2023), §3: BLIP-2's frozen ViT-g + Q-Former (32 x 768 out) and *one* projection
layer into Vicuna (``llama_proj``: Linear(768, 4096)). "MiniGPT-v2: Large Language Model as a
Unified Interface for Vision-Language Multi-task Learning" (Chen et al., 2023), §3.1 "Model
Architecture": no Q-Former; the EVA ViT-g/14 features of a 448x448 image (32x32 = 1024 tokens,
width 1408) are reduced by concatenating every 4 adjacent visual tokens into one (256 x 5632),
then one linear layer into LLaMA-2-chat-7B (4096).

Reference: Vision-CAIR/MiniGPT-4 (minigpt4/models/minigpt_base.py / minigpt_v2.py,
``encode_img``): ``image_embeds[:, 1:, :].view(bs, pn // 4, hs * 4)`` — "adjacent" means 4
*consecutive tokens in raster order* (a 1x4 strip of a patch row), not a 2x2 square as in
Qwen2-VL's merger or InternVL's pixel shuffle. ``concat_adjacent_tokens`` is that view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..resolution import check_int

__all__ = [
    "MiniGPTConfig",
    "MINIGPT4_7B",
    "MINIGPT_V2",
    "concat_adjacent_tokens",
    "split_adjacent_tokens",
    "MiniGPT4Projection",
    "MiniGPTv2Projection",
    "shape_chain_v1",
    "shape_chain_v2",
]


@dataclass(frozen=True)
class MiniGPTConfig:
    qformer_hidden_size: int = 768  # MiniGPT-4: BLIP-2's Q-Former output width
    num_query_tokens: int = 32
    vit_hidden_size: int = 1408  # EVA ViT-g/14
    image_size: int = 224  # MiniGPT-4: 224; MiniGPT-v2: 448
    patch_size: int = 14
    concat: int = 4  # MiniGPT-v2: 4 adjacent tokens → 1
    llm_hidden_size: int = 4096  # Vicuna-7B / LLaMA-2-7B

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2  # 1024 at 448


MINIGPT4_7B = MiniGPTConfig()
MINIGPT_V2 = MiniGPTConfig(image_size=448)


def concat_adjacent_tokens(x: torch.Tensor, k: int = 4) -> torch.Tensor:
    """[B, N, C] → [B, N/k, kC]: tokens k*i .. k*i+k-1 (consecutive in raster order) side by side."""
    check_int("k (tokens concatenated into one)", k)
    if x.dim() != 3 or x.shape[1] % k:
        raise ValueError(f"concat_adjacent_tokens needs [B, N, C] with N divisible by {k}, got {tuple(x.shape)}")
    b, n, c = x.shape
    return x.reshape(b, n // k, c * k)  # [B, 1024, 1408] -> [B, 256, 5632]


def split_adjacent_tokens(x: torch.Tensor, k: int = 4) -> torch.Tensor:
    """The inverse: [B, N/k, kC] → [B, N, C]."""
    check_int("k (tokens concatenated into one)", k)
    if x.dim() != 3 or x.shape[2] % k:
        raise ValueError(f"split_adjacent_tokens needs [B, M, kC] with channels divisible by {k}, "
                         f"got {tuple(x.shape)}")
    b, m, kc = x.shape
    return x.reshape(b, m * k, kc // k)  # [B, 256, 5632] -> [B, 1024, 1408]


class MiniGPT4Projection(nn.Module):
    """Q-Former outputs [B, 32, 768] → ``llama_proj`` → [B, 32, 4096]."""

    def __init__(self, config: MiniGPTConfig = MINIGPT4_7B):
        super().__init__()
        self.config = config
        self.llama_proj = nn.Linear(config.qformer_hidden_size, config.llm_hidden_size)

    def forward(self, qformer_output: torch.Tensor) -> torch.Tensor:
        if qformer_output.dim() != 3 or qformer_output.shape[-1] != self.config.qformer_hidden_size:
            raise ValueError(f"MiniGPT4Projection expects [B, 32, {self.config.qformer_hidden_size}], "
                             f"got {tuple(qformer_output.shape)}")
        return self.llama_proj(qformer_output)  # [B, 32, 768] -> [B, 32, 4096]


class MiniGPTv2Projection(nn.Module):
    """ViT-g features [B, 1025, 1408] → drop CLS → 4 adjacent tokens into one → ``llama_proj``."""

    def __init__(self, config: MiniGPTConfig = MINIGPT_V2):
        super().__init__()
        self.config = config
        self.llama_proj = nn.Linear(config.vit_hidden_size * config.concat, config.llm_hidden_size)

    def forward(self, vit_embeds: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = (cfg.num_patches + 1, cfg.vit_hidden_size)
        if vit_embeds.dim() != 3 or tuple(vit_embeds.shape[1:]) != expected:
            raise ValueError(f"MiniGPTv2Projection expects [B, {expected[0]}, {expected[1]}], "
                             f"got {tuple(vit_embeds.shape)}")
        x = vit_embeds[:, 1:, :]  # [B, 1025, 1408] -> [B, 1024, 1408]
        x = concat_adjacent_tokens(x, cfg.concat)  # -> [B, 256, 5632]
        return self.llama_proj(x)  # -> [B, 256, 4096]


def shape_chain_v1(config: MiniGPTConfig = MINIGPT4_7B) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{config.image_size}² image → EVA ViT-g + BLIP-2 Q-Former", (config.num_query_tokens,
                                                                      config.qformer_hidden_size)),
        ("llama_proj (Linear) → Vicuna-7B", (config.num_query_tokens, config.llm_hidden_size)),
    ]


def shape_chain_v2(config: MiniGPTConfig = MINIGPT_V2) -> list[tuple[str, tuple[int, ...]]]:
    n, c, k = config.num_patches, config.vit_hidden_size, config.concat
    return [
        (f"{config.image_size}² image → EVA ViT-g/{config.patch_size}", (n + 1, c)),
        ("drop CLS", (n, c)),
        (f"concat {k} consecutive tokens", (n // k, k * c)),
        ("llama_proj (Linear) → LLaMA-2-7B", (n // k, config.llm_hidden_size)),
    ]
