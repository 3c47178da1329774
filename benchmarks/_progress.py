"""The progress display of ``mobstore bench``, on stderr.

A :class:`Progress` is what the harness hands to a workload as its ``progress`` argument. It
is callable with a message, like the plain ``Callable[[str], None]`` the workloads were
written against (``progress("naive sqlite3 threads ...")`` marks the start of a phase), and
it also offers ``phase(msg)`` (the same) and ``advance(n)``, a bare counter increment that a
workload may call from its hot path (nothing is drawn there: the bar reads the counter when
it redraws).

- On a TTY: one line redrawn in place with ``\\r``: a bar, runs done/total, percent, elapsed,
  and the current workload and phase. With ``refresh`` set, a daemon thread redraws it that
  often so the clock moves during a long phase.
- Not on a TTY (CI logs, pipes): one plain line per phase and per finished run, no ``\\r``.
- ``enabled=False`` (``--quiet``): nothing at all.

Progress is counted in runs (one workload at one size); inside a run, the phases seen so far
out of the ``phases`` the run expects move the percentage, never past the run's end.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

_BAR = 24


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


class Progress:
    """Runs done out of ``total``, the current phase, and an optional operation counter."""

    def __init__(
        self,
        total: int = 0,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        tty: bool | None = None,
        refresh: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        if tty is None:
            isatty = getattr(self._stream, "isatty", None)
            tty = bool(isatty and isatty())
        self._tty = tty
        self._refresh = refresh if tty else None
        self._clock = clock
        self._t0 = clock()
        self._total = total
        self._done = 0
        self._label = ""
        self._msg = ""
        self._phases = 1
        self._seen = 0
        self._width = 0  # length of the line last drawn (TTY)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ops = 0  # advanced by workloads that count their operations (optional)

    # -- what workloads call -------------------------------------------------------------

    def __call__(self, msg: str) -> None:
        self.phase(msg)

    def phase(self, msg: str) -> None:
        """A new phase of the current run starts (e.g. the next system of the workload)."""
        self._seen += 1
        self._msg = msg
        if self._enabled:
            self._emit()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` operations done: a counter increment, nothing more."""
        self.ops += n

    # -- what the harness calls ----------------------------------------------------------

    def start(self, label: str, phases: int = 3) -> None:
        """A run begins: ``label`` names it, ``phases`` is how many phases it announces."""
        self._label, self._msg, self._phases, self._seen, self.ops = label, "", max(1, phases), 0, 0
        if self._enabled and self._tty:
            self._emit()

    def finish(self, note: str = "") -> None:
        """The current run is over."""
        self._done += 1
        self._seen, self._msg = 0, note or "done"
        if self._enabled:
            self._emit()

    def add_total(self, runs: int) -> None:
        self._total += runs

    @property
    def fraction(self) -> float:
        """Share of the whole work done: finished runs plus the current run's phases."""
        if not self._total:
            return 0.0
        inside = min(self._seen - 1, self._phases - 1) / self._phases if self._seen else 0.0
        return min(1.0, (self._done + max(0.0, inside)) / self._total)

    def line(self) -> str:
        """The status line (without ``\\r``)."""
        f = self.fraction
        filled = round(f * _BAR)
        ops = f", {self.ops:,} ops" if self.ops else ""
        what = f"{self._label}: {self._msg}" if self._label else self._msg
        return (f"[{'#' * filled}{'.' * (_BAR - filled)}] {self._done}/{self._total} {f * 100:3.0f}% "
                f"{_clock(self._clock() - self._t0)}{ops}  {what}")

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Clear the bar while the caller writes something else to the terminal; redraw after."""
        with self._lock:
            showing = self._width > 0
            self._erase()
            try:
                yield
            finally:
                if showing:
                    self._draw()

    def close(self) -> None:
        """Stop the redraw thread and leave the terminal on a fresh line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._erase()

    def __enter__(self) -> Progress:
        if self._enabled and self._refresh:
            self._thread = threading.Thread(target=self._ticker, name="bench-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- drawing -------------------------------------------------------------------------

    def _emit(self) -> None:
        with self._lock:
            if self._tty:
                self._draw()
            else:
                print(self.line(), file=self._stream, flush=True)

    def _draw(self) -> None:
        text = self.line()
        cols = shutil.get_terminal_size((100, 24)).columns - 1
        text = text[:cols]
        pad = " " * max(0, self._width - len(text))
        self._stream.write("\r" + text + pad)
        self._stream.flush()
        self._width = len(text)

    def _erase(self) -> None:
        if self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0

    def _ticker(self) -> None:
        assert self._refresh is not None
        while not self._stop.wait(self._refresh):
            with self._lock:
                if self._width:  # only redraw a line that is showing
                    self._draw()
