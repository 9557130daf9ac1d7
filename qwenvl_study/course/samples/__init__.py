"""Sample media the project draws itself (nothing is downloaded): the default input of the demo,
the CLI and the notebooks.

``python -m qwenvl_study.course.samples`` regenerates the shipped files next to this module. The layout
of the sample image is data (``SAMPLE_OBJECTS``), so lessons can use the true boxes of its shapes
(grounding) without guessing; likewise the moving ball of the animated samples has a known box in
every frame (``ball_box``).

- ``sample.png``: 640x480 RGB, a title, three shapes and a bar.
- ``sample.gif``: 160x120, 20 frames of 100 ms (10 fps, 2 s): a ball crossing, a frame counter.
- ``sample.mp4``: 320x240, 25 fps, 100 frames (4 s), H.264 (PyAV's libx264; mpeg4 where the
  wheel has no H.264 encoder): the same ball, a frame counter and the time.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["SAMPLE_IMAGE", "SAMPLE_SIZE", "SAMPLE_OBJECTS", "SAMPLE_GIF", "GIF_SIZE", "GIF_FRAMES", "GIF_FRAME_MS",
           "SAMPLE_VIDEO", "VIDEO_SIZE", "VIDEO_FRAMES", "VIDEO_FPS", "make_sample_image", "make_frame", "ball_box",
           "sample_path", "write_samples", "write_gif", "write_mp4"]

SAMPLE_IMAGE = "sample.png"
SAMPLE_SIZE = (640, 480)  # (width, height), like a VGA photo: 644x476 after smart_resize
# name -> (shape, colour, box (x1, y1, x2, y2) in pixels of the 640x480 image)
SAMPLE_OBJECTS: dict[str, tuple[str, str, tuple[int, int, int, int]]] = {
    "red circle": ("ellipse", "#d62728", (60, 170, 220, 330)),
    "green square": ("rectangle", "#2ca02c", (260, 200, 380, 320)),
    "yellow triangle": ("triangle", "#f2c80f", (420, 160, 590, 330)),
    "blue bar": ("rectangle", "#1f77b4", (40, 380, 600, 420)),
}
TITLE = "Qwen2-VL sees 28x28 squares"

SAMPLE_GIF = "sample.gif"
GIF_SIZE = (160, 120)  # (width, height)
GIF_FRAMES = 20
GIF_FRAME_MS = 100  # GIF delays are stored in 1/100 s: 100 ms is exact → 10 fps

SAMPLE_VIDEO = "sample.mp4"
VIDEO_SIZE = (320, 240)  # (width, height)
VIDEO_FRAMES = 100
VIDEO_FPS = 25  # 100 frames / 25 fps = 4 s; sampled at 2 fps → 8 frames → 4 temporal patches
BACKGROUND = "#f4f1ea"
BALL = SAMPLE_OBJECTS["red circle"][1]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no scalable default font
        return ImageFont.load_default()


def make_sample_image() -> Image.Image:
    """The 640x480 RGB sample: a title, three shapes and a bar, on a light background."""
    img = Image.new("RGB", SAMPLE_SIZE, "#f4f1ea")
    draw = ImageDraw.Draw(img)
    draw.text((40, 40), TITLE, fill="#222222", font=_font(34))
    draw.text((40, 95), "a red circle, a green square, a yellow triangle", fill="#444444", font=_font(20))
    for name, (shape, colour, (x1, y1, x2, y2)) in SAMPLE_OBJECTS.items():
        if shape == "ellipse":
            draw.ellipse((x1, y1, x2, y2), fill=colour)
        elif shape == "rectangle":
            draw.rectangle((x1, y1, x2, y2), fill=colour)
        elif shape == "triangle":
            draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=colour)
    draw.text((250, 388), "640 x 480", fill="white", font=_font(22))
    return img


def ball_box(index: int, n_frames: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel box (x1, y1, x2, y2) of the ball in frame ``index`` of ``n_frames`` on a (width, height) canvas.

    The ball (diameter = a quarter of the height) crosses from left to right along a shallow arc,
    so both its x and y change over time: position is a function of the frame index only.
    """
    width, height = size
    d = height // 4
    x = round((width - d) * index / max(1, n_frames - 1))
    y = round((height - d) * (0.55 - 0.3 * math.sin(math.pi * index / max(1, n_frames - 1))))
    return x, y, x + d, y + d


def make_frame(index: int, n_frames: int, size: tuple[int, int], fps: float) -> Image.Image:
    """One frame of the animated samples: the ball, a green square (static) and a frame counter."""
    width, height = size
    img = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(img)
    _, square_colour, _ = SAMPLE_OBJECTS["green square"]
    s = height // 5
    draw.rectangle((width - s - 6, height - s - 6, width - 6, height - 6), fill=square_colour)
    draw.ellipse(ball_box(index, n_frames, size), fill=BALL)
    font = _font(max(10, height // 12))
    draw.text((4, 2), f"frame {index + 1}/{n_frames}", fill="#222222", font=font)
    draw.text((4, 2 + height // 10), f"t = {index / fps:.2f} s", fill="#444444", font=font)
    return img


def write_gif(path: Path, *, n_frames: int = GIF_FRAMES, size: tuple[int, int] = GIF_SIZE,
              frame_ms: int = GIF_FRAME_MS) -> Path:
    """An animated GIF of :func:`make_frame` frames, each shown ``frame_ms`` milliseconds."""
    frames = [make_frame(i, n_frames, size, 1000 / frame_ms) for i in range(n_frames)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0, optimize=True)
    return Path(path)


def write_mp4(path: Path, *, n_frames: int = VIDEO_FRAMES, size: tuple[int, int] = VIDEO_SIZE,
              fps: int = VIDEO_FPS) -> Path:
    """An mp4 of :func:`make_frame` frames encoded with PyAV (H.264 if this wheel has it, else MPEG-4 part 2)."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        # one thread and fixed settings: the same bytes on every machine
        stream.options = {"crf": "30", "preset": "medium", "threads": "1"} if codec == "libx264" else {"qscale": "6"}
        for i in range(n_frames):
            frame = av.VideoFrame.from_image(make_frame(i, n_frames, size, fps))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush
    return Path(path)


def sample_path(name: str = SAMPLE_IMAGE) -> Path:
    """Path of a shipped sample file (inside the installed package)."""
    path = Path(str(resources.files(__package__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"sample {name!r} is missing from {path.parent}; "
                                f"regenerate with `python -m qwenvl_study.course.samples`")
    return path


def write_samples(directory: Path | None = None) -> list[Path]:
    """(Re)write the sample files; returns their paths."""
    directory = Path(directory) if directory else Path(__file__).parent
    path = directory / SAMPLE_IMAGE
    make_sample_image().save(path, optimize=True)
    return [path, write_gif(directory / SAMPLE_GIF), write_mp4(directory / SAMPLE_VIDEO)]
