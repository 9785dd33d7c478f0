"""Running as a service: the privilege drop to [server] user, reloading
TLS certificates without dropping sessions, SIGTERM letting an open
transaction finish, and socket activation (LISTEN_FDS)."""
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (ALICE_PW, DAEMON_USER, OUTPOSTCTL, OUTPOSTD, QUEUED_RE, crlf,
                      dot_stuff, free_port, make_cert, simple_message, wait_until)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to test the drop")


def ctl(d, *args):
    return subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), *args],
                          capture_output=True, text=True, timeout=30)


def proc_ids(pid):
    """Real, effective, saved and filesystem uids and gids, and groups."""
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(v) for v in value.split()]
    return ids


def peer_cert_cn(port, ctx):
    """STARTTLS on a new connection; the certificate's CN."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO probe.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            der = t.getpeercert()
            return dict(x[0] for x in der["subject"])["commonName"]


@root_only
def test_started_as_root_runs_as_user(daemon):
    ids = proc_ids(daemon.proc.pid)
    pw = pwd.getpwnam(DAEMON_USER)
    assert ids["Uid"] == [pw.pw_uid] * 4, ids
    assert ids["Gid"] == [pw.pw_gid] * 4, ids
    assert 0 not in ids["Groups"], ids
    daemon.wait_log(rf"running as user {DAEMON_USER} \(uid {pw.pw_uid}, gid {pw.pw_gid}\)")
    # What it made after the drop is the account's, the queue included.
    for name in ("queue.db", "control"):
        assert (daemon.state_dir / name).stat().st_uid == pw.pw_uid


@root_only
def test_state_left_by_root_is_handed_over(daemon_factory):
    d = daemon_factory(start=False)
    stray = d.state_dir / "left-by-root"
    stray.write_text("x")
    os.chown(stray, 0, 0)
    os.chown(d.state_dir, 0, 0)
    os.chmod(d.state_dir, 0o755)
    d.keep_root = [d.state_dir]
    d.start()
    uid = pwd.getpwnam(DAEMON_USER).pw_uid
    d.wait_log(r"entries now belong to " + DAEMON_USER)
    assert stray.stat().st_uid == uid
    assert d.state_dir.stat().st_uid == uid
    assert d.state_dir.stat().st_mode & 0o777 == 0o700


@root_only
def test_missing_account_is_refused(daemon_factory):
    d = daemon_factory(config={"server": {"user": "no-such-outpost-user"}}, start=False)
    p = subprocess.run([OUTPOSTD, "-c", str(d.conf_path), "-n"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1
    assert "[server] user no-such-outpost-user: no such account" in p.stderr
    assert "useradd --system" in p.stderr
    with pytest.raises(AssertionError, match="exited with 1"):
        d.start()


def test_root_is_not_an_account_to_run_as(daemon_factory):
    d = daemon_factory(config={"server": {"user": "root"}}, start=False)
    lines = d.conf_path.read_text().splitlines()
    lineno = next(i for i, l in enumerate(lines, 1) if l.startswith("user = root"))
    p = subprocess.run([OUTPOSTD, "-c", str(d.conf_path), "-n"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1
    assert f"{d.conf_path}:{lineno}: " in p.stderr
    assert "other than root" in p.stderr


@root_only
def test_unreadable_reload_file_is_named_at_start(daemon_factory, tmp_path):
    d = daemon_factory(start=False)
    hidden = tmp_path / "root-only"
    hidden.mkdir(mode=0o700)
    users = hidden / "users"
    shutil.copy(d.sections["server"]["users_file"], users)
    os.chown(users, 0, 0)
    users.chmod(0o600)
    d.keep_root = [hidden]
    d.sections["server"]["users_file"] = str(users)
    d.write_config()
    d.start()
    d.wait_log(rf"users file {users} is not readable as uid \d+ .*a reload will fail")


def test_reload_serves_new_certificate_and_keeps_sessions(daemon_factory, client_factory,
                                                          tls_ctx, tmp_path):
    certdir = tmp_path / "cert"
    cert, key = make_cert(certdir, cn="localhost")
    d = daemon_factory(config={"listen submission": {"cert": str(cert), "key": str(key)}})
    trust_any = ssl.create_default_context()
    trust_any.check_hostname = False
    trust_any.verify_mode = ssl.CERT_NONE

    # A session opened under the old certificate stays open across the
    # reload and can still send.
    c = client_factory(d.port)
    c.ehlo()
    c.starttls(trust_any)
    c.ehlo()
    assert c.auth_plain("alice", ALICE_PW).code == 235

    # Renew the certificate in place (the name a certbot hook keeps).
    fresh = tmp_path / "fresh"
    fcert, fkey = make_cert(fresh, cn="renewed.localhost")
    probe = ssl.create_default_context(cadata=cert.read_text() + fcert.read_text())
    probe.check_hostname = False
    assert peer_cert_cn(d.port, probe) == "localhost"
    shutil.copy(fcert, cert)
    shutil.copy(fkey, key)
    mark = d.mark()
    p = ctl(d, "reload")
    assert p.returncode == 0, p.stdout + p.stderr
    d.wait_log(r"reload: \d+ users", since=mark)
    assert "[listen submission]" not in d.log()[mark:], "a certificate change needs no restart"

    assert peer_cert_cn(d.port, probe) == "renewed.localhost"
    r = c.mail_transaction("alice@example.com", ["bob@example.net"],
                           simple_message(mail_from="alice@example.com"))
    assert r.code == 250, r
    c.close()

    # A broken key is refused with file:line; the renewed one goes on.
    key.write_text("not a key\n")
    p = ctl(d, "reload")
    assert p.returncode != 0
    lines = d.conf_path.read_text().splitlines()
    lineno = next(i for i, l in enumerate(lines, 1) if l == "[listen submission]")
    assert f"{d.conf_path}:{lineno}: [listen submission]" in p.stdout + p.stderr
    assert peer_cert_cn(d.port, probe) == "renewed.localhost"


def test_sigterm_lets_open_transaction_finish(daemon_factory, client_factory, tls_ctx):
    d = daemon_factory()
    idle = client_factory(d.port)
    idle.ehlo()
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd("MAIL FROM:<alice@example.com>").code == 250
    assert c.cmd("RCPT TO:<bob@example.net>").code == 250
    assert c.cmd("DATA").code == 354
    body = dot_stuff(crlf(simple_message(mail_from="alice@example.com",
                                         subject="sent across a SIGTERM")))
    half = len(body) // 2
    c.send(body[:half])

    mark = d.mark()
    d.proc.send_signal(signal.SIGTERM)
    d.wait_log(r"signal 15: stopping", since=mark)
    # The idle session is told at once; the transfer goes on.
    assert idle.reply().startswith("421 4.3.2")
    c.send(body[half:] + b".\r\n")
    r = c.reply()
    assert r.code == 250 and QUEUED_RE.match(r.lines[0]), r
    qid = QUEUED_RE.match(r.lines[0]).group(1)
    # Nothing more in this session: the next command is refused.
    assert c.cmd("MAIL FROM:<alice@example.com>").startswith("421 4.3.2")
    d.proc.wait(timeout=15)
    assert d.proc.returncode == 0

    # Accepted means kept: the next start delivers it.
    d.start()
    d.wait_log(rf"{qid}: to=<bob@example.net>.*status=sent", timeout=20)


def _activated(d, ports, extra_env=None):
    args = ["systemd-socket-activate"]
    for p in ports:
        args += ["-l", f"127.0.0.1:{p}"]
    args += [OUTPOSTD, "-c", str(d.conf_path), "-f", "-d"]
    env = d.env()
    env.update(extra_env or {})
    logf = open(d.log_path, "ab")
    try:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, env=env)
    finally:
        logf.close()


needs_activate = pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                                    reason="systemd-socket-activate not installed")


@needs_activate
def test_socket_activation_serves_passed_socket(daemon_factory, client_factory, tls_ctx):
    d = daemon_factory(start=False)
    d.give()
    proc = _activated(d, [d.port])
    d.proc = proc
    # systemd-socket-activate listens at once and starts the daemon at
    # the first connection, handing the socket over.
    deadline = time.monotonic() + 10
    while True:
        try:
            c = client_factory(d.port)
            break
        except OSError:
            assert time.monotonic() < deadline, "the activator never listened"
            time.sleep(0.05)
    assert c.greeting.startswith("220 ")
    c.close()
    d.wait_log(r"listening on \[127\.0\.0\.1\]:\d+ \(submission, .*socket activated\)")
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    r = c.mail_transaction("alice@example.com", ["bob@example.net"],
                           simple_message(mail_from="alice@example.com"))
    assert r.code == 250, r
    c.close()


@needs_activate
def test_socket_activation_refuses_unmatched_socket(daemon_factory):
    d = daemon_factory(start=False)
    d.give()
    other = free_port()
    proc = _activated(d, [d.port, other])
    d.proc = proc
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the activator never listened"
            time.sleep(0.05)
    proc.wait(timeout=15)
    assert proc.returncode != 0
    assert f"socket activation: the socket on [127.0.0.1]:{other} matches no [listen]" \
        in d.log()
