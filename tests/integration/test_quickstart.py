"""
scripts/quickstart, end to end: set up in a temporary directory on a free
port, send the test message with exactly the swaks line it printed, and
check that what lands in the outbox carries a DKIM signature that dkimpy
verifies against the TXT record quickstart printed. A second run reuses the
key, the password and the config.

quickstart runs with OUTPOSTD/OUTPOSTCTL set, so it uses the binaries under
test and does not build.
"""

import base64
import os
import re
import shlex
import signal
import subprocess

import dkim
import dkim.util
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import (OUTPOSTCTL, OUTPOSTD, REPO, can_connect, free_port, give_to_daemon,
                      have_swaks, parse_txt_records, txt_dnsfunc, wait_until)

QUICKSTART = REPO / "scripts" / "quickstart"
SWAKS_RE = re.compile(r"^\s*(swaks --server \S+ .*)$", re.M)
DKIM_NAME = "demo._domainkey.example.com"

pytestmark = pytest.mark.skipif(not have_swaks(), reason="swaks is not installed")


class Quickstart:
    """One run of scripts/quickstart in the background (it execs outpostd)."""

    def __init__(self, run_dir, port, logfile):
        self.run_dir, self.port, self.logfile = run_dir, port, logfile
        self.proc = None

    def start(self, binaries=True):
        env = dict(os.environ, OUTPOST_QUICKSTART_DIR=str(self.run_dir),
                   OUTPOST_QUICKSTART_PORT=str(self.port),
                   OUTPOST_QUICKSTART_METRICS=f"127.0.0.1:{free_port()}")
        if binaries:
            env.update(OUTPOSTD=OUTPOSTD, OUTPOSTCTL=OUTPOSTCTL)
        self.logfile.write_bytes(b"")
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen([str(QUICKSTART)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, env=env)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"quickstart exited with {self.proc.returncode}:\n"
                                     f"{self.output()}")
            return can_connect("127.0.0.1", self.port, timeout=0.2)
        wait_until(up, 120, f"quickstart's outpostd on port {self.port}", interval=0.1)
        return self

    def output(self):
        return self.logfile.read_text(errors="replace")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
            raise AssertionError("quickstart's outpostd ignored SIGTERM")

    def swaks_line(self):
        lines = SWAKS_RE.findall(self.output())
        assert lines, f"no swaks line in quickstart's output:\n{self.output()}"
        return lines[-1]

    def txt(self):
        recs = parse_txt_records(self.output())
        assert DKIM_NAME in recs, f"no TXT record for {DKIM_NAME} printed:\n{self.output()}"
        return recs[DKIM_NAME]

    def send(self):
        """Run the printed swaks line as it is."""
        p = subprocess.run(shlex.split(self.swaks_line()), capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, f"swaks failed ({p.returncode}):\n{p.stdout}{p.stderr}"
        assert re.search(r"<[~-]\s+250 2\.0\.0 Ok: queued as \S+", p.stdout), p.stdout
        return p.stdout

    def outbox(self):
        new = self.run_dir / "outbox" / "new"
        return sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name)) \
            if new.is_dir() else []


@pytest.fixture
def quickstart(tmp_path, binaries):
    # As root, quickstart's outpostd runs as the outpost account, which
    # must reach the run directory (quickstart gives it the directory).
    give_to_daemon(tmp_path)
    made = []

    def make(run_dir=None, port=None):
        q = Quickstart(run_dir or tmp_path / "run", port or free_port(),
                       tmp_path / f"quickstart{len(made)}.out")
        made.append(q)
        return q
    yield make
    for q in made:
        q.stop()


def check_signed(raw, strings):
    """raw has exactly one DKIM-Signature, by demo for example.com, and
    dkimpy verifies it against the printed record."""
    d = dkim.DKIM(raw)
    sigs = [dkim.util.parse_tag_value(v) for k, v in d.headers if k.lower() == b"dkim-signature"]
    assert len(sigs) == 1, f"expected one DKIM-Signature:\n{raw[:2000]!r}"
    assert sigs[0][b"d"] == b"example.com" and sigs[0][b"s"] == b"demo", sigs[0]
    assert sigs[0][b"a"] == b"rsa-sha256"
    assert dkim.verify(raw, dnsfunc=txt_dnsfunc({DKIM_NAME: strings})), \
        f"dkimpy does not verify the quickstart message:\n{raw[:3000]!r}"
    # Not by accident: another key's record fails.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    p = base64.b64encode(other.public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    assert not dkim.verify(raw, dnsfunc=txt_dnsfunc({DKIM_NAME: b"v=DKIM1; k=rsa; p=" + p}))


def conf_key_lines(run_dir):
    return [l for l in (run_dir / "outpost.conf").read_text().splitlines()
            if re.match(r"\s*dkim_key\s*=", l)]


def test_quickstart_message_is_signed_and_verifies(quickstart, tmp_path):
    run_dir = tmp_path / "run"
    q = quickstart(run_dir).start()
    out = q.output()
    key = run_dir / "dkim" / "example.com.demo.pem"
    assert key.is_file(), out
    assert (key.stat().st_mode & 0o077) == 0, oct(key.stat().st_mode)
    assert re.search(r"publish", out, re.I), "the banner must say to publish the record"
    strings = q.txt()
    assert all(len(s.encode()) <= 255 for s in strings)
    assert conf_key_lines(run_dir) == [f"dkim_key = demo:{key}"], conf_key_lines(run_dir)

    q.send()
    files = wait_until(q.outbox, 15, "the message in the outbox")
    assert len(files) == 1
    raw = files[0].read_bytes()
    check_signed(raw, strings)
    assert b"From: demo@example.com" in raw
    wait_until(lambda: re.search(r": dkim d=example\.com s=demo a=rsa-sha256", q.output()),
               10, "the dkim log line")
    assert q.stop() == 0

    # Second run: everything is reused.
    key_bytes, password = key.read_bytes(), (run_dir / "demo.password").read_text()
    conf = (run_dir / "outpost.conf").read_text()
    q2 = quickstart(run_dir, port=q.port).start()
    assert key.read_bytes() == key_bytes, "the DKIM key was replaced"
    assert (run_dir / "demo.password").read_text() == password
    assert (run_dir / "outpost.conf").read_text() == conf, "the config was rewritten"
    assert q2.txt() == strings, "a different TXT record on the second run"
    assert f"--auth-password {password.strip()} " in q2.swaks_line()
    assert "made the DKIM key" not in q2.output() and "quickstart: wrote " not in q2.output()
    q2.send()
    files = wait_until(lambda: len(q2.outbox()) >= 2 and q2.outbox(), 15, "a second message")
    check_signed(files[-1].read_bytes(), strings)
    assert q2.stop() == 0


def test_quickstart_adds_key_to_an_older_config(quickstart, tmp_path):
    """A run/ from a quickstart without DKIM: the key is made and dkim_key
    added to the existing [domain example.com], the rest kept."""
    run_dir = tmp_path / "run"
    q = quickstart(run_dir).start()
    assert q.stop() == 0
    conf_path = run_dir / "outpost.conf"
    old = "\n".join(l for l in conf_path.read_text().splitlines()
                    if not re.match(r"\s*dkim_key\s*=", l)) + "\n; kept\n"
    conf_path.write_text(old)
    for p in (run_dir / "dkim").iterdir():
        p.unlink()
    q2 = quickstart(run_dir, port=q.port).start()
    key = run_dir / "dkim" / "example.com.demo.pem"
    assert key.is_file()
    assert conf_key_lines(run_dir) == [f"dkim_key = demo:{key}"]
    text = conf_path.read_text()
    assert "; kept" in text
    # dkim_key sits in [domain example.com].
    section = re.search(r"^\[domain example\.com\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert section and "dkim_key = demo:" in section.group(1), text
    q2.send()
    files = wait_until(q2.outbox, 15, "the message in the outbox")
    check_signed(files[-1].read_bytes(), q2.txt())


def test_quickstart_refuses_a_taken_port(quickstart, tmp_path):
    run_dir = tmp_path / "run"
    q = quickstart(run_dir).start()
    p = subprocess.run([str(QUICKSTART)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, OUTPOST_QUICKSTART_DIR=str(run_dir),
                                OUTPOST_QUICKSTART_PORT=str(q.port),
                                OUTPOSTD=OUTPOSTD, OUTPOSTCTL=OUTPOSTCTL))
    assert p.returncode == 1
    assert f"127.0.0.1:{q.port}" in p.stderr
    assert q.proc.poll() is None, "the first daemon must keep running"
