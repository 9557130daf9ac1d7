#!/usr/bin/env python3
"""Media and chat: ours vs the reference pipeline (qwen-vl-utils 0.0.8 + Qwen2VLProcessor), wall time.

Prints, per step, the median time of ours and of the reference and the ratio ours/reference (< 1:
ours is faster). The reference's video reader is the PyAV whole-file decode that stands in for
torchvision's ``read_video`` (``reference.qvu_fetch_video``); ours streams and stops after the last
sampled frame. Run: ``PYTHONPATH=. python benchmarks/bench_media.py`` (``make bench``).
"""

from qwenvl_study.course import reference as ref
from qwenvl_study.course.env import median_time as timed
from qwenvl_study.chat import prepare_inputs
from qwenvl_study.tokenizer import qwen2_tokenizer
from qwenvl_study.media import fetch_image, fetch_video
from qwenvl_study.course.samples import sample_path


def main() -> None:
    png, mp4 = str(sample_path()), str(sample_path("sample.mp4"))
    qvu = ref.qwen_vl_utils()
    tokenizer = qwen2_tokenizer()  # the real Qwen2-VL tokenizer, for both pipelines
    messages = [{"role": "user", "content": [{"type": "image", "image": png}, {"type": "video", "video": mp4},
                                             {"type": "text", "text": "Describe."}]}]
    rows = [
        ("fetch_image(sample.png)", lambda: fetch_image({"image": png}), lambda: qvu.fetch_image({"image": png})),
        ("fetch_video(sample.mp4), 8 of 100 frames", lambda: fetch_video({"video": mp4}),
         lambda: ref.qvu_fetch_video({"video": mp4})),
        ("fetch_video, first second only", lambda: fetch_video({"video": mp4, "video_end": 1.0}),
         lambda: ref.qvu_fetch_video({"video": mp4, "video_end": 1.0})),
        ("prepare_inputs (image + video, tokenized)", lambda: prepare_inputs(messages, tokenizer),
         lambda: ref.hf_prepare_inputs(messages, tokenizer)),
    ]
    print(f"{'step':<44} {'ours (ms)':>10} {'ref (ms)':>10} {'ours/ref':>9}")
    for name, ours, theirs in rows:
        a, b = timed(ours), timed(theirs)
        print(f"{name:<44} {a * 1e3:>10.1f} {b * 1e3:>10.1f} {a / b:>9.2f}")


if __name__ == "__main__":
    main()
