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
    d.wait_log(rf"{qid}: to=<gone@example.net> suppressed \(550 5\.1\.1")
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
