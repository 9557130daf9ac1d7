"""The notebook preamble: versions, device, and what this run will skip and why.

Every lesson starts with ``preamble()`` so a reader knows what ran where: the numbers a notebook
prints depend on the versions and the device, and real-weight / GPU cells say up front whether
they will run.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

__all__ = ["WEIGHTS_ENV", "preamble", "find_weights", "measure"]

WEIGHTS_ENV = "QWEN2VL_2B_PATH"  # a local directory holding Qwen2-VL-2B-Instruct


def find_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The Qwen2-VL-2B-Instruct directory from the argument or ``$QWEN2VL_2B_PATH``, if it exists."""
    candidate = path or os.environ.get(WEIGHTS_ENV)
    if candidate and (Path(candidate) / "config.json").is_file():
        return Path(candidate)
    return None


def preamble(*, needs_cuda: bool = False, needs_weights: bool = False, dpi: int = 110) -> dict[str, object]:
    """Print versions and device; say what will be skipped. Returns the facts as a dict."""
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    import torch
    import transformers

    try:
        import matplotlib

        matplotlib.rcParams["figure.dpi"] = dpi  # the course standard: figures at >= 110 dpi
    except ImportError:  # pragma: no cover
        pass
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    weights = find_weights()
    facts = {"python": platform.python_version(), "torch": torch.__version__,
             "transformers": transformers.__version__, "device": device, "weights": weights}
    print(f"python {facts['python']} | torch {facts['torch']} | transformers {facts['transformers']} | {device}")
    skipped = []
    if needs_cuda and not cuda:
        skipped.append("CUDA cells (no CUDA device here): they print what they skip and run on CPU instead")
    if needs_weights and weights is None:
        skipped.append(f"real-weight cells (set ${WEIGHTS_ENV} to a local Qwen2-VL-2B-Instruct directory): "
                       f"a random-weight model at a real config stands in")
    for line in skipped:
        print("skipping:", line)
    if not skipped:
        print("nothing skipped")
    facts["skipped"] = skipped
    sys.stdout.flush()
    return facts


def measure(fn, device=None):
    """Run ``fn()`` once: ``(result, seconds, peak)``. On CUDA the time is synchronised and ``peak`` is
    the allocator's peak in GiB during the call; on CPU torch keeps no peak counter, so ``peak`` is None."""
    import time

    import torch

    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return result, seconds, peak
