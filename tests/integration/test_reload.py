"""outpostctl reload / SIGHUP: the configuration (for new sessions), the
users file and the DKIM keys are read again without a restart; what only
a restart changes is named; a broken configuration is refused and the
running set stays."""
import os
import re
import signal
import subprocess

from conftest import (ALICE_PW, OUTPOSTCTL, outpostctl_passwd, queue_id,
                      simple_message)


def ctl(d, *args):
    return subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), *args],
                          capture_output=True, text=True, timeout=30)


def keygen(d, selector):
    p = ctl(d, "dkim", "keygen", "example.com", selector, "--dir", str(d.workdir / "dkim"))
    assert p.returncode == 0, p.stderr
    return d.workdir / "dkim" / f"example.com.{selector}.pem"


def send(d, client_factory, tls_ctx, user="alice", password=ALICE_PW):
    c = client_factory(d.port)
    c.login(tls_ctx, user, password)
    r = c.mail_transaction(f"{user}@example.com", ["bob@example.net"], simple_message(
        mail_from=f"{user}@example.com"))
    c.close()
    assert r.code == 250, r
    return queue_id(r)


def signed_selector(d, qid):
    m = d.wait_log(rf"{qid}: dkim d=example\.com s=(\S+) a=rsa-sha256")
    return m.group(1)


def test_reload_picks_up_new_key_and_user(daemon_factory, client_factory, tls_ctx):
    d = daemon_factory(start=False)
    k1 = keygen(d, "old")
    d.sections["domain example.com"]["dkim_key"] = f"old:{k1}"
    d.write_config()
    d.start()
    assert signed_selector(d, send(d, client_factory, tls_ctx)) == "old"

    # Rotate: the new selector signs after a reload, no restart.
    k2 = keygen(d, "new")
    d.sections["domain example.com"]["dkim_key"] = f"new:{k2}"
    # And a new user appears in the users file.
    users = d.sections["server"]["users_file"]
    dave = outpostctl_passwd(d.conf_path, "dave", "dave-Secret-4", "dave@example.com")
    local_users = d.workdir / "users"
    local_users.write_text(open(users).read() + dave + "\n")
    local_users.chmod(0o600)
    d.sections["server"]["users_file"] = str(local_users)
    d.write_config()
    mark = d.mark()
    p = ctl(d, "reload")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "reload" in p.stdout
    d.wait_log(r"reload: \d+ users, DKIM keys for 1 domains", since=mark)
    assert signed_selector(d, send(d, client_factory, tls_ctx)) == "new"
    qid = send(d, client_factory, tls_ctx, user="dave", password="dave-Secret-4")
    assert signed_selector(d, qid) == "new"


def test_reload_refuses_broken_config_and_keeps_running_keys(daemon_factory, client_factory,
                                                              tls_ctx):
    d = daemon_factory(start=False)
    k1 = keygen(d, "good")
    d.sections["domain example.com"]["dkim_key"] = f"good:{k1}"
    d.write_config()
    d.start()

    d.sections["domain example.com"]["dkim_key"] = f"gone:{d.workdir / 'missing.pem'}"
    d.write_config()
    lines = d.conf_path.read_text().splitlines()
    lineno = next(i for i, l in enumerate(lines, 1) if l.startswith("dkim_key"))
    p = ctl(d, "reload")
    assert p.returncode == 1
    assert re.search(rf"{re.escape(str(d.conf_path))}:{lineno}: dkim_key gone: .*missing\.pem: "
                     r"No such file or directory", p.stderr), p.stderr
    assert "not reloading" in p.stderr

    # A SIGHUP that bypasses outpostctl is refused by the daemon itself.
    mark = d.mark()
    os.kill(d.proc.pid, signal.SIGHUP)
    d.wait_log(r"reload: .* has errors; keeping the running configuration, users, DKIM keys and certificates",
               since=mark)
    assert d.running()
    assert signed_selector(d, send(d, client_factory, tls_ctx)) == "good"


def test_reload_without_daemon_says_not_running(daemon_factory):
    d = daemon_factory(start=False)
    p = ctl(d, "reload")
    assert p.returncode == 1
    assert "outpostd is not running" in p.stderr


def test_daemon_reports_its_own_reload_errors(daemon_factory):
    """The control socket's reload answers with the daemon's own check:
    a file that changed after outpostctl's check is still refused, with
    file:line, and the daemon keeps running as it was."""
    import socket
    d = daemon_factory()
    lines = d.conf_path.read_text().splitlines()
    d.conf_path.write_text("\n".join(lines + ["bogus_key = 1"]) + "\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(d.state_dir / "control"))
        s.sendall(b"reload\n")
        out = b""
        while (b := s.recv(4096)):
            out += b
    text = out.decode()
    assert text.startswith("error: not reloaded, the running settings stay: "), text
    assert f"{d.conf_path}:{len(lines) + 1}: " in text, text
    assert d.running()
    d.write_config()
    p = ctl(d, "reload")
    assert p.returncode == 0 and p.stdout.startswith("reloaded: "), p.stdout + p.stderr


def test_reload_applies_config_to_new_sessions(daemon_factory, client_factory, tls_ctx):
    d = daemon_factory()
    old = client_factory(d.port)
    old.login(tls_ctx, "alice", ALICE_PW)              # opened before the reload
    d.sections["server"]["max_recipients"] = "2"
    d.sections["listen submission"]["tls"] = "implicit"    # a restart-only change
    d.write_config()
    mark = d.mark()
    p = ctl(d, "reload")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("reloaded: config, ") and "need a restart" in p.stdout, p.stdout
    d.wait_log(r"reload: \[listen submission\] address or tls changed; takes effect at the next"
               r" start",
               since=mark)
    new = client_factory(d.port)                         # still STARTTLS: restart-only
    new.login(tls_ctx, "alice", ALICE_PW)
    for c, limit in ((new, 2), (old, 5)):
        assert c.cmd("MAIL FROM:<alice@example.com>").code == 250
        codes = [c.cmd(f"RCPT TO:<r{i}@example.net>").code for i in range(limit + 1)]
        assert codes == [250] * limit + [452], (limit, codes)
        c.cmd("QUIT")


def test_reload_names_every_restart_only_change(daemon_factory):
    """Settings read once at start are named, not silently kept: any key of
    an [upstream], log_level, auth_penalty_window, user, metrics_listen."""
    d = daemon_factory()
    d.sections["upstream main"]["idle_timeout"] = "45"
    d.sections["server"]["log_level"] = "info"
    d.sections["server"]["auth_penalty_window"] = "900"
    d.write_config()
    mark = d.mark()
    p = ctl(d, "reload")
    assert p.returncode == 0, p.stdout + p.stderr
    for what in (r"\[upstream main\] changed", r"\[server\] log_level changed",
                 r"\[server\] auth_penalty_window changed"):
        d.wait_log(rf"reload: {what}; takes effect at the next start", since=mark)
    # log_level kept its running value: debug lines go on.
    mark = d.mark()
    ctl(d, "status")
    d.wait_log(r"debug: ", since=mark)
