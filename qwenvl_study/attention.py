"""Scaled dot-product attention behind one switch: eager (the teaching path), sdpa, varlen.

Paper §2.1 (Naive Dynamic Resolution): images of different sizes are *packed* into one sequence
("packed length controlled to limit GPU memory"), and each image attends only to itself. In the ViT the packing
unit is one temporal slice of one image or video: ``cu_seqlens`` (cumulative sequence lengths)
marks where each segment starts and ends, and attention is block-diagonal over them.
The language model (lesson 05) reuses :func:`attention` in its batched form: causal, padded, with
a KV cache and grouped-query attention (fewer key/value heads).

Reference: transformers/models/qwen2_vl/modeling_qwen2_vl.py (``VisionAttention``,
``eager_attention_forward``, ``repeat_kv``), transformers/vision_utils.py
(``get_vision_cu_seqlens``) and torch.nn.attention.varlen.varlen_attn.

Two layouts (``hd`` = head dim, ``Hq`` query heads, ``Hkv`` key/value heads, ``Hq % Hkv == 0``):

* **batched** (``cu_seqlens=None``): ``q [B, Hq, L, hd]``, ``k, v [B, Hkv, S, hd]`` →
  ``[B, Hq, L, hd]``. ``mask`` broadcasts to ``[B, Hq, L, S]`` and is either **boolean
  "may attend"** (True = query may look at that key) or an **additive float** mask (0 = keep,
  -inf / a large negative = drop) added to the scores. ``causal=True`` lets query i see keys
  ``j <= i + (S - L)`` (aligned to the *end* of the keys, which is what a KV cache needs: the L new
  queries are the last L positions); it combines (AND) with ``mask``.
* **packed** (``cu_seqlens`` given): ``q [N, Hq, hd]``, ``k, v [N, Hkv, hd]`` → ``[N, Hq, hd]``,
  several sequences concatenated along N; ``cu_seqlens = [0, n0, n0+n1, ..., N]`` (int32). Each
  token attends only inside its own segment (``causal=True``: and only to earlier ones). No
  ``mask`` in this layout: the segments *are* the mask.

Backends: ``eager`` = softmax(q·kᵀ·scale + mask)·v written out (softmax in float32, as the
reference); ``sdpa`` = torch's ``scaled_dot_product_attention`` (packed: one call per segment, or
one batched call when all segments have the same length — cheaper than one call with an
N x N block-diagonal mask, see benchmarks/bench_vision.py); ``varlen`` = one kernel over the packed
sequence without padding or mask (CUDA + fp16/bf16 only: flash-attn's ``flash_attn_varlen_func``
when installed, else ``torch.nn.attention.varlen.varlen_attn``). ``auto`` = varlen for packed
input where it can run, else sdpa (batched input: sdpa, which picks a fused kernel itself on CUDA).
A query row that may attend to no key at all returns zeros in eager and sdpa.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

from .resolution import check_grids

__all__ = [
    "BACKENDS",
    "AttentionBackendChoice",
    "Backend",
    "attention",
    "attention_weights",
    "backend_unavailable_reason",
    "available_backends",
    "resolve_backend",
    "cu_seqlens_from_lengths",
    "cu_seqlens_from_grid",
    "segment_lengths",
    "block_diagonal_mask",
    "causal_mask",
    "repeat_kv",
    "score_bytes",
]

Backend = Literal["auto", "eager", "sdpa", "varlen"]
BACKENDS: tuple[str, ...] = ("eager", "sdpa", "varlen")


# ---------------------------------------------------------------------------------------------
# Segments: cu_seqlens and the masks they stand for
# ---------------------------------------------------------------------------------------------
def cu_seqlens_from_lengths(lengths: Sequence[int] | torch.Tensor, device=None) -> torch.Tensor:
    """Segment lengths ``[n]`` → ``cu_seqlens [n + 1]`` int32: ``[0, l0, l0 + l1, ...]``."""
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=device).reshape(-1)
    if (lengths < 1).any():
        raise ValueError(f"segment lengths must be >= 1, got {lengths.tolist()}")
    return F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0), value=0)  # [n] -> [n + 1]


def cu_seqlens_from_grid(grid_thw: torch.Tensor | Sequence[Sequence[int]]) -> torch.Tensor:
    """``grid_thw [n, 3]`` → ``cu_seqlens`` int32 with **one segment per temporal slice**.

    As the reference (``repeat_interleave(h * w, t)``): an image (t = 1) is one segment of h*w
    patches; a video of t temporal slices (2 frames each) is t segments of h*w — inside the ViT a
    slice never attends to another slice; time mixes only inside a 2-frame tube (the Conv3d) and,
    later, in the LLM.
    """
    grid = check_grids(grid_thw, merge_size=1)  # [n, 3]; t, h, w >= 1
    lengths = torch.repeat_interleave(grid[:, 1] * grid[:, 2], grid[:, 0])  # [n] -> [sum(t)]
    return cu_seqlens_from_lengths(lengths, device=grid.device)


def segment_lengths(cu_seqlens: torch.Tensor) -> list[int]:
    """``cu_seqlens [n + 1]`` → the n segment lengths (python ints)."""
    cu_seqlens = torch.as_tensor(cu_seqlens)
    if cu_seqlens.ndim != 1 or len(cu_seqlens) < 2 or int(cu_seqlens[0]) != 0:
        raise ValueError(f"cu_seqlens must be [0, l0, l0 + l1, ...] (1D, starting at 0, at least one segment), "
                         f"got {cu_seqlens.tolist()}")
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()  # [n]
    if min(lengths) < 1:
        raise ValueError(f"cu_seqlens {cu_seqlens.tolist()} must be strictly increasing (segments of >= 1 token)")
    return lengths


def block_diagonal_mask(cu_seqlens: torch.Tensor, device=None) -> torch.Tensor:
    """``cu_seqlens`` → boolean "may attend" mask ``[N, N]``: True where query and key share a segment."""
    lengths = torch.as_tensor(segment_lengths(cu_seqlens), device=device)
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)  # [N] segment id
    return segment[:, None] == segment[None, :]  # [N, 1] == [1, N] -> [N, N]


def causal_mask(query_len: int, key_len: int | None = None, device=None) -> torch.Tensor:
    """Boolean ``[L, S]``: query i may attend key j iff ``j <= i + (S - L)`` (aligned to the end)."""
    key_len = query_len if key_len is None else key_len
    if query_len < 0 or key_len < query_len:
        raise ValueError(f"causal_mask: need 0 <= query_len <= key_len, got query_len={query_len}, key_len={key_len}")
    i = torch.arange(query_len, device=device)[:, None]
    j = torch.arange(key_len, device=device)[None, :]
    return j <= i + (key_len - query_len)  # [L, 1] vs [1, S] -> [L, S]


def score_bytes(lengths: Sequence[int], heads: int, *, dense: bool, element_bytes: int = 4) -> int:
    """Bytes the eager math materialises for one packed attention call over segments ``lengths``.

    ``dense``: one N x N problem — a bool mask (N² B) plus two fp32 score buffers (scores,
    probabilities: 2·H·N²·4 B). Per segment: two buffers for the largest segment only
    (2·H·max(n)²·4 B). Flash / varlen kernels form neither (only the ``[N, H, hd]`` output).
    """
    if not lengths or min(lengths) < 1:
        raise ValueError(f"score_bytes: need at least one segment, each of >= 1 token, got {list(lengths)}")
    n = sum(lengths)
    if dense:
        return n * n + 2 * heads * n * n * element_bytes
    return 2 * heads * max(lengths) ** 2 * element_bytes


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """GQA: ``[B, Hkv, S, hd]`` → ``[B, Hkv * n_rep, S, hd]`` (each kv head serves n_rep query heads)."""
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


# ---------------------------------------------------------------------------------------------
# Backends: which can run here, and why not
# ---------------------------------------------------------------------------------------------
def _flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def _torch_varlen():
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def backend_unavailable_reason(backend: str, device: torch.device | str = "cpu",
                               dtype: torch.dtype = torch.float32) -> str | None:
    """None if ``backend`` can run for tensors on ``device`` of ``dtype``; else the reason it cannot."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {('auto',) + BACKENDS}")
    if backend in ("eager", "sdpa"):
        return None
    device = torch.device(device)
    if device.type != "cuda":
        return f"varlen needs a CUDA device (tensors are on {device.type})"
    if not torch.cuda.is_available():
        return "varlen needs CUDA, and torch.cuda.is_available() is False"
    if dtype not in (torch.float16, torch.bfloat16):
        return f"varlen (flash attention kernels) needs float16 or bfloat16, got {dtype}"
    if not _flash_attn_installed() and _torch_varlen() is None:
        return (f"varlen needs flash-attn (pip install flash-attn) or torch.nn.attention.varlen "
                f"(torch >= 2.9); this torch {torch.__version__} has neither")
    return None


def available_backends(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, str | None]:
    """Every backend → None (available) or the reason it is not, for this device and dtype."""
    return {b: backend_unavailable_reason(b, device, dtype) for b in BACKENDS}


def resolve_backend(backend: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> str:
    """``auto`` → varlen where it can run, else sdpa. A forced backend that cannot run raises ValueError."""
    if backend == "auto":
        return "varlen" if backend_unavailable_reason("varlen", device, dtype) is None else "sdpa"
    reason = backend_unavailable_reason(backend, device, dtype)
    if reason is not None:
        raise ValueError(f"attention backend {backend!r} is not available: {reason}")
    return backend


class AttentionBackendChoice:
    """The one way a tower (the ViT, the decoder) picks its attention backend: its ``attn_backend``
    attribute ("auto", "eager", "sdpa", "varlen"), checked when set, read by the tower's ``forward``
    and passed down to every attention call of its layers (``Qwen2VL.attn_backend`` sets both towers)."""

    @property
    def attn_backend(self) -> str:
        return self._attn_backend

    @attn_backend.setter
    def attn_backend(self, backend: str) -> None:
        if backend != "auto" and backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; choose one of {('auto',) + BACKENDS}")
        self._attn_backend = backend


# ---------------------------------------------------------------------------------------------
# The one entry point
# ---------------------------------------------------------------------------------------------
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "auto",
              mask: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
              causal: bool = False, scale: float | None = None, enable_gqa: bool | None = None) -> torch.Tensor:
    """softmax(q·kᵀ·scale + mask)·v. Batched ``q [B, Hq, L, hd]`` → ``[B, Hq, L, hd]``, or packed
    ``q [N, Hq, hd]`` + ``cu_seqlens`` → ``[N, Hq, hd]`` (see the module docstring for the layouts,
    the mask convention and the backends). GQA: k, v may have fewer heads (Hq % Hkv == 0); it is
    read from the shapes — ``enable_gqa=False`` insists on equal head counts (as torch's sdpa).
    ``scale`` defaults to hd ** -0.5."""
    packed = cu_seqlens is not None
    want = 3 if packed else 4
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != want:
            layout = "[N, heads, hd] with cu_seqlens" if packed else "[B, heads, L, hd]"
            raise ValueError(f"attention: {name} has shape {tuple(t.shape)}; expected {layout}")
    hq, hkv = q.shape[1], k.shape[1]
    if enable_gqa is False and hq != hkv:
        raise ValueError(f"attention: q has {hq} heads and k/v {hkv}; pass enable_gqa=True (or None) for GQA")
    if hq % hkv or k.shape != v.shape:
        raise ValueError(f"attention: q has {hq} heads, k {tuple(k.shape)} and v {tuple(v.shape)}; need equal k/v "
                         f"shapes and query heads a multiple of key/value heads")
    if q.shape[-1] != k.shape[-1] or q.shape[0] != k.shape[0]:
        raise ValueError(f"attention: q {tuple(q.shape)} and k {tuple(k.shape)} need the same head_dim and "
                         f"{'token count' if packed else 'batch size'}")
    if mask is not None and not packed:
        try:
            torch.broadcast_shapes(mask.shape, (q.shape[0], hq, q.shape[2], k.shape[2]))
        except RuntimeError:
            raise ValueError(f"attention: mask of shape {tuple(mask.shape)} does not broadcast to [B, Hq, L, S] = "
                             f"{[q.shape[0], hq, q.shape[2], k.shape[2]]}") from None
    if packed and mask is not None:
        raise ValueError("attention: pass either cu_seqlens (packed segments) or mask, not both")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if backend == "auto" and not packed:
        backend = "sdpa"  # batched (padded / masked): torch's sdpa picks its own fused kernel on CUDA
    backend = resolve_backend(backend, q.device, q.dtype)

    if backend == "varlen":
        return _varlen(q, k, v, mask=mask, cu_seqlens=cu_seqlens, causal=causal, scale=scale)
    if not packed:
        run = _eager if backend == "eager" else _sdpa
        return run(q, k, v, mask=mask, causal=causal, scale=scale)
    return _packed(q, k, v, cu_seqlens, backend=backend, causal=causal, scale=scale)


def attention_weights(q: torch.Tensor, k: torch.Tensor, *, mask: torch.Tensor | None = None,
                      causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """The eager path's probabilities ``[B, Hq, L, S]``: softmax(q·kᵀ·scale + mask), float32 softmax."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    k = repeat_kv(k, q.shape[1] // k.shape[1])  # [B, Hkv, S, hd] -> [B, Hq, S, hd]
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # [B, Hq, L, hd] @ [B, Hq, hd, S] -> [B, Hq, L, S]
    allowed = _combine(mask, causal, q.shape[-2], k.shape[-2], q.device)
    if allowed is not None and allowed.dtype == torch.bool:
        scores.masked_fill_(~allowed, float("-inf"))  # in place: one L x S buffer for the scores
    elif allowed is not None:
        scores = scores + allowed  # additive float mask (it may broadcast the scores to a larger shape)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)  # [B, Hq, L, S]
    if allowed is not None and allowed.dtype == torch.bool:
        no_key = ~allowed.any(-1, keepdim=True)  # [..., L, 1]: rows that may attend nothing
        if no_key.any():
            weights = weights.masked_fill(no_key, 0.0)  # zeros, not NaN (as sdpa)
    return weights


def _combine(mask: torch.Tensor | None, causal: bool, query_len: int, key_len: int, device) -> torch.Tensor | None:
    """``mask`` AND the causal mask (a float mask gets -inf where causal forbids)."""
    if not causal:
        return mask
    cm = causal_mask(query_len, key_len, device=device)  # [L, S]
    if mask is None:
        return cm
    if mask.dtype == torch.bool:
        return mask & cm
    return mask.masked_fill(~cm, float("-inf"))


def _eager(q, k, v, *, mask, causal, scale):
    weights = attention_weights(q, k, mask=mask, causal=causal, scale=scale)  # [B, Hq, L, S]
    v = repeat_kv(v, q.shape[1] // v.shape[1])  # [B, Hkv, S, hd] -> [B, Hq, S, hd]
    return torch.matmul(weights, v)  # [B, Hq, L, S] @ [B, Hq, S, hd] -> [B, Hq, L, hd]


_SDPA_HAS_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)  # enable_gqa= in sdpa


def _sdpa(q, k, v, *, mask, causal, scale):
    gqa = q.shape[1] != k.shape[1]
    if gqa and not _SDPA_HAS_GQA:
        k, v = repeat_kv(k, q.shape[1] // k.shape[1]), repeat_kv(v, q.shape[1] // v.shape[1])
        gqa = False
    kwargs = {"enable_gqa": True} if gqa else {}
    if causal and mask is None and q.shape[-2] == k.shape[-2]:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, **kwargs)
    mask = _combine(mask, causal, q.shape[-2], k.shape[-2], q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, **kwargs)


def _packed(q, k, v, cu_seqlens, *, backend, causal, scale):
    """Packed ``[N, H, hd]``: attend inside each segment only (eager and sdpa)."""
    lengths = segment_lengths(cu_seqlens)
    if sum(lengths) != q.shape[0] or cu_seqlens[0] != 0:
        raise ValueError(f"cu_seqlens {cu_seqlens.tolist()} does not cover the {q.shape[0]} packed tokens")
    if backend == "eager":
        # the teaching picture: one N x N score matrix; the block-diagonal mask keeps each segment to itself
        qb, kb, vb = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # [N, H, hd] -> [1, H, N, hd]
        mask = block_diagonal_mask(cu_seqlens, device=q.device)  # [N, N]
        out = _eager(qb, kb, vb, mask=mask, causal=causal, scale=scale)  # [1, H, N, hd]
        return out.squeeze(0).transpose(0, 1)  # [1, H, N, hd] -> [N, H, hd]
    if len(set(lengths)) == 1:
        # equal segments (one image; the t slices of a video): a batch of n segments, no mask at all
        n, l = len(lengths), lengths[0]
        qs, ks, vs = (t.unflatten(0, (n, l)).transpose(1, 2) for t in (q, k, v))  # [N, H, hd] -> [n, H, l, hd]
        out = _sdpa(qs, ks, vs, mask=None, causal=causal, scale=scale)  # [n, H, l, hd]
        return out.transpose(1, 2).reshape(q.shape)  # [n, H, l, hd] -> [N, H, hd]
    # segments of different sizes: one call each, written into one output (memory O(max segment), not O(N²))
    out = q.new_empty(q.shape)  # [N, Hq, hd]
    bounds = cu_seqlens.tolist()
    for a, z in zip(bounds[:-1], bounds[1:]):
        seg = [t[a:z].transpose(0, 1).unsqueeze(0) for t in (q, k, v)]  # [l, H, hd] -> [1, H, l, hd]
        out[a:z] = _sdpa(*seg, mask=None, causal=causal, scale=scale)[0].transpose(0, 1)  # -> [l, H, hd]
    return out


def _varlen(q, k, v, *, mask, cu_seqlens, causal, scale):
    """One flash kernel over the packed sequence (CUDA, fp16/bf16). Batched input is packed first."""
    if mask is not None:
        raise ValueError("attention backend 'varlen' takes no mask (use cu_seqlens / causal, or backend='sdpa')")
    batched = cu_seqlens is None
    if batched:
        b, h, L, d = q.shape
        s = k.shape[2]
        cu_q = torch.arange(0, (b + 1) * L, L, device=q.device, dtype=torch.int32)
        cu_k = torch.arange(0, (b + 1) * s, s, device=q.device, dtype=torch.int32)
        q = q.transpose(1, 2).reshape(b * L, h, d)  # [B, H, L, hd] -> [B*L, H, hd]
        k = k.transpose(1, 2).reshape(b * s, k.shape[1], d)
        v = v.transpose(1, 2).reshape(b * s, v.shape[1], d)
        max_q, max_k = L, s
    else:
        cu_q = cu_k = cu_seqlens.to(device=q.device, dtype=torch.int32)
        max_q = max_k = max(segment_lengths(cu_seqlens))
    if _flash_attn_installed():
        from flash_attn import flash_attn_varlen_func

        out = flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale=scale, causal=causal)
    else:
        varlen_attn = _torch_varlen()
        params = inspect.signature(varlen_attn).parameters
        kwargs = {"scale": scale}
        if causal:  # bottom-right aligned, as flash attention
            kwargs.update({"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True})
        if q.shape[1] != k.shape[1]:
            if "enable_gqa" in params:
                kwargs["enable_gqa"] = True
            else:
                n_rep = q.shape[1] // k.shape[1]
                k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
        out = varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **kwargs)  # [N, Hq, hd]
    if batched:
        return out.view(b, L, h, d).transpose(1, 2)  # [B*L, H, hd] -> [B, H, L, hd]
    return out
