"""The command line: `tokens` and `tour`."""

import subprocess
import sys

import numpy as np
from PIL import Image

from qwenvl_study.cli import main
from qwenvl_study.tour import run_tour


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


def test_tour_facts_all_hold_and_figures_are_written(tmp_path):
    lines = []
    facts = run_tour(tmp_path, print_fn=lines.append)
    assert facts and all(f.ok for f in facts), [f for f in facts if not f.ok]
    assert sorted(p.name for p in tmp_path.glob("*.png"))[:1] == ["01_patch_grid.png"]
    assert any("66" in line for line in lines)


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "qwenvl_study.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "tokens" in out.stdout and "tour" in out.stdout
