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

from .config import Qwen2VLConfig
from .resolution import check_int

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
def vision_position_ids(grid_thw: torch.Tensor | Sequence[Sequence[int]], spatial_merge_size: int = 2) -> torch.Tensor:
    """(row, column) of every patch, in the processor's row order: ``LongTensor[N, 2]``.

    For each image/video (t, h, w): the h x w grid is visited 2x2 merge group by group (groups in
    raster order, the 4 patches of a group in raster order), repeated for each of the t temporal
    slices. Several grids are concatenated in order.
    """
    grid = torch.as_tensor(grid_thw)
    if grid.ndim == 1 and grid.numel() == 3:
        grid = grid[None]  # one (t, h, w)
    grid = _as_grid("grid_thw", grid, grid.device)  # [n, 3]
    m = spatial_merge_size
    out = []
    for t, h, w in grid.tolist():
        if min(t, h, w) < 1 or h % m or w % m:
            raise ValueError(f"grid (t={t}, h={h}, w={w}): t, h, w must be >= 1 and h, w multiples of "
                             f"spatial_merge_size={m}")
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
# The published token ids (Qwen2VLConfig's defaults, the tokenizer's special tokens).
IMAGE_TOKEN_ID = Qwen2VLConfig.image_token_id  # 151655 <|image_pad|>
VIDEO_TOKEN_ID = Qwen2VLConfig.video_token_id  # 151656 <|video_pad|>
VISION_START_TOKEN_ID = Qwen2VLConfig.vision_start_token_id  # 151652 <|vision_start|>
VISION_END_TOKEN_ID = Qwen2VLConfig.vision_end_token_id  # 151653 <|vision_end|>
PAD_TOKEN_ID = Qwen2VLConfig.bos_token_id  # 151643 <|endoftext|>, the tokenizer's padding token


def _as_grid(name: str, grid: object, device: torch.device) -> torch.Tensor:
    """``None`` / ``[N, 3]`` integers → ``LongTensor[N, 3]`` (values are checked by the caller)."""
    if grid is None:
        return torch.zeros(0, 3, dtype=torch.long, device=device)
    g = torch.as_tensor(grid, device=device)
    if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {g.dtype}")
    if g.ndim != 2 or g.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [num_items, 3] (t, h, w), got {list(g.shape)}")
    return g.long()


def mrope_position_ids(
    input_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    *,
    spatial_merge_size: int = 2,
    image_token_id: int = IMAGE_TOKEN_ID,
    video_token_id: int = VIDEO_TOKEN_ID,
    vision_start_token_id: int = VISION_START_TOKEN_ID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE (temporal, height, width) position ids of a batch: ``(LongTensor[3, B, L], LongTensor[B, 1])``.

    The rule (paper §2.1 and Figure 3; the release-time reference, transformers 4.45–4.5x
    ``Qwen2VLForConditionalGeneration.get_rope_index``):

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
    - text-only input (no grids): ids ``cumsum(mask) - 1`` on real tokens, deltas as above
      (0 without a mask).

    transformers 5.x ``Qwen2VLModel.get_rope_index`` advances by max(h', w') after a vision
    segment, ignoring a video's t: when t > max(h', w') (long, low-resolution videos) the tokens
    after the video get ids that overlap it. This function follows the paper and the release-time
    reference (max + 1); both behaviours are pinned in the tests and drawn in notebook 03.

    Vectorised — no Python loop over tokens, rows or segments: runs of pad tokens are found by
    comparing each place with its neighbour; every id is then a running sum along its row (one
    ``cumsum``) of per-place increments: +1 on t, h, w per text token, and inside a vision segment
    the steps of its raster order — (0, 0, +1) along a row of w' tokens, (0, +1, 1-w') at a new
    grid row, (+1, 1-h', 1-w') at a new temporal slice — then the jump to the segment's maximum
    + 1. The non-trivial increments (one per grid row, plus a few per row of the batch) are written
    with a single ``index_add_``. Rows with masked places *between* their real tokens are first
    compacted (a stable sort puts the real tokens first), as both references drop masked places.
    """
    input_ids = torch.as_tensor(input_ids).contiguous()
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must have shape [batch, seq_len], got {list(input_ids.shape)}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    check_int("spatial_merge_size", spatial_merge_size)
    B, L = input_ids.shape
    device = input_ids.device
    image_grid = _as_grid("image_grid_thw", image_grid_thw, device)  # [N_img, 3]
    video_grid = _as_grid("video_grid_thw", video_grid_thw, device)  # [N_vid, 3]
    grid = torch.cat([image_grid, video_grid])  # [N, 3] images first, then videos
    bad = (grid < 1).any(-1) | (grid[:, 1:] % spatial_merge_size != 0).any(-1)  # [N]
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        name, i = ("image_grid_thw", k) if k < len(image_grid) else ("video_grid_thw", k - len(image_grid))
        t, h, w = grid[k].tolist()
        raise ValueError(f"{name}[{i}] = (t={t}, h={h}, w={w}): t, h, w must be >= 1 and h, w multiples of "
                         f"spatial_merge_size={spatial_merge_size}")
    llm_grid = grid // spatial_merge_size  # [N, 3] -> t, h', w'
    llm_grid[:, 0] = grid[:, 0]
    real = None  # [B, L] bool; None: every place is a real token
    order = None  # [B, L] original column of each compacted place (rows with inner holes only)
    if attention_mask is not None:
        mask = torch.as_tensor(attention_mask, device=device)
        if tuple(mask.shape) != (B, L):
            raise ValueError(f"attention_mask must have the shape of input_ids {[B, L]}, got {list(mask.shape)}")
        if mask.numel() and mask.dtype != torch.bool:
            if mask.dtype.is_floating_point or mask.dtype.is_complex:
                valid = bool(((mask == 0) | (mask == 1)).all())
            else:
                lo, hi = torch.aminmax(mask)  # one pass
                valid = bool(lo >= 0) and bool(hi <= 1)
            if not valid:
                raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
        real = mask.bool().contiguous()  # [B, L]
        if L > 1:
            as_bytes = real.view(torch.uint8)  # [B, L] (no copy)
            blocks = real[:, 0] + (as_bytes[:, 1:] > as_bytes[:, :-1]).sum(-1)  # [B] blocks of real places
            if bool((blocks > 1).any()):  # masked places between real tokens: compact the rows to the left
                order = torch.argsort((~real).to(torch.uint8), dim=-1, stable=True)  # [B, L]
                input_ids, real = input_ids.gather(1, order), real.gather(1, order)
    if L == 0:
        if len(grid):
            raise ValueError(f"input_ids are empty (shape {[B, L]}) but {len(grid)} grid(s) were given")
        return torch.zeros(3, B, 0, dtype=torch.long, device=device), torch.zeros(B, 1, dtype=torch.long, device=device)

    # 1. runs of pad tokens: one per image / video, in batch order (runs never cross rows)
    is_image = input_ids == image_token_id  # [B, L]
    vision = is_image | (input_ids == video_token_id)  # [B, L] a pad token
    if real is not None:
        vision &= real
    continues = vision[:, 1:] & vision[:, :-1] & (is_image[:, 1:] == is_image[:, :-1])  # [B, L-1] same kind
    starts, ends = vision.clone(), vision.clone()  # [B, L]
    starts[:, 1:] &= ~continues
    ends[:, :-1] &= ~continues
    first = starts.view(-1).nonzero().squeeze(1)  # [R] flat place of each run's first token
    last = ends.view(-1).nonzero().squeeze(1)  # [R] and of its last token (nonzero allocates only [R])
    lengths = last - first + 1  # [R]
    run_is_image = is_image.view(-1).index_select(0, first)  # [R]
    image_rank = run_is_image.cumsum(0) - 1  # [R] k-th image run ...
    n_image_runs = int(image_rank[-1]) + 1 if len(first) else 0
    item = torch.where(run_is_image, image_rank,  # ... is image item k; the v-th video run is video item v
                       len(image_grid) + torch.arange(len(first), device=device) - image_rank - 1)  # [R]
    if (n_image_runs != len(image_grid) or len(first) - n_image_runs != len(video_grid)
            or not torch.equal(llm_grid.prod(-1).index_select(0, item), lengths)):
        _explain_runs(image_grid, video_grid, llm_grid.prod(-1), lengths, run_is_image,
                      [_where(int(i), L, order) for i in first], image_token_id, video_token_id)
    run_llm = llm_grid.index_select(0, item)  # [R, 3] (t, h', w') of each run
    flat_ids = input_ids.view(-1)  # [B*L]
    before = (first - 1).clamp(min=0)  # [R] the place before each run must hold <|vision_start|>
    ok = (first % L > 0) & (flat_ids.index_select(0, before) == vision_start_token_id)
    if real is not None:
        ok &= real.view(-1).index_select(0, before)
    if not bool(ok.all()):
        r = int((~ok).nonzero()[0, 0])
        name, i = ("image", int(item[r])) if run_is_image[r] else ("video", int(item[r]) - len(image_grid))
        raise ValueError(f"{name} {i}: its run of pad tokens (id {int(flat_ids[first[r]])}) at "
                         f"{_where(int(first[r]), L, order)} is not directly preceded by <|vision_start|> "
                         f"(id {vision_start_token_id})")

    # 2. ids as a running sum along each row of per-place increments (t, h, w):
    #    text token +1 on all rows, masked place 0, the first real token of a row 0;
    #    first token of a run +1 (a segment starts at the previous maximum + 1); inside a run
    #    (0, 0, +1) along a row of w' tokens, (0, +1, 1-w') at a new row of the grid, (+1, 1-h', 1-w')
    #    at a new temporal slice; the token after a run jumps from s + (t-1, h'-1, w'-1) to
    #    s + max(t, h', w') (the paper's rule: previous maximum + 1, a video's t included).
    inc = torch.empty(3, B, L, dtype=torch.long, device=device)  # [3, B, L] the base: text +1, pad (0, 0, +1)
    inc[:2] = (~vision if real is None else real & ~vision).unsqueeze(0)
    inc[2] = True if real is None else real.unsqueeze(0)
    t, h, w = run_llm.unbind(-1)  # [R] each
    rows = t * h  # [R] rows of w' tokens per run
    run_of_row = torch.repeat_interleave(torch.arange(len(rows), device=device), rows)  # [M]
    j = torch.arange(len(run_of_row), device=device) - (rows.cumsum(0) - rows).index_select(0, run_of_row)  # [M]
    h_j, w_j = h.index_select(0, run_of_row), w.index_select(0, run_of_row)  # [M], [M]
    new_slice, opens = j % h_j == 0, j == 0  # [M] the grid row opens a temporal slice / the run
    row_step = torch.stack([new_slice.long(), torch.where(new_slice & ~opens, 1 - h_j, 1),
                            torch.where(opens, 0, -w_j)])  # [3, M] added to the base (0, 0, +1)
    inside = last % L != L - 1  # [R] not the end of its row: the next place takes the jump
    jump = (run_llm.amax(-1, keepdim=True) - run_llm).T * inside  # [3, R]
    # the next id after each row (max id + 1): its text tokens + max(t, h', w') per run
    n_real = real.sum(-1) if real is not None else torch.full((B,), L, dtype=torch.long, device=device)  # [B]
    next_id = n_real.scatter_add(0, torch.div(first, L, rounding_mode="floor"), run_llm.amax(-1) - lengths)  # [B]
    row_start = torch.arange(B, device=device) * L  # [B] flat place of each row's column 0
    places = [first.index_select(0, run_of_row) + j * w_j, torch.where(inside, last + 1, last)]
    values = [row_step, jump]
    if real is None:
        places.append(row_start)
        values.append(row_start.new_full((3, B), -1))  # the first token of a row gets id 0
    else:  # after compaction a row's real tokens are contiguous: [first_real, first_real + n_real)
        first_real = real.view(torch.uint8).argmax(-1)  # [B] (0 for a row without real tokens)
        lead = (first_real > 0).long()  # [B] masked places before the real tokens: 1 from column 0 on,
        after = first_real + n_real  # [B] first masked place after them, where the running sum is
        trail = after < L  # next_id - 1 on all three rows (the jump after a run lands there too)
        places += [row_start, row_start + first_real, row_start + after.clamp(max=L - 1)]
        values += [lead.expand(3, B), (-1 - lead).expand(3, B),  # 0 at the first real token,
                   ((2 - next_id) * trail).expand(3, B)]  # and 1 again after the last one
    inc.view(3, B * L).index_add_(1, torch.cat(places), torch.cat(values, dim=1))  # one scatter for all
    deltas = (next_id - L).unsqueeze(-1)  # [B, 1] (max id + 1) - padded length
    return _restore(inc.cumsum_(-1), order), deltas  # [3, B, L] (in place: one large buffer less)


def _where(flat_index: int, L: int, order: torch.Tensor | None) -> str:
    """"row b, position p" of a flat place, in the caller's layout."""
    b, p = divmod(flat_index, L)
    return f"row {b}, position {int(order[b, p]) if order is not None else p}"


def _explain_runs(image_grid: torch.Tensor, video_grid: torch.Tensor, need: torch.Tensor, lengths: torch.Tensor,
                  run_is_image: torch.Tensor, places: list[str], image_token_id: int, video_token_id: int) -> None:
    """Raise the ValueError that says which image / video does not match its run of pad tokens."""
    offset = 0
    for name, grid, token_id, runs in (("image", image_grid, image_token_id, run_is_image),
                                       ("video", video_grid, video_token_id, ~run_is_image)):
        n_need = need[offset:offset + len(grid)]
        offset += len(grid)
        got = lengths[runs]
        if len(got) == len(n_need) and torch.equal(got, n_need):
            continue
        where = [p for p, r in zip(places, runs.tolist()) if r]
        shown = ", ".join(f"{n} at {p}" for n, p in zip(got.tolist()[:8], where))
        shown += ", ..." if len(got) > 8 else ""
        summary = (f"input_ids hold {int(got.sum())} {name} pad tokens (id {token_id}) in {len(got)} run(s)"
                   f"{' (' + shown + ')' if shown else ''}; {name}_grid_thw has {len(grid)} {name}(s) needing "
                   f"{int(n_need.sum())} tokens")
        if len(got) == len(n_need):
            i = int((got != n_need).nonzero()[0, 0])
            t, h, w = grid[i].tolist()
            raise ValueError(f"{name} {i}: grid (t={t}, h={h}, w={w}) needs t*h*w/merge^2 = {int(n_need[i])} pad "
                             f"tokens, its run holds {int(got[i])}. {summary}")
        raise ValueError(summary)
    raise AssertionError("unreachable: runs and grids were found to disagree")  # pragma: no cover


def _restore(position_ids: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """Compacted rows back to the caller's layout (``order[b, j]``: original column of place j)."""
    if order is None:
        return position_ids
    return torch.empty_like(position_ids).scatter_(2, order.expand_as(position_ids), position_ids)


TEXT_FILLER_ID = 872  # an ordinary word piece, for text segments given by length only


def segments_to_batch(
    rows: Sequence[Sequence[tuple[str, object]]],
    *,
    pad_side: str = "left",
    length: int | None = None,
    spatial_merge_size: int = 2,
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
                t, h, w = (int(v) for v in value)
                if t < 1 or h < 1 or w < 1 or h % spatial_merge_size or w % spatial_merge_size:
                    raise ValueError(f"row {r}: {kind} grid (t={t}, h={h}, w={w}) must be positive with h, w "
                                     f"multiples of spatial_merge_size={spatial_merge_size}")
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
