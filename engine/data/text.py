"""Text corpora for language models, tokenized by the model's own tokenizer.

A `.txt` file is read line by line (each non-empty line is one document); a `.jsonl`
file holds one JSON object per line with a "text" field. Each document is encoded
without special tokens, followed by the tokenizer's end-of-sequence token when it has
one; the token stream is cut into non-overlapping sequences of `seq_len` tokens (a
shorter tail is dropped, unless the whole corpus is shorter than one sequence).
Sequences are the model inputs; the labels are the inputs themselves (next token).
"""

from __future__ import annotations

import array
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .batch import Batch
from .errors import DataError

TEXT_SUFFIXES = (".txt", ".jsonl")
TOKENIZER_FILE = "tokenizer.json"
# files that make a folder loadable by transformers' AutoTokenizer
_HF_TOKENIZER_FILES = ("tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt",
                       "spiece.model")
DEFAULT_SEQ_LEN = 128


@dataclass
class TextTokenizer:
    """`encode(text) -> ids` and the end-of-sequence id (None if the tokenizer has none)."""

    encode: Callable[[str], list[int]]
    eos_id: int | None
    name: str


def as_text_tokenizer(tok: Any, name: str = "tokenizer") -> TextTokenizer:
    """Wrap a transformers tokenizer, a `tokenizers.Tokenizer` or a TextTokenizer."""
    if isinstance(tok, TextTokenizer):
        return tok
    if hasattr(tok, "encode") and hasattr(tok, "get_vocab") and hasattr(tok, "token_to_id"):
        # tokenizers.Tokenizer: encode returns an Encoding
        eos = None
        for candidate in ("</s>", "<|endoftext|>", "<eos>", "[SEP]", "<|end_of_text|>"):
            eos = tok.token_to_id(candidate)
            if eos is not None:
                break
        return TextTokenizer(lambda text: tok.encode(text, add_special_tokens=False).ids, eos,
                             name)
    if hasattr(tok, "encode"):  # transformers PreTrainedTokenizer(Fast)
        eos = getattr(tok, "eos_token_id", None)
        return TextTokenizer(lambda text: list(tok.encode(text, add_special_tokens=False)),
                             int(eos) if eos is not None else None, name)
    raise DataError(f"{type(tok).__name__} is not a tokenizer (it has no encode method)")


def find_tokenizer(model_dir: Path | None) -> Path | None:
    """A tokenizer next to the model: its folder, if it holds tokenizer files."""
    if model_dir is None or not model_dir.is_dir():
        return None
    if (model_dir / TOKENIZER_FILE).is_file():
        return model_dir / TOKENIZER_FILE
    if any((model_dir / f).is_file() for f in _HF_TOKENIZER_FILES):
        return model_dir
    return None


def load_tokenizer(path: str | Path) -> TextTokenizer:
    """A tokenizer.json file (the `tokenizers` library) or a folder of HF tokenizer files."""
    path = Path(path)
    if path.is_dir() and (path / TOKENIZER_FILE).is_file() and not (
        path / "tokenizer_config.json"
    ).is_file():
        path = path / TOKENIZER_FILE
    if path.is_file():
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise DataError("reading tokenizer.json needs the tokenizers package; pip install "
                            "'arborist[hf]'") from None
        try:
            return as_text_tokenizer(Tokenizer.from_file(str(path)), str(path))
        except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception
            raise DataError(f"{path} is not a readable tokenizer file: "
                            f"{' '.join(str(exc).split())[:160]}") from None
    if path.is_dir():
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise DataError(f"reading the tokenizer in {path} needs transformers; pip install "
                            "'arborist[hf]'") from None
        try:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - many failure types, all "not a tokenizer"
            raise DataError(f"{path} holds no tokenizer transformers can read: "
                            f"{' '.join(str(exc).split())[:160]}") from None
        return as_text_tokenizer(tok, str(path))
    raise DataError(f"tokenizer {path} does not exist")


def documents(path: Path) -> Iterator[str]:
    """The documents of a .txt (one per non-empty line) or .jsonl ("text" field) file."""
    jsonl = path.suffix.lower() == ".jsonl"
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if not jsonl:
                yield line.rstrip("\n")
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise DataError(f"{path}:{number} is not a JSON object (a .jsonl file holds one "
                                'object per line, e.g. {"text": "..."})') from None
            text = obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise DataError(f'{path}:{number} has no "text" string field')
            yield text


def token_stream(texts: Iterator[str], tokenizer: TextTokenizer) -> torch.Tensor:
    """All ids of all documents (each followed by EOS when the tokenizer has one), int32."""
    ids = array.array("i")
    for text in texts:
        ids.extend(tokenizer.encode(text))
        if tokenizer.eos_id is not None:
            ids.append(tokenizer.eos_id)
    return torch.frombuffer(ids, dtype=torch.int32).clone() if ids else torch.empty(0,
                                                                                      dtype=torch.int32)


class TokenSequences(Dataset):
    """Non-overlapping windows of `seq_len` tokens over one token stream."""

    def __init__(self, ids: torch.Tensor, seq_len: int, input_key: str | None = "input_ids"):
        if seq_len < 2:
            raise DataError(f"sequence length must be at least 2 tokens, got {seq_len}")
        if ids.numel() < 2:
            raise DataError("the text has fewer than 2 tokens: nothing to predict")
        self.ids = ids
        self.seq_len = min(seq_len, int(ids.numel()))
        self.input_key = input_key

    def __len__(self) -> int:
        return int(self.ids.numel()) // self.seq_len

    def __getitem__(self, index: int) -> torch.Tensor:
        start = index * self.seq_len
        return self.ids[start:start + self.seq_len].long()


class CollateSequences:
    """Stack sequences into `Batch({input_key: ids})` (or a bare tensor), labels None."""

    def __init__(self, input_key: str | None) -> None:
        self.input_key = input_key

    def __call__(self, items: list[torch.Tensor]) -> Batch:
        ids = torch.stack(items)
        return Batch({self.input_key: ids} if self.input_key else ids)


def open_text(path: Path, tokenizer: TextTokenizer, seq_len: int,
              input_key: str | None = "input_ids") -> TokenSequences:
    return TokenSequences(token_stream(documents(path), tokenizer), seq_len, input_key)
