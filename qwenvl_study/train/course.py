"""The course model: the project's ``Qwen2VL`` at a tiny width with a trimmed vocabulary, and its batches.

Architecture (paper §2.1), unchanged at a small width: 2x14x14 tubes -> a 2D-RoPE ViT -> the 2x2
PatchMerger MLP -> a Qwen2 decoder with M-RoPE and GQA. Only sizes differ from Qwen2-VL-2B (see
``course_config``), and the vocabulary is trimmed (``vocab.py``): the model's token ids are *local*
ids, ``CourseVocab`` maps them to and from the real tokenizer's ids at the boundary. The model is a
``Qwen2VL`` subclass, so state-dict names are the published ones and transformers'
``Qwen2VLForConditionalGeneration`` loads the same weights (the loss / gradient parity tests).

Images enter as everywhere in the package: messages -> ``chat.prepare_inputs`` (which calls
``media.process_vision_info``; videos as lists of PIL frames) with a small pixel budget
(``CourseMedia``): the course model sees at most 12,544 pixels per image (16 merged tokens)
and 3,136 per video frame, which keeps a training step cheap.

Loss (``answer_loss``): next-token cross-entropy on the assistant's answers and their
``<|im_end|>`` only; system, user, vision pads and padding carry label -100 — transformers'
``ForCausalLMLoss`` (shift by one, ``ignore_index=-100``, mean over the supervised tokens).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..chat import build_prompt, expand_vision_pads
from ..config import MERGE_SIZE, Qwen2VLConfig, TextConfig, VisionConfig
from ..model import Qwen2VL
from .data import Sample, messages_for
from .vocab import CourseVocab

__all__ = ["CourseMedia", "COURSE_MEDIA", "course_config", "CourseQwen2VL", "Example", "encode_sample",
           "encode_messages", "collate", "answer_loss", "answer_labels", "answer_weights", "weighted_answer_loss",
           "box_digit_weights",
           "IGNORE"]

IGNORE = -100


# The LLM's rotary base. Qwen2-VL's 1e6 is sized for 32K-token contexts; with 16 frequency pairs per head and
# Qwen2-VL's section layout (t, h, w) = (4, 6, 6) the width axis gets the 6 *lowest* frequencies, which at
# 1e6 rotate 1.8e-4 .. 2.4e-6 rad per merged cell: columns would be all but indistinguishable. At 30 they
# rotate 0.12 .. 0.04 rad per cell (rows 0.43 .. 0.15) and a whole course chat (< 400 tokens) still fits.
COURSE_ROPE_THETA = 30.0


@dataclass(frozen=True)
class CourseMedia:
    """Pixel budgets of the course model (``min_pixels``/``max_pixels`` of the vision items)."""

    image_min_pixels: int = 56 * 56  # the published floor: 4 merged tokens
    image_max_pixels: int = 112 * 112  # <= 16 merged tokens per image
    video_min_pixels: int = 56 * 56
    video_max_pixels: int = 56 * 56  # 4 merged tokens per 2-frame tube

    def options(self, video: bool) -> dict[str, int]:
        if video:
            return {"min_pixels": self.video_min_pixels, "max_pixels": self.video_max_pixels}
        return {"min_pixels": self.image_min_pixels, "max_pixels": self.image_max_pixels}

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    # The pixel pipeline of the course model, in one place so that a variant (``ablations.py``:
    # fixed-size inputs, no 2x2 merge) can change it without touching the callers.
    @property
    def merge_size(self) -> int:
        """Patches per side of one LLM token (the ViT's ``spatial_merge_size``)."""
        return MERGE_SIZE

    def vision_inputs(self, messages: list[dict]) -> dict[str, torch.Tensor]:
        """Every image / video of ``messages`` through the package's pipeline (``process_vision_info``,
        then ``preprocess_image`` / ``preprocess_video`` at this budget): ``pixel_values`` [N, 1176] and
        ``image_grid_thw`` [n, 3], ``pixel_values_videos`` / ``video_grid_thw`` likewise (keys present
        only when there are images / videos)."""
        from ..media import process_vision_info
        from ..patching import preprocess_image, preprocess_video

        images, videos = process_vision_info(messages)
        out: dict[str, torch.Tensor] = {}
        if images:
            o = self.options(video=False)
            pv, grids = zip(*(preprocess_image(im, min_pixels=o["min_pixels"], max_pixels=o["max_pixels"])
                              for im in images))
            out["pixel_values"], out["image_grid_thw"] = torch.cat(pv), torch.cat(grids)
        if videos:
            o = self.options(video=True)
            pv, grids = zip(*(preprocess_video(v, min_pixels=o["min_pixels"], max_pixels=o["max_pixels"])
                              for v in videos))
            out["pixel_values_videos"], out["video_grid_thw"] = torch.cat(pv), torch.cat(grids)
        return out

    def expand_pads(self, prompt: str, vision: dict[str, torch.Tensor]) -> str:
        """One ``<|image_pad|>`` / ``<|video_pad|>`` per LLM token of each grid in ``vision``."""
        return expand_vision_pads(prompt, vision.get("image_grid_thw"), vision.get("video_grid_thw"),
                                  merge_size=self.merge_size)


COURSE_MEDIA = CourseMedia()


def course_config(vocab: CourseVocab, *, vision_width: int = 128, vision_depth: int = 4, text_width: int = 256,
                  text_layers: int = 4, text_heads: int = 8, kv_heads: int = 2, mlp: int = 768,
                  rope_theta: float = COURSE_ROPE_THETA) -> Qwen2VLConfig:
    """The tiny Qwen2-VL: ViT width 128 x 4 blocks (4 heads of 32: 8 row + 8 column rotary pairs),
    2x2 merger to 256, Qwen2 decoder 256 x 4 layers, GQA 8 query / 2 key-value heads of 32,
    mrope_section (4, 6, 6), SwiGLU 768, tied embeddings over the trimmed vocabulary.
    Special-token ids are the trimmed vocabulary's local ids."""
    head_dim = text_width // text_heads
    pairs = head_dim // 2
    t = pairs // 4  # the published split 16/24/24 of 64 pairs, scaled: (t, h, w) = (1/4, 3/8, 3/8)
    section = (t, (pairs - t) // 2, pairs - t - (pairs - t) // 2)
    return Qwen2VLConfig(
        vision=VisionConfig(depth=vision_depth, embed_dim=vision_width, num_heads=vision_width // 32,
                            hidden_size=text_width),
        text=TextConfig(vocab_size=vocab.size, hidden_size=text_width, intermediate_size=mlp,
                        num_hidden_layers=text_layers, num_attention_heads=text_heads, num_key_value_heads=kv_heads,
                        max_position_embeddings=4096, mrope_section=section, rope_theta=rope_theta),
        tie_word_embeddings=True,
        bos_token_id=vocab.special("<|endoftext|>"),
        eos_token_id=vocab.special("<|im_end|>"),
        vision_start_token_id=vocab.special("<|vision_start|>"),
        vision_end_token_id=vocab.special("<|vision_end|>"),
        vision_token_id=vocab.special("<|vision_pad|>"),
        image_token_id=vocab.special("<|image_pad|>"),
        video_token_id=vocab.special("<|video_pad|>"),
        name="qwenvl-study course model",
    )


class CourseQwen2VL(Qwen2VL):
    """``Qwen2VL`` over local ids, carrying its ``CourseVocab`` and ``CourseMedia`` (same parameters, same names)."""

    def __init__(self, config: Qwen2VLConfig, vocab: CourseVocab, media: CourseMedia = COURSE_MEDIA,
                 attn_backend: str = "auto") -> None:
        super().__init__(config, attn_backend=attn_backend)
        if config.text.vocab_size != vocab.size:
            raise ValueError(f"config vocab_size={config.text.vocab_size} != trimmed vocabulary size {vocab.size}")
        self.vocab = vocab
        self.media = media


@dataclass
class Example:
    """One encoded conversation: local ids [L], labels [L], and its pixels (image or video) if any."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None


def answer_labels(ids: torch.Tensor, vocab: CourseVocab, tokenizer: Any) -> torch.Tensor:
    """Labels for local ``ids [L]``: the tokens after each ``<|im_start|>assistant\\n`` up to and including
    the next ``<|im_end|>``; -100 everywhere else (system, user, vision pads)."""
    im_start, im_end = vocab.special("<|im_start|>"), vocab.special("<|im_end|>")
    assistant = vocab.local(tokenizer.convert_tokens_to_ids("assistant"))
    newline = vocab.local(tokenizer.encode("\n")[0])
    labels = torch.full_like(ids, IGNORE)
    L, k = ids.shape[0], 0
    inside = False
    while k < L:
        if not inside and k + 2 < L and ids[k] == im_start and ids[k + 1] == assistant and ids[k + 2] == newline:
            inside, k = True, k + 3
            continue
        if inside:
            labels[k] = ids[k]
            if ids[k] == im_end:
                inside = False
        k += 1
    return labels


def encode_messages(messages: list[dict], tokenizer: Any, vocab: CourseVocab, *, add_generation_prompt: bool,
                    media: CourseMedia = COURSE_MEDIA) -> Example:
    """Messages -> ``Example`` through the package's own pipeline (``media.vision_inputs``: ``process_vision_info``
    -> preprocess; ``build_prompt`` -> pads expanded -> real ids -> local ids). A trailing answer's ``"\\n"`` is dropped:
    the sequence ends at its ``<|im_end|>``."""
    out = media.vision_inputs(messages)
    prompt = build_prompt(messages, add_generation_prompt=add_generation_prompt)
    if not add_generation_prompt and prompt.endswith("<|im_end|>\n"):
        prompt = prompt[:-1]
    text = media.expand_pads(prompt, out)
    ids = vocab.to_local(tokenizer.encode(text))
    return Example(ids, answer_labels(ids, vocab, tokenizer), **out)


def encode_sample(sample: Sample, tokenizer: Any, vocab: CourseVocab, media: CourseMedia = COURSE_MEDIA) -> Example:
    """A training sample (question + answer) -> ``Example`` with its label mask."""
    if sample.media is None:  # stage 0: text only
        messages = [{"role": "user", "content": sample.question}, {"role": "assistant", "content": sample.answer}]
    else:
        messages = messages_for(sample, media_options=media.options(sample.is_video))
    return encode_messages(messages, tokenizer, vocab, add_generation_prompt=False, media=media)


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch: ``input_ids``/``attention_mask``/``labels`` [B, L] + the pixels in batch order."""
    L = max(e.input_ids.shape[0] for e in examples)
    B = len(examples)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    labels = torch.full((B, L), IGNORE, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for b, e in enumerate(examples):
        n = e.input_ids.shape[0]
        ids[b, :n], labels[b, :n], mask[b, :n] = e.input_ids, e.labels, 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    for key, grid_key in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
        parts = [(getattr(e, key), getattr(e, grid_key)) for e in examples if getattr(e, key) is not None]
        if parts:
            batch[key] = torch.cat([p for p, _ in parts])
            batch[grid_key] = torch.cat([g for _, g in parts])
    return batch


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy where ``labels != -100``: logits ``[B, L, V]`` predict ``labels[:, 1:]``.

    ``reduction="mean"`` is transformers' ``Qwen2VLForConditionalGeneration(labels=...)`` loss;
    ``"sum"`` lets a distributed run divide by the global count of supervised tokens."""
    shift_logits = logits[:, :-1].float().reshape(-1, logits.shape[-1])  # [B*(L-1), V]
    shift_labels = labels[:, 1:].reshape(-1)  # [B*(L-1)]
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE, reduction=reduction)


def answer_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-token weights [B, L-1] for the shifted labels ``labels[:, 1:]``: ``1 / len(answer)`` on each
    supervised token, 0 elsewhere, so that every answer (a run of supervised tokens) weighs 1 in total.

    A box answer is up to 25 tokens (up to 12 of them digits), a count answer 2: under the per-token mean the boxes'
    digits carry ~80% of a mixed batch's loss and the one-digit answers almost nothing."""
    sup = labels[:, 1:] != IGNORE  # [B, L-1]
    starts = sup & ~torch.cat([torch.zeros_like(sup[:, :1]), sup[:, :-1]], dim=1)  # first token of each answer
    run = torch.cumsum(starts.long(), dim=1) * sup  # [B, L-1]: answer number (1, 2, ...) or 0
    flat = (run + torch.arange(labels.shape[0])[:, None] * labels.shape[1]) * sup  # unique id per answer, 0 = none
    lengths = torch.bincount(flat.reshape(-1), minlength=int(flat.max()) + 1).to(torch.float32)
    lengths[0] = 1.0
    return sup.float() / lengths[flat]


def box_digit_weights(labels: torch.Tensor, digit_ids: torch.Tensor, box_start: int, box_end: int,
                      digit_weight: float) -> torch.Tensor:
    """Per-token factors [B, L-1] for the shifted labels: ``digit_weight`` on a digit inside
    ``<|box_start|> ... <|box_end|>`` (a coordinate), 1 elsewhere (a count's digit is its whole answer)."""
    t = labels[:, 1:]  # [B, L-1]
    inside = (torch.cumsum((t == box_start).long() - (t == box_end).long(), dim=1) > 0)  # after a box_start
    return torch.where(inside & torch.isin(t, digit_ids), digit_weight, 1.0)


def weighted_answer_loss(logits: torch.Tensor, labels: torch.Tensor, token_factor: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum over answers of each answer's weighted token loss, number of answers)``: divide the first by
    the (global) second and every answer weighs the same (``Stage.loss = "answer"``, an option of the recipe).

    ``token_factor [B, L-1]`` (optional) scales each target's weight inside its answer (``Stage.digit_weight``
    weighs a box's digits less: ``box_digit_weights``)."""
    w = answer_weights(labels)  # [B, L-1]
    n_answers = w.sum().round()
    if token_factor is not None:
        w = w * token_factor
    ce = answer_loss(logits, labels, reduction="none")  # [B*(L-1)], 0 where the label is -100
    return (ce * w.reshape(-1)).sum(), n_answers
