"""A stall watchdog for the run loop: if no chunk finishes in time, leave evidence and exit with a distinct code.

XLA:CPU has stopped for good inside compiled programs on some versions (every thread idle, the main thread in
``BlockUntilReady``; ``benchmarks/results/stall_check.md``). From Python such a stall looks like a slow chunk, so
the loop reports a heartbeat after every chunk and a background thread checks that the next one arrives within

* ``first_chunk_seconds`` for compilation plus the first chunk (nothing is known about the run yet), then
* ``factor`` x the slowest chunk so far + ``margin_seconds``.

Time the whole process spends suspended (SIGSTOP or Ctrl-Z, then SIGCONT) is not counted: the watchdog thread is
suspended too and, on waking, finds its own short wait overrun by that time, which it takes off the chunk's clock.
When the bound passes, the watchdog writes Python and native stacks (gdb, where installed) to
``RUN_DIR/stall-stacks.txt``, lets the loop mark ``summary.json`` as stalled, prints one message, and ends the
process with :data:`EXIT_STALLED`. The last checkpoint is intact, so ``jaxrl train --resume RUN_DIR`` continues.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

EXIT_STALLED = 75  # sysexits' EX_TEMPFAIL: a temporary failure; resuming is the remedy
# a watchdog wait (at most 5 s) returning this much later than asked: the process was suspended, not the runtime
SUSPENDED_AFTER_SECONDS = 10.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Watchdog:
    """Bounds on the time between chunks. ``enabled=False`` turns the watchdog off."""

    enabled: bool = True
    first_chunk_seconds: float = 3600.0  # compile + first chunk
    factor: float = 10.0
    margin_seconds: float = 300.0

    def __post_init__(self):
        for name in ("first_chunk_seconds", "factor", "margin_seconds"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"Watchdog.{name}={value} is out of range: must be > 0")

    def bound(self, slowest_chunk: float | None) -> float:
        if slowest_chunk is None:
            return self.first_chunk_seconds
        return self.factor * slowest_chunk + self.margin_seconds


def native_stacks(pid: int | None = None, timeout: float = 120.0) -> str:
    """Every thread's native stack of process ``pid`` (default: this one) from gdb, or why there are none.

    gdb stops every thread of the process it attaches to, the caller's included, so its output goes to a file
    (a pipe to a stopped reader would fill up and deadlock) and its time limit is kept by ``timeout``, a separate
    process, which also sends SIGCONT in case gdb is killed before it detaches.
    """
    pid = os.getpid() if pid is None else pid
    gdb = shutil.which("gdb")
    if gdb is None:
        return "(no native stacks: gdb is not installed)\n"
    if pid == os.getpid():
        _allow_ptrace_by_children()
    import tempfile

    with tempfile.TemporaryFile("w+") as out:
        script = (
            f'timeout -s KILL {int(timeout)} "$0" -p {pid} -batch -nx -ex "set pagination off" '
            f'-ex "thread apply all bt 40"; kill -CONT {pid} 2>/dev/null; exit 0'
        )
        try:
            subprocess.run(["sh", "-c", script, gdb], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as e:
            return f"(no native stacks: gdb failed: {e})\n"
        out.seek(0)
        return out.read()


def _allow_ptrace_by_children() -> None:
    """Let gdb (a child) attach where Yama's ptrace_scope=1 only allows ancestors (PR_SET_PTRACER_ANY)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(0x59616D61, ctypes.c_ulong(-1), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class StallMonitor:
    """The thread behind :class:`Watchdog`. Call :meth:`beat` after each chunk and :meth:`stop` at the end.

    ``on_stall(elapsed, bound)`` runs on the watchdog thread once the bound passed (it writes the stalled summary);
    then the stacks are dumped, ``message`` is printed and the process exits with :data:`EXIT_STALLED`.
    """

    def __init__(
        self,
        watchdog: Watchdog,
        stacks_path: Path | None,
        on_stall: Callable[[float, float], str],
    ):
        self.watchdog = watchdog
        self.stacks_path = stacks_path
        self.on_stall = on_stall
        self._slowest: float | None = None
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="jaxrl-watchdog", daemon=True)

    def start(self) -> None:
        if self.watchdog.enabled:
            self._last = time.monotonic()
            self._thread.start()

    def beat(self, chunk: bool = True) -> None:
        """Restart the clock. ``chunk``: the interval since the last beat was one chunk, so it counts towards the
        bound (the interval that holds compilation does not)."""
        with self._lock:
            now = time.monotonic()
            if chunk:
                self._slowest = max(self._slowest or 0.0, now - self._last)
            self._last = now

    def stop(self) -> None:
        self._done.set()

    def _remaining(self) -> tuple[float, float, float]:
        with self._lock:
            elapsed = time.monotonic() - self._last
            bound = self.watchdog.bound(self._slowest)
            return bound - elapsed, elapsed, bound

    def _watch(self) -> None:
        while not self._done.is_set():
            remaining, elapsed, bound = self._remaining()
            if remaining > 0:
                wait = min(remaining, 5.0)
                start = time.monotonic()
                self._done.wait(wait)
                self._skip_suspension(time.monotonic() - start, wait)
                continue
            self._fire(elapsed, bound)
            return

    def _skip_suspension(self, waited: float, asked: float) -> None:
        """A wait that returned far later than ``asked`` means this thread did not run: the whole process was
        suspended (SIGSTOP, Ctrl-Z, a paused VM), not stalled. That interval is not the chunk's: the clock moves
        past all of it (when in it the suspension began is unknown; a few seconds too many are harmless)."""
        if waited - asked > SUSPENDED_AFTER_SECONDS:
            with self._lock:
                self._last += waited

    def _fire(self, elapsed: float, bound: float) -> None:
        if self.stacks_path is not None:
            with open(self.stacks_path, "w") as f:
                f.write(
                    f"jaxrl stall watchdog: no chunk finished for {elapsed:.0f} s (bound {bound:.0f} s)\n\n"
                    "===== Python stacks (all threads)\n"
                )
                f.flush()
                faulthandler.dump_traceback(file=f, all_threads=True)
                f.write("\n===== native stacks (gdb)\n")
                f.write(native_stacks())
        message = self.on_stall(elapsed, bound)
        print(message, file=sys.stderr, flush=True)
        os._exit(EXIT_STALLED)  # the main thread is stuck in the runtime: only ending the process frees it
