"""Command line: ``qwenvl-study tokens | explain | tour | download | plan | chat``.

``tokens PATH...`` prints, for each image, what Qwen2-VL makes of it: original size → resized
size, patch grid, patches, merged tokens; for a video (or an animated GIF, also read as a video)
the frames sampled, the per-frame size, the tokens and which budget binds (where the 16384 cap
bites) — from the container's timestamps only, nothing decoded; with ``--prompt "..."`` also the whole
chat prompt's length with the real Qwen2-VL tokenizer (template + text + vision tokens). ``explain PATH --out FIG.png``
draws resize → patches → merged tokens (an image) or the sampled frames and their tubes (a video).
``tour`` is the demo: the course's key facts computed live with ✔/✘ against transformers, figures
written to ``--out``. ``download [REPO]`` fetches a checkpoint (safetensors + configs + tokenizer; Hugging
Face or ModelScope) for the real-weights lesson — the only command that needs a network.
``plan --config 72B --gpus 4x80GB`` prints which layers go on which device and the bytes per device
(computed on the meta device). ``chat [--weights DIR] [--image PATH]... [--video PATH] "question"``
streams the model's answer and prints the prompt's tokens (text / vision), time to first token and
tokens/s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .resolution import MAX_PIXELS, MIN_PIXELS, PATCH_SIZE, RULES

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


def _video_args(p: argparse.ArgumentParser) -> None:
    from .media import DEFAULT_PRESET, MEDIA_PRESETS

    p.add_argument("--preset", choices=sorted(MEDIA_PRESETS), default=DEFAULT_PRESET,
                   help=f"video constants: qwen-vl-utils release or the paper (default {DEFAULT_PRESET})")
    p.add_argument("--fps", type=float, default=None, help="frames per second to sample (default 2)")


def _tokens_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", type=Path,
                   help="images, GIFs or videos (default: the bundled sample image, GIF and mp4; with --prompt: none)")
    p.add_argument("--prompt", default=None,
                   help="a question: also count the whole chat prompt (template + text + vision tokens) with the real "
                        "Qwen2-VL tokenizer, the files as its images / videos in order (a GIF as an image)")
    _pixel_args(p)
    _video_args(p)


def describe_image(path: Path, *, min_pixels: int, max_pixels: int, rule: str) -> str:
    """One line: what an image file becomes."""
    from .patching import open_image
    from .resolution import count_image_tokens, image_grid_thw

    image = open_image(path)
    w, h = image.size
    t, gh, gw = image_grid_thw(h, w, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule)
    merged = count_image_tokens(h, w, min_pixels=min_pixels, max_pixels=max_pixels, special_tokens=False, rule=rule)
    return (f"{path}: {w}x{h} (WxH) → resized {gw * PATCH_SIZE}x{gh * PATCH_SIZE}, grid t={t} h={gh} w={gw}, "
            f"{t * gh * gw} patches → {merged} merged tokens (+2 special = {merged + 2})")


def describe_video(path: Path, *, preset: str, fps: float | None = None) -> str:
    """What a video file becomes: frames sampled, per-frame size, tokens, which budget binds."""
    from .media import get_defaults, plan_video, probe_video
    from .resolution import FACTOR, round_by_factor

    ele = {} if fps is None else {"fps": fps}
    info = probe_video(path)
    plan = plan_video(info.total_frames, info.video_fps, info.height, info.width, ele, defaults=preset,
                      name=str(path))
    d = get_defaults(preset)
    t, gh, gw = plan.grid_thw
    shown = " ".join(map(str, plan.indices[:12])) + (" …" if plan.nframes > 12 else "")
    rounded = max(FACTOR, round_by_factor(plan.height, FACTOR)) * max(FACTOR, round_by_factor(plan.width, FACTOR))
    resized = plan.resized_height * plan.resized_width
    size_note = (f"rounded to multiples of {FACTOR}" if resized == rounded else
                 "upscaled to the per-frame minimum" if resized > rounded else "downscaled to the per-frame budget")
    budget = d.video_token_budget
    per_pair_max = d.video_max_pixels // FACTOR**2
    binds_from = int(2 * d.video_total_pixels / d.video_max_pixels)
    floor_from = int(2 * d.video_total_pixels / (1.05 * d.video_min_pixels))
    cap = f"hard cap {d.token_cap}" if d.token_cap else f"no hard cap (exceeded beyond {floor_from} frames)"
    return "\n".join([
        f"{path}: video {plan.width}x{plan.height} (WxH), {plan.total_frames} frames at {plan.video_fps:g} fps "
        f"({plan.duration:.2f} s), {info.codec}",
        f"  sampled {plan.nframes} frames ({plan.sample_fps:.2f} per s; indices {shown}) → {t} temporal patches "
        f"of 2 frames",
        f"  per-frame pixels ≤ {plan.max_pixels:,.0f} ({plan.limit}), ≥ {plan.min_pixels:,.0f} → resized "
        f"{plan.resized_width}x{plan.resized_height} ({size_note})",
        f"  grid t={t} h={gh} w={gw}: {t * gh * gw} patches → {plan.tokens} merged tokens "
        f"(+2 special = {plan.tokens + 2}); the paper's 16384-token cap: "
        + ("within" if plan.tokens <= 16384 else f"exceeded by {plan.tokens - 16384} (try --preset paper)"),
        f"  budget (preset {d.name}): {budget:,.0f} tokens per video; ≤ {per_pair_max} tokens per frame pair "
        f"up to {binds_from} frames, then the total budget binds; {cap}",
    ])


def _is_animated(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, UnidentifiedImageError):
        return False


def count_prompt_tokens(prompt: str, paths: list[Path], *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                        rule: str = "transformers", preset: str | None = None, fps: float | None = None) -> dict:
    """The whole chat prompt's token count, one user turn (``paths`` as its vision items, then ``prompt``),
    with the real Qwen2-VL tokenizer; the vision grids from the files' sizes / timestamps (nothing decoded).

    Returns ``{"total", "template", "text", "vision", "items": [(path, pads), ...]}``: ``vision`` counts
    each item's merged-token pads plus its ``<|vision_start|>``/``<|vision_end|>``; ``template`` the rest
    (system prompt, ChatML markers, roles); ``total`` = the length of the tokenised, pad-expanded prompt.
    """
    from .chat import build_prompt, expand_vision_pads
    from .media import is_video_path, plan_video, probe_video
    from .patching import open_image
    from .resolution import grid_tokens, image_grid_thw
    from .tokenizer import qwen2_tokenizer

    content, image_grids, video_grids = [], [], []
    for path in paths:
        if is_video_path(path):
            info = probe_video(path)
            ele = {} if fps is None else {"fps": fps}
            plan = plan_video(info.total_frames, info.video_fps, info.height, info.width, ele, defaults=preset,
                              name=str(path))
            content.append({"type": "video", "video": str(path)})
            video_grids.append(tuple(plan.grid_thw))
        else:
            w, h = open_image(path).size
            content.append({"type": "image", "image": str(path)})
            image_grids.append(image_grid_thw(h, w, min_pixels=min_pixels, max_pixels=max_pixels, rule=rule))
    content.append({"type": "text", "text": prompt})
    text = expand_vision_pads(build_prompt([{"role": "user", "content": content}]),
                              image_grids or None, video_grids or None)
    tokenizer = qwen2_tokenizer()
    total = len(tokenizer(text)["input_ids"])
    text_tokens = len(tokenizer(prompt)["input_ids"])  # special tokens around it: tokenised on its own
    grids = iter(image_grids), iter(video_grids)
    items = [(path, grid_tokens(next(grids[is_video_path(path)]))) for path in paths]
    vision = sum(pads + 2 for _, pads in items)
    return {"total": total, "template": total - text_tokens - vision, "text": text_tokens, "vision": vision,
            "items": items}


@command("tokens", "original size → resized size, grid, patches, tokens for each image, GIF or video; "
                   "with --prompt the whole prompt's length", _tokens_args)
def _tokens(args: argparse.Namespace) -> int:
    from .media import is_video_path
    from .course.samples import SAMPLE_GIF, SAMPLE_VIDEO, sample_path

    paths = args.paths or ([] if args.prompt is not None else
                           [sample_path(), sample_path(SAMPLE_GIF), sample_path(SAMPLE_VIDEO)])
    status = 0
    for path in paths:
        try:
            if is_video_path(path):
                print(describe_video(path, preset=args.preset, fps=args.fps))
                continue
            print(describe_image(path, min_pixels=args.min_pixels, max_pixels=args.max_pixels, rule=args.rule))
            if _is_animated(path):  # an animated GIF: as an image (first frame, above) and as a video
                print(describe_video(path, preset=args.preset, fps=args.fps))
        except (OSError, ValueError) as err:
            print(f"{path}: error: {err}", file=sys.stderr)
            status = 1
    if args.prompt is not None and status == 0:
        n = count_prompt_tokens(args.prompt, paths, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
                                rule=args.rule, preset=args.preset, fps=args.fps)
        per_item = ", ".join(f"{Path(p).name} {pads} + 2" for p, pads in n["items"])
        print(f"prompt: {n['total']} tokens = template {n['template']} + text {n['text']} + vision {n['vision']}"
              + (f" ({per_item})" if per_item else "") + " [Qwen2-VL tokenizer, one user turn, generation prompt]")
    return status


def _explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", type=Path, default=None, help="an image, GIF or video (default: the sample image)")
    p.add_argument("--out", type=Path, default=Path("explain.png"), help="figure file (default explain.png)")
    p.add_argument("--video", action="store_true", help="read an animated GIF as a video (default: as an image)")
    _pixel_args(p)
    _video_args(p)


@command("explain", "draw resize → patches → merged tokens (image) or sampled frames → tubes (video)", _explain_args)
def _explain(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .course import figures as viz
    from .media import is_video_path
    from .course.samples import sample_path

    path = args.path or sample_path()
    try:
        if is_video_path(path) or args.video:
            ele = {"video": str(path), **({"fps": args.fps} if args.fps else {})}
            fig = viz.explain_video(ele, defaults=args.preset, progress=True)
        else:
            fig = viz.explain_image(path, min_pixels=args.min_pixels, max_pixels=args.max_pixels, rule=args.rule)
    except (OSError, ValueError) as err:
        print(f"{path}: error: {err}", file=sys.stderr)
        return 1
    print("wrote", viz.savefig(fig, args.out))
    return 0


def _tour_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("outputs"), help="folder for the figures (default outputs/)")


@command("tour", "the course's key facts computed live, ✔/✘ against the reference", _tour_args)
def _tour(args: argparse.Namespace) -> int:
    from .course.tour import passed, run_tour

    return 0 if passed(run_tour(args.out)) else 1


def _download_args(p: argparse.ArgumentParser) -> None:
    from .checkpoint import DEFAULT_REPO

    p.add_argument("repo", nargs="?", default=DEFAULT_REPO, help=f"repository id (default {DEFAULT_REPO})")
    p.add_argument("--local-dir", type=Path, default=None, help="where to put it (default: the hub cache)")
    p.add_argument("--source", choices=("huggingface", "modelscope"), default="huggingface")


@command("download", "download a checkpoint (safetensors, configs, tokenizer) for the real-weights lesson",
         _download_args)
def _download(args: argparse.Namespace) -> int:
    from .checkpoint import download
    from .course.env import WEIGHTS_ENV

    try:
        path = download(args.repo, args.local_dir, source=args.source)
    except Exception as err:  # network, authentication, disk: say what failed, no traceback
        print(f"download of {args.repo} from {args.source} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"downloaded {args.repo} to {path}\nfor lesson 06: export {WEIGHTS_ENV}={path}")
    return 0


def _plan_args(p: argparse.ArgumentParser) -> None:
    from .placement import GPU_SETS

    p.add_argument("--config", choices=("2B", "7B", "72B"), default="72B", help="model size (default 72B)")
    p.add_argument("--gpus", default=None, help=f"COUNTxSIZE, e.g. 4x80GB (default: each of {', '.join(GPU_SETS)})")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16", help="weight dtype (default bf16)")
    p.add_argument("--cpu-memory", type=float, default=0.0, help="GiB of CPU memory for offloaded layers (default 0)")
    p.add_argument("--usable", type=float, default=0.9,
                   help="fraction of each GPU given to weights; the rest for KV cache and activations (default 0.9)")


@command("plan", "which layers go on which GPU / CPU / disk, and bytes per device (meta device)", _plan_args)
def _plan(args: argparse.Namespace) -> int:
    import torch

    from .config import QWEN2_VL_2B, QWEN2_VL_7B, QWEN2_VL_72B
    from .placement import GPU_SETS, parse_gpus, plan_device_map

    config = {"2B": QWEN2_VL_2B, "7B": QWEN2_VL_7B, "72B": QWEN2_VL_72B}[args.config]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    try:
        for spec in [args.gpus] if args.gpus else GPU_SETS:
            plan = plan_device_map(config, parse_gpus(spec), dtype=dtype, cpu_bytes=int(args.cpu_memory * 2**30),
                                   usable=args.usable)
            fits = not plan.bytes_per_device.get("cpu") and not plan.bytes_per_device.get("disk")
            print(f"--gpus {spec} ({args.usable:.0%} of each for weights): "
                  + ("fits on the GPUs" if fits else "does NOT fit on the GPUs: the rest is offloaded"))
            print(plan.format())
    except ValueError as err:
        print(f"plan: error: {err}", file=sys.stderr)
        return 2
    return 0


def _chat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", help="what to ask")
    p.add_argument("--weights", type=Path, default=None,
                   help="a checkpoint directory (safetensors + config.json [+ tokenizer]); default: the course model")
    p.add_argument("--image", type=Path, action="append", default=[], help="an image (repeatable)")
    p.add_argument("--video", type=Path, default=None, help="a video (or animated GIF, read as a video)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="default 128")
    p.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 on CUDA, fp32 on CPU (faster there)")


@command("chat", "ask the model about images / a video; streams the answer, prints tokens and speed", _chat_args)
def _chat(args: argparse.Namespace) -> int:
    import time

    import torch

    from .chat import SPECIAL_TOKENS, TextStreamer, load_tokenizer, model_inputs, prepare_inputs

    if args.max_new_tokens < 1:
        print(f"chat: --max-new-tokens must be >= 1, got {args.max_new_tokens}", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(
        args.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32)
    start = time.perf_counter()
    try:
        if args.weights is not None:
            from .checkpoint import load_pretrained
            from .config import count_parameters, load_config

            config = load_config(args.weights)
            size = count_parameters(config).total * torch.finfo(dtype).bits / 8 / 2**30
            print(f"loading {config.name}: {size:.2f} GiB of weights in {str(dtype).replace('torch.', '')} on "
                  f"{device} ...", file=sys.stderr)
            model = load_pretrained(args.weights, dtype=dtype, device=device)
            tokenizer = load_tokenizer(args.weights)
        else:
            import qwenvl_study

            load_course_model = getattr(qwenvl_study, "load_course_model", None)
            if load_course_model is None:
                print("chat: --weights DIR is required (no course model is installed yet)", file=sys.stderr)
                return 2
            model, tokenizer = load_course_model()
            model = model.to(device)
        # The course model speaks its trimmed vocabulary (local ids) and has its own pixel budget.
        vocab, media = getattr(model, "vocab", None), getattr(model, "media", None)
        options = (lambda video: media.options(video)) if media is not None else (lambda video: {})
        content = ([{"type": "image", "image": str(p), **options(False)} for p in args.image]
                   + ([{"type": "video", "video": str(args.video), **options(True)}] if args.video else [])
                   + [{"type": "text", "text": args.question}])
        messages = [{"role": "user", "content": content}]
        if vocab is None:
            kw = model_inputs(prepare_inputs(messages, tokenizer), device, next(model.parameters()).dtype)
        else:
            from .train.course import encode_messages

            example = encode_messages(messages, tokenizer, vocab, add_generation_prompt=True, media=media)
            kw = {k: v.to(device) for k, v in vars(example).items() if v is not None and k != "labels"}
            kw["input_ids"] = kw["input_ids"][None]  # [L] -> [1, L]
    except (OSError, ValueError) as err:
        print(f"chat: error: {err}", file=sys.stderr)
        return 1
    ids = kw["input_ids"]
    pads = [SPECIAL_TOKENS[t] if vocab is None else vocab.special(t) for t in ("<|image_pad|>", "<|video_pad|>")]
    vision = int(sum((ids == pad).sum() for pad in pads))
    print(f"model loaded in {time.perf_counter() - start:.1f} s on {device} "
          f"({str(next(model.parameters()).dtype).replace('torch.', '')})", file=sys.stderr)
    streamer = TextStreamer(tokenizer)
    stream = streamer if vocab is None else (lambda token: streamer(vocab.to_real(token.cpu())))
    begin = time.perf_counter()
    new = model.generate(**kw, max_new_tokens=args.max_new_tokens, streamer=stream)
    end = time.perf_counter()
    print()
    n, first = new.shape[1], streamer.times[0] - begin if streamer.times else float("nan")
    rate = (n - 1) / (end - streamer.times[0]) if n > 1 else float("nan")
    print(f"prompt {ids.shape[1]} tokens ({ids.shape[1] - vision} text + {vision} vision) | "
          f"time to first token {first:.2f} s | {n} new tokens at {rate:.1f} tok/s", file=sys.stderr)
    return 0


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
