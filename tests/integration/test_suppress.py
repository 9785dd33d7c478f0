"""The suppression list (issue 4 "Permanent failures"): a bad-mailbox
bounce (550 5.1.1) puts the recipient on the list in queue.db; later
submissions to it get 550 5.1.1 at RCPT saying since when and why. A
policy refusal (550 5.7.26) never suppresses. `outpostctl suppress
list|add|remove` edit the list and make the running daemon re-read it;
the list survives a restart."""
import json
import subprocess

from conftest import ALICE_PW, OUTPOSTCTL, dot_stuff, queue_id, simple_message, wait_until

ALICE = "alice@example.com"


def ctl(d, *args):
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "suppress", *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"outpostctl suppress {args}: {p.returncode} {p.stderr}"
    return p.stdout


def listed(d):
    return {e["address"]: e for e in json.loads(ctl(d, "list", "--json"))}


def rcpt(d, client_factory, tls_ctx, to):
    """The RCPT reply for `to` in a fresh authenticated session."""
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    r = c.cmd(f"RCPT TO:<{to}>")
    c.cmd("QUIT")
    return r


def submit(d, client_factory, tls_ctx, to):
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    r = c.cmd(f"RCPT TO:<{to}>")
    assert r.code == 250, r
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(simple_message(subject="suppress test")))
    qid = queue_id(c.reply())
    c.cmd("QUIT")
    return qid


def dsns(up):
    return [m for m in up.messages() if m.mail_from in ("", "<>") and ALICE in m.rcpt_tos]


def test_bad_mailbox_suppresses_policy_does_not(daemon_factory, plain_upstream,
                                                client_factory, tls_ctx):
    up = plain_upstream
    up.rcpt_replies["gone@example.net"] = "550 5.1.1 <gone@example.net>: user unknown"
    up.rcpt_replies["bob@example.net"] = ("550 5.7.26 Unauthenticated email from "
                                          "example.com is not accepted")
    d = daemon_factory({"upstream main": up.upstream_section(),
                        "queue": {"retry": "1s"}})
    qid = submit(d, client_factory, tls_ctx, "gone@example.net")
    d.wait_log(rf"{qid}: to=<gone@example.net> suppressed \(bad-mailbox: 550 5\.1\.1")
    qid2 = submit(d, client_factory, tls_ctx, "bob@example.net")
    d.wait_log(rf"{qid2}: to=<bob@example.net>.*status=bounced")
    wait_until(lambda: len(dsns(up)) >= 2, 10, "two DSNs")
    assert any(b"5.1.1" in m.content for m in dsns(up))

    entries = listed(d)
    assert list(entries) == ["gone@example.net"], entries
    e = entries["gone@example.net"]
    assert e["reason"] == "bad-mailbox"
    assert "550 5.1.1" in e["reply"]
    assert e["expires_at"] > e["first_seen"] > 0
    assert "gone@example.net" in ctl(d, "list")

    r = rcpt(d, client_factory, tls_ctx, "Gone@Example.NET")
    assert r.code == 550, r
    text = str(r)
    assert "5.1.1" in text and "is suppressed since" in text, text
    assert "bad-mailbox: 550 5.1.1" in text and "outpostctl suppress remove" in text, text
    assert rcpt(d, client_factory, tls_ctx, "bob@example.net").code == 250

    out = ctl(d, "remove", "gone@example.net")
    assert "removed" in out and "reload requested" in out, out
    wait_until(lambda: rcpt(d, client_factory, tls_ctx, "gone@example.net").code == 250,
               10, "gone@example.net accepted again")
    assert listed(d) == {}


def test_manual_add_with_expiry_and_restart(daemon_factory, plain_upstream,
                                            client_factory, tls_ctx):
    up = plain_upstream
    d = daemon_factory({"upstream main": up.upstream_section()})
    assert rcpt(d, client_factory, tls_ctx, "carol@example.net").code == 250
    out = ctl(d, "add", "Carol@example.net", "--reason", "complaint", "--expires", "30d")
    assert "suppressed" in out
    wait_until(lambda: rcpt(d, client_factory, tls_ctx, "carol@example.net").code == 550,
               10, "carol refused at RCPT")
    r = rcpt(d, client_factory, tls_ctx, "CAROL@example.net")
    assert "(complaint)" in str(r), r
    e = listed(d)["carol@example.net"]
    assert 29 * 86400 < e["expires_at"] - e["first_seen"] <= 30 * 86400 + 5

    d.stop()
    out = ctl(d, "add", "dave@example.net")
    assert "next start" in out, out
    d.start()
    assert rcpt(d, client_factory, tls_ctx, "carol@example.net").code == 550
    assert rcpt(d, client_factory, tls_ctx, "dave@example.net").code == 550
    assert rcpt(d, client_factory, tls_ctx, "erin@example.net").code == 250
    assert set(listed(d)) == {"carol@example.net", "dave@example.net"}


def test_suppress_rejects_bad_input(daemon_factory, plain_upstream):
    d = daemon_factory({"upstream main": plain_upstream.upstream_section()})
    for args in (["add", "not an address"], ["add", "x@y.example", "--expires", "soon"],
                 ["remove"], ["list", "--xml"]):
        p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "suppress", *args],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)


def soft_rows(d):
    import sqlite3
    db = sqlite3.connect(f"file:{d.state_dir}/queue.db?mode=ro", uri=True, timeout=10)
    try:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT address, count, first_seen, last_seen, reply FROM soft_failures")}
    finally:
        db.close()


def test_soft_failures_across_the_period_suppress(daemon_factory, plain_upstream,
                                                  client_factory, tls_ctx):
    """452 4.2.2 (mailbox full) again and again: once soft_bounce_limit
    attempts have failed across soft_bounce_period the address is
    suppressed like a bad mailbox, while a recipient that recovers in
    time is delivered and its count forgotten."""
    up = plain_upstream
    up.rcpt_replies["full@example.net"] = "452 4.2.2 <full@example.net>: mailbox full"
    up.rcpt_replies["later@example.net"] = "450 4.2.1 mailbox temporarily disabled"
    d = daemon_factory({"upstream main": up.upstream_section(),
                        "queue": {"retry": ", ".join(["1s"] * 30), "soft_bounce_limit": "3",
                                  "soft_bounce_period": "3s"}})
    qid = submit(d, client_factory, tls_ctx, "full@example.net")
    qid2 = submit(d, client_factory, tls_ctx, "later@example.net")
    d.wait_log(rf"{qid2}: to=<later@example.net>.*dsn=4\.2\.1, status=deferred")
    wait_until(lambda: "later@example.net" in soft_rows(d), 10, "a soft_failures row")
    del up.rcpt_replies["later@example.net"]
    d.wait_log(rf"{qid2}: to=<later@example.net>.*status=sent")
    wait_until(lambda: "later@example.net" not in soft_rows(d), 10, "row dropped on delivery")

    # three attempts alone are not enough: the run must span 3 s
    d.wait_log(rf"{qid}: to=<full@example.net> failed temporarily \d+ times in [3-9]s",
               timeout=20)
    d.wait_log(rf"{qid}: to=<full@example.net> suppressed \(soft-bounce: 452 4\.2\.2")
    attempts = [l for l in d.log().splitlines()
                if f"{qid}: to=<full@example.net>" in l and "status=deferred" in l]
    assert len(attempts) >= 3, attempts
    wait_until(lambda: "full@example.net" in listed(d), 10, "suppression saved")
    e = listed(d)["full@example.net"]
    assert e["reason"] == "soft-bounce" and "4.2.2" in e["reply"], e
    wait_until(lambda: soft_rows(d) == {}, 10, "soft_failures emptied")
    r = rcpt(d, client_factory, tls_ctx, "full@example.net")
    assert r.code == 550 and "soft-bounce: 452 4.2.2" in str(r), r
    assert "later@example.net" not in listed(d)
    assert rcpt(d, client_factory, tls_ctx, "later@example.net").code == 250


def test_soft_failure_count_survives_restart(daemon_factory, plain_upstream,
                                             client_factory, tls_ctx):
    """The count lives in queue.db: failures before a restart and after it
    make one run. Throttling and plain 451s never count."""
    up = plain_upstream
    up.rcpt_replies["full@example.net"] = "452 4.2.2 mailbox full"
    up.rcpt_replies["busy@example.net"] = "451 4.3.0 try again"
    conf = {"upstream main": up.upstream_section(),
            "queue": {"retry": ", ".join(["1s"] * 30), "soft_bounce_limit": "4",
                      "soft_bounce_period": "4s"}}
    d = daemon_factory(conf)
    qid = submit(d, client_factory, tls_ctx, "full@example.net")
    submit(d, client_factory, tls_ctx, "busy@example.net")
    wait_until(lambda: soft_rows(d).get("full@example.net", (0,))[0] >= 2, 15,
               "two soft failures counted")
    d.stop()
    before = soft_rows(d)["full@example.net"]
    d.start()
    d.wait_log(rf"{qid}: to=<full@example.net> suppressed \(soft-bounce", timeout=20)
    line = [l for l in d.log().splitlines() if "failed temporarily" in l][-1]
    count = int(line.split("failed temporarily ")[1].split()[0])
    assert count >= 4 and count > before[0], (line, before)
    assert "busy@example.net" not in soft_rows(d)
    assert "busy@example.net" not in listed(d)
