"""One-click unsubscribe, the receiving side (issue 10): the RFC 8058
endpoint outpost serves on [unsubscribe] listen, the per-sender
unsubscribes it records, the 550 5.7.1 at RCPT that follows, and
outpostctl's listing, CSV export and removal.

The sending side (which records each token in the ledger) is not needed:
the tests mint tokens in Python with the algorithm of unsub_token.c (the
fixed vector below is also checked in tests/unit/test_unsub_token.c) and
insert their ledger rows into queue.db while the daemon runs (WAL)."""
import base64
import csv
import hashlib
import hmac
import http.client
import io
import json
import socket
import sqlite3
import struct
import subprocess
import time

from conftest import ALICE_PW, OUTPOSTCTL, can_connect, free_port, wait_until

NEWS = "news@example.org"
BILLING = "billing@example.org"
BOB = "bob@example.net"
CAROL = "carol@example.net"
BODY = b"List-Unsubscribe=One-Click"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def mint(key, sender, rcpt, lst, expires):
    exp = struct.pack(">I", expires)
    msg = (b"outpost-unsubscribe-v1\0" + sender.lower().encode() + b"\0" +
           rcpt.lower().encode() + b"\0" + lst.encode() + b"\0" + exp)
    mac = hmac.new(key, msg, hashlib.sha256).digest()
    return base64.b32encode(exp + mac[:12]).decode().rstrip("=").lower()


def test_python_mint_matches_the_c_vector():
    assert mint(bytes(range(32)), "News@Example.com", "Bob@Example.net", "news",
                1900000000) == "oe73gac5u5dlgtwru7emfhp324"


def ledger_add(d, token, sender, rcpt, lst, expires):
    db = sqlite3.connect(str(d.state_dir / "queue.db"), timeout=10)
    with db:
        db.execute("INSERT INTO unsub_tokens(token, sender, rcpt, list, expires, created)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   (token, sender.lower(), rcpt.lower(), lst, expires, int(time.time())))
    db.close()


def unsub_rows(d):
    db = sqlite3.connect(str(d.state_dir / "queue.db"), timeout=10)
    rows = db.execute("SELECT sender, rcpt, list, at FROM unsubscribes ORDER BY rcpt").fetchall()
    db.close()
    return rows


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def rcpt(client_factory, tls_ctx, d, sender, to):
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{sender}>").code == 250
    r = c.cmd(f"RCPT TO:<{to}>")
    c.cmd("QUIT")
    return r


def ctl(d, *args, code=0):
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "suppress", *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == code, f"outpostctl suppress {args}: {p.returncode} {p.stderr}"
    return p.stdout


def start(daemon_factory, extra=None):
    port = free_port()
    d = daemon_factory({"unsubscribe": {"listen": f"127.0.0.1:{port}",
                                        "url": "https://lists.example.com"}, **(extra or {})})
    keyfile = d.state_dir / "unsubscribe.key"
    wait_until(keyfile.exists, 5, "the unsubscribe key")
    assert keyfile.stat().st_mode & 0o077 == 0
    return d, port, keyfile.read_bytes()


def test_one_click_unsubscribe(daemon_factory, client_factory, tls_ctx):
    mport = free_port()
    d, port, key = start(daemon_factory, {"server": {"metrics_listen": f"127.0.0.1:{mport}"}})
    now = int(time.time())
    tok = mint(key, NEWS, BOB, "news", now + 3600)
    ledger_add(d, tok, NEWS, BOB, "news", now + 3600)

    # GET: the page with the button; nobody is unsubscribed
    st, h, page = request(port, "GET", f"/u/{tok}")
    assert st == 200, page
    assert h["content-type"].startswith("text/html")
    assert h["content-security-policy"] == "default-src 'none'; form-action 'self'"
    assert h["cache-control"] == "no-store" and h["x-robots-tag"] == "noindex"
    text = page.decode()
    assert BOB in text and NEWS in text and "<script" not in text.lower()
    assert '<form method="post">' in text
    assert 'name="List-Unsubscribe" value="One-Click"' in text
    st, h, body = request(port, "HEAD", f"/u/{tok}")
    assert st == 200 and body == b""
    # upper case (a mail client may change it) is the same token
    assert request(port, "GET", f"/u/{tok.upper()}")[0] == 200
    assert rcpt(client_factory, tls_ctx, d, NEWS, BOB).code == 250
    assert unsub_rows(d) == []

    # POST: unsubscribed, from this sender only
    mark = d.mark()
    st, h, page = request(port, "POST", f"/u/{tok}", BODY, FORM)
    assert st == 200, page
    assert b"You are unsubscribed" in page and BOB.encode() in page
    d.wait_log(rf"unsubscribe: <{BOB}> from <{NEWS}> \(list news\) via one-click",
               since=mark)
    r = rcpt(client_factory, tls_ctx, d, NEWS, "Bob@Example.NET")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert r.code == 550, r
    assert str(r).startswith(f"550 5.7.1 <Bob@Example.NET>: recipient unsubscribed on {today}")
    assert rcpt(client_factory, tls_ctx, d, BILLING, BOB).code == 250
    assert rcpt(client_factory, tls_ctx, d, NEWS, CAROL).code == 250
    metrics = request(mport, "GET", "/metrics")[2].decode()
    assert 'outpost_messages_rejected_total{reason="unsubscribed"} 1' in metrics

    # idempotent
    st, h, page = request(port, "POST", f"/u/{tok}", BODY, FORM)
    assert st == 200
    rows = unsub_rows(d)
    assert len(rows) == 1 and rows[0][:3] == (NEWS, BOB, "news"), rows

    # survives a restart
    d.restart()
    assert rcpt(client_factory, tls_ctx, d, NEWS, BOB).code == 550
    assert rcpt(client_factory, tls_ctx, d, BILLING, BOB).code == 250
    assert "unsubscribes" in d.log()

    # multipart/form-data (RFC 8058 allows it) for carol
    tok2 = mint(key, NEWS, CAROL, "news", now + 3600)
    ledger_add(d, tok2, NEWS, CAROL, "news", now + 3600)
    mp = (b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
          b"One-Click\r\n--XyZ--\r\n")
    st, h, page = request(port, "POST", f"/u/{tok2}", mp,
                          {"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert st == 200, page
    assert rcpt(client_factory, tls_ctx, d, NEWS, CAROL).code == 550
    assert len(unsub_rows(d)) == 2


def test_bad_tokens_get_the_same_400(daemon_factory, client_factory, tls_ctx):
    d, port, key = start(daemon_factory)
    now = int(time.time())
    good = mint(key, NEWS, BOB, "news", now + 3600)
    ledger_add(d, good, NEWS, BOB, "news", now + 3600)
    forged = good[:10] + ("a" if good[10] != "a" else "b") + good[11:]
    ledger_add(d, forged, NEWS, BOB, "news", now + 3600)
    # made for carol, but its ledger row says bob
    other = mint(key, NEWS, CAROL, "news", now + 3600)
    ledger_add(d, other, NEWS, BOB, "news", now + 3600)
    expired = mint(key, NEWS, BOB, "news", now - 10)
    ledger_add(d, expired, NEWS, BOB, "news", now - 10)
    unknown = mint(key, NEWS, BOB, "offers", now + 3600)
    wrongkey = mint(b"\x01" * 32, NEWS, BOB, "news", now + 3600)
    ledger_add(d, wrongkey, NEWS, BOB, "news", now + 3600)

    bodies = set()
    for path, body, hdrs in [
            (f"/u/{forged}", BODY, FORM),
            (f"/u/{other}", BODY, FORM),
            (f"/u/{expired}", BODY, FORM),
            (f"/u/{unknown}", BODY, FORM),
            (f"/u/{wrongkey}", BODY, FORM),
            (f"/u/{good}", None, FORM),                      # no body
            (f"/u/{good}", b"List-Unsubscribe=Yes", FORM),   # wrong body
            (f"/u/{good}", BODY, {"Content-Type": "text/plain"}),
            ("/u/short", BODY, FORM),
            ("/u/" + "1" * 26, BODY, FORM),
            (f"/u/{good}x", BODY, FORM),
            ("/u/", BODY, FORM),
            ("/u/%3Cscript%3E", BODY, FORM)]:
        st, h, page = request(port, "POST", path, body, hdrs)
        assert st == 400, (path, body, st, page)
        bodies.add(page)
    for t in (forged, other, expired, unknown, wrongkey):
        st, h, page = request(port, "GET", f"/u/{t}")
        assert st == 400, t
        bodies.add(page)
    assert len(bodies) == 1, bodies
    assert b"not valid" in bodies.pop()
    assert unsub_rows(d) == []
    assert rcpt(client_factory, tls_ctx, d, NEWS, BOB).code == 250

    assert request(port, "GET", "/metrics")[0] == 404
    assert request(port, "GET", "/")[0] == 404
    st, h, _ = request(port, "PUT", f"/u/{good}", BODY, FORM)
    assert st == 405 and "POST" in h["allow"]
    # bounded: a body over 1 KiB is refused
    st, _, _ = request(port, "POST", f"/u/{good}", BODY + b"&x=" + b"y" * 2000, FORM)
    assert st in (400, 413)
    assert unsub_rows(d) == []


def test_page_escapes_what_it_shows(daemon_factory):
    d, port, key = start(daemon_factory)
    now = int(time.time())
    lst = "<script>alert(1)</script>&\""
    tok = mint(key, NEWS, BOB, lst, now + 3600)
    ledger_add(d, tok, NEWS, BOB, lst, now + 3600)
    st, h, page = request(port, "GET", f"/u/{tok}")
    assert st == 200
    assert b"<script>" not in page
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;" in page


def test_outpostctl_lists_exports_and_removes(daemon_factory, client_factory, tls_ctx):
    d, port, key = start(daemon_factory)
    now = int(time.time())
    tok = mint(key, NEWS, BOB, "news, weekly", now + 3600)
    ledger_add(d, tok, NEWS, BOB, "news, weekly", now + 3600)
    assert request(port, "POST", f"/u/{tok}", BODY, FORM)[0] == 200
    ctl(d, "add", "gone@example.net")

    out = ctl(d, "list", "--reason", "unsubscribed")
    assert BOB in out and NEWS in out and "news, weekly" in out
    assert "gone@example.net" not in out
    everything = ctl(d, "list")
    assert BOB in everything and "gone@example.net" in everything
    entries = json.loads(ctl(d, "list", "--json"))
    unsub = [e for e in entries if e["reason"] == "unsubscribed"]
    assert len(unsub) == 1 and unsub[0]["address"] == BOB
    assert unsub[0]["sender"] == NEWS and unsub[0]["list"] == "news, weekly"
    assert [e["address"] for e in json.loads(ctl(d, "list", "--reason", "manual", "--json"))] \
        == ["gone@example.net"]

    rows = list(csv.reader(io.StringIO(ctl(d, "export", "--csv"))))
    assert rows[0] == ["address", "sender", "list", "reason", "since"]
    by_addr = {r[0]: r for r in rows[1:]}
    assert by_addr[BOB][1:4] == [NEWS, "news, weekly", "unsubscribed"]
    assert by_addr[BOB][4].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
    assert by_addr["gone@example.net"][1:4] == ["", "", "manual"]
    only = list(csv.reader(io.StringIO(ctl(d, "export", "--csv", "--reason",
                                           "unsubscribed"))))
    assert [r[0] for r in only[1:]] == [BOB]

    assert rcpt(client_factory, tls_ctx, d, NEWS, BOB).code == 550
    out = ctl(d, "remove", BOB, "--sender", "News@Example.org")
    assert "removed" in out
    wait_until(lambda: rcpt(client_factory, tls_ctx, d, NEWS, BOB).code == 250, 10,
               "the daemon re-reads the unsubscribes")
    assert unsub_rows(d) == []
    assert "was not" in ctl(d, "remove", BOB, "--sender", NEWS)


def test_mailto_unsubscribe(daemon_factory, client_factory, tls_ctx):
    """RCPT to unsubscribe+TOKEN@DOMAIN of a [domain] with unsubscribe =
    yes is recorded, not relayed; a message with no other recipient is
    accepted and discarded."""
    port = free_port()
    d = daemon_factory({"unsubscribe": {"listen": f"127.0.0.1:{port}",
                                        "url": "https://lists.example.com"},
                        "domain example.com": {"unsubscribe": "yes"}})
    keyfile = d.state_dir / "unsubscribe.key"
    wait_until(keyfile.exists, 5, "the unsubscribe key")
    key = keyfile.read_bytes()
    now = int(time.time())
    tok = mint(key, NEWS, BOB, "news", now + 3600)
    ledger_add(d, tok, NEWS, BOB, "news", now + 3600)
    tok2 = mint(key, NEWS, CAROL, "news", now + 3600)
    ledger_add(d, tok2, NEWS, CAROL, "news", now + 3600)

    mark = d.mark()
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd("MAIL FROM:<alice@example.com>").code == 250
    bad = tok[:5] + ("a" if tok[5] != "a" else "b") + tok[6:]
    r = c.cmd(f"RCPT TO:<unsubscribe+{bad}@example.com>")
    assert str(r).startswith("550 5.1.1 unknown unsubscribe address"), r
    assert str(c.cmd("RCPT TO:<unsubscribe+nothing@example.com>")).startswith("550 5.1.1")
    r = c.cmd(f"RCPT TO:<Unsubscribe+{tok.upper()}@Example.COM>")
    assert str(r).startswith("250 2.1.5 unsubscribe recorded"), r
    assert c.cmd("DATA").code == 354
    c.send(b"From: bob@example.net\r\nTo: unsubscribe@example.com\r\nSubject: unsubscribe\r\n"
           b"\r\nunsubscribe\r\n.\r\n")
    r = c.reply()
    assert r.code == 250 and "discarded" in str(r), r
    c.cmd("QUIT")
    d.wait_log(rf"unsubscribe: <{BOB}> from <{NEWS}> \(list news\) via mailto", since=mark)
    d.assert_nothing_queued(since=mark)
    assert rcpt(client_factory, tls_ctx, d, NEWS, BOB).code == 550
    assert rcpt(client_factory, tls_ctx, d, BILLING, BOB).code == 250

    # beside a real recipient: that one gets the message, nobody else
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    r = c.mail_transaction("alice@example.com", [f"unsubscribe+{tok2}@example.com",
                                                  "dave@example.net"],
                           b"From: alice@example.com\r\nTo: dave@example.net\r\n"
                           b"Subject: x\r\n\r\nhello\r\n")
    assert r.code == 250 and "queued" in str(r), r
    c.cmd("QUIT")
    msgs = d.wait_maildir(1)
    assert len(msgs) == 1 and b"dave@example.net" in msgs[0]
    assert b"unsubscribe+" not in msgs[0]
    assert sorted(x[1] for x in unsub_rows(d)) == [BOB, CAROL]


def test_port_in_use_stops_the_start(daemon_factory):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        d = daemon_factory({"unsubscribe": {"listen": f"127.0.0.1:{port}",
                                            "url": "https://lists.example.com"}},
                           start=False)
        d.start(wait=False)
        assert d.proc.wait(timeout=20) != 0
        d.wait_log(rf"\[unsubscribe\] listen 127\.0\.0\.1:{port}: cannot listen:"
                   r" Address already in use", timeout=1)
        assert not can_connect("127.0.0.1", d.port), "the SMTP port opened anyway"
    finally:
        busy.close()


def test_listen_no_serves_nothing(daemon_factory, client_factory, tls_ctx):
    d = daemon_factory()
    assert "unsubscribe endpoint" not in d.log()
    assert not (d.state_dir / "unsubscribe.key").exists()
    assert rcpt(client_factory, tls_ctx, d, NEWS, BOB).code == 250


def test_hostile_requests(daemon_factory):
    """Oversized headers and paths, garbage and a silent client: refused or
    dropped, and the endpoint keeps answering."""
    d, port, key = start(daemon_factory)
    now = int(time.time())
    tok = mint(key, NEWS, BOB, "news", now + 3600)
    ledger_add(d, tok, NEWS, BOB, "news", now + 3600)

    def raw(data):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(data)
            return s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return b""
        finally:
            s.close()

    for data in (b"GET /u/" + tok.encode() + b" HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 +
                 b"\r\n\r\n",
                 b"GET /u/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64 + b"\r\n\r\n",
                 b"POST /u/" + tok.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 99999999\r\n\r\nList-Unsubscribe=One-Click"):
        answer = raw(data)
        assert answer == b"" or not answer.startswith(b"HTTP/1.1 200"), answer[:80]
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        st, _, page = request(port, "GET", f"/u/{tok}")
        assert st == 200 and BOB.encode() in page
    finally:
        idle.close()
    assert unsub_rows(d) == []
