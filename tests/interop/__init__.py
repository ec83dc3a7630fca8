"""A stock js-libp2p Kademlia node (``js/kad-node.mjs``) as a test peer.

:func:`js_kad_node` installs the pinned npm packages when they are missing or
stale (``npm ci`` into ``js/node_modules``, once per lock file), starts the
node as a subprocess and stops it by its PID. Without Node.js >= 20 and npm,
or when the install fails, the test is skipped locally and fails under CI
(``CI`` set), so a CI machine never passes by leaving interop out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import pytest

from p2pdm.core.identity import PeerId

__all__ = ["JS_DIR", "JsKadNode", "ensure_js_packages", "js_kad_node"]

JS_DIR: Final = Path(__file__).parent / "js"
#: Written into node_modules after a successful install: the lock file's hash.
STAMP: Final = JS_DIR / "node_modules" / ".p2pdm-lock-sha256"
#: js-libp2p 2.8 needs Node 20; the 3.x line would need 22.
MIN_NODE_MAJOR: Final = 20
#: ``npm ci`` of ~125 packages: ~15 s with a warm cache, more on a cold one.
NPM_CI_TIMEOUT_SECONDS: Final = 300.0
#: The node prints its address within ~0.5 s; a loaded machine gets more.
START_TIMEOUT_SECONDS: Final = 30.0
STOP_TIMEOUT_SECONDS: Final = 10.0


@dataclass(frozen=True)
class JsKadNode:
    """A running js-libp2p node: its full address (``…/p2p/<id>``) and PeerID."""

    addr: str
    peer_id: PeerId
    pid: int


def _unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    message = f"js-libp2p interop peer unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI runs the interop tests; install Node.js >= 20 and npm)")
    pytest.skip(message)


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS_DIR / name).read_bytes())
    return digest.hexdigest()


def ensure_js_packages() -> str:
    """Path of ``node``, with the pinned packages installed; skips or fails if impossible."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        _unavailable(f"{'node' if node is None else 'npm'} is not on PATH")
    assert node is not None and npm is not None
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE_MAJOR:
        _unavailable(f"node {version or '?'} is older than {MIN_NODE_MAJOR}")
    want = _lock_digest()
    if STAMP.is_file() and STAMP.read_text().strip() == want:
        return node
    try:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            check=False,
            timeout=NPM_CI_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"npm ci took over {NPM_CI_TIMEOUT_SECONDS:g} s")
    if result.returncode != 0:
        _unavailable(f"npm ci failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    STAMP.write_text(want + "\n")
    return node


def _read_line(stream: IO[str], timeout: float) -> str:
    """The first line of ``stream`` (a text pipe), or '' after ``timeout`` seconds."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop the node by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_SECONDS)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


@contextlib.contextmanager
def js_kad_node() -> Iterator[JsKadNode]:
    """Run ``kad-node.mjs`` for the duration of the block."""
    node = ensure_js_packages()
    # stderr goes to a file: a pipe nobody reads could fill up and stall the node.
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [node, "kad-node.mjs"],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = _read_line(process.stdout, START_TIMEOUT_SECONDS)
            if not line:
                _stop(process)
                stderr.seek(0)
                pytest.fail(f"kad-node.mjs printed no address: {stderr.read().strip()[-800:]}")
            info = json.loads(line)
            yield JsKadNode(info["addr"], PeerId.parse(info["peer_id"]), process.pid)
        finally:
            _stop(process)
