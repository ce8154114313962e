"""What `finedefics run` keeps between reruns and what it shows while it runs.

Each step's completion is keyed on a fingerprint of everything that determines its output (its recipe sections after
parsing, so defaults count, the fingerprints of the steps it reads, the base model, the seed and the package
version), as `datasets` keys its cached transforms. The fingerprint is written beside the step's output
(`FINGERPRINT_NAME`): with ``complete: false`` when the step starts, ``true`` when it has finished. A rerun skips a
step whose recorded fingerprint is complete and equal to the current one, resumes one that was interrupted with the
same fingerprint, and discards and redoes one whose fingerprint changed; a changed step changes the fingerprints
of every step downstream of it, which are then redone too.

While the run works, the console shows one line per step (the share of the run's steps finished, elapsed time, a
time-left estimate measured as the run goes; on a terminal the running step's line is kept current); everything the
libraries print or log (metric dicts, warnings, each progress bar's last state) goes to the run's log file instead
(`RUN_LOG_NAME`, appended across reruns).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

from ..training_summary import settings_changes

FINGERPRINT_NAME = "fingerprint.json"
RUN_LOG_NAME = "run.log"

# A long job's progress: (share of the work done, what it is doing now).
Progress = Callable[[float, str], None]

logger = logging.getLogger(__name__)


def fingerprint(settings: dict[str, Any]) -> str:
    """A short hash of `settings` (JSON-serialisable up to `str` of odd values), stable across processes."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


@dataclass
class StepRecord:
    """The fingerprint of one step, kept in `path` beside its output; `discard` lists what a changed step removes."""

    name: str
    path: Path
    settings: dict[str, Any]
    discard: tuple[Path, ...] = ()

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.settings)

    def saved(self) -> dict[str, Any] | None:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return saved if isinstance(saved, dict) else None

    def is_complete(self) -> bool:
        saved = self.saved()
        return saved is not None and saved.get("fingerprint") == self.fingerprint and saved.get("complete") is True

    def changes(self) -> list[str]:
        """What differs from the recorded settings, as 'key: old -> new' (empty when nothing is recorded)."""
        saved = self.saved()
        if saved is None or saved.get("fingerprint") == self.fingerprint:
            return []
        return settings_changes(_flatten(saved.get("settings", {})), _flatten(self.settings), show=repr)

    def begin(self) -> None:
        """Discard the output of other settings, then record that this fingerprint's step has started."""
        if changes := self.changes():
            logger.warning(
                "%s: settings changed (%s); its output is discarded and redone.", self.name, "; ".join(changes)
            )
            for path in self.discard:
                shutil.rmtree(path, ignore_errors=True)
        self._write(complete=False)

    def finish(self) -> None:
        self._write(complete=True)

    def _write(self, complete: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"fingerprint": self.fingerprint, "complete": complete, "settings": self.settings}
        self.path.write_text(json.dumps(record, indent=1, default=str) + "\n")


@contextlib.contextmanager
def recorded(record: StepRecord | None) -> Iterator[None]:
    """Run a step under `record`: begun before, finished only when the step returns."""
    if record is not None:
        record.begin()
    yield
    if record is not None:
        record.finish()


@dataclass
class PlannedStep:
    """One line of the run: `cost` is its expected work in `kind` units (training examples, items scored...); None
    for a step whose work is not model work (data generation, tables): measured, but no yardstick for others."""

    name: str
    kind: str
    cost: float | None
    action: Callable[[], Any]
    record: StepRecord | None = None  # None: the step keeps its own cache (the world base)
    is_done: Callable[[], bool] | None = None  # default: its record is complete

    def done(self) -> bool:
        if self.is_done is not None:
            return self.is_done()
        return self.record is not None and self.record.is_complete()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


@dataclass
class RunClock:
    """Elapsed time and a time-left estimate: the remaining steps' costs at the seconds per unit measured so far
    (per kind of step, else over every step measured)."""

    started: float = field(default_factory=time.perf_counter)
    measured: dict[str, tuple[float, float]] = field(default_factory=dict)  # kind -> (seconds, cost)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def measure(self, kind: str, seconds: float, cost: float | None) -> None:
        if cost:
            total_seconds, total_cost = self.measured.get(kind, (0.0, 0.0))
            self.measured[kind] = (total_seconds + seconds, total_cost + cost)

    def seconds_left(self, remaining: list[PlannedStep]) -> float | None:
        """The time `remaining` should take at the rates measured so far (None before any)."""
        seconds = sum(spent for spent, _ in self.measured.values())
        cost = sum(cost for _, cost in self.measured.values())
        if not cost:
            return None
        rates = {kind: spent / done for kind, (spent, done) in self.measured.items()}
        return sum((step.cost or 0.0) * rates.get(step.kind, seconds / cost) for step in remaining)

    def status(self, remaining: list[PlannedStep], running_since: float | None = None) -> str:
        """'elapsed, ~left' text; `running_since`: when the first of `remaining` started. A running step of a kind not
        measured yet is estimated as its own progress bar goes (tqdm's estimate), else its estimate counts down."""
        left = self.seconds_left(remaining)
        if running_since is not None and remaining:
            current = None if remaining[0].kind in self.measured else _bar_seconds_left(running_since)
            if current is None and (estimate := self.seconds_left(remaining[:1])) is not None:
                current = max(estimate - (time.perf_counter() - running_since), 0.0)
            rest = self.seconds_left(remaining[1:]) if any(step.cost for step in remaining[1:]) else 0.0
            if current is not None and rest is None:
                return f"{_clock(self.elapsed)} elapsed, ~{_clock(current)} left in this step"
            left = None if current is None else current + rest
        if left is None:
            return f"{_clock(self.elapsed)} elapsed"
        return f"{_clock(self.elapsed)} elapsed, ~{_clock(left)} left"


def _bar_seconds_left(since: float) -> float | None:
    """What the oldest progress bar opened since `since` (a library's loop inside the running step, e.g. the
    Trainer's steps) has left, at its own pace so far; its output goes to the run log, its pace is read here."""
    from tqdm import tqdm

    started = time.time() - (time.perf_counter() - since)
    bars = [bar for bar in list(tqdm._instances) if getattr(bar, "start_t", 0) >= started and bar.total]
    bars = [bar for bar in bars if bar.n > bar.initial]
    if not bars:
        return None
    bar = min(bars, key=lambda bar: bar.start_t)
    return (time.time() - bar.start_t) * (bar.total - bar.n) / (bar.n - bar.initial)


@contextlib.contextmanager
def _ticking(update: Callable[[], None] | None, every: float) -> Iterator[None]:
    """Call `update` every `every` seconds in a thread while the block runs."""
    if update is None:
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            update()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_steps(
    steps: list[PlannedStep],
    progress: Progress,
    update: Callable[[float, str], None] | None = None,
    every: float = 1.0,
) -> float:
    """Run `steps` in order, one progress line each; `update`, if given, is called every `every` seconds while a
    step runs with its line brought up to date (a terminal redraws the line in place). Returns the seconds taken."""
    clock = RunClock()
    pending = [step for step in steps if not step.done()]

    # The share of the steps finished (run or skipped): it only grows, where a share of the estimated time would
    # fall back each time a step of a new kind turns out slower than the estimate made before it was measured.
    def line(index: int, step: PlannedStep, running_since: float | None = None) -> tuple[float, str]:
        timing = clock.status(pending, running_since)
        if step.record is not None and (changed := step.record.changes()):
            keys = list(dict.fromkeys(change.split(":", 1)[0] for change in changed))
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            timing = f"redone, changed: {shown}; {timing}"
        return index / len(steps), f"{step.name} ({timing})"

    for index, step in enumerate(steps):
        if not any(step is other for other in pending):
            progress(index / len(steps), f"{step.name} (done, skipped)")
            continue
        progress(*line(index, step))
        started = time.perf_counter()
        tick = update and (lambda index=index, step=step, started=started: update(*line(index, step, started)))
        with _ticking(tick, every):
            step.action()
        clock.measure(step.kind, time.perf_counter() - started, step.cost)
        pending = [other for other in pending if other is not step]
    return clock.elapsed


def _is_console_handler(handler: logging.Handler) -> bool:
    # Exactly StreamHandler: file handlers and pytest's capture handlers are subclasses, and stay as they are.
    return type(handler) is logging.StreamHandler


class FinalLines(io.TextIOBase):
    """A text stream onto `file` that writes each line as a terminal would leave it: a carriage return starts the
    line again, so of a progress bar redrawn in place (tqdm's frames) only its last state is written."""

    def __init__(self, file: TextIO):
        self.file = file
        self.line = ""  # the line being written, not ended yet

    @property
    def encoding(self) -> str:  # tqdm draws its bars in unicode only for a stream that says it can
        return self.file.encoding

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *ended, self.line = (self.line + text).replace("\r\n", "\n").split("\n")
        for line in ended:
            self.file.write(line.rsplit("\r", 1)[-1] + "\n")
        self.line = self.line.rsplit("\r", 1)[-1]
        return len(text)

    def flush(self) -> None:
        self.file.flush()

    def fileno(self) -> int:  # for libraries that write to the file descriptor (faulthandler, subprocesses)
        return self.file.fileno()

    def close(self) -> None:
        """End the line left unended (a bar a failure cut short) and flush; the file stays open."""
        if self.closed:
            return
        if self.line.strip():
            self.file.write(self.line + "\n")
        self.line = ""
        self.flush()
        super().close()


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[TextIO]:
    """Send what libraries print and log during the block (progress bars, the Trainer's metric dicts, warnings,
    log records) to the log file `path`, appended, instead of the console; yields the console stream for the
    run's own progress lines."""
    import datasets
    import huggingface_hub.utils
    import transformers

    console = sys.stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as file, contextlib.ExitStack() as stack:
        log = FinalLines(file)
        stack.callback(log.close)
        log.write(f"\n===== finedefics run, {datetime.now().isoformat(timespec='seconds')} =====\n")
        root = logging.getLogger()
        for handler in [handler for handler in root.handlers if _is_console_handler(handler)]:
            root.removeHandler(handler)
            stack.callback(root.addHandler, handler)
        # Libraries that log through their own console handler (transformers, datasets) do not reach root.
        for each in list(logging.root.manager.loggerDict.values()):
            for handler in each.handlers if isinstance(each, logging.Logger) else []:
                if _is_console_handler(handler):
                    stack.callback(handler.setStream, handler.setStream(log))
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        stack.callback(root.removeHandler, handler)
        if root.level > logging.INFO:
            stack.callback(root.setLevel, root.level)
            root.setLevel(logging.INFO)
        # Bars redrawn into a file are noise: the run's own lines say where it is (the Trainer's bar stays on, and
        # `FinalLines` keeps its last state).
        for enabled, disable, enable in (
            (datasets.is_progress_bar_enabled, datasets.disable_progress_bars, datasets.enable_progress_bars),
            (
                transformers.utils.logging.is_progress_bar_enabled,
                transformers.utils.logging.disable_progress_bar,
                transformers.utils.logging.enable_progress_bar,
            ),
            (
                lambda: not huggingface_hub.utils.are_progress_bars_disabled(),
                huggingface_hub.utils.disable_progress_bars,
                huggingface_hub.utils.enable_progress_bars,
            ),
        ):
            if enabled():
                disable()
                stack.callback(enable)
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(contextlib.redirect_stderr(log))
        try:
            yield console
        except Exception:
            logger.exception("The run stopped:")
            print(f"finedefics run stopped; its full log: {path}", file=console)
            raise
