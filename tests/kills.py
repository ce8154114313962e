"""Kill simulation: the `step`-th file-system write of the code under test raises `Killed` instead of happening,
which leaves on disk exactly what a SIGKILL at that point would (the code under test has no cleanup for it)."""

from __future__ import annotations

from collections.abc import Iterable


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no `except Exception` in the code under test can catch it."""


def kill_at(monkeypatch, step: int, writers: Iterable[tuple[object, str]]) -> list[int]:
    """Make the `step`-th call (1-based) of any of `writers` ((owner, attribute name) pairs) raise `Killed`;
    returns a one-item list counting the calls reached, so a caller knows when a run got through every step."""
    reached = [0]

    def wrap(owner, name):
        original = getattr(owner, name)

        def killable(*args, **kwargs):
            reached[0] += 1
            if reached[0] == step:
                raise Killed
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, killable)

    for owner, name in writers:
        wrap(owner, name)
    return reached
