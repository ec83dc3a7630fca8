"""`p2pdm sim --workers N`: real-clock nodes in worker processes, and their pipe."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.cli.main import main
from p2pdm.core import cbor
from p2pdm.errors import FrameTooLarge, SimWorkerError, WireError
from p2pdm.net.frames import encode_frame, encode_varint
from p2pdm.sim import Progress, SimOptions, Timeline, invariants_hold, simulate, summarize
from p2pdm.sim.pipe import (
    MAX_PIPE_FRAME_BYTES,
    Event,
    PipeDecoder,
    Reply,
    Request,
    encode_config,
    encode_event,
    encode_reply,
    encode_request,
)
from p2pdm.sim.timeline import LinkChange, Offline

CONFIG: dict[str, Any] = {
    "nodes": 4,
    "seed": 0,
    "workers": 2,
    "worker": 1,
    "mailboxes": 1,
    "store_dir": "",
    "external": [],
    "log_level": "error",
    "listen": "",
    "faults": True,
    "latency_us": 20_000,
    "jitter_us": 0,
    "loss_ppm": 1_000,
    "planned": False,
}


def worker_decoder() -> PipeDecoder:
    decoder = PipeDecoder("worker")
    assert decoder.feed(encode_config(CONFIG)) == [CONFIG]
    return decoder


def test_pipe_frames_round_trip() -> None:
    decoder = worker_decoder()
    frames = encode_request(1, "start", {"node": 3, "bootstrap": ["/ip4/127.0.0.1/tcp/1"]})
    frames += encode_request(2, "send", {"sender": 3, "recipient": 1, "text": "hi"})
    assert decoder.feed(frames[:5]) == []  # a frame split anywhere waits for the rest
    assert decoder.feed(frames[5:]) == [
        Request(1, "start", {"node": 3, "bootstrap": ["/ip4/127.0.0.1/tcp/1"]}),
        Request(2, "send", {"sender": 3, "recipient": 1, "text": "hi"}),
    ]
    coordinator = PipeDecoder("coordinator")
    event = {"node": 1, "id": b"\x01" * 16, "path": "direct", "at_ns": 5}
    got = coordinator.feed(
        encode_reply(2, {"id": b"\x01" * 16, "at_ns": 7})
        + encode_reply(3, None, "RuntimeError: no")
        + encode_event("stored", event)
    )
    assert got == [
        Reply(2, {"id": b"\x01" * 16, "at_ns": 7}, None),
        Reply(3, None, "RuntimeError: no"),
        Event("stored", event),
    ]


def test_pipe_refuses_an_oversized_frame_from_its_prefix() -> None:
    decoder = PipeDecoder("coordinator")
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_varint(MAX_PIPE_FRAME_BYTES + 1))  # no payload byte needed
    with pytest.raises(WireError):  # out of sync for good
        decoder.feed(encode_reply(1, {}))


@pytest.mark.parametrize(
    "body",
    [
        {"id": 1, "op": "launch", "args": {}},  # unknown request
        {"id": 1, "op": "stop", "args": {"node": "3"}},  # ill-typed
        {"id": 1, "op": "stop", "args": {"node": -1}},  # out of range
        {"id": 1, "op": "stop", "args": {"node": 1, "extra": 1}},  # unknown field
        {"id": 1, "op": "stop", "args": {}},  # missing field
        {"id": 0, "op": "ping", "args": {}},  # ids start at 1
        {"id": True, "op": "ping", "args": {}},  # a bool is not an id
        {"op": "ping", "args": {}},
        {"id": 1, "op": "partition", "args": {"groups": [[1, "2"]]}},
        {
            "id": 1,
            "op": "collect",
            "args": {"undelivered": [[b"x", 1]], "now_ms": 1, "mailboxes": True},
        },
        [1, 2, 3],  # not a map
    ],
)
def test_worker_refuses_ill_typed_requests(body: Any) -> None:
    with pytest.raises(WireError):
        worker_decoder().feed(encode_frame(cbor.encode(body)))


def test_pipe_refuses_floats_and_ill_typed_events() -> None:
    bad = [
        encode_frame(b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00"),  # a float, not a map
        encode_event("stored", {"node": 1, "id": b"x", "path": "direct", "at_ns": -1}),
        encode_event("lookup", {"call": "find_peer", "us": 5, "found": 1, "why": ""}),
        encode_event("exploded", {}),
        encode_frame(cbor.encode({"re": 1, "ok": {}, "error": "both"})),
    ]
    for frame in bad:
        with pytest.raises(WireError):
            PipeDecoder("coordinator").feed(frame)
    with pytest.raises(WireError):  # a worker's first frame is its config
        PipeDecoder("worker").feed(encode_request(1, "ping", {}))


def test_a_commit_that_overtakes_its_send_is_kept() -> None:
    """A worker's commit event can arrive before another worker's answer to the send."""
    from p2pdm.sim.metrics import Recorder

    recorder = Recorder(clock=lambda: 9.0)
    recorder.stored(2, b"m1", "direct", at=1.5)
    recorder.stored(2, b"m1", "mailbox", at=1.7)
    assert recorder.delivered == 0
    recorder.sent(b"m1", 0, 2, offline=False, at=1.2)
    record = recorder.messages[b"m1"]
    assert (record.delivered_s, record.path, record.copies) == (1.5, "direct", 2)
    assert recorder.duplicates == 1 and recorder.stored_at[b"m1"] == {2}


@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    for side in ("worker", "coordinator"):
        with contextlib.suppress(WireError):
            PipeDecoder(side).feed(data)


@given(st.integers(0, 1_000_000), st.text(max_size=200))
def test_send_requests_round_trip(node: int, text: str) -> None:
    args = {"sender": node, "recipient": node, "text": text}
    assert worker_decoder().feed(encode_request(7, "send", args)) == [Request(7, "send", args)]


def test_worker_process_refuses_a_bad_frame_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "p2pdm.sim.worker"],
        input=encode_varint(MAX_PIPE_FRAME_BYTES + 1),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2pdm sim worker: frame of"), lines


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--workers", "2", "--clock", "virtual"], "--clock virtual runs in one process"),
        (["--workers", "0"], "--workers must be between 1"),
        (["--workers", "4", "--nodes", "3"], "at most --nodes"),
    ],
)
def test_cli_checks_workers(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", *argv]) == 1
    assert says in capsys.readouterr().err


def worker_pids() -> set[int]:
    """This process's children running a sim worker."""
    pids = set()
    for pid in children(os.getpid()):
        try:
            if b"p2pdm.sim.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except OSError:
            continue
    return pids


@pytest.mark.slow
@pytest.mark.net
async def test_two_workers_deliver_everything_to_offline_recipients(tmp_path: Path) -> None:
    # Four nodes away for 8 s each while messages flow; all back before the drain.
    away = tuple(Offline(node, 1.0, 9.0) for node in (4, 5, 7, 8))
    options = SimOptions(
        nodes=10,
        duration=12,
        rate=3,
        mailboxes=2,
        clock="real",
        drain=60,
        workers=2,
        timeline=Timeline(offline=away),
        store_dir=tmp_path / "stores",
    )
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["sent"] > 10
    assert summary["sent_while_recipient_offline"] > 0
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert summary["duplicates"] == 0
    assert summary["restarts"] == 4
    assert invariants_hold(summary)
    assert len(list((tmp_path / "stores").glob("node*.db"))) == 10
    assert worker_pids() == set()


@pytest.mark.slow
@pytest.mark.net
async def test_two_workers_form_routing_tables_from_the_plan(tmp_path: Path) -> None:
    """--dht-forming plan across workers: every node listens, every worker
    learns every address, the joins seed their tables, then the records are
    published; messages (some to recipients away) still all arrive."""
    away = tuple(Offline(node, 1.0, 6.0) for node in (4, 7))
    options = SimOptions(
        nodes=9,
        duration=8,
        rate=2,
        mailboxes=2,
        clock="real",
        drain=60,
        workers=2,
        dht_forming="plan",
        timeline=Timeline(offline=away),
    )
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["dht_forming"] == "plan"
    assert list(summary["seconds"]["forming_steps"]) == [
        "started",
        "joined",
        "contacts",
        "published",
    ]
    assert summary["sent_while_recipient_offline"] > 0
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert summary["duplicates"] == 0 and summary["restarts"] == 2
    assert invariants_hold(summary)
    assert summary["outside_peers"] == {"in_routing_tables": 0, "mailbox_providers": 0}
    assert worker_pids() == set()


@pytest.mark.slow
@pytest.mark.net
async def test_a_killed_worker_stops_the_run_with_one_clear_error() -> None:
    options = SimOptions(nodes=6, duration=60, rate=1, mailboxes=1, clock="real", workers=2)
    killed: list[int] = []

    def progress(p: Progress) -> None:
        if p.phase == "traffic" and not killed:
            pid = min(worker_pids())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with trio.fail_after(120), pytest.raises(SimWorkerError) as caught:
        await simulate(options, progress)
    message = str(caught.value)
    assert f"pid {killed[0]}" in message and "killed by signal 9" in message
    assert "\n" not in message
    assert worker_pids() == set()


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.net
async def test_workers_stop_when_the_coordinator_is_killed(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "p2pdm", "sim", "--clock", "real", "--nodes", "4"]
    argv += ["--workers", "2", "--duration", "60", "--out", str(tmp_path)]
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with trio.fail_after(60):
            while len(workers := children(process.pid)) < 2:  # noqa: ASYNC110
                await trio.sleep(0.2)
    finally:
        process.kill()
        await process.wait()
    # Their stdin closed with the coordinator: each stops its nodes and exits.
    with trio.fail_after(60):
        while any(alive(pid) for pid in workers):  # noqa: ASYNC110
            await trio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.net
async def test_ctrl_c_stops_the_coordinator_and_its_workers(tmp_path: Path) -> None:
    """Ctrl-C in a terminal reaches the whole process group: no traceback, no
    worker left, the interrupted exit status."""
    argv = [sys.executable, "-m", "p2pdm", "sim", "--clock", "real", "--nodes", "4"]
    argv += ["--workers", "2", "--duration", "60", "--out", str(tmp_path)]
    errors = tmp_path / "stderr"
    with errors.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    try:
        with trio.fail_after(60):
            while len(workers := children(process.pid)) < 2:  # noqa: ASYNC110
                await trio.sleep(0.2)
            await trio.sleep(3)  # forming
        os.killpg(process.pid, signal.SIGINT)
        with trio.fail_after(60):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 130, errors.read_text()
    assert "Traceback" not in errors.read_text()
    assert not any(alive(pid) for pid in workers)


@pytest.mark.slow
@pytest.mark.net
async def test_two_workers_run_the_issue_scenario_with_split_latency_and_link_change() -> None:
    """The 10-node scenario (recipients away, one partition) over two workers,
    with latency on TCP and a [[link]] change midway: every worker's nodes get
    the split's peer filters and the faults; everything arrives exactly once."""
    change = LinkChange(at=6, loss=0.02, latency=0.03)
    options = SimOptions(
        nodes=10,
        duration=20,
        rate=1,
        offline=0.3,
        partition=(4, 12),
        latency=0.02,
        seed=34,
        clock="real",
        drain=90,
        workers=2,
        timeline=Timeline(links=(change,)),
    )
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["plan"]["partitions"] == 1 and summary["plan"]["link_changes"] == 1
    assert summary["sent_while_recipient_offline"] > 0
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert summary["duplicates"] == 0
    assert invariants_hold(summary)
    assert outcome.network_stats["dials"] > 0  # summed over both workers' TCP faults
    assert summary["outside_peers"] == {"in_routing_tables": 0, "mailbox_providers": 0}
    assert worker_pids() == set()


def test_link_faults_cross_the_pipe_as_integers() -> None:
    from p2pdm.net import LinkFaults
    from p2pdm.sim.nodes import link_args, link_faults

    faults = LinkFaults(latency=0.03, jitter=0.001, loss=0.02)
    args = link_args(faults)
    assert all(type(v) is int for v in args.values())
    request = worker_decoder().feed(encode_request(9, "link", args))
    assert request == [Request(9, "link", args)]
    assert link_faults(request[0].args) == faults
    with pytest.raises(WireError, match="bad link faults"):
        link_faults({**args, "loss_ppm": 1_000_000})  # loss 1.0 is no link at all
    reply = {"in_routing_tables": ["12D3KooWx"], "mailbox_providers": []}
    assert PipeDecoder("coordinator").feed(encode_reply(4, reply)) == [Reply(4, reply, None)]
