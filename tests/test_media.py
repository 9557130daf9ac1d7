"""media.py: images, GIFs and videos from messages — equal to qwen-vl-utils 0.0.8's own functions.

qwen-vl-utils' pure functions (fetch_image, smart_nframes, the frame-list video path) are called
for real; its video reader needs torchvision, so ``reference.qvu_fetch_video`` runs its real
fetch_video with only the reader (PyAV, whole file) and the resize (PIL bicubic) swapped, and
``reference.qvu_plan_video`` runs it on a shape-only stand-in for videos of any length.
"""

import base64
import http.server
import struct
import threading
import zlib

import av
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from qwenvl_study import media
from qwenvl_study.course import checks
from qwenvl_study.course import reference as ref
from qwenvl_study.patching import preprocess_video as qs_preprocess_video
from qwenvl_study.media import MEDIA_PRESETS, fetch_image, fetch_video, plan_video, process_vision_info, smart_nframes
from qwenvl_study.course.samples import (GIF_FRAME_MS, GIF_FRAMES, GIF_SIZE, VIDEO_FPS, VIDEO_FRAMES, VIDEO_SIZE, sample_path,
                                  write_gif, write_mp4)

MP4, GIF, PNG = str(sample_path("sample.mp4")), str(sample_path("sample.gif")), str(sample_path("sample.png"))


@pytest.fixture(scope="module")
def qvu():
    return ref.qwen_vl_utils()


def _image(h, w, mode, seed=0):
    rng = np.random.default_rng(seed)
    rgba = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    return rgba if mode == "RGBA" else rgba.convert(mode)


# --- images -------------------------------------------------------------------------------------
@given(h=st.integers(1, 300), w=st.integers(1, 300), mode=st.sampled_from(["RGB", "L", "RGBA", "P", "LA"]),
       bounds=st.sampled_from([{}, {"min_pixels": 50_000}, {"max_pixels": 10_000}, {"min_pixels": 3136, "max_pixels": 4000},
                               {"resized_height": 100, "resized_width": 260}]),
       key=st.sampled_from(["image", "image_url"]))
def test_fetch_image_equals_qwen_vl_utils(qvu, h, w, mode, bounds, key):
    assume(max(h, w) / min(h, w) <= 200)
    rh, rw = qvu.smart_resize(h, w, min_pixels=bounds.get("min_pixels", 3136), max_pixels=bounds.get("max_pixels", 12845056))
    assume(rh > 0 and rw > 0)  # qwen-vl-utils can produce a 0-pixel side there (see resolution.py); ours keeps 28
    img = _image(h, w, mode, seed=h * 1000 + w)
    ele = {"type": "image", key: img, **bounds}
    check = checks.fetch_image(ele)
    ours, theirs = check.ours, check.reference
    assert ours.mode == theirs.mode == "RGB" and ours.size == theirs.size
    assert check.ok  # pixels bit-equal


def test_every_image_source_gives_the_same_pixels(qvu, tmp_path):
    data = sample_path().read_bytes()
    sources = [PNG, f"file://{PNG}", sample_path(), Image.open(PNG),
               "data:image/png;base64," + base64.b64encode(data).decode()]
    expected = np.asarray(qvu.fetch_image({"image": PNG}))
    for source in sources:
        assert np.array_equal(np.asarray(fetch_image({"image": source})), expected), source
    assert fetch_image({"image": PNG}).size == (644, 476)


def test_gif_as_image_is_its_first_frame(qvu):
    first = Image.open(GIF).convert("RGB")  # PIL opens a GIF at frame 0
    ours = fetch_image({"image": GIF, "resized_height": GIF_SIZE[1], "resized_width": GIF_SIZE[0]})
    assert ours.size == (168, 112)  # 160x120 rounded to multiples of 28
    assert np.array_equal(np.asarray(ours), np.asarray(first.resize((168, 112), Image.Resampling.BICUBIC)))
    assert np.array_equal(np.asarray(fetch_image({"image": GIF})), np.asarray(qvu.fetch_image({"image": GIF})))


def test_alpha_handling_per_preset():
    img = Image.new("RGBA", (56, 56), (10, 200, 30, 0))  # fully transparent green
    dropped = np.asarray(fetch_image({"image": img}))  # 0.0.8: convert("RGB") keeps the hidden colour
    white = np.asarray(fetch_image({"image": img}, defaults="0.0.10"))  # 0.0.10: over white
    assert (dropped == [10, 200, 30]).all() and (white == 255).all()


# --- URLs (a local server only; nothing leaves the machine) ------------------------------------
@pytest.fixture(scope="module")
def local_server():
    files = {"/sample.png": sample_path().read_bytes(), "/sample.mp4": sample_path("sample.mp4").read_bytes()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            payload = files.get(self.path.split("?")[0])
            if payload is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_image_download_with_size_cap(local_server):
    url = f"{local_server}/sample.png"
    assert np.array_equal(np.asarray(fetch_image({"image": url})), np.asarray(fetch_image({"image": PNG})))
    with pytest.raises(ValueError, match=r"sample\.png': 15777 bytes is over the download limit of 1000 bytes"):
        fetch_image({"image": url}, max_bytes=1000)
    with pytest.raises(ValueError, match=r"missing\.png': download failed with HTTP 404"):
        fetch_image({"image": f"{local_server}/missing.png"})
    remote, plan = fetch_video({"video": f"{local_server}/sample.mp4?x=1", "nframes": 4})
    local, _ = fetch_video({"video": MP4, "nframes": 4})
    assert torch.equal(remote, local) and plan.total_frames == VIDEO_FRAMES


def test_unreachable_url_is_a_clear_error():
    with pytest.raises(ValueError, match=r"message 0, content item 0 \(image 'http://127\.0\.0\.1:9/x\.png'\).*"
                                         r"cannot be reached.*timeout 2\.0 s"):
        process_vision_info([{"role": "user", "content": [{"type": "image", "image": "http://127.0.0.1:9/x.png"}]}],
                            timeout=2.0)


# --- how many frames ----------------------------------------------------------------------------
_ele = st.one_of(
    st.fixed_dictionaries({}, optional={"fps": st.floats(0.1, 30), "min_frames": st.integers(1, 40),
                                        "max_frames": st.integers(1, 900)}),
    st.fixed_dictionaries({"nframes": st.integers(1, 400)}),
)


@given(ele=_ele, total=st.integers(1, 5000), video_fps=st.floats(1, 120))
def test_smart_nframes_equals_qwen_vl_utils(qvu, ele, total, video_fps):
    try:
        expected = qvu.smart_nframes(ele, total_frames=total, video_fps=video_fps)
    except ValueError:
        with pytest.raises(ValueError, match=rf"nframes must lie in \[2, {total}\]"):
            smart_nframes(ele, total, video_fps)
        return
    assert smart_nframes(ele, total, video_fps) == expected
    assert expected % 2 == 0


def test_smart_nframes_releases_differ_and_are_pinned():
    # 5.5 s at 10 fps sampled at 2 fps = 11 frames: 0.0.8 rounds (11/2 = 5.5 → 6 pairs), 0.0.10 floors
    assert smart_nframes({}, 55, 10.0) == 12
    assert smart_nframes({}, 55, 10.0, defaults="0.0.10") == 10
    # a 3-frame clip with max_frames=100: 0.0.8 asks for min_frames = 4 > 3 and fails, 0.0.10 clamps to the clip
    with pytest.raises(ValueError, match=r"nframes must lie in \[2, 3\]"):
        smart_nframes({"max_frames": 100}, 3, 25.0)
    assert smart_nframes({"max_frames": 100}, 3, 25.0, defaults="0.0.10") == 2


@given(total=st.integers(2, 200_000), video_fps=st.floats(5, 60), h=st.integers(28, 4000), w=st.integers(28, 4000),
       extra=st.sampled_from([{}, {"fps": 1.0}, {"nframes": 16}, {"total_pixels": 2_000_000}, {"max_pixels": 200_000},
                              {"min_pixels": 28 * 28 * 64}, {"max_frames": 64}]))
def test_plan_video_equals_qwen_vl_utils_for_any_length(total, video_fps, h, w, extra):
    """Frame indices and frame size, for videos of up to ~2 h: qwen-vl-utils' own fetch_video on a shape-only video."""
    assume(max(h, w) / min(h, w) <= 200)
    try:
        indices, size = ref.qvu_plan_video(total, video_fps, h, w, extra)
    except ValueError:
        with pytest.raises(ValueError):
            plan_video(total, video_fps, h, w, extra)
        return
    plan = plan_video(total, video_fps, h, w, extra)
    assert list(plan.indices) == indices
    if 0 in size:  # qwen-vl-utils' shrink branch can floor a thin side to 0 px; ours keeps 28 (resolution.py)
        assert [28 if s == 0 else s for s in size] == [plan.resized_height, plan.resized_width]
        return
    assert (plan.resized_height, plan.resized_width) == size


# --- decoded videos ------------------------------------------------------------------------------
@pytest.mark.parametrize("ele", [
    {"video": MP4},
    {"video": f"file://{MP4}", "fps": 1.0},
    {"video": MP4, "nframes": 6},
    {"video": MP4, "video_start": 1.0, "video_end": 2.5},
    {"video": MP4, "max_pixels": 60_000, "min_pixels": 28 * 28 * 32, "min_frames": 10},
    {"video": MP4, "total_pixels": 400_000},
    {"video": MP4, "resized_height": 100, "resized_width": 130},
    {"video": GIF},
])
def test_decoded_video_equals_qwen_vl_utils(ele):
    check = checks.fetch_video(ele)
    ours, theirs, plan = check.ours, check.reference, check.details["plan"]
    assert ours.dtype == theirs.dtype == torch.float32
    assert ours.shape == theirs.shape and ours.shape[0] % 2 == 0
    assert check.ok  # torch.equal(ours, theirs)
    assert plan.grid_thw == (ours.shape[0] // 2, ours.shape[2] // 14, ours.shape[3] // 14)


def test_sample_mp4_plan_is_pinned():
    _, plan = fetch_video({"video": MP4})
    # 100 frames at 25 fps = 4 s → 8 frames at 2 fps; 320x240 is under the 128-token floor → 392x280
    assert (plan.total_frames, plan.video_fps, plan.nframes) == (VIDEO_FRAMES, VIDEO_FPS, 8)
    assert plan.indices == (0, 14, 28, 42, 57, 71, 85, 99)
    assert (plan.resized_width, plan.resized_height, plan.tokens) == (392, 280, 4 * 10 * 14)


def test_gif_as_video_takes_its_fps_from_the_frame_durations():
    frames, plan = fetch_video({"type": "video", "video": GIF})
    assert plan.total_frames == GIF_FRAMES and plan.video_fps == 1000 / GIF_FRAME_MS  # 20 frames of 100 ms: 10 fps
    assert plan.nframes == 4  # 2 s at 2 fps, also FPS_MIN_FRAMES
    assert frames.shape == (4, 3, plan.resized_height, plan.resized_width)


def test_streaming_decodes_only_up_to_the_last_sampled_frame(monkeypatch):
    converted, decoded = [], []
    real = media._frame_to_image
    monkeypatch.setattr(media, "_frame_to_image", lambda frame: converted.append(frame.pts) or real(frame))
    frames, plan = fetch_video({"video": MP4, "video_end": 1.0}, progress=decoded.append)  # frames 0..25 in range
    assert len(converted) == plan.nframes == frames.shape[0] == 4  # only the sampled frames become images
    assert plan.indices == (0, 8, 17, 25) and decoded[-1] == 26  # decoding stops at the last sampled frame


def test_frame_list_video_equals_qwen_vl_utils(qvu):
    frames = [_image(90, 120, "RGB", seed=s) for s in range(5)]
    ele = {"type": "video", "video": frames, "max_pixels": 20_000}
    ours, plan = fetch_video(ele)
    theirs = qvu.fetch_video(ele)
    assert plan is None and len(ours) == len(theirs) == 6  # padded to even with the last frame
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours, theirs))


def test_process_vision_info_equals_qwen_vl_utils_on_a_mixed_conversation():
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [
            {"type": "image", "image": PNG, "max_pixels": 100_000},
            {"type": "text", "text": "and"},
            {"type": "video", "video": MP4, "fps": 1.0},
            {"type": "image", "image": GIF},
            {"type": "video", "video": [Image.open(PNG), Image.open(PNG)], "max_pixels": 50_000},
        ]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"image_url": PNG}, {"type": "video", "video": GIF}]},
    ]
    images, videos = process_vision_info(messages)
    ref_images, ref_videos = ref.qvu_process_vision_info(messages)
    assert len(images) == len(ref_images) == 3 and len(videos) == len(ref_videos) == 3
    for a, b in zip(images, ref_images):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(videos, ref_videos):
        if isinstance(a, list):
            assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
        else:
            assert torch.equal(a, b)
    assert process_vision_info([{"role": "user", "content": "just text"}]) == (None, None)


# --- presets and the 16384 cap -------------------------------------------------------------------
def test_presets_token_difference_on_a_ten_minute_1080p_video():
    args = (30 * 600, 30.0, 1080, 1920)  # 10 min at 30 fps
    tokens = {name: plan_video(*args, defaults=name).tokens for name in MEDIA_PRESETS}
    # 768 frames (FPS_MAX_FRAMES) everywhere; the per-frame budgets differ
    assert {name: plan_video(*args, defaults=name).nframes for name in MEDIA_PRESETS} == \
        {"0.0.8": 768, "0.0.10": 768, "paper": 768}
    assert tokens == {"0.0.8": 46080, "0.0.10": 105984, "paper": 12288}
    # 0.0.8 blows its own 24576 budget here: the per-frame floor (1.05 x 128 tokens) binds
    assert plan_video(*args).limit == "per-frame floor (total budget exceeded)"


@given(seconds=st.floats(0.5, 7200), video_fps=st.sampled_from([10.0, 24.0, 25.0, 30.0, 60.0]),
       h=st.integers(28, 4000), w=st.integers(28, 4000))
def test_video_token_budgets(seconds, video_fps, h, w):
    assume(max(h, w) / min(h, w) <= 200)
    total = max(4, int(seconds * video_fps))
    paper = plan_video(total, video_fps, h, w, defaults="paper")
    assert paper.tokens <= 16384  # the paper's cap, for any length and size
    old = plan_video(total, video_fps, h, w)
    if old.nframes * 1.05 * 128 <= 2 * 24576:  # while the per-frame floor does not bind
        assert old.tokens <= 24576  # 0.0.8 realises a 24576-token budget (VIDEO_TOTAL_PIXELS / 784)
    new = plan_video(total, video_fps, h, w, defaults="0.0.10")
    assert new.tokens <= 115200  # int(128000 * 0.9)


# --- bad input: each a clear error naming the item and the limit; nothing returned ---------------
def _png_header_claiming(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _zero_frame_video(path):
    """A container with a video stream and no frames (AVI keeps the stream; mp4 drops an empty track)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.mux(stream.encode())  # flush only
    container.close()
    return path


def _faststart_mp4(path, n=30):
    """An mp4 with its index first, so that a truncated copy still opens."""
    container = av.open(str(path), "w", options={"movflags": "faststart"})
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    container.close()
    return path


def _user(*items):
    return [{"role": "user", "content": list(items)}]


def test_bad_input_errors(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png_header_claiming(100_000, 100_000))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (tmp_path / "truncated.png").write_bytes(sample_path().read_bytes()[:3000])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    (tmp_path / "truncated.mp4").write_bytes(sample_path("sample.mp4").read_bytes()[:6000])
    _zero_frame_video(tmp_path / "empty.avi")
    data = _faststart_mp4(tmp_path / "indexed.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    Image.new("RGB", (300, 1)).save(tmp_path / "thin.png")
    cases = [
        (_user({"type": "image", "image": str(tmp_path / "bomb.png")}),
         r"content item 0 \(image .*bomb\.png'\): larger than PIL's decompression-bomb limit Image\.MAX_IMAGE_PIXELS = \d+"),
        (_user({"type": "image", "image": str(tmp_path / "corrupt.png")}),
         r"corrupt\.png'\): (not a readable image|unreadable or truncated)"),
        (_user({"type": "image", "image": str(tmp_path / "truncated.png")}), r"truncated\.png'\): unreadable or truncated"),
        (_user({"type": "image", "image": str(tmp_path / "notes.txt")}), r"notes\.txt'\): not a readable image"),
        (_user({"type": "video", "video": str(tmp_path / "notes.txt")}), r"notes\.txt'\): not a readable video"),
        (_user({"type": "video", "video": str(tmp_path / "corrupt.mp4")}), r"corrupt\.mp4'\): not a readable video"),
        (_user({"type": "video", "video": str(tmp_path / "truncated.mp4")}), r"truncated\.mp4'\): (not a readable|corrupt)"),
        (_user({"type": "video", "video": str(tmp_path / "cut.mp4")}),
         r"cut\.mp4'\): corrupt or truncated video: the container lists 30 frames but only \d+ could be read"),
        (_user({"type": "video", "video": str(tmp_path / "empty.avi")}), r"empty\.avi'\): has no video frames"),
        (_user({"type": "video", "video": MP4, "fps": 1, "nframes": 4}), r"give either 'fps' or 'nframes', not both"),
        (_user({"type": "video", "video": MP4, "video_start": 3.0, "video_end": 1.0}),
         r"video_start=3\.0 s is after video_end=1\.0 s"),
        (_user({"type": "video", "video": MP4, "video_start": 30.0}),
         r"no frames between video_start and video_end.*lasts 3\.96 s"),
        (_user({"type": "image", "image": str(tmp_path / "thin.png")}),
         r"thin\.png'\): aspect ratio 300\.00 of a 1x300 \(HxW\) image exceeds the limit of 200"),
        (_user({"type": "text", "text": "hi"}, {"type": "image"}), r"content item 1: an item of type 'image' needs"),
        (_user({"type": "video", "video": MP4, "nframes": 400}), r"nframes must lie in \[2, 100\].*got 400"),
        (_user({"type": "video", "video": MP4, "max_pixels": 60_000}), r"min_pixels=100352 is larger than max_pixels=60000"),
        (_user({"type": "video", "video": MP4, "fps": 0}), r"sample\.mp4'\): fps must be a number > 0, got 0"),
        (_user({"type": "video", "video": MP4, "nframes": "8"}), r"nframes must be a number > 0, got '8'"),
        (_user({"type": "video", "video": MP4, "total_pixels": -1}), r"total_pixels must be a number > 0, got -1"),
    ]
    for messages, match in cases:
        with pytest.raises(ValueError, match=match):
            process_vision_info(messages)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        process_vision_info(_user({"type": "image", "image": str(tmp_path / "missing.png")}))


def test_a_bad_item_after_good_ones_returns_nothing(tmp_path):
    messages = _user({"type": "image", "image": PNG}, {"type": "video", "video": MP4},
                     {"type": "image", "image": str(tmp_path / "gone.png")})
    with pytest.raises(FileNotFoundError):
        process_vision_info(messages)


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"unknown media preset '0\.0\.9'; choose one of"):
        process_vision_info(_user({"type": "image", "image": PNG}), defaults="0.0.9")


# --- the shipped samples -------------------------------------------------------------------------
def test_shipped_samples_decode_with_the_expected_frames(tmp_path):
    info = media.probe_video(MP4)
    assert (info.width, info.height, info.total_frames, info.video_fps) == (*VIDEO_SIZE, VIDEO_FRAMES, VIDEO_FPS)
    gif = Image.open(GIF)
    assert gif.size == GIF_SIZE and gif.n_frames == GIF_FRAMES and gif.info["duration"] == GIF_FRAME_MS
    assert media.probe_video(GIF).total_frames == GIF_FRAMES
    for path in (MP4, GIF, PNG):
        assert sample_path(path.rsplit("/", 1)[1]).stat().st_size < 300_000
    # the generator reproduces them (pixels within codec noise, same counts)
    fresh = write_mp4(tmp_path / "v.mp4")
    a, _ = fetch_video({"video": MP4, "nframes": 4})
    b, _ = fetch_video({"video": str(fresh), "nframes": 4})
    assert (a - b).abs().mean() < 1.0
    fresh_gif = Image.open(write_gif(tmp_path / "a.gif"))
    assert fresh_gif.n_frames == GIF_FRAMES and fresh_gif.size == GIF_SIZE


# --- video frames → pixel_values_videos (transformers' parts: PIL normalisation + its video patchify) ---
@settings(max_examples=25)
@given(t=st.integers(1, 5), gh=st.integers(1, 4), gw=st.integers(1, 4), as_pil=st.booleans())
def test_preprocess_video_equals_transformers_parts(t, gh, gw, as_pil):
    assume(gh * gw >= 4)  # at least min_pixels = 56*56: transformers would resize (torchvision) otherwise
    rng = np.random.default_rng(t * 100 + gh * 10 + gw)
    video = torch.from_numpy(rng.integers(0, 256, (t, 3, 28 * gh, 28 * gw)).astype(np.float32))  # [T, 3, H, W]
    frames = [Image.fromarray(f.permute(1, 2, 0).numpy().astype(np.uint8)) for f in video] if as_pil else video
    ours, grid = qs_preprocess_video(frames)
    theirs, ref_grid = ref.hf_video_inputs(frames)
    assert torch.equal(grid, ref_grid) and grid.tolist() == [[(t + 1) // 2, 2 * gh, 2 * gw]]  # odd T: last frame repeated
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_preprocess_video_resizes_like_the_processor_would():
    """Frames the processor would resize: the grid follows transformers' video processor's own
    smart_resize (the resize itself is torchvision's there and cannot run here)."""
    hf = ref.hf_video_processing_module()
    for t, h, w in [(3, 30, 50), (2, 500, 90), (1, 13, 2000)]:
        _, grid = qs_preprocess_video(torch.zeros(t, 3, h, w))
        rh, rw = hf.smart_resize(h, w, factor=28, min_pixels=3136, max_pixels=12845056)
        assert grid.tolist() == [[(t + 1) // 2, rh // 14, rw // 14]]


def test_frame_indices_bad_counts():
    with pytest.raises(ValueError, match="need total_frames >= 1 and nframes >= 1, got 0 and 4"):
        media.frame_indices(0, 4)


def test_preprocess_video_bad_frames():
    with pytest.raises(ValueError, match="same size"):
        qs_preprocess_video([Image.new("RGB", (56, 56)), Image.new("RGB", (84, 56))])
    with pytest.raises(ValueError, match=r"must be \[T, 3, H, W\]"):
        qs_preprocess_video(torch.zeros(2, 56, 56))
