"""Files and places on the command line: ``send --file``/``--location``,
``save``, and the lines ``read`` shows for them."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from p2pdm.client import Client
from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["media_lines", "parse_location", "save", "save_arguments", "send_media"]

EXIT_OK = 0
#: Files at least this large show a progress bar while they are fetched.
PROGRESS_BAR_BYTES: Final = 4 << 20


def parse_location(text: str, option: str = "--location") -> tuple[float, float]:
    """``LAT,LON`` in degrees; raises ConfigError for anything else."""
    try:
        lat_text, lon_text = text.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ConfigError(
            f"{option} takes LAT,LON in degrees (e.g. 52.52,13.40), not {text!r}"
        ) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigError(f"{option}: latitude is -90..90 and longitude -180..180")
    return lat, lon


def size_text(size: int) -> str:
    """A size for people: bytes, KiB, MiB."""
    if size < 1024:
        return f"{size} B"
    if size < 1 << 20:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1 << 20):.1f} MiB"


#: Characters a voice note's waveform is drawn with in ``read`` (the node
#: sends up to 64 levels; 16 fit beside the file's line).
WAVEFORM_CHARS: Final = 16
_LEVEL_GLYPHS: Final = "▁▂▃▄▅▆▇█"


def waveform_text(levels: list[int], width: int = WAVEFORM_CHARS) -> str:
    """A voice note's loudness (levels 0 to 255) as a line of block characters."""
    if not levels:
        return ""
    width = min(width, len(levels))
    glyphs = []
    for i in range(width):
        part = levels[i * len(levels) // width : (i + 1) * len(levels) // width]
        mean = sum(part) / len(part)
        glyphs.append(
            _LEVEL_GLYPHS[min(len(_LEVEL_GLYPHS) - 1, int(mean * len(_LEVEL_GLYPHS) / 256))]
        )
    return "".join(glyphs)


def send_media(args: argparse.Namespace, node: Client, text: str | None) -> Any:
    """``p2pdm send CONTACT --file PATH [--caption TEXT]`` or ``--location LAT,LON``."""
    if args.location is not None:
        lat, lon = parse_location(args.location)
        return node.send_location(args.contact, lat, lon, label=text)
    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(f"no file {path}")
    return node.send_file(args.contact, path, args.caption or text)


#: What each file state of the API (docs/api.md, "Files") means, as ``read`` says it.
MEDIA_STATE_WORDS: Final = {
    "local": "sent from this computer",
    "ready": "on this computer",
    "pending": "not fetched yet",
    "fetching": "fetching",
    "failed": "failed",
}


def media_lines(message: Any, safe: Any) -> list[str]:
    """What ``read`` shows under a message for its files or place."""
    lines = []
    for item in message.get("media") or ():
        state = MEDIA_STATE_WORDS.get(item["state"], safe(item["state"]))
        if item["state"] == "fetching" and item["size"]:
            state = f"fetching {min(100, item['progress'] * (256 << 10) * 100 // item['size'])}%"
        if item.get("detail"):
            state += f": {item['detail']}"
        about = f"{size_text(item['size'])}, {item['mime']}"
        label = "file"
        if item.get("duration_ms"):  # a voice note or a video: how long it plays
            seconds = round(item["duration_ms"] / 1000)
            about = f"{seconds // 60}:{seconds % 60:02d}, {about}"
            label = "voice" if item["mime"].startswith("audio/") else "video"
        wave = f" {waveform_text(item['waveform'])}" if item.get("waveform") else ""
        lines.append(f"[{label}] {safe(item['name'])} ({about}){wave} {state}")
    place = message.get("location")
    if place is not None:
        label = f" {safe(place['label'])}" if place.get("label") else ""
        lines.append(f"[location] {place['lat']:.5f},{place['lon']:.5f}{label}")
    return lines


def save_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message_id", metavar="MESSAGE_ID", help="the message with the files")
    parser.add_argument(
        "directory", metavar="DIR", nargs="?", default=".", help="where to save (default: here)"
    )


def save(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    """Save the files of a message, fetching them first if they wait."""
    directory = Path(args.directory)
    if not directory.exists():
        raise ConfigError(
            f"no directory {directory}; make it first (`mkdir -p {shlex.quote(str(directory))}`)"
        )
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    with Client.for_home(home) as node:
        message = node.message(args.message_id)
        items = message.get("media") or []
        if not items:
            raise ConfigError(f"message {args.message_id} carries no files")
        for item in items:
            if item["state"] in ("local", "ready") or item["size"] < PROGRESS_BAR_BYTES:
                path = node.download(item["id"], directory)
            else:
                # rich's progress bar (2 MiB of modules) only for a large file.
                from rich.markup import escape
                from rich.progress import Progress

                with Progress(transient=True) as bar:
                    task = bar.add_task(escape(item["name"]), total=item["size"])

                    def show(done: int, bar: Progress = bar, task: TaskID = task) -> None:
                        bar.update(task, completed=done)

                    path = node.download(item["id"], directory, on_progress=show)
            print(f"saved {path} ({size_text(item['size'])})", file=out)
    return EXIT_OK
