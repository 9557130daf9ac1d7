"""Solutions to the exercises of notebook 07 "Video and GIF"; each asserts its answer.

Run by tests/test_solutions.py (``python notebooks/solutions/07_video_and_gif.py`` works too).
"""

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qwenvl_study import media
from qwenvl_study.patching import preprocess_image, preprocess_video
from qwenvl_study.resolution import count_image_tokens

# 1. 10 s at 30 fps = 300 frames; 10 s x 2 fps = 20 frames (in [4, 768], even) -> t = 10.
#    Budget per frame: 24576*784 / 20 * 2 = 1,926,758 pixels > the per-frame maximum 768*784 = 602,112: the
#    maximum binds. 640x360 rounds to 644x364 (23 and 13 x 28) = 234,416 pixels, inside [100,352, 602,112]:
#    kept. Grid (10, 364/14, 644/14) = (10, 26, 46) -> 10 * 13 * 23 = 2,990 tokens, 2,992 with the wrappers.
#    M-RoPE: max(t, h', w') = max(10, 13, 23) = 23 ids — the width sets the span, not time.
plan = media.plan_video(300, 30.0, 360, 640)
assert plan.nframes == 20 and plan.limit == "per-frame max" and plan.max_pixels == 768 * 28 * 28
assert (plan.resized_width, plan.resized_height) == (644, 364) and plan.grid_thw == (10, 26, 46)
assert plan.tokens == 2990 and max(10, 26 // 2, 46 // 2) == 23
print(f"1. {plan.nframes} frames, 644x364, grid {plan.grid_thw}, {plan.tokens} tokens (+2 = 2992), 23 ids (width)")

# 2. The course lesson's settings: fps 1.0 -> 30 s x 1 = 30 frames (t = 15); the item's max_pixels 151,200
#    replaces the budget: beta = sqrt(1920*1080 / 151,200) = 3.703 -> floor(1080 / 3.703 / 28) = 10 -> 280,
#    floor(1920 / 3.703 / 28) = 18 -> 504. Grid (15, 20, 36) -> 15 * 10 * 18 = 2,700 tokens.
#    Defaults: 60 frames (t = 30); 24576*784 / 60 * 2 = 642,253 > 602,112: the per-frame maximum binds;
#    beta = sqrt(2,073,600 / 602,112) = 1.856 -> 20 -> 560 and 36 -> 1008: grid (30, 40, 72) -> 21,600 tokens:
#    8 times more.
demo = media.plan_video(900, 30.0, 1080, 1920, {"fps": 1.0, "max_pixels": 360 * 420})
default = media.plan_video(900, 30.0, 1080, 1920)
assert demo.nframes == 30 and (demo.resized_width, demo.resized_height) == (504, 280) and demo.tokens == 2700
assert default.nframes == 60 and (default.resized_width, default.resized_height) == (1008, 560)
assert default.tokens == 21600 and default.tokens // demo.tokens == 8
print(f"2. course settings: 30 frames of 504x280, {demo.tokens} tokens; defaults: 60 frames of 1008x560, "
      f"{default.tokens} tokens (8x)")

# 3. A GIF stores durations in 1/100 s: 33 ms is written as 3 -> 30 ms, so the decoder reports 1000/30 = 33.3 fps
#    and 200 frames last 6.0 s (not 6.6): 6.0 x 2 = 12 frames sampled (6.6 x 2 = 13.2 would round to 14).
#    As an image: 112x84 is already a multiple of 28 -> 4x3 = 12 tokens (+2). As a video: 84x112 frames are
#    under the per-frame minimum (100,352 px), scaled up by sqrt(100,352 / 9,408) = 3.27 -> 392x280, grid
#    (6, 20, 28) -> 6 * 10 * 14 = 840 tokens: 70 times the image.
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "counter.gif"
    frames = [Image.new("RGB", (112, 84), (i, 255 - i, 128)) for i in range(200)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=33, loop=0)
    with Image.open(path) as gif:
        stored = gif.info["duration"]
    info = media.probe_video(path)
gif_plan = media.plan_video(info.total_frames, info.video_fps, info.height, info.width)
assert stored == 30 and info.total_frames == 200 and abs(info.video_fps - 1000 / 30) < 1e-6
assert gif_plan.nframes == 12 and media.smart_nframes({}, 200, 1000 / 33) == 14
assert count_image_tokens(84, 112) == 12 + 2 and gif_plan.grid_thw == (6, 20, 28) and gif_plan.tokens == 840
print(f"3. stored {stored} ms -> {info.video_fps:.1f} fps, {info.total_frames / info.video_fps:.1f} s -> "
      f"{gif_plan.nframes} frames (14 at a true 33 ms); as an image 12 tokens, as a video {gif_plan.tokens}")

# 4. (a) The processor pads an image's single frame to two by repeating it, so an image and the 2-frame video of
#    that image give the same rows and grid (1, h, w). (b) A Conv3d of depth 2 over identical frames adds its
#    two time slices of the kernel applied to the same pixels: W0 * x + W1 * x = (W0 + W1) * x, a Conv2d with
#    the kernel summed over time. One set of weights serves images and videos.
rng = np.random.default_rng(0)
image = Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
rows_image, grid_image = preprocess_image(image)
rows_video, grid_video = preprocess_video([image, image])
assert torch.equal(rows_image, rows_video) and grid_image.tolist() == grid_video.tolist() == [[1, 16, 16]]
conv3d = torch.nn.Conv3d(3, 32, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=False)
frame = torch.randn(1, 3, 56, 56)
with torch.no_grad():
    as_video = conv3d(frame[:, :, None].expand(-1, -1, 2, -1, -1))[:, :, 0]  # [1, 3, 2, 56, 56] -> [1, 32, 4, 4]
    as_image = torch.nn.functional.conv2d(frame, conv3d.weight.sum(dim=2), stride=14)  # -> [1, 32, 4, 4]
err = (as_video - as_image).abs().max().item()
assert err <= 1e-5
print(f"4. image rows == 2-frame video rows ({tuple(rows_image.shape)}, grid [1, 16, 16]); "
      f"Conv3d on 2 identical frames == Conv2d with the kernel summed over time (max error {err:.1e})")
