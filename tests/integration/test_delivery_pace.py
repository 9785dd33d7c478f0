"""Delivery keeps pace without waiting for the scheduler's periodic scan
(issue 8): when an upstream connection frees up, the next waiting message
starts at once, not at the next scan_interval."""
import re
import sqlite3
import time

from conftest import submit_many, wait_until


def subjects(msgs):
    return sorted(re.search(rb"^Subject: (.*?)\r$", m.content, re.M).group(1).decode()
                  for m in msgs)


def test_connection_turnover_starts_the_next_message(daemon_factory, upstream_factory,
                                                     client_factory, tls_ctx):
    # One connection, one message per connection: after each message the
    # connection QUITs and closes, and only that close can start the next
    # one. The scan runs once a minute, far beyond the test's patience.
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory({
        "upstream main": up.upstream_section(max_connections="1",
                                             max_messages_per_connection="1"),
        "queue": {"scan_interval": "60s"},
    })
    n = 6
    t0 = time.monotonic()
    submit_many(d, client_factory, tls_ctx, n)
    up.wait_messages(n, timeout=20)
    took = time.monotonic() - t0
    assert subjects(up.messages()) == sorted(f"m{i}" for i in range(n))
    # Six connections one after another take well under a second each;
    # waiting for the scan would take a minute.
    assert took < 15, f"{n} messages took {took:.1f}s"


def test_one_connection_carries_consecutive_messages(daemon_factory, upstream_factory,
                                                     client_factory, tls_ctx):
    # The reply to the final dot ends a transaction; the connection takes
    # the next message at once, on the same connection.
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory({
        "upstream main": up.upstream_section(max_connections="1"),
        "queue": {"scan_interval": "60s"},
    })
    n = 10
    submit_many(d, client_factory, tls_ctx, n)
    up.wait_messages(n, timeout=20)
    assert subjects(up.messages()) == sorted(f"m{i}" for i in range(n))
    assert len(up.ehlos) == 1, f"{len(up.ehlos)} connections (EHLOs) for {n} messages"


def test_first_attempt_sends_the_body_kept_from_the_commit(daemon_factory, upstream_factory,
                                                          client_factory, tls_ctx):
    # A fresh message goes out from the copy kept at commit, without reading
    # it back from the queue. Shown by taking the body out of queue.db while
    # the second message waits for its turn (rate 20/minute: 3 s apart): it still
    # arrives, whole. Read back from the store it would have been missing.
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory({"upstream main": up.upstream_section(rate="20/minute")})
    submit_many(d, client_factory, tls_ctx, 2)
    up.wait_messages(1, timeout=10)
    assert len(up.messages()) == 1, "the rate let both go at once: nothing tested"
    db = sqlite3.connect(str(d.state_dir / "queue.db"), timeout=10)
    try:
        # The first one's delivery is recorded a moment after the upstream
        # has it: wait until only the second is pending.
        wait_until(lambda: db.execute("SELECT count(*) FROM messages WHERE done_at IS NULL")
                   .fetchone()[0] == 1, 5, "only the second message pending")
        with db:
            n = db.execute("UPDATE messages SET data = NULL WHERE done_at IS NULL").rowcount
    finally:
        db.close()
    assert n == 1, f"{n} pending messages in the queue, expected the second one"
    assert len(up.messages()) == 1, "the second went before its body was taken: nothing tested"
    up.wait_messages(2, timeout=15)
    assert subjects(up.messages()) == ["m0", "m1"]
    assert b"\r\n\r\n" in up.messages()[1].content
    assert "cannot read the message" not in d.log()
