"""From pixels to rows of 1176 numbers: resize, normalise, cut 2x14x14 tubes, embed them.

Paper §2.1: the ViT sees 14x14 patches; images and videos share one path because an image is
treated as *two identical frames* (temporal patch size 2), so every patch is a 3D tube of
2 frames x 3 channels x 14 x 14 = 1176 values. Rows are ordered so that the 2x2 groups the
PatchMerger later fuses are adjacent (4 consecutive rows = one LLM token).

Reference: transformers/models/qwen2_vl/image_processing_pil_qwen2_vl.py
(``Qwen2VLImageProcessorPil``: convert_rgb → resize BICUBIC → rescale 1/255 → CLIP mean/std →
patchify) and ``PatchEmbed`` in modeling_qwen2_vl.py (Conv3d, kernel = stride = (2, 14, 14)).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from .resolution import MAX_PIXELS, MERGE_SIZE, MIN_PIXELS, PATCH_SIZE, TEMPORAL_PATCH_SIZE, Rule, smart_resize

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "open_image",
    "check_pixel_limit",
    "to_rgb",
    "warn_if_clipped",
    "normalize",
    "resize_image",
    "preprocess_image",
    "preprocess_video",
    "patchify",
    "unpatchify",
    "PatchEmbed",
]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

ImageLike = Union[Image.Image, str, os.PathLike]


def open_image(source: ImageLike | bytes, *, name: str | None = None) -> Image.Image:
    """A PIL image from a path, raw bytes or an image; clear errors for bad input.

    Missing file → FileNotFoundError; unreadable, truncated or zero-size image, or one larger than
    PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, checked from the header before
    any pixel is decoded) → ValueError naming the item (``name``, else the path) and the limit.
    """
    if isinstance(source, Image.Image):
        image = source
        name = name or "image"
    else:
        if isinstance(source, (bytes, bytearray)):
            name = name or f"image bytes ({len(source)} B)"
            fp = io.BytesIO(source)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            name = name or str(path)
            if not path.is_file():
                raise FileNotFoundError(f"image file not found: {path}")
            fp = path
        else:
            raise ValueError(f"{name or 'image'}: expected a PIL image, a path or bytes, got {type(source).__name__}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(fp)
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(f"{name}: larger than PIL's decompression-bomb limit Image.MAX_IMAGE_PIXELS = "
                             f"{Image.MAX_IMAGE_PIXELS} pixels ({err})") from None
        except UnidentifiedImageError:
            raise ValueError(f"{name}: not a readable image (PIL cannot identify the format)") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"{name}: unreadable or truncated image ({err})") from None
    if image.width < 1 or image.height < 1:
        raise ValueError(f"{name} has zero size ({image.width}x{image.height}); need at least 1x1 pixels")
    return image


def check_pixel_limit(height: int, width: int, *, name: str = "image", why: str = "") -> None:
    """Refuse to make an image of more pixels than PIL would decode (``Image.MAX_IMAGE_PIXELS``).

    Called with a resize target *before* resizing: caller-chosen ``min_pixels`` can ask for any size.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and height * width > limit:
        raise ValueError(f"{name}: the resized image would be {width}x{height} = {height * width} pixels{why}, "
                         f"over PIL's decompression-bomb limit Image.MAX_IMAGE_PIXELS = {limit} pixels")


HIGH_DEPTH_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def warn_if_clipped(image: Image.Image, *, name: str = "image") -> None:
    """Warn that a 16/32-bit or float image becomes 8-bit RGB by clipping (PIL's convert, as the reference)."""
    if image.mode in HIGH_DEPTH_MODES:
        warnings.warn(f"{name}: a {image.mode!r}-mode image (16/32-bit integer or float pixels) is converted to "
                      f"8-bit RGB by clipping every value to 0..255, as the reference does (values above 255 "
                      f"become 255, negatives 0); scale it to 8 bits first to keep its range", UserWarning,
                      stacklevel=3)


def to_rgb(image: Image.Image, *, name: str = "image") -> Image.Image:
    """RGB as the reference converts: anything with alpha (or a transparent palette) over white.

    16-bit / 32-bit / float images (modes I;16, I, F) are clipped to 0..255 as the reference clips
    them, with a warning naming the mode (:func:`warn_if_clipped`).
    """
    if image.mode == "RGB":
        return image
    warn_if_clipped(image, name=name)
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def normalize(rgb: np.ndarray, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD) -> np.ndarray:
    """uint8 [..., H, W, 3] → float32, rescaled by 1/255 (in float64, as the reference) then CLIP-normalised."""
    x = (rgb.astype(np.float64) * (1 / 255)).astype(np.float32)
    return (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)


def resize_image(
    image: ImageLike,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    rule: Rule = "transformers",
) -> Image.Image:
    """An image (PIL, path or bytes) as the model sees it: RGB (alpha over white), resized with PIL
    bicubic to ``smart_resize``'s size — the processor's ``convert_rgb`` → ``resize`` steps."""
    rgb = to_rgb(open_image(image))
    rh, rw = smart_resize(rgb.height, rgb.width, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule)
    check_pixel_limit(rh, rw, why=f" (from min_pixels={min_pixels!r}, max_pixels={max_pixels!r})")
    if (rh, rw) == (rgb.height, rgb.width):
        return rgb
    return rgb.resize((rw, rh), resample=Image.Resampling.BICUBIC)  # [H, W] -> [H', W']


def preprocess_image(
    image: ImageLike,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    rule: Rule = "transformers",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image → ``(pixel_values [N, 1176] float32, grid_thw [1, 3] int64)``.

    resize (smart_resize, PIL bicubic) → rescale → CLIP mean/std → 2 identical frames →
    2x14x14 tubes, 2x2 merge groups adjacent. N = grid_h * grid_w; 224x224 → N = 256.
    """
    rgb = resize_image(image, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule)
    pixels = normalize(np.asarray(rgb))  # [H', W', 3] uint8 -> float32
    frames = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]  # [1, 3, H', W']
    patches, grid = patchify(frames)  # [N, 1176], (1, H'/14, W'/14)
    return patches, torch.tensor([grid], dtype=torch.long)


def preprocess_video(
    frames: torch.Tensor | np.ndarray | list[Image.Image],
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Video frames → ``(pixel_values_videos [N, 1176] float32, video_grid_thw [1, 3] int64)``.

    ``frames``: what ``media.process_vision_info`` returns for a video — a ``[T, C, H, W]`` tensor
    of 0..255 values (float or uint8) or a list of same-size PIL images. Float values mean 0..255
    (as the processor reads them: it rescales by 1/255), never 0..1: values outside [0, 255], NaN,
    or a float video whose values all lie in [0, 1] (not all zero: likely already rescaled) raise
    ValueError naming the range found, whether or not a resize follows. The processor's own
    resize (transformers rule, ``min_pixels``/``max_pixels`` of the published config) leaves such
    frames unchanged; when it would not, each frame is resized with PIL bicubic (transformers'
    video processor uses torchvision's resize there, which is not available here). Then rescale →
    CLIP mean/std (per frame, as the PIL image processor) → 2x14x14 tubes over consecutive frame
    pairs (an odd T repeats the last frame). N = (T/2) * (H'/14) * (W'/14).
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("a video needs at least one frame, got an empty list")
        sizes = {f.size for f in frames}
        if len(sizes) != 1:
            raise ValueError(f"all frames of a video must have the same size, got {sorted(sizes)}")
        video = np.stack([np.asarray(to_rgb(f)) for f in frames])  # T x [H, W, 3] -> [T, H, W, 3]
    else:
        x = torch.as_tensor(frames)
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] < 1:
            raise ValueError(f"video frames must be [T, 3, H, W] with T >= 1, got shape {tuple(x.shape)}")
        _check_video_range(x)
        video = x.permute(0, 2, 3, 1).numpy()  # [T, 3, H, W] -> [T, H, W, 3]
    T, height, width, _ = video.shape
    rh, rw = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    check_pixel_limit(rh, rw, name="video frame", why=f" (from min_pixels={min_pixels!r}, max_pixels={max_pixels!r})")
    if (rh, rw) != (height, width):
        video = np.stack([np.asarray(Image.fromarray(f.astype(np.uint8)).resize(
            (rw, rh), resample=Image.Resampling.BICUBIC)) for f in video])  # [T, H', W', 3]
    pixels = normalize(video)  # [T, H', W', 3] float32
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # [T, 3, H', W']
    patches, grid = patchify(x)  # [(T/2)*h*w, 1176]
    return patches, torch.tensor([grid], dtype=torch.long)


def _check_video_range(x: torch.Tensor) -> None:
    """Frames must hold 0..255 values (the same check whether or not a resize follows)."""
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"video frames must hold 0..255 values (uint8 or float), got dtype {x.dtype}")
    if x.dtype == torch.uint8 or x.numel() == 0:
        return
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError("video frames hold NaN or infinite values; expected values in [0, 255]")
    lo, hi = x.min().item(), x.max().item()
    if lo < 0 or hi > 255:
        raise ValueError(f"video frames hold values in [{lo:g}, {hi:g}]; expected [0, 255] (nothing is clipped: "
                         f"convert or clip them first)")
    if x.is_floating_point() and 0 < hi <= 1:
        raise ValueError(f"video frames hold float values in [{lo:g}, {hi:g}]: float frames are read as 0..255 "
                         f"(what media.fetch_video returns), so these look already rescaled to [0, 1]; multiply "
                         f"by 255 first")


def patchify(
    frames: torch.Tensor | np.ndarray,
    *,
    patch_size: int = PATCH_SIZE,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
    merge_size: int = MERGE_SIZE,
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Normalised frames ``[T, C, H, W]`` → ``(patches [t*h*w, C*2*14*14], (t, h, w))``.

    T is padded to a multiple of ``temporal_patch_size`` by repeating the last frame (an image,
    T = 1, becomes two identical frames). Row order: for each temporal slice, 2x2 merge groups
    in raster order, and inside a group its 4 patches in raster order.
    """
    x = torch.as_tensor(frames)
    if x.ndim != 4:
        raise ValueError(f"frames must be [T, C, H, W], got shape {tuple(x.shape)}")
    T, C, H, W = x.shape
    side = patch_size * merge_size
    if T < 1 or H % side or W % side or H == 0 or W == 0:
        raise ValueError(f"frames of shape {tuple(x.shape)}: need T >= 1 and H, W positive multiples of {side}")
    if T % temporal_patch_size:
        pad = temporal_patch_size - T % temporal_patch_size
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)], dim=0)  # repeat the last frame
    gt, gh, gw = x.shape[0] // temporal_patch_size, H // patch_size, W // patch_size
    m, p, tp = merge_size, patch_size, temporal_patch_size
    x = x.reshape(gt, tp, C, gh // m, m, p, gw // m, m, p)  # [gt, tp, C, gh/m, m, p, gw/m, m, p]
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # [gt, gh/m, gw/m, m, m, C, tp, p, p]
    patches = x.reshape(gt * gh * gw, C * tp * p * p)  # [t*h*w, 1176]
    return patches, (gt, gh, gw)


def unpatchify(
    patches: torch.Tensor,
    grid_thw: tuple[int, int, int],
    *,
    channels: int = 3,
    patch_size: int = PATCH_SIZE,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
    merge_size: int = MERGE_SIZE,
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[t*h*w, C*2*14*14]`` → frames ``[t*2, C, h*14, w*14]``."""
    gt, gh, gw = (int(v) for v in grid_thw)
    m, p, tp = merge_size, patch_size, temporal_patch_size
    if min(gt, gh, gw) < 1 or gh % m or gw % m:
        raise ValueError(f"grid {(gt, gh, gw)}: t, h, w must be >= 1 and h, w multiples of merge_size={m}")
    if patches.shape != (gt * gh * gw, channels * tp * p * p):
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not match grid {(gt, gh, gw)}")
    x = patches.reshape(gt, gh // m, gw // m, m, m, channels, tp, p, p)
    x = x.permute(0, 6, 5, 1, 3, 7, 2, 4, 8)  # [gt, tp, C, gh/m, m, p, gw/m, m, p]
    return x.reshape(gt * tp, channels, gh * p, gw * p)


class PatchEmbed(nn.Module):
    """Conv3d(3, embed_dim, kernel = stride = (2, 14, 14), no bias) over the 1176-value rows.

    Because kernel = stride = the whole tube, the convolution is one dot product per row: it is
    exactly a ``Linear(1176, embed_dim, bias=False)`` whose weight is the conv kernel flattened
    in (C, T, P, P) order — :meth:`as_linear` builds that twin.
    """

    def __init__(self, patch_size: int = PATCH_SIZE, temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
                 in_chans: int = 3, embed_dim: int = 1280) -> None:
        super().__init__()
        self.patch_size, self.temporal_patch_size = patch_size, temporal_patch_size
        self.in_chans, self.embed_dim = in_chans, embed_dim
        kernel = (temporal_patch_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tp, p = self.temporal_patch_size, self.patch_size
        patch_dim = self.in_chans * tp * p * p
        if pixel_values.ndim != 2 or pixel_values.shape[-1] != patch_dim:
            raise ValueError(f"PatchEmbed: pixel_values must be [N, {patch_dim}] (rows of C*T*P*P values), "
                             f"got shape {tuple(pixel_values.shape)}")
        x = pixel_values.to(self.proj.weight.dtype).view(-1, self.in_chans, tp, p, p)  # [N, 1176] -> [N, 3, 2, 14, 14]
        return self.proj(x).view(-1, self.embed_dim)  # [N, 1280, 1, 1, 1] -> [N, 1280]

    def as_linear(self) -> nn.Linear:
        """The Linear twin: same weights, viewed as a [embed_dim, 1176] matrix."""
        linear = nn.Linear(self.proj.weight[0].numel(), self.embed_dim, bias=False,
                           device=self.proj.weight.device, dtype=self.proj.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.proj.weight.reshape(self.embed_dim, -1))  # [1280, 3, 2, 14, 14] -> [1280, 1176]
        return linear
