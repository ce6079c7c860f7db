"""What every ``python -m lenet_fn.*`` command shares: how it ends when its output pipe closes, on
Ctrl-C and on SIGTERM (one line and an exit status, never a traceback), and a way to hold those
signals back while a set of files is written.

Exit statuses, as a shell reports a program stopped by the signal: 130 for Ctrl-C (SIGINT), 143
for SIGTERM (what ``kill`` and batch systems send), 141 for a closed pipe (``... | head -1``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn

EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
EXIT_TERMINATED = 128 + signal.SIGTERM


class UsageError(Exception):
    """A bad flag or combination of flags (reported as one line, exit status 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises ``KeyboardInterrupt``, so that both stop a run alike."""


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


def signal_name(interrupt: KeyboardInterrupt) -> str:
    """How to name the signal in a message: ``Ctrl-C`` or ``SIGTERM``."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: raises ``Terminated``."""
    raise Terminated()


def run_command(main: Callable[[], int]) -> NoReturn:
    """Runs a command's ``main`` and exits with its status; SIGTERM is raised as ``Terminated``.

    A ``KeyboardInterrupt`` or ``Terminated`` that ``main`` does not handle itself (one arriving while
    the data loads, say) ends the program with one line on stderr; a closed stdout ends it silently.
    """
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        status = main()
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
    except BrokenPipeError:
        status = EXIT_BROKEN_PIPE
    except KeyboardInterrupt as interrupt:
        status = exit_status(interrupt)
        with contextlib.suppress(OSError):
            print(f"\nstopped by {signal_name(interrupt)}", file=sys.stderr)
    if status == EXIT_BROKEN_PIPE:
        _discard_stdout()
    sys.exit(status)


def _discard_stdout() -> None:
    """Points stdout at /dev/null, so that flushing it at exit cannot raise again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


_holding: list[bool] = []  # non-empty inside signals_held


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Holds Ctrl-C and SIGTERM back until the block is done, then raises the one that came.

    Used around writes that belong together (an epoch's checkpoint, best weights and metrics), so
    that a signal never leaves some of them written and the others not. Outside the main thread,
    where handlers cannot be set, and inside another such block, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread() or _holding:
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGINT, signal.SIGTERM)}
    _holding.append(True)
    try:
        yield
    finally:
        _holding.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise Terminated() if signal.SIGTERM in received else KeyboardInterrupt()
