"""When the database is locked or down, callbacks still answer; the messages wait here.

A verified inbound text (or menu click) whose handling fails with a database error, or
does not finish within the reply budget, is written to a small SQLite file of its own in
data_dir (`spool.db`, synchronous=FULL: on disk before WeChat hears back) and the
callback answers `success` (Official Account) or an empty body (WeCom), so WeChat stops
re-sending. `SpoolDrainer`, a thread started with the app (its first round at start-up),
replays each spooled message through the same idempotent inbox once the database answers
and pushes the replies with the provider's API. The spool key is the inbox key
(channel, message_key): a message both spooled and re-delivered by WeChat acts once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

from app.channels.inbox import Handled, Inbound

log = logging.getLogger(__name__)

# What "the database is locked or down" looks like through SQLAlchemy: a lock wait past
# the busy timeout, a refused or dropped connection, an exhausted pool. Not IntegrityError
# and the like: those are bugs and must not be retried forever.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled (
    channel TEXT NOT NULL,
    message_key TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    text TEXT NOT NULL,
    spooled_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, message_key)
)
"""


class Spool:
    """The durable local queue (one SQLite file; several processes may share it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=2.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # kept means on disk
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def keep(self, inbound: Inbound, *, reason: str) -> None:
        """Store the message (once per key) durably before the callback answers; `reason`
        (the database, or the reply budget) is for the log."""
        with self._lock:
            self._connection().execute(
                "INSERT OR IGNORE INTO spooled (channel, message_key, sender_id, text, spooled_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    inbound.channel,
                    inbound.message_key,
                    inbound.sender_id,
                    inbound.text,
                    time.time(),
                ),
            )
        log.warning("%s: %s message %s spooled", reason, inbound.channel, inbound.message_key)

    def discard(self, channel: str, message_key: str) -> None:
        with self._lock:
            self._connection().execute(
                "DELETE FROM spooled WHERE channel = ? AND message_key = ?", (channel, message_key)
            )

    def note_attempt(self, channel: str, message_key: str) -> None:
        with self._lock:
            self._connection().execute(
                "UPDATE spooled SET attempts = attempts + 1 WHERE channel = ? AND message_key = ?",
                (channel, message_key),
            )

    def waiting(self, limit: int = 100) -> list[Inbound]:
        """The oldest spooled messages first."""
        if not self.path.exists():
            return []
        with self._lock:
            rows = self._connection().execute(
                "SELECT channel, sender_id, message_key, text FROM spooled"
                " ORDER BY spooled_at LIMIT ?",
                (limit,),
            )
            return [Inbound(channel, sender, key, text) for channel, sender, key, text in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# (inbound) -> what handling it now gave; raises DATABASE_UNAVAILABLE while the DB is out.
Replay = Callable[[Inbound], Handled]
# (inbound, handled) -> send its replies (and pictures) through the provider's push API.
Push = Callable[[Inbound, Handled], None]


class SpoolDrainer:
    """Replays spooled messages once the database answers; one thread per app process."""

    def __init__(
        self,
        *,
        spool: Spool,
        replay: Replay,
        push: Push,
        busy: Callable[[Inbound], bool] = lambda _inbound: False,
        interval_seconds: float = 2.0,
    ) -> None:
        self.spool = spool
        self.replay = replay
        self.push = push
        self.busy = busy  # a message still being handled by its own callback is left alone
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()

    def drain_once(self) -> int:
        """Replay what is spooled; how many were settled. Stops at the first DB error."""
        settled = 0
        with self._drain_lock:
            for inbound in self.spool.waiting():
                if self.busy(inbound):
                    continue
                try:
                    result = self.replay(inbound)
                except DATABASE_UNAVAILABLE:
                    self.spool.note_attempt(inbound.channel, inbound.message_key)
                    log.info("spool: database still unavailable, will retry")
                    break
                except Exception:
                    # Refused (not staff any more, id reused by someone else) or a bug:
                    # retrying will not help; the inbox holds what was stored.
                    log.exception("spool: dropping %s %s", inbound.channel, inbound.message_key)
                    self.spool.discard(inbound.channel, inbound.message_key)
                    continue
                if result.fresh and result.replies:
                    try:
                        self.push(inbound, result)
                    except Exception:
                        log.exception("spool: reply to %s could not be pushed", inbound.sender_id)
                self.spool.discard(inbound.channel, inbound.message_key)
                settled += 1
        return settled

    def start(self) -> None:
        """Drain now (start-up), then every `interval_seconds` until stopped."""
        self._thread = threading.Thread(target=self._run, name="huitou-spool", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
            except Exception:
                log.exception("spool: drain round failed")
            self._stop.wait(self.interval_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.spool.close()


def spool_of(state: Any) -> Spool:
    """The app's spool (data_dir/spool.db), made on first use."""
    spool: Spool | None = getattr(state, "spool", None)
    if spool is None:
        spool = state.spool = Spool(state.settings.data_dir / "spool.db")
    return spool
