"""Command line: ``qwenvl-study tokens | tour`` (later lessons add ``explain`` and ``download``).

``tokens PATH...`` prints, for each image, what Qwen2-VL makes of it: original size → resized
size, patch grid, patches, merged tokens. ``tour`` is the demo: the course's key facts computed
live with ✔/✘ against transformers, figures written to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .resolution import MAX_PIXELS, MIN_PIXELS, RULES

__all__ = ["main", "COMMANDS"]

# name -> (help, add_arguments(parser), run(args) -> exit code). Lessons register theirs here.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (help, add_arguments, run)
        return run

    return register


def _pixel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-pixels", type=int, default=MIN_PIXELS, help=f"default {MIN_PIXELS} (56*56)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help=f"default {MAX_PIXELS} (28*28*16384)")
    p.add_argument("--rule", choices=RULES, default="transformers", help="which smart_resize rule (default transformers)")


def _tokens_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", type=Path, help="images (default: the bundled sample image)")
    _pixel_args(p)


def describe_image(path: Path, *, min_pixels: int, max_pixels: int, rule: str) -> str:
    """One line: what an image file becomes."""
    from .patching import open_image
    from .resolution import count_image_tokens, image_grid_thw

    image = open_image(path)
    w, h = image.size
    t, gh, gw = image_grid_thw(h, w, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule)
    merged = count_image_tokens(h, w, min_pixels=min_pixels, max_pixels=max_pixels, special_tokens=False, rule=rule)
    return (f"{path}: {w}x{h} (WxH) → resized {gw * 14}x{gh * 14}, grid t={t} h={gh} w={gw}, "
            f"{t * gh * gw} patches → {merged} merged tokens (+2 special = {merged + 2})")


@command("tokens", "original size → resized size, grid, patches, tokens for each image", _tokens_args)
def _tokens(args: argparse.Namespace) -> int:
    from .samples import sample_path

    paths = args.paths or [sample_path()]
    status = 0
    for path in paths:
        try:
            print(describe_image(path, min_pixels=args.min_pixels, max_pixels=args.max_pixels, rule=args.rule))
        except (OSError, ValueError) as err:
            print(f"{path}: error: {err}", file=sys.stderr)
            status = 1
    return status


def _tour_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("outputs"), help="folder for the figures (default outputs/)")


@command("tour", "the course's key facts computed live, ✔/✘ against the reference", _tour_args)
def _tour(args: argparse.Namespace) -> int:
    from .tour import run_tour

    facts = run_tour(args.out)
    return 0 if all(f.ok for f in facts) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwenvl-study", description="How Qwen2-VL sees, computed live.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
