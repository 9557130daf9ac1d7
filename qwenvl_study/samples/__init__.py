"""Sample media the project draws itself (nothing is downloaded): the default input of the demo,
the CLI and the notebooks.

``python -m qwenvl_study.samples`` regenerates the shipped files next to this module. The layout
of the sample image is data (``SAMPLE_OBJECTS``), so lessons can use the true boxes of its shapes
(grounding) without guessing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["SAMPLE_IMAGE", "SAMPLE_SIZE", "SAMPLE_OBJECTS", "make_sample_image", "sample_path", "write_samples"]

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


def sample_path(name: str = SAMPLE_IMAGE) -> Path:
    """Path of a shipped sample file (inside the installed package)."""
    path = Path(str(resources.files(__package__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"sample {name!r} is missing from {path.parent}; "
                                f"regenerate with `python -m qwenvl_study.samples`")
    return path


def write_samples(directory: Path | None = None) -> list[Path]:
    """(Re)write the sample files; returns their paths."""
    directory = Path(directory) if directory else Path(__file__).parent
    path = directory / SAMPLE_IMAGE
    make_sample_image().save(path, optimize=True)
    return [path]
