"""BLIP-2's Q-Former: 32 learned queries read the frozen image features; three attention masks.

Paper: "BLIP-2: Bootstrapping Language-Image Pre-training with Frozen Image Encoders and Large
Language Models" (Li et al., 2023), §3.1 "Model Architecture" (32 queries x 768, a BERT-base
whose self-attention is shared by queries and text, cross-attention to the frozen image features
inserted every other block) and §3.2 / Figure 2 (the three self-attention masks of the
representation-learning stage: image-text contrastive, image-text matching, image-grounded text
generation). InstructBLIP (Dai et al., 2023, §2.2 and Figure 3) feeds the instruction to the
Q-Former too: instruction tokens join the queries' self-attention.

References:
- transformers' ``Blip2QFormerModel`` (transformers/models/blip_2/modeling_blip_2.py): our
  modules mirror its structure and parameter names, so its state dict loads strictly into ours
  and the outputs agree (tests, any mask of ours passed to it as a 4D mask);
- LAVIS (salesforce/LAVIS, lavis/models/blip2_models/{blip2_qformer.py, Qformer.py}) for the masks:
  ITC runs queries and text through the Q-Former *separately* (so neither sees the other); ITM
  concatenates them with an all-ones padding mask (bidirectional); ITG uses
  ``get_extended_attention_mask(..., is_decoder=True, has_query=True)`` — the "UniLM style" mask:
  query rows see only queries, text rows see every query and the text up to themselves.
  InstructBLIP (``blip2_*_instruct.py``) concatenates queries and instruction with an all-ones
  mask, like ITM.

Masks here are boolean ``[L, L]`` with ``L = num_query + num_text``, queries first; ``mask[i, j]``
is True when position i may attend to position j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require_positive
from ..resolution import check_int

__all__ = [
    "QFormerConfig",
    "BLIP2_QFORMER",
    "MaskKind",
    "MASK_KINDS",
    "itc_mask",
    "itm_mask",
    "itg_mask",
    "instruct_mask",
    "qformer_mask",
    "QFormerModel",
    "Blip2Connector",
    "shape_chain",
]


@dataclass(frozen=True)
class QFormerConfig:
    """BLIP-2's Q-Former (BERT-base) with the paper's sizes.

    Image features: 257 x 1024 is CLIP ViT-L/14 at 224 (256 patches + CLS), one of the paper's two
    frozen encoders; with EVA ViT-g/14 (the released checkpoints) ``encoder_hidden_size`` is 1408.
    """

    num_query_tokens: int = 32
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_frequency: int = 2  # cross-attention in blocks 0, 2, 4, ... ("every other block")
    encoder_hidden_size: int = 1024  # ViT-L/14 width (ViT-g/14: 1408)
    num_image_tokens: int = 257  # (224/14)² + CLS
    layer_norm_eps: float = 1e-12
    use_text_input: bool = True  # the text FFN (``intermediate`` / ``output``) exists
    llm_hidden_size: int = 2560  # OPT-2.7B: the ``language_projection`` target

    def __post_init__(self) -> None:
        require_positive(self, "num_query_tokens", "hidden_size", "num_hidden_layers", "num_attention_heads",
                         "intermediate_size", "cross_attention_frequency", "encoder_hidden_size", "num_image_tokens",
                         "llm_hidden_size")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                             f"num_attention_heads={self.num_attention_heads}")

    def to_hf_dict(self) -> dict:
        """Keyword arguments of transformers' ``Blip2QFormerConfig`` for the same model."""
        return dict(hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
                    num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
                    cross_attention_frequency=self.cross_attention_frequency,
                    encoder_hidden_size=self.encoder_hidden_size, layer_norm_eps=self.layer_norm_eps,
                    use_qformer_text_input=self.use_text_input, hidden_act="gelu",
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


BLIP2_QFORMER = QFormerConfig()

# ---------------------------------------------------------------------------------------------
# The self-attention masks (Figure 2 of the paper; LAVIS for the exact construction)
# ---------------------------------------------------------------------------------------------
MaskKind = Literal["itc", "itm", "itg", "instruct"]
MASK_KINDS: tuple[str, ...] = ("itc", "itm", "itg", "instruct")


def _check_lengths(num_query: int, num_text: int) -> None:
    check_int("num_query", num_query, 0)
    check_int("num_text", num_text, 0)


def _apply_padding(mask: torch.Tensor, num_query: int, text_padding: torch.Tensor | None) -> torch.Tensor:
    """Padded text positions are never attended to (they keep attending, as in BERT)."""
    if text_padding is None:
        return mask
    keep = torch.as_tensor(text_padding, dtype=torch.bool)
    if keep.shape != (mask.shape[0] - num_query,):
        raise ValueError(f"text_padding must have one entry per text token ({mask.shape[0] - num_query}), "
                         f"got shape {tuple(keep.shape)}")
    cols = torch.cat([torch.ones(num_query, dtype=torch.bool), keep])  # [L]
    return mask & cols[None, :]


def itc_mask(num_query: int, num_text: int, *, text_padding: torch.Tensor | None = None) -> torch.Tensor:
    """Image-text contrastive — uni-modal: queries see queries, text sees text, never across."""
    _check_lengths(num_query, num_text)
    n = num_query + num_text
    is_query = torch.arange(n) < num_query  # [L]
    mask = is_query[:, None] == is_query[None, :]  # [L, L] block diagonal
    return _apply_padding(mask, num_query, text_padding)


def itm_mask(num_query: int, num_text: int, *, text_padding: torch.Tensor | None = None) -> torch.Tensor:
    """Image-text matching — bi-directional: every position sees every position."""
    _check_lengths(num_query, num_text)
    n = num_query + num_text
    return _apply_padding(torch.ones(n, n, dtype=torch.bool), num_query, text_padding)


def itg_mask(num_query: int, num_text: int, *, text_padding: torch.Tensor | None = None) -> torch.Tensor:
    """Image-grounded text generation — multi-modal causal: queries see queries (not text); a text
    token sees all queries and the text up to and including itself."""
    _check_lengths(num_query, num_text)
    n = num_query + num_text
    idx = torch.arange(n)
    is_query = idx < num_query
    causal = idx[None, :] <= idx[:, None]  # [L, L] j <= i
    mask = torch.where(is_query[:, None], is_query[None, :], is_query[None, :] | causal)
    return _apply_padding(mask, num_query, text_padding)


def instruct_mask(num_query: int, num_instruction: int, *,
                  text_padding: torch.Tensor | None = None) -> torch.Tensor:
    """InstructBLIP's instruction-aware Q-Former: queries and instruction tokens see each other
    (one bi-directional self-attention), so the queries extract instruction-relevant features.
    Structurally ITM's mask; only the queries' outputs go on to the LLM."""
    return itm_mask(num_query, num_instruction, text_padding=text_padding)


def qformer_mask(kind: MaskKind, num_query: int, num_text: int, *,
                 text_padding: torch.Tensor | None = None) -> torch.Tensor:
    """One of :data:`MASK_KINDS` by name."""
    builders = {"itc": itc_mask, "itm": itm_mask, "itg": itg_mask, "instruct": instruct_mask}
    if kind not in builders:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")
    return builders[kind](num_query, num_text, text_padding=text_padding)


# ---------------------------------------------------------------------------------------------
# The Q-Former (names mirror transformers' Blip2QFormer* modules)
# ---------------------------------------------------------------------------------------------
class QFormerMultiHeadAttention(nn.Module):
    def __init__(self, config: QFormerConfig, is_cross_attention: bool = False):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        kv_in = config.encoder_hidden_size if is_cross_attention else config.hidden_size
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(kv_in, config.hidden_size)
        self.value = nn.Linear(kv_in, config.hidden_size)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = hidden.shape
        m, h, d = context.shape[1], self.num_heads, self.head_dim
        q = self.query(hidden).reshape(b, n, h, d).transpose(1, 2)  # [B, N, 768] -> [B, h, N, 64]
        k = self.key(context).reshape(b, m, h, d).transpose(1, 2)  # [B, M, Ckv] -> [B, h, M, 64]
        v = self.value(context).reshape(b, m, h, d).transpose(1, 2)  # [B, M, Ckv] -> [B, h, M, 64]
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # [B, h, N, M]
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # mask: [B or 1, 1, N, M]
        out = scores.softmax(dim=-1) @ v  # [B, h, N, 64]
        return out.transpose(1, 2).reshape(b, n, h * d)  # -> [B, N, 768]


class QFormerSelfOutput(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden) + residual)  # post-LN (BERT): [B, N, 768]


class QFormerAttention(nn.Module):
    def __init__(self, config: QFormerConfig, is_cross_attention: bool = False):
        super().__init__()
        self.attention = QFormerMultiHeadAttention(config, is_cross_attention)
        self.output = QFormerSelfOutput(config)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        ctx = hidden if context is None else context
        return self.output(self.attention(hidden, ctx, mask), hidden)  # [B, N, 768]


class QFormerIntermediate(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden))  # [B, N, 768] -> [B, N, 3072]


class QFormerOutput(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden) + residual)  # [B, N, 3072] -> [B, N, 768]


class QFormerLayer(nn.Module):
    """Self-attention over [queries; text] (shared); cross-attention for the queries only (every
    ``cross_attention_frequency``-th block); separate FFNs for queries and text."""

    def __init__(self, config: QFormerConfig, layer_idx: int):
        super().__init__()
        self.attention = QFormerAttention(config)
        self.has_cross_attention = layer_idx % config.cross_attention_frequency == 0
        if self.has_cross_attention:
            self.crossattention = QFormerAttention(config, is_cross_attention=True)
        if config.use_text_input:
            self.intermediate = QFormerIntermediate(config)
            self.output = QFormerOutput(config)
        self.intermediate_query = QFormerIntermediate(config)
        self.output_query = QFormerOutput(config)

    def forward(self, hidden: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None,
                query_length: int) -> torch.Tensor:
        hidden = self.attention(hidden, mask=mask)  # [B, Q+T, 768]
        queries = hidden[:, :query_length]  # [B, Q, 768]
        if self.has_cross_attention:
            queries = self.crossattention(queries, context=image)  # keys/values: [B, 257, 1024] -> [B, Q, 768]
        queries = self.output_query(self.intermediate_query(queries), queries)  # [B, Q, 768]
        if hidden.shape[1] == query_length:
            return queries
        if not hasattr(self, "intermediate"):
            raise ValueError("this Q-Former has no text FFN (use_text_input=False): pass queries only")
        text = hidden[:, query_length:]  # [B, T, 768]
        text = self.output(self.intermediate(text), text)  # [B, T, 768]
        return torch.cat([queries, text], dim=1)  # [B, Q+T, 768]


class QFormerEncoder(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.layer = nn.ModuleList([QFormerLayer(config, i) for i in range(config.num_hidden_layers)])


class QFormerModel(nn.Module):
    """transformers' ``Blip2QFormerModel``: LayerNorm on the input embeddings, then the layers.

    ``forward(embeds [B, Q+T, 768], image [B, 257, Ckv], mask [L, L] or [B, L, L] bool,
    query_length=Q)``; no mask = bi-directional.
    """

    def __init__(self, config: QFormerConfig = BLIP2_QFORMER):
        super().__init__()
        self.config = config
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = QFormerEncoder(config)

    def forward(self, embeds: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None = None,
                query_length: int | None = None) -> torch.Tensor:
        cfg = self.config
        if embeds.dim() != 3 or embeds.shape[-1] != cfg.hidden_size:
            raise ValueError(f"embeds must be [B, L, {cfg.hidden_size}], got {tuple(embeds.shape)}")
        if image.dim() != 3 or image.shape[-1] != cfg.encoder_hidden_size:
            raise ValueError(f"image features must be [B, N, {cfg.encoder_hidden_size}], got {tuple(image.shape)}")
        query_length = embeds.shape[1] if query_length is None else query_length
        n = embeds.shape[1]
        check_int("query_length", query_length, 0)
        if query_length > n:
            raise ValueError(f"query_length must be an integer in [0, {n}] (the queries lead the {n} embeddings), "
                             f"got {query_length!r}")
        if image.shape[0] != embeds.shape[0]:
            raise ValueError(f"embeds and image features need the same batch size, got {embeds.shape[0]} and "
                             f"{image.shape[0]}")
        if mask is not None:
            if mask.shape[-2:] != (n, n):
                raise ValueError(f"mask must be [{n}, {n}] (or batched), got {tuple(mask.shape)}")
            mask = mask.reshape(-1, 1, n, n).to(torch.bool)  # [L, L] -> [B or 1, 1, L, L] (heads broadcast)
        hidden = self.layernorm(embeds)  # [B, L, 768]
        for layer in self.encoder.layer:
            hidden = layer(hidden, image, mask, query_length)  # [B, L, 768]
        return hidden


class Blip2Connector(nn.Module):
    """``query_tokens`` → Q-Former over the image → ``language_projection`` into the LLM.

    Names as transformers' ``Blip2ForConditionalGeneration`` (query_tokens, qformer,
    language_projection). ``forward(image [B, 257, 1024]) -> [B, 32, llm_hidden_size]``;
    ``qformer_output`` gives the 32 x 768 before the projection.
    """

    def __init__(self, config: QFormerConfig = BLIP2_QFORMER):
        super().__init__()
        self.config = config
        self.query_tokens = nn.Parameter(0.02 * torch.randn(1, config.num_query_tokens, config.hidden_size))
        self.qformer = QFormerModel(config)
        self.language_projection = nn.Linear(config.hidden_size, config.llm_hidden_size)

    def qformer_output(self, image: torch.Tensor, text_embeds: torch.Tensor | None = None,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query_tokens.expand(image.shape[0], -1, -1)  # [1, 32, 768] -> [B, 32, 768]
        embeds = q if text_embeds is None else torch.cat([q, text_embeds], dim=1)  # [B, 32 (+T), 768]
        out = self.qformer(embeds, image, mask, query_length=q.shape[1])  # [B, 32 (+T), 768]
        return out[:, : q.shape[1]]  # the queries: [B, 32, 768]

    def forward(self, image: torch.Tensor, text_embeds: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.language_projection(self.qformer_output(image, text_embeds, mask))  # -> [B, 32, LLM]


def shape_chain(config: QFormerConfig = BLIP2_QFORMER) -> list[tuple[str, tuple[int, ...]]]:
    """The connector's stages and their shapes, from the config (for diagrams)."""
    return [
        ("224² image → frozen ViT-L/14", (config.num_image_tokens, config.encoder_hidden_size)),
        (f"{config.num_query_tokens} learned queries", (config.num_query_tokens, config.hidden_size)),
        (f"Q-Former: {config.num_hidden_layers} blocks, cross-attn every {config.cross_attention_frequency}nd",
         (config.num_query_tokens, config.hidden_size)),
        ("language_projection → OPT-2.7B", (config.num_query_tokens, config.llm_hidden_size)),
    ]
