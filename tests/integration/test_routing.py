"""Routing by the sender's domain across several upstreams: failover to
the next one while the first is down and back when it recovers, and the
split of a transaction the upstream cut with 452 4.5.3 (issue 4,
RELIABILITY C7)."""
import re
import time

ALICE = "alice@example.com"

from conftest import ALICE_PW, dot_stuff, queue_id, simple_message, wait_until


def submit(d, client_factory, tls_ctx, rcpts=("bob@example.net",), subject="test"):
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    for rc in rcpts:
        assert c.cmd(f"RCPT TO:<{rc}>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(simple_message(subject=subject)))
    qid = queue_id(c.reply())
    c.cmd("QUIT")
    return qid


def two_upstreams(daemon_factory, primary, backup, retry="60s", down_time="2s"):
    return daemon_factory({
        "upstream main": None,
        "upstream primary": primary.upstream_section(down_time=down_time),
        "upstream backup": backup.upstream_section(),
        "domain example.com": {"upstream": "primary, backup"},
        "queue": {"retry": retry},
    })


def subjects(up):
    return [re.search(rb"^Subject: (.*?)\r$", m.content, re.M).group(1).decode()
            for m in up.messages()]


def test_failover_to_backup_and_back(daemon_factory, upstream_factory, client_factory,
                                     tls_ctx):
    primary = upstream_factory(start=False, tls=False, auth=False)   # nobody listens
    backup = upstream_factory(tls=False, auth=False)
    d = two_upstreams(daemon_factory, primary, backup)

    submit(d, client_factory, tls_ctx, subject="one")
    # Retry is 60 s: only an immediate failover delivers it this soon.
    backup.wait_messages(1, timeout=8)
    d.wait_log(r"upstream primary: down \(451 4\.4\.1 connect to .*\); avoided for 2s")
    submit(d, client_factory, tls_ctx, subject="two")
    wait_until(lambda: len(backup.messages()) >= 2, 8, "second message at the backup")

    primary.start()
    time.sleep(2.5)                     # down_time passes; bounded
    submit(d, client_factory, tls_ctx, subject="three")
    primary.wait_messages(1, timeout=8)
    d.wait_log(r"upstream primary: reachable again")
    assert subjects(backup) == ["one", "two"]
    assert subjects(primary) == ["three"]


def test_all_upstreams_down_waits_for_the_retry_schedule(daemon_factory, upstream_factory,
                                                          client_factory, tls_ctx):
    primary = upstream_factory(start=False, tls=False, auth=False)
    backup = upstream_factory(start=False, tls=False, auth=False)
    d = two_upstreams(daemon_factory, primary, backup, retry="60s", down_time="1s")
    qid = submit(d, client_factory, tls_ctx)
    d.wait_log(rf"{qid}: to=<bob@example\.net>.*status=deferred")
    time.sleep(3)                       # bounded: no ping-pong between the two
    attempts = re.findall(rf"{qid}: upstream \S+: 451 4\.4\.1 connect to", d.log())
    assert 1 <= len(attempts) <= 2, attempts


def test_452_4_5_3_sends_the_rest_in_a_new_transaction(daemon_factory, upstream_factory,
                                                       client_factory, tls_ctx):
    up = upstream_factory(tls=False, auth=False)
    up.rcpt_replies["c@example.net"] = ["452 4.5.3 Too many recipients"]
    d = daemon_factory({"upstream main": up.upstream_section(),
                        "queue": {"retry": "60s"}})
    qid = submit(d, client_factory, tls_ctx,
                 rcpts=("a@example.net", "b@example.net", "c@example.net"))
    # Both transactions well before the 60 s retry step.
    msgs = up.wait_messages(2, timeout=8)
    assert [m.rcpt_tos for m in msgs] == [["a@example.net", "b@example.net"],
                                          ["c@example.net"]]
    d.wait_log(rf"{qid}: to=<c@example\.net>.*status=sent")


def test_452_for_every_recipient_is_an_ordinary_deferral(daemon_factory, upstream_factory,
                                                         client_factory, tls_ctx):
    up = upstream_factory(tls=False, auth=False)
    up.rcpt_replies["a@example.net"] = "452 4.5.3 Too many recipients"
    d = daemon_factory({"upstream main": up.upstream_section(),
                        "queue": {"retry": "60s"}})
    qid = submit(d, client_factory, tls_ctx, rcpts=("a@example.net",))
    d.wait_log(rf"{qid}: to=<a@example\.net>.*status=deferred")
    time.sleep(2)                       # bounded: proves there is no tight loop
    assert up.rcpt_attempts.count("a@example.net") == 1, up.rcpt_attempts
