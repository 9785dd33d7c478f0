"""
Relay to the upstream, black box: outpostd delivering to an aiosmtpd server
that requires STARTTLS and AUTH (as a provider's smarthost does), to a
plain one, and to the maildir upstream; retries, permanent failures, and
the queue surviving a restart and a kill -9.
"""

import base64
import re
import sqlite3

from conftest import (ALICE_PW, UPSTREAM_PASSWORD, UPSTREAM_USER, crlf, dot_stuff,
                      header_names, make_cert, queue_id, simple_message,
                      split_message, wait_until)

ALICE = "alice@example.com"


def relay_daemon(daemon_factory, up, **upstream_keys):
    return daemon_factory({"upstream main": up.upstream_section(**upstream_keys)})


def submit(daemon, client_factory, tls_ctx, rcpts=("bob@example.net",), data=None,
           mail_params=""):
    c = client_factory(daemon.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    r = c.cmd(f"MAIL FROM:<{ALICE}>{mail_params}")
    assert r.code == 250, r
    for rc in rcpts:
        r = c.cmd(f"RCPT TO:<{rc}>")
        assert r.code == 250, r
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(data if data is not None else simple_message()))
    qid = queue_id(c.reply())
    c.cmd("QUIT")
    return qid


def status_re(qid, rcpt, status):
    return (rf"{re.escape(qid)}: to=<{re.escape(rcpt)}>, relay=[^,]+, delay=[0-9.]+, "
            rf"dsn=\d\.\d+\.\d+, status={status}\b")


# ---------------------------------------------------------------------------
# Happy paths


def test_relay_starttls_auth_upstream(daemon_factory, upstream, client_factory, tls_ctx):
    d = relay_daemon(daemon_factory, upstream)
    body = (b"Plain body.\r\n.leading dot\r\n..two\r\n.\r\n"
            b"8bit: \xc3\xa9t\xc3\xa9 \xe2\x82\xac\r\nend\r\n")
    head = (b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n"
            b"Bcc: hidden-rcpt@example.net\r\nSubject: relayed\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n")
    qid = submit(d, client_factory, tls_ctx,
                 rcpts=("bob@example.net", "hidden-rcpt@example.net"),
                 data=head + b"\r\n" + body, mail_params=" BODY=8BITMIME")
    got = upstream.wait_messages(1)
    d.wait_log(status_re(qid, "bob@example.net", "sent"))
    d.wait_log(status_re(qid, "hidden-rcpt@example.net", "sent"))
    assert len(upstream.messages()) == 1, "one transaction for both recipients"
    m = got[0]
    assert m.mail_from == ALICE
    assert sorted(m.rcpt_tos) == ["bob@example.net", "hidden-rcpt@example.net"]
    assert m.tls, "the message went in clear"
    assert m.auth_login == UPSTREAM_USER.encode()
    assert any(o.upper() == "BODY=8BITMIME" for o in m.mail_options), m.mail_options
    headers, got_body = split_message(m.content)
    names = header_names(headers)
    assert names[0] == "received"
    assert "bcc" not in names and b"hidden-rcpt" not in m.content.split(b"\r\n\r\n")[0]
    assert "date" in names and "message-id" in names
    assert got_body == body
    # The log names the upstream and its reply.
    line = d.wait_log(status_re(qid, "bob@example.net", "sent")).group(0)
    assert re.search(rf"relay=\S*\[127\.0\.0\.1\]:{upstream.port}", line), line
    d.wait_log(rf"{re.escape(qid)}: to=<bob@example\.net>.*status=sent \(250 ")
    # No AUTH ever in clear, and the relay password is not in the log.
    assert all(tls for _, _, tls in upstream.auth_attempts)
    assert all(tls for _, tls in upstream.mail_attempts)
    token = base64.b64encode(f"\0{UPSTREAM_USER}\0{UPSTREAM_PASSWORD}".encode()).decode()
    log = d.log()
    assert token not in log
    assert not re.search(rf"(?<![\w.]){re.escape(UPSTREAM_PASSWORD)}(?!\w|\.)",
                         log.replace("upstream.secret", "")), "relay password in the log"


def test_relay_verified_with_ca_file(daemon_factory, upstream, client_factory, tls_ctx,
                                     tls_files):
    d = relay_daemon(daemon_factory, upstream, tls_verify="yes", ca_file=str(tls_files[0]),
                     tls_name="localhost")
    qid = submit(d, client_factory, tls_ctx)
    upstream.wait_messages(1)
    d.wait_log(status_re(qid, "bob@example.net", "sent"))


def test_relay_untrusted_certificate_defers(daemon_factory, upstream, client_factory,
                                            tls_ctx, tmp_path):
    other_ca, _ = make_cert(tmp_path / "other-ca", cn="other")
    d = relay_daemon(daemon_factory, upstream, tls_verify="yes", ca_file=str(other_ca),
                     tls_name="localhost")
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(status_re(qid, "bob@example.net", "deferred"))
    assert upstream.messages() == []
    assert upstream.auth_attempts == [] and upstream.mail_attempts == []


def test_relay_wrong_tls_name_defers(daemon_factory, upstream, client_factory, tls_ctx,
                                     tls_files):
    d = relay_daemon(daemon_factory, upstream, tls_verify="yes", ca_file=str(tls_files[0]),
                     tls_name="smtp.elsewhere.example")
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(status_re(qid, "bob@example.net", "deferred"))
    assert upstream.messages() == [] and upstream.auth_attempts == []


def test_relay_starttls_missing_defers_never_clear(daemon_factory, upstream_factory,
                                                   client_factory, tls_ctx):
    """tls = starttls but the server offers no STARTTLS: nothing in clear."""
    up = upstream_factory(tls=False, auth=False)
    d = relay_daemon(daemon_factory, up, tls="starttls", tls_verify="no")
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(status_re(qid, "bob@example.net", "deferred"))
    assert up.mail_attempts == [] and up.messages() == []


def test_relay_plain_upstream(daemon_factory, plain_upstream, client_factory, tls_ctx):
    d = relay_daemon(daemon_factory, plain_upstream)
    qid = submit(d, client_factory, tls_ctx, rcpts=("a@example.net", "b@example.net",
                                                     "c@example.net"))
    m = plain_upstream.wait_messages(1)[0]
    assert sorted(m.rcpt_tos) == ["a@example.net", "b@example.net", "c@example.net"]
    for r in m.rcpt_tos:
        d.wait_log(status_re(qid, r, "sent"))


def test_relay_implicit_tls_upstream(daemon_factory, upstream_factory, client_factory,
                                     tls_ctx):
    up = upstream_factory(tls=False, implicit=True, auth=True)
    d = relay_daemon(daemon_factory, up)
    qid = submit(d, client_factory, tls_ctx)
    m = up.wait_messages(1)[0]
    assert m.tls and m.auth_login == UPSTREAM_USER.encode()
    d.wait_log(status_re(qid, "bob@example.net", "sent"))


def test_relay_several_messages(daemon_factory, upstream, client_factory, tls_ctx):
    d = relay_daemon(daemon_factory, upstream)
    qids = [submit(d, client_factory, tls_ctx, data=simple_message(subject=f"n{i}"))
            for i in range(4)]
    upstream.wait_messages(4)
    for q in qids:
        d.wait_log(status_re(q, "bob@example.net", "sent"))
    subjects = sorted(re.search(rb"Subject: (n\d)", m.content).group(1)
                      for m in upstream.messages())
    assert subjects == [b"n0", b"n1", b"n2", b"n3"]


def test_relay_wrong_upstream_password_defers(daemon_factory, upstream, client_factory,
                                              tls_ctx, tmp_path):
    bad = tmp_path / "bad.secret"
    bad.write_text("not-the-password\n")
    bad.chmod(0o600)
    d = relay_daemon(daemon_factory, upstream, password_file=str(bad))
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(status_re(qid, "bob@example.net", "deferred"))
    assert upstream.messages() == []
    assert not re.search(rf"{re.escape(qid)}: to=<bob@example\.net>.*status=bounced", d.log())
    # The admin is told (C6): one alert, queued for postmaster from <>.
    d.wait_log(r"ALERT upstream-auth:main: upstream main refused our AUTH; its mail is "
               r"deferred, not bounced")
    d.wait_log(r"from=<>, size=\d+, nrcpt=1, origin=alert")


# ---------------------------------------------------------------------------
# Upstream answers: 4xx retried, 5xx final


def test_relay_rcpt_451_is_retried(daemon_factory, upstream, client_factory, tls_ctx):
    upstream.rcpt_replies["later@example.net"] = ["451 4.3.0 mailbox busy"]
    d = relay_daemon(daemon_factory, upstream)
    qid = submit(d, client_factory, tls_ctx, rcpts=("now@example.net", "later@example.net"))
    d.wait_log(status_re(qid, "later@example.net", "deferred") + r".*451")
    d.wait_log(status_re(qid, "now@example.net", "sent"))
    d.wait_log(status_re(qid, "later@example.net", "sent"), timeout=15)
    msgs = upstream.messages()
    got = sorted(r for m in msgs for r in m.rcpt_tos)
    assert got == ["later@example.net", "now@example.net"], "each recipient exactly once"


def test_relay_rcpt_550_is_final(daemon_factory, upstream, client_factory, tls_ctx):
    upstream.rcpt_replies["gone@example.net"] = "550 5.1.1 no such user"
    d = relay_daemon(daemon_factory, upstream)
    qid = submit(d, client_factory, tls_ctx, rcpts=("ok@example.net", "gone@example.net"))
    d.wait_log(status_re(qid, "gone@example.net", "bounced") + r" \(550 5\.1\.1")
    d.wait_log(status_re(qid, "ok@example.net", "sent"))
    # Past two retry intervals: no second attempt for the bounced address.
    mark = d.mark()
    try:
        d.wait_log(rf"{re.escape(qid)}: to=<gone@example\.net>", timeout=2.5, since=mark)
        retried = True
    except AssertionError:
        retried = False
    assert not retried, "a 5xx recipient was tried again"
    assert upstream.rcpt_attempts.count("gone@example.net") == 1


def test_relay_data_554_is_final(daemon_factory, upstream, client_factory, tls_ctx):
    upstream.data_replies["*"] = ["554 5.7.1 content rejected"]
    d = relay_daemon(daemon_factory, upstream)
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(status_re(qid, "bob@example.net", "bounced") + r" \(554 5\.7\.1")
    # Only the DSN to the sender (from <>) may follow, never the message.
    d.wait_log(rf"{re.escape(qid)}: sender non-delivery notification")
    assert all(m.mail_from in ("", "<>") and m.rcpt_tos == ["alice@example.com"]
               for m in upstream.messages()), [m.mail_from for m in upstream.messages()]


def test_relay_greeting_421_then_delivered(daemon_factory, upstream, client_factory,
                                           tls_ctx):
    upstream.greeting_replies.extend(["421 4.3.2 busy, come back later"])
    d = relay_daemon(daemon_factory, upstream)
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(status_re(qid, "bob@example.net", "deferred"))
    upstream.wait_messages(1, timeout=15)
    d.wait_log(status_re(qid, "bob@example.net", "sent"))
    assert len(upstream.messages()) == 1


def test_relay_upstream_down_defers(daemon_factory, upstream_factory, client_factory,
                                    tls_ctx):
    up = upstream_factory(start=False)
    d = relay_daemon(daemon_factory, up)
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(status_re(qid, "bob@example.net", "deferred"))
    up.start()
    up.wait_messages(1, timeout=15)
    d.wait_log(status_re(qid, "bob@example.net", "sent"))


# ---------------------------------------------------------------------------
# The queue survives restarts


def test_restart_with_queued_mail(daemon_factory, upstream_factory, client_factory, tls_ctx):
    up = upstream_factory(start=False)
    d = relay_daemon(daemon_factory, up)
    qid = submit(d, client_factory, tls_ctx, data=simple_message(subject="survives"))
    d.wait_log(status_re(qid, "bob@example.net", "deferred"))
    assert d.stop() == 0
    up.start()
    mark = d.mark()
    d.start()
    msgs = up.wait_messages(1, timeout=20)
    d.wait_log(status_re(qid, "bob@example.net", "sent"), since=mark)
    assert len(msgs) == 1 and b"Subject: survives" in msgs[0].content


def test_kill9_then_restart(daemon_factory, upstream_factory, client_factory, tls_ctx):
    up = upstream_factory(start=False)
    d = relay_daemon(daemon_factory, up)
    qids = [submit(d, client_factory, tls_ctx, data=simple_message(subject=f"k{i}"))
            for i in range(3)]
    d.kill9()
    up.start()
    mark = d.mark()
    d.start()
    up.wait_messages(3, timeout=20)
    for q in qids:
        d.wait_log(status_re(q, "bob@example.net", "sent"), since=mark)
    subjects = {re.search(rb"Subject: (k\d)", m.content).group(1) for m in up.messages()}
    assert subjects == {b"k0", b"k1", b"k2"}


def test_kill9_right_after_250_maildir(daemon, client_factory, tls_ctx):
    """Every message that got 250 is delivered at least once (Q1)."""
    c = client_factory(daemon.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    for i in range(5):
        queue_id(c.mail_transaction(ALICE, ["b@example.net"],
                                    simple_message(subject=f"crash{i}")))
    daemon.kill9()
    daemon.start()

    def all_there():
        got = {s for m in daemon.maildir_messages()
               for s in re.findall(rb"Subject: (crash\d)", m)}
        return got == {b"crash%d" % i for i in range(5)}
    wait_until(all_there, 15, "all five messages after kill -9")


def test_queue_is_sqlite_wal(daemon, client_factory, tls_ctx):
    c = client_factory(daemon.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    queue_id(c.mail_transaction(ALICE, ["b@example.net"], simple_message()))
    db = daemon.state_dir / "queue.db"
    assert db.exists()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def test_maildir_upstream_unknown_sender_domain_uses_default(daemon, client_factory,
                                                             tls_ctx):
    """alice may send as @example.org, which has no [domain] section: the
    default upstream takes it."""
    c = client_factory(daemon.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    data = crlf("From: someone@example.org\nTo: b@example.net\nSubject: org\n\nhi\n")
    queue_id(c.mail_transaction("someone@example.org", ["b@example.net"], data))
    assert b"Subject: org" in daemon.wait_maildir(1)[0]
