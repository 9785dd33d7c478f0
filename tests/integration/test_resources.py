"""Resource bounds (RELIABILITY.md S14; issue 7 "Resource bounds").

10,000 idle connections are held or refused by the caps (421 4.7.0) and
never take the daemon down; what they cost in memory is printed. Slowloris
clients (a byte every second or so, a stalled TLS handshake, idle
connections) are cut by the per-command deadlines while a normal client is
served. test_security.py holds the per-IP cap alone (S14).
"""
import errno
import os
import re
import resource
import selectors
import socket
import ssl
import threading
import time

import pytest

from conftest import (ALICE_PW, ConnectionClosed, SMTPClient, proc_status_kb, simple_message,
                      smtp_client_from, wait_until)

TARGET_CONNECTIONS = 10000


def raise_nofile(want):
    """Raise this process's RLIMIT_NOFILE (the daemon started afterwards
    inherits it); returns the old limits to restore, or None if impossible."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = old
    if soft >= want:
        return old
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        if hard < want:
            return None
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return old


def open_idle(port, source, n, batch=250, timeout=30.0):
    """n connections from source, batch at a time (non-blocking, one
    selector); each waits for its first line. Returns (held sockets,
    refusal lines, anything else)."""
    held, refused, other = [], [], []
    for start in range(0, n, batch):
        k = min(batch, n - start)
        sel = selectors.DefaultSelector()
        pending = {}
        for _ in range(k):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((source, 0))
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                other.append(f"connect: {errno.errorcode.get(err, err)}")
                s.close()
                continue
            sel.register(s, selectors.EVENT_READ)
            pending[s] = b""
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj
                try:
                    data = s.recv(512)
                except BlockingIOError:
                    continue
                except OSError as e:
                    data, pending[s] = b"", pending[s] + f"[{e}]".encode()
                buf = pending[s] + data
                if b"\n" in buf or not data:
                    sel.unregister(s)
                    del pending[s]
                    line = buf.split(b"\r\n")[0].decode("ascii", "replace")
                    if line.startswith("220 "):
                        held.append(s)
                    else:
                        (refused if line.startswith("421 ") else other).append(line)
                        s.close()
                else:
                    pending[s] = buf
        for s in pending:
            other.append(f"no first line within {timeout}s")
            s.close()
        sel.close()
    return held, refused, other


def send_one(port, tls_ctx, subject):
    """A normal client: STARTTLS, AUTH, one message; returns the final reply."""
    with SMTPClient(port) as c:
        assert c.greeting.code == 220, c.greeting
        c.login(tls_ctx, "alice", ALICE_PW)
        r = c.mail_transaction("alice@example.com", ["bob@example.net"],
                               simple_message(subject=subject))
        c.cmd("QUIT")
        return r


def test_resources_10k_idle(daemon_factory, tls_ctx):
    # 10,000 sockets here, up to 9,000 sessions in the daemon, plus slack.
    old = raise_nofile(TARGET_CONNECTIONS + 2000)
    if old is None:
        pytest.skip(f"RLIMIT_NOFILE cannot reach {TARGET_CONNECTIONS + 2000}")
    sockets = []
    try:
        d = daemon_factory({"server": {"max_connections": "9000",
                                       "max_connections_per_ip": "3000",
                                       "timeout_command": "120",
                                       "log_level": "info"}})
        pid = d.proc.pid
        with open(f"/proc/{pid}/limits") as f:
            nofile = [l for l in f if l.startswith("Max open files")][0].split()[3]
        assert int(nofile) >= TARGET_CONNECTIONS, f"the daemon's RLIMIT_NOFILE is {nofile}"
        time.sleep(0.5)                 # wait_ready's probes are gone
        # One normal transaction first, so the RSS baseline includes a
        # session's worth of TLS, AUTH and queue state.
        assert send_one(d.port, tls_ctx, "before").code == 250
        d.wait_maildir(1)
        rss0 = proc_status_kb(pid, "VmRSS")

        # 127.0.0.2 goes over the per-IP cap (3000); .3 and .4 fill the
        # global cap (9000); .5 finds it full.
        plan = [("127.0.0.2", 3500), ("127.0.0.3", 3000), ("127.0.0.4", 3000),
                ("127.0.0.5", 500)]
        t0 = time.monotonic()
        per_source = {}
        for source, n in plan:
            held, refused, other = open_idle(d.port, source, n)
            sockets.extend(held)
            per_source[source] = (len(held), refused, other)
            assert d.running(), f"outpostd died at {source}; log tail:\n{d.log_tail()}"
        opened = time.monotonic() - t0
        rss1 = proc_status_kb(pid, "VmRSS")
        hwm1 = proc_status_kb(pid, "VmHWM")
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        summary = {s: (h, len(r), len(o)) for s, (h, r, o) in per_source.items()}
        held_total = sum(h for h, _, _ in summary.values())
        refused_total = sum(r for _, r, _ in summary.values())
        print(f"\n10k idle: {sum(n for _, n in plan)} connections in {opened:.1f}s: "
              f"{held_total} held, {refused_total} refused with 421 "
              f"(per source held/refused/other: {summary}); daemon fds {fds}; "
              f"VmRSS {rss0} kB before, {rss1} kB with them held "
              f"(+{rss1 - rss0} kB, {(rss1 - rss0) * 1024 // max(held_total, 1)} B per "
              f"connection), VmHWM {hwm1} kB")

        for source, (h, refused, other) in per_source.items():
            assert not other, f"{source}: unexpected answers {other[:5]}"
            for line in refused:
                assert re.match(r"421 4\.7\.0 ", line), line
        h2, r2, _ = per_source["127.0.0.2"]
        assert h2 == 3000 and len(r2) == 500, summary
        assert all("from your address" in l for l in r2), r2[:3]
        assert per_source["127.0.0.3"][0] == 3000, summary
        h4, r4, _ = per_source["127.0.0.4"]
        h5, r5, _ = per_source["127.0.0.5"]
        assert h4 == 3000 and not r4 and h5 == 0 and len(r5) == 500, summary
        assert all("from your address" not in l for l in r5), r5[:3]
        assert held_total == 9000
        assert rss1 < 1024 * 1024, f"{rss1} kB resident with {held_total} idle connections"

        # At the global cap a normal client hears 421 4.7.0 too.
        with SMTPClient(d.port, read_greeting=False) as c:
            r = c.reply()
            assert r.code == 421 and r.enh == "4.7.0", r
        # Within the caps again (ten leave), it is served end to end.
        for s in sockets[-10:]:
            s.close()
        del sockets[-10:]

        def served():
            try:
                return send_one(d.port, tls_ctx, "within caps").code == 250
            except (AssertionError, ConnectionClosed, OSError):
                return False
        wait_until(served, 15, "a normal client served after ten idle ones left", interval=0.2)
        d.wait_maildir(2)
        assert d.running()
        assert not re.search(r"accept: ", d.log()), "accept errors (EMFILE?) in the log"
    finally:
        for s in sockets:
            s.close()
        if old is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)


# ---------------------------------------------------------------------------
# S14: slowloris, stalled TLS, idle connections, caps

TIMEOUT_COMMAND = 4
TIMEOUT_DATA = 4
TIMEOUT_TLS = 3


def client_hello(tls_ctx):
    """The bytes of a real TLS ClientHello."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def watch(sock, t0, trickle=b"", interval=1.0, buf=b"", limit=15.0):
    """Send trickle one byte per interval while reading until the server
    closes; returns {after: seconds from t0 to the close (None: still
    open at limit), data: what arrived, sent: bytes trickled}."""
    sent, data, next_send = 0, buf, time.monotonic()
    while time.monotonic() - t0 < limit:
        now = time.monotonic()
        if sent < len(trickle) and now >= next_send:
            try:
                sock.send(trickle[sent:sent + 1])
                sent += 1
            except OSError:
                pass
            next_send = now + interval
        sock.settimeout(0.1)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            return {"after": time.monotonic() - t0, "data": data, "sent": sent}
        data += chunk
    return {"after": None, "data": data, "sent": sent}


def test_S14_slowloris_and_caps(daemon_factory, free_ports, tls_files, tls_ctx):
    sub_port, smtps_port, plain_port = free_ports(3)
    cert, key = (str(p) for p in tls_files)
    d = daemon_factory({
        "server": {"max_connections": "14", "max_connections_per_ip": "6",
                   "timeout_command": str(TIMEOUT_COMMAND), "timeout_data": str(TIMEOUT_DATA),
                   "timeout_tls": str(TIMEOUT_TLS), "trusted_networks": "127.0.0.0/8"},
        "listen submission": {"address": f"127.0.0.1:{sub_port}"},
        "listen smtps": {"address": f"127.0.0.1:{smtps_port}", "tls": "implicit",
                         "auth": "required", "cert": cert, "key": key},
        "listen plain": {"address": f"127.0.0.1:{plain_port}", "tls": "none",
                         "auth": "optional"},
    })
    time.sleep(0.3)                     # wait_ready's probes are gone
    results = {}
    threads = []
    opened = []

    def spawn(name, sock, t0, **kw):
        def run():
            results[name] = watch(sock, t0, **kw)
        t = threading.Thread(target=run, daemon=True)
        threads.append(t)
        opened.append(sock)
        t.start()

    try:
        # 127.0.0.2: six idle clients fill its per-IP cap; a seventh is refused.
        for i in range(6):
            c = smtp_client_from("127.0.0.2", sub_port)
            assert c.greeting.code == 220, c.greeting
            spawn(f"idle.2.{i}", c.sock, time.monotonic(), buf=c.buf)
        with smtp_client_from("127.0.0.2", sub_port, read_greeting=False) as c:
            r = c.reply()
            assert r.code == 421 and r.enh == "4.7.0" and "from your address" in r.text, r
            assert c.is_closed(5)

        # 127.0.0.3: the slow ones.
        c = smtp_client_from("127.0.0.3", sub_port)         # a command, a byte a second
        spawn("slow command", c.sock, time.monotonic(), buf=c.buf,
              trickle=b"EHLO slowloris.example.com\r\n", interval=1.0)
        c = smtp_client_from("127.0.0.3", plain_port)       # DATA, a byte a second
        c.ehlo()
        for line, want in (("MAIL FROM:<printer@example.com>", 250),
                           ("RCPT TO:<bob@example.net>", 250), ("DATA", 354)):
            r = c.cmd(line)
            assert r.code == want, f"{line}: {r}"
        spawn("slow DATA", c.sock, time.monotonic(), buf=c.buf,
              trickle=simple_message(subject="slowloris"), interval=1.0)
        c = smtp_client_from("127.0.0.3", sub_port)         # STARTTLS, then nothing
        c.ehlo()
        assert c.cmd("STARTTLS").code == 220
        spawn("stalled STARTTLS", c.sock, time.monotonic())
        c = smtp_client_from("127.0.0.3", sub_port)         # a ClientHello, a byte per 0.5 s
        c.ehlo()
        assert c.cmd("STARTTLS").code == 220
        spawn("slow ClientHello", c.sock, time.monotonic(), trickle=client_hello(tls_ctx),
              interval=0.5)
        s = socket.create_connection(("127.0.0.1", smtps_port), timeout=5,
                                     source_address=("127.0.0.3", 0))
        spawn("stalled implicit TLS", s, time.monotonic())

        # 127.0.0.4: two more idle ones: 13 sessions.
        for i in range(2):
            c = smtp_client_from("127.0.0.4", sub_port)
            spawn(f"idle.4.{i}", c.sock, time.monotonic(), buf=c.buf)

        # A normal client takes the 14th slot; the 15th hears 421 4.7.0.
        t_normal = time.monotonic()
        normal = SMTPClient(sub_port)
        assert normal.greeting.code == 220, normal.greeting
        with smtp_client_from("127.0.0.5", sub_port, read_greeting=False) as c:
            r = c.reply()
            assert r.code == 421 and r.enh == "4.7.0", r
            assert "from your address" not in r.text, r
        # ... and is served while the slow ones hold their slots.
        normal.login(tls_ctx, "alice", ALICE_PW)
        r = normal.mail_transaction("alice@example.com", ["bob@example.net"],
                                    simple_message(subject="normal"))
        assert r.code == 250, r
        normal.cmd("QUIT")
        normal.close()
        served_in = time.monotonic() - t_normal
        still_open = sum(1 for t in threads if t.is_alive())

        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads)
        print(f"\nS14: normal client served in {served_in:.2f}s with {still_open} of "
              f"{len(threads)} slow/idle connections still open; cut after:")
        for name, res in sorted(results.items()):
            print(f"  {name}: {res['after'] and round(res['after'], 2)}s, "
                  f"{res['sent']} bytes trickled, got {res['data'][:60]!r}")

        def check(name, deadline, reply):
            res = results[name]
            assert res["after"] is not None, f"{name}: never cut"
            assert deadline - 0.5 <= res["after"] <= deadline + 2.5, (name, res)
            if reply:
                last = res["data"].rstrip(b"\r\n").split(b"\r\n")[-1]
                assert re.match(rb"421 4\.4\.2 ", last), (name, res)
            else:
                assert res["data"] == b"", (name, res)    # no SMTP reply in TLS state
        for name in results:
            if name.startswith("idle."):
                check(name, TIMEOUT_COMMAND, reply=True)
        check("slow command", TIMEOUT_COMMAND, reply=True)
        check("slow DATA", TIMEOUT_DATA, reply=True)
        check("stalled STARTTLS", TIMEOUT_TLS, reply=False)
        check("slow ClientHello", TIMEOUT_TLS, reply=False)
        check("stalled implicit TLS", TIMEOUT_TLS, reply=False)
        # Per command, not per read: bytes kept arriving and did not help.
        assert results["slow command"]["sent"] >= TIMEOUT_COMMAND - 1
        assert results["slow DATA"]["sent"] >= TIMEOUT_DATA - 1
        assert results["slow ClientHello"]["sent"] >= 2 * TIMEOUT_TLS - 1

        timeouts = re.findall(r"timeout in state (\S+) from \[127\.0\.0\.[234]\]", d.log())
        assert len(timeouts) == 13, timeouts
        # The slots are free again, and only the normal message was queued.
        with smtp_client_from("127.0.0.2", sub_port) as c:
            assert c.greeting.code == 220, c.greeting
        msgs = d.wait_maildir(1)
        time.sleep(0.5)
        assert len(d.maildir_files()) == 1 and b"Subject: normal" in msgs[0]
        assert d.running()
    finally:
        for s in opened:
            s.close()


@pytest.fixture
def free_ports():
    """n distinct free TCP ports on 127.0.0.1."""
    def get(n):
        socks = []
        try:
            for _ in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            return [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()
    return get
