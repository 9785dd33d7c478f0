"""Bulk mail (issue 10), black box: a 150-recipient newsletter leaves as
150 messages of one recipient each, every copy with its own one-click
unsubscribe token (RFC 8058), DKIM-signed with List-Unsubscribe and
List-Unsubscribe-Post signed and over-signed (dkimpy verifies every copy
against keygen's TXT record), the token checked in Python with the key in
state_dir and recorded in the ledger; the sender's own List-Unsubscribe is
left alone; transactional mail is untouched; the volume rule; bulk nobody
can unsubscribe from is warned about (log, status, metrics) or refused;
forwarded list mail is bulk but never split; the users-file option bulk;
a daily limit of the upstream holds the copies like any other messages.
A failed commit leaving nothing behind is test_store's (test_batch)."""
import base64
import hashlib
import hmac
import re
import sqlite3
import time
import urllib.request

import dkim
import dkim.util
import pytest

from conftest import (ALICE_PW, dot_stuff, free_port, outpostctl_passwd, queue_id,
                      wait_until)
from test_dkim import make_key, txt_dnsfunc
from test_status import status

ALICE = "alice@example.com"
URL = "https://lists.example.com"


@pytest.fixture(scope="module")
def key(tmp_path_factory, binaries, tls_files, users_file):
    """An example.com DKIM key made with the real outpostctl dkim keygen."""
    from conftest import default_sections, render_config
    d = tmp_path_factory.mktemp("bulkkey")
    (d / "state").mkdir()
    conf = d / "outpost.conf"
    conf.write_text(render_config(default_sections(d, free_port(), tls_files, users_file)))
    return make_key(conf, d / "keys", "example.com", "b2026")


def bulk_config(key, up, unsubscribe="yes", **server):
    srv = {"max_recipients": "200"}
    srv.update(server)
    return {
        "server": srv,
        "unsubscribe": {"listen": f"127.0.0.1:{free_port()}", "url": URL},
        "upstream main": up.upstream_section(max_connections="4"),
        "domain example.com": {"upstream": "main", "dkim_key": key.conf(),
                               "unsubscribe": unsubscribe},
    }


def message(subject="News", extra="", body="Hello subscriber.\r\n"):
    return (f"From: Alice <{ALICE}>\r\nTo: undisclosed-recipients:;\r\n"
            f"Subject: {subject}\r\n{extra}\r\n{body}").encode()


def send(d, client_factory, tls_ctx, data, rcpts, user="alice", password=ALICE_PW,
         mail_from=ALICE):
    """One transaction; returns (reply to the final dot, seconds from the
    final dot to that reply)."""
    c = client_factory(d.port)
    c.login(tls_ctx, user, password)
    assert c.cmd(f"MAIL FROM:<{mail_from}>").code == 250
    for r in rcpts:
        rep = c.cmd(f"RCPT TO:<{r}>")
        assert rep.code == 250, rep
    assert c.cmd("DATA").code == 354
    t0 = time.monotonic()
    c.send(dot_stuff(data))
    reply = c.reply(timeout=30)
    took = time.monotonic() - t0
    c.cmd("QUIT")
    return reply, took


def header(raw, name):
    """Unfolded values of header field name in raw (bytes) -> [str]."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    out = []
    for m in re.finditer(rf"^{name}:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head,
                         re.M | re.I):
        out.append(re.sub(r"\r\n[ \t]+", " ", m.group(1)).strip())
    return out


def token_ok(keybytes, token, sender, rcpt, lst):
    """unsub_token's format, recomputed independently."""
    raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    assert len(raw) == 16
    expiry = raw[:4]
    msg = (b"outpost-unsubscribe-v1\0" + sender.lower().encode() + b"\0" +
           rcpt.lower().encode() + b"\0" + lst.encode() + b"\0" + expiry)
    mac = hmac.new(keybytes, msg, hashlib.sha256).digest()
    return hmac.compare_digest(mac[:12], raw[4:]), int.from_bytes(expiry, "big")


def metric(port, line_start):
    """The value of the metrics line starting with line_start."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {line_start} in /metrics")


def db_rows(d, sql):
    db = sqlite3.connect(f"file:{d.state_dir / 'queue.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_150_recipients_become_150_signed_copies(daemon_factory, upstream_factory,
                                                client_factory, tls_ctx, key):
    up = upstream_factory(tls=False, auth=False)
    mport = free_port()
    d = daemon_factory(bulk_config(key, up, metrics_listen=f"127.0.0.1:{mport}"))
    rcpts = [f"sub{i:03d}@example.net" for i in range(150)]
    reply, took = send(d, client_factory, tls_ctx,
                       message(extra="Precedence: bulk\r\n"), rcpts)
    assert reply.code == 250, reply
    qid = queue_id(reply)
    # Bulk by its header: the split is certain in the pool, so the
    # original, which never leaves, is not signed: one signature a copy.
    assert metric(mport, 'outpost_dkim_signatures_total{algorithm="rsa-sha256"}') == 150
    print(f"150-recipient split: final dot to 250 in {took * 1000:.0f} ms")
    msgs = up.wait_messages(150, timeout=60)
    time.sleep(0.5)
    msgs = up.messages()
    assert len(msgs) == 150, f"{len(msgs)} transactions at the upstream"
    assert all(len(m.rcpt_tos) == 1 for m in msgs), "one recipient per copy"
    assert sorted(m.rcpt_tos[0] for m in msgs) == rcpts
    keybytes = (d.state_dir / "unsubscribe.key").read_bytes()
    dnsfunc = txt_dnsfunc({key.name: key.txt})
    tokens = set()
    now = time.time()
    for m in msgs:
        raw, rcpt = m.content, m.rcpt_tos[0]
        lu = header(raw, "List-Unsubscribe")
        assert len(lu) == 1, lu
        mt = re.fullmatch(rf"<{re.escape(URL)}/u/([a-z2-7]{{26}})>, "
                          r"<mailto:unsubscribe\+([a-z2-7]{26})@example\.com>", lu[0])
        assert mt, lu[0]
        assert mt.group(1) == mt.group(2), "one token in both forms"
        tok = mt.group(1)
        ok, expiry = token_ok(keybytes, tok, ALICE, rcpt, "example.com")
        assert ok, f"the token of {rcpt} does not verify"
        assert now + 364 * 86400 < expiry < now + 366 * 86400, "token_lifetime 365d"
        tokens.add(tok)
        assert header(raw, "List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
        assert header(raw, "Precedence") == ["bulk"], "the sender's Precedence kept, once"
        sigs = [dkim.util.parse_tag_value(v) for k, v in dkim.DKIM(raw).headers
                if k.lower() == b"dkim-signature"]
        assert len(sigs) == 1
        assert dkim.DKIM(raw).verify(idx=0, dnsfunc=dnsfunc), f"copy to {rcpt}"
        h = [x.strip().lower() for x in sigs[0][b"h"].decode().split(":")]
        assert h.count("list-unsubscribe") >= 2, h
        assert h.count("list-unsubscribe-post") >= 2, h
    assert len(tokens) == 150, "each copy its own token"
    rows = db_rows(d, "SELECT token, sender, rcpt, list FROM unsub_tokens")
    assert len(rows) == 150
    assert {r[0] for r in rows} == tokens
    assert {r[2] for r in rows} == set(rcpts)
    log = d.log()
    assert f"{qid}: bulk (reason: precedence), unsubscribe: one-click per recipient" in log
    m = re.search(rf"{qid}: split into 150 copies for one-click unsubscribe:"
                  r"((?: [0-9A-F]{12})+) \.\.\.", log)
    assert m, log[-3000:]
    first = m.group(1).split()
    assert len(first) == 8
    for cq in first:
        assert re.search(rf"{cq}: from=<{ALICE}>, size=\d+, nrcpt=1,", log)
    assert len(re.findall(r": from=<alice@example.com>, size=\d+, nrcpt=1,", log)) == 150
    # The ledger and queue.db agree: 150 messages of one recipient.
    assert db_rows(d, "SELECT count(*) FROM messages")[0][0] == 150
    assert d.sanitizer_reports() == []


def test_sender_own_list_unsubscribe_is_left_alone(daemon_factory, upstream_factory,
                                                   client_factory, tls_ctx, key):
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory(bulk_config(key, up))
    own = ("List-Unsubscribe: <https://news.example.com/unsub?u=1>\r\n"
           "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    data = message(extra=own)
    rcpts = [f"r{i}@example.net" for i in range(3)]
    reply, _ = send(d, client_factory, tls_ctx, data, rcpts)
    assert reply.code == 250, reply
    qid = queue_id(reply)
    msgs = up.wait_messages(1)
    time.sleep(1)
    msgs = up.messages()
    assert len(msgs) == 1 and sorted(msgs[0].rcpt_tos) == rcpts, "one message, not split"
    raw = msgs[0].content
    assert header(raw, "List-Unsubscribe") == ["<https://news.example.com/unsub?u=1>"]
    assert header(raw, "Precedence") == [], "nothing added"
    # The headers as sent, below our signature and Received:
    assert data.split(b"\r\n\r\n")[0] in raw
    d.wait_log(rf"{qid}: bulk \(reason: list-header\), unsubscribe: sender's own")


def test_transactional_mail_is_untouched(daemon_factory, upstream_factory, client_factory,
                                        tls_ctx, key):
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory(bulk_config(key, up))
    data = message(subject="Your invoice", body="Invoice 42 attached.\r\n")
    reply, _ = send(d, client_factory, tls_ctx, data, ["bob@example.net", "eve@example.net"])
    assert reply.code == 250
    qid = queue_id(reply)
    msgs = up.wait_messages(1)
    time.sleep(1)
    assert len(up.messages()) == 1 and len(msgs[0].rcpt_tos) == 2
    raw = msgs[0].content
    for h in ("List-Unsubscribe", "List-Unsubscribe-Post", "Precedence"):
        assert header(raw, h) == [], h
    assert f"{qid}: bulk" not in d.log()
    assert "split into" not in d.log()


def test_volume_rule(daemon_factory, upstream_factory, client_factory, tls_ctx, key):
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory(bulk_config(key, up, bulk_threshold="5"))
    body = "Same body every time.\r\n"
    r1, _ = send(d, client_factory, tls_ctx, message(subject="a", body=body),
                 [f"a{i}@example.net" for i in range(3)])
    r2, _ = send(d, client_factory, tls_ctx, message(subject="b", body=body),
                 [f"b{i}@example.net" for i in range(3)])
    r3, _ = send(d, client_factory, tls_ctx, message(subject="c", body="Another.\r\n"),
                 [f"c{i}@example.net" for i in range(3)])
    assert r1.code == r2.code == r3.code == 250
    q1, q2, q3 = queue_id(r1), queue_id(r2), queue_id(r3)
    d.wait_log(rf"{q2}: bulk \(reason: volume 6 recipients/24h\), unsubscribe: "
               r"one-click per recipient")
    d.wait_log(rf"{q2}: split into 3 copies")
    up.wait_messages(1 + 3 + 1)
    time.sleep(1)
    assert len(up.messages()) == 5, "first and third as one message each, second split"
    log = d.log()
    assert f"{q1}: bulk" not in log, "3 recipients are not more than 5"
    assert f"{q3}: bulk" not in log, "a different body counts apart"


def test_bulk_without_unsubscribe_warns(daemon_factory, upstream_factory, client_factory,
                                        tls_ctx, key):
    up = upstream_factory(tls=False, auth=False)
    mport = free_port()
    d = daemon_factory(bulk_config(key, up, unsubscribe="no",
                                   metrics_listen=f"127.0.0.1:{mport}"))
    reply, _ = send(d, client_factory, tls_ctx, message(extra="Precedence: list\r\n"),
                    ["x@example.net", "y@example.net"])
    assert reply.code == 250, reply
    qid = queue_id(reply)
    up.wait_messages(1)
    assert len(up.messages()[0].rcpt_tos) == 2, "relayed as it is"
    d.wait_log(rf"{qid}: bulk \(reason: precedence\), unsubscribe: none")
    d.wait_log(rf"{qid}: warning: bulk mail from <{ALICE}> without List-Unsubscribe; "
               r"Gmail and Yahoo require one-click unsubscribe for bulk senders "
               r"\(set \[domain\] unsubscribe = yes\)")
    text = status(d, json_out=False)
    assert f"bulk without unsubscribe: 1 message since start, last from <{ALICE}>" in text
    assert status(d)["bulk_without_unsubscribe"] == {"count": 1, "last_sender": ALICE}
    assert metric(mport, 'outpost_messages_bulk_total{unsubscribe="none"}') == 1
    assert metric(mport, 'outpost_messages_bulk_total{unsubscribe="one-click"}') == 0


def test_bulk_without_unsubscribe_rejected(daemon_factory, upstream_factory,
                                           client_factory, tls_ctx, key):
    up = upstream_factory(tls=False, auth=False)
    mport = free_port()
    d = daemon_factory(bulk_config(key, up, unsubscribe="no", bulk_without_unsubscribe="reject",
                                   metrics_listen=f"127.0.0.1:{mport}"))
    reply, _ = send(d, client_factory, tls_ctx, message(extra="List-Id: <news.example.com>\r\n"),
                    ["x@example.net"])
    assert reply.code == 550, reply
    assert reply.lines[-1] == ("550 5.7.1 bulk mail without one-click unsubscribe "
                               "(List-Unsubscribe); set [domain example.com] unsubscribe = "
                               "yes or add the header"), reply.lines
    time.sleep(1)
    assert up.messages() == []
    assert db_rows(d, "SELECT count(*) FROM messages")[0][0] == 0
    assert metric(mport, 'outpost_messages_rejected_total{reason="bulk_without_unsubscribe"}') == 1
    assert metric(mport, 'outpost_messages_bulk_total{unsubscribe="none"}') == 0, \
        "refused mail is not counted as accepted bulk"


def test_account_bulk_option_and_daily_limit_per_copy(daemon_factory, upstream_factory,
                                                      client_factory, tls_ctx, key,
                                                      tmp_path):
    """The users-file option bulk makes all of an account's mail bulk; the
    copies go through the delivery engine one by one, so the upstream's
    daily_limit = 100 lets 100 through and holds 50."""
    up = upstream_factory(tls=False, auth=False)
    cfg = bulk_config(key, up)
    cfg["upstream main"]["daily_limit"] = "100"
    d = daemon_factory(cfg, start=False)
    users = tmp_path / "bulkusers"
    users.write_text("")
    line = outpostctl_passwd(d.conf_path, "news", "news-Secret-9", ALICE)
    users.write_text(line + ":bulk\n")
    users.chmod(0o600)
    d.sections["server"]["users_file"] = str(users)
    d.write_config()
    d.give()
    d.start()
    rcpts = [f"n{i:03d}@example.net" for i in range(150)]
    reply, _ = send(d, client_factory, tls_ctx, message(), rcpts, user="news",
                    password="news-Secret-9")
    assert reply.code == 250, reply
    qid = queue_id(reply)
    d.wait_log(rf"{qid}: bulk \(reason: account\), unsubscribe: one-click per recipient")
    up.wait_messages(100, timeout=60)
    time.sleep(2.5)
    assert len(up.messages()) == 100, "daily_limit = 100 holds the rest"
    st = dict(db_rows(d, "SELECT status, count(*) FROM recipients GROUP BY status"))
    assert st == {"sent": 100, "queued": 50}, st
    assert "status=bounced" not in d.log()
    for m in up.messages():
        assert header(m.content, "Precedence") == ["bulk"], "added when missing"


def test_forwarded_list_mail_is_bulk_but_untouched(daemon_factory, upstream_factory,
                                                   client_factory, tls_ctx, key):
    """A redirect (Resent-From: alice) of list mail from outside: bulk by
    its List-Id, never split or given a link, no warning (its sender's
    list is not ours to fix)."""
    up = upstream_factory(tls=False, auth=False)
    cfg = bulk_config(key, up, bulk_without_unsubscribe="reject")
    cfg["domain example.com"]["arc"] = "never"
    d = daemon_factory(cfg)
    data = (f"Resent-From: {ALICE}\r\nFrom: List <list@origin.example>\r\n"
            "To: members@origin.example\r\nSubject: digest\r\n"
            "List-Id: <members.origin.example>\r\n\r\nDigest.\r\n").encode()
    rcpts = ["p@example.net", "q@example.net"]
    reply, _ = send(d, client_factory, tls_ctx, data, rcpts)
    assert reply.code == 250, reply
    qid = queue_id(reply)
    d.wait_log(rf"{qid}: bulk \(reason: list-header\), unsubscribe: none")
    msgs = up.wait_messages(1)
    time.sleep(1)
    assert len(up.messages()) == 1 and sorted(msgs[0].rcpt_tos) == rcpts, "not split"
    assert header(msgs[0].content, "List-Unsubscribe") == []
    assert header(msgs[0].content, "Precedence") == []
    assert f"{qid}: warning: bulk" not in d.log()
    assert "split into" not in d.log()


def test_mailing_unsubscribe_click_stops_the_next_mailing(daemon_factory, upstream_factory,
                                                           client_factory, tls_ctx, key):
    """The issue's end: a mailing to 150 recipients arrives with working,
    verifiable one-click unsubscribe on every copy, and clicking it (a
    POST, as Gmail's button does) stops the next mailing to that address
    and only that one."""
    up = upstream_factory(tls=False, auth=False)
    cfg = bulk_config(key, up)
    d = daemon_factory(config=cfg)
    listen = cfg["unsubscribe"]["listen"]
    rcpts = [f"reader{i:03d}@example.net" for i in range(150)]
    newsletter = message(subject="November news", extra="Precedence: bulk\r\n")
    reply, _ = send(d, client_factory, tls_ctx, newsletter, rcpts)
    assert reply.code == 250, reply
    got = up.wait_messages(150, timeout=60)
    by_rcpt = {m.rcpt_tos[0]: m for m in got}
    assert sorted(by_rcpt) == rcpts

    # Every copy's link is its own and verifies (DKIM covers it).
    dnsfunc = txt_dnsfunc({key.name: key.txt})
    for r, m in by_rcpt.items():
        assert dkim.DKIM(m.content).verify(idx=0, dnsfunc=dnsfunc), r
    victim = "reader042@example.net"
    lu = header(by_rcpt[victim].content, "List-Unsubscribe")[0]
    link = re.search(r"<(https://[^>]+)>", lu).group(1)
    assert link.startswith(URL + "/u/")
    local = link.replace(URL, f"http://{listen}", 1)

    # A link scanner's GET changes nothing; the one-click POST does.
    with urllib.request.urlopen(local, timeout=10) as r:
        assert r.status == 200
    req = urllib.request.Request(local, data=b"List-Unsubscribe=One-Click", method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    d.wait_log(rf"unsubscribe: <{re.escape(victim)}> from <{re.escape(ALICE)}>")

    # The next mailing: the unsubscribed reader is refused at RCPT, the
    # other 149 are taken, and nothing reaches the reader.
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    refused = []
    for r in rcpts:
        rep = c.cmd(f"RCPT TO:<{r}>")
        if rep.code != 250:
            refused.append((r, rep))
    assert len(refused) == 1 and refused[0][0] == victim, refused
    rep = refused[0][1]
    assert rep.code == 550 and rep.enh == "5.7.1" and "unsubscribed on" in rep.text, rep
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(message(subject="December news", extra="Precedence: bulk\r\n")))
    assert c.reply(timeout=30).code == 250
    c.cmd("QUIT")
    got = up.wait_messages(150 + 149, timeout=60)
    december = [m for m in got if b"December news" in m.content]
    assert len(december) == 149
    assert victim not in {m.rcpt_tos[0] for m in december}
