"""Hostile entries under an ingest input: none may hang, exhaust memory or stop the run.

Everything is real: FIFOs, sockets, symlinks (to /dev/zero, in loops, dangling), sparse files bigger than the
size limit and file names that are not UTF-8 are created in tmp_path; the real ingest and CLI handler run on
them. A FIFO that were opened for reading would block forever, so those calls run in a thread with a deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import threading
from pathlib import Path

import pytest

from agentscaler_dagster.corpus import IngestError, ingest, read_corpus
from agentscaler_dagster.corpus import cli as corpus_cli
from agentscaler_dagster.corpus.ingest import read_spec_bytes
from agentscaler_dagster.corpus.readers import MAX_BYTES, FileProblem

GOOD_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.",
                                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def _good(path: Path) -> Path:
    path.write_text(json.dumps([GOOD_TOOL]))
    return path


def _within(seconds: float, fn, *args, **kwargs):
    """fn(*args) in a daemon thread; fails the test (instead of hanging it) when it does not return in time."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} did not return within {seconds} s (it blocked)"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _reasons(entries: list[dict]) -> dict[str, str]:
    return {e["path"].split("/", 1)[1]: e["reason"] for e in entries}


def test_fifo_named_json_is_skipped_without_opening(tmp_path):
    src = tmp_path / "specs"
    src.mkdir()
    _good(src / "good.json")
    os.mkfifo(src / "pipe.json")
    rep = _within(60, ingest, [src], tmp_path / "out")
    assert _reasons(rep.skipped)["pipe.json"] == "FIFO, not a regular file (not opened)"
    assert rep.ingested == 1 and rep.inputs == 1 and rep.entries == 2 and rep.entries_add_up()
    # a FIFO given by name is skipped the same way, and reading one directly refuses instead of blocking
    rep = _within(60, ingest, [src / "pipe.json"], tmp_path / "out2")
    assert rep.inputs == 0 and rep.skipped[0]["reason"].startswith("FIFO")
    with pytest.raises(FileProblem, match="FIFO, not a regular file"):
        _within(10, read_spec_bytes, src / "pipe.json")


def test_socket_and_device_symlink_are_skipped(tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    _good(src / "good.json")
    (src / "zero.json").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(src / "api.sock.json"))
        rep = _within(60, ingest, [src], tmp_path / "out")
    finally:
        sock.close()
    reasons = _reasons(rep.skipped)
    assert reasons["zero.json"] == "character device, not a regular file (not opened)"
    assert reasons["api.sock.json"] == "socket, not a regular file (not opened)"
    assert rep.ingested == 1 and rep.entries == 3 and rep.entries_add_up()
    with pytest.raises(FileProblem, match="character device"):
        read_spec_bytes("/dev/zero")


def test_oversized_file_is_refused_by_stat_without_reading_it(tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    _good(src / "good.json")
    huge = src / "huge.json"
    with open(huge, "wb") as fh:  # sparse: 1 GiB on paper, nothing on disk
        fh.truncate(1 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rep = ingest([src], tmp_path / "out", workers=1)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    q = {e["path"].split("/", 1)[1]: e for e in rep.quarantined}
    assert q["huge.json"]["reason"] == f"file too large ({1 << 30} bytes > {MAX_BYTES})"
    assert q["huge.json"]["stage"] == "discovery"
    assert rep.ingested == 1 and rep.inputs == 1 and rep.entries_add_up()
    assert grown_mib < 256, f"peak memory grew by {grown_mib:.0f} MiB: the file was read"
    with pytest.raises(FileProblem, match="file too large"):
        read_spec_bytes(huge)


def test_symlink_loops_and_dangling_links_are_quarantined(tmp_path):
    src = tmp_path / "links"
    src.mkdir()
    _good(src / "good.json")
    (src / "self.json").symlink_to("self.json")
    (src / "ping.json").symlink_to("pong.json")
    (src / "pong.json").symlink_to("ping.json")
    (src / "gone.json").symlink_to("nowhere.json")
    (src / "sub").mkdir()
    (src / "sub" / "up").symlink_to("..")  # a folder loop: listed, not followed
    rep = _within(60, ingest, [src], tmp_path / "out")
    q = _reasons(rep.quarantined)
    for name in ("self.json", "ping.json", "pong.json"):
        assert q[name].startswith("symlink loop"), q
    assert q["gone.json"] == "broken symlink (target 'nowhere.json' does not exist)"
    assert _reasons(rep.skipped)["sub/up"] == "symlink to a folder (not followed)"
    assert rep.ingested == 1 and rep.quarantined_files == 4 and rep.entries == 6 and rep.entries_add_up()
    # a loop given as an input path is quarantined too; the other input still runs
    rep = ingest([src / "self.json", src / "good.json"], tmp_path / "out2")
    assert rep.ingested == 1 and rep.quarantined[0]["reason"].startswith("symlink loop")


def test_file_names_that_are_not_utf8_are_quarantined(tmp_path):
    src = tmp_path / "names"
    src.mkdir()
    _good(src / "good.json")
    raw = os.path.join(os.fsencode(src), b"caf\xe9.json")
    try:
        with open(raw, "wb") as fh:
            fh.write(json.dumps([GOOD_TOOL]).encode())
    except OSError as exc:  # a file system that refuses such names cannot hold the case
        pytest.skip(f"this file system refuses non-UTF-8 names: {exc}")
    rep = ingest([src], tmp_path / "out")
    q = _reasons(rep.quarantined)
    assert q["caf\\xe9.json"].startswith("file name is not valid UTF-8")
    assert rep.ingested == 1 and rep.entries_add_up()
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text(encoding="utf-8"))
    assert report["quarantined_files"] == 1
    assert [t.name for t in read_corpus(tmp_path / "out")] == ["get_weather"]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentscaler")
    sub = parser.add_subparsers(dest="command", required=True)
    corpus_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_bad_worker_counts_are_refused_in_one_line(tmp_path, capsys, value):
    spec = _good(tmp_path / "good.json")
    assert _cli(["ingest", str(spec), "--out", str(tmp_path / "o"), "--workers", value]) == 2
    err = capsys.readouterr().err
    assert err == f"agentscaler ingest: --workers must be at least 1, got {int(value)}\n"
    assert not (tmp_path / "o" / "corpus.parquet").exists()
    with pytest.raises(IngestError, match=r"workers must be a whole number >= 1, got 0"):
        ingest([spec], tmp_path / "o", workers=0)


def test_everything_at_once_still_ingests_the_good_file(tmp_path, capsys):
    src = tmp_path / "all"
    src.mkdir()
    _good(src / "good.json")
    os.mkfifo(src / "fifo.yaml")
    (src / "dev.json").symlink_to("/dev/null")
    (src / "loop.json").symlink_to("loop.json")
    with open(src / "big.json", "wb") as fh:
        fh.truncate(MAX_BYTES + 1)
    (src / ".hidden.json").write_text("{}")
    assert _within(60, _cli, ["ingest", str(src), "--out", str(tmp_path / "o"), "--workers", "2"]) == 0
    assert "ingested 1 tools from 1 files" in capsys.readouterr().out
    rep = json.loads((tmp_path / "o" / "ingest_report.json").read_text())
    assert rep["entries"] == 6 and len(rep["skipped"]) == 3 and rep["quarantined_files"] == 2
