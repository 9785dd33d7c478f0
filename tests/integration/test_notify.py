"""systemd notification (issue 9): with $NOTIFY_SOCKET set, as systemd sets
it for Type=notify, outpostd sends READY=1 (with a STATUS= line of queue and
upstreams) once it accepts connections, RELOADING=1 + MONOTONIC_USEC= and
READY=1 around a reload (also a refused one), and STOPPING=1 on SIGTERM. A
datagram socket of the test's own stands in for systemd."""
import os
import re
import signal
import socket
import time
from pathlib import Path

from conftest import give_to_daemon


class FakeSystemd:
    """The notify socket: every datagram received, in order."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        # Like systemd's own, anyone may write to it: the daemon sends
        # after it dropped to its account.
        os.chmod(path, 0o666)
        give_to_daemon(Path(path).parent)
        self.sock.settimeout(0.2)
        self.got = []

    def wait_for(self, field, timeout=10.0):
        """the first message (after those already matched) with field"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, m in enumerate(self.got):
                if field in m.split("\n"):
                    del self.got[:i + 1]
                    return m
            try:
                self.got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        raise AssertionError(f"no {field} within {timeout}s; got {self.got!r}")

    def close(self):
        self.sock.close()


def test_ready_reload_stopping(daemon_factory, monkeypatch, tmp_path):
    fake = FakeSystemd(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    try:
        d = daemon_factory()
        ready = fake.wait_for("READY=1")
        status = re.search(r"^STATUS=(.*)$", ready, re.M)
        assert status, ready
        assert re.fullmatch(r"0 messages queued \(0 deferred, 0 held\); upstreams: \S+ up",
                            status.group(1)), status.group(1)

        # A reload: RELOADING=1 with the monotonic clock, then READY=1.
        os.kill(d.proc.pid, signal.SIGHUP)
        rel = fake.wait_for("RELOADING=1")
        usec = re.search(r"^MONOTONIC_USEC=(\d+)$", rel, re.M)
        assert usec and abs(int(usec.group(1)) / 1e6 - time.monotonic()) < 30, rel
        assert "STATUS=configuration reloaded" in fake.wait_for("READY=1")

        # A refused reload still ends in READY=1: the old config runs on.
        d.conf_path.write_text(d.conf_path.read_text() + "\n[server]\nno_such_key = 1\n")
        os.kill(d.proc.pid, signal.SIGHUP)
        fake.wait_for("RELOADING=1")
        again = fake.wait_for("READY=1")
        assert "reload refused" in again, again
        assert d.running()

        d.proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in fake.wait_for("STOPPING=1")
        d.proc.wait(timeout=20)
    finally:
        fake.close()


def test_no_notify_socket_no_harm(daemon_factory, monkeypatch):
    # Outside systemd nothing is sent and nothing fails.
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    d = daemon_factory()
    os.kill(d.proc.pid, signal.SIGHUP)
    d.wait_log(r"reload: \d+ users")
    assert d.running()
