"""Builds the transformers counterpart of our objects — the single place parity checks come from.

Tests, notebooks, benchmarks and the ``tour`` import the reference from here, so "the reference"
always means the same thing: transformers' Qwen2-VL (installed version, 5.x) with the same
config and, where weights are involved, the same weights.

Reference files: transformers/models/qwen2_vl/{configuration,modeling,image_processing_pil}_qwen2_vl.py.
transformers is imported lazily: importing qwenvl_study does not import it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any

import torch

from .config import ParameterCount, Qwen2VLConfig, VisionConfig
from .resolution import MAX_PIXELS, MIN_PIXELS

__all__ = [
    "transformers_version",
    "hf_config",
    "hf_meta_model",
    "hf_parameter_count",
    "hf_image_processor",
    "hf_smart_resize",
    "hf_preprocess",
    "quiet",
    "qwen_vl_utils",
    "tiny_with_vision",
    "tiny_with_text",
]


@contextlib.contextmanager
def quiet():
    """Silence transformers' warnings/logging while building reference objects."""
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


def tiny_with_vision(vision: VisionConfig) -> Qwen2VLConfig:
    """The tiny config with another vision tower (its merger output follows the LLM width)."""
    from dataclasses import replace

    from .config import tiny_config

    base = tiny_config()
    return replace(base, vision=replace(vision, hidden_size=base.text.hidden_size))


def tiny_with_text(*, head_dim: int, theta: float, section: tuple[int, int, int]) -> Qwen2VLConfig:
    """The tiny config with an LLM of the given head_dim / rope theta / mrope_section (2 heads)."""
    from .config import tiny_config

    return tiny_config(hidden_size=2 * head_dim, num_attention_heads=2, num_key_value_heads=1,
                       rope_theta=theta, mrope_section=section)


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def hf_config(config: Qwen2VLConfig, attn_implementation: str = "eager") -> Any:
    """transformers' ``Qwen2VLConfig`` for our config (built from the published 4.x flat dict)."""
    from transformers import Qwen2VLConfig as HFConfig

    with quiet():
        cfg = HFConfig(**config.to_hf_dict())
    cfg._attn_implementation = attn_implementation
    cfg.vision_config._attn_implementation = attn_implementation
    cfg.text_config._attn_implementation = attn_implementation
    return cfg


def hf_meta_model(config: Qwen2VLConfig) -> Any:
    """transformers' ``Qwen2VLForConditionalGeneration`` on the meta device (shapes only, no memory)."""
    from transformers import Qwen2VLForConditionalGeneration

    with quiet(), torch.device("meta"):
        model = Qwen2VLForConditionalGeneration(hf_config(config))
    return model


def hf_parameter_count(config: Qwen2VLConfig) -> ParameterCount:
    """Parameter count of transformers' model (tied weights counted once)."""
    model = hf_meta_model(config)
    vision = sum(p.numel() for p in model.model.visual.parameters())
    total = sum(p.numel() for p in model.parameters())  # parameters() de-duplicates tied tensors
    return ParameterCount(vision=vision, language=total - vision, total=total)


def hf_image_processor(min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> Any:
    """transformers' PIL Qwen2-VL image processor (the fast one needs torchvision)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    with quiet():
        return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


def hf_smart_resize(height: int, width: int, *, factor: int = 28, min_pixels: int = MIN_PIXELS,
                    max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


def hf_preprocess(image: Any, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values, image_grid_thw)`` from transformers' PIL image processor."""
    with quiet():
        out = hf_image_processor(min_pixels, max_pixels)(images=[image], return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


def qwen_vl_utils() -> Any:
    """``qwen_vl_utils.vision_process`` (the dev extra pins the Qwen2-VL-era release, 0.0.8).

    It imports torchvision at module level, which does not work with the CPU torch here, although
    its pure functions (``smart_resize``, ``smart_nframes``, ``fetch_image``) never touch it. When
    the real torchvision cannot be imported, a stub stands in for that import only; anything that
    really needs torchvision (its video readers) then fails loudly instead of silently differing.
    """
    import importlib
    import sys
    import types

    try:
        import torchvision  # noqa: F401
    except Exception:  # not installed, or broken against this torch
        for name in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[name]
        stub = types.ModuleType("torchvision")
        stub.__version__ = "0.0.0+stub"
        stub.io = types.ModuleType("torchvision.io")
        stub.transforms = types.ModuleType("torchvision.transforms")
        stub.transforms.InterpolationMode = type("InterpolationMode", (), {"BICUBIC": "bicubic"})
        sys.modules.update({"torchvision": stub, "torchvision.io": stub.io,
                            "torchvision.transforms": stub.transforms})
    with quiet():
        return importlib.import_module("qwen_vl_utils.vision_process")
