"""Notebook 06's real-weight branch on a CPU, in CI: `$QWEN2VL_2B_PATH` points at a random-weight
checkpoint in the published layout (sharded safetensors + index + config + tiny Qwen2 tokenizer) at tiny
widths, and the notebook must take the real branch (no stand-in) and pass its checks in fp32."""

import dataclasses
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from qwenvl_study.chat import load_tokenizer
from qwenvl_study.checkpoint import save_pretrained
from qwenvl_study.config import tiny_config
from qwenvl_study.course import reference as ref
from qwenvl_study.course.env import WEIGHTS_ENV

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_real_weights.ipynb"


def _text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.fixture
def published_layout_checkpoint(tmp_path):
    directory = tmp_path / "Qwen2-VL-2B-Instruct-random"
    tokenizer = load_tokenizer(ref.write_tiny_qwen2_tokenizer(directory))
    config = dataclasses.replace(tiny_config(), tie_word_embeddings=False)
    model, _ = ref.model_pair(config, seed=1, keep_token_ids=ref.tiny_tokenizer_ids(tokenizer))
    files = save_pretrained(model, directory, layout="published", max_shard_bytes=20_000_000)
    assert len(files) > 1 and (directory / "model.safetensors.index.json").is_file()
    return directory


def test_notebook06_takes_the_real_weight_branch_on_cpu(published_layout_checkpoint, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(published_layout_checkpoint))
    monkeypatch.delenv("QWEN2VL_DTYPE", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the CPU branch, even where a GPU is present
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = _text(nb)
    assert f"real weights: {published_layout_checkpoint}" in text
    assert "plan: cpu, float32 (CPU with room for fp32: exact parity)" in text and "expected ~" in text
    assert "stand" not in text.split("real weights:")[1].split("\n")[0] and "skipped:" not in text
    assert "nothing skipped" in text  # the preamble: weights found
    for line in ("same tensors as transformers loaded: True", "logits within tolerance: True",
                 "greedy tokens equal to transformers for image, GIF and video: True", "decoded texts equal: True"):
        assert line in text, line
