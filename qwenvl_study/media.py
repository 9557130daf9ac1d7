"""From chat messages to the pixels Qwen2-VL sees: images, GIFs and videos, qwen-vl-utils compatible.

Paper §2.1 "Unified Image and Video Understanding": a video is sampled at **2 frames per second**,
frames go in **pairs** (temporal patch size 2, so the frame count is even; an image is two
identical frames) and the resolution of each frame is adjusted dynamically so that a video costs a
bounded number of tokens — the paper's training setting limits a video to **16384 tokens**.

``process_vision_info(messages)`` accepts the message format of qwen-vl-utils unchanged and
returns ``(images or None, videos or None)`` exactly as qwen-vl-utils does:

- images: PIL RGB images already resized (qwen-vl-utils' ``smart_resize`` rule, PIL bicubic);
- decoded videos: float32 tensors ``[T, C, H, W]`` holding 0..255 values (T even);
- videos given as a list of frames: lists of PIL images (each resized like an image; the list is
  padded to an even length by repeating the last frame).

Decoding uses PyAV, streaming: a first pass reads only packet timestamps (no decoding) to count
the frames, a second pass decodes and keeps only the sampled frames (resized as they arrive).
There is no torchvision anywhere.

Budgets (qwen-vl-utils' constants, as a named preset — ``MEDIA_PRESETS``):

- frames: ``nframes = duration * fps`` clamped to [min_frames, max_frames] and rounded to an even
  number (``smart_nframes``); frames are picked by ``linspace(0, total - 1, nframes).round()``;
- per-frame pixels: ``max_pixels = max(min(VIDEO_MAX_PIXELS, total_pixels / nframes * 2),
  1.05 * VIDEO_MIN_PIXELS)``. A pair of frames of H'xW' costs H'W'/784 tokens, there are
  nframes/2 pairs, so the video costs at most ``total_pixels / 784`` tokens — as long as the
  per-frame floor (128 tokens per pair) does not bind, i.e. up to ``2 * total_pixels / (1.05 *
  VIDEO_MIN_PIXELS)`` frames.

Presets: ``"0.0.8"`` (the default; the Qwen2-VL-era release the dev extra pins and the course lesson ran):
``total_pixels = 24576 * 28 * 28`` → at most 24576 tokens per video up to ~365 frames;
``"0.0.10"``: ``int(128000 * 28 * 28 * 0.9)`` (sized for a 128K context) → up to 115200 tokens, and
``smart_nframes`` floors instead of rounding and never exceeds the frame count; ``"paper"``: the
0.0.8 rules with ``total_pixels = 16384 * 28 * 28`` and the per-frame floor lowered from 128 to 4
tokens, so the *resolution* of each frame gives way ("we dynamically adjust the resolution of each
video frame, limiting the total number of tokens per video to 16384") for up to 768 frames; a final
check drops frames two at a time should rounding still exceed the cap (tiny frames only).
Neither qwen-vl-utils release realises 16384 by itself: see notebook 07.

Reference: qwen-vl-utils 0.0.8 ``vision_process.py`` (``fetch_image``, ``smart_nframes``,
``fetch_video``, ``process_vision_info``), called for real in tests through
``reference.qwen_vl_utils()``; its torchvision video reader is replaced there by a PyAV decode of
the whole file (``reference.qvu_fetch_video``), so the sampling, budgets and sizes compared are
qwen-vl-utils' own. Where ours differs: frames are resized with PIL's bicubic (the resample of
transformers' PIL image processor) instead of torchvision's antialiased bicubic; bad input raises
``ValueError`` naming the item instead of asserts / deep tracebacks.

Limits, each checked before the work it bounds (none binds for the presets' own budgets):
``URL_TIMEOUT_S`` per socket operation and ``URL_DEADLINE_S`` for a whole download (a server
trickling one byte every few seconds is cut off), ``URL_MAX_BYTES`` per download; a resized image
at most PIL's ``Image.MAX_IMAGE_PIXELS`` (whatever ``min_pixels`` an item asks for); a decoded video
at most ``VIDEO_MAX_BYTES`` of float32.
"""

from __future__ import annotations

import base64
import http.client
import io
import math
import numbers
import os
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps

from .patching import check_pixel_limit, open_image, to_rgb, warn_if_clipped
from .resolution import (FACTOR, MAX_RATIO, PATCH_SIZE, TEMPORAL_PATCH_SIZE, ceil_by_factor, floor_by_factor,
                         grid_tokens, round_by_factor, smart_resize)

__all__ = [
    "MediaDefaults",
    "MEDIA_PRESETS",
    "DEFAULT_PRESET",
    "VideoPlan",
    "VideoInfo",
    "URL_TIMEOUT_S",
    "URL_MAX_BYTES",
    "URL_DEADLINE_S",
    "VIDEO_MAX_BYTES",
    "get_defaults",
    "extract_vision_info",
    "smart_nframes",
    "frame_indices",
    "frame_budget",
    "plan_video",
    "probe_video",
    "fetch_image",
    "fetch_video",
    "process_vision_info",
    "load_source",
    "is_video_path",
]

URL_TIMEOUT_S = 10.0  # per socket operation (connect, each read)
URL_DEADLINE_S = 120.0  # for a whole download: a server trickling bytes cannot hold a fetch longer
URL_MAX_BYTES = 64 * 2**20  # 64 MiB
# A decoded video (float32 [T, 3, H', W']) may take at most this much memory. The presets stay well
# below: 0.0.10's budget at most 2 * 90.3M pixels = 2.0 GiB, 0.0.8's 768 frames at the floor 0.9 GiB.
VIDEO_MAX_BYTES = 4 * 2**30
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts")


# ---------------------------------------------------------------------------------------------
# Presets: qwen-vl-utils' constants, by release
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaDefaults:
    """The constants of one qwen-vl-utils release (names as in its ``vision_process.py``)."""

    name: str
    video_total_pixels: float  # VIDEO_TOTAL_PIXELS: the pixel budget of a whole video
    nframes_rounding: Literal["round", "floor"]  # smart_nframes: 0.0.8 rounds, 0.0.10 floors (and clamps to total)
    # an item's max_pixels: 0.0.8 replaces the per-frame budget, 0.0.10 can only lower it
    max_pixels_override: Literal["replace", "min"]
    alpha: Literal["drop", "white"]  # RGBA → RGB: 0.0.8 drops alpha (convert("RGB")), 0.0.10 composites over white
    token_cap: int | None = None  # hard cap on a video's merged tokens (the paper's 16384); None: no cap
    image_factor: int = FACTOR  # IMAGE_FACTOR
    min_pixels: int = 4 * 28 * 28  # MIN_PIXELS (images)
    max_pixels: int = 16384 * 28 * 28  # MAX_PIXELS (images)
    max_ratio: int = MAX_RATIO
    video_min_pixels: int = 128 * 28 * 28  # VIDEO_MIN_PIXELS (per frame)
    video_max_pixels: int = 768 * 28 * 28  # VIDEO_MAX_PIXELS (per frame)
    frame_factor: int = TEMPORAL_PATCH_SIZE  # FRAME_FACTOR: frames per temporal patch
    fps: float = 2.0  # FPS
    fps_min_frames: int = 4  # FPS_MIN_FRAMES
    fps_max_frames: int = 768  # FPS_MAX_FRAMES
    source: str = field(default="", compare=False)

    @property
    def video_token_budget(self) -> float:
        """Merged tokens the total budget allows: total_pixels / (28*28)."""
        return self.video_total_pixels / self.image_factor**2


MEDIA_PRESETS: dict[str, MediaDefaults] = {
    "0.0.8": MediaDefaults(
        name="0.0.8", video_total_pixels=24576 * 28 * 28, nframes_rounding="round", max_pixels_override="replace",
        alpha="drop", source="qwen-vl-utils 0.0.8 (Qwen2-VL era; the seed's and the dev extra's release)"),
    "0.0.10": MediaDefaults(
        name="0.0.10", video_total_pixels=int(128000 * 28 * 28 * 0.9), nframes_rounding="floor",
        max_pixels_override="min", alpha="white",
        source="qwen-vl-utils 0.0.10 (Qwen2.5-VL era; budget sized for a 128K-token context)"),
    "paper": MediaDefaults(
        name="paper", video_total_pixels=16384 * 28 * 28, video_min_pixels=4 * 28 * 28, nframes_rounding="round",
        max_pixels_override="replace", alpha="drop", token_cap=16384,
        source="Qwen2-VL paper §2.1: 2 fps, frame resolution adjusted so a video has at most 16384 tokens "
               "(0.0.8 rules, budget 16384*28*28, per-frame floor lowered to 4 tokens, cap checked)"),
}
DEFAULT_PRESET = "0.0.8"


def get_defaults(defaults: str | MediaDefaults | None = None) -> MediaDefaults:
    """A preset by name (``"0.0.8"`` default, ``"0.0.10"``, ``"paper"``) or a custom ``MediaDefaults``."""
    if defaults is None:
        return MEDIA_PRESETS[DEFAULT_PRESET]
    if isinstance(defaults, MediaDefaults):
        return defaults
    if defaults not in MEDIA_PRESETS:
        raise ValueError(f"unknown media preset {defaults!r}; choose one of {sorted(MEDIA_PRESETS)}")
    return MEDIA_PRESETS[defaults]


# ---------------------------------------------------------------------------------------------
# Sources: path, file:// URI, http(s) URL, data: URI, PIL image
# ---------------------------------------------------------------------------------------------
def _short(source: Any, limit: int = 200) -> str:
    """How an item's source is named in errors: paths and URLs in full, data URIs and lists shortened."""
    if isinstance(source, Image.Image):
        return f"PIL image {source.width}x{source.height}"
    if isinstance(source, (list, tuple)):
        return f"list of {len(source)} frames"
    text = str(source)
    if text.startswith("data:"):
        limit = 40
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class _Deadline:
    """A total time limit for one download: when it expires, the sockets of the download are shut.

    A socket timeout bounds each read only: a server that sends its headers, then one byte every
    few seconds, never trips it. This timer covers the whole request — connect, headers, body and
    redirects (every connection the opener makes registers its socket here).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds, self.expired = seconds, False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:  # the plain-socket shutdown (also for TLS sockets): a blocked read in the other thread returns
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def connection(self, base: type) -> type:
        """``base`` (HTTPConnection / HTTPSConnection) whose sockets this deadline can shut."""
        deadline = self

        class Connection(base):
            def connect(self) -> None:
                super().connect()
                deadline.register(self.sock)

        return Connection

    def opener(self) -> urllib.request.OpenerDirector:
        deadline = self

        class HTTP(urllib.request.HTTPHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(deadline.connection(http_class), req, **kwargs)

        class HTTPS(urllib.request.HTTPSHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(deadline.connection(http_class), req, **kwargs)

        return urllib.request.build_opener(HTTP, HTTPS)

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def _check_limit(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: {key} must be a finite number > 0, got {value!r}")
    return value


def _download(url: str, *, name: str | None = None, timeout: float = URL_TIMEOUT_S, max_bytes: int = URL_MAX_BYTES,
              deadline: float = URL_DEADLINE_S, sink: io.IOBase | None = None) -> bytes | None:
    """GET ``url`` (stdlib only); into ``sink`` if given, else returned.

    Three limits: ``timeout`` per socket operation, ``deadline`` seconds for the whole download
    (connect, headers, body), ``max_bytes`` (the declared Content-Length and the bytes received).
    """
    name = name or url
    for key, value in (("timeout", timeout), ("deadline", deadline), ("max_bytes", max_bytes)):
        _check_limit(name, key, value)
    request = urllib.request.Request(url, headers={"User-Agent": "qwenvl-study"})
    received = 0
    watch = _Deadline(deadline)

    def too_slow() -> ValueError:
        return ValueError(f"{name}: the download of {url} did not finish within the deadline of {deadline} s "
                          f"({received} bytes received; media.URL_DEADLINE_S, or pass deadline=...)")

    try:
        with watch, watch.opener().open(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            declared = response.headers.get("Content-Length")
            declared = int(declared) if declared is not None and declared.isdigit() else None
            if declared is not None and declared > max_bytes:
                raise ValueError(f"{name}: {declared} bytes is over the download limit of {max_bytes} bytes")
            buffer = sink if sink is not None else io.BytesIO()
            while chunk := response.read(1 << 16):
                received += len(chunk)
                if received > max_bytes:
                    raise ValueError(f"{name}: more than the download limit of {max_bytes} bytes")
                buffer.write(chunk)
            if watch.expired:
                raise too_slow()
            if declared is not None and received < declared:
                raise ValueError(f"{name}: the connection closed after {received} of the {declared} bytes of {url}")
    except urllib.error.HTTPError as err:
        raise ValueError(f"{name}: download failed with HTTP {err.code} ({err.reason})") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:  # offline, refused, DNS, timeout
        if watch.expired:
            raise too_slow() from None
        reason = getattr(err, "reason", err)
        raise ValueError(f"{name}: {url} cannot be reached ({reason}; timeout {timeout} s) — offline? "
                         f"Use a local path instead") from None
    return None if sink is not None else buffer.getvalue()


def load_source(source: Any, *, name: str, timeout: float = URL_TIMEOUT_S, max_bytes: int = URL_MAX_BYTES,
                deadline: float = URL_DEADLINE_S) -> Image.Image | Path | bytes:
    """Resolve an image/video source to a PIL image, a local path, or downloaded/decoded bytes."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise ValueError(f"{name}: unsupported source of type {type(source).__name__}; expected a path, "
                         f"file:// URI, http(s) URL, data:image/...;base64 URI or a PIL image")
    if source.startswith(("http://", "https://")):
        return _download(source, name=name, timeout=timeout, max_bytes=max_bytes, deadline=deadline)
    if source.startswith("file://"):
        return Path(source[7:])  # as qwen-vl-utils: the rest of the URI is the path
    if source.startswith("data:"):
        head, sep, payload = source.partition("base64,")
        if not sep or not head.startswith("data:image"):
            raise ValueError(f"{name}: only data:image/...;base64, URIs are supported")
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError as err:
            raise ValueError(f"{name}: invalid base64 payload ({err})") from None
        if len(data) > max_bytes:
            raise ValueError(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
        return data
    return Path(source)


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
def _rgb(image: Image.Image, alpha: str, name: str) -> Image.Image:
    if alpha == "drop":
        warn_if_clipped(image, name=name)
        return image.convert("RGB")
    return to_rgb(image, name=name)


def _flag(ele: dict, key: str, default: bool, name: str) -> bool:
    value = ele.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name}: {key} must be True or False, got {value!r}")
    return value


def _resize_target(ele: dict, height: int, width: int, *, min_pixels: float, max_pixels: float,
                   d: MediaDefaults, name: str) -> tuple[int, int]:
    """(H', W') by qwen-vl-utils' rule: explicit resized_height/width, else the item's pixel bounds."""
    try:
        if "resized_height" in ele and "resized_width" in ele:
            rh, rw = smart_resize(int(ele["resized_height"]), int(ele["resized_width"]), factor=d.image_factor,
                                  min_pixels=d.min_pixels, max_pixels=d.max_pixels, rule="qwen-vl-utils")
        else:
            rh, rw = smart_resize(height, width, factor=d.image_factor, min_pixels=min_pixels,
                                  max_pixels=max_pixels, rule="qwen-vl-utils")
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    # before any pixel is allocated: a min_pixels of 1e9 would otherwise make a 31640x31640 image
    check_pixel_limit(rh, rw, name=name, why=f" (from min_pixels={min_pixels!r}, max_pixels={max_pixels!r})")
    return rh, rw


def fetch_image(ele: dict, *, defaults: str | MediaDefaults | None = None, name: str | None = None,
                timeout: float = URL_TIMEOUT_S, max_bytes: int = URL_MAX_BYTES, deadline: float = URL_DEADLINE_S,
                exif_transpose: bool = False) -> Image.Image:
    """One ``{"image": ...}`` (or ``"image_url"``) item → a resized PIL RGB image (qwen-vl-utils' fetch_image).

    Per-item keys: ``min_pixels``, ``max_pixels`` (defaults 3136 and 12845056), or both
    ``resized_height`` and ``resized_width`` (rounded to multiples of 28 by smart_resize). A GIF
    becomes its first frame, as PIL, qwen-vl-utils and the processor all read it. The resized
    image must stay within PIL's decompression-bomb limit ``Image.MAX_IMAGE_PIXELS`` (ValueError
    before any pixel is allocated).

    EXIF orientation is **ignored** by default, as qwen-vl-utils 0.0.8 does (a phone photo tagged
    "rotate 90°" is read sideways, exactly as the reference reads it); transformers' ``load_image``
    applies it. Opt in with ``exif_transpose=True`` here or ``"exif_transpose": True`` in the item
    (PIL's ``ImageOps.exif_transpose`` before the resize). 16-bit / 32-bit / float images (PIL
    modes I;16, I, F) are converted to 8 bits by clipping to 0..255, as the reference does, with a
    warning naming the mode.
    """
    d = get_defaults(defaults)
    source = ele.get("image", ele.get("image_url"))
    if isinstance(source, dict) and "url" in source:  # OpenAI style {"image_url": {"url": ...}}
        source = source["url"]
    name = name or f"image {_short(source)}"
    if source is None:
        raise ValueError(f"{name}: the item has no 'image' or 'image_url' value")
    resolved = load_source(source, name=name, timeout=timeout, max_bytes=max_bytes, deadline=deadline)
    image = open_image(resolved, name=name)
    if _flag(ele, "exif_transpose", exif_transpose, name):
        image = ImageOps.exif_transpose(image)  # [H, W] -> [W, H] for orientations 5-8
    image = _rgb(image, d.alpha, name)
    min_pixels = ele.get("min_pixels", d.min_pixels)
    max_pixels = ele.get("max_pixels", d.max_pixels)
    rh, rw = _resize_target(ele, image.height, image.width, min_pixels=min_pixels, max_pixels=max_pixels, d=d,
                            name=name)
    return image.resize((rw, rh), resample=Image.Resampling.BICUBIC)


# ---------------------------------------------------------------------------------------------
# Videos: how many frames, which ones, how large
# ---------------------------------------------------------------------------------------------
def _check_number(name: str, item: str, value: Any, *, positive: bool = True) -> None:
    """An item's numeric key must be a finite number (> 0 unless ``positive=False``: then >= 0)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value < 0 or (positive and value == 0)):  # numpy numbers are numbers; bools are not
        limit = "> 0" if positive else ">= 0"
        raise ValueError(f"{item}: {name} must be a number {limit}, got {value!r}")


def smart_nframes(ele: dict, total_frames: int, video_fps: float, *,
                  defaults: str | MediaDefaults | None = None, name: str = "video") -> int:
    """How many frames to sample (even), as qwen-vl-utils' ``smart_nframes`` of the preset's release.

    ``nframes`` given: rounded to even. Else ``total_frames / video_fps * fps`` (fps default 2)
    clamped to [min_frames (4, ceil to even), max_frames (min(768, total_frames), floor to even)],
    then rounded (0.0.8) — or also clamped to total_frames and floored (0.0.10). The result must lie
    in [2, total_frames].
    """
    d = get_defaults(defaults)
    f = d.frame_factor
    if "fps" in ele and "nframes" in ele:
        raise ValueError(f"{name}: give either 'fps' or 'nframes', not both (got fps={ele['fps']!r}, "
                         f"nframes={ele['nframes']!r})")
    if total_frames < 1:
        raise ValueError(f"{name}: has no video frames")
    if not video_fps or video_fps <= 0:
        raise ValueError(f"{name}: unknown or non-positive frame rate {video_fps!r}")
    for key in ("nframes", "fps", "min_frames", "max_frames"):
        if key in ele:
            _check_number(key, name, ele[key])
    if "nframes" in ele:
        nframes = round_by_factor(ele["nframes"], f)
    else:
        fps = ele.get("fps", d.fps)
        min_frames = ceil_by_factor(ele.get("min_frames", d.fps_min_frames), f)
        max_frames = floor_by_factor(ele.get("max_frames", min(d.fps_max_frames, total_frames)), f)
        nframes = total_frames / video_fps * fps
        if d.nframes_rounding == "round":
            nframes = round_by_factor(min(max(nframes, min_frames), max_frames), f)
        else:
            nframes = floor_by_factor(min(min(max(nframes, min_frames), max_frames), total_frames), f)
    if not (f <= nframes <= total_frames):
        hint = " — a still image is an image item, not a video" if total_frames < f else ""
        raise ValueError(f"{name}: nframes must lie in [{f}, {total_frames}] (the video's frame count), "
                         f"got {nframes}{hint}")
    return int(nframes)


def frame_indices(total_frames: int, nframes: int) -> list[int]:
    """Indices of the sampled frames: ``torch.linspace(0, total - 1, nframes).round()`` (float32, as qwen-vl-utils)."""
    if total_frames < 1 or nframes < 1:
        raise ValueError(f"frame_indices: need total_frames >= 1 and nframes >= 1, got {total_frames} and {nframes}")
    return torch.linspace(0, total_frames - 1, nframes).round().long().tolist()


def frame_budget(nframes: int, ele: dict, d: MediaDefaults, *, name: str = "video") -> tuple[float, float, str]:
    """(min_pixels, max_pixels, which limit binds) per frame for a video of ``nframes`` sampled frames."""
    for key in ("min_pixels", "max_pixels", "total_pixels"):
        if key in ele:
            _check_number(key, name, ele[key])
    min_pixels = ele.get("min_pixels", d.video_min_pixels)
    total_pixels = ele.get("total_pixels", d.video_total_pixels)
    share = total_pixels / nframes * d.frame_factor
    floor = int(min_pixels * 1.05)
    max_pixels = max(min(d.video_max_pixels, share), floor)
    if share >= d.video_max_pixels:
        limit = "per-frame max"
    elif share >= floor:
        limit = "total budget"
    else:
        limit = "per-frame floor (total budget exceeded)"
    if "max_pixels" in ele:
        given = ele["max_pixels"]
        if d.max_pixels_override == "replace" or given < max_pixels:
            max_pixels, limit = given, "item max_pixels"
    return min_pixels, max_pixels, limit


@dataclass(frozen=True)
class VideoPlan:
    """Everything decided about a video before a pixel is decoded."""

    total_frames: int  # frames in the (trimmed) range
    video_fps: float
    height: int
    width: int
    nframes: int  # sampled, even
    indices: tuple[int, ...]  # into the range
    resized_height: int
    resized_width: int
    min_pixels: float
    max_pixels: float  # the per-frame budget smart_resize used
    limit: str  # which bound set max_pixels
    preset: str
    capped: bool = False  # frames dropped to honour the preset's token cap
    start_time: float = 0.0

    @property
    def grid_thw(self) -> tuple[int, int, int]:
        """(t, h, w) in patches: frames in pairs (nframes is even), 14-pixel patches."""
        return _video_grid(self.nframes, self.resized_height, self.resized_width)

    @property
    def tokens(self) -> int:
        """Merged LLM tokens (without ``<|vision_start|>`` / ``<|vision_end|>``): t * h * w / 4."""
        return grid_tokens(self.grid_thw)

    @property
    def duration(self) -> float:
        return self.total_frames / self.video_fps

    @property
    def sample_fps(self) -> float:
        """Frames per second actually sampled (qwen-vl-utils 0.0.10's ``sample_fps``)."""
        return self.nframes / max(self.total_frames, 1e-6) * self.video_fps

    @property
    def times(self) -> tuple[float, ...]:
        """Timestamps (s) of the sampled frames, assuming a constant frame rate."""
        return tuple(self.start_time + i / self.video_fps for i in self.indices)


def _video_grid(nframes: int, resized_height: int, resized_width: int) -> tuple[int, int, int]:
    """(t, h, w) patch grid of ``nframes`` frames already resized to multiples of 28."""
    return math.ceil(nframes / TEMPORAL_PATCH_SIZE), resized_height // PATCH_SIZE, resized_width // PATCH_SIZE


def plan_video(total_frames: int, video_fps: float, height: int, width: int, ele: dict | None = None, *,
               defaults: str | MediaDefaults | None = None, name: str = "video") -> VideoPlan:
    """Frames to sample and their size for a video of ``total_frames`` HxW frames at ``video_fps``.

    Pure arithmetic (no decoding): ``smart_nframes`` → ``frame_indices`` → per-frame budget →
    ``smart_resize``. With a preset ``token_cap`` (the paper's 16384), frames are dropped two at a
    time (re-planning the budget) until the video fits.
    """
    ele = ele or {}
    d = get_defaults(defaults)
    _time_range(ele, name)  # video_start / video_end: finite, >= 0, in order
    nframes = smart_nframes(ele, total_frames, video_fps, defaults=d, name=name)

    def size_for(n: int) -> tuple[int, int, float, float, str]:
        min_pixels, max_pixels, limit = frame_budget(n, ele, d, name=name)
        rh, rw = _resize_target(ele, height, width, min_pixels=min_pixels, max_pixels=max_pixels, d=d, name=name)
        return rh, rw, min_pixels, max_pixels, limit

    rh, rw, min_pixels, max_pixels, limit = size_for(nframes)
    capped = False
    if d.token_cap is not None:
        while nframes > d.frame_factor and grid_tokens(_video_grid(nframes, rh, rw)) > d.token_cap:
            nframes -= d.frame_factor
            rh, rw, min_pixels, max_pixels, limit = size_for(nframes)
            capped = True
        if capped:
            limit = f"token cap {d.token_cap} (frames dropped)"
    nbytes = nframes * 3 * rh * rw * 4  # the float32 [T, 3, H', W'] tensor decoding fills
    if nbytes > VIDEO_MAX_BYTES:
        raise ValueError(f"{name}: the decoded video would be {nframes} frames of {rw}x{rh} = {nbytes / 2**30:.1f} GiB "
                         f"(float32 [T, 3, H', W']), over the limit of {VIDEO_MAX_BYTES / 2**30:g} GiB "
                         f"(media.VIDEO_MAX_BYTES); lower nframes / fps / min_pixels / max_pixels / total_pixels")
    return VideoPlan(total_frames=total_frames, video_fps=float(video_fps), height=height, width=width,
                     nframes=nframes, indices=tuple(frame_indices(total_frames, nframes)), resized_height=rh,
                     resized_width=rw, min_pixels=min_pixels, max_pixels=max_pixels, limit=limit, preset=d.name,
                     capped=capped, start_time=float(ele.get("video_start", 0.0) or 0.0))


# ---------------------------------------------------------------------------------------------
# Videos: PyAV, streaming
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoInfo:
    """What the container says (pass 1: packet timestamps only, nothing decoded)."""

    path: str
    codec: str
    width: int
    height: int
    video_fps: float
    pts: tuple[int, ...]  # sorted timestamps of the frames in range (stream time_base units)
    time_base: Fraction
    container_frames: int  # frames in the whole stream

    @property
    def total_frames(self) -> int:
        return len(self.pts)


def _time_range(ele: dict, name: str) -> tuple[Fraction | None, Fraction | None]:
    start, end = ele.get("video_start"), ele.get("video_end")
    for key, value in (("video_start", start), ("video_end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                  or not math.isfinite(value) or value < 0):
            raise ValueError(f"{name}: {key} must be a finite number of seconds >= 0, got {value!r}")
    if start is not None and end is not None and start > end:
        raise ValueError(f"{name}: video_start={start} s is after video_end={end} s")
    return (Fraction(float(start)) if start is not None else None), (Fraction(float(end)) if end is not None else None)


def _open_container(path: Path, name: str):
    import av

    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{name}: not a readable video — corrupt, truncated or not a video format "
                         f"(PyAV/FFmpeg: {err})") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{name}: the file has no video stream")
    return container


def probe_video(path: str | os.PathLike, ele: dict | None = None, *, name: str | None = None) -> VideoInfo:
    """Pass 1: frame rate, size and the timestamps of the frames in [video_start, video_end], by demuxing only."""
    import av

    ele = ele or {}
    path = Path(path)
    name = name or f"video {_short(str(path))}"
    start, end = _time_range(ele, name)
    container = _open_container(path, name)
    try:
        stream = container.streams.video[0]
        tb = stream.time_base or Fraction(1, 1)
        all_pts = []
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    all_pts.append(packet.pts)
        except av.error.FFmpegError as err:
            raise ValueError(f"{name}: corrupt or truncated video (while reading packets: {err})") from None
        all_pts.sort()
        declared = stream.frames  # from the container's index (mp4, mov, …); 0 where unknown (GIF, webm)
        if declared and len(all_pts) < declared:
            raise ValueError(f"{name}: corrupt or truncated video: the container lists {declared} frames but only "
                             f"{len(all_pts)} could be read")
        rate = stream.average_rate or stream.guessed_rate
        if not rate and len(all_pts) > 1:  # no declared rate: frames over the span they cover
            rate = Fraction(len(all_pts) - 1) / ((all_pts[-1] - all_pts[0]) * tb)
        width, height = stream.codec_context.width, stream.codec_context.height
        codec = stream.codec_context.name
    finally:
        container.close()
    if not all_pts:
        raise ValueError(f"{name}: has no video frames")
    if not width or not height:
        raise ValueError(f"{name}: frame size unknown ({width}x{height})")
    in_range = [p for p in all_pts if (start is None or p * tb >= start) and (end is None or p * tb <= end)]
    if not in_range:
        span = f"[{float(start or 0)}, {float(end) if end is not None else 'end'}] s"
        raise ValueError(f"{name}: no frames between video_start and video_end {span}; the video lasts "
                         f"{float((all_pts[-1] - all_pts[0]) * tb):.2f} s")
    return VideoInfo(path=str(path), codec=codec, width=width, height=height,
                     video_fps=float(rate) if rate else 0.0, pts=tuple(in_range), time_base=Fraction(tb),
                     container_frames=len(all_pts))


class _Callback:
    def __init__(self, fn):
        self.fn, self.n = fn, 0

    def update(self, k: int) -> None:
        self.n += k
        self.fn(self.n)

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, progress: Any):
    """A tqdm bar on stderr (``progress=True``), a callback counter (a callable), or nothing."""
    if callable(progress):
        return _Callback(progress)
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)
    except ImportError:  # pragma: no cover - tqdm ships with transformers
        return None


def _frame_to_image(frame) -> Image.Image:
    """A decoded frame as a PIL RGB image (FFmpeg's colour conversion, as torchvision's reader)."""
    return frame.to_image()


def _decode_selected(info: VideoInfo, plan: VideoPlan, ele: dict, *, name: str, progress: Any) -> torch.Tensor:
    """Pass 2: decode in order, keep only the planned frames (resized on arrival) → float32 [T, C, H', W']."""
    import av

    wanted: dict[int, list[int]] = {}  # pts -> output slots (an index can repeat only if nframes > frames)
    for slot, k in enumerate(plan.indices):
        wanted.setdefault(info.pts[k], []).append(slot)
    out = torch.empty(plan.nframes, 3, plan.resized_height, plan.resized_width, dtype=torch.float32)
    filled = 0
    container = _open_container(Path(info.path), name)
    bar = _progress(plan.indices[-1] + 1, f"decoding {Path(info.path).name}", progress)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if ele.get("video_start"):
            container.seek(int(info.pts[0]), stream=stream, backward=True, any_frame=False)  # nearest keyframe before
        try:
            for frame in container.decode(stream):
                if bar is not None:
                    bar.update(1)
                if frame.pts in wanted:
                    image = _frame_to_image(frame)
                    if (image.height, image.width) != (plan.height, plan.width):
                        raise ValueError(f"{name}: frame size {image.width}x{image.height} differs from the "
                                         f"stream's {plan.width}x{plan.height}")
                    image = image.resize((plan.resized_width, plan.resized_height), resample=Image.Resampling.BICUBIC)
                    pixels = torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())  # [H', W', 3] -> [3, H', W']
                    for slot in wanted.pop(frame.pts):
                        out[slot] = pixels
                        filled += 1
                if not wanted:
                    break  # everything sampled: stop decoding
        except av.error.FFmpegError as err:
            raise ValueError(f"{name}: corrupt or truncated video (while decoding: {err})") from None
    finally:
        container.close()
        if bar is not None:
            bar.close()
    if filled != plan.nframes:
        raise ValueError(f"{name}: corrupt or truncated video: decoded {filled} of the {plan.nframes} sampled "
                         f"frames (the container lists {info.container_frames} frames)")
    return out


def _is_video_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def fetch_video(ele: dict, *, defaults: str | MediaDefaults | None = None, name: str | None = None,
                progress: Any = False, timeout: float = URL_TIMEOUT_S, max_bytes: int = URL_MAX_BYTES,
                deadline: float = URL_DEADLINE_S,
                ) -> tuple[torch.Tensor | list[Image.Image], VideoPlan | None]:
    """One ``{"video": ...}`` item → ``(frames, plan)``.

    A path / file:// / URL (mp4, webm, GIF, … anything FFmpeg reads) → float32 ``[T, C, H', W']``
    (0..255) and its :class:`VideoPlan`. A list of frames (paths, URLs, PIL images) → a list of
    resized PIL images (image rules, padded to an even count) and ``None``. ``progress``: True
    for a tqdm bar on stderr, or a callable receiving the number of frames decoded so far.
    """
    d = get_defaults(defaults)
    source = ele.get("video")
    name = name or f"video {_short(source)}"
    if _is_video_list(source):
        if not source:
            raise ValueError(f"{name}: an empty list of frames")
        info = {k: v for k, v in ele.items() if k not in ("type", "video")}
        frames = [fetch_image({"image": frame, **info}, defaults=d, name=f"{name}, frame {i}", timeout=timeout,
                              max_bytes=max_bytes, deadline=deadline) for i, frame in enumerate(source)]
        n = ceil_by_factor(len(frames), d.frame_factor)
        frames += [frames[-1]] * (n - len(frames))
        return frames, None
    if source is None:
        raise ValueError(f"{name}: the item has no 'video' value")
    if isinstance(source, Image.Image) or (isinstance(source, str) and source.startswith("data:")):
        raise ValueError(f"{name}: a video must be a path, file:// URI, http(s) URL or a list of frames")
    with tempfile.TemporaryDirectory(prefix="qwenvl-video-") as tmp:
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            # streamed to a temporary file in chunks (size-capped): never the whole download in memory
            path = Path(tmp) / (Path(source.split("?")[0]).name or "video")
            with open(path, "wb") as sink:
                _download(source, name=name, timeout=timeout, max_bytes=max_bytes, deadline=deadline, sink=sink)
        else:
            path = load_source(source, name=name, timeout=timeout, max_bytes=max_bytes, deadline=deadline)
        video_info = probe_video(path, ele, name=name)
        plan = plan_video(video_info.total_frames, video_info.video_fps, video_info.height, video_info.width, ele,
                          defaults=d, name=name)
        plan = replace(plan, start_time=float(video_info.pts[0] * video_info.time_base))
        frames = _decode_selected(video_info, plan, ele, name=name, progress=progress)
    return frames, plan


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
def extract_vision_info(messages: list[dict] | list[list[dict]]) -> list[tuple[str, dict]]:
    """The vision items of one conversation (or a batch), in order, each with a readable location.

    The qwen-vl-utils rule: any content item with an ``image``, ``image_url`` or ``video`` key, or
    whose ``type`` is ``image`` / ``image_url`` / ``video``.
    """
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts "
                         "(or a list of such lists)")
    conversations = [messages] if isinstance(messages[0], dict) else messages
    items = []
    for c, conversation in enumerate(conversations):
        if not isinstance(conversation, (list, tuple)):
            raise ValueError(f"conversation {c} is not a list of messages")
        for m, message in enumerate(conversation):
            if not isinstance(message, dict) or "content" not in message:
                raise ValueError(f"message {m} must be a dict with a 'content' key, got {_short(message)}")
            content = message["content"]
            if not isinstance(content, list):
                continue
            for i, ele in enumerate(content):
                if not isinstance(ele, dict):
                    raise ValueError(f"message {m}, content item {i}: expected a dict, got {_short(ele)}")
                if ("image" in ele or "image_url" in ele or "video" in ele
                        or ele.get("type") in ("image", "image_url", "video")):
                    where = f"message {m}, content item {i}"
                    items.append((where if len(conversations) == 1 else f"conversation {c}, {where}", ele))
    return items


def process_vision_info(
    messages: list[dict] | list[list[dict]],
    *,
    defaults: str | MediaDefaults | None = None,
    progress: Any = False,
    return_video_plans: bool = False,
    timeout: float = URL_TIMEOUT_S,
    max_bytes: int = URL_MAX_BYTES,
    deadline: float = URL_DEADLINE_S,
):
    """``(images or None, videos or None)`` from qwen-vl-utils-style messages, ready for the processor.

    ``defaults``: the preset (``"0.0.8"`` default, ``"0.0.10"``, ``"paper"``). With
    ``return_video_plans=True`` a third element lists each video's :class:`VideoPlan` (``None`` for
    frame lists). Any bad item raises (ValueError / FileNotFoundError naming the item and the limit)
    before anything is returned.
    """
    d = get_defaults(defaults)
    images, videos, plans = [], [], []
    for where, ele in extract_vision_info(messages):
        if "image" in ele or "image_url" in ele:
            source = ele.get("image", ele.get("image_url"))
            images.append(fetch_image(ele, defaults=d, name=f"{where} (image {_short(source)})", timeout=timeout,
                                      max_bytes=max_bytes, deadline=deadline))
        elif "video" in ele:
            frames, plan = fetch_video(ele, defaults=d, name=f"{where} (video {_short(ele['video'])})",
                                       progress=progress, timeout=timeout, max_bytes=max_bytes,
                                       deadline=deadline)
            videos.append(frames)
            plans.append(plan)
        else:
            raise ValueError(f"{where}: an item of type {ele.get('type')!r} needs an 'image', 'image_url' or "
                             f"'video' key")
    result = (images or None, videos or None)
    return (*result, plans) if return_video_plans else result


def is_video_path(path: str | os.PathLike) -> bool:
    """True for file names FFmpeg containers usually carry (by suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
