"""Delivery status notifications (issue 4 "Permanent failures", RFC 3461
and RFC 3464, RELIABILITY D1-D3): a permanent failure or the end of
max_lifetime sends one DSN to the envelope sender from <>, honouring
NOTIFY, RET, ENVID and ORCPT; a null-sender message that fails is a
postmaster alert, never another DSN; NOTIFY=DELAY gets one delay notice.

The sender's domain (example.com) and the null sender both route to the
scripted upstream, so the DSN arrives there too, addressed to alice."""
import email
import re
import time

from conftest import ALICE_PW, dot_stuff, queue_id, simple_message, wait_until

ALICE = "alice@example.com"


def dsn_daemon(daemon_factory, up, **queue):
    return daemon_factory({
        "upstream main": up.upstream_section(),
        "queue": {"retry": "1s", **queue},
    })


def submit(d, client_factory, tls_ctx, rcpts, mail_params="", rcpt_params="",
           body="Hello.\n"):
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{ALICE}>{mail_params}").code == 250
    for rc in rcpts:
        r = c.cmd(f"RCPT TO:<{rc}>{rcpt_params}")
        assert r.code == 250, r
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(simple_message(subject="dsn test", body=body)))
    qid = queue_id(c.reply())
    c.cmd("QUIT")
    return qid


def dsns(up):
    """The messages the upstream took from <>: the DSNs (and alerts)."""
    return [m for m in up.messages() if m.mail_from in ("", "<>") and ALICE in m.rcpt_tos]


def wait_dsns(up, n, timeout=10.0):
    return wait_until(lambda: len(dsns(up)) >= n and dsns(up), timeout,
                      f"{n} DSN(s) at the upstream")


def parse(raw):
    """-> (message, per-message fields, [per-recipient fields], original part)."""
    msg = email.message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    return msg, blocks[0], blocks[1:], parts[2]


def test_550_5_1_1_gives_exactly_one_dsn(daemon_factory, plain_upstream, client_factory,
                                         tls_ctx):
    up = plain_upstream
    up.rcpt_replies["gone@example.net"] = "550 5.1.1 <gone@example.net>: no such user"
    d = dsn_daemon(daemon_factory, up)
    qid = submit(d, client_factory, tls_ctx, ["gone@example.net", "ok@example.net"])
    m = wait_dsns(up, 1)[0]
    assert m.rcpt_tos == [ALICE]
    msg, per_msg, rcpts, orig = parse(m.content)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"].endswith("<MAILER-DAEMON@relay.test.example>"), msg["From"]
    assert msg["To"] == ALICE or ALICE in msg["To"]
    assert per_msg["Reporting-MTA"] == "dns; relay.test.example"
    assert len(rcpts) == 1, "only the failed recipient is reported"
    r = rcpts[0]
    assert r["Final-Recipient"].replace(" ", "") == "rfc822;gone@example.net"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert re.match(r"smtp; ?550 5\.1\.1 <gone@example\.net>: no such user",
                    r["Diagnostic-Code"]), r["Diagnostic-Code"]
    # no RET: the original's headers only
    assert orig.get_content_type() == "text/rfc822-headers"
    text = orig.get_payload(decode=True) or orig.get_payload().encode()
    assert b"Subject: dsn test" in text and b"Hello." not in text
    d.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+")
    time.sleep(2.5)                     # two retry steps: still one DSN
    assert len(dsns(up)) == 1
    assert len(re.findall(rf"{qid}: sender non-delivery notification", d.log())) == 1


def test_5_7_26_gives_dsn_and_admin_alert(daemon_factory, plain_upstream, client_factory,
                                          tls_ctx):
    up = plain_upstream
    up.rcpt_replies["bob@example.net"] = ("550 5.7.26 Unauthenticated email from "
                                          "example.com is not accepted due to DMARC")
    d = dsn_daemon(daemon_factory, up)
    submit(d, client_factory, tls_ctx, ["bob@example.net"])
    msg, _, rcpts, _ = parse(wait_dsns(up, 1)[0].content)
    assert rcpts[0]["Status"] == "5.7.26"
    d.wait_log(r"ALERT policy:example\.net: .*outpostctl check dns example\.com")


def test_notify_never_sends_no_dsn(daemon_factory, plain_upstream, client_factory, tls_ctx):
    up = plain_upstream
    up.rcpt_replies["gone@example.net"] = "550 5.1.1 no such user"
    d = dsn_daemon(daemon_factory, up)
    qid = submit(d, client_factory, tls_ctx, ["gone@example.net"],
                 rcpt_params=" NOTIFY=NEVER")
    d.wait_log(rf"{qid}: to=<gone@example\.net>.*status=bounced")
    time.sleep(1.5)
    assert dsns(up) == []
    assert "notification" not in d.log()


def test_ret_full_envid_orcpt_echoed(daemon_factory, plain_upstream, client_factory, tls_ctx):
    up = plain_upstream
    up.rcpt_replies["gone@example.net"] = "550 5.1.1 no such user"
    d = dsn_daemon(daemon_factory, up)
    submit(d, client_factory, tls_ctx, ["gone@example.net"],
           mail_params=" RET=FULL ENVID=env+2Bid-42",
           rcpt_params=" NOTIFY=FAILURE ORCPT=rfc822;orig+2Bx@example.net",
           body="The full body.\n")
    msg, per_msg, rcpts, orig = parse(wait_dsns(up, 1)[0].content)
    assert per_msg["Original-Envelope-Id"] == "env+id-42"
    assert rcpts[0]["Original-Recipient"].replace(" ", "") == "rfc822;orig+x@example.net"
    assert orig.get_content_type() == "message/rfc822"
    inner = orig.get_payload()[0]
    assert inner["Subject"] == "dsn test"
    assert "The full body." in inner.get_payload()


def test_ret_hdrs_returns_headers_only(daemon_factory, plain_upstream, client_factory,
                                       tls_ctx):
    up = plain_upstream
    up.data_replies["*"] = ["554 5.7.1 content rejected"]
    d = dsn_daemon(daemon_factory, up)
    submit(d, client_factory, tls_ctx, ["bob@example.net"], mail_params=" RET=HDRS",
           body="Secret body.\n")
    raw = wait_dsns(up, 1)[0].content
    _, _, rcpts, orig = parse(raw)
    assert rcpts[0]["Status"] == "5.7.1"
    assert orig.get_content_type() == "text/rfc822-headers"
    assert b"Secret body." not in raw


def test_failed_null_sender_message_is_an_alert_not_a_dsn(daemon_factory, plain_upstream,
                                                           client_factory, tls_ctx):
    """D2: the DSN itself is refused (alice's address 550s too): no DSN
    about the DSN, a double-bounce alert instead."""
    up = plain_upstream
    up.rcpt_replies["gone@example.net"] = "550 5.1.1 no such user"
    up.rcpt_replies[ALICE] = "550 5.1.1 sender mailbox gone too"
    d = dsn_daemon(daemon_factory, up)
    qid = submit(d, client_factory, tls_ctx, ["gone@example.net"])
    d.wait_log(rf"{qid}: sender non-delivery notification: [0-9A-F]+")
    dsn_qid = re.search(rf"{qid}: sender non-delivery notification: ([0-9A-F]+)",
                        d.log()).group(1)
    d.wait_log(rf"{dsn_qid}: to=<{re.escape(ALICE)}>.*status=bounced")
    d.wait_log(r"ALERT double-bounce: a null-sender message could not be delivered")
    time.sleep(1.5)
    assert f"{dsn_qid}: sender non-delivery notification" not in d.log()
    assert len(re.findall(r"sender non-delivery notification", d.log())) == 1
    assert dsns(up) == []


def test_max_lifetime_expiry_bounces_with_4_4_7(daemon_factory, plain_upstream,
                                                client_factory, tls_ctx):
    up = plain_upstream
    up.rcpt_replies["slow@example.net"] = "451 4.3.0 mailbox busy"
    d = dsn_daemon(daemon_factory, up, max_lifetime="3s", delay_warning="1s")
    qid = submit(d, client_factory, tls_ctx, ["slow@example.net"])
    msg, _, rcpts, _ = parse(wait_dsns(up, 1, timeout=15)[0].content)
    assert rcpts[0]["Action"] == "failed"
    assert rcpts[0]["Status"] == "4.4.7"
    assert "451 4.3.0 mailbox busy" in rcpts[0]["Diagnostic-Code"]
    # no NOTIFY: failures only, no delay notice (RFC 3461 4.1)
    assert f"{qid}: sender delay notification" not in d.log()
    assert len(dsns(up)) == 1


def test_notify_delay_gives_one_delayed_then_failed(daemon_factory, plain_upstream,
                                                    client_factory, tls_ctx):
    """D3: NOTIFY=DELAY,FAILURE: one 'delayed' after delay_warning, then
    'failed' with 4.4.7 at the end of max_lifetime."""
    up = plain_upstream
    up.rcpt_replies["slow@example.net"] = "451 4.3.0 mailbox busy"
    d = dsn_daemon(daemon_factory, up, max_lifetime="5s", delay_warning="1s")
    qid = submit(d, client_factory, tls_ctx, ["slow@example.net"],
                 rcpt_params=" NOTIFY=DELAY,FAILURE")
    first = wait_dsns(up, 1, timeout=10)[0]
    _, _, rcpts, _ = parse(first.content)
    assert rcpts[0]["Action"] == "delayed"
    assert rcpts[0]["Status"] == "4.3.0"
    assert rcpts[0]["Will-Retry-Until"]
    both = wait_dsns(up, 2, timeout=15)
    _, _, rcpts, _ = parse(both[1].content)
    assert rcpts[0]["Action"] == "failed" and rcpts[0]["Status"] == "4.4.7"
    log = d.log()
    assert len(re.findall(rf"{qid}: sender delay notification", log)) == 1
    assert len(re.findall(rf"{qid}: sender non-delivery notification", log)) == 1
    assert len(dsns(up)) == 2
