"""Durability proof (RELIABILITY.md Q1, Q3; Q4 lives in test_storage.py).

Q1: several clients submit while a killer thread SIGKILLs the daemon at
random moments (at a random time, right after a client got its 250, while
the upstream holds a message before answering the dot, right after the
upstream answered 250) and restarts it, many times. At the end every
Message-ID that got a 250 has arrived at the upstream at least once
(duplicates are allowed, counted and printed) and the queue database
passes PRAGMA integrity_check.

Q3: deterministic: the upstream stops the daemon (SIGSTOP) as the message
arrives, answers 250 (it lands unread in the daemon's socket), and the
test SIGKILLs it: the daemon never saw the 250, so after the restart the
message goes out again.

OUTPOST_DURABILITY_CYCLES (default 200) sets the number of kill cycles of
Q1; OUTPOST_DURABILITY_SECONDS (default 150) caps the kill phase's time.
"""
import asyncio
import os
import random
import re
import signal
import sqlite3
import threading
import time

import pytest

from conftest import ConnectionClosed, SMTPClient, crlf, queue_id, wait_until

CYCLES = int(os.environ.get("OUTPOST_DURABILITY_CYCLES", "200"))
KILL_PHASE_SECONDS = float(os.environ.get("OUTPOST_DURABILITY_SECONDS", "150"))
CLIENTS = 4
DRAIN_SECONDS = 90.0

MID_RE = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.I | re.M)


def message_id(content):
    m = MID_RE.search(content)
    return m.group(1).decode() if m else None


def trusted_plain_config(up):
    """A plain listener where 127.0.0.1 submits without AUTH (no yescrypt
    per message), relaying to the plain upstream up."""
    return {
        "server": {"trusted_networks": "127.0.0.0/8"},
        "listen submission": {"auth": "optional", "tls": "none", "cert": None, "key": None},
        "upstream main": up.upstream_section(max_connections="8"),
        "queue": {"retry": "1s, 2s", "max_lifetime": "1h", "scan_interval": "1s"},
    }


def hook_data(up, hook):
    """Wrap the upstream's DATA handler: hook(envelope, accept) is a
    coroutine that must await accept() to record and answer 250. Every
    connection made after this call uses it."""
    handler = up.controller.handler
    orig = handler.handle_DATA

    async def handle_DATA(server, session, envelope):
        return await hook(envelope, lambda: orig(server, session, envelope))

    handler.handle_DATA = handle_DATA


def make_body(mid, n):
    size = random.choice((0, 0, 0, 2000, 60000))
    body = ("z" * 70 + "\n") * (size // 71) + "end\n"
    return crlf(f"From: printer@example.com\nTo: bob@example.net\n"
                f"Subject: durability {n}\nMessage-ID: {mid}\n\n{body}")


def integrity(db):
    con = sqlite3.connect(str(db), timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------------------
# Q1


def test_Q1_kill9_durability(daemon_factory, upstream_factory):
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory(trusted_plain_config(up))
    port = d.port
    db = d.state_dir / "queue.db"

    lock = threading.Lock()
    acked = {}                  # Message-ID -> queue id (250 received)
    sent_dot = set()            # the final dot went out (outcome may be unknown)
    other = {}                  # Message-ID -> non-250 code at the dot
    stats = {"conn_fail": 0, "unknown": 0, "attempts": 0}
    ack_evt = threading.Event()         # a client just got a 250
    up_data_evt = threading.Event()     # the upstream holds a message (slow DATA)
    up_accept_evt = threading.Event()   # the upstream just answered 250
    stop = threading.Event()
    errors = []

    async def hook(envelope, accept):
        mid = message_id(envelope.original_content or b"") or ""
        # One message in eight stay at the upstream a while before the
        # answer to the dot, so some kills land in the middle of delivery.
        if hash(mid) % 8 == 0:
            up_data_evt.set()
            await asyncio.sleep(random.uniform(0.05, 0.4))
        status = await accept()
        up_accept_evt.set()
        return status
    hook_data(up, hook)

    def client(tid):
        n = 0
        deadline = time.monotonic() + KILL_PHASE_SECONDS + 30
        while not stop.is_set() and time.monotonic() < deadline:
            n += 1
            mid = f"<q1.{tid}.{n}.{random.getrandbits(32):08x}@durability.test>"
            with lock:
                stats["attempts"] += 1
            try:
                c = SMTPClient(port, timeout=5)
            except (OSError, ConnectionClosed, AssertionError):
                with lock:
                    stats["conn_fail"] += 1
                time.sleep(random.uniform(0.02, 0.1))
                continue
            try:
                if c.greeting.code != 220:
                    continue
                for line, want in (("EHLO client.test", 250),
                                   ("MAIL FROM:<printer@example.com>", 250),
                                   ("RCPT TO:<bob@example.net>", 250),
                                   ("DATA", 354)):
                    r = c.cmd(line)
                    if r.code != want:
                        raise ConnectionClosed(f"{line}: {r}")
                with lock:
                    sent_dot.add(mid)
                c.send(make_body(mid, n).replace(b"\r\n.", b"\r\n..") + b".\r\n")
                r = c.reply(timeout=15)
                with lock:
                    if r.code == 250:
                        acked[mid] = queue_id(r)
                    else:
                        other[mid] = r.code
                if r.code == 250:
                    ack_evt.set()
                try:
                    c.cmd("QUIT", timeout=2)
                except (ConnectionClosed, OSError, AssertionError):
                    pass
            except (ConnectionClosed, OSError, AssertionError):
                with lock:
                    stats["unknown"] += 1
            finally:
                c.close()
            # About 10 messages a second in all: the upstream (one Python
            # thread, some answers slow on purpose) keeps up with that.
            time.sleep(random.uniform(0.1, 0.5))

    def killer(result):
        t0 = time.monotonic()
        modes = {"random": 0, "after_ack": 0, "upstream_data": 0, "upstream_accept": 0}
        cycles = 0
        try:
            while cycles < CYCLES and time.monotonic() - t0 < KILL_PHASE_SECONDS:
                mode = random.choice(list(modes))
                if mode == "random":
                    time.sleep(random.uniform(0.0, 0.5))
                else:
                    evt = {"after_ack": ack_evt, "upstream_data": up_data_evt,
                           "upstream_accept": up_accept_evt}[mode]
                    evt.clear()
                    if not evt.wait(timeout=2.0):
                        mode = "random"         # nothing happened: kill anyway
                d.kill9()
                modes[mode] += 1
                cycles += 1
                time.sleep(random.uniform(0.0, 0.05))
                if cycles % 50 == 0:
                    # The database as a crash left it (hot WAL and all).
                    res = integrity(db)
                    if res != "ok":
                        errors.append(f"integrity_check after kill {cycles}: {res}")
                        return
                d.start()
        except Exception as e:      # noqa: BLE001 - reported by the test
            errors.append(f"killer: cycle {cycles}: {e!r}")
        finally:
            result.update(cycles=cycles, modes=modes, seconds=time.monotonic() - t0)

    result = {}
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    kt = threading.Thread(target=killer, args=(result,), daemon=True)
    kt.start()
    kt.join(KILL_PHASE_SECONDS + 60)
    stop.set()
    for t in threads:
        t.join(30)
    assert not kt.is_alive() and not any(t.is_alive() for t in threads), "threads hung"
    assert not errors, errors
    if not d.running():
        d.start()

    def delivered_ids():
        out = {}
        for m in up.messages():
            mid = message_id(m.content)
            out[mid] = out.get(mid, 0) + 1
        return out

    drain_t0 = time.monotonic()
    missing = []
    while time.monotonic() - drain_t0 < DRAIN_SECONDS:
        got = delivered_ids()
        missing = sorted(m for m in acked if m not in got)
        if not missing:
            break
        time.sleep(0.5)
    drain = time.monotonic() - drain_t0
    got = delivered_ids()
    dups = {m: n for m, n in got.items() if n > 1}
    strangers = [m for m in got if m not in sent_dot]
    print(f"\nQ1: {result['cycles']} kill cycles in {result['seconds']:.1f}s "
          f"(modes {result['modes']}), {CLIENTS} clients: {stats['attempts']} attempts, "
          f"{len(sent_dot)} reached the dot, {len(acked)} got 250, {len(other)} another "
          f"code at the dot, {stats['unknown']} cut off, {stats['conn_fail']} connect "
          f"failures; upstream: {sum(got.values())} deliveries of {len(got)} Message-IDs "
          f"({len([m for m in got if m not in acked])} without a 250 seen by the client), "
          f"{len(dups)} duplicated ({sum(dups.values()) - len(dups)} extra copies); "
          f"drain {drain:.1f}s")
    if missing:
        log = d.log()
        detail = []
        for mid in missing[:10]:
            qid = acked[mid]
            lines = [l for l in log.splitlines() if qid in l]
            detail.append(f"{mid} queued as {qid}:\n  " + "\n  ".join(lines[-8:]))
        pytest.fail(f"{len(missing)} of {len(acked)} acknowledged messages never reached "
                    f"the upstream within {DRAIN_SECONDS}s:\n" + "\n".join(detail))
    assert not strangers, f"the upstream got messages never submitted: {strangers[:5]}"
    assert len(acked) > 0, "no message was acknowledged at all"
    d.stop()
    assert integrity(db) == "ok"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        statuses = dict(con.execute("SELECT status, count(*) FROM recipients GROUP BY status"))
    finally:
        con.close()
    print(f"Q1: queue after drain: {statuses}")
    assert "bounced" not in statuses, statuses


# ---------------------------------------------------------------------------
# Q3


def daemon_unread_bytes(pid, peer_port):
    """Bytes waiting unread in pid's TCP sockets connected to 127.0.0.1:peer_port
    (rx_queue of /proc/PID/net/tcp, for the sockets the process holds)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return 0
    total = 0
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            rem_port = int(p[2].split(":")[1], 16)
            rx = int(p[4].split(":")[1], 16)
            if rem_port == peer_port and p[9] in inodes:
                total += rx
    return total


def test_Q3_crash_after_upstream_250(daemon_factory, upstream_factory, client_factory):
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory(trusted_plain_config(up))
    stopped = threading.Event()
    first = {"done": False}

    async def hook(envelope, accept):
        if not first["done"]:
            first["done"] = True
            # The daemon cannot run from here on: the 250 below reaches
            # its socket, and it is killed before it reads it.
            os.kill(d.proc.pid, signal.SIGSTOP)
            stopped.set()
        return await accept()
    hook_data(up, hook)

    mid = "<q3.once@durability.test>"
    c = client_factory(d.port)
    c.ehlo()
    r = c.mail_transaction("printer@example.com", ["bob@example.net"],
                           crlf(f"From: printer@example.com\nTo: bob@example.net\n"
                                f"Subject: Q3\nMessage-ID: {mid}\n\nonce\n"))
    assert r.code == 250, r
    qid = queue_id(r)
    c.close()
    assert stopped.wait(15), "the message never reached the upstream"
    up.wait_messages(1)
    pid = d.proc.pid
    # The upstream's 250 is in the stopped daemon's socket, unread.
    wait_until(lambda: daemon_unread_bytes(pid, up.port) > 0, 5,
               "the upstream's 250 in the daemon's receive queue")
    assert not re.search(rf"{re.escape(qid)}: to=<bob@example\.net>.*status=sent", d.log())
    d.kill9()

    mark = d.mark()
    d.start()
    d.wait_log(r"started: 1 queued message", since=mark)
    line = d.wait_log(rf"{re.escape(qid)}: to=<bob@example\.net>, relay=.*status=sent",
                      since=mark)
    print(f"\nQ3: after the restart: {line.group(0)}")
    msgs = up.wait_messages(2)
    assert [message_id(m.content) for m in msgs] == [mid, mid], \
        "the message was not sent again after the crash"
    time.sleep(1.5)                 # no third copy
    assert len(up.messages()) == 2
    d.stop()
    con = sqlite3.connect(f"file:{d.state_dir / 'queue.db'}?mode=ro", uri=True, timeout=10)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        statuses = [r[0] for r in con.execute("SELECT status FROM recipients")]
    finally:
        con.close()
    assert statuses == ["sent"], statuses
