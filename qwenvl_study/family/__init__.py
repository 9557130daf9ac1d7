"""The VLM family of the survey, side by side (lessons 09-10): one module per model.

Every model is "vision encoder → connector → LLM"; they differ in how many visual tokens reach
the LLM and how. Each module builds its connector small and from scratch, with the paper's
shapes as config defaults and random weights:

- ``qwen_vl``  — Qwen-VL: one cross-attention layer, 256 queries, 2D sin-cos positions
- ``blip2``    — BLIP-2's Q-Former and its ITC / ITM / ITG (and InstructBLIP) attention masks
- ``llava``    — LLaVA's linear projector, LLaVA-1.5's 2-layer GELU MLP
- ``minigpt``  — MiniGPT-4's linear layer on Q-Former outputs, MiniGPT-v2's 4-token concatenation
- ``internvl`` — InternVL2's dynamic tiling, pixel shuffle and MLP projector
- ``clip``     — CLIP's symmetric InfoNCE loss, learnable temperature, a toy training
- ``budget``   — visual tokens per model for the same inputs
"""

from .blip2 import (
    BLIP2_QFORMER,
    MASK_KINDS,
    Blip2Connector,
    QFormerConfig,
    QFormerModel,
    instruct_mask,
    itc_mask,
    itg_mask,
    itm_mask,
    qformer_mask,
)
from .budget import BUDGET_INPUTS, MODELS, BudgetInput, format_budget, token_budget, visual_tokens
from .clip import (
    LOGIT_SCALE_INIT,
    LOGIT_SCALE_MAX,
    LogitScale,
    ToyClipHistory,
    clip_logits,
    clip_loss,
    train_toy_clip,
)
from .internvl import (
    INTERNVL2_8B,
    InternVLConfig,
    InternVLConnector,
    dynamic_preprocess,
    internvl_image_tokens,
    internvl_num_tiles,
    internvl_tile_boxes,
    internvl_tile_grid,
    pixel_shuffle,
    pixel_unshuffle,
)
from .llava import LLAVA_1_5_7B, LLAVA_7B, LlavaConfig, LlavaConnector
from .minigpt import (
    MINIGPT4_7B,
    MINIGPT_V2,
    MiniGPT4Projection,
    MiniGPTConfig,
    MiniGPTv2Projection,
    concat_adjacent_tokens,
)
from .qwen_vl import QWEN_VL, QwenVLConfig, QwenVLConnector, QwenVLResampler

__all__ = [
    "BLIP2_QFORMER", "MASK_KINDS", "Blip2Connector", "QFormerConfig", "QFormerModel", "instruct_mask",
    "itc_mask", "itg_mask", "itm_mask", "qformer_mask",
    "BUDGET_INPUTS", "MODELS", "BudgetInput", "format_budget", "token_budget", "visual_tokens",
    "LOGIT_SCALE_INIT", "LOGIT_SCALE_MAX", "LogitScale", "ToyClipHistory", "clip_logits", "clip_loss",
    "train_toy_clip",
    "INTERNVL2_8B", "InternVLConfig", "InternVLConnector", "dynamic_preprocess", "internvl_image_tokens",
    "internvl_num_tiles", "internvl_tile_boxes", "internvl_tile_grid", "pixel_shuffle", "pixel_unshuffle",
    "LLAVA_1_5_7B", "LLAVA_7B", "LlavaConfig", "LlavaConnector",
    "MINIGPT4_7B", "MINIGPT_V2", "MiniGPT4Projection", "MiniGPTConfig", "MiniGPTv2Projection",
    "concat_adjacent_tokens",
    "QWEN_VL", "QwenVLConfig", "QwenVLConnector", "QwenVLResampler",
]
