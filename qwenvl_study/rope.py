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

import math
from typing import Sequence

import numpy as np
import torch

from .config import SPECIAL_TOKENS
from .resolution import MERGE_SIZE, check_grid, check_grids, check_int

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
    "IMAGE_TOKEN_ID",
    "VIDEO_TOKEN_ID",
    "VISION_START_TOKEN_ID",
    "VISION_END_TOKEN_ID",
    "PAD_TOKEN_ID",
    "mrope_position_ids",
    "segments_to_batch",
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
def _check_head_dim(head_dim: int, multiple: int, what: str) -> None:
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < multiple or head_dim % multiple:
        raise ValueError(f"{what}: head_dim must be a positive multiple of {multiple}, got {head_dim!r}")


def _check_rotation(name: str, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, token_dim: int,
                    layout: str) -> None:
    """``x``'s token count (dim ``token_dim``) and head_dim must be those of ``cos`` / ``sin``."""
    if cos.shape != sin.shape or x.shape[-1] != cos.shape[-1] or x.shape[token_dim] != cos.shape[-2]:
        raise ValueError(f"{name}: q/k of shape {tuple(x.shape)} ({layout}) do not fit cos/sin of shapes "
                         f"{tuple(cos.shape)} / {tuple(sin.shape)} (same token count and head_dim needed)")


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``position_ids [..., L]`` → ``cos, sin [..., L, head_dim]`` (float32)."""
    _check_head_dim(head_dim, 2, "rope_cos_sin")
    angles = position_ids[..., None].float() * inverse_frequencies(head_dim, theta).to(position_ids.device)
    emb = torch.cat((angles, angles), dim=-1)  # [..., L, hd/2] -> [..., L, hd]
    return emb.cos(), emb.sin()


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 unsqueeze_dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``q, k [B, heads, L, hd]`` by ``cos, sin [B, L, hd]`` (broadcast over heads)."""
    if q.ndim == 4 and unsqueeze_dim == 1:
        for name, x in (("q", q), ("k", k)):
            _check_rotation(f"apply_rotary ({name})", x, cos, sin, -2, "[B, heads, L, hd]")
    cos, sin = cos.unsqueeze(unsqueeze_dim).to(q.dtype), sin.unsqueeze(unsqueeze_dim).to(q.dtype)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


# ---------------------------------------------------------------------------------------------
# Vision 2D-RoPE
# ---------------------------------------------------------------------------------------------
def vision_position_ids(grid_thw: torch.Tensor | Sequence[Sequence[int]],
                        spatial_merge_size: int = MERGE_SIZE) -> torch.Tensor:
    """(row, column) of every patch, in the processor's row order: ``LongTensor[N, 2]``.

    For each image/video (t, h, w): the h x w grid is visited 2x2 merge group by group (groups in
    raster order, the 4 patches of a group in raster order), repeated for each of the t temporal
    slices. Several grids are concatenated in order.
    """
    grid = torch.as_tensor(grid_thw)
    if grid.ndim == 1 and grid.numel() == 3:
        grid = grid[None]  # one (t, h, w)
    grid = check_grids(grid, spatial_merge_size)  # [n, 3]
    m = spatial_merge_size
    out = []
    for t, h, w in grid.tolist():
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
    _check_head_dim(head_dim, 4, "vision 2D-RoPE (half the frequencies per axis)")
    if position_ids.ndim != 2 or position_ids.shape[-1] != 2:
        raise ValueError(f"vision position ids must be [N, 2] (row, column), got shape {tuple(position_ids.shape)}")
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
    for name, x in (("q", q), ("k", k)):
        _check_rotation(f"apply_rotary_vision ({name})", x, cos, sin, 0, "[N, heads, hd]")
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
    _check_head_dim(head_dim, 2, "M-RoPE")
    if len(mrope_section) != 3 or sum(mrope_section) != head_dim // 2:
        raise ValueError(f"mrope_section {list(mrope_section)} must be 3 parts (t, h, w) summing to "
                         f"head_dim/2 = {head_dim // 2}")
    if position_ids.ndim == 2:
        position_ids = position_ids.unsqueeze(0).expand(3, -1, -1)  # [B, L] text ids -> [3, B, L]
    if position_ids.ndim != 3 or position_ids.shape[0] != 3:
        raise ValueError(f"M-RoPE position ids must be [3, B, L] (t, h, w rows) or [B, L], got shape "
                         f"{tuple(position_ids.shape)}")
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


# ---------------------------------------------------------------------------------------------
# M-RoPE position ids (paper §2.1, Figure 3)
# ---------------------------------------------------------------------------------------------
# The published token ids (their one home: config.SPECIAL_TOKENS).
IMAGE_TOKEN_ID = SPECIAL_TOKENS["<|image_pad|>"]  # 151655
VIDEO_TOKEN_ID = SPECIAL_TOKENS["<|video_pad|>"]  # 151656
VISION_START_TOKEN_ID = SPECIAL_TOKENS["<|vision_start|>"]  # 151652
VISION_END_TOKEN_ID = SPECIAL_TOKENS["<|vision_end|>"]  # 151653
PAD_TOKEN_ID = SPECIAL_TOKENS["<|endoftext|>"]  # 151643, the tokenizer's padding token


def mrope_position_ids(
    input_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    spatial_merge_size: int = MERGE_SIZE,
    image_token_id: int = IMAGE_TOKEN_ID,
    video_token_id: int = VIDEO_TOKEN_ID,
    vision_start_token_id: int = VISION_START_TOKEN_ID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE (temporal, height, width) position ids of a batch: ``(LongTensor[3, B, L], LongTensor[B, 1])``.

    The rule (paper §2.1 and Figure 3; the release-time reference, transformers 4.45–4.5x
    ``Qwen2VLForConditionalGeneration.get_rope_index``), one row at a time, segment by segment:

    - a **text** token takes the same id on the three rows (so text-only M-RoPE is 1D RoPE);
    - an **image or video** with grid (t, h, w) is a segment of t·h'·w' pad tokens
      (h' = h / spatial_merge_size, w' = w / spatial_merge_size), in raster order t → h' → w';
      starting at id s, the token at (i, j, k) gets (s + i, s + j, s + k): an image (t = 1) keeps
      its temporal id constant, a video's grows by one per temporal patch (2 frames);
    - **every segment starts at the previous segment's maximum id + 1**. After a vision segment
      that is s + max(t, h', w'): a video's temporal extent counts.

    Images and videos are taken in order from ``image_grid_thw`` / ``video_grid_thw`` across the
    whole batch, row by row; each must be one run of exactly t·h·w / merge² pad tokens directly
    after ``<|vision_start|>`` (what the processor emits). Masked places (``attention_mask == 0``)
    are skipped: ids count real tokens only, so left, right or inner padding does not change them.

    Conventions (release-time reference, pinned in tests/test_mrope_ids.py):

    - masked places get id **1** on all three rows (transformers 5.x puts 0 there);
    - ``deltas = max id + 1 - L`` with L the **padded** row length (-L for a row with no real
      token). During generation the next token's id on all three rows is
      ``cache_position + delta``, cache_position being its index in the padded row (left padding).
      transformers 5.x subtracts the unpadded length instead and adds the delta to
      ``attention_mask.cumsum(-1) - 1``: ``delta_5x = delta_ours + (L - n_real)``.

    transformers 5.x ``Qwen2VLModel.get_rope_index`` advances by max(h', w') after a vision
    segment, ignoring a video's t: when t > max(h', w') (long, low-resolution videos) the tokens
    after the video get ids that overlap it. This function follows the paper and the release-time
    reference (max + 1); both behaviours are pinned in the tests and drawn in notebook 03.

    A loop over the segments of each row, not over tokens: a text run's ids are one ``arange``, a
    vision segment's three raster rows are written through a ``[3, t, h', w']`` view. The work is
    numpy (tiny ops, no thread pool to start at any torch thread count); one tensor is made at the end.
    """
    tokens, real, grids, device = _mrope_inputs(input_ids, image_grid_thw, video_grid_thw, attention_mask,
                                                spatial_merge_size)
    B, L = tokens.shape
    m = spatial_merge_size
    ids = np.ones((3, B, L), dtype=np.int64)  # [3, B, L]; masked places keep 1
    deltas = np.zeros((B, 1), dtype=np.int64)  # [B, 1]
    kinds = (tokens == image_token_id) + 2 * (tokens == video_token_id)  # [B, L] 0 text, 1 image pad, 2 video pad
    used = {"image": 0, "video": 0}  # grids consumed so far, in batch order
    for b in range(B):
        cols = np.flatnonzero(real[b])  # [n] the real places of row b
        n, first = len(cols), (int(cols[0]) if len(cols) else 0)
        holes = n > 0 and cols[-1] + 1 - first != n  # masked places between real tokens
        row = kinds[b, cols] if holes else kinds[b, first:first + n]  # [n] the kind of each real token
        out = np.empty((3, n), dtype=np.int64) if holes else ids[:, b, first:first + n]  # [3, n] their ids (a view)
        cuts = [0, *(np.flatnonzero(row[1:] != row[:-1]) + 1).tolist(), n] if n else [0]  # segment bounds
        start = 0  # the id the next segment begins at: the previous segment's maximum + 1
        for lo, hi, k in zip(cuts[:-1], cuts[1:], row[cuts[:-1]].tolist()):
            if k == 0:  # a text run: ids start, start + 1, ... on t, h, w alike
                out[:, lo:hi] = np.arange(start, start + hi - lo)  # [n_text] -> [3, n_text]
                start += hi - lo
                continue
            name = "image" if k == 1 else "video"
            i, used[name] = used[name], used[name] + 1  # the i-th image / video of the batch
            if i >= len(grids[name]) or math.prod(grids[name][i]) // m**2 != hi - lo:
                _explain_runs(tokens, real, grids, m, image_token_id, video_token_id)
            if lo == 0 or tokens[b, cols[lo - 1]] != vision_start_token_id:
                raise ValueError(f"{name} {i}: its run of pad tokens (id {int(tokens[b, cols[lo]])}) at row {b}, position "
                                 f"{int(cols[lo])} is not directly preceded by <|vision_start|> "
                                 f"(id {vision_start_token_id})")
            t, h, w = grids[name][i]
            h, w = h // m, w // m  # merged rows and columns: h', w'
            seg = out[:, lo:hi].reshape(3, t, h, w)  # a view: token (i, j, k) of the raster t -> h' -> w'
            seg[0] = np.arange(start, start + t)[:, None, None]  # temporal: s + i (constant for an image)
            seg[1] = np.arange(start, start + h)[:, None]  # height: s + j
            seg[2] = np.arange(start, start + w)  # width: s + k
            start += max(t, h, w)  # the segment's maximum id + 1
        if holes:  # masked places between real tokens: scatter the ids back to their columns
            ids[:, b, cols] = out
        deltas[b] = start - L  # (max id + 1) - padded length
    if used["image"] != len(grids["image"]) or used["video"] != len(grids["video"]):
        _explain_runs(tokens, real, grids, m, image_token_id, video_token_id)  # grids left without a run
    return torch.from_numpy(ids).to(device), torch.from_numpy(deltas).to(device)


def _mrope_inputs(input_ids: object, image_grid_thw: object, video_grid_thw: object, attention_mask: object,
                  merge: int) -> tuple[np.ndarray, np.ndarray, dict[str, list[tuple[int, int, int]]], torch.device]:
    """Checked inputs of :func:`mrope_position_ids`, as numpy: ``tokens [B, L]``, ``real [B, L]`` (bool),
    the grids ``{"image": [(t, h, w), ...], "video": [...]}``, and the device of ``input_ids``."""
    input_ids = torch.as_tensor(input_ids)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must have shape [batch, seq_len], got {list(input_ids.shape)}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    check_int("spatial_merge_size", merge)
    grids = {"image": [tuple(g) for g in check_grids(image_grid_thw, merge, name="image_grid_thw").tolist()],
             "video": [tuple(g) for g in check_grids(video_grid_thw, merge, name="video_grid_thw").tolist()]}
    tokens = input_ids.cpu().numpy()  # [B, L]
    if attention_mask is None:
        return tokens, np.ones(tokens.shape, dtype=bool), grids, input_ids.device
    mask = torch.as_tensor(attention_mask).cpu().numpy()
    if mask.shape != tokens.shape:
        raise ValueError(f"attention_mask must have the shape of input_ids {list(tokens.shape)}, got {list(mask.shape)}")
    if mask.dtype != bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    return tokens, mask.astype(bool), grids, input_ids.device


def _explain_runs(tokens: np.ndarray, real: np.ndarray, grids: dict, merge: int, image_token_id: int,
                  video_token_id: int) -> None:
    """Raise the ValueError that says which image / video does not match its run of pad tokens."""
    for name, token_id in (("image", image_token_id), ("video", video_token_id)):
        need = [t * h * w // merge**2 for t, h, w in grids[name]]
        got, where = [], []  # length and place of every run of this pad token, in batch order
        for b in range(tokens.shape[0]):
            cols = np.flatnonzero(real[b])
            pad = np.concatenate([[False], tokens[b, cols] == token_id, [False]])
            edges = np.flatnonzero(pad[1:] != pad[:-1]).reshape(-1, 2)  # [runs, 2] (first, one past last)
            got += (edges[:, 1] - edges[:, 0]).tolist()
            where += [f"row {b}, position {int(cols[lo])}" for lo in edges[:, 0]]
        if got == need:
            continue
        shown = ", ".join(f"{n} at {p}" for n, p in zip(got[:8], where)) + (", ..." if len(got) > 8 else "")
        summary = (f"input_ids hold {sum(got)} {name} pad tokens (id {token_id}) in {len(got)} run(s)"
                   f"{' (' + shown + ')' if shown else ''}; {name}_grid_thw has {len(need)} {name}(s) needing "
                   f"{sum(need)} tokens")
        if len(got) == len(need):
            i = next(k for k, (g, n) in enumerate(zip(got, need)) if g != n)
            t, h, w = grids[name][i]
            raise ValueError(f"{name} {i}: grid (t={t}, h={h}, w={w}) needs t*h*w/merge^2 = {need[i]} pad "
                             f"tokens, its run holds {got[i]}. {summary}")
        raise ValueError(summary)
    raise AssertionError("unreachable: runs and grids were found to disagree")  # pragma: no cover


TEXT_FILLER_ID = 872  # an ordinary word piece, for text segments given by length only


def segments_to_batch(
    rows: Sequence[Sequence[tuple[str, object]]],
    *,
    pad_side: str = "left",
    length: int | None = None,
    spatial_merge_size: int = MERGE_SIZE,
) -> dict[str, torch.Tensor | None]:
    """A padded batch laid out as the processor would, from segment lists (for lessons, tests, benchmarks).

    Each row is a list of ``("text", n or [ids])``, ``("image", (t, h, w))`` or ``("video", (t, h, w))``;
    a vision item becomes ``<|vision_start|> <pad> × t·h·w/merge² <|vision_end|>``. Rows are padded
    with ``<|endoftext|>`` on ``pad_side`` to ``length`` (default: the longest row). Returns
    ``input_ids, attention_mask [B, L]`` and ``image_grid_thw, video_grid_thw [N, 3]`` (None if empty),
    the keyword arguments of ``mrope_position_ids``.
    """
    if pad_side not in ("left", "right"):
        raise ValueError(f"pad_side must be 'left' or 'right', got {pad_side!r}")
    m2 = spatial_merge_size**2
    grids: dict[str, list[list[int]]] = {"image": [], "video": []}
    pad_ids = {"image": IMAGE_TOKEN_ID, "video": VIDEO_TOKEN_ID}
    token_rows = []
    for r, row in enumerate(rows):
        tokens: list[int] = []
        for kind, value in row:
            if kind == "text":
                if isinstance(value, int) and value < 0:
                    raise ValueError(f"row {r}: a text segment needs a length >= 0, got {value}")
                tokens += [TEXT_FILLER_ID] * value if isinstance(value, int) else [int(v) for v in value]
            elif kind in grids:
                if len(value) != 3:
                    raise ValueError(f"row {r}: {kind} grid must be (t, h, w), got {value!r}")
                t, h, w = check_grid(value, spatial_merge_size, item=f"row {r}: {kind} grid")
                grids[kind].append([t, h, w])
                tokens += [VISION_START_TOKEN_ID] + [pad_ids[kind]] * (t * h * w // m2) + [VISION_END_TOKEN_ID]
            else:
                raise ValueError(f"row {r}: segment kind must be 'text', 'image' or 'video', got {kind!r}")
        token_rows.append(tokens)
    longest = max((len(t) for t in token_rows), default=0)
    length = longest if length is None else length
    if length < longest:
        raise ValueError(f"length={length} is shorter than the longest row ({longest} tokens)")
    input_ids = torch.full((len(token_rows), length), PAD_TOKEN_ID, dtype=torch.long)  # [B, L]
    attention_mask = torch.zeros(len(token_rows), length, dtype=torch.long)  # [B, L]
    for b, tokens in enumerate(token_rows):
        lo = length - len(tokens) if pad_side == "left" else 0
        input_ids[b, lo:lo + len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        attention_mask[b, lo:lo + len(tokens)] = 1
    as_grid = {k: (torch.tensor(v, dtype=torch.long) if v else None) for k, v in grids.items()}
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "image_grid_thw": as_grid["image"], "video_grid_thw": as_grid["video"]}
