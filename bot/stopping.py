"""SIGTERM and SIGINT stop the bot within its grace period, whatever the event loop is doing.

A signal handler on the event loop (``loop.add_signal_handler``) only runs when the loop gets
a turn: a loop stuck in a synchronous database wait, or an exit that waits for a job thread
(``asyncio.run`` joins the default executor), could outlive any grace period. Here the two
signals are blocked in every thread but one of our own, which waits for them with
``sigwait``: the first asks the loop to stop (thread-safe) and starts the grace clock; when the
clock runs out, or on a second signal, the process exits at once with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class StopSignals:
    """Install once per process, before other threads start (they inherit the blocked mask)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event, grace_s: float) -> None:
        self._loop = loop
        self._stop = stop
        self._grace_s = grace_s

    def install(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        threading.Thread(target=self._watch, name="stop-signals", daemon=True).start()

    def _watch(self) -> None:
        received = signal.sigwait(SIGNALS)
        log.info("%s received: stopping (grace %.1f s)", signal.Signals(received).name, self._grace_s)
        with contextlib.suppress(RuntimeError):  # the loop is already closed: the process is on its way out
            self._loop.call_soon_threadsafe(self._stop.set)
        watchdog = threading.Thread(target=self._second_signal, name="stop-second-signal", daemon=True)
        watchdog.start()
        # never disarmed: a clean stop ends the process first; a hanging exit (a job thread
        # joined at interpreter shutdown) is cut short like a hanging stop
        time.sleep(self._grace_s)
        self._exit(f"did not stop within {self._grace_s:g} s of {signal.Signals(received).name}; exiting now")

    def _second_signal(self) -> None:
        received = signal.sigwait(SIGNALS)
        self._exit(f"second {signal.Signals(received).name}: exiting now")

    @staticmethod
    def _exit(reason: str) -> None:
        log.error(reason)
        print(reason, file=sys.stderr, flush=True)
        os._exit(1)


def install_stop_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, grace_s: float) -> StopSignals:
    stopper = StopSignals(loop, stop, grace_s)
    stopper.install()
    return stopper
