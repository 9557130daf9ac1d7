"""The token budget: how many visual tokens each architecture sends to the LLM for the same input.

The question every user of a VLM asks ("what does a 1080p screenshot cost?"), answered from the
connectors of this package and Qwen2-VL's ``resolution.py``. Counts are *visual* tokens only
(the embeddings that stand for the image); wrapper tokens such as ``<|vision_start|>`` /
``<img>`` are left out for every model alike.

Per model (each figure comes from the module that builds the connector):
- Qwen-VL (``qwen_vl.py``): every image is resized to 448x448 → 256 query outputs. No video.
- BLIP-2 (``blip2.py``): every image is resized to 224x224 → 32 query outputs. No video.
- LLaVA-1.5 (``llava.py``): every image is resized/padded to 336x336 → 576 patch tokens. LLaVA-1.5
  has no video support; with ``video_as_frames=True`` the frames Qwen2-VL would sample (2 fps)
  are counted as separate images instead (likewise for Qwen-VL and BLIP-2).
- InternVL2 (``internvl.py``): 256 x (tiles + thumbnail), tiles from ``internvl_tile_grid`` with
  max_num=12. Video: the InternVL2 model cards' ``load_video(num_segments=8, max_num=1)`` — 8
  frames, one 448x448 tile each, whatever the length → 8 x 256.
- Qwen2-VL (``resolution.py``): images via ``count_image_tokens`` (transformers' rule, the
  published bounds 3136 .. 12845056 pixels). Video: ``media.plan_video`` with the default
  qwen-vl-utils 0.0.8 preset — 2 fps (60 s → 120 frames), the per-video pixel budget shared by
  the frames, qwen-vl-utils' ``smart_resize``; two frames per temporal patch.

The 1-minute video is assumed to be 1280x720 at 30 fps.

Reference (tests/test_family_budget.py re-derives every cell): transformers'
``Qwen2VLImageProcessorPil.get_number_of_image_patches`` and ``get_optimal_tiled_canvas``
(got_ocr2, InternVL's processor); qwen-vl-utils 0.0.8's ``fetch_video`` for the video's frames and
frame size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..config import format_table
from ..media import VideoPlan, plan_video
from ..resolution import count_image_tokens
from .blip2 import BLIP2_QFORMER
from .internvl import INTERNVL2_8B, internvl_image_tokens
from .llava import LLAVA_1_5_7B
from .qwen_vl import QWEN_VL

__all__ = [
    "BudgetInput",
    "BUDGET_INPUTS",
    "MODELS",
    "INTERNVL2_VIDEO_SEGMENTS",
    "qwen2vl_video_plan",
    "visual_tokens",
    "token_budget",
    "format_budget",
    "qwen2vl_shape_chain",
    "connector_chains",
]

INTERNVL2_VIDEO_SEGMENTS = 8  # the InternVL2 model cards' video example: load_video(num_segments=8, max_num=1)


@dataclass(frozen=True)
class BudgetInput:
    name: str
    width: int
    height: int
    seconds: float = 0.0  # > 0: a video of this length
    video_fps: float = 30.0  # the video's own frame rate

    @property
    def is_video(self) -> bool:
        return self.seconds > 0


BUDGET_INPUTS: tuple[BudgetInput, ...] = (
    BudgetInput("224x224", 224, 224),
    BudgetInput("448x448", 448, 448),
    BudgetInput("1280x720", 1280, 720),
    BudgetInput("1920x1080", 1920, 1080),
    BudgetInput("3840x2160", 3840, 2160),
    BudgetInput("2000x200 strip", 2000, 200),
    BudgetInput("1-min video (1280x720, 30 fps)", 1280, 720, seconds=60.0, video_fps=30.0),
)
MODELS: tuple[str, ...] = ("Qwen-VL", "BLIP-2", "LLaVA-1.5", "InternVL2", "Qwen2-VL")


def qwen2vl_video_plan(item: BudgetInput) -> VideoPlan:
    """How Qwen2-VL's media pipeline (default preset) samples and sizes ``item``'s frames."""
    return plan_video(int(item.seconds * item.video_fps), item.video_fps, item.height, item.width)


def _qwen2vl(item: BudgetInput) -> int:
    if not item.is_video:
        return count_image_tokens(item.height, item.width, special_tokens=False)
    return qwen2vl_video_plan(item).tokens


def visual_tokens(model: str, item: BudgetInput, *, video_as_frames: bool = False) -> int | None:
    """Visual tokens ``model`` sends to the LLM for ``item``; None when the model takes no video."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if model == "Qwen2-VL":
        return _qwen2vl(item)
    if model == "InternVL2":
        if item.is_video:
            return INTERNVL2_VIDEO_SEGMENTS * INTERNVL2_8B.tokens_per_tile  # 8 frames x 1 tile
        return internvl_image_tokens(item.width, item.height)
    per_image = {"Qwen-VL": QWEN_VL.num_queries, "BLIP-2": BLIP2_QFORMER.num_query_tokens,
                 "LLaVA-1.5": LLAVA_1_5_7B.num_patches}[model]
    if item.is_video:
        return qwen2vl_video_plan(item).nframes * per_image if video_as_frames else None
    return per_image


def token_budget(inputs: Sequence[BudgetInput] = BUDGET_INPUTS, models: Sequence[str] = MODELS, *,
                 video_as_frames: bool = False) -> dict[str, dict[str, int | None]]:
    """``{input name: {model: visual tokens or None}}`` (rows = inputs, columns = models)."""
    return {item.name: {m: visual_tokens(m, item, video_as_frames=video_as_frames) for m in models}
            for item in inputs}


def format_budget(table: dict[str, dict[str, int | None]]) -> str:
    """A plain-text table: one row per input, one column per model; ``—`` = not supported."""
    if not table:
        raise ValueError("format_budget needs at least one input row (a token_budget(...) table)")
    models = list(next(iter(table.values())))
    rows = [("input", *models)]
    rows += [(name, *("—" if row[m] is None else f"{row[m]:,}" for m in models)) for name, row in table.items()]
    return format_table(rows)


# ---------------------------------------------------------------------------------------------
# Side by side: each connector's stages and shapes for one image (for the diagrams)
# ---------------------------------------------------------------------------------------------
def qwen2vl_shape_chain(height: int = 448, width: int = 448, config=None) -> list[tuple[str, tuple[int, ...]]]:
    """Qwen2-VL's path for one image: native-resolution patches → 2x2 merger → the LLM (7B)."""
    from ..config import QWEN2_VL_7B
    from ..resolution import image_grid_thw

    v = (config or QWEN2_VL_7B).vision
    _, gh, gw = image_grid_thw(height, width)
    m = v.spatial_merge_size**2
    return [
        (f"{width}x{height} image → ViT-675M/{v.patch_size} (2D-RoPE)", (gh * gw, v.embed_dim)),
        (f"merge {v.spatial_merge_size}x{v.spatial_merge_size} neighbours", (gh * gw // m, v.merged_dim)),
        ("merger MLP → Qwen2-7B", (gh * gw // m, v.hidden_size)),
    ]


def connector_chains() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """``{model: [(stage, shape), ...]}`` for the connectors of lessons 09 (paper sizes, one image)."""
    from . import blip2, internvl, llava, minigpt, qwen_vl

    return {
        "Qwen-VL": qwen_vl.shape_chain(),
        "BLIP-2": blip2.shape_chain(),
        "LLaVA-1.5": llava.shape_chain(),
        "MiniGPT-4": minigpt.shape_chain_v1(),
        "MiniGPT-v2": minigpt.shape_chain_v2(),
        "InternVL2 (per tile)": internvl.shape_chain(),
        "Qwen2-VL (448x448)": qwen2vl_shape_chain(),
    }
