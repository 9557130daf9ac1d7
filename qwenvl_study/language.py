"""The language model: a Qwen2 decoder with M-RoPE, GQA, SwiGLU and a KV cache.

Paper §2.1: Qwen2-VL's LLM is Qwen2 (1.5B for the 2B model) whose rotary embedding is replaced
by M-RoPE (``rope.py``); everything else is the Qwen2 decoder: pre-norm RMSNorm, grouped-query
attention with biased q/k/v projections and an unbiased output projection, a SwiGLU MLP.

Reference: transformers/models/qwen2_vl/modeling_qwen2_vl.py — ``Qwen2VLRMSNorm``,
``Qwen2VLAttention``, ``Qwen2MLP``, ``Qwen2VLDecoderLayer``, ``Qwen2VLTextModel``. Module and
parameter names follow the published checkpoint (``model.layers.{i}.self_attn.q_proj`` …) so the
two can be read side by side and weights load by name.

2B shapes: hidden 1536, 12 query heads and 2 key/value heads of head_dim 128 (q 1536, k/v 256),
MLP 8960, 28 layers, vocab 151936.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionBackendChoice, attention, causal_mask
from .config import TextConfig
from .rope import apply_mrope, mrope_cos_sin

__all__ = ["RMSNorm", "Qwen2Attention", "Qwen2MLP", "Qwen2DecoderLayer", "Qwen2Model", "KVCache", "decoder_mask",
           "use_decode_layout", "to_column_major"]


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) * weight, computed in float32 (as the reference)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)  # [..., h]
        return self.weight * xf.to(dtype)

    def extra_repr(self) -> str:
        return f"({self.weight.shape[0]},), eps={self.variance_epsilon}"


class KVCache:
    """Keys and values of every layer, ``[B, Hkv, L, hd]``, kept so each new token costs one step.

    Buffers are pre-allocated and doubled when full (clear to read, no quadratic re-copying).
    ``length`` is the number of positions already cached; the model advances it after each forward.
    """

    def __init__(self, num_layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k, v [B, Hkv, n, hd]`` at positions [length, length + n); return all cached so far."""
        start, end = self.length, self.length + k.shape[2]
        buf_k, buf_v = self.keys[layer], self.values[layer]
        if buf_k is None or buf_k.shape[2] < end:
            capacity = max(end, 2 * (buf_k.shape[2] if buf_k is not None else 0), 16)
            new_k = k.new_empty(k.shape[0], k.shape[1], capacity, k.shape[3])  # [B, Hkv, capacity, hd]
            new_v = v.new_empty(v.shape[0], v.shape[1], capacity, v.shape[3])
            if buf_k is not None:
                new_k[:, :, :start], new_v[:, :, :start] = buf_k[:, :, :start], buf_v[:, :, :start]
            self.keys[layer], self.values[layer] = buf_k, buf_v = new_k, new_v
        buf_k[:, :, start:end], buf_v[:, :, start:end] = k, v
        return buf_k[:, :, :end], buf_v[:, :, :end]


def decoder_mask(attention_mask: torch.Tensor, query_length: int) -> torch.Tensor:
    """Boolean "may attend" mask ``[B, 1, q, k]`` for the last ``query_length`` of ``k`` positions.

    Causal, aligned to the end of the keys (what a KV cache needs), AND only real keys
    (``attention_mask [B, k]``: 1 real, 0 padding). A left-padded query may attend nothing; the
    attention returns zeros there (not NaN) and its output is never used.
    """
    keys = attention_mask.shape[1]
    causal = causal_mask(query_length, keys, device=attention_mask.device)  # [q, k]
    return causal[None, None] & attention_mask.bool()[:, None, None, :]  # [B, 1, q, k]


class Qwen2Attention(nn.Module):
    """GQA self-attention with M-RoPE: q/k/v Linear (bias) → rotate q, k → attend → o_proj (no bias)."""

    def __init__(self, config: TextConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        h = config.hidden_size
        self.q_proj = nn.Linear(h, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(h, self.num_kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, h, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None = None, backend: str = "auto", causal: bool = False) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # [B, L, 1536] -> [B, 12, L, 128]
        k = self.k_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)  # [B, L, 256] -> [B, 2, L, 128]
        v = self.v_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)  # [B, L, 256] -> [B, 2, L, 128]
        q, k = apply_mrope(q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # [B, 2, past + L, 128]
        out = attention(q, k, v, mask=mask, causal=causal, backend=backend)  # [B, 12, L, 128] (6 q heads per kv head)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))  # [B, L, 1536]


class Qwen2MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)), no biases."""

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # [B, L, 1536] -> [B, L, 8960] -> [B, L, 1536]


class Qwen2DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: TextConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = Qwen2Attention(config, layer_idx)
        self.mlp = Qwen2MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None = None, backend: str = "auto", causal: bool = False) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, backend, causal)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen2Model(AttentionBackendChoice, nn.Module):
    """Token embedding → decoder layers → final RMSNorm (``model.*`` in the published checkpoint).

    ``attn_backend`` ("auto", "eager", "sdpa"; settable later) is stored on the tower and passed to
    each layer per call, as in the vision tower (:class:`~qwenvl_study.attention.AttentionBackendChoice`).
    """

    def __init__(self, config: TextConfig, attn_backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.attn_backend = attn_backend
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Qwen2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor,
                cache: KVCache | None = None, output_hidden_states: bool = False
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``inputs_embeds [B, L, h]``, ``position_ids [3, B, L]`` (M-RoPE), ``attention_mask [B, past + L]``.

        Returns the final-normed hidden states ``[B, L, h]`` and, if asked, the input of every layer
        plus the final output (``num_layers + 1`` tensors, like transformers' ``hidden_states``).
        """
        c = self.config
        cos, sin = mrope_cos_sin(position_ids, c.head_dim, c.rope_theta, c.mrope_section)  # [B, L, hd] each
        cos, sin = cos.to(inputs_embeds.dtype), sin.to(inputs_embeds.dtype)
        if bool(attention_mask.all()):  # no padding: the causal flag alone (sdpa's fused causal path)
            mask, causal = None, inputs_embeds.shape[1] > 1
        else:
            mask, causal = decoder_mask(attention_mask, inputs_embeds.shape[1]), False  # [B, 1, L, past + L]
        x, hidden = inputs_embeds, []
        for layer in self.layers:
            if output_hidden_states:
                hidden.append(x)
            x = layer(x, cos, sin, mask, cache, self.attn_backend, causal)
        x = self.norm(x)
        if output_hidden_states:
            hidden.append(x)
        if cache is not None:
            cache.length += inputs_embeds.shape[1]
        return x, hidden


# -- decode fast path ---------------------------------------------------------------------------
def _wants_column_major(weight: torch.Tensor) -> bool:
    """A wide (out > in) fp32 matrix on the CPU, not already column-major."""
    return (weight.ndim == 2 and weight.device.type == "cpu" and weight.dtype == torch.float32
            and weight.shape[0] > weight.shape[1] and weight.stride() != (1, weight.shape[0]))


def to_column_major(weight: torch.Tensor) -> bool:
    """Store ``weight [out, in]`` column-major in place (same values, shape and name; strides ``(1, out)``)."""
    if not _wants_column_major(weight):
        return False
    weight.data = weight.data.t().contiguous().t()  # [out, in] seen through its [in, out] contiguous transpose
    return True


def use_decode_layout(module: nn.Module) -> int:
    """The decode-time weight layout, prepared once: wide fp32 CPU matrices stored column-major.

    At batch 1 each new token is one matrix-vector product per weight, so decoding is bound by how
    fast the weights stream from memory. ``F.linear(x, W)`` with ``W [out, in]`` row-major reaches
    ~17 GB/s on the CPU for the tall matrices (the tied ``[151936, 896]`` head, gate/up ``[4864, 896]``)
    against ~27-47 GB/s for the same ``W`` stored column-major (``W = W_t.t()``, ``W_t [in, out]``
    contiguous: BLAS then runs ``x @ W_t``); for ``out <= in`` (o/down projections) row-major is as
    fast or faster, so only ``out > in`` matrices move. bf16 kernels are slower column-major, so only
    fp32 moves. Values, shapes and parameter names stay; only strides change — the decoder's code,
    ``forward``, ``state_dict`` and training are untouched. Returns how many weights were re-laid.
    (Measured in ``benchmarks/bench_decode.py``; equality of tokens in ``tests/test_language.py``.)
    """
    return sum(to_column_major(p) for p in module.parameters())
