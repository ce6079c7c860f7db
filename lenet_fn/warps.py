"""The training batches' random distortions, in this process (``distorted_batch``) or in a child
process of their own (``WarpWorker``) that warps the next batches while the step trains.

Why a process and not a thread: the warps and the step of a 32-image batch both spend much of
their time in Python between short NumPy calls, and only one thread runs Python at a time (the
GIL), so a thread warping beside the step slows the step down by about as much as the warps take
(the docs' speed page has the measurement); a process does not share the GIL.

The worker is ``python -m lenet_fn.warps``, started with ``subprocess`` (so it works from any
script, with no ``if __name__ == "__main__"`` guard). It reads the run's training inputs once from
its standard input, then one request per batch (the batch's epoch, index and rows) and answers
with ``distorted_batch``'s array: the same bytes as warping in this process, whatever runs where.
It runs in a session of its own, so a Ctrl-C on the terminal reaches only the training process,
and it ends when its input closes, so it never outlives the run. A batch the worker could not
warp (it answers so, or it has stopped) is warped here, where any error is raised as usual.
"""

from __future__ import annotations

import collections
import json
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from lenet_fn.arrays import FloatArray, IntArray
from lenet_fn.augment import DistortionRanges, distort
from lenet_fn.runtime import reuse_freed_memory, set_blas_threads

try:
    import fcntl
except ImportError:  # Windows: no pipe sizes to set
    fcntl = None  # type: ignore[assignment]

AHEAD = 4
"""Batches requested from the worker before the first is read (its answers wait in the pipe)."""
_PIPE_BYTES = 1 << 20
"""The pipe size asked of Linux (its default ceiling): several answers wait in it, and the
training inputs go over in large writes."""
_REQUEST = struct.Struct("<3q")  # epoch, batch index, rows that follow (int64 each)
_WARPED, _FAILED = b"\x00", b"\x01"


def distorted_batch(x: FloatArray, ranges: DistortionRanges, seed: tuple[int, int, int], background: float) -> FloatArray:
    """The batch ``x`` warped by ``augment.distort``, its warps drawn from a generator seeded by
    ``seed`` = (run seed, epoch, batch): a resumed run draws the same warps, whatever the threads.

    Args:
        x: the batch's model inputs, shape (N, C, H, W), or (N, 784) for flat 28x28 images.
        ranges: how far the warps go.
        seed: (run seed, epoch, batch index).
        background: the value of a blank pixel, filled in where a warp reads outside the image.

    Returns:
        The warped batch, the shape and dtype of ``x``.
    """
    images = x.reshape(x.shape[0], 1, 28, 28) if x.ndim == 2 else x  # the MLP's flat inputs
    rng = np.random.default_rng(seed)
    return distort(images, rng, fill=background, ranges=ranges).reshape(x.shape)


def _enlarge_pipes(process: subprocess.Popen[bytes]) -> None:
    """Asks Linux for ``_PIPE_BYTES`` pipes to and from ``process`` (elsewhere, or if refused,
    the pipes keep their size: fewer bytes wait in them, nothing else changes)."""
    resize: int | None = getattr(fcntl, "F_SETPIPE_SZ", None)
    if resize is None:
        return
    for pipe in (process.stdin, process.stdout):
        try:
            fcntl.fcntl(pipe.fileno(), resize, _PIPE_BYTES)  # type: ignore[union-attr]
        except OSError:
            pass


def _read_exactly(stream: BinaryIO, buffer: memoryview) -> bool:
    """Fills ``buffer`` from ``stream``; False if the stream ends first."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not count:
            return False
        filled += count
    return True


class WarpWorker:
    """A child process warping batches of ``train_x``, used as a context manager.

    Args:
        train_x: the run's training inputs (the rows a request names are rows of it).
        ranges: how far the warps go.
        seed: the run's seed.
        background: the value of a blank pixel.
    """

    def __init__(self, train_x: FloatArray, ranges: DistortionRanges, seed: int, background: float) -> None:
        self.train_x, self.ranges, self.seed, self.background = train_x, ranges, seed, background
        self.answered = 0
        """How many batches the worker has warped (the others were warped here)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._in_step = True  # no message is half written or half read

    def __enter__(self) -> WarpWorker:
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lenet_fn.warps"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, start_new_session=True,
            )  # fmt: skip
        except OSError:  # no process to be had (too many, say): the batches are warped here
            return self
        _enlarge_pipes(self._process)
        try:
            self._send_inputs()
        except BaseException:  # a Ctrl-C while the inputs go over, say
            self._stop(at_once=True)
            raise
        return self

    def _send_inputs(self) -> None:
        images = np.ascontiguousarray(self.train_x)
        ranges = [float(value) for value in (self.ranges.translate, self.ranges.scale, self.ranges.squeeze, self.ranges.shear)]
        settings = {"shape": images.shape, "dtype": images.dtype.str, "seed": int(self.seed), "background": float(self.background),
                    "ranges": ranges}  # fmt: skip
        header = json.dumps(settings).encode()
        self._send(struct.pack("<q", len(header)) + header, images.data.cast("B"))

    @property
    def running(self) -> bool:
        """Whether the worker is still answering (after a failure, batches are warped here)."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """The worker's process id, while it runs."""
        return None if self._process is None else self._process.pid

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self._stop()

    def _send(self, *parts: bytes | memoryview) -> None:
        """Writes ``parts`` to the worker, whole; stops it if it cannot take them."""
        if self._process is None:
            return
        self._in_step = False
        try:
            for part in parts:
                view = memoryview(part).cast("B")
                while view:
                    view = view[self._process.stdin.write(view) :]  # type: ignore[union-attr]
        except OSError:  # it has stopped (a broken pipe)
            self._stop(at_once=True)
        self._in_step = True

    def _stop(self, *, at_once: bool = False) -> None:
        """Closes the worker's pipes and waits for it to end (it ends when its input closes);
        ``at_once`` ends it without waiting for the warps it has queued (it holds nothing)."""
        process, self._process = self._process, None
        self._in_step = True
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            try:
                pipe.close()  # type: ignore[union-attr]
            except OSError:
                pass
        if at_once:
            process.kill()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _receive(self, x: FloatArray) -> bool:
        """Reads the worker's answer into ``x``; False if it could not warp the batch or has stopped."""
        if self._process is None:
            return False
        stream: BinaryIO = self._process.stdout  # type: ignore[assignment]
        status = bytearray(b"?")
        self._in_step = False
        if _read_exactly(stream, memoryview(status)) and status == _FAILED:
            self._in_step = True
            return False
        if status == _WARPED and _read_exactly(stream, x.data.cast("B")):
            self._in_step, self.answered = True, self.answered + 1
            return True
        self._stop(at_once=True)  # it ended mid-answer (or never answered)
        return False

    def batches(self, epoch: int, numbered: Iterable[tuple[int, IntArray]]) -> Iterator[tuple[IntArray, FloatArray]]:
        """``(rows, distorted_batch(train_x[rows], ...))`` for each numbered batch of ``epoch``, in
        order, the worker ``AHEAD`` batches ahead. Leaving early (closing the iterator, or an
        exception such as a Ctrl-C) stops the worker when a request is left unanswered or a message
        half sent or half read: what it would send next would be read in the wrong place."""
        pending: collections.deque[tuple[int, IntArray]] = collections.deque()
        items = iter(numbered)
        try:
            while True:
                while len(pending) < AHEAD and (item := next(items, None)) is not None:
                    rows = np.ascontiguousarray(item[1], dtype="<i8")
                    self._send(_REQUEST.pack(epoch, item[0], rows.shape[0]), rows.data.cast("B"))
                    pending.append(item)
                if not pending:
                    return
                index, rows = pending.popleft()
                yield rows, self._warped(epoch, index, rows)
        finally:
            if pending or not self._in_step:
                self._stop(at_once=True)

    def _warped(self, epoch: int, index: int, rows: IntArray) -> FloatArray:
        """The worker's answer for the batch, or (when it could not warp it) the batch warped here."""
        warped = np.empty((rows.shape[0], *self.train_x.shape[1:]), dtype=self.train_x.dtype)
        if self._receive(warped):
            return warped
        return distorted_batch(self.train_x[rows], self.ranges, (self.seed, epoch, index), self.background)


def _read_inputs(source: BinaryIO) -> tuple[dict[str, Any], FloatArray] | None:
    """The settings and training inputs a worker is sent first; None if its input ends before."""
    length = bytearray(8)
    if not _read_exactly(source, memoryview(length)):
        return None
    header = bytearray(struct.unpack("<q", length)[0])
    if not _read_exactly(source, memoryview(header)):
        return None
    settings: dict[str, Any] = json.loads(header)
    images = np.empty(tuple(settings["shape"]), dtype=np.dtype(settings["dtype"]))
    return (settings, images) if _read_exactly(source, images.data.cast("B")) else None


def _read_requests(source: BinaryIO, requests: queue.SimpleQueue[tuple[int, int, IntArray] | None]) -> None:
    """Moves each request (epoch, batch index, rows) from ``source`` to ``requests``, then None.

    On a thread of its own, so that the training process can always write its next requests,
    even while this worker waits for it to read a large answer."""
    request = bytearray(_REQUEST.size)
    while _read_exactly(source, memoryview(request)):
        epoch, index, count = _REQUEST.unpack(request)
        rows = np.empty(count, dtype="<i8")
        if not _read_exactly(source, rows.data.cast("B")):
            break
        requests.put((epoch, index, rows))
    requests.put(None)


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """The worker's loop: the inputs, then one answer per request, until ``source`` ends."""
    inputs = _read_inputs(source)
    if inputs is None:
        return
    settings, images = inputs
    ranges = DistortionRanges(*settings["ranges"])
    requests: queue.SimpleQueue[tuple[int, int, IntArray] | None] = queue.SimpleQueue()
    threading.Thread(target=_read_requests, args=(source, requests), daemon=True).start()
    while (request := requests.get()) is not None:
        epoch, index, rows = request
        try:
            warped = distorted_batch(images[rows], ranges, (settings["seed"], epoch, index), settings["background"])
        except Exception:  # the training process warps this batch itself and reports what goes wrong
            sink.write(_FAILED)
        else:
            sink.write(_WARPED)
            sink.write(np.ascontiguousarray(warped).data.cast("B"))
        sink.flush()


def main() -> int:
    """``python -m lenet_fn.warps``: serves a training process's requests on stdin and stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the training process stops this one
    set_blas_threads(1)
    reuse_freed_memory()  # as the commands do (the docs' speed page has what it saves here)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, ConnectionResetError):  # the training process has stopped reading
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
