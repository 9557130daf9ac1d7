"""Qwen2-VL: the vision encoder and the language model joined at the ``<|image_pad|>`` tokens.

Paper §2.1 (Figure 2): the ViT turns each image / video into merged tokens; the chat template
has left one ``<|image_pad|>`` (``<|video_pad|>``) per merged token; their embeddings are replaced
by the ViT's outputs, in order; M-RoPE ids (``rope.mrope_position_ids``) give every token its
(t, h, w) position; the decoder runs; ``lm_head`` (tied to the embedding in the 2B model) gives
logits. ``generate`` decodes with a KV cache, new tokens getting id ``cache_position + delta``.

Reference: transformers/models/qwen2_vl/modeling_qwen2_vl.py — ``Qwen2VLModel.forward``
(``get_placeholder_mask`` + ``masked_scatter``), ``Qwen2VLForConditionalGeneration``, and
``GenerationMixin.generate`` (greedy, temperature / top-k / top-p sampling, stop tokens, padding).
State-dict names are the published checkpoint's: ``visual.*``, ``model.*``, ``lm_head.weight``
(absent when tied).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import Qwen2VLConfig
from .language import KVCache, Qwen2Model, to_column_major, use_decode_layout
from .rope import mrope_position_ids
from .vision import VisionTransformer

__all__ = ["Qwen2VL", "Qwen2VLOutput", "sample_next_token", "filter_logits"]


@dataclass
class Qwen2VLOutput:
    logits: torch.Tensor  # [B, L, vocab]
    position_ids: torch.Tensor  # [3, B, L]
    deltas: torch.Tensor  # [B, 1]
    hidden_states: list[torch.Tensor] = field(default_factory=list)  # LLM: input of each layer + final output


def _check_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, vocab: int) -> torch.Tensor:
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.dtype != torch.long:
        got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be a LongTensor [batch, length], got {got}")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab):
        raise ValueError(f"input_ids must lie in [0, {vocab}) (vocab_size), got values in "
                         f"[{int(input_ids.min())}, {int(input_ids.max())}]")
    if attention_mask is None:
        return torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")
    return attention_mask.long()


class Qwen2VL(nn.Module):
    """The whole model. ``forward`` → logits ``[B, L, vocab]``; ``generate`` → new tokens ``[B, n]``."""

    decode_layout = True  # generate prepares the decode-time weight layout (prepare_decode); False: as loaded

    def __init__(self, config: Qwen2VLConfig, attn_backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.visual = VisionTransformer(config.vision, attn_backend=attn_backend)
        self.model = Qwen2Model(config.text, attn_backend=attn_backend)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.text.hidden_size, config.text.vocab_size, bias=False)

    # -- pieces -----------------------------------------------------------------------------
    @property
    def attn_backend(self) -> str:
        """The attention backend of both towers (stored on each, passed to their layers per call)."""
        return self.model.attn_backend

    @attn_backend.setter
    def attn_backend(self, backend: str) -> None:
        self.visual.attn_backend = self.model.attn_backend = backend

    @property
    def lm_head_weight(self) -> torch.Tensor:
        """``[vocab, h]``: the embedding matrix itself when tied (2B), else ``lm_head.weight``."""
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.config.tie_word_embeddings:  # through the module, so accelerate's offload hooks see it
            return self.lm_head(hidden)  # [B, L, h] -> [B, L, vocab]
        return F.linear(hidden, self.lm_head_weight)  # [B, L, h] -> [B, L, vocab]

    def prepare_decode(self) -> int:
        """The decode-time weight layout (``language.use_decode_layout``), prepared once: the LLM's wide
        fp32 CPU matrices and the head stored column-major, same values. ``generate`` calls it; the
        embedding moves only when it is the (tied) head. Returns how many weights were re-laid."""
        moved = sum(use_decode_layout(layer) for layer in self.model.layers)
        return moved + to_column_major(self.lm_head_weight)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
              image_grid_thw: torch.Tensor | None = None, pixel_values_videos: torch.Tensor | None = None,
              video_grid_thw: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with every ``<|image_pad|>`` / ``<|video_pad|>`` replaced, in order, by the
        ViT's merged tokens: ``[B, L]`` → ``[B, L, h]`` (several images / videos packed in one ViT call)."""
        embeds = self.model.embed_tokens(input_ids)  # [B, L] -> [B, L, h]
        for token_id, pixels, grid in ((self.config.image_token_id, pixel_values, image_grid_thw),
                                       (self.config.video_token_id, pixel_values_videos, video_grid_thw)):
            if pixels is None:
                continue
            grid = torch.as_tensor(grid, dtype=torch.long).reshape(-1, 3)
            features = self.visual(pixels.to(self.model.embed_tokens.weight.dtype), grid)  # [n_pads, h]
            slots = (input_ids == token_id)[..., None]  # [B, L, 1]
            if int(slots.sum()) != features.shape[0]:
                raise ValueError(f"input_ids hold {int(slots.sum())} pad tokens (id {token_id}) but the vision "
                                 f"encoder gave {features.shape[0]} merged tokens for grids {grid.tolist()}")
            embeds = embeds.masked_scatter(slots, features.to(embeds.dtype))
        return embeds

    def _check_media(self, input_ids: torch.Tensor, pixel_values, image_grid_thw, pixel_values_videos,
                     video_grid_thw) -> None:
        """Pixels and grids must come together, and pad tokens need pixels (counts: ``mrope_position_ids``)."""
        for kind, token_id, pixels, grid, name in (
                ("image", self.config.image_token_id, pixel_values, image_grid_thw, "pixel_values"),
                ("video", self.config.video_token_id, pixel_values_videos, video_grid_thw, "pixel_values_videos")):
            n_slots = int((input_ids == token_id).sum())
            if pixels is None and n_slots:
                raise ValueError(f"input_ids contain {n_slots} <|{kind}_pad|> tokens but no {name} were given")
            if (pixels is None) != (grid is None):
                raise ValueError(f"{name} and {kind}_grid_thw must be given together")

    def positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  image_grid_thw: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return mrope_position_ids(input_ids, image_grid_thw, video_grid_thw, attention_mask,
                                  spatial_merge_size=c.vision.spatial_merge_size, image_token_id=c.image_token_id,
                                  video_token_id=c.video_token_id, vision_start_token_id=c.vision_start_token_id)

    # -- forward ----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, image_grid_thw: torch.Tensor | None = None,
                pixel_values_videos: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None,
                *, output_hidden_states: bool = False) -> torch.Tensor | Qwen2VLOutput:
        """Logits ``[B, L, vocab]`` (values at padded places are not meaningful).

        ``output_hidden_states=True`` returns a :class:`Qwen2VLOutput` instead: the logits, the M-RoPE
        ids and deltas, and the LLM's hidden states (the input of each layer, then the final output).
        """
        attention_mask = _check_ids(input_ids, attention_mask, self.config.text.vocab_size)
        self._check_media(input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw)
        position_ids, deltas = self.positions(input_ids, attention_mask, image_grid_thw, video_grid_thw)
        embeds = self.embed(input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw)
        hidden, states = self.model(embeds, position_ids, attention_mask, output_hidden_states=output_hidden_states)
        logits = self.logits(hidden)  # [B, L, vocab]
        return Qwen2VLOutput(logits, position_ids, deltas, states) if output_hidden_states else logits

    # -- generation -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 pixel_values: torch.Tensor | None = None, image_grid_thw: torch.Tensor | None = None,
                 pixel_values_videos: torch.Tensor | None = None, video_grid_thw: torch.Tensor | None = None,
                 *, max_new_tokens: int = 32, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, eos_token_id: int | Sequence[int] | None = None,
                 pad_token_id: int | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None,
                 streamer: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """Decode up to ``max_new_tokens`` tokens; returns only the new tokens ``[B, n]``.

        Greedy by default; ``do_sample=True`` samples after temperature, top-k (0 = off) and top-p
        filtering (transformers' order and rules). A row stops at any ``eos_token_id`` (default: the
        published generation config's ``<|im_end|>`` and ``<|endoftext|>``) and is then filled with
        ``pad_token_id`` (default ``<|endoftext|>``); decoding ends when every row has stopped.
        Batches must be **left**-padded. With ``use_cache=False`` every step re-runs the whole
        sequence (same tokens, slower: the test of the cache). ``streamer(token [B])`` is called with
        each step's tokens as soon as they are chosen (``chat.TextStreamer`` prints text as it comes).
        The first call prepares the decode layout (:meth:`prepare_decode`) unless ``decode_layout`` is False.
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        if do_sample and not temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
        attention_mask = _check_ids(input_ids, attention_mask, self.config.text.vocab_size)
        if input_ids.shape[0] > 1 and bool((attention_mask[:, -1] == 0).any()):
            raise ValueError("generate needs left padding: some rows end with padding (attention_mask[:, -1] == 0)")
        self._check_media(input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw)
        if self.decode_layout:
            self.prepare_decode()
        stops = torch.tensor([self.config.eos_token_id, self.config.bos_token_id] if eos_token_id is None else
                             [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id),
                             dtype=torch.long, device=input_ids.device)
        pad = self.config.bos_token_id if pad_token_id is None else pad_token_id
        batch, length = input_ids.shape
        position_ids, deltas = self.positions(input_ids, attention_mask, image_grid_thw, video_grid_thw)
        embeds = self.embed(input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw)
        cache = KVCache(len(self.model.layers)) if use_cache else None
        ids, mask = input_ids, attention_mask
        new_tokens: list[torch.Tensor] = []
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        step_embeds, step_positions = embeds, position_ids
        for step in range(max_new_tokens):
            hidden, _ = self.model(step_embeds, step_positions, mask, cache)
            logits = self.logits(hidden[:, -1]).float()  # [B, vocab]
            token = sample_next_token(logits, do_sample=do_sample, temperature=temperature, top_p=top_p,
                                      top_k=top_k, generator=generator).to(input_ids.device)  # [B]
            token = torch.where(done, torch.full_like(token, pad), token)
            new_tokens.append(token)
            if streamer is not None:
                streamer(token)
            done |= torch.isin(token, stops)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            ids = torch.cat([ids, token[:, None]], dim=1)  # [B, L + step + 1]
            mask = torch.cat([mask, torch.ones_like(token)[:, None]], dim=1)
            token_embed = self.model.embed_tokens(token[:, None])  # [B, 1, h]
            if cache is not None:  # one new position: id = cache_position + delta on t, h, w
                pos = (length + step + deltas).view(1, batch, 1).expand(3, -1, -1)  # [3, B, 1]
                step_embeds, step_positions = token_embed, pos
            else:  # recompute everything: ids of the whole sequence from the rule itself
                embeds = torch.cat([embeds, token_embed], dim=1)
                step_positions, _ = self.positions(ids, mask, image_grid_thw, video_grid_thw)
                step_embeds = embeds
        if not new_tokens:
            return input_ids.new_zeros(batch, 0)
        return torch.stack(new_tokens, dim=1)  # [B, n]


def filter_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
                  ) -> torch.Tensor:
    """``logits [..., vocab]`` → scores after temperature → top-k (0 = off) → top-p, as transformers'
    warpers: removed tokens get -inf; top-p drops the least likely tokens whose cumulative probability
    stays within 1 - top_p, always keeping the most likely one."""
    scores = logits / temperature
    if top_k > 0:
        kth = torch.topk(scores, min(top_k, scores.shape[-1])).values[..., -1:]  # [..., 1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)  # ascending, as transformers
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= (1 - top_p)
        drop_sorted[..., -1:] = False  # always keep the most likely token
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def sample_next_token(logits: torch.Tensor, *, do_sample: bool = False, temperature: float = 1.0,
                      top_p: float = 1.0, top_k: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """``logits [B, vocab]`` → token ids ``[B]``: argmax, or a sample from :func:`filter_logits`."""
    if not do_sample:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p).softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
