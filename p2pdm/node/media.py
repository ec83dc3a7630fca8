"""A node's files: uploads sealed into blobs, attachments of messages, the
chunks fetched from peers, reading files back, and the sweep of blobs no
message needs (docs/protocol.md §17).

How this works: an :class:`Upload` takes a file's bytes as they stream in
and seals them (:mod:`p2pdm.core.blob`) into a temporary blob file; a photo
is first made safe (:mod:`p2pdm.node.images`: metadata stripped unless the
``media_strip_metadata`` setting is off, upright, bombs refused, thumbnail).
:meth:`Upload.finish` names the blob by its hash and records it with its
key in the store. A media message refers to uploaded blobs; each message
that carries a blob to or from a peer is a reference
(:meth:`MediaLibrary.attach`), and only a peer that a message of ours
carried a blob to may fetch it. A received media message records its blobs
as ``fetching`` (when the sender is a contact and the file is within the
``media_auto_download_bytes`` setting) or ``pending`` (fetched when the
user asks). :meth:`MediaLibrary.accept_chunk` checks each fetched chunk
before writing it and, after the last, the whole blob's id (which, with
every chunk's MAC, fixes the plaintext: docs/protocol.md §17.1).
:meth:`MediaLibrary.sweep` deletes blobs no message references (run at
start-up, hourly, and :meth:`collect` at once after a message that carried
a file is unsent, deleted or expired: the store releases its references
with its body).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import trio

from p2pdm.core.blob import (
    BLOB_KEY_BYTES,
    CHUNK_BYTES,
    BlobSealer,
    check_chunk,
    chunk_count,
    chunk_span,
    open_chunk,
    sealed_size,
)
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import (
    BlobChunkBody,
    LocationBody,
    MediaBody,
    MediaItem,
    TextBody,
    decode_stored,
)
from p2pdm.core.kinds.media import safe_mime, safe_name
from p2pdm.core.model import Direction, StoredMessage
from p2pdm.errors import ChunkRejected, MediaRefused, NotFound
from p2pdm.limits import MAILBOX_FILE_BYTES, MAX_FILE_BYTES, MAX_MEDIA_ITEMS
from p2pdm.node.offloop import off_loop
from p2pdm.store.base import Store
from p2pdm.store.blob_files import BlobFiles, MemoryBlobFiles
from p2pdm.store.blobs import BlobRecord, BlobState

if TYPE_CHECKING:
    from p2pdm.node.messenger import Messenger

__all__ = [
    "AUTO_DOWNLOAD_SETTING",
    "DEFAULT_AUTO_DOWNLOAD_BYTES",
    "MAX_RUNNING_FETCHES",
    "PROGRESS_COMMIT_CHUNKS",
    "PROGRESS_COMMIT_MAX_CHUNKS",
    "PROGRESS_COMMIT_MS",
    "STRIP_METADATA_SETTING",
    "UPLOAD_GRACE_MS",
    "MediaLibrary",
    "Upload",
]

log = logging.getLogger("p2pdm.node.media")

#: Setting: largest file fetched without being asked, from a contact.
AUTO_DOWNLOAD_SETTING: Final = "media_auto_download_bytes"
#: 25 MiB: photos, voice notes and short clips arrive on their own; a big
#: video waits until someone opens it.
DEFAULT_AUTO_DOWNLOAD_BYTES: Final = 25 << 20
#: Setting: strip EXIF/GPS and other metadata from photos on send.
STRIP_METADATA_SETTING: Final = "media_strip_metadata"
#: A fetch records its progress in the store (a commit: an fsync, a few ms
#: during which the event loop reads nothing) after at least this many
#: verified chunks *and* PROGRESS_COMMIT_MS since the last record, or after
#: PROGRESS_COMMIT_MAX_CHUNKS whatever the clock says; a media.progress
#: event goes in the same commit. A commit per 256 KiB chunk was most of a
#: recipient's cost; one per 16 chunks was still 25 fsyncs per 100 MiB on
#: the loop. A crash loses at most the chunks verified since the last
#: record (under PROGRESS_COMMIT_MAX_CHUNKS; fewer than PROGRESS_COMMIT_CHUNKS
#: or under PROGRESS_COMMIT_MS of transfer), fetched again: the file is cut
#: back to what the store records.
PROGRESS_COMMIT_CHUNKS: Final = 16
#: Half a second: progress a person watches moves twice a second at most.
PROGRESS_COMMIT_MS: Final = 500
#: 16 MiB: what a crash may have to fetch again, at most (a tenth of a
#: second on loopback); 7 commits for a 100 MiB file on a fast link.
PROGRESS_COMMIT_MAX_CHUNKS: Final = 64
#: Fetches whose progress and running hashes are kept in memory: more than
#: run at once (MAX_CONCURRENT_BLOB_FETCHES) plus files pushed through
#: mailboxes; one forgotten is only cut back to its recorded progress.
MAX_RUNNING_FETCHES: Final = 32
#: An uploaded blob no message refers to is kept this long (the client
#: uploads first and sends the message next), then swept.
UPLOAD_GRACE_MS: Final = 3600 * 1000
#: Uploads whose uploading token is remembered: more than any client uploads
#: within UPLOAD_GRACE_MS before sending; an older one is readable by an
#: admin token only until a message carries it.
MAX_UPLOADERS_REMEMBERED: Final = 1024


class Upload:
    """One file being uploaded: :meth:`write` its bytes, then :meth:`finish`."""

    def __init__(self, library: MediaLibrary, mime: str, name: str) -> None:
        # The photo, voice and video code loads with the first upload (or the
        # first thumbnail received, `MediaLibrary.on_received`), not at start-up.
        from p2pdm.node.audio import AUDIO_TYPES
        from p2pdm.node.images import IMAGE_TYPES
        from p2pdm.node.video import VIDEO_TYPES, have_pyav

        self.library = library
        self.mime = safe_mime(mime)
        self.name = safe_name(name)
        self._key = library.random_bytes(BLOB_KEY_BYTES)
        self._temp = library.random_bytes(16).hex() + ".part"
        self._sealer = BlobSealer(self._key)
        self._written = 0
        #: A photo is held whole: it is stripped and resized before sealing.
        self._photo: bytearray | None = bytearray() if self.mime in IMAGE_TYPES else None
        #: A voice note is kept too (up to MAX_AUDIO_SCAN_BYTES) to read its duration.
        self._audio: bytearray | None = bytearray() if self.mime in AUDIO_TYPES else None
        #: A video's first MAX_VIDEO_SCAN_BYTES, to probe its size, length and
        #: first frame (with PyAV; without it, it goes as a plain file).
        self._video: bytearray | None = (
            bytearray() if self.mime in VIDEO_TYPES and have_pyav() else None
        )
        self._size = 0

    def _seal(self, data: bytes) -> None:
        for chunk in self._sealer.feed(data):
            self.library.files.write_at(self._temp, self._written, chunk)
            self._written += len(chunk)

    def write(self, data: bytes) -> None:
        """Take the next bytes; raises MediaRefused past MAX_FILE_BYTES (or
        MAX_IMAGE_BYTES for a photo)."""
        from p2pdm.node.audio import MAX_AUDIO_SCAN_BYTES
        from p2pdm.node.images import MAX_IMAGE_BYTES
        from p2pdm.node.video import MAX_VIDEO_SCAN_BYTES

        self._size += len(data)
        if self._size > MAX_FILE_BYTES:
            self.abort()
            raise MediaRefused(f"a file is at most {MAX_FILE_BYTES >> 20} MiB")
        if self._photo is not None:
            if self._size > MAX_IMAGE_BYTES:
                self.abort()
                raise MediaRefused(f"a photo is at most {MAX_IMAGE_BYTES >> 20} MiB")
            self._photo += data
        else:
            if self._audio is not None:
                self._audio += data
                if len(self._audio) > MAX_AUDIO_SCAN_BYTES:
                    self._audio = None  # too long to read: sent without a duration
            if self._video is not None and len(self._video) < MAX_VIDEO_SCAN_BYTES:
                self._video += data[: MAX_VIDEO_SCAN_BYTES - len(self._video)]
            self._seal(data)

    def abort(self) -> None:
        """Forget what was written."""
        self.library.files.delete(self._temp)
        self._photo = self._audio = self._video = None

    def finish(self) -> BlobRecord:
        """The blob, sealed, named and recorded; raises MediaRefused for a
        photo that is a bomb or does not decode."""
        from p2pdm.node.audio import analyse
        from p2pdm.node.images import prepare_image
        from p2pdm.node.video import probe_video

        extra: dict[str, object] = {}
        if self._photo is not None:
            try:
                photo = prepare_image(
                    bytes(self._photo), self.mime, strip=self.library.strip_metadata()
                )
            except MediaRefused:
                self.abort()
                raise
            self._photo = None
            if photo.mime != self.mime:  # a HEIC photo goes as a JPEG
                self.mime = photo.mime
                self.name = safe_name(self.name.rsplit(".", 1)[0] + ".jpg")
            self._seal(photo.data)
            extra = {"width": photo.width, "height": photo.height, "thumbnail": photo.thumbnail}
        if self._video is not None:
            video = probe_video(bytes(self._video))
            self._video = None
            if video is not None:
                extra = {
                    "width": video.width,
                    "height": video.height,
                    "duration_ms": video.duration_ms,
                    "thumbnail": video.thumbnail,
                }
        if self._audio is not None:
            note = analyse(bytes(self._audio), self.mime)
            extra = {"duration_ms": note.duration_ms, "waveform": note.waveform}
            self._audio = None
        last, sealed = self._sealer.finish()
        files = self.library.files
        files.write_at(self._temp, self._written, last)
        files.rename(self._temp, sealed.blob_id.hex())
        record = BlobRecord(
            blob_id=sealed.blob_id,
            key=self._key,
            size=sealed.size,
            digest=sealed.digest,
            mime=self.mime,
            name=self.name,
            source=None,
            state="local",
            have=chunk_count(sealed.size),
            created_at_ms=self.library.now_ms(),
            **extra,  # type: ignore[arg-type]
        )
        if not self.library.store.put_blob(record):
            # The same file (and key) cannot happen twice; a clash keeps the first.
            existing = self.library.store.get_blob(sealed.blob_id)
            return existing if existing is not None else record
        return record


@dataclass(slots=True)
class _Running:
    """A fetch under way: chunks verified and written (``have``, ahead of the
    store's by less than PROGRESS_COMMIT_MAX_CHUNKS), what the store records
    (``stored``, at ``stored_at_ms``), and, for a fetch followed from chunk 0,
    the hash of its sealed bytes so far (the check at the end needs no re-read)."""

    have: int
    stored: int
    #: When the store last recorded this fetch's progress (or it began here).
    stored_at_ms: int
    sealed: Any  # a hashlib sha256 object, or None


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Chunks about to be written: the record as the store has it, its run,
    the index of the first chunk to write, and the sealed chunks from it."""

    record: BlobRecord
    running: _Running
    first: int
    chunks: list[bytes] = field(default_factory=list)


def _item(record: BlobRecord) -> MediaItem:
    return MediaItem(
        blob_id=record.blob_id,
        key=record.key,
        digest=record.digest,
        size=record.size,
        mime=record.mime,
        name=record.name,
        width=record.width,
        height=record.height,
        duration_ms=record.duration_ms,
        thumbnail=record.thumbnail,
        waveform=record.waveform,
    )


def media_of(message: StoredMessage) -> MediaBody | None:
    """The media body of a stored media message; None for any other."""
    if message.kind != "media":
        return None
    body = decode_stored(message.kind, message.body)
    return body if isinstance(body, MediaBody) else None


def push_files(
    messenger: Messenger,
    media: MediaLibrary,
    peer: PeerId,
    message: StoredMessage,
    blob_ids: list[bytes],
    expires_by_s: int | None,
) -> int:
    """Queue to ``peer`` the sealed chunks of the files ``blob_ids`` of
    ``message`` small enough for mailboxes (MAILBOX_FILE_BYTES), for a
    recipient that is offline: they follow the message into the mailboxes,
    their envelopes living no longer than ``expires_by_s`` (a disappearing
    message's), and unsending the message drops those still queued. Returns
    how many chunks were queued."""
    queued = 0
    for chunk in media.pushed_chunks(blob_ids):
        outbox = messenger.send(peer, chunk, expires_by_s=expires_by_s).outbox
        media.store.follow_message(outbox.envelope_id, message.id)
        queued += 1
    return queued


def snippet_of(message: StoredMessage) -> str | None:
    """What a reply quotes of ``message``: a text, a file's caption (else the
    files' names), a place's label; None for other kinds or an erased body."""
    body = decode_stored(message.kind, message.body)
    if isinstance(body, TextBody):
        return body.text
    if isinstance(body, MediaBody):
        return body.caption or ", ".join(safe_name(item.name) for item in body.items)
    if isinstance(body, LocationBody):
        return body.label or "a location"
    return None


class MediaLibrary:
    """One node's blobs: uploads, attachments, fetched chunks, reads, the sweep."""

    def __init__(
        self,
        store: Store,
        files: BlobFiles | None = None,
        *,
        now_ms: Callable[[], int],
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self.store = store
        self.files: BlobFiles = files if files is not None else MemoryBlobFiles()
        self.now_ms = now_ms
        self.random_bytes = random_bytes
        #: Called when blobs become wanted, so the fetcher wakes up.
        self.on_wanted: Callable[[], None] = lambda: None
        self._running: OrderedDict[bytes, _Running] = OrderedDict()
        #: Blobs a chunk of which is being written in a worker thread right now,
        #: and those of them removed or given up meanwhile (at most as many).
        self._busy: set[bytes] = set()
        self._dropped: set[bytes] = set()
        #: Which API token uploaded each recent upload (in memory, bounded):
        #: until a message carries it, only that token (or an admin) reads it.
        self._uploaders: OrderedDict[bytes, str] = OrderedDict()

    def note_uploader(self, blob_id: bytes, token: str) -> None:
        self._uploaders.pop(blob_id, None)
        self._uploaders[blob_id] = token
        while len(self._uploaders) > MAX_UPLOADERS_REMEMBERED:
            self._uploaders.popitem(last=False)

    def uploaded_by(self, blob_id: bytes) -> str | None:
        """The name of the API token that uploaded ``blob_id`` (None if unknown)."""
        return self._uploaders.get(blob_id)

    # --- settings ---------------------------------------------------------

    def strip_metadata(self) -> bool:
        return self.store.get_setting(STRIP_METADATA_SETTING, True) is not False

    def auto_download_bytes(self) -> int:
        value = self.store.get_setting(AUTO_DOWNLOAD_SETTING, DEFAULT_AUTO_DOWNLOAD_BYTES)
        return value if isinstance(value, int) and value >= 0 else DEFAULT_AUTO_DOWNLOAD_BYTES

    # --- sending ----------------------------------------------------------

    def upload(self, mime: str, name: str) -> Upload:
        return Upload(self, mime, name)

    def add_file(self, data: bytes, mime: str, name: str) -> BlobRecord:
        """Upload ``data`` in one go (tests, the SDK's small files)."""
        upload = self.upload(mime, name)
        for at in range(0, len(data), CHUNK_BYTES):
            upload.write(data[at : at + CHUNK_BYTES])
        return upload.finish()

    def body_for(self, blob_ids: list[bytes], caption: str | None) -> MediaBody:
        """The media body naming our blobs ``blob_ids``; raises NotFound for a
        blob that is not ours and whole, MediaRefused for none or too many."""
        if not 1 <= len(blob_ids) <= MAX_MEDIA_ITEMS:
            raise MediaRefused(f"a message carries 1..{MAX_MEDIA_ITEMS} files")
        items = []
        for blob_id in dict.fromkeys(blob_ids):
            record = self.store.get_blob(blob_id)
            if record is None or record.state not in ("local", "ready"):
                raise NotFound(f"no file {blob_id.hex()} here to send")
            items.append(_item(record))
        return MediaBody(tuple(items), caption or None)

    def attach(self, message: StoredMessage) -> list[bytes]:
        """Record that ``message`` (a media message, either way) carries its
        blobs to or from its peer; returns the blob ids."""
        body = media_of(message)
        if body is None:
            return []
        for item in body.items:
            self.store.add_blob_ref(item.blob_id, message.id, message.peer)
        return [item.blob_id for item in body.items]

    # --- receiving --------------------------------------------------------

    def on_received(self, message: StoredMessage, from_contact: bool) -> int:
        """Record the blobs of a received media message (inside the caller's
        transaction or not); returns how many are wanted now."""
        from p2pdm.node.images import check_thumbnail

        body = media_of(message)
        if body is None or message.direction is not Direction.IN:
            return 0
        limit = self.auto_download_bytes() if from_contact else -1
        wanted = 0
        for item in body.items:
            thumbnail = item.thumbnail
            if thumbnail is not None and not check_thumbnail(thumbnail):
                log.warning("thumbnail of %s refused: not a small image", item.blob_id.hex())
                thumbnail = None
            state: BlobState = "fetching" if item.size <= limit else "pending"
            record = BlobRecord(
                blob_id=item.blob_id,
                key=item.key,
                size=item.size,
                digest=item.digest,
                mime=item.mime,
                name=safe_name(item.name),
                source=message.peer,
                state=state,
                have=0,
                created_at_ms=self.now_ms(),
                thumbnail=thumbnail,
                width=item.width,
                height=item.height,
                duration_ms=item.duration_ms,
                waveform=item.waveform,
            )
            if self.store.put_blob(record) and state == "fetching":
                wanted += 1
            self.store.add_blob_ref(item.blob_id, message.id, message.peer)
        if wanted:
            self.on_wanted()
        return wanted

    def want(self, blob_id: bytes) -> BlobRecord:
        """Fetch a pending (or failed) blob; raises NotFound for an unknown one."""
        record = self.store.get_blob(blob_id)
        if record is None:
            raise NotFound(f"no file {blob_id.hex()}")
        if record.state in ("pending", "failed"):
            # A new fetch starts from what the store records: what an earlier
            # one verified in memory may describe a file since removed.
            self._running.pop(blob_id, None)
            self.store.set_blob_progress(blob_id, "fetching", record.have, "")
            self.on_wanted()
            record = replace(record, state="fetching", detail="")
        return record

    def resume_point(self, record: BlobRecord) -> int:
        """The first chunk to fetch: the file is cut back to what was verified
        (a crash may have left bytes after the last recorded chunk). Only the
        blob id of ``record`` counts: the store and this run say how far it is."""
        record = self.progress(self.store.get_blob(record.blob_id) or record)
        name = record.blob_id.hex()
        if record.state != "fetching":
            return record.have
        total = chunk_count(record.size)
        offset = (
            chunk_span(record.size, record.have)[0]
            if record.have < total
            else sealed_size(record.size)
        )
        if self.files.length(name) != offset:
            if record.have == 0:
                self.files.delete(name)
            else:
                self.files.write_at(name, offset, b"")
        return record.have

    def accept_chunk(self, record: BlobRecord, index: int, sealed: bytes) -> BlobRecord:
        """Check chunk ``index`` and append it; returns the record as it is now.

        Raises ChunkRejected (nothing written) for a chunk that fails its
        check or is not the next one. After the last chunk the whole blob is
        checked against its id: the record comes back ``ready`` or, if it
        does not match, ``failed`` with the file removed.
        """
        begun = self._begin_chunks(record, index, 1)
        if isinstance(begun, BlobRecord):
            return begun
        written, error = self._check_and_write(replace(begun, chunks=[sealed]))
        if error is not None:
            raise error
        return self._end_chunks(begun, written, dropped=False)

    async def accept_chunks_off_loop(
        self,
        record: BlobRecord,
        first: int,
        chunks: list[bytes],
        on_progress: Callable[[BlobRecord], None] | None = None,
    ) -> BlobRecord:
        """:meth:`accept_chunk` for the run of chunks ``first``, ``first + 1``, ...
        at once, with the checks, the hashing and the write in one call to a
        worker thread (libsodium, hashlib and the write release the GIL), so
        the event loop goes on reading the stream meanwhile. The store is
        only touched on the loop, once for the run. The chunks before one
        that fails its check are written and counted, then ChunkRejected is
        raised. Not cancelled half-way: chunks written are also counted.
        ``on_progress`` is called with the record each time the progress is
        recorded in the store, inside the same transaction (one commit).
        """
        with trio.CancelScope(shield=True):
            begun = self._begin_chunks(record, first, len(chunks))
            if isinstance(begun, BlobRecord):
                return begun
            begun = replace(begun, chunks=chunks[begun.first - first :])
            self._busy.add(record.blob_id)
            try:
                written, error = await off_loop(self._check_and_write, begun)
            finally:
                self._busy.discard(record.blob_id)
                dropped = record.blob_id in self._dropped
                self._dropped.discard(record.blob_id)
            if written or dropped:
                record = self._end_chunks(begun, written, dropped=dropped, on_progress=on_progress)
            if error is not None:
                raise error
            return record

    def _begin_chunks(self, record: BlobRecord, first: int, count: int) -> BlobRecord | _Chunk:
        """The store's view before chunks ``first``.. (``count`` of them) are
        written: a record to answer at once (nothing to write), or what the
        write needs (from the first chunk not verified yet)."""
        current = self.store.get_blob(record.blob_id)  # another path may be ahead
        if current is None:  # its message went (unsent, deleted): nothing more is written
            self._running.pop(record.blob_id, None)
            return replace(record, state="failed", detail="the file was removed")
        record = self.progress(current)
        if record.state != "fetching" or first + count <= record.have:
            return record  # whole already, or these chunks came by the other path
        if record.blob_id in self._busy:
            # The other path (a fetch, pushed chunks) is writing these very
            # chunks in a worker thread: this copy is not needed.
            return record
        if first > record.have:
            raise ChunkRejected(f"chunk {first} arrived, {record.have} was asked for")
        index = record.have
        running = self._running.pop(record.blob_id, None)
        if running is None:  # hashed as it comes only when followed from chunk 0
            hashed = hashlib.sha256() if index == 0 else None
            running = _Running(index, current.have, self.now_ms(), hashed)
        running.stored = current.have  # another path may have recorded this run's progress
        self._running[record.blob_id] = running
        return _Chunk(record, running, index)

    def _check_and_write(self, begun: _Chunk) -> tuple[int, ChunkRejected | None]:
        """Open the chunks of ``begun`` up to the first that fails its check,
        hash them and write them in their place with one call: no store, any
        thread. Returns how many were written, and the failure if any."""
        record, running, first = begun.record, begun.running, begun.first
        good: list[bytes] = []
        error: ChunkRejected | None = None
        for index, sealed in enumerate(begun.chunks, first):
            try:
                # The plaintext is not kept: the MAC is the check (§17.1).
                check_chunk(record.key, record.size, index, sealed)
            except ChunkRejected as exc:
                error = exc
                break
            if running.sealed is not None:
                running.sealed.update(sealed)
            good.append(sealed)
        if good:
            offset, _ = chunk_span(record.size, first)
            try:
                self.files.write_chunks(record.blob_id.hex(), offset, good)
            except BaseException:
                # Hashed but not written: the check at the end reads the file back.
                running.sealed = None
                raise
        return len(good), error

    def _end_chunks(
        self,
        begun: _Chunk,
        written: int,
        *,
        dropped: bool,
        on_progress: Callable[[BlobRecord], None] | None = None,
    ) -> BlobRecord:
        """Count ``written`` chunks from ``begun.first`` as written: progress,
        and the check at the end; ``dropped``: the blob was removed or given
        up while they were written."""
        record, running = begun.record, begun.running
        name = record.blob_id.hex()
        self._running.pop(record.blob_id, None)
        if dropped:  # the write may have made the file again
            self.files.delete(name)
            current = self.store.get_blob(record.blob_id)
            if current is None:
                return replace(record, state="failed", detail="the file was removed")
            return current
        running.have = have = begun.first + written
        if have < chunk_count(record.size):
            record = replace(record, state="fetching", have=have, detail="")
            due = have - running.stored
            if due >= PROGRESS_COMMIT_MAX_CHUNKS or (
                due >= PROGRESS_COMMIT_CHUNKS
                and self.now_ms() - running.stored_at_ms >= PROGRESS_COMMIT_MS
            ):
                with self.store.transaction():
                    self.store.set_blob_progress(record.blob_id, "fetching", have, "")
                    if on_progress is not None:
                        on_progress(record)
                running.stored = have
                running.stored_at_ms = self.now_ms()
            self._running[record.blob_id] = running
            while len(self._running) > MAX_RUNNING_FETCHES:
                self._running.popitem(last=False)
            return record
        if running.sealed is not None:
            whole = running.sealed.digest() == record.blob_id
        else:
            whole = self._whole_matches(record)
        if not whole:
            self.files.delete(name)
            detail = "the file does not match what its message promised"
            self.store.set_blob_progress(record.blob_id, "failed", 0, detail)
            return replace(record, state="failed", have=0, detail=detail)
        self.store.set_blob_progress(record.blob_id, "ready", have, "")
        return replace(record, state="ready", have=have, detail="")

    def progress(self, record: BlobRecord) -> BlobRecord:
        """``record`` with the chunks verified so far, which may be ahead of
        what the store records (PROGRESS_COMMIT_CHUNKS...)."""
        running = self._running.get(record.blob_id)
        if running is None:
            return record
        # The store's record (``stored``), or one this already answered or
        # another path recorded (``have``); anything else moved on meanwhile.
        if record.state != "fetching" or record.have not in (running.stored, running.have):
            del self._running[record.blob_id]
            return record
        return replace(record, have=running.have)

    def give_up(self, blob_id: bytes, detail: str) -> None:
        """End a fetch as failed: its file and what it verified are forgotten
        (fetched again from the start if wanted again)."""
        self._running.pop(blob_id, None)
        self._drop(blob_id)
        self.store.set_blob_progress(blob_id, "failed", 0, detail)
        self.files.delete(blob_id.hex())

    def accept_pushed(self, sender: PeerId, body: BlobChunkBody) -> BlobRecord | None:
        """A chunk a contact pushed through our mailboxes: written if it is the
        next one of a file that contact sent us and we want; else ignored."""
        record = self.store.get_blob(body.blob_id)
        if record is None or record.source != sender or record.state != "fetching":
            return None
        try:
            return self.accept_chunk(record, body.index, body.data)
        except ChunkRejected as exc:
            log.info("pushed chunk of %s ignored: %s", body.blob_id.hex()[:12], exc)
            return None

    def pushed_chunks(self, blob_ids: list[bytes]) -> Iterator[BlobChunkBody]:
        """Every sealed chunk of our files ``blob_ids`` that are small enough to
        push through mailboxes (MAILBOX_FILE_BYTES), as chunk bodies."""
        for blob_id in blob_ids:
            record = self.record(blob_id)
            if record.size > MAILBOX_FILE_BYTES:
                continue
            for index in range(chunk_count(record.size)):
                yield BlobChunkBody(blob_id, index, self.sealed_chunk(record, index))

    def _whole_matches(self, record: BlobRecord) -> bool:
        """The file on disk is the blob ``record`` names (its id; every chunk's
        MAC was checked before it was written, §17.1)."""
        sealed_hash = hashlib.sha256()
        for chunk in self._sealed_chunks(record, 0, chunk_count(record.size)):
            sealed_hash.update(chunk)
        return sealed_hash.digest() == record.blob_id

    # --- reading ----------------------------------------------------------

    def sealed_chunk(self, record: BlobRecord, index: int) -> bytes:
        offset, length = chunk_span(record.size, index)
        return self.files.read(record.blob_id.hex(), offset, length)

    def _sealed_chunks(self, record: BlobRecord, first: int, end: int) -> Iterator[bytes]:
        for index in range(first, end):
            yield self.sealed_chunk(record, index)

    def read_plain(self, record: BlobRecord, start: int, end: int) -> Iterator[bytes]:
        """Plaintext bytes ``start``..``end`` (exclusive) of a whole blob, one
        chunk at a time; raises ChunkRejected if the file on disk was changed."""
        if start >= end:
            return
        first, last = start // CHUNK_BYTES, (end - 1) // CHUNK_BYTES
        for index in range(first, last + 1):
            plain = open_chunk(record.key, record.size, index, self.sealed_chunk(record, index))
            base = index * CHUNK_BYTES
            yield plain[max(0, start - base) : end - base]

    def record(self, blob_id: bytes) -> BlobRecord:
        """The blob; raises NotFound for an unknown one."""
        record = self.store.get_blob(blob_id)
        if record is None:
            raise NotFound(f"no file {blob_id.hex()}")
        return record

    # --- garbage ----------------------------------------------------------

    def collect(self) -> int:
        """Delete the blobs no message references (a message that carried one
        was unsent, deleted or expired; an upload no message took within
        UPLOAD_GRACE_MS), row and file; returns how many went."""
        gone = 0
        for blob_id in self.store.unreferenced_blobs(self.now_ms() - UPLOAD_GRACE_MS):
            self._drop(blob_id)
            self.store.delete_blob(blob_id)
            self.files.delete(blob_id.hex())
            gone += 1
        return gone

    def _drop(self, blob_id: bytes) -> None:
        """Tell a chunk of ``blob_id`` being written in a worker thread that
        the blob went meanwhile (its write is undone when it ends)."""
        if blob_id in self._busy:
            self._dropped.add(blob_id)

    def sweep(self, *, startup: bool = False) -> int:
        """:meth:`collect`, and delete files no blob row names (at ``startup``
        also unfinished uploads); returns how many blobs went."""
        gone = self.collect()
        for name in self.files.names():
            if name.endswith(".part"):
                if startup:
                    self.files.delete(name)
                continue
            if len(name) != 64 or self.store.get_blob(bytes.fromhex(name)) is None:
                self.files.delete(name)
        return gone

    def release_attachments(self, message_id: bytes) -> int:
        """Forget that ``message_id`` carries blobs (it was unsent, deleted or
        expired: the store does so with the body, this is for a message whose
        body stays) and :meth:`collect`; returns how many blobs were deleted.
        Blobs another message still carries stay."""
        self.store.release_message_blobs(message_id)
        return self.collect()


def blob_id_of(text: str) -> bytes:
    """A blob id from its hex; raises NotFound for anything else (an API path)."""
    try:
        blob_id = bytes.fromhex(text)
    except ValueError:
        raise NotFound(f"no file {text[:80]!r}") from None
    if len(blob_id) != 32:
        raise NotFound(f"no file {text[:80]!r}")
    return blob_id


__all__ += ["blob_id_of", "media_of", "push_files", "snippet_of"]
