"""The simulated PBX's recordings (contract revision 3): a short real audio file for every
answered call, kept in the PBX's own store, apart from the cabinet's database.

Two ways out, as with the real PBX:
- the public ``link`` pushed in ``history``: no login, and dead ``CABINET_PBX_LINK_DAYS``
  after the call (7 by default);
- ``host.pbx.recording``: the PBX's authenticated download, by byte range, for as long as
  the PBX keeps the file (``CABINET_PBX_RECORDING_DAYS``, 90 by default).

Files live in ``PBX_RECORDINGS_DIR`` (the instance folder's ``pbx-recordings`` by default),
their facts in the PBX store's ``pbx_recording`` table. Reading is by chunks: a recording is
never held in memory whole.
"""
from __future__ import annotations

import io
import logging
import math
import struct
import threading
import uuid
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .pbx_store import metadata

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
SAMPLE_RATE = 8000  # telephone audio
recordings = sa.Table(
    "pbx_recording", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("call_id", sa.String(128), nullable=False),
    sa.Column("file", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("account", "call_id"))


@dataclass
class Recording:
    """CONTRACT §3: a byte range of a recording; ``chunks`` must be closed by the caller."""
    content_type: str
    total_length: int
    start: int
    end: int              # inclusive; ``end < start`` when the range starts past the end
    chunks: Iterator[bytes]

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


# A recording pushed from outside may not be ready when `history` arrives: tries at these
# delays (seconds) after it, then the store gives up.
FETCH_DELAYS = (0, 2, 5, 15, 30, 60)


class RecordingStore:
    def __init__(self, engine, directory: str | Path, *, link_days: int, keep_days: int):
        self.engine = engine
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.link_days, self.keep_days = link_days, keep_days
        self._fetchers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pbx-recording")
        self._closing = threading.Event()

    def close(self) -> None:
        self._closing.set()
        self._fetchers.shutdown(wait=False, cancel_futures=True)

    def fetch_later(self, account: str, call_id: str, link: str, made_at: datetime) -> None:
        """Keep the recording behind a link pushed from outside (a PBX in front of the stub):
        fetched once, in the background, retried while it is not there yet."""
        if urlsplit(link).scheme not in ("http", "https") or self._closing.is_set():
            return
        self._fetchers.submit(self._fetch, account, call_id, link, made_at)

    def _fetch(self, account: str, call_id: str, link: str, made_at: datetime) -> None:
        for delay in FETCH_DELAYS:
            if self._closing.wait(delay):
                return
            try:
                with requests.get(link, stream=True, timeout=(3, 30), allow_redirects=False) as answer:
                    if answer.status_code == 200:
                        kind = answer.headers.get("Content-Type", "audio/mpeg").split(";")[0].strip()
                        self.keep(account, call_id, kind or "audio/mpeg", answer.iter_content(CHUNK), made_at)
                        return
            except Exception as exc:  # noqa: BLE001 - a stand-in PBX retries whatever went wrong
                log.info("pbx: recording of %s not fetched from %s yet: %s", call_id, link, type(exc).__name__)
        log.warning("pbx: gave up fetching the recording of %s from %s", call_id, link)

    def make(self, account: str, call_id: str, talk_seconds: int, made_at: datetime) -> None:
        """A real WAV file for an answered call: a tone as long as the talk (1 to 5 s)."""
        seconds = max(1, min(5, talk_seconds))
        self.keep(account, call_id, "audio/wav", _tone(seconds, call_id), made_at)

    def keep(self, account: str, call_id: str, content_type: str, chunks, made_at: datetime) -> None:
        """Write the file, then its row; a second recording of the same call keeps the first."""
        name = f"{uuid.uuid4().hex}.bin"
        path = self.directory / name
        size = 0
        with open(path, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                size += len(chunk)
        try:
            with self.engine.begin() as conn:
                conn.execute(recordings.insert().values(account=account, call_id=call_id, file=name,
                                                        content_type=content_type, size=size, made_at=made_at))
        except IntegrityError:
            path.unlink(missing_ok=True)

    def _row(self, account: str, call_id: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(recordings).where(
                recordings.c.account == account, recordings.c.call_id == call_id)).first()

    def public(self, account: str, call_id: str, now: datetime) -> Recording | None:
        """What the push's public ``link`` serves: the whole file, until the link lapses."""
        row = self._row(account, call_id)
        if row is None or now - _aware(row.made_at) > timedelta(days=self.link_days):
            return None
        return self._open(row, None, None)

    def read(self, account: str, call_id: str, now: datetime, start: int | None = None,
             end: int | None = None) -> Recording | None:
        """``host.pbx.recording``: ``start``/``end`` inclusive (``start`` None with ``end`` n:
        the last n bytes, as an HTTP suffix range); None when the PBX keeps none any more."""
        row = self._row(account, call_id)
        if row is None or now - _aware(row.made_at) > timedelta(days=self.keep_days):
            return None
        return self._open(row, start, end)

    def _open(self, row, start: int | None, end: int | None) -> Recording:
        total = row.size
        if start is None and end is not None:  # suffix: the last `end` bytes
            start, end = max(0, total - end), total - 1
        start = start or 0
        end = total - 1 if end is None else min(end, total - 1)
        if start > end:
            return Recording(row.content_type, total, start, end, iter(()))
        return Recording(row.content_type, total, start, end, _chunks(self.directory / row.file, start, end))


def _chunks(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _tone(seconds: int, call_id: str) -> Iterator[bytes]:
    """A WAV file (16-bit mono PCM, at most a few seconds) of a tone whose pitch comes from
    the call id."""
    pitch = 300 + (sum(call_id.encode()) % 500)
    samples = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * pitch * n / SAMPLE_RATE)))
                       for n in range(seconds * SAMPLE_RATE))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples)
    yield buffer.getvalue()


def _aware(value: datetime) -> datetime:
    from datetime import timezone
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

