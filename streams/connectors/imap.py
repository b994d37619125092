"""``supportstream connect imap``: every new mail of a mailbox, published once, in arrival order.

The mailbox is opened read-only (``EXAMINE``: no flag is changed, the support team's mail client
sees the mailbox as before) and polled: ``NOOP``, then ``UID SEARCH UID {last+1}:*``, then for
each new UID in ascending order ``UID FETCH (INTERNALDATE BODY.PEEK[])``. Polling, not IDLE:
it works with every server and through every proxy, and a poll interval of seconds is nothing
against e-mail SLAs measured in hours (``SUPPORTSTREAM_IMAP_POLL_SECONDS``).

Progress is ``(UIDVALIDITY, last UID)`` in a small JSON state file, written atomically (temp
file, fsync, rename, fsync of the directory) **after** the broker acknowledged the mail: a crash
between the acknowledgement and the write republishes that one mail (at-least-once; the desk
recognises the repeated Message-ID as a duplicate), a restart never skips one. A changed
UIDVALIDITY means the server renumbered the mailbox: old UIDs mean nothing any more, so it is
read again from the start (loud warning; the desk recognises every mail already seen).

Each mail is published byte-exact (``envelope.email_text``: UTF-8, else ISO-8859-1, named in
``content_type``), keyed ``email:{h(thread root)}`` so a thread stays in order. A mail the
parser cannot understand is still published: a mailbox cannot refuse mail, and downstream it
becomes a dead letter an operator can see. ``at`` is the server's INTERNALDATE (when the mail
reached the mailbox, which is when the contact reached support; never later than now), so a
backlog read after downtime keeps its SLA clocks right; ``received_at`` is the fetch time.

imaplib is synchronous: every IMAP call runs on one dedicated thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import imaplib
import json
import os
import re
import ssl
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from prometheus_client import CollectorRegistry

from processors.ids import Pseudonymizer
from processors.model import Millis
from processors.pii import Masker
from streams.connectors.envelope import Clock, check_email, wall_clock
from streams.connectors.metrics import ConnectorMetrics
from streams.connectors.publisher import Publisher, PublishError
from streams.settings import ConnectSettings

T = TypeVar("T")

_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_UID = re.compile(rb"UID (\d+)")


class ImapError(Exception):
    """The mailbox cannot be read (connection, login, mailbox, protocol)."""


@dataclass(frozen=True)
class Progress:
    uidvalidity: int
    last_uid: int


class StateFile:
    """The connector's progress in one mailbox, replaced atomically on every save."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_mailbox(
        cls, state_dir: Path, host: str, port: int, user: str, mailbox: str
    ) -> StateFile:
        ident = f"{user}@{host}:{port}/{mailbox}"
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{user}_{host}_{mailbox}")[:60]
        digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:12]
        return cls(state_dir / f"imap-{readable}-{digest}.json")

    def load(self) -> Progress | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # Never guess: starting over would republish the mailbox, skipping would lose mail.
            raise ImapError(f"state file {self.path} is unreadable: {exc}") from None
        return Progress(int(data["uidvalidity"]), int(data["last_uid"]))

    def save(self, progress: Progress) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"uidvalidity": progress.uidvalidity, "last_uid": progress.last_uid})
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".imap-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # The rename is durable only once the directory entry is.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_internaldate(text: bytes) -> Millis | None:
    """``INTERNALDATE "17-Jul-1996 02:44:25 -0700"`` in a FETCH response, as milliseconds."""
    match = _INTERNALDATE.search(text)
    if match is None:
        return None
    try:
        moment = dt.datetime.strptime(
            match.group(1).decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z"
        )
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


class Mailbox:
    """One read-only IMAP session (synchronous; used from a single thread)."""

    def __init__(self, settings: ConnectSettings, timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._imap: imaplib.IMAP4 | None = None
        self.uidvalidity = 0

    def open(self) -> int:
        s = self._settings
        try:
            if s.imap_security == "ssl":
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.imap_host,
                    s.imap_port,
                    ssl_context=ssl.create_default_context(),
                    timeout=self._timeout_s,
                )
            else:
                imap = imaplib.IMAP4(s.imap_host, s.imap_port, timeout=self._timeout_s)
                if s.imap_security == "starttls":
                    imap.starttls(ssl.create_default_context())
            self._imap = imap
            imap.login(s.imap_user, s.imap_password)
            typ, _ = imap.select(_quote(s.imap_mailbox), readonly=True)
            if typ != "OK":
                raise ImapError(f"mailbox {s.imap_mailbox!r} cannot be opened")
            _, data = imap.response("UIDVALIDITY")
            if not data or data[0] is None:
                raise ImapError("the server did not report UIDVALIDITY")
            self.uidvalidity = int(data[0])
        except (imaplib.IMAP4.error, OSError, ValueError) as exc:
            self.close()
            # The exception text never holds the password (imaplib does not echo it).
            raise ImapError(f"cannot open {s.imap_host}:{s.imap_port}: {exc}") from None
        return self.uidvalidity

    def _session(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise ImapError("mailbox is not open")
        return self._imap

    def new_uids(self, after: int) -> list[int]:
        imap = self._session()
        try:
            imap.noop()
            typ, data = imap.uid("SEARCH", f"UID {after + 1}:*")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"search failed: {exc}") from None
        if typ != "OK":
            raise ImapError(f"search failed: {data!r}")
        found = {int(token) for line in data if line for token in line.split()}
        # "n:*" always matches the highest UID even when it is below n (RFC 3501 6.4.8).
        return sorted(uid for uid in found if uid > after)

    def fetch(self, uid: int) -> tuple[bytes, Millis | None]:
        imap = self._session()
        try:
            typ, data = imap.uid("FETCH", str(uid), "(UID INTERNALDATE BODY.PEEK[])")
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"fetch of UID {uid} failed: {exc}") from None
        if typ != "OK":
            raise ImapError(f"fetch of UID {uid} failed: {data!r}")
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0]
            uid_match = _UID.search(head)
            if b"BODY[]" not in head or (uid_match is not None and int(uid_match.group(1)) != uid):
                continue
            # INTERNALDATE may come after the literal (in the closing part of the response).
            tail = b" ".join(x for x in data if isinstance(x, bytes))
            return item[1], parse_internaldate(head + b" " + tail)
        raise ImapError(f"the server returned no body for UID {uid}")

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            with contextlib.suppress(Exception):
                imap.logout()


class ImapConnector:
    """Polls one mailbox and publishes each new mail; ``run`` until ``stop`` is set."""

    def __init__(
        self,
        settings: ConnectSettings,
        publisher: Publisher,
        *,
        topic: str,
        pseudo: Pseudonymizer,
        registry: CollectorRegistry,
        clock: Clock = wall_clock,
        logger: Any = None,
        state: StateFile | None = None,
        retry_max_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.topic = topic
        self.metrics = ConnectorMetrics(registry)
        self.state = state or StateFile.for_mailbox(
            Path(settings.imap_state_dir),
            settings.imap_host,
            settings.imap_port,
            settings.imap_user,
            settings.imap_mailbox,
        )
        self._pseudo = pseudo
        self._mask = Masker().mask
        self._clock = clock
        self._log = logger if logger is not None else structlog.get_logger("supportstream.imap")
        self._retry_max_s = retry_max_s
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")
        self._mailbox: Mailbox | None = None
        self.published = 0

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    await self.poll_once(stop)
                    backoff = 1.0
                    delay = self.settings.imap_poll_s
                except PublishError as exc:
                    self._log.warning("broker unavailable, will retry", error=str(exc))
                    delay, backoff = backoff, min(backoff * 2, self._retry_max_s)
                except ImapError as exc:
                    self._log.warning("mailbox unavailable, will reconnect", error=str(exc))
                    await self._close_mailbox()
                    delay, backoff = backoff, min(backoff * 2, self._retry_max_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            await self._close_mailbox()
            self._thread.shutdown(wait=True)
            await self.publisher.close()

    async def _close_mailbox(self) -> None:
        mailbox, self._mailbox = self._mailbox, None
        if mailbox is not None:
            await self._call(mailbox.close)

    async def poll_once(self, stop: asyncio.Event | None = None) -> int:
        """Publish every mail newer than the recorded progress; return how many."""
        if self._mailbox is None:
            mailbox = Mailbox(self.settings)
            await self._call(mailbox.open)
            self._mailbox = mailbox
            self._log.info("mailbox opened", mailbox=self.settings.imap_mailbox)
        mailbox = self._mailbox
        uidvalidity = mailbox.uidvalidity
        progress = self.state.load()
        after = 0
        if progress is not None and progress.uidvalidity == uidvalidity:
            after = progress.last_uid
        elif progress is not None:
            self._log.warning(
                "UIDVALIDITY changed: reading the mailbox again from the start",
                previous=progress.uidvalidity,
                current=uidvalidity,
            )
        count = 0
        for uid in await self._call(mailbox.new_uids, after):
            if stop is not None and stop.is_set():
                break  # the mail in hand is finished; the next one waits for the next start
            await self._publish(mailbox, uidvalidity, uid)
            count += 1
        return count

    async def _publish(self, mailbox: Mailbox, uidvalidity: int, uid: int) -> None:
        raw, arrived = await self._call(mailbox.fetch, uid)
        now = self._clock()
        at = min(arrived, now) if arrived is not None else now
        verdict = check_email(
            raw,
            at=at,
            received_at=now,
            connector=self.settings.connector_name,
            ref=f"imap:{self.settings.imap_mailbox}:{uidvalidity}:{uid}",
            pseudo=self._pseudo,
            mask=self._mask,
        )
        envelope = verdict.envelope
        assert envelope is not None  # check_email always publishes
        started = asyncio.get_running_loop().time()
        await self.publisher.publish(self.topic, envelope.key, envelope.encode())
        # Only now, with the broker's acknowledgement in hand, does the progress move.
        self.state.save(Progress(uidvalidity, uid))
        elapsed = asyncio.get_running_loop().time() - started
        self.published += 1
        self.metrics.accepted("email", [c.channel for c in verdict.contacts], elapsed)
        self.metrics.lag(at, now)
        self.metrics.imap_last_uid.set(uid)
        if verdict.refused is not None:
            self._log.warning(
                "mail published, the parser will dead-letter it",
                uid=uid,
                reason=verdict.refused.reason,
            )
        self._log.info("mail published", uid=uid, conversation_id=envelope.key, bytes=len(raw))
