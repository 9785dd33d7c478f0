"""
Submission server, black box: real clients (smtplib, swaks, raw sockets)
against the real outpostd writing to the maildir upstream.
"""

import base64
import re
import shutil
import smtplib
import socket
import subprocess
import warnings
import email.policy
from email.message import EmailMessage

import pytest

from conftest import (ALICE_PW, HOSTNAME, crlf, dot_stuff, free_port, make_cert,
                      header_names, ipv6_available, outpostctl_passwd, queue_id,
                      simple_message, split_message, wait_until)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # yescrypt verification through libcrypt, as the daemon does

ALICE = "alice@example.com"


def smtplib_login(port, ctx, user="alice", password=ALICE_PW):
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.test")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    s.login(user, password)
    return s


def bare_line_endings(raw):
    """Any LF not preceded by CR, or CR not followed by LF."""
    return re.search(rb"(?<!\r)\n|\r(?!\n)", raw)


# ---------------------------------------------------------------------------
# EHLO


def test_ehlo_plaintext_advertises_starttls_not_auth(daemon, client_factory):
    c = client_factory(daemon.port)
    assert c.greeting.code == 220
    c.ehlo()
    ext = c.extensions()
    for kw in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES",
               "STARTTLS"):
        assert kw in ext, f"EHLO lacks {kw}: {c.ehlo_reply}"
    assert "AUTH" not in ext, "AUTH must not be offered before TLS"
    assert int(ext["SIZE"]) in (1048576, 1000000)


def test_ehlo_after_starttls_advertises_auth(daemon, client_factory, tls_ctx):
    c = client_factory(daemon.port)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    ext = c.extensions()
    assert "STARTTLS" not in ext
    mechs = ext.get("AUTH", "").upper().split()
    assert "PLAIN" in mechs and "LOGIN" in mechs, c.ehlo_reply
    for kw in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"):
        assert kw in ext


def test_helo_vrfy_help_noop_rset_quit(daemon, client_factory):
    c = client_factory(daemon.port)
    assert c.cmd("HELO client.test").code == 250
    assert c.cmd("VRFY alice").code == 252
    assert c.cmd("HELP").code in (211, 214)
    assert c.cmd("NOOP").code == 250
    assert c.cmd("RSET").code == 250
    r = c.cmd("FROB")
    assert r.code == 500
    r = c.cmd("QUIT")
    assert r.code == 221
    assert c.is_closed(3)


# ---------------------------------------------------------------------------
# Submitting with real clients


def test_smtplib_starttls_auth_to_maildir(daemon, tls_ctx):
    s = smtplib_login(daemon.port, tls_ctx)
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "bob@example.net, carol@example.net"
    msg["Subject"] = "smtplib submission"
    msg.set_content("Hello from smtplib.\n")
    assert s.mail(ALICE)[0] == 250
    assert s.rcpt("bob@example.net")[0] == 250
    assert s.rcpt("carol@example.net")[0] == 250
    # smtplib sends bytes as they are: the SMTP policy makes them CRLF.
    code, text = s.data(msg.as_bytes(policy=email.policy.SMTP))
    s.quit()
    assert code == 250, text
    qid = queue_id(f"{code} {text.decode()}")
    daemon.wait_log(rf"{re.escape(qid)}: from=<alice@example\.com>, size=\d+, nrcpt=2, "
                    r"user=alice, client=\[?127\.0\.0\.1\]?")
    for rcpt in ("bob@example.net", "carol@example.net"):
        daemon.wait_log(rf"{re.escape(qid)}: to=<{re.escape(rcpt)}>, relay=\S+, "
                        r"delay=[0-9.]+, dsn=2\.\d+\.\d+, status=sent")
    msgs = daemon.wait_maildir(1)
    assert len(msgs) == 1, "one message, one maildir file"
    assert b"Subject: smtplib submission\r\n" in msgs[0]
    assert b"Hello from smtplib." in msgs[0]


def test_smtplib_auth_login(daemon, tls_ctx):
    s = smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)
    s.ehlo("client.test")
    s.starttls(context=tls_ctx)
    s.ehlo("client.test")
    s.user, s.password = "alice", ALICE_PW
    code, _ = s.auth("LOGIN", s.auth_login)
    assert code == 235
    s.sendmail(ALICE, ["bob@example.net"],
               simple_message(subject="auth login"))
    s.quit()
    assert b"Subject: auth login" in daemon.wait_maildir(1)[0]


def test_auth_login_raw_dialogue(daemon, client_factory, tls_ctx):
    c = client_factory(daemon.port)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    r = c.cmd("AUTH LOGIN")
    assert r.code == 334
    assert base64.b64decode(r.lines[0][4:]).lower().startswith(b"username")
    r = c.cmd(base64.b64encode(b"alice").decode())
    assert r.code == 334
    assert base64.b64decode(r.lines[0][4:]).lower().startswith(b"password")
    r = c.cmd(base64.b64encode(ALICE_PW.encode()).decode())
    assert r.code == 235 and r.enh == "2.7.0", r


def test_auth_plain_without_initial_response(daemon, client_factory, tls_ctx):
    c = client_factory(daemon.port)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    r = c.cmd("AUTH PLAIN")
    assert r.code == 334
    r = c.cmd(base64.b64encode(f"\0alice\0{ALICE_PW}".encode()).decode())
    assert r.code == 235, r
    # A second AUTH in the same session is refused.
    assert c.auth_plain("alice", ALICE_PW).code == 503


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_starttls_auth(daemon):
    p = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{daemon.port}", "--tls",
         "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", ALICE_PW,
         "--from", ALICE, "--to", "bob@example.net",
         "--header", "Subject: swaks test", "--timeout", "10"],
        capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"<~  250 2\.0\.0 Ok: queued as \S+", p.stdout), p.stdout
    msg = daemon.wait_maildir(1)[0]
    assert b"Subject: swaks test\r\n" in msg


# ---------------------------------------------------------------------------
# The bytes that land in the maildir


def test_maildir_bytes_exact(daemon, authed):
    body = (b"first line\r\n"
            b".leading dot\r\n"
            b"..two dots\r\n"
            b".\r\n"
            b"  indented line with trailing space \r\n"
            b"\r\n"
            b"Gr\xc3\xbc\xc3\x9fe \xe2\x80\x94 8-bit body \xe2\x9c\x93 \xff\xfe\r\n"
            b"MAIL FROM:<evil@example.net>\r\n"
            b"last line\r\n")
    head = (b"From: Alice <alice@example.com>\r\n"
            b"To: bob@example.net\r\n"
            b"Bcc: hidden@example.net\r\n"
            b"Subject: bytes\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n")
    r = authed.cmd(f"MAIL FROM:<{ALICE}> BODY=8BITMIME")
    assert r.code == 250, r
    assert authed.cmd("RCPT TO:<bob@example.net>").code == 250
    assert authed.cmd("RCPT TO:<hidden@example.net>").code == 250
    assert authed.cmd("DATA").code == 354
    authed.send(dot_stuff(head + b"\r\n" + body))
    qid = queue_id(authed.reply())
    daemon.wait_log(rf"{re.escape(qid)}: to=<hidden@example\.net>.*status=sent")
    daemon.wait_log(rf"{re.escape(qid)}: to=<bob@example\.net>.*status=sent")
    msgs = daemon.wait_maildir(1)
    assert len(msgs) == 1
    raw = msgs[0]
    assert not bare_line_endings(raw), "only CRLF line endings"
    headers, got_body = split_message(raw)
    names = header_names(headers)
    assert names[0] == "received", f"Received: must come first, got {names}"
    assert HOSTNAME.encode() in headers[0]
    assert "bcc" not in names
    assert b"hidden@example.net" not in raw.split(b"\r\n\r\n", 1)[0]
    assert names.count("date") == 1 and names.count("message-id") == 1
    # The original headers keep their order and bytes.
    orig = [h for h in headers if not h.lower().startswith((b"received:", b"date:",
                                                            b"message-id:"))]
    assert orig == [h for h in head.split(b"\r\n") if h and not h.startswith(b"Bcc:")]
    assert got_body == body, "body must arrive byte for byte"


def test_existing_date_and_message_id_kept(daemon, authed):
    data = simple_message(extra_headers="Date: Tue, 1 Apr 2025 10:00:00 +0000\n"
                                        "Message-ID: <keep.me@example.com>\n")
    qid = queue_id(authed.mail_transaction(ALICE, ["bob@example.net"], data))
    raw = daemon.wait_maildir(1)[0]
    names = header_names(split_message(raw)[0])
    assert names.count("date") == 1 and names.count("message-id") == 1
    assert b"Message-ID: <keep.me@example.com>\r\n" in raw
    assert b"Date: Tue, 1 Apr 2025 10:00:00 +0000\r\n" in raw
    assert qid


def test_relative_paths_resolve_against_config_dir(daemon_factory, tls_files, users_file,
                                                   client_factory, tls_ctx, tmp_path):
    d = daemon_factory(start=False, subdir="rel")
    shutil.copy(tls_files[0], d.workdir / "cert.pem")
    shutil.copy(tls_files[1], d.workdir / "key.pem")
    shutil.copy(users_file, d.workdir / "users")
    d.sections["server"].update(state_dir="state", users_file="users")
    d.sections["listen submission"].update(cert="cert.pem", key="key.pem")
    d.write_config()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    d.start(cwd=elsewhere)
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    queue_id(c.mail_transaction(ALICE, ["bob@example.net"], simple_message()))
    d.wait_maildir(1)
    assert (d.workdir / "state" / "queue.db").exists()
    assert not (elsewhere / "state").exists()


# ---------------------------------------------------------------------------
# Pipelining


def test_pipelining_replies_in_order(daemon, authed):
    authed.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<a@example.net>\r\n"
                "RCPT TO:<b@example.net>\r\nDATA\r\n")
    codes = [r.code for r in authed.replies(4)]
    assert codes == [250, 250, 250, 354]
    authed.send(dot_stuff(simple_message()))
    qid = queue_id(authed.reply())
    daemon.wait_log(rf"{re.escape(qid)}: from=<alice@example\.com>, size=\d+, nrcpt=2")


def test_pipelining_with_a_bad_recipient(daemon, authed):
    authed.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<bad address>\r\n"
                "RCPT TO:<b@example.net>\r\nDATA\r\n")
    codes = [r.code for r in authed.replies(4)]
    assert codes[0] == 250 and codes[1] in (501, 553) and codes[2:] == [250, 354]
    authed.send(dot_stuff(simple_message()))
    queue_id(authed.reply())


def test_pipelined_data_after_refused_mail_gets_no_354(daemon, authed):
    authed.send("MAIL FROM:<ceo@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
    r1, r2, r3 = authed.replies(3)
    assert r1.code == 553 and r1.enh == "5.7.1", r1
    assert 500 <= r2.code < 600
    assert 500 <= r3.code < 600, "DATA without a valid transaction must not get 354"
    assert authed.cmd("NOOP").code == 250


def test_whole_session_in_one_write(daemon, client_factory, tls_ctx):
    """After AUTH, the entire transaction and QUIT in one write (RFC 2920
    lets DATA end a group, but a server must cope with more)."""
    c = client_factory(daemon.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    c.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n".encode()
           + dot_stuff(simple_message(subject="one write")) + b"QUIT\r\n")
    codes = [r.code for r in c.replies(5)]
    assert codes == [250, 250, 354, 250, 221]
    assert b"Subject: one write" in daemon.wait_maildir(1)[0]


# ---------------------------------------------------------------------------
# Limits


def test_max_recipients(daemon, authed):
    assert authed.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    for i in range(5):
        assert authed.cmd(f"RCPT TO:<r{i}@example.net>").code == 250
    r = authed.cmd("RCPT TO:<r5@example.net>")
    assert r.code == 452 and r.enh == "4.5.3", r
    assert authed.cmd("DATA").code == 354
    authed.send(dot_stuff(simple_message()))
    qid = queue_id(authed.reply())
    daemon.wait_log(rf"{re.escape(qid)}: from=<alice@example\.com>, size=\d+, nrcpt=5,")


def test_command_line_512_ok_513_refused(daemon, client_factory):
    c = client_factory(daemon.port)
    c.ehlo()
    line512 = b"NOOP " + b"x" * (512 - 2 - 5)
    assert len(line512 + b"\r\n") == 512
    assert c.cmd(line512).code == 250
    r = c.cmd(line512 + b"y")
    assert r.code == 500 and r.enh == "5.5.2", r
    assert c.cmd("NOOP").code == 250


def test_size_parameter_too_large(daemon, authed):
    size = int(authed.extensions()["SIZE"])
    r = authed.cmd(f"MAIL FROM:<{ALICE}> SIZE={size + 1}")
    assert r.code == 552 and r.enh == "5.3.4", r
    assert authed.cmd(f"MAIL FROM:<{ALICE}> SIZE={size // 2}").code == 250


def test_streamed_oversize_rejected_at_dot(daemon, authed):
    size = int(authed.extensions()["SIZE"])
    assert authed.cmd(f"MAIL FROM:<{ALICE}>").code == 250
    assert authed.cmd("RCPT TO:<b@example.net>").code == 250
    assert authed.cmd("DATA").code == 354
    line = b"y" * 76 + b"\r\n"
    body = line * (size // len(line) + 2000)
    authed.send(dot_stuff(simple_message() + body))
    r = authed.reply(timeout=20)
    assert r.code == 552 and r.enh == "5.3.4", r
    daemon.assert_nothing_queued()
    # The session goes on: a normal message still works.
    queue_id(authed.mail_transaction(ALICE, ["b@example.net"], simple_message()))


# ---------------------------------------------------------------------------
# RFC 5322 checks


def reject_5322(daemon, client, data):
    client.cmd("RSET")
    r = client.mail_transaction(ALICE, ["b@example.net"], data)
    assert r.code == 550 and r.enh == "5.6.0", r
    return r


def test_two_from_headers(daemon, authed):
    r = reject_5322(daemon, authed, simple_message(extra_headers="From: alice@example.com\n"))
    assert "from" in r.text.lower()
    daemon.assert_nothing_queued()


def test_from_with_two_mailboxes(daemon, authed):
    data = crlf("From: alice@example.com, carol@example.org\nTo: b@example.net\n"
                "Subject: two\n\nbody\n")
    reject_5322(daemon, authed, data)
    daemon.assert_nothing_queued()


def test_missing_from(daemon, authed):
    reject_5322(daemon, authed, crlf("To: b@example.net\nSubject: none\n\nbody\n"))
    daemon.assert_nothing_queued()


@pytest.mark.parametrize("header", ["Subject: again", "To: c@example.net",
                                    "Message-ID: <a@b>\nMessage-ID: <c@d>",
                                    "Date: Tue, 1 Apr 2025 10:00:00 +0000\n"
                                    "Date: Tue, 1 Apr 2025 10:00:01 +0000"])
def test_duplicate_single_instance_header(daemon, authed, header):
    r = reject_5322(daemon, authed, simple_message(extra_headers=header + "\n"))
    name = header.split(":")[0].lower()
    assert name in r.text.lower(), f"the reply should name {name}: {r}"
    daemon.assert_nothing_queued()


def test_line_999_octets_refused_998_accepted(daemon, authed):
    reject_5322(daemon, authed, simple_message(body="z" * 999 + "\n"))
    daemon.assert_nothing_queued()
    authed.cmd("RSET")
    qid = queue_id(authed.mail_transaction(ALICE, ["b@example.net"],
                                           simple_message(body="z" * 998 + "\n")))
    assert (b"z" * 998 + b"\r\n") in daemon.wait_maildir(1)[0]
    assert qid


# ---------------------------------------------------------------------------
# Line endings in commands (the DATA cases are in test_security.py, S1)


@pytest.mark.parametrize("bad", [b"NOOP\nRSET\r\n", b"NOOP\rRSET\r\n"], ids=["lf", "cr"])
def test_bare_cr_lf_in_command(daemon, client_factory, bad):
    c = client_factory(daemon.port)
    c.ehlo()
    c.send(bad)
    r = c.reply()
    assert r.code == 500 and r.enh == "5.5.2", r
    # One reply for the whole line: the next reply answers the next command.
    assert c.cmd("VRFY x").code == 252


# ---------------------------------------------------------------------------
# Listeners


def test_trusted_network_submits_without_auth(daemon_factory, client_factory):
    d = daemon_factory({"server": {"trusted_networks": "127.0.0.0/8, ::1"},
                        "listen submission": {"auth": "optional", "tls": "none",
                                              "cert": None, "key": None}})
    c = client_factory(d.port)
    c.ehlo()
    assert "STARTTLS" not in c.extensions()
    qid = queue_id(c.mail_transaction("printer@example.com", ["b@example.net"],
                                      simple_message(mail_from="printer@example.com")))
    d.wait_log(rf"{re.escape(qid)}: from=<printer@example\.com>, size=\d+, nrcpt=1, .*"
               r"client=\[?127\.0\.0\.1\]?")
    d.wait_maildir(1)


def test_implicit_tls_listener(daemon_factory, tls_files, tls_ctx):
    port = free_port()
    d = daemon_factory({"listen smtps": {"address": f"127.0.0.1:{port}", "tls": "implicit",
                                         "auth": "required", "cert": str(tls_files[0]),
                                         "key": str(tls_files[1])}})
    s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=tls_ctx)
    s.ehlo("client.test")
    assert not s.has_extn("starttls")
    assert "PLAIN" in s.esmtp_features.get("auth", "").upper()
    s.login("alice", ALICE_PW)
    s.sendmail(ALICE, ["bob@example.net"], simple_message(subject="implicit"))
    s.quit()
    assert b"Subject: implicit" in d.wait_maildir(1)[0]
    if shutil.which("swaks"):
        p = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{port}", "--tls-on-connect",
             "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", ALICE_PW,
             "--from", ALICE, "--to", "bob@example.net", "--header", "Subject: swaks smtps",
             "--timeout", "10"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
        wait_until(lambda: any(b"Subject: swaks smtps" in m for m in d.maildir_messages()),
                   10, "the swaks message")


@pytest.mark.skipif(not ipv6_available(), reason="::1 not available")
def test_ipv6_listener(daemon_factory, client_factory, tls_ctx):
    port = free_port(socket.AF_INET6)
    d = daemon_factory({"listen submission": {"address": f"[::1]:{port}"}})
    c = client_factory(port, host="::1")
    c.login(tls_ctx, "alice", ALICE_PW)
    qid = queue_id(c.mail_transaction(ALICE, ["b@example.net"], simple_message()))
    d.wait_log(rf"{re.escape(qid)}: from=<alice@example\.com>, .*client=\[?::1\b")
    d.wait_maildir(1)


# ---------------------------------------------------------------------------
# Command line and tools


def test_check_config_reports_file_line_errors(daemon_factory, tls_files):
    d = daemon_factory(start=False)
    text = "\n".join([
        "[server]",                                     # 1
        f"hostname = {HOSTNAME}",                       # 2
        f"state_dir = {d.state_dir}",                   # 3
        "max_message_size = lots",                      # 4
        "max_recipients = -3",                          # 5
        "",                                             # 6
        "[listen submission]",                          # 7
        "address = 127.0.0.1:99999",                    # 8
        "tls = sometimes",                              # 9
        f"cert = {tls_files[0]}",                       # 10
        f"key = {tls_files[1]}",                        # 11
        "",                                             # 12
        "[queue]",                                      # 13
        "retry = soon",                                 # 14
    ]) + "\n"
    d.write_config(text)
    p = d.check_config()
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout + p.stderr
    errs = re.findall(r"^(\S*?):(\d+): (.*)$", out, re.M)
    assert errs, f"no file:line: errors in {out!r}"
    assert all(f.endswith("outpost.conf") for f, _, _ in errs), out
    lines = {int(n) for _, n, _ in errs}
    for expected in (4, 5, 8, 9, 14):
        assert expected in lines, f"no error for line {expected}: {out}"


def test_check_config_ok(daemon_factory):
    d = daemon_factory(start=False)
    p = d.check_config()
    assert p.returncode == 0, p.stdout + p.stderr


def test_missing_cert_is_reported(daemon_factory, tmp_path):
    """Caught by -n, or at the latest by start-up with a clear message."""
    d = daemon_factory(start=False)
    d.sections["listen submission"]["cert"] = str(tmp_path / "nope.pem")
    d.write_config()
    p = d.check_config()
    if p.returncode != 0:
        assert "nope.pem" in p.stdout + p.stderr
        return
    with pytest.raises(AssertionError, match="exited"):
        d.start()
    assert "nope.pem" in d.log()


def test_check_config_key_not_matching_cert(daemon_factory, tmp_path):
    """-n loads each listener's certificate and key, so a key that belongs
    to another certificate is reported with the [listen] line."""
    other_cert, other_key = make_cert(tmp_path / "other")
    d = daemon_factory(start=False)
    d.sections["listen submission"]["key"] = str(other_key)
    d.write_config()
    p = d.check_config()
    assert p.returncode == 1, p.stdout + p.stderr
    lines = d.conf_path.read_text().splitlines()
    lineno = lines.index("[listen submission]") + 1
    assert re.search(rf"^{re.escape(str(d.conf_path))}:{lineno}: \[listen submission\]: key "
                     rf"{re.escape(str(other_key))}: .*mismatch", p.stderr, re.M), p.stderr


def test_outpostctl_passwd_line(daemon_factory):
    d = daemon_factory(start=False)
    line = outpostctl_passwd(d.conf_path, "carol", "carol pass: with colon",
                             "carol@example.com,@example.org")
    name, hsh, senders = line.split(":", 2)
    assert name == "carol"
    assert senders == "carol@example.com,@example.org"
    assert hsh.startswith("$")
    assert crypt.crypt("carol pass: with colon", hsh) == hsh
    assert crypt.crypt("wrong", hsh) != hsh


def test_sigterm_exits_zero(daemon):
    assert daemon.stop() == 0


def test_no_password_in_log(daemon, client_factory, tls_ctx):
    c = client_factory(daemon.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    c2 = client_factory(daemon.port)
    c2.ehlo()
    c2.starttls(tls_ctx)
    c2.ehlo()
    assert c2.auth_plain("alice", "Wrong-Pass-77").code == 535
    log = daemon.log()
    token = base64.b64encode(f"\0alice\0{ALICE_PW}".encode()).decode()
    for secret in (ALICE_PW, token, "Wrong-Pass-77"):
        assert secret not in log, "a password reached the log"
