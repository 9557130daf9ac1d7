"""Checkpoints: load the published Qwen2-VL weights into our model — safetensors only, strictly.

A checkpoint directory holds ``config.json`` and either ``model.safetensors`` or shards
``model-0000k-of-0000n.safetensors`` listed in ``model.safetensors.index.json``. Two key layouts
exist and both load:

* the **published** one (transformers 4.x, what the Hub serves, and what transformers 5.23's
  ``save_pretrained`` writes back): ``visual.*``, ``model.embed_tokens``, ``model.layers.{i}.*``,
  ``model.norm``, ``lm_head.weight`` (absent when tied: 2B has 729 tensors);
* transformers 5.x's **in-memory** names: ``model.visual.*``, ``model.language_model.*``, ``lm_head.*``.

Our module names *are* the published ones, so loading is a rename of the second layout plus
checks. Loading is strict: every missing, unexpected or mis-shaped tensor is listed in one error;
pickle files (``*.bin``, ``*.pt``) are never opened.

Reference: transformers' ``PreTrainedModel.from_pretrained`` / ``save_pretrained`` (tests load
the same directories with both and compare outputs).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import torch

from .config import Qwen2VLConfig, load_config

__all__ = ["load_pretrained", "save_pretrained", "checkpoint_files", "published_key", "download",
           "DEFAULT_REPO"]

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
DEFAULT_REPO = "Qwen/Qwen2-VL-2B-Instruct"
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def published_key(key: str) -> str:
    """A checkpoint key in the published layout (renames transformers 5.x in-memory names)."""
    if key.startswith("model.visual."):
        return "visual." + key[len("model.visual."):]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    return key


def checkpoint_files(directory: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint directory (shards in index order); clear errors otherwise."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    index = directory / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index}: not a valid safetensors index ({type(err).__name__}: {err})") from None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError(f"{index}: weight_map must map tensor names to shard file names (a JSON object of "
                             f"strings)")
        names = sorted(set(weight_map.values()))
        # by the names alone (symlinked shards, as in the Hugging Face cache, stay loadable)
        outside = [n for n in names if not n or Path(n).is_absolute() or ".." in Path(n).parts]
        if outside:
            raise ValueError(f"{index}: weight_map entries must be file names inside {directory}; refused: "
                             + ", ".join(repr(n) for n in outside))
        missing = [n for n in names if not (directory / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory}: {len(missing)} shard(s) listed in {INDEX_FILE} are missing: "
                                    + ", ".join(missing))
        return [directory / n for n in names]
    if (directory / SINGLE_FILE).is_file():
        return [directory / SINGLE_FILE]
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(f"{directory}: only pickle weights found ({', '.join(pickles)}); they are never loaded "
                         f"(arbitrary code execution). Convert them to safetensors.")
    shards = sorted(p.name for p in directory.glob("model-*-of-*.safetensors"))
    if shards:
        raise FileNotFoundError(f"{directory}: shards {', '.join(shards)} found but {INDEX_FILE} is missing")
    raise FileNotFoundError(f"{directory}: expected {SINGLE_FILE} or {INDEX_FILE} (+ shards)")


def _listing(title: str, items: list[str], limit: int = 25) -> str:
    shown = items[:limit] + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])
    return f"{len(items)} {title}:\n    " + "\n    ".join(shown)


@contextmanager
def _open_safetensors(file: Path, **kwargs):
    """``safe_open`` whose errors name the file (a corrupt or truncated header says only "header too large")."""
    from safetensors import SafetensorError, safe_open

    try:
        handle = safe_open(str(file), framework="pt", **kwargs)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{file}: not a readable safetensors file — corrupt or truncated? ({err})") from None
    with handle as f:
        yield f


_LAYERS = {  # config field -> (its value, the checkpoint prefix of its layers)
    "num_hidden_layers": (lambda c: c.text.num_hidden_layers, "model.layers."),
    "depth": (lambda c: c.vision.depth, "visual.blocks."),
}
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _check_layer_counts(config: Qwen2VLConfig, names: Iterable[str], directory: Path) -> None:
    """Before building anything: the config must not ask for more layers than the checkpoint holds.

    A config.json saying ``num_hidden_layers: 1000000`` would otherwise build a million layers
    (minutes, GBs) only to report them missing.
    """
    names = list(names)
    for key, (value, prefix) in _LAYERS.items():
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        present = [int(m.group(1)) for n in names if (m := pattern.match(n))]
        have = max(present) + 1 if present else 0
        if value(config) > have:
            raise ValueError(f"{directory}: config.json asks for {key}={value(config)} layers but the checkpoint "
                             f"holds {have} ({prefix}0 .. {prefix}{have - 1}); config.json and the weights do not "
                             f"belong together")


def _dtype_of(directory: Path) -> torch.dtype | None:
    raw = json.loads((directory / "config.json").read_text())
    name = raw.get("torch_dtype") or raw.get("dtype") or (raw.get("text_config") or {}).get("dtype")
    return _DTYPES.get(str(name).replace("torch.", "")) if name else None


def load_pretrained(path: str | Path, *, dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                    attn_backend: str = "auto"):
    """A :class:`~qwenvl_study.model.Qwen2VL` with the weights of a local checkpoint directory.

    ``dtype=None`` keeps the checkpoint's dtype (``torch_dtype`` / ``dtype`` of config.json: bf16
    for the published models), as transformers 5 does; ``device=None`` → CPU.
    """
    from .model import Qwen2VL

    directory = Path(path)
    files = checkpoint_files(directory)
    config = load_config(directory)

    found: dict[str, tuple[Path, str, tuple[int, ...], str]] = {}  # name -> (file, key, shape, dtype)
    duplicates = []
    for file in files:  # headers only: nothing is read but the names, shapes and dtypes
        with _open_safetensors(file) as f:
            for key in f.keys():
                name = published_key(key)
                if name in found:
                    duplicates.append(f"{name} (in {found[name][0].name} and {file.name})")
                info = f.get_slice(key)
                found[name] = (file, key, tuple(info.get_shape()), info.get_dtype())
    _check_layer_counts(config, found, directory)

    with torch.device("meta"):
        model = Qwen2VL(config, attn_backend=attn_backend)
    meta_state = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in meta_state.items()}
    dtype = dtype or _dtype_of(directory)
    model_dtypes = {k: dtype if dtype is not None and v.is_floating_point() else v.dtype for k, v in meta_state.items()}

    tied_head = config.tie_word_embeddings and "lm_head.weight" in found and "lm_head.weight" not in expected
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected) - ({"lm_head.weight"} if tied_head else set()))
    mismatched = sorted(f"{k}: checkpoint {list(found[k][2])}, model {list(expected[k])}"
                        for k in set(expected) & set(found) if found[k][2] != expected[k])
    wrong_dtype = sorted(  # an int32 tensor for a float parameter (or the other way round)
        f"{k}: checkpoint {_ST_DTYPES.get(found[k][3], found[k][3])}, model {str(model_dtypes[k]).replace('torch.', '')}"
        for k in set(expected) & set(found)
        if found[k][3].startswith(("F", "BF")) != model_dtypes[k].is_floating_point)
    if missing or unexpected or mismatched or duplicates or wrong_dtype:
        parts = [f"checkpoint {directory} does not match the model built from its config.json "
                 f"({config.name}):"]
        for title, items in (("missing tensors", missing), ("unexpected tensors", unexpected),
                             ("mis-shaped tensors", mismatched), ("duplicated tensors", duplicates),
                             ("tensors of the wrong kind of dtype (integer vs floating point)", wrong_dtype)):
            if items:
                parts.append(_listing(title, items))
        raise ValueError("\n  ".join(parts))

    state = {}
    by_file: dict[Path, list[str]] = {}
    for name in expected:
        by_file.setdefault(found[name][0], []).append(name)
    for file, names in by_file.items():
        with _open_safetensors(file, device="cpu") as f:
            for name in names:
                tensor = f.get_tensor(found[name][1])
                state[name] = tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
    if tied_head:
        with _open_safetensors(found["lm_head.weight"][0], device="cpu") as f:
            head = f.get_tensor(found["lm_head.weight"][1])
        if not torch.equal(head.to(state["model.embed_tokens.weight"].dtype), state["model.embed_tokens.weight"]):
            raise ValueError(f"{directory}: config ties lm_head to the embedding, but lm_head.weight differs from "
                             f"model.embed_tokens.weight")
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    return model.to(device) if device is not None else model


def save_pretrained(model, directory: str | Path, *, layout: str = "published",
                    max_shard_bytes: int | None = None) -> list[Path]:
    """Write ``config.json`` + safetensors (sharded with an index above ``max_shard_bytes``).

    ``layout="published"``: the Hub's 4.x names and flat config.json; ``layout="transformers5"``:
    transformers 5.x in-memory names (``model.language_model.*`` / ``model.visual.*``). Returns the
    written weight files.
    """
    from safetensors.torch import save_file

    if layout not in ("published", "transformers5"):
        raise ValueError(f"layout must be 'published' or 'transformers5', got {layout!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config: Qwen2VLConfig = model.config
    (directory / "config.json").write_text(json.dumps({**config.to_hf_dict(), "torch_dtype": _dtype_name(model)},
                                                      indent=2))
    state = {}
    for name, tensor in model.state_dict().items():
        if layout == "transformers5":
            if name.startswith("visual."):
                name = "model." + name
            elif name.startswith("model."):
                name = "model.language_model." + name[len("model."):]
        state[name] = tensor.detach().contiguous().cpu()
    shards = _shard(state, max_shard_bytes)
    if len(shards) == 1:
        path = directory / SINGLE_FILE
        save_file(shards[0], str(path), metadata={"format": "pt"})
        return [path]
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, start=1):
        path = directory / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata={"format": "pt"})
        paths.append(path)
        weight_map.update({k: path.name for k in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (directory / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total},
                                                    "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    return paths


def _dtype_name(model) -> str:
    dtype = next(model.parameters()).dtype
    return {v: k for k, v in _DTYPES.items()}.get(dtype, "float32")


def _shard(state: dict[str, torch.Tensor], max_bytes: int | None) -> list[dict[str, torch.Tensor]]:
    if not max_bytes:
        return [state]
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def download(repo_id: str = DEFAULT_REPO, local_dir: str | Path | None = None, *, source: str = "huggingface",
             revision: str | None = None, allow_patterns: Iterable[str] = ("*.json", "*.safetensors", "merges.txt",
                                                                            "vocab.json", "*.jinja", "*.txt")) -> Path:
    """Download a checkpoint (safetensors + configs + tokenizer files only) — for people with network.

    ``source="huggingface"`` uses ``huggingface_hub.snapshot_download`` (progress bars included);
    ``source="modelscope"`` uses ModelScope's ``snapshot_download`` (``pip install modelscope``), as
    the original lesson did. Never called by the tests.
    """
    patterns = list(allow_patterns)
    if source == "huggingface":
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, local_dir=local_dir, allow_patterns=patterns))
    if source == "modelscope":
        try:
            from modelscope import snapshot_download as ms_snapshot_download
        except ImportError:
            raise ValueError("source='modelscope' needs the modelscope package: pip install modelscope") from None
        return Path(ms_snapshot_download(repo_id, revision=revision or "master", local_dir=local_dir,
                                         allow_patterns=patterns))
    raise ValueError(f"source must be 'huggingface' or 'modelscope', got {source!r}")
