"""One process at a time in a folder: a second run (or a stage command) into the folder another works in would
discard or overwrite its outputs while it works."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

LOCK_NAME = "_finedefics.lock"  # "_": left out of the Trainer's Hub uploads of a stage folder

logger = logging.getLogger(__name__)


class FolderLocked(BlockingIOError):
    """Another live process works in the folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold `folder/LOCK_NAME` while the block runs: a second run into the same folder would discard the first's
    outputs while it works, so it is refused, naming the holder. A lock left by a killed process (its PID is not
    alive on this host) is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now().isoformat(timespec="seconds")}
    # Written whole beside the lock, then linked to its name (atomic, and refused if the name exists): a lock is
    # never seen half-written.
    draft = folder / f"{LOCK_NAME}.{mine['pid']}"
    draft.write_text(json.dumps(mine), encoding="utf-8")
    while True:
        try:
            os.link(draft, path)
            break
        except FileExistsError:
            try:
                holder = json.loads(path.read_text(encoding="utf-8"))
                pid, host = int(holder["pid"]), holder["host"]
            except FileNotFoundError:  # released meanwhile
                continue
            except (OSError, ValueError, KeyError, TypeError):
                holder, pid, host = {}, None, None  # not a lock this code wrote: nobody holds it
            if pid is not None and (host != mine["host"] or _alive(pid)):
                draft.unlink(missing_ok=True)
                raise FolderLocked(
                    f"{folder} is in use by PID {pid} on {host} (since {holder.get('started')}): wait for it, or "
                    f"choose another output_dir; if that process is gone, delete {path}."
                ) from None
            logger.warning("Taking over %s, left by PID %s, which is no longer running.", path, pid)
            path.unlink(missing_ok=True)
    draft.unlink()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
