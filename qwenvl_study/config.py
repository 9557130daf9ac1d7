"""Configs of Qwen2-VL: the vision tower, the language model, and the published presets.

Paper: "Qwen2-VL: Enhancing Vision-Language Model's Perception of the World at Any Resolution",
§2.1 (model architecture) and Table 1 (model sizes: a "675M" ViT for every size — 665M / 676M / 699M
measured, since the merger's last Linear outputs the LLM width — then Qwen2 LLMs of 1.5B / 7.6B / 72B).
Reference: transformers/models/qwen2_vl/configuration_qwen2_vl.py (5.x nested ``text_config`` /
``vision_config``) and the published ``config.json`` of Qwen/Qwen2-VL-*-Instruct (4.x flat layout:
LLM keys at the top level, ``vision_config`` with ``in_chans``/``embed_dim``, ``rope_scaling`` with
``mrope_section``).

Flat, frozen dataclasses (nanoVLM style): vary a preset with ``dataclasses.replace``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

__all__ = [
    "SPECIAL_TOKENS",
    "PATCH_SIZE",
    "MERGE_SIZE",
    "TEMPORAL_PATCH_SIZE",
    "VisionConfig",
    "TextConfig",
    "Qwen2VLConfig",
    "QWEN2_VL_2B",
    "QWEN2_VL_7B",
    "QWEN2_VL_72B",
    "PRESETS",
    "ParameterCount",
    "load_config",
    "vision_config_from_hf",
    "count_parameters",
    "model_structure",
    "QWEN_VL_VS_QWEN2_VL",
    "format_table",
    "tiny_config",
    "require_positive",
    "require_positive_numbers",
    "require_vision_heads",
]

# The published numbers every module uses, stated once here.
# Qwen2-VL-Instruct's special tokens (tokenizer_config.json ``added_tokens_decoder``).
SPECIAL_TOKENS: dict[str, int] = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|object_ref_start|>": 151646,
    "<|object_ref_end|>": 151647, "<|box_start|>": 151648, "<|box_end|>": 151649, "<|quad_start|>": 151650,
    "<|quad_end|>": 151651, "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655, "<|video_pad|>": 151656,
}
PATCH_SIZE = 14  # pixels per patch side
MERGE_SIZE = 2  # 2x2 neighbouring patches become one LLM token
TEMPORAL_PATCH_SIZE = 2  # frames per 3D tube (an image is two identical frames)


@dataclass(frozen=True)
class VisionConfig:
    """The ViT (``visual.*`` in the published checkpoint). Names are the published 4.x keys."""

    depth: int = 32  # transformer blocks
    embed_dim: int = 1280  # ViT width
    num_heads: int = 16
    mlp_ratio: float = 4  # MLP hidden = embed_dim * mlp_ratio = 5120
    in_chans: int = 3
    hidden_size: int = 1536  # output width of the PatchMerger = the LLM's hidden size
    patch_size: int = PATCH_SIZE
    spatial_merge_size: int = MERGE_SIZE  # 2x2 neighbouring patches become one LLM token
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE  # two frames per 3D tube (an image is two identical frames)
    hidden_act: str = "quick_gelu"
    rope_theta: float = 10000.0  # 2D-RoPE base inside the ViT

    def __post_init__(self) -> None:
        require_positive(self, "depth", "embed_dim", "num_heads", "in_chans", "hidden_size", "patch_size",
                         "spatial_merge_size", "temporal_patch_size")
        require_positive_numbers(self, "mlp_ratio", "rope_theta")
        require_vision_heads(self.embed_dim, self.num_heads)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def patch_dim(self) -> int:
        """Length of one flattened 3D tube: C * T * P * P = 3 * 2 * 14 * 14 = 1176."""
        return self.in_chans * self.temporal_patch_size * self.patch_size * self.patch_size

    @property
    def merged_dim(self) -> int:
        """Width of one 2x2 group of patches entering the merger MLP: 4 * 1280 = 5120."""
        return self.embed_dim * self.spatial_merge_size**2

    @property
    def factor(self) -> int:
        """Side of the pixel square that becomes one LLM token: 14 * 2 = 28."""
        return self.patch_size * self.spatial_merge_size


@dataclass(frozen=True)
class TextConfig:
    """The Qwen2 decoder (``model.*`` in the published checkpoint)."""

    vocab_size: int = 151936
    hidden_size: int = 1536
    intermediate_size: int = 8960
    num_hidden_layers: int = 28
    num_attention_heads: int = 12
    num_key_value_heads: int = 2  # GQA: 12 query heads share 2 key/value heads
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    mrope_section: tuple[int, int, int] = (16, 24, 24)  # rotary pairs for (t, h, w); sums to head_dim/2

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mrope_section", tuple(int(x) for x in self.mrope_section))
        except (TypeError, ValueError):
            raise ValueError(f"mrope_section must be 3 integers (t, h, w rotary pairs), got {self.mrope_section!r}") from None
        require_positive_numbers(self, "rms_norm_eps", "rope_theta")
        require_positive(self, "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                         "num_attention_heads", "num_key_value_heads")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"text hidden_size={self.hidden_size} is not divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"text num_attention_heads={self.num_attention_heads} is not divisible by "
                             f"num_key_value_heads={self.num_key_value_heads}")
        if len(self.mrope_section) != 3 or 2 * sum(self.mrope_section) != self.head_dim:
            raise ValueError(f"mrope_section={list(self.mrope_section)} must have 3 parts summing to "
                             f"head_dim/2={self.head_dim // 2}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class Qwen2VLConfig:
    """The whole model: vision tower + LLM + the special token ids that glue them."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    tie_word_embeddings: bool = True  # 2B ties lm_head to the embedding; 7B / 72B do not
    bos_token_id: int = SPECIAL_TOKENS["<|endoftext|>"]  # 151643
    eos_token_id: int = SPECIAL_TOKENS["<|im_end|>"]  # 151645
    vision_start_token_id: int = SPECIAL_TOKENS["<|vision_start|>"]  # 151652
    vision_end_token_id: int = SPECIAL_TOKENS["<|vision_end|>"]  # 151653
    vision_token_id: int = SPECIAL_TOKENS["<|vision_pad|>"]  # 151654 (unused by Qwen2-VL's template)
    image_token_id: int = SPECIAL_TOKENS["<|image_pad|>"]  # 151655
    video_token_id: int = SPECIAL_TOKENS["<|video_pad|>"]  # 151656
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.vision.hidden_size != self.text.hidden_size:
            raise ValueError(f"vision.hidden_size={self.vision.hidden_size} (merger output) must equal "
                             f"text.hidden_size={self.text.hidden_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_hf_dict(self) -> dict[str, Any]:
        """The published 4.x flat ``config.json`` layout (what ``load_config`` also reads)."""
        t, v = self.text, self.vision
        return {
            "architectures": ["Qwen2VLForConditionalGeneration"],
            "model_type": "qwen2_vl",
            "vocab_size": t.vocab_size,
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads,
            "hidden_act": t.hidden_act,
            "max_position_embeddings": t.max_position_embeddings,
            "rms_norm_eps": t.rms_norm_eps,
            "rope_theta": t.rope_theta,
            "rope_scaling": {"type": "mrope", "mrope_section": list(t.mrope_section)},
            "tie_word_embeddings": self.tie_word_embeddings,
            "use_sliding_window": False,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id,
            "vision_token_id": self.vision_token_id,
            "image_token_id": self.image_token_id,
            "video_token_id": self.video_token_id,
            "vision_config": {
                "depth": v.depth,
                "embed_dim": v.embed_dim,
                "mlp_ratio": int(v.mlp_ratio) if float(v.mlp_ratio).is_integer() else v.mlp_ratio,
                "num_heads": v.num_heads,
                "in_chans": v.in_chans,
                "hidden_size": v.hidden_size,
                "patch_size": v.patch_size,
                "spatial_merge_size": v.spatial_merge_size,
                "temporal_patch_size": v.temporal_patch_size,
                "hidden_act": v.hidden_act,
            },
        }


def require_positive(obj: Any, *names: str) -> None:
    """Each named field of the config ``obj`` must be an integer >= 1 (ValueError naming class and field)."""
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{type(obj).__name__}.{name} must be a positive integer, got {value!r}")


def require_vision_heads(width: int, num_heads: int, width_name: str = "embed_dim") -> None:
    """A ViT's width must split into ``num_heads`` heads whose size is divisible by 4 (2D-RoPE)."""
    if width % num_heads:
        raise ValueError(f"vision {width_name}={width} is not divisible by num_heads={num_heads}")
    if (width // num_heads) % 4:
        raise ValueError(f"vision head_dim={width // num_heads} must be divisible by 4 (2D-RoPE: rows and columns)")


def require_block_indexes(obj: Any, name: str, depth: int) -> None:
    """Each index in the field ``name`` of ``obj`` must name one of the ``depth`` blocks (0 .. depth - 1)."""
    bad = [i for i in getattr(obj, name) if not 0 <= i < depth]
    if bad:
        raise ValueError(f"{name} {bad} lie outside the {depth} blocks")


def require_positive_numbers(obj: Any, *names: str) -> None:
    """Each named field of the config ``obj`` must be a finite number > 0."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
            raise ValueError(f"{type(obj).__name__}.{name} must be a positive finite number, got {value!r}")


# ----------------------------------------------------------------------------------------------
# The published models (config.json of Qwen/Qwen2-VL-{2B,7B,72B}-Instruct). The ViT is the same
# tower for every size except the merger's output width, which follows the LLM: 665M / 676M / 699M
# parameters for 2B / 7B / 72B (the paper's "675M").
# ----------------------------------------------------------------------------------------------
QWEN2_VL_2B = Qwen2VLConfig(
    vision=VisionConfig(hidden_size=1536),
    text=TextConfig(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                    num_attention_heads=12, num_key_value_heads=2),
    tie_word_embeddings=True,
    name="Qwen2-VL-2B-Instruct",
)
QWEN2_VL_7B = Qwen2VLConfig(
    vision=VisionConfig(hidden_size=3584),
    text=TextConfig(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4),
    tie_word_embeddings=False,
    name="Qwen2-VL-7B-Instruct",
)
QWEN2_VL_72B = Qwen2VLConfig(
    vision=VisionConfig(hidden_size=8192),
    text=TextConfig(vocab_size=152064, hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
                    num_attention_heads=64, num_key_value_heads=8),
    tie_word_embeddings=False,
    name="Qwen2-VL-72B-Instruct",
)
PRESETS: dict[str, Qwen2VLConfig] = {"2B": QWEN2_VL_2B, "7B": QWEN2_VL_7B, "72B": QWEN2_VL_72B}


# ----------------------------------------------------------------------------------------------
# load_config: the 4.x flat config.json (published) and the 5.x nested one (save_pretrained today)
# ----------------------------------------------------------------------------------------------
# Missing keys take transformers' own class defaults, so a config reads here as it reads there.
_HF_TEXT_DEFAULTS = dict(vocab_size=152064, hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
                         num_attention_heads=64, num_key_value_heads=8, hidden_act="silu",
                         max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1_000_000.0,
                         mrope_section=(16, 24, 24))
_HF_VISION_DEFAULTS = dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, in_chans=3, hidden_size=3584,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, hidden_act="quick_gelu",
                           rope_theta=10000.0)
_VISION_ALIASES = {"in_channels": "in_chans", "num_attention_heads": "num_heads", "num_hidden_layers": "depth"}
_TOKEN_KEYS = ("bos_token_id", "eos_token_id", "vision_start_token_id", "vision_end_token_id", "vision_token_id",
               "image_token_id", "video_token_id")


def vision_config_from_hf(vision_config: Mapping[str, Any]) -> VisionConfig:
    """The ``vision_config`` dict of a checkpoint ``config.json`` → :class:`VisionConfig`.

    Reads the published 4.x keys (``in_chans``, ``num_heads``, ``depth``) and the 5.x names
    (``in_channels``, ``num_attention_heads``, ``num_hidden_layers``, ``rope_parameters.rope_theta``);
    missing keys take transformers' ``Qwen2VLVisionConfig`` defaults; unknown keys are ignored.
    """
    if not isinstance(vision_config, Mapping):
        raise ValueError(f"vision_config must be a dict (the 'vision_config' of config.json), "
                         f"got {type(vision_config).__name__}")
    kwargs = {}
    for key, value in vision_config.items():
        key = _VISION_ALIASES.get(key, key)
        if key in _HF_VISION_DEFAULTS:
            kwargs[key] = value
    rope = vision_config.get("rope_parameters") or {}
    if "rope_theta" in rope:
        kwargs["rope_theta"] = rope["rope_theta"]
    return VisionConfig(**{**_HF_VISION_DEFAULTS, **kwargs})


def load_config(source: str | Path | Mapping[str, Any]) -> Qwen2VLConfig:
    """Read a checkpoint's ``config.json`` (a directory, the file, or an already-parsed dict).

    Both layouts are understood: the published 4.x *flat* one (LLM keys at the top level,
    ``rope_scaling.mrope_section``, ``vision_config.in_chans``) and the 5.x *nested* one that
    ``save_pretrained`` writes today (``text_config`` with ``rope_parameters``, ``vision_config``
    with ``in_channels``).
    """
    if isinstance(source, Mapping):
        raw: dict[str, Any] = dict(source)
        where = "config dict"
    elif not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"load_config needs a checkpoint directory, a config.json path or a dict, "
                         f"got {type(source).__name__}")
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path} (expected a checkpoint directory "
                                    f"containing config.json, or the path of a config.json)")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        where = str(path)
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: config.json must hold a JSON object {{...}} of settings, got a JSON "
                             f"{type(raw).__name__}")

    model_type = raw.get("model_type", "qwen2_vl")
    if model_type != "qwen2_vl":
        raise ValueError(f"{where}: model_type is {model_type!r}, expected 'qwen2_vl'")

    nested = isinstance(raw.get("text_config"), Mapping)
    text_src: Mapping[str, Any] = raw["text_config"] if nested else raw
    vision_src: Mapping[str, Any] = raw.get("vision_config") or {}

    text_kwargs = {k: text_src[k] for k in _HF_TEXT_DEFAULTS if k in text_src}
    rope = text_src.get("rope_parameters") or text_src.get("rope_scaling") or raw.get("rope_scaling") or {}
    if "mrope_section" in rope:
        text_kwargs["mrope_section"] = rope["mrope_section"]  # TextConfig checks and converts it
    if "rope_theta" in rope:
        text_kwargs["rope_theta"] = rope["rope_theta"]
    if text_kwargs.get("num_key_value_heads") is None:
        text_kwargs["num_key_value_heads"] = text_kwargs.get("num_attention_heads",
                                                             _HF_TEXT_DEFAULTS["num_attention_heads"])
    text = TextConfig(**{**_HF_TEXT_DEFAULTS, **text_kwargs})

    vision = vision_config_from_hf(vision_src)

    tie = raw.get("tie_word_embeddings")
    if tie is None:
        tie = text_src.get("tie_word_embeddings", False)
    tokens = {k: raw[k] if k in raw else text_src.get(k) for k in _TOKEN_KEYS}
    tokens = {k: v for k, v in tokens.items() if v is not None}
    if isinstance(tokens.get("eos_token_id"), list):
        tokens["eos_token_id"] = tokens["eos_token_id"][0]
    name = raw.get("_name_or_path") or "custom"
    return Qwen2VLConfig(vision=vision, text=text, tie_word_embeddings=bool(tie), name=str(name), **tokens)


# ----------------------------------------------------------------------------------------------
# Parameter counts, derived by hand from the shapes (tests check them against transformers)
# ----------------------------------------------------------------------------------------------
class ParameterCount(NamedTuple):
    vision: int
    language: int
    total: int


def count_parameters(config: Qwen2VLConfig) -> ParameterCount:
    """Parameters of the vision tower, the language model (incl. lm_head unless tied) and the total."""
    v, t = config.vision, config.text
    d, m = v.embed_dim, v.mlp_hidden_dim
    patch_embed = v.patch_dim * d  # Conv3d(3, 1280, k=(2,14,14)), no bias
    block = (
        2 * 2 * d  # norm1, norm2 (weight + bias)
        + d * 3 * d + 3 * d  # attn.qkv
        + d * d + d  # attn.proj
        + d * m + m  # mlp.fc1
        + m * d + d  # mlp.fc2
    )
    merger = 2 * d + v.merged_dim * v.merged_dim + v.merged_dim + v.merged_dim * v.hidden_size + v.hidden_size
    vision = patch_embed + v.depth * block + merger

    h, hd = t.hidden_size, t.head_dim
    q, kv = t.num_attention_heads * hd, t.num_key_value_heads * hd
    layer = (
        h * q + q  # q_proj (bias)
        + 2 * (h * kv + kv)  # k_proj, v_proj (bias)
        + q * h  # o_proj (no bias)
        + 3 * h * t.intermediate_size  # gate, up, down
        + 2 * h  # input_layernorm, post_attention_layernorm
    )
    embed = t.vocab_size * h
    lm_head = 0 if config.tie_word_embeddings else t.vocab_size * h
    language = embed + t.num_hidden_layers * layer + h + lm_head
    return ParameterCount(vision=vision, language=language, total=vision + language)


# ----------------------------------------------------------------------------------------------
# The structure printout (the course lesson's print(model), transformers 4.45 layout), from the config alone
# ----------------------------------------------------------------------------------------------
def _linear(i: int, o: int, bias: bool) -> str:
    return f"Linear(in_features={i}, out_features={o}, bias={bias})"


def model_structure(config: Qwen2VLConfig) -> str:
    """The module tree that ``print(Qwen2VLForConditionalGeneration)`` showed at release time."""
    v, t = config.vision, config.text
    d, hd = v.embed_dim, t.head_dim
    k = (v.temporal_patch_size, v.patch_size, v.patch_size)
    eps = f"{t.rms_norm_eps:g}"
    lines = [
        "Qwen2VLForConditionalGeneration(",
        "  (visual): Qwen2VisionTransformerPretrainedModel(",
        "    (patch_embed): PatchEmbed(",
        f"      (proj): Conv3d({v.in_chans}, {d}, kernel_size={k}, stride={k}, bias=False)",
        "    )",
        "    (rotary_pos_emb): VisionRotaryEmbedding()",
        "    (blocks): ModuleList(",
        f"      (0-{v.depth - 1}): {v.depth} x Qwen2VLVisionBlock(",
        f"        (norm1): LayerNorm(({d},), eps=1e-06, elementwise_affine=True)",
        f"        (norm2): LayerNorm(({d},), eps=1e-06, elementwise_affine=True)",
        "        (attn): VisionAttention(",
        f"          (qkv): {_linear(d, 3 * d, True)}",
        f"          (proj): {_linear(d, d, True)}",
        "        )",
        "        (mlp): VisionMlp(",
        f"          (fc1): {_linear(d, v.mlp_hidden_dim, True)}",
        "          (act): QuickGELUActivation()",
        f"          (fc2): {_linear(v.mlp_hidden_dim, d, True)}",
        "        )",
        "      )",
        "    )",
        "    (merger): PatchMerger(",
        f"      (ln_q): LayerNorm(({d},), eps=1e-06, elementwise_affine=True)",
        "      (mlp): Sequential(",
        f"        (0): {_linear(v.merged_dim, v.merged_dim, True)}",
        "        (1): GELU(approximate='none')",
        f"        (2): {_linear(v.merged_dim, v.hidden_size, True)}",
        "      )",
        "    )",
        "  )",
        "  (model): Qwen2VLModel(",
        f"    (embed_tokens): Embedding({t.vocab_size}, {t.hidden_size})",
        "    (layers): ModuleList(",
        f"      (0-{t.num_hidden_layers - 1}): {t.num_hidden_layers} x Qwen2VLDecoderLayer(",
        "        (self_attn): Qwen2VLSdpaAttention(",
        f"          (q_proj): {_linear(t.hidden_size, t.num_attention_heads * hd, True)}",
        f"          (k_proj): {_linear(t.hidden_size, t.num_key_value_heads * hd, True)}",
        f"          (v_proj): {_linear(t.hidden_size, t.num_key_value_heads * hd, True)}",
        f"          (o_proj): {_linear(t.num_attention_heads * hd, t.hidden_size, False)}",
        "          (rotary_emb): Qwen2VLRotaryEmbedding()",
        "        )",
        "        (mlp): Qwen2MLP(",
        f"          (gate_proj): {_linear(t.hidden_size, t.intermediate_size, False)}",
        f"          (up_proj): {_linear(t.hidden_size, t.intermediate_size, False)}",
        f"          (down_proj): {_linear(t.intermediate_size, t.hidden_size, False)}",
        "          (act_fn): SiLU()",
        "        )",
        f"        (input_layernorm): Qwen2RMSNorm(({t.hidden_size},), eps={eps})",
        f"        (post_attention_layernorm): Qwen2RMSNorm(({t.hidden_size},), eps={eps})",
        "      )",
        "    )",
        f"    (norm): Qwen2RMSNorm(({t.hidden_size},), eps={eps})",
        "    (rotary_emb): Qwen2VLRotaryEmbedding()",
        "  )",
        f"  (lm_head): {_linear(t.hidden_size, t.vocab_size, False)}",
        ")",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Qwen-VL (2023) vs Qwen2-VL (2024), from the two papers
# ----------------------------------------------------------------------------------------------
QWEN_VL_VS_QWEN2_VL: list[tuple[str, str, str]] = [
    ("aspect", "Qwen-VL", "Qwen2-VL"),
    ("vision encoder", "ViT-bigG/14 from OpenCLIP (image tower 1.84B; the paper says 1.9B)", "ViT 665M/676M/699M by size (DFN-initialised), 14px"),
    ("input resolution", "fixed 448x448", "native, any size (smart_resize to multiples of 28)"),
    ("ViT positions", "learned absolute (interpolated)", "2D-RoPE over (row, column)"),
    ("connector", "1-layer cross-attention, 256 learned queries", "2x2 patch merge + 2-layer MLP"),
    ("visual tokens per image", "always 256", "(H/28)*(W/28), 4 .. 16384 (+2 special)"),
    ("LLM positions", "1D RoPE", "M-RoPE: (temporal, height, width) ids"),
    ("video", "no", "yes: 2 frames per 3D tube, 2 fps by default"),
    ("LLM", "Qwen-7B", "Qwen2 1.5B / 7.6B / 72B"),
]


def format_table(rows: list[tuple[str, ...]]) -> str:
    """A plain-text table whose first row is the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def tiny_config(**text_overrides: Any) -> Qwen2VLConfig:
    """A teaching-size random-weight config with the real vocabulary and token ids.

    Same architecture as the published models (2 ViT blocks of width 64, 2 decoder layers of
    width 64, GQA 4:2, mrope_section (2, 3, 3) for head_dim 16) so tests and notebooks run in
    seconds on a CPU while loading through the real code paths.
    """
    text = dict(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, mrope_section=(2, 3, 3))
    text.update(text_overrides)
    return Qwen2VLConfig(
        vision=VisionConfig(depth=2, embed_dim=64, num_heads=4, hidden_size=text["hidden_size"]),
        text=TextConfig(**text),
        tie_word_embeddings=True,
        name="tiny",
    )
