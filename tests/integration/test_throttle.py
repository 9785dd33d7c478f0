"""Throttling toward the upstream (issue 4): the configured rate held at
the upstream, adaptive backoff on 421 4.7.0 with recovery and nothing lost
or bounced, a daily limit that holds mail (not bounces it) and survives a
restart, per-user limits at RCPT with one ALERT, and a 5xx sending quota
deferred rather than bounced."""
import re
import sqlite3
import time

from conftest import ALICE_PW, BOB_PW, submit_many, wait_until

ALICE = "alice@example.com"


def subjects(msgs):
    return [re.search(rb"^Subject: (.*?)\r$", m.content, re.M).group(1).decode()
            for m in msgs]


def statuses(d):
    """recipient status -> count, read beside the running daemon."""
    db = sqlite3.connect(f"file:{d.state_dir / 'queue.db'}?mode=ro", uri=True, timeout=5)
    try:
        return dict(db.execute("SELECT status, count(*) FROM recipients GROUP BY status"))
    finally:
        db.close()


def test_rate_is_held_at_the_upstream(daemon_factory, upstream_factory, client_factory,
                                      tls_ctx):
    up = upstream_factory(tls=False, auth=False)
    d = daemon_factory({"upstream main": up.upstream_section(rate="5/second")})
    submit_many(d, client_factory, tls_ctx, 20)
    up.wait_messages(20, timeout=15)
    times = sorted(m.at for m in up.messages())
    spread = times[-1] - times[0]
    # 5 at once (one second's burst), then 5 a second: 15 more need 3 s.
    assert spread >= 2.5, f"20 messages within {spread:.2f}s"
    worst = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
    assert worst <= 10, f"{worst} messages within one second (rate 5 + burst 5)"
    assert len(up.messages()) == 20


def test_backoff_on_421_and_recovery(daemon_factory, upstream_factory, client_factory,
                                     tls_ctx):
    up = upstream_factory(tls=False, auth=False)
    up.rate_limit = (10, "421 4.7.0 Too many messages, slow down")
    d = daemon_factory({
        "upstream main": up.upstream_section(throttle_cooldown="1s"),
        "queue": {"retry": "1s", "max_lifetime": "5m"},
    })
    n = 60
    submit_many(d, client_factory, tls_ctx, n)
    wait_until(lambda: len(up.messages()) >= n, 40, f"{n} messages at the upstream")
    d.wait_log(r"upstream main: throttled \(421 4\.7\.0 Too many messages, slow down\); "
               r"rate \S+ -> \S+/s, suspended for \d+s", timeout=1)
    d.wait_log(r"upstream main: rate \S+/s -> \S+ \(recovering\)", timeout=10)
    got = subjects(up.messages())
    assert sorted(got) == sorted(f"m{i}" for i in range(n)), "each message exactly once"
    assert up.rate_refused > 0, "the upstream never had to refuse: nothing was tested"
    assert "status=bounced" not in d.log()
    wait_until(lambda: statuses(d).get("sent") == n, 5, "every recipient 'sent'")


def test_daily_limit_holds_mail_across_a_restart(daemon_factory, client_factory, tls_ctx):
    d = daemon_factory({"upstream main": {"daily_limit": "3"}})
    submit_many(d, client_factory, tls_ctx, 4)
    d.wait_maildir(3)
    time.sleep(2.5)                     # several scheduler ticks; bounded
    assert len(d.maildir_files()) == 3, "the 4th message went past daily_limit"
    assert statuses(d) == {"sent": 3, "queued": 1}, "the 4th waits, not bounced"
    d.restart()
    time.sleep(2.5)
    assert len(d.maildir_files()) == 3, "a restart reset the daily counters"
    assert statuses(d) == {"sent": 3, "queued": 1}
    assert "status=bounced" not in d.log()


def test_user_rate_at_rcpt_alerts_once(daemon_factory, client_factory, tls_ctx):
    d = daemon_factory({"server": {"user_rate": "2/minute"}})
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    assert c.cmd("RCPT TO:<r1@example.net>").code == 250
    for i in range(3):
        r = c.cmd(f"RCPT TO:<x{i}@example.net>")
        assert r.code == 451 and r.lines[-1] == (
            "451 4.7.1 Sending rate limit reached for user alice; try again later"), r.lines
    b = client_factory(d.port)
    b.login(tls_ctx, "bob", BOB_PW)
    assert b.cmd("MAIL FROM:<bob@example.com>").code == 250
    assert b.cmd("RCPT TO:<r2@example.net>").code == 250, "another user is not limited"
    d.wait_log(r"ALERT user-limit:alice: user alice exceeded user_rate "
               r"\(possible compromised account\)")
    assert len(re.findall(r"ALERT user-limit:alice", d.log())) == 1, "one alert per window"
    # The postmaster gets it by mail too, from <>, through the normal queue.
    d.wait_log(r"from=<>, size=\d+, nrcpt=1, origin=alert")
    alerts = wait_until(lambda: [m for m in d.maildir_messages()
                                 if b"Cause: user-limit:alice" in m],
                        10, "the alert mail in the maildir")
    assert b"Subject: outpost alert: user alice exceeded user_rate" in alerts[0]
    assert b"Auto-Submitted: auto-generated" in alerts[0]
    assert b"To: <postmaster@" in alerts[0]


def test_5xx_sending_quota_is_deferred_not_bounced(daemon_factory, upstream_factory,
                                                   client_factory, tls_ctx):
    up = upstream_factory(tls=False, auth=False)
    up.rcpt_replies["bob@example.net"] = ["550 5.4.5 Daily user sending quota exceeded"]
    d = daemon_factory({
        "upstream main": up.upstream_section(throttle_cooldown="1s"),
        "queue": {"retry": "1s"},
    })
    qid, = submit_many(d, client_factory, tls_ctx, 1)
    d.wait_log(rf"{qid}: to=<bob@example\.net>.*status=deferred \(550 5\.4\.5 Daily user")
    d.wait_log(r"upstream main: throttled \(550 5\.4\.5 Daily user sending quota exceeded\)")
    up.wait_messages(1, timeout=10)
    d.wait_log(rf"{qid}: to=<bob@example\.net>.*status=sent")
    assert "status=bounced" not in d.log()
