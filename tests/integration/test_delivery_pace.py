"""Delivery keeps pace without waiting for the scheduler's periodic scan
(issue 8): when an upstream connection frees up, the next waiting message
starts at once, not at the next scan_interval."""
import re
import time

from conftest import submit_many


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
