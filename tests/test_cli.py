"""The command line: `tokens`, `explain` and `tour`."""

import subprocess
import sys

import numpy as np
from PIL import Image

from qwenvl_study.cli import main
from qwenvl_study.course.tour import run_tour


def test_tokens_prints_the_whole_chain(tmp_path, capsys):
    path = tmp_path / "square.png"
    Image.fromarray(np.zeros((224, 224, 3), np.uint8)).save(path)
    assert main(["tokens", str(path)]) == 0
    out = capsys.readouterr().out
    assert "224x224 (WxH) → resized 224x224, grid t=1 h=16 w=16, 256 patches → 64 merged tokens (+2 special = 66)" in out


def test_tokens_defaults_to_the_sample_and_reports_bad_files(tmp_path, capsys):
    assert main(["tokens"]) == 0
    assert "sample.png: 640x480 (WxH) → resized 644x476" in capsys.readouterr().out
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00" * 10)
    assert main(["tokens", str(bad), "--max-pixels", "1000000"]) == 1
    assert "bad.jpg: error:" in capsys.readouterr().err


def test_tokens_respects_pixel_bounds_and_rule(tmp_path, capsys):
    path = tmp_path / "thin.png"
    Image.new("RGB", (2000, 13)).save(path)
    main(["tokens", str(path)])
    main(["tokens", str(path), "--rule", "qwen-vl-utils"])
    t_line, q_line = capsys.readouterr().out.splitlines()
    assert "resized 700x28" in t_line and "resized 1988x28" in q_line


def test_tour_facts_all_hold_and_figures_are_written(tmp_path, one_thread):
    lines = []
    facts = run_tour(tmp_path, print_fn=lines.append)
    # lesson 11 reports the course model's answers and held-out scores: informational (None) unless a goal is met
    course = [f for f in facts if "held-out questions" in f.claim or ": e.g. " in f.claim]
    assert len(course) == 8 and all(f.ok in (True, None) for f in course)
    assert all(f.ok is True for f in course if "held-out questions" in f.claim and "not met" not in f.reference)
    parity = [f for f in facts if f not in course]
    assert parity and all(f.ok for f in parity), [f for f in parity if not f.ok]
    assert (tmp_path / "11_course_model_find.png").is_file()
    assert sorted(p.name for p in tmp_path.glob("*.png"))[:1] == ["01_patch_grid.png"]
    assert any("66" in line for line in lines)


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "qwenvl_study.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "tokens" in out.stdout and "tour" in out.stdout and "explain" in out.stdout


# --- lessons 07-08: videos and GIFs in `tokens`, the `explain` command ---------------------------
def test_tokens_for_videos_and_gifs_from_timestamps_only(capsys):
    from qwenvl_study.media import fetch_video
    from qwenvl_study.course.samples import sample_path

    mp4, gif = sample_path("sample.mp4"), sample_path("sample.gif")
    assert main(["tokens", str(mp4), str(gif)]) == 0
    out = capsys.readouterr().out
    _, plan = fetch_video({"video": str(mp4)})  # the decoded truth agrees with the metadata-only line
    assert "100 frames at 25 fps (4.00 s)" in out
    assert f"sampled {plan.nframes} frames (2.00 per s; indices 0 14 28 42 57 71 85 99) → 4 temporal patches" in out
    assert f"→ {plan.tokens} merged tokens (+2 special = {plan.tokens + 2})" in out
    assert "resized 392x280 (upscaled to the per-frame minimum)" in out
    # the GIF: once as an image (first frame), once as a video with the fps of its frame durations
    assert "sample.gif: 160x120 (WxH) → resized 168x112" in out and "20 frames at 10 fps (2.00 s), gif" in out


def test_tokens_shows_where_the_16384_cap_bites(tmp_path, capsys):
    from qwenvl_study.course.samples import sample_path

    assert main(["tokens", str(sample_path("sample.mp4")), "--fps", "25", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "budget (preset paper): 16,384 tokens per video" in out and "hard cap 16384" in out
    assert "the paper's 16384-token cap: within" in out
    assert main(["tokens", str(tmp_path / "missing.mp4")]) == 1
    assert "missing.mp4: error: video file not found" in capsys.readouterr().err


def test_explain_draws_images_and_videos(tmp_path, capsys):
    from PIL import Image as PILImage

    from qwenvl_study.course.samples import sample_path

    assert main(["explain", "--out", str(tmp_path / "image.png")]) == 0
    assert main(["explain", str(sample_path("sample.gif")), "--video", "--out", str(tmp_path / "gif.png")]) == 0
    assert PILImage.open(tmp_path / "image.png").width > 500 and PILImage.open(tmp_path / "gif.png").width > 500
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert main(["explain", str(bad), "--out", str(tmp_path / "x.png")]) == 1
    assert "bad.mp4: error:" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


# --- issue 11: `plan` (meta device) and `chat` (streams, prints tokens and speed) ---------------
def test_plan_prints_layers_and_bytes_per_device(capsys):
    assert main(["plan", "--config", "72B", "--gpus", "4x80GB"]) == 0
    out = capsys.readouterr().out
    assert "--gpus 4x80GB (90% of each for weights): fits on the GPUs" in out
    assert "Qwen2-VL-72B-Instruct, bfloat16: 146.8 GB of weights" in out
    assert "GPU 0:" in out and "GPU 3:" in out and "model.layers.0-" in out and "lm_head" in out
    assert main(["plan", "--config", "72B", "--gpus", "2x24GB"]) == 0
    assert "does NOT fit on the GPUs" in capsys.readouterr().out
    assert main(["plan", "--config", "2B"]) == 0  # every common set
    out = capsys.readouterr().out
    assert all(f"--gpus {s} " in out for s in ("1x24GB", "2x24GB", "8x80GB")) and "the whole model" in out
    assert main(["plan", "--config", "7B", "--gpus", "1x24GB", "--dtype", "fp32"]) == 0
    assert "Qwen2-VL-7B-Instruct, float32" in capsys.readouterr().out
    assert main(["plan", "--gpus", "eightx80"]) == 2 and "--gpus: cannot read" in capsys.readouterr().err


def test_chat_streams_an_answer_from_a_checkpoint_and_prints_the_stats(tmp_path, capsys, one_thread):
    import dataclasses

    from qwenvl_study.chat import load_tokenizer
    from qwenvl_study.checkpoint import save_pretrained
    from qwenvl_study.config import tiny_config
    from qwenvl_study.course import reference as ref

    tokenizer = load_tokenizer(ref.write_tiny_qwen2_tokenizer(tmp_path / "ckpt"))
    config = dataclasses.replace(tiny_config(), tie_word_embeddings=False)
    model, _ = ref.model_pair(config, seed=0, keep_token_ids=ref.tiny_tokenizer_ids(tokenizer))
    save_pretrained(model, tmp_path / "ckpt")
    image = tmp_path / "x.png"
    Image.fromarray(np.full((56, 84, 3), 128, np.uint8)).save(image)
    assert main(["chat", "--weights", str(tmp_path / "ckpt"), "--image", str(image), "--max-new-tokens", "5",
                 "what is this?"]) == 0
    captured = capsys.readouterr()
    assert "time to first token" in captured.err and "5 new tokens at" in captured.err
    assert "(" in captured.err and " text + 6 vision)" in captured.err  # 56x84 -> 4x6 patches -> 6 tokens
    from qwenvl_study.chat import model_inputs, prepare_inputs

    messages = [{"role": "user", "content": [{"type": "image", "image": str(image)},
                                             {"type": "text", "text": "what is this?"}]}]
    expected = model.generate(**model_inputs(prepare_inputs(messages, tokenizer)), max_new_tokens=5)
    assert captured.out.strip() == tokenizer.decode(expected[0], skip_special_tokens=True).strip()  # streamed = decoded


def test_chat_without_weights_or_course_model_is_one_line_exit_2(capsys, monkeypatch):
    import qwenvl_study

    monkeypatch.delattr(qwenvl_study, "load_course_model", raising=False)
    assert main(["chat", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--weights DIR is required" in err


def test_tour_without_qwen_vl_utils_reports_not_checked_and_exits_0(tmp_path, monkeypatch, capsys, one_thread):
    """A plain `pip install .` has no qwen-vl-utils (a dev extra): the facts that need it become one
    "not checked" line each, the rest still run, and the tour exits 0. Only the two sections that use it
    run here (the full tour runs above)."""
    import sys

    from qwenvl_study.course import tour

    monkeypatch.setitem(sys.modules, "qwen_vl_utils", None)  # `import qwen_vl_utils` now raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "qwen_vl_utils.vision_process", raising=False)
    monkeypatch.setattr(tour, "SECTIONS", [s for s in tour.SECTIONS if "lesson 01" in s[0] or "07–08" in s[0]])
    monkeypatch.setattr(tour, "FIGURES", [])
    assert main(["tour", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "not checked: qwen-vl-utils is not installed" in line]
    assert len(lines) == 5  # 13x2000 rule; sample image, sample video, 10-min video tokens; the processor
    assert "✔  224x224 → LLM tokens (64 merged + 2)" in out and "build_prompt ==" in out  # the rest still ran
    assert " / 0 ✘ / 5 not checked (reference not installed)" in out


# --- the real tokenizer: `tokens --prompt` counts the whole prompt ------------------------------
def test_tokens_prompt_counts_template_text_and_vision(capsys):
    import re

    from qwenvl_study.chat import build_prompt, prepare_inputs
    from qwenvl_study.course.samples import sample_path
    from qwenvl_study.tokenizer import qwen2_tokenizer

    png, mp4 = str(sample_path()), str(sample_path("sample.mp4"))
    question = "描述一下这张图片。"  # the course's prompt
    assert main(["tokens", "--prompt", question, png, mp4]) == 0
    out = capsys.readouterr().out
    per_file = [int(n) for n in re.findall(r"\(\+2 special = (\d+)\)", out)]  # the per-file lines
    total, template, text, vision = map(int, re.search(
        r"prompt: (\d+) tokens = template (\d+) \+ text (\d+) \+ vision (\d+)", out).groups())
    tok = qwen2_tokenizer()
    messages = [{"role": "user", "content": [{"type": "image", "image": png}, {"type": "video", "video": mp4},
                                             {"type": "text", "text": question}]}]
    assert total == prepare_inputs(messages)["input_ids"].shape[1]  # the full pipeline, frames decoded
    assert text == len(tok(question)["input_ids"]) == 5
    assert vision == sum(per_file) == 393 + 562
    assert template == len(tok(build_prompt([{"role": "user", "content": ""}]))["input_ids"]) == total - text - vision
    assert main(["tokens", "--prompt", "2024"]) == 0  # no files: a text-only prompt, digits one by one
    assert "prompt: 23 tokens = template 19 + text 4 + vision 0" in capsys.readouterr().out


def test_chat_without_weights_asks_the_course_model_like_ask(tmp_path, capsys, one_thread):
    """The default model is the shipped course model: its trimmed ids are mapped at the boundary, its pixel
    budget applied, and the streamed answer is what ``qwenvl_study.ask`` answers for the same image."""
    import qwenvl_study
    from qwenvl_study.train.data import make_sample

    sample = make_sample(9001, 3, task="find")  # a held-out seed
    image = tmp_path / "shapes.png"
    sample.media.save(image)
    assert main(["chat", "--image", str(image), "--max-new-tokens", "40", sample.question]) == 0
    captured = capsys.readouterr()
    model, tokenizer = qwenvl_study.load_course_model()
    expected = qwenvl_study.ask(model, tokenizer, str(image), sample.question, max_new_tokens=40)
    assert captured.out.strip() == tokenizer.decode(tokenizer.encode(expected), skip_special_tokens=True).strip()
    assert "time to first token" in captured.err and " vision)" in captured.err and " 0 vision)" not in captured.err
