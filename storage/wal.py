"""SQLite's write-ahead log checkpointed in a background thread, never inside a commit.

By default SQLite checkpoints from whichever commit finds the log past 1,000 pages: that
commit copies the log into the database file and syncs it, so a handler's one-row commit or
the segment job's commit can pay for everybody's writes (half of an incremental recompute's
time at 200,000 owners). An engine made with ``make_engine(url, background_checkpoints=True)``
raises that threshold to ``FALLBACK_PAGES`` (a bound should this thread stop), and a
:class:`WalCheckpointer` runs a ``PASSIVE`` checkpoint every ``interval_s`` on its own
connection: it waits for no reader or writer and copies what they allow. ``bot.app`` starts
one per SQLite application and stops it (with a last checkpoint) on close.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

#: the commit-time checkpoint threshold (pages, ~4 KB each) left as a safety net
FALLBACK_PAGES = 50_000
#: how often the background thread checkpoints
INTERVAL_S = 1.0


def defer_checkpoints(dbapi_connection: Any, _record: Any = None) -> None:
    """Per connection (a ``connect`` listener): commits checkpoint only past
    ``FALLBACK_PAGES`` (the thread does it)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
    cursor.close()


class WalCheckpointer:
    """A daemon thread checkpointing one SQLite database's log (``start``, ``stop``)."""

    def __init__(self, engine: Engine, interval_s: float = INTERVAL_S) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def checkpoint(self) -> tuple[int, int, int]:
        """One passive checkpoint: (busy, log frames, frames checkpointed), as SQLite says."""
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            conn.rollback()
        return int(row[0]), int(row[1]), int(row[2])

    def start(self) -> WalCheckpointer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after a last checkpoint (what the process wrote reaches the file)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        # stop signals are the main thread's business (``bot.stopping`` blocks them in every
        # thread but its own watcher): a thread that left them open would be the one the
        # kernel hands SIGTERM to, and the process would die on the spot instead of stopping
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while not self._stopping.wait(self.interval_s):
            self._checkpoint_quietly()
        self._checkpoint_quietly()

    def _checkpoint_quietly(self) -> None:
        try:
            self.checkpoint()
        except Exception:  # a locked or closed database: the next turn (or a commit) does it
            log.warning("SQLite checkpoint skipped", exc_info=True)
