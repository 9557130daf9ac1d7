"""Bad input found by a fuzz run (issue 10, item 5): each one gets a clear error naming the item and
the limit, within seconds and bounded memory — or, where the reference's numbers are kept, a
warning. One test per input; the inputs that used to hang run under an alarm so a regression fails
instead of hanging the suite."""

import contextlib
import http.server
import json
import math
import signal
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

from qwenvl_study import Qwen2VL, load_pretrained
from qwenvl_study.checkpoint import save_pretrained
from qwenvl_study.config import load_config, tiny_config
from qwenvl_study.course import reference as ref
from qwenvl_study.course.samples import sample_path
from qwenvl_study.family.internvl import (MAX_TILES, candidate_grids, dynamic_preprocess, internvl_tile_grid,
                                          published_candidate_grids)
from qwenvl_study.grounding import BadBox, GroundedBox, parse_grounding
from qwenvl_study.media import fetch_image, fetch_video, plan_video, process_vision_info
from qwenvl_study.patching import preprocess_image, preprocess_video, resize_image
from qwenvl_study.resolution import smart_resize

MP4, PNG = str(sample_path("sample.mp4")), str(sample_path("sample.png"))


@contextlib.contextmanager
def within(seconds: int):
    """Fail (instead of hanging) if the block runs longer than ``seconds`` — main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- URL downloads: a total deadline and a size cap (a loopback server only) -------------------
@pytest.fixture(scope="module")
def slow_server():
    """127.0.0.1 only. /body: headers, then 1 byte every 0.2 s; /headers: the status line, then a
    header 1 byte every 0.2 s; /nolength: 5000 bytes with no Content-Length. Each handler stops
    after at most 5 s or when the client goes away."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            try:
                if self.path.startswith("/body"):
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self._trickle(b"x" * 25)
                elif self.path.startswith("/headers"):
                    self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                    self._trickle(b"y" * 25)
                elif self.path.startswith("/nolength"):
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"z" * 5000)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _trickle(self, payload):
            for byte in payload:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_that_trickles_its_body_hits_the_total_deadline(slow_server):
    # before: the 10 s timeout was per read, so 1 byte every 0.2 s (or 5 s) never tripped it
    for fetch, url in ((fetch_image, f"{slow_server}/body.png"), (fetch_video, f"{slow_server}/body.mp4")):
        key = "image" if fetch is fetch_image else "video"
        start = time.monotonic()
        with within(15), pytest.raises(ValueError, match=rf"the download of {url} did not finish within the "
                                                         rf"deadline of 1\.0 s \(\d+ bytes received"):
            fetch({key: url}, deadline=1.0)
        assert time.monotonic() - start < 5


def test_url_that_trickles_its_headers_hits_the_total_deadline(slow_server):
    url = f"{slow_server}/headers.png"
    with within(15), pytest.raises(ValueError, match=r"message 0, content item 0 \(image .*headers\.png'\): the "
                                                     r"download of .* did not finish within the deadline of 1\.5 s"):
        process_vision_info([{"role": "user", "content": [{"type": "image", "image": url}]}], deadline=1.5)


def test_url_without_content_length_is_capped_while_streaming(slow_server):
    with within(15), pytest.raises(ValueError, match=r"nolength\.png': more than the download limit of 1000 bytes"):
        fetch_image({"image": f"{slow_server}/nolength.png"}, max_bytes=1000)
    with pytest.raises(ValueError, match=r"deadline must be a finite number > 0, got nan"):
        fetch_image({"image": f"{slow_server}/nolength.png"}, deadline=math.nan)


# --- caller-controlled sizes are bounded before any work ---------------------------------------
def test_huge_min_pixels_is_refused_before_allocating():
    # before: a 1x1 image with min_pixels=1e9 was resized to 31640x31640 (3 GB)
    tiny = Image.new("RGB", (1, 1))
    with within(10), pytest.raises(ValueError, match=r"image PIL image 1x1: the resized image would be 31640x31640 = "
                                                     r"1001089600 pixels \(from min_pixels=1000000000\.0, max_pixels="
                                                     r"10000000000\.0\), over PIL's decompression-bomb limit "
                                                     r"Image\.MAX_IMAGE_PIXELS = \d+ pixels"):
        fetch_image({"image": tiny, "min_pixels": 1e9, "max_pixels": 1e10})
    with pytest.raises(ValueError, match=r"resized image would be 31640x31640"):
        resize_image(tiny, min_pixels=1e9, max_pixels=1e10)
    with pytest.raises(ValueError, match=r"video frame: the resized image would be"):
        preprocess_video(torch.zeros(2, 3, 28, 28), min_pixels=1e9, max_pixels=1e10)
    # inside the limit nothing changes: the published maximum still resizes
    assert smart_resize(1, 1, min_pixels=12845056, max_pixels=12845056, rule="qwen-vl-utils") == (3584, 3584)


def test_video_too_large_to_decode_is_refused_before_decoding():
    # 768 frames of 1e7 pixels would be a 92 GB float32 tensor
    with pytest.raises(ValueError, match=r"video: the decoded video would be 768 frames of 3164x3164 = 85\.9 GiB "
                                         r"\(float32 \[T, 3, H', W'\]\), over the limit of 4 GiB "
                                         r"\(media\.VIDEO_MAX_BYTES\)"):
        plan_video(768, 2.0, 100, 100, {"nframes": 768, "min_pixels": 1e7, "max_pixels": 1e7})
    # the presets' largest plans stay inside (0.0.10: a long 1080p video at its full budget)
    for preset in ("0.0.8", "0.0.10", "paper"):
        plan = plan_video(30 * 3600, 30.0, 1080, 1920, defaults=preset)
        assert plan.nframes * 3 * plan.resized_height * plan.resized_width * 4 < 2.1 * 2**30


def test_config_with_a_million_layers_fails_before_building_the_model(tmp_path):
    # before: load_pretrained built 1,000,000 decoder layers (minutes, GBs), then listed them missing
    save_pretrained(Qwen2VL(tiny_config()), tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**raw, "num_hidden_layers": 1_000_000}))
    with within(10), pytest.raises(ValueError, match=r"config\.json asks for num_hidden_layers=1000000 layers but "
                                                     r"the checkpoint holds 2 \(model\.layers\.0 \.\. model\.layers\.1\)"):
        load_pretrained(tmp_path)
    raw["vision_config"]["depth"] = 10**6
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with within(10), pytest.raises(ValueError, match=r"asks for depth=1000000 layers but the checkpoint holds 2"):
        load_pretrained(tmp_path)


def test_internvl_max_num_3000_is_refused_and_the_candidates_are_fast():
    # before: internvl_tile_grid(max_num=3000) ran > 120 s (an O(max_num^3) loop over candidates)
    with within(10), pytest.raises(ValueError, match=r"max_num=3000 tiles is over the limit of 256 "
                                                     r"\(internvl\.MAX_TILES; InternVL2 uses 12\)"):
        internvl_tile_grid(1920, 1080, max_num=3000)
    with pytest.raises(ValueError, match=r"InternVL tile canvas: the resized image would be 40000x20000 = 800000000 "
                                         r"pixels \(2 tiles of 20000x20000\), over PIL's decompression-bomb limit"):
        dynamic_preprocess(Image.new("RGB", (100, 50)), image_size=20_000, max_num=4)
    with within(10):
        assert internvl_tile_grid(1920, 1080, max_num=MAX_TILES) == (16, 9)
        assert len(candidate_grids(1, MAX_TILES)) == sum(MAX_TILES // i for i in range(1, MAX_TILES + 1))


@given(lo=st.integers(1, 40), span=st.integers(0, 40))
def test_fast_candidate_grids_equal_the_published_loop(lo, span):
    """Same grids in the same order (the order breaks equal-area ties) as the published set-based loop."""
    assert candidate_grids(lo, lo + span) == published_candidate_grids(lo, lo + span)


# --- parse_grounding ---------------------------------------------------------------------------
BOX = "<|box_start|>{}<|box_end|>"


@pytest.mark.parametrize("body", ["(-5,20),(30,40)", "(10.5,20),(30,40)", "(10,20),(30)", "(10,20,30)", "a cat"])
def test_bad_box_inside_box_tokens_raises_naming_it(body):
    # before: silently dropped (the docstring promised ValueError)
    text = "the cat " + BOX.format(body)
    with pytest.raises(ValueError, match=rf"box {repr(body).replace('(', '.').replace(')', '.')} at character 8: "
                                         rf"expected \(x1,y1\),\(x2,y2\) — four non-negative integers in \[0, 1000\)"):
        parse_grounding(text)
    with pytest.raises(ValueError, match=r"box '\(1,2\),\(3,4\)' at character 0: <\|box_start\|> is never closed"):
        parse_grounding("<|box_start|>(1,2),(3,4)")


def test_twenty_thousand_object_refs_parse_in_linear_time():
    # before: 46-59 s (a lazy regex rescanned the rest of the text from every <|object_ref_start|>)
    with within(10):
        assert parse_grounding("<|object_ref_start|>" * 20_000) == []
        text = "<|object_ref_start|>" * 20_000 + "cat<|object_ref_end|>" + BOX.format("(1,2),(3,4)")
        assert parse_grounding(text) == [GroundedBox("cat", (1, 2, 3, 4))]
        assert len(parse_grounding(BOX.format("(1,2),(3,4)") * 20_000)) == 20_000


def test_lenient_mode_keeps_the_good_boxes_and_reports_the_bad():
    # before: one bad box discarded all the good ones (or raised)
    text = ("<|object_ref_start|>cat<|object_ref_end|>" + BOX.format("(1,2),(3,4)") + BOX.format("(-1,2),(3,4)")
            + BOX.format("(5,6),(7,8)") + " and " + BOX.format("(9,9),(1000,9)"))
    boxes, errors = parse_grounding(text, strict=False)
    assert boxes == [GroundedBox("cat", (1, 2, 3, 4)), GroundedBox("cat", (5, 6, 7, 8))]
    assert [(e.text, e.start) for e in errors] == [("(-1,2),(3,4)", text.index(BOX.format("(-1,2),(3,4)"))),
                                                   ("(9,9),(1000,9)", text.index(BOX.format("(9,9),(1000,9)")))]
    assert all(isinstance(e, BadBox) for e in errors) and "[0, 1000)" in errors[1].reason
    assert parse_grounding(text.replace(BOX.format("(-1,2),(3,4)"), "").replace("(1000", "(999"), strict=False)[1] == []


# --- preprocess_video: the value range, one behaviour with or without a resize ----------------
def test_preprocess_video_checks_the_value_range_on_both_paths():
    # before: values outside 0..255 were clipped only when a resize happened; [0, 1] floats read as 0..255
    for h, w in ((56, 56), (30, 50)):  # no resize / resize
        over = torch.full((2, 3, h, w), 100.0)
        over[0, 0, 0, 0] = 300.0
        with pytest.raises(ValueError, match=r"video frames hold values in \[100, 300\]; expected \[0, 255\]"):
            preprocess_video(over)
        with pytest.raises(ValueError, match=r"float values in \[0, 1\]: float frames are read as 0\.\.255.*"
                                             r"multiply by 255"):
            preprocess_video(torch.linspace(0, 1, 2 * 3 * h * w).reshape(2, 3, h, w))
        with pytest.raises(ValueError, match=r"NaN or infinite values; expected values in \[0, 255\]"):
            preprocess_video(torch.full((2, 3, h, w), math.nan))
        with pytest.raises(ValueError, match=r"values in \[-1, -1\]; expected \[0, 255\]"):
            preprocess_video(-torch.ones(2, 3, h, w, dtype=torch.int64))
    # in range: unchanged (uint8, 0..255 floats, an all-black float video)
    frames = torch.randint(0, 256, (2, 3, 56, 56), dtype=torch.uint8)
    assert torch.equal(preprocess_video(frames)[0], preprocess_video(frames.float())[0])
    preprocess_video(torch.zeros(2, 3, 56, 56))


# --- images: 16-bit / float modes warn; EXIF orientation is opt-in -----------------------------
def test_high_depth_images_keep_the_reference_numbers_and_warn(tmp_path):
    qvu = ref.qwen_vl_utils()
    values = np.linspace(0, 65535, 56 * 56).astype(np.uint16).reshape(56, 56)
    Image.fromarray(values).save(tmp_path / "depth16.png")
    path = str(tmp_path / "depth16.png")
    with pytest.warns(UserWarning, match=r"depth16\.png'.*a 'I;16'-mode image .* clipping every value to 0\.\.255"):
        ours = fetch_image({"image": path})
    assert np.array_equal(np.asarray(ours), np.asarray(qvu.fetch_image({"image": path})))  # same numbers
    assert np.asarray(ours).max() == 255
    for image in (Image.fromarray(values.astype(np.int32)), Image.fromarray(values.astype(np.float32))):
        with pytest.warns(UserWarning, match=rf"'{image.mode}'-mode image"):
            preprocess_image(image)
    with pytest.warns(UserWarning, match=r"'F'-mode image"):
        fetch_image({"image": Image.fromarray(values.astype(np.float32))}, defaults="0.0.10")


def test_exif_orientation_is_ignored_by_default_and_applied_on_request(tmp_path):
    from transformers.image_utils import load_image

    image = Image.new("RGB", (112, 56), "red")
    image.paste((0, 0, 255), (0, 0, 56, 56))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    image.save(tmp_path / "phone.png", exif=exif)
    path = str(tmp_path / "phone.png")
    assert fetch_image({"image": path}).size == (112, 56)  # as qwen-vl-utils 0.0.8: orientation ignored
    upright = np.asarray(load_image(path).convert("RGB"))  # transformers applies it
    assert upright.shape == (112, 56, 3)
    assert np.array_equal(np.asarray(fetch_image({"image": path}, exif_transpose=True)), upright)
    item = process_vision_info([{"role": "user", "content": [{"image": path, "exif_transpose": True}]}])[0][0]
    assert np.array_equal(np.asarray(item), upright)
    with pytest.raises(ValueError, match=r"exif_transpose must be True or False, got 'yes'"):
        fetch_image({"image": path, "exif_transpose": "yes"})


# --- smaller -----------------------------------------------------------------------------------
def test_corrupt_or_truncated_safetensors_names_the_file(tmp_path):
    save_pretrained(Qwen2VL(tiny_config()), tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file — corrupt or "
                                         r"truncated\? \(.*incomplete metadata"):
        load_pretrained(tmp_path)
    weights.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_video_start_and_end_are_refused(value):
    for key in ("video_start", "video_end"):
        with pytest.raises(ValueError, match=rf"{key} must be a finite number of seconds >= 0, got "):
            fetch_video({"video": MP4, key: value})
        with pytest.raises(ValueError, match=rf"{key} must be a finite number"):
            plan_video(100, 25.0, 64, 64, {key: value})


def test_numpy_integers_work_as_sizes_and_bools_do_not():
    i = np.int64
    assert smart_resize(i(480), i(640), min_pixels=i(3136), max_pixels=i(12845056)) == smart_resize(480, 640)
    assert internvl_tile_grid(i(1920), i(1080), max_num=i(12)) == internvl_tile_grid(1920, 1080)
    image = Image.new("RGB", (100, 80))
    assert fetch_image({"image": image, "min_pixels": i(50_000)}).size == fetch_image({"image": image,
                                                                                       "min_pixels": 50_000}).size
    ele = {"nframes": 8, "min_pixels": 4 * 784, "max_pixels": 200_000, "total_pixels": 10**6}
    assert plan_video(100, 25.0, 64, 64, {k: i(v) for k, v in ele.items()}) == plan_video(100, 25.0, 64, 64, ele)
    for bad in (True, np.bool_(True)):
        with pytest.raises(ValueError, match=r"height must be an integer >= 1, got (True|np\.True_)"):
            smart_resize(bad, 640)
        with pytest.raises(ValueError, match=r"nframes must be a number > 0, got (True|np\.True_)"):
            plan_video(100, 25.0, 64, 64, {"nframes": bad})


@pytest.mark.parametrize("entry", ["../x.safetensors", "/etc/x.safetensors", "shards/../../x.safetensors"])
def test_weight_map_entries_outside_the_checkpoint_are_refused(tmp_path, entry):
    save_pretrained(Qwen2VL(tiny_config()), tmp_path, max_shard_bytes=8_000_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.norm.weight"] = entry
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=rf"weight_map entries must be file names inside .*; refused: "
                                         rf"'{entry.replace('.', '[.]')}'"):
        load_pretrained(tmp_path)


def test_config_json_that_is_not_an_object_is_a_clear_error(tmp_path):
    for content in ("[1, 2]", '"qwen"', "3"):
        (tmp_path / "config.json").write_text(content)
        with pytest.raises(ValueError, match=r"config\.json: config\.json must hold a JSON object \{\.\.\.\} of "
                                             r"settings, got a JSON (list|str|int)"):
            load_config(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("[]")
    with pytest.raises(ValueError, match=r"index\.json: not a valid safetensors index \(TypeError"):
        load_pretrained(tmp_path)


def test_int32_tensor_for_a_float_parameter_names_both_dtypes(tmp_path):
    model = Qwen2VL(tiny_config())
    save_pretrained(model, tmp_path)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["model.norm.weight"] = state["model.norm.weight"].to(torch.int32)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"1 tensors of the wrong kind of dtype \(integer vs floating point\):\n"
                                         r"    model\.norm\.weight: checkpoint int32, model float32"):
        load_pretrained(tmp_path)
