#!/usr/bin/python3
"""bench_fill - put COUNT deferred messages into a stopped outpostd's queue.

    bench_fill.py --state-dir DIR --config CONF -n COUNT [--outpostd PATH]

For benchmarks of a big queue (issue 8): every message has one recipient
in status 'deferred' (1 to 3 attempts, a 4xx last reply; with --events
also an events row per attempt), a ~2 KB body, and its next attempt 1 to
24 hours ahead, so none comes due during a bench. Queue ids are 12
random hex digits, as util_queue_id_valid wants.

The schema is outpostd's own: when DIR/queue.db has none yet, outpostd
is started once with CONF (it creates the file) and stopped. outpostd
must not be running while this writes (the script checks the control
socket and the pid file). The rows go in as one transaction with the
rollback journal and synchronous=OFF (a fill is thrown away if it fails);
the file is put back in WAL mode at the end, as outpostd wants it.
10^6 messages take about 50 s here (4.5 GB written; the Python part is
about 6 s of it), 65 s with --events.

Exit status 0, or 1 with a message on stderr.
"""
import argparse
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "aol.com",
           "icloud.com", "gmx.de", "web.de", "orange.fr", "free.fr", "mail.ru",
           "yandex.ru", "qq.com", "163.com", "comcast.net", "att.net",
           "example.net", "example.org", "slow.example", "greylist.test"]
REPLIES = ["421 4.7.0 Try again later, closing connection",
           "450 4.2.1 Mailbox temporarily unavailable",
           "451 4.3.0 Temporary local problem - please try later",
           "451 4.7.1 Greylisted, please try again in 5 minutes",
           "452 4.2.2 Mailbox full"]
RELAY = "mx.%s[192.0.2.%d]:25"
START_TIMEOUT = 60


def die(msg):
    print(f"bench_fill: {msg}", file=sys.stderr)
    sys.exit(1)


def find_outpostd(given):
    if given:
        return given
    if os.environ.get("OUTPOSTD"):
        return os.environ["OUTPOSTD"]
    here = Path(__file__).resolve().parent.parent / "outpostd"
    if here.exists():
        return str(here)
    return "outpostd"


def conf_state_dir(conf):
    """[server] state_dir of an outpost config, or None (a plain reading
    of the INI: outpost's sections may repeat, configparser's may not)."""
    section = None
    for raw in conf.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == "server" and "=" in line:
            key, val = (x.strip() for x in line.split("=", 1))
            if key == "state_dir":
                return val
    return None


def daemon_running(state_dir):
    """True if something answers on DIR/control or DIR's pid file names a
    live process."""
    ctl = state_dir / "control"
    if ctl.exists():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(ctl))
            return True
        except OSError:
            pass
        finally:
            s.close()
    for pidfile in state_dir.glob("*.pid"):
        try:
            os.kill(int(pidfile.read_text().split()[0]), 0)
            return True
        except (ValueError, IndexError, ProcessLookupError, PermissionError, OSError):
            pass
    return False


def has_schema(db):
    if not db.exists():
        return False
    con = sqlite3.connect(str(db))
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return row is not None
    except sqlite3.Error:
        return False
    finally:
        con.close()


def create_schema(outpostd, conf, state_dir):
    """Start outpostd once so that it creates queue.db, then stop it."""
    log = state_dir / "bench_fill.outpostd.log"
    with open(log, "wb") as lf:
        try:
            p = subprocess.Popen([outpostd, "-c", str(conf), "-f"], stdin=subprocess.DEVNULL,
                                 stdout=lf, stderr=subprocess.STDOUT)
        except OSError as e:
            die(f"cannot run {outpostd}: {e}")
    deadline = time.monotonic() + START_TIMEOUT
    ctl = state_dir / "control"
    try:
        while not ctl.exists():
            if p.poll() is not None:
                die(f"outpostd exited with {p.returncode} while creating the queue; "
                    f"see {log}")
            if time.monotonic() > deadline:
                die(f"outpostd did not start within {START_TIMEOUT}s; see {log}")
            time.sleep(0.05)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if not has_schema(state_dir / "queue.db"):
        die(f"outpostd ran but {state_dir}/queue.db has no outpost schema; see {log}")
    log.unlink(missing_ok=True)


def body_parts(sender, date, filler):
    """The constant pieces of every body, encoded once."""
    mid = (f"\r\n\t; {date}\r\n"
           f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;\r\n"
           f"\ts=bench; h=from:to:subject:date:message-id; bh=").encode()
    b64 = "".join(chr(65 + (i * 7) % 26) for i in range(340)) + "AA=="
    sig = ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;\r\n\tb="
           + "\r\n\t".join(b64[i:i + 72] for i in range(0, len(b64), 72))
           + f"\r\nFrom: Sender <{sender}>\r\nTo: <").encode()
    tail = (f"Date: {date}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{filler}").encode()
    return mid, sig, tail


def body(qid, rcpt, parts, rnd):
    mid, sig, tail = parts
    q = qid.encode()
    return b"".join((b"Received: from client.example (127.0.0.1)\r\n"
                     b"\tby relay.example.com (outpost) with ESMTP id ", q, mid, q, sig,
                     rcpt.encode(), b">\r\nSubject: Your weekly report ", q,
                     b"\r\nMessage-ID: <", q, b".%08x@example.com>\r\n" % rnd.getrandbits(32),
                     tail))


def fill(db, count, seed, with_events):
    rnd = random.Random(seed)
    now = int(time.time())
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    filler = line * 18
    sender = "sender@example.com"
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now))
    con = sqlite3.connect(str(db), isolation_level=None)
    try:
        mode = con.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        if mode.lower() != "delete":
            die(f"{db}: busy (journal_mode stays {mode}); is outpostd running?")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1048576")       # 1 GiB
        con.execute("BEGIN IMMEDIATE")
        first = (con.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]) + 1
        rfirst = (con.execute("SELECT COALESCE(MAX(id), 0) FROM recipients").fetchone()[0]) + 1
        # Random ids, handed out in ascending order: the queue_id index
        # then grows at its end instead of splitting pages at random,
        # which made a third of the fill time.
        ids = set()
        while len(ids) < count:
            ids.add(rnd.getrandbits(48))
        ids = sorted(ids)
        parts = body_parts(sender, date, filler)
        msgs, rcpts, events = [], [], []
        batch = 20000

        def flush():
            con.executemany(
                "INSERT INTO messages(id, queue_id, sender, auth_user, client, helo,"
                " received_at, size, flags, body_8bit, smtputf8, data, ret, envid)"
                " VALUES (?, ?, ?, NULL, '127.0.0.1', 'client.example', ?, ?, 0, 0, 0,"
                " ?, 0, NULL)", msgs)
            con.executemany(
                "INSERT INTO recipients(id, message_id, address, status, attempts,"
                " next_attempt_at, last_reply, upstream, notify, orcpt, delay_notified)"
                " VALUES (?, ?, ?, 'deferred', ?, ?, ?, 'out', 0, NULL, 0)", rcpts)
            con.executemany(
                "INSERT INTO events(message_id, recipient_id, at, upstream, relay,"
                " status, reply) VALUES (?, ?, ?, 'out', ?, 'deferred', ?)", events)
            msgs.clear()
            rcpts.clear()
            events.clear()

        for i in range(count):
            qid = "%012X" % ids[i]
            mid, rid = first + i, rfirst + i
            dom = DOMAINS[i % len(DOMAINS)] if i % 5 else "d%d.example" % rnd.randrange(5000)
            rcpt = "user%d@%s" % (rnd.randrange(10**7), dom)
            attempts = rnd.randint(1, 3)
            received = now - rnd.randint(300, 12 * 3600)
            reply = REPLIES[rnd.randrange(len(REPLIES))]
            data = body(qid, rcpt, parts, rnd)
            msgs.append((mid, qid, sender, received, len(data), data))
            rcpts.append((rid, mid, rcpt, attempts, now + rnd.randint(3600, 24 * 3600), reply))
            relay = RELAY % (dom, rnd.randrange(1, 255))
            for a in range(attempts if with_events else 0):
                events.append((mid, rid, received + 60 * (a + 1) * (a + 1), relay, reply))
            if len(msgs) == batch:
                flush()
        flush()
        con.execute("COMMIT")
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            die(f"{db}: could not put the file back in WAL mode ({mode})")
    except sqlite3.Error as e:
        die(f"{db}: {e}")
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-dir", required=True, help="outpostd's state_dir")
    ap.add_argument("--config", required=True, help="outpostd config (state_dir = DIR)")
    ap.add_argument("-n", type=int, required=True, metavar="COUNT",
                    help="deferred messages to add")
    ap.add_argument("--outpostd", help="outpostd binary (default $OUTPOSTD, "
                    "then ../outpostd next to this script, then PATH)")
    ap.add_argument("--seed", type=int, default=8, help="random seed (default 8)")
    ap.add_argument("--events", action="store_true",
                    help="also an events row per past attempt (the history 'queue show'"
                    " prints; slower: about 2 more rows per message)")
    a = ap.parse_args()
    if a.n < 0:
        die("-n must be 0 or more")
    state_dir = Path(a.state_dir)
    conf = Path(a.config)
    if not state_dir.is_dir():
        die(f"{state_dir}: not a directory")
    if not conf.is_file():
        die(f"{conf}: no such config file")
    sd = conf_state_dir(conf)
    if sd is None or Path(sd).resolve() != state_dir.resolve():
        die(f"{conf}: [server] state_dir is {sd!r}, not {str(state_dir)!r}")
    if daemon_running(state_dir):
        die(f"outpostd is running on {state_dir}; stop it first")
    db = state_dir / "queue.db"
    if not has_schema(db):
        create_schema(find_outpostd(a.outpostd), conf, state_dir)
    if a.n == 0:
        return 0
    t0 = time.monotonic()
    fill(db, a.n, a.seed, a.events)
    print(f"bench_fill: {a.n} deferred messages in {db} ({time.monotonic() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
