"""Ctrl-C during a fit: training stops, the fit keeps what it has, then the program stops.

skorch ends training on a ``KeyboardInterrupt`` and returns normally, whether the
exception came from Ctrl-C or from a callback that raised it to stop training early
(skorch's documented way; the divergence guard and the study stop training so). Only
a signal should stop the program as well, so the two are told apart here: while a fit
trains, SIGINT goes through :class:`CtrlC`, which records it and raises
``KeyboardInterrupt`` as Python's default handler does; the fit then assembles the
model it has and raises ``KeyboardInterrupt`` again (see ``GMVAEClustering.fit``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class CtrlC:
    """SIGINT during a fit, recorded in ``received``.

    While ``training``, the first SIGINT raises ``KeyboardInterrupt`` at once (skorch
    ends the training on it); afterwards (while the fit assembles its model) the first
    one is only recorded, so that the fitted state is never left half-made. A second
    SIGINT always raises at once.
    """

    def __init__(self) -> None:
        self.received = False
        self.training = True

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.received
        self.received = True
        if self.training or not first:
            raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c() -> Iterator[CtrlC]:
    """Route SIGINT through a :class:`CtrlC` inside the block, and restore the previous
    handler after it.

    Only where Ctrl-C means ``KeyboardInterrupt``: in the main thread (the only one
    that receives signals) and when SIGINT has Python's default handler. A program
    that installed a SIGINT handler of its own keeps it, and decides what Ctrl-C does;
    ``received`` then stays False.
    """
    recorder = CtrlC()
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield recorder
        return
    previous = signal.signal(signal.SIGINT, recorder.handle)
    try:
        yield recorder
    finally:
        signal.signal(signal.SIGINT, previous)
