"""`outpostctl queue` read-only views (issue 6 "Control and queue")
against a running daemon: the upstream answers 451 for some recipients so
their mail stays deferred, accepts others (sent) and refuses one with 550
(bounced). `queue` / `queue list` with its filters and --json, `queue show
ID` (envelope, headers, attempts), `queue summary` (qshape-like) read
queue.db read-only while the daemon keeps running."""
import json
import re
import subprocess

from conftest import ALICE_PW, OUTPOSTCTL, queue_id, simple_message

ALICE = "alice@example.com"
GREYLIST = "451 4.3.0 temporary local problem"  # not a throttle reply: the upstream stays up


def ctl(d, *args, rc=0):
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "queue", *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == rc, f"outpostctl queue {args}: {p.returncode} {p.stdout} {p.stderr}"
    return p.stdout if rc == 0 else p.stderr


def submit(d, client_factory, tls_ctx, rcpts, subject):
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    qid = queue_id(c.mail_transaction(ALICE, rcpts, simple_message(subject=subject)))
    c.cmd("QUIT")
    return qid


def test_queue_views(daemon_factory, plain_upstream, client_factory, tls_ctx):
    up = plain_upstream
    up.rcpt_replies["slow@example.net"] = GREYLIST
    up.rcpt_replies["later@example.org"] = GREYLIST
    up.rcpt_replies["bad@example.net"] = "550 5.1.1 <bad@example.net>: user unknown"
    d = daemon_factory({"upstream main": up.upstream_section(),
                        "queue": {"retry": "10m"}})
    assert ctl(d) == "0 messages, 0 recipients\n"

    q1 = submit(d, client_factory, tls_ctx, ["slow@example.net", "ok@example.net"],
                "queue list one")
    q2 = submit(d, client_factory, tls_ctx, ["fine@example.org"], "queue list two")
    q3 = submit(d, client_factory, tls_ctx, ["later@example.org", "bad@example.net"],
                "queue list three")
    d.wait_log(rf"{q1}: to=<slow@example.net>.*status=deferred")
    d.wait_log(rf"{q1}: to=<ok@example.net>.*status=sent")
    d.wait_log(rf"{q2}: to=<fine@example.org>.*status=sent")
    d.wait_log(rf"{q3}: to=<later@example.org>.*status=deferred")
    d.wait_log(rf"{q3}: to=<bad@example.net>.*status=bounced")

    # the default view: messages with pending recipients, all of theirs shown
    out = ctl(d)
    # the two runs may straddle a second: compare them without the times
    def timeless(text):
        return re.sub(r"\b\d+[smhd]\b", "T", text)
    assert timeless(out) == timeless(ctl(d, "list"))
    assert out.startswith("QUEUEID"), out
    assert q1 in out and q3 in out and q2 not in out, out
    assert f"  slow@example.net  deferred (1 attempt, next in " in out, out
    assert f"  {GREYLIST}\n" in out, out
    assert "  ok@example.net  sent (1 attempt)  250" in out, out
    assert "  bad@example.net  bounced (1 attempt)  550 5.1.1" in out, out
    assert out.endswith("\n2 messages, 4 recipients\n"), out

    # filters and JSON
    j = json.loads(ctl(d, "list", "--to", "SLOW@", "--status", "deferred", "--json"))
    assert [m["id"] for m in j] == [q1], j
    m = j[0]
    assert m["sender"] == ALICE and m["held"] is False and m["size"] > 0
    assert 0 <= m["age"] < 60 and m["received_at"] > 0
    rc = {r["address"]: r for r in m["recipients"]}
    assert rc["slow@example.net"]["status"] == "deferred"
    assert rc["slow@example.net"]["attempts"] == 1
    assert rc["slow@example.net"]["next_attempt"] > m["received_at"] + 500
    assert rc["slow@example.net"]["last_reply"] == GREYLIST
    assert rc["ok@example.net"]["status"] == "sent"
    assert [m["id"] for m in json.loads(ctl(d, "list", "--from", "ALICE", "--json"))] \
        == [q1, q3]
    assert [m["id"] for m in json.loads(ctl(d, "list", "--to", "example.org", "--json"))] \
        == [q3]
    assert [m["id"] for m in json.loads(ctl(d, "list", "--status", "bounced", "--json"))] \
        == [q3]
    assert json.loads(ctl(d, "list", "--status", "queued", "--json")) == []
    assert json.loads(ctl(d, "list", "--status", "held", "--json")) == []
    assert json.loads(ctl(d, "list", "--older", "1h", "--json")) == []
    assert ctl(d, "list", "--from", "nobody@") == "0 messages, 0 recipients\n"
    ctl(d, "list", "--status", "sent", rc=2)

    # one message in full
    out = ctl(d, "show", q1)
    assert f"id:        {q1}\nsender:    {ALICE}\nauth user: alice\n" in out, out
    assert "client:    127.0.0.1" in out, out
    assert "headers:\n" in out and "  Subject: queue list one\n" in out, out
    assert "Hello." not in out, out
    assert "attempts:\n" in out, out
    assert f"  slow@example.net  upstream=main relay=" in out, out
    assert f"  deferred  {GREYLIST}\n" in out, out
    assert "  ok@example.net  upstream=main relay=" in out, out
    j = json.loads(ctl(d, "show", q1.lower(), "--json"))
    assert j["id"] == q1 and j["auth_user"] == "alice" and j["body"] == "stored"
    assert "Subject: queue list one" in j["headers"], j
    assert {a["recipient"]: a["status"] for a in j["attempts"]} == {
        "slow@example.net": "deferred", "ok@example.net": "sent"}, j
    out = ctl(d, "show", q2)
    assert "the message itself is gone" in out, out
    assert "  fine@example.org  sent (1 attempt)" in out, out
    err = ctl(d, "show", "0123456789AB", rc=1)
    assert "0123456789AB: no such message in the queue" in err, err

    # by domain and age: the pending recipients, all younger than 5 minutes
    out = ctl(d, "summary")
    lines = out.splitlines()
    assert lines[0].split() == ["T", "5", "10", "20", "40", "80", "160", "320", "640",
                                "1280", "1280+"], out
    assert lines[1].split() == ["TOTAL", "2", "2"] + ["0"] * 9, out
    rows = {l.split()[0]: l.split()[1:] for l in lines[2:]}
    assert rows == {"example.net": ["1", "1"] + ["0"] * 9,
                    "example.org": ["1", "1"] + ["0"] * 9}, out
    j = json.loads(ctl(d, "summary", "--json"))
    assert j["age_columns_minutes"] == [5, 10, 20, 40, 80, 160, 320, 640, 1280, None]
    assert j["rows"][0] == {"domain": "TOTAL", "total": 2, "ages": [2] + [0] * 9}, j
    assert j["other_domains"] == 0

    # still nothing delivered twice, and the daemon never noticed the reads
    assert d.running()
