"""outpostctl queue hold|release|delete|retry (issue 6): the daemon does
the change through its control socket and it is observed at the upstream;
a held message survives a restart; bad ids and unknown messages get clear
errors."""
import json
import sqlite3
import subprocess

from conftest import ALICE_PW, OUTPOSTCTL, dot_stuff, queue_id, simple_message, wait_until

ALICE = "alice@example.com"


def ctl(d, *args, rc=0):
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == rc, f"outpostctl {args}: {p.returncode} {p.stdout} {p.stderr}"
    # config warnings (tls = none toward the test upstream) are not the answer
    err = "".join(l for l in p.stderr.splitlines(True) if ": warning: " not in l)
    return p.stdout + err


def submit(d, client_factory, tls_ctx, subject, rcpt="bob@example.net"):
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(simple_message(subject=subject)))
    qid = queue_id(c.reply())
    c.cmd("QUIT")
    return qid


def subjects(up):
    return sorted(m.content.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
                  for m in up.messages())


def held_count(d):
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "status", "--json"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["queue"]["held"]


def db_has(d, qid):
    db = sqlite3.connect(f"file:{d.state_dir / 'queue.db'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM messages WHERE queue_id = ?",
                          (qid,)).fetchone()[0] > 0
    finally:
        db.close()


def test_hold_release_delete_retry(daemon_factory, plain_upstream, client_factory, tls_ctx):
    up = plain_upstream
    up.rcpt_replies["bob@example.net"] = "451 4.3.0 Temporary local problem"
    d = daemon_factory({"upstream main": up.upstream_section(),
                        "queue": {"retry": "1h"}})
    a = submit(d, client_factory, tls_ctx, "A")
    b = submit(d, client_factory, tls_ctx, "B")
    c = submit(d, client_factory, tls_ctx, "C")
    for q in (a, b, c):
        d.wait_log(rf"{q}: to=<bob@example\.net>.*status=deferred")

    st = json.loads(subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "status", "--json"],
                                   capture_output=True, text=True, timeout=30).stdout)
    main = st["upstreams"][0]
    assert main["failed"] == 3 and main["sent"] == 0, main
    assert main["last_error"] == "451 4.3.0 Temporary local problem" and main["last_error_at"]
    assert ctl(d, "queue", "hold", a) == f"{a}: held\n"
    d.wait_log(rf"{a}: held by outpostctl")
    assert held_count(d) == 1
    out = ctl(d, "queue", "hold", a, rc=1)
    assert "0 done" in out and f"{a}: already held" in out, out
    assert f"{c}: deleted" in ctl(d, "queue", "delete", c.lower())
    wait_until(lambda: not db_has(d, c), 10, "C gone from queue.db")

    del up.rcpt_replies["bob@example.net"]
    assert "messages due now" in ctl(d, "queue", "retry", "--all")
    up.wait_messages(1, timeout=10)
    wait_until(lambda: subjects(up) == ["B"], 10, "only B delivered (A held, C deleted)")

    out = ctl(d, "queue", "retry", a, rc=1)
    assert "held; release it first" in out, out
    assert ctl(d, "queue", "release", a) == f"{a}: released\n"
    assert ctl(d, "queue", "retry", a) == f"{a}: due now\n"
    wait_until(lambda: subjects(up) == ["A", "B"], 10, "A delivered after release")
    assert held_count(d) == 0
    out = ctl(d, "queue", "release", c, rc=1)
    assert "not in the queue" in out, out


def test_held_message_survives_restart(daemon_factory, plain_upstream, client_factory,
                                       tls_ctx):
    up = plain_upstream
    up.rcpt_replies["bob@example.net"] = "451 4.3.0 Temporary local problem"
    d = daemon_factory({"upstream main": up.upstream_section(),
                        "queue": {"retry": "1h"}})
    q = submit(d, client_factory, tls_ctx, "H")
    d.wait_log(rf"{q}: to=<bob@example\.net>.*status=deferred")
    ctl(d, "queue", "hold", q)
    d.restart()
    del up.rcpt_replies["bob@example.net"]
    assert held_count(d) == 1
    ctl(d, "queue", "retry", "--all")
    out = ctl(d, "queue", "retry", q, rc=1)
    assert "held" in out
    assert up.messages() == []
    ctl(d, "queue", "release", q)
    ctl(d, "queue", "retry", q)
    up.wait_messages(1, timeout=10)
    assert subjects(up) == ["H"]


def test_queue_change_bad_input(daemon_factory):
    d = daemon_factory()
    ctl(d, "queue", "hold", "not-an-id", rc=2)
    ctl(d, "queue", "delete", "--all", rc=2)
    ctl(d, "queue", "hold", rc=2)
    out = ctl(d, "queue", "hold", "0123456789AB", rc=1)
    assert "0 done; 0123456789AB: not in the queue" in out, out
    d.stop()
    out = ctl(d, "queue", "retry", "--all", rc=1)
    assert "outpostd is not running" in out, out
