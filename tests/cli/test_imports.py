"""A command that only calls the running node's API, and `p2pdm --version`, start at once.

They must not import libp2p, the session libraries, PyNaCl, CBOR, SQLite,
the node, or httpx and the async stack under it (httpcore, anyio, trio):
each is run in a fresh interpreter and the modules it loaded are read back.
(What this buys in time and memory is measured by ``scripts/bench --suite
startup``, not asserted here.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest
import trio

from p2pdm.cli.chat import contact_name_key as cli_name_key
from p2pdm.store.base import contact_name_key as store_name_key
from tests.cli.conftest import WAIT_S, running_node
from tests.conftest import home_with_identity

#: Top-level modules a client command has no use for (and the node's own parts).
HEAVY: Final = (
    "libp2p",
    "doubleratchet",
    "x3dh",
    "nacl",
    "cbor2",
    "sqlite3",
    "_sqlite3",
    "sqlcipher3",
    "trio",
    "anyio",
    "httpx",
    "httpcore",
    "h11",
    "starlette",
    "hypercorn",
    "segno",
    "p2pdm.core.session",
    "p2pdm.store",
    "p2pdm.net",
    "p2pdm.node",
    "p2pdm.services",
    "p2pdm.api",
)

#: Runs the command line in this interpreter, then prints the exit status and
#: the heavy modules it loaded as one JSON line on stderr.
_PROBE: Final = """
import json, sys
from p2pdm.cli.main import main
heavy = json.loads(sys.argv[1])
try:
    code = main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
loaded = sorted(name for name in heavy if name in sys.modules)
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def _probe(*argv: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    report = json.loads(done.stderr.splitlines()[-1])
    return report["code"], report["loaded"], done.stdout


def test_version_imports_nothing_heavy() -> None:
    code, loaded, out = _probe("--version")
    assert code == 0
    assert out.startswith("p2pdm ")
    assert loaded == []


def test_help_of_a_command_loads_only_that_command() -> None:
    code, loaded, out = _probe("send", "--help")
    assert code == 0
    assert "CONTACT" in out
    assert loaded == []


async def test_a_client_command_against_a_running_node_imports_nothing_heavy(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path / "alice", "alice") as alice:
        home = str(alice.home.path)
        for argv in (
            ("--home", home, "inbox", "--json"),
            ("--home", home, "status", "--json"),
            ("--home", home, "group", "list", "--json"),
        ):
            with trio.fail_after(WAIT_S):
                code, loaded, out = await trio.to_thread.run_sync(lambda a=argv: _probe(*a))
            assert code == 0, argv
            json.loads(out)  # the node answered
            # The blocking client speaks http.client: no httpx, its pool, anyio or trio.
            assert loaded == [], argv


def test_the_cli_compares_contact_names_as_the_store_does() -> None:
    for name in ("Alice", "ÅNGSTRÖM", "ﬁle", "Straße", "\uff42\uff4f\uff42", "İstanbul"):
        assert cli_name_key(name) == store_name_key(name)


def test_a_node_starts_without_test_tools() -> None:
    """What `p2pdm run` imports leaves pytest and trio's testing module out
    (trio.testing imports pytest: 60 ms and several MiB a start)."""
    probe = (
        "import json, sys, p2pdm.cli.run, p2pdm.daemon.runner;"
        "print(json.dumps([m for m in ('pytest', '_pytest', 'trio.testing') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []


#: What a node loads only when it is used, not at start-up: Pillow and segno
#: (with the XML modules it writes SVG with) on the first picture or invite
#: drawn; the session libraries (x3dh, doubleratchet, xeddsa, and pydantic,
#: which they import) with the first session; SQLCipher with the first
#: encrypted store; the in-memory store (tests and the simulator) never.
#: Nor httpx's command line (click, rich, pygments), which httpx imports when
#: they are installed and py-libp2p imports httpx; nor the SDK. About 21 MiB
#: of an idle node's memory (docs/benchmarks.md). Then, about 1 MiB more: the
#: simulation's networks (the in-memory network, TCP with faults); platformdirs
#: for a node whose home is named (`p2pdm.hints`); getpass, asked only by
#: `p2pdm init`; the export archive and the store snapshot (`p2pdm run` reads
#: only the export mark); the photo, voice and video code (the first upload or
#: media message received); invites (the first one made or added).
LATER: Final = (
    "PIL",
    "PIL.Image",
    "segno",
    "xml.sax",
    "click",
    "rich",
    "pygments",
    "p2pdm.client",
    "x3dh",
    "doubleratchet",
    "xeddsa",
    "pydantic",
    "p2pdm.core.session",
    "p2pdm.core.prekey_state",
    "sqlcipher3",
    "p2pdm.store.memory",
    "p2pdm.net.memory_transport",
    "p2pdm.net.tcp_faults",
    "platformdirs",
    "getpass",
    "p2pdm.daemon.archive",
    "p2pdm.store.snapshot",
    "p2pdm.node.images",
    "p2pdm.node.audio",
    "p2pdm.node.video",
    "p2pdm.core.invite",
)


def test_a_node_starts_without_libraries_it_needs_later_or_never() -> None:
    probe = (
        "import json, sys, p2pdm.cli.run, p2pdm.daemon.runner;"
        f"print(json.dumps([m for m in {LATER!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []


#: Runs `p2pdm run` in this interpreter; once its API has answered and it has
#: idled for IDLE_S (its record published, its first rounds done), writes
#: whether it served and the modules of LATER it loaded to the file argv[2],
#: and stops it as SIGTERM does.
_RUN_PROBE: Final = """
import json, os, signal, sys, threading, time
from pathlib import Path
from p2pdm.cli.main import main
home, report, later = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
idle_s, wait_s = float(sys.argv[4]), float(sys.argv[5])

def watch():
    from p2pdm.homefiles import API_ADDR_FILE
    deadline = time.monotonic() + wait_s
    served = False
    while not served and time.monotonic() < deadline:
        served = (Path(home) / API_ADDR_FILE).is_file()  # written once it serves
        time.sleep(0.05)
    time.sleep(idle_s)
    loaded = [m for m in later if m in sys.modules]
    Path(report).write_text(json.dumps({"served": served, "loaded": loaded}))
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
main(["--home", home, "run", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0",
      "--log-level", "warning"])
"""
#: How long the probed node idles after start-up.
IDLE_S: Final = 2.0
#: Bound on the probed node's start-up (it serves in about 1 s on an idle
#: machine; a loaded one can take many times that).
START_WAIT_S: Final = 45.0
#: Bound on the whole probe (start-up, idling, shutdown).
RUN_PROBE_WAIT_S: Final = 90.0


@pytest.mark.slow
def test_an_idle_node_has_not_loaded_them_either(tmp_path: Path) -> None:
    """The same list, read in a running `p2pdm run` after start-up: publishing
    its record, its maintenance and the API load none of them."""
    home = home_with_identity(tmp_path / "alice", "alice")
    report = tmp_path / "loaded.json"
    subprocess.run(
        [
            sys.executable,
            "-c",
            _RUN_PROBE,
            str(home.path),
            str(report),
            json.dumps(LATER),
            str(IDLE_S),
            str(START_WAIT_S),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_PROBE_WAIT_S,
        check=False,
    )
    result = json.loads(report.read_text())
    assert result["served"]
    assert result["loaded"] == []
