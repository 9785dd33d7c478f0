"""`outpostctl status` through the control socket (issue 4: "the current
state (rate, suspended until, reason) is visible in outpostctl status";
issue 6 builds the rest of outpostctl on the same socket): a throttling
answer halves the rate and suspends the upstream, and deliveries in a
row bring it back, all observed in status; the socket's mode and peer
check; a clear error when the daemon is not running."""
import json
import os
import socket
import stat
import subprocess
import time

from conftest import OUTPOSTCTL, OUTPOSTD, free_port, submit_many, wait_until


def status(d, json_out=True):
    args = [OUTPOSTCTL, "-c", str(d.conf_path), "status"] + (["--json"] if json_out else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"outpostctl status: {p.returncode} {p.stderr}"
    return json.loads(p.stdout) if json_out else p.stdout


def upstream(st, name="main"):
    return next(u for u in st["upstreams"] if u["name"] == name)


def test_status_shows_halving_and_recovery(daemon_factory, upstream_factory,
                                           client_factory, tls_ctx):
    up = upstream_factory(tls=False, auth=False)
    up.rcpt_replies["bob@example.net"] = ["421 4.7.0 Too many messages, slow down"]
    d = daemon_factory({
        "upstream main": up.upstream_section(rate="8/second", throttle_cooldown="3s",
                                             recover_after="2"),
        "queue": {"retry": "1s"},
    })
    st = status(d)
    u = upstream(st)
    assert u["state"] == "up" and u["rate_current"] == u["rate_configured"] == 8, u
    assert u["suspended_until"] == 0 and u["reason"] == "" and u["throttle_events"] == 0

    qid, = submit_many(d, client_factory, tls_ctx, 1, prefix="s")
    d.wait_log(rf"{qid}: to=<bob@example\.net>.*status=deferred \(421 4\.7\.0")
    u = upstream(status(d))
    assert u["state"] == "suspended", u
    assert u["rate_current"] == 4, "the rate is halved"
    assert u["suspended_until"] > time.time(), u
    assert "421 4.7.0 Too many messages" in u["reason"] and u["throttle_events"] == 1, u
    text = status(d, json_out=False)
    assert "upstream main (127.0.0.1:" in text and ": suspended" in text, text
    assert "rate: 4/second (configured 8/second)" in text, text
    assert "suspended until" in text and "last throttled by: 421 4.7.0" in text, text
    assert "queue: 1 messages, 1 recipients pending (1 deferred), 0 in delivery, 0 held" in text, text

    # after the cool-down, every 2 deliveries raise the rate by 2/s
    up.wait_messages(1, timeout=15)
    submit_many(d, client_factory, tls_ctx, 8, prefix="s")
    up.wait_messages(9, timeout=20)
    u = wait_until(lambda: (lambda v: v if v["rate_current"] == 8 else None)(
        upstream(status(d))), 10, "the rate back at 8/s")
    assert u["state"] == "up" and u["suspended_until"] == 0, u
    d.wait_log(r"upstream main: rate 4/s -> 6/s \(recovering\)", timeout=1)
    d.wait_log(r"upstream main: rate 6/s -> 8/s \(recovering\)", timeout=1)
    # every transaction started counts, the refused one too (conservative)
    assert u["day_messages"] == 10 and u["day_limit"] == 0, u
    st = status(d)
    assert st["queue"]["messages"] == 0 and st["sessions"] >= 0 and st["pid"] == d.proc.pid


def test_control_socket_mode_and_bad_requests(daemon_factory):
    d = daemon_factory()
    path = d.state_dir / "control"
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert stat.S_ISSOCK(os.stat(path).st_mode) and mode == 0o660, oct(mode)

    def ask(data):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(path))
            s.sendall(data)
            out = b""
            while True:
                b = s.recv(4096)
                if not b:
                    return out
                out += b

    assert ask(b"frobnicate\n") == b"error: unknown request 'frobnicate'\n"
    assert ask(b"status --xml\n") == b"error: usage: status [--json]\n"
    assert ask(b"x" * 5000) == b"error: request line too long\n"
    assert ask(b"status\0\n").startswith(b"error: NUL")
    assert ask(b"status\r\n").startswith(b"ok\noutpostd ")
    upstream_names = [u["name"] for u in json.loads(ask(b"status --json\n")[3:])["upstreams"]]
    assert upstream_names == ["main"]


def test_status_when_not_running_and_second_daemon(daemon_factory):
    d = daemon_factory()
    d.stop()
    assert not (d.state_dir / "control").exists(), "the socket is removed at stop"
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "status"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "outpostd is not running" in p.stderr, p.stderr
    d.start()
    # a second daemon on the same state_dir (its own port) refuses to start
    other = d.conf_path.with_name("second.conf")
    other.write_text(d.conf_path.read_text().replace(f":{d.port}", f":{free_port()}"))
    p = subprocess.run([OUTPOSTD, "-f", "-c", str(other)], capture_output=True,
                       text=True, timeout=30, env=d.env())
    assert p.returncode != 0 and "another outpostd is running" in p.stderr, p.stderr
    assert status(d)["upstreams"], "the first daemon still answers"
