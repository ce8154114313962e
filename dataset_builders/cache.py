"""A disk cache of model answers, so a killed build resumes where it stopped.

Each answer is stored under a key made from (image content hash, prompt, model), committed as soon as
it arrives. SQLite gives atomic commits (a kill never leaves half an entry) and lets several
processes of a sharded build share one cache file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import constants


def finedefics_cache_dir() -> Path:
    """The folder hf-finedefics caches in (answers, tiny checkpoints, pretrained worlds, the demo's default run):
    `$HF_FINEDEFICS_CACHE`, else `finedefics` under the Hugging Face home (`$HF_HOME`, default
    ~/.cache/huggingface), so a machine or Space that moves its HF cache (e.g. to persistent storage) moves it too."""
    if "HF_FINEDEFICS_CACHE" in os.environ:
        return Path(os.environ["HF_FINEDEFICS_CACHE"])
    return Path(constants.HF_HOME) / "finedefics"


def default_cache_path() -> Path:
    return finedefics_cache_dir() / "answers.sqlite"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def answer_key(image_hash: str | None, prompt: str, model: str) -> str:
    """The cache key of one answer; `image_hash` is None for text-only prompts."""
    return hashlib.sha256(json.dumps([image_hash, prompt, model]).encode("utf-8")).hexdigest()


class AnswerCache:
    """Persistent {key: answer} store backed by one SQLite file."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One short-lived connection per call keeps the cache safe to share between threads and processes.
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=60)
        try:
            with connection:  # commits on success, rolls back on error
                yield connection
        finally:
            connection.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        with self._connect() as connection:
            # SQLite limits the number of bound parameters; look keys up in slices.
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                placeholders = ",".join("?" * len(chunk))
                rows = connection.execute(f"SELECT key, answer FROM answers WHERE key IN ({placeholders})", chunk)
                found.update(rows.fetchall())
        return found

    def put_many(self, answers: dict[str, str]) -> None:
        with self._connect() as connection:
            connection.executemany("INSERT OR REPLACE INTO answers (key, answer) VALUES (?, ?)", answers.items())

    def __len__(self) -> int:
        with self._connect() as connection:
            return connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
