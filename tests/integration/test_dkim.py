"""
DKIM signing, black box: keys made by the real `outpostctl dkim keygen`,
messages relayed through the real outpostd, every signature checked by an
independent implementation (dkimpy) against the TXT records keygen printed,
served by a DNS function of the test instead of the real DNS.

Also: over-signing and tampering, the log line per signature, the unsigned
policy (reject by default, relay), dkim_subdomains, the key checks at config
load, and the key lifecycle commands (keygen, dns).
"""

import base64
import logging
import os
import pwd
import re
import stat
import subprocess
from dataclasses import dataclass
from email.message import EmailMessage
import email.policy
from pathlib import Path

import dkim
import dkim.util
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conftest import (OUTPOSTCTL, USERS, crlf, default_sections, dot_stuff, free_port,
                      parse_txt_records, queue_id, render_config, simple_message,
                      txt_dnsfunc)

ALICE = "alice@example.com"
SIGNED_HEADERS_OVERSIGNED = ("from", "subject", "date", "to")

log = logging.getLogger("test_dkim.dkimpy")


@dataclass
class Key:
    domain: str
    selector: str
    type: str                   # "rsa" or "ed25519"
    path: Path
    stdout: str                 # what keygen printed
    strings: list               # the quoted strings of the TXT record

    @property
    def name(self):
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def txt(self):
        return "".join(self.strings).encode()

    def conf(self):
        return f"{self.selector}:{self.path}"


def keygen(conf, domain, selector, *extra, check=True):
    """Run the real `outpostctl dkim keygen`; returns the CompletedProcess."""
    p = subprocess.run([OUTPOSTCTL, "-c", str(conf), "dkim", "keygen", domain, selector,
                        *extra], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, \
            f"dkim keygen {domain} {selector} {extra} failed ({p.returncode}):\n{p.stdout}{p.stderr}"
    return p


def make_key(conf, keydir, domain, selector, type_="rsa", bits=None):
    extra = ["--type", type_, "--dir", str(keydir)]
    if bits:
        extra += ["--bits", str(bits)]
    p = keygen(conf, domain, selector, *extra)
    path = Path(keydir) / f"{domain}.{selector}.pem"
    assert path.is_file(), f"keygen did not write {path}:\n{p.stdout}"
    recs = parse_txt_records(p.stdout)
    name = f"{selector}._domainkey.{domain}"
    assert name in recs, f"no TXT record for {name} in keygen output:\n{p.stdout}"
    return Key(domain, selector, type_, path, p.stdout, recs[name])


def dns_for(*keys):
    """A dkimpy dnsfunc serving the TXT records of keys."""
    return txt_dnsfunc({k.name: k.txt for k in keys})


@pytest.fixture(scope="session")
def ctl_conf(tmp_path_factory, binaries, tls_files, users_file):
    """A valid config (without keys) for outpostctl to run with."""
    d = tmp_path_factory.mktemp("dkimctl")
    (d / "state").mkdir()
    conf = d / "outpost.conf"
    conf.write_text(render_config(default_sections(d, free_port(), tls_files, users_file)))
    return conf


@pytest.fixture(scope="session")
def keys(ctl_conf):
    """Keys made once per session with the real keygen."""
    keydir = ctl_conf.parent / "keys"
    return {
        "rsa": make_key(ctl_conf, keydir, "example.com", "s2026"),
        "rsa1024": make_key(ctl_conf, keydir, "example.com", "old1024", bits=1024),
        "ed": make_key(ctl_conf, keydir, "example.com", "e2026", "ed25519"),
        "rsa_new": make_key(ctl_conf, keydir, "example.com", "s2027"),
        "ed_new": make_key(ctl_conf, keydir, "example.com", "e2027", "ed25519"),
        "org": make_key(ctl_conf, keydir, "example.org", "org2026"),
        "news": make_key(ctl_conf, keydir, "news.example.com", "n2026"),
    }


# ---------------------------------------------------------------------------
# Signatures


def sig_headers(raw):
    """The DKIM-Signature values, top first, as tag dicts (bytes keys)."""
    d = dkim.DKIM(raw, logger=log)
    return [dkim.util.parse_tag_value(v) for k, v in d.headers
            if k.lower() == b"dkim-signature"]


def verifies(raw, idx, dnsfunc):
    try:
        return bool(dkim.DKIM(raw, logger=log).verify(idx=idx, dnsfunc=dnsfunc))
    except dkim.DKIMException as e:
        log.info("signature %d: %s", idx, e)
        return False


def h_list(sig):
    return [h.strip().lower() for h in sig[b"h"].decode().split(":")]


def assert_all_verify(raw, *keys, expect=None, on_top=True):
    """Every DKIM-Signature of raw verifies against keys' TXT records;
    expect: the (d, s, a) triples, in order; on_top: the signatures are
    the first header fields, right before our Received:. Returns the tag
    dicts."""
    sigs = sig_headers(raw)
    assert sigs, f"no DKIM-Signature in\n{raw[:2000]!r}"
    f = dns_for(*keys)
    for i, sig in enumerate(sigs):
        assert verifies(raw, i, f), \
            f"signature {i} ({sig.get(b'a')}, s={sig.get(b's')}) does not verify:\n{raw[:3000]!r}"
        assert sig[b"c"] == b"relaxed/relaxed", sig
        assert b"l" not in sig, f"l= tag present: {sig}"
        assert sig[b"v"] == b"1"
    if expect is not None:
        got = [(s[b"d"].decode(), s[b"s"].decode(), s[b"a"].decode()) for s in sigs]
        assert got == list(expect), got
    if not on_top:
        return sigs
    names = [k.lower() for k, _ in dkim.DKIM(raw, logger=log).headers]
    n = len(sigs)
    assert names[:n] == [b"dkim-signature"] * n, f"signatures not on top: {names}"
    assert names[n] == b"received", f"our Received: must follow the signatures: {names}"
    return sigs


def signing_config(*keys, domain="example.com", **server):
    cfg = {f"domain {domain}": {"dkim_key": ", ".join(k.conf() for k in keys)}}
    if server:
        cfg["server"] = server
    return cfg


def submit(d, client_factory, tls_ctx, data, user="alice", mail_from=ALICE,
           rcpts=("bob@example.net",), params=""):
    """One transaction as user; returns the reply to the final dot."""
    c = client_factory(d.port)
    c.login(tls_ctx, user, USERS[user][0])
    r = c.cmd(f"MAIL FROM:<{mail_from}>{params}")
    assert r.code == 250, r
    for rc in rcpts:
        r = c.cmd(f"RCPT TO:<{rc}>")
        assert r.code == 250, r
    r = c.cmd("DATA")
    assert r.code == 354, r
    c.send(dot_stuff(data))
    reply = c.reply()
    c.cmd("QUIT")
    return reply


def send_signed(d, client_factory, tls_ctx, data, **kw):
    """Submit, expect 250, return (queue id, the delivered bytes)."""
    r = submit(d, client_factory, tls_ctx, data, **kw)
    assert r.code == 250, r
    qid = queue_id(r)
    raw = d.wait_maildir(1)[0]
    return qid, raw


# ---------------------------------------------------------------------------
# Messages that must survive signing and relaying


def msg_plain():
    return simple_message(subject="plain ASCII", body="Hello Bob,\n\nplain text.\n\n-- \nAlice\n")


def msg_utf8():
    head = ("From: =?utf-8?q?Al=C3=AFce?= <alice@example.com>\nTo: bob@example.net\n"
            "Subject: 8-bit body\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
    body = "Grüße aus Köln, ça va? €100 — 日本語のテキスト\n\tTab-indented  double  spaces \n"
    return crlf(head.encode() + body.encode("utf-8"))


def msg_multipart():
    m = EmailMessage()
    m["From"] = "Alice <alice@example.com>"
    m["To"] = "bob@example.net"
    m["Subject"] = "multipart/alternative with an attachment"
    m["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    m.set_content("Plain part.\n")
    m.add_alternative("<html><body><p>HTML part.</p></body></html>\n", subtype="html")
    m.add_attachment(bytes(range(256)) * 40, maintype="application",
                     subtype="octet-stream", filename="data.bin")
    raw = m.as_bytes(policy=email.policy.SMTP)
    assert b"Content-Transfer-Encoding: base64" in raw
    return raw


def msg_long_headers():
    words = " ".join(f"word{i:03d}" for i in range(100))     # 799 characters
    subject = ("A very long subject " + words + " " + "x" * 80)[:900]
    assert len(subject) == 900
    # Fold before a space every ~70 characters, as RFC 5322 2.2.3 allows.
    folded, line = [], ""
    for w in subject.split(" "):
        if line and len(line) + 1 + len(w) > 70:
            folded.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    folded.append(line)
    subj_field = "\n ".join(folded)
    to = ",\n\t".join(f"rcpt{i}@example.net" for i in range(25))
    return crlf(f"From: Alice <alice@example.com>\nTo: {to}\nSubject: {subj_field}\n"
                f"X-Long:   spaced    value\t with\ttabs   \n"
                f"Reply-To:\n   alice@example.com\n\nBody.\n")


def msg_dots():
    return simple_message(subject="dots", body=".leading dot\n..two dots\n.\n. space\nend\n")


def msg_trailing_blank_lines():
    return simple_message(subject="trailing", body="text\n\n\n\n\n")


def msg_crlf_only_body():
    return crlf("From: alice@example.com\nTo: bob@example.net\nSubject: crlf only\n\n\n\n\n")


def msg_no_body():
    return crlf("From: alice@example.com\nTo: bob@example.net\nSubject: header only\n")


MESSAGES = {
    "plain": (msg_plain, ""),
    "utf8-8bitmime": (msg_utf8, " BODY=8BITMIME"),
    "multipart-attachment": (msg_multipart, ""),
    "folded-long-headers": (msg_long_headers, ""),
    "leading-dots": (msg_dots, ""),
    "trailing-blank-lines": (msg_trailing_blank_lines, ""),
    "crlf-only-body": (msg_crlf_only_body, ""),
    "no-body": (msg_no_body, ""),
}


@pytest.mark.parametrize("case", list(MESSAGES))
def test_relayed_message_verifies(case, keys, daemon_factory, client_factory, tls_ctx):
    build, params = MESSAGES[case]
    d = daemon_factory(signing_config(keys["rsa"], keys["ed"]))
    data = build()
    qid, raw = send_signed(d, client_factory, tls_ctx, data, params=params)
    assert_all_verify(raw, keys["rsa"], keys["ed"],
                      expect=[("example.com", "s2026", "rsa-sha256"),
                              ("example.com", "e2026", "ed25519-sha256")])
    if case == "utf8-8bitmime":
        assert "Grüße".encode() in raw, "8-bit body must arrive as sent"
    if case == "leading-dots":
        assert b"\r\n.leading dot\r\n..two dots\r\n.\r\n" in raw, "dots must be unstuffed once"


def test_rsa2048_one_signature_and_log_line(keys, daemon_factory, client_factory, tls_ctx):
    d = daemon_factory(signing_config(keys["rsa"]))
    qid, raw = send_signed(d, client_factory, tls_ctx, msg_plain())
    (sig,) = assert_all_verify(raw, keys["rsa"],
                               expect=[("example.com", "s2026", "rsa-sha256")])
    assert raw.startswith(b"DKIM-Signature:")
    d.wait_log(rf"{re.escape(qid)}: dkim d=example\.com s=s2026 a=rsa-sha256\b")
    assert len(re.findall(rf"{re.escape(qid)}: dkim ", d.log())) == 1
    # The key never reaches the log.
    pem = keys["rsa"].path.read_text()
    body = "".join(l for l in pem.splitlines() if not l.startswith("-----"))
    assert body[:40] not in d.log()


def test_rsa1024_warns_but_signs(keys, daemon_factory, client_factory, tls_ctx):
    d = daemon_factory(signing_config(keys["rsa1024"]), start=False)
    p = d.check_config()
    assert p.returncode == 0, p.stdout + p.stderr
    line = dkim_key_line(d.conf_path)
    out = p.stdout + p.stderr
    assert re.search(rf"{re.escape(str(d.conf_path))}:{line}: warning: .*1024", out), out
    d.start()
    assert re.search(r"warning: .*1024", d.log()), d.log_tail()
    qid, raw = send_signed(d, client_factory, tls_ctx, msg_plain())
    assert_all_verify(raw, keys["rsa1024"], expect=[("example.com", "old1024", "rsa-sha256")])
    d.wait_log(rf"{re.escape(qid)}: dkim d=example\.com s=old1024 a=rsa-sha256\b")


def test_rsa_and_ed25519_both_sign_and_verify(keys, daemon_factory, client_factory, tls_ctx):
    d = daemon_factory(signing_config(keys["rsa"], keys["ed"]))
    qid, raw = send_signed(d, client_factory, tls_ctx, msg_plain())
    sigs = sig_headers(raw)
    assert len(sigs) == 2
    assert {s[b"a"] for s in sigs} == {b"rsa-sha256", b"ed25519-sha256"}
    # Each one on its own: a verifier that only knows one key still passes.
    assert verifies(raw, 0, dns_for(keys["rsa"]))
    assert verifies(raw, 1, dns_for(keys["ed"]))
    assert_all_verify(raw, keys["rsa"], keys["ed"])
    # dkim.verify() checks the first signature only; that one must be RSA,
    # the one every receiver understands.
    assert dkim.verify(raw, dnsfunc=dns_for(keys["rsa"]))
    for s, a in (("s2026", "rsa-sha256"), ("e2026", "ed25519-sha256")):
        d.wait_log(rf"{re.escape(qid)}: dkim d=example\.com s={s} a={a}\b")


def test_dkim_key_repeated_on_several_lines(keys, daemon_factory, client_factory, tls_ctx,
                                            tmp_path):
    """Each dkim_key line adds keys (config lines are capped at 199
    characters); a bad key on the second line is reported at that line."""
    d = daemon_factory(start=False)
    d.sections["domain example.com"]["dkim_key"] = keys["rsa"].conf()
    d.write_config()
    text = d.conf_path.read_text().replace(
        f"dkim_key = {keys['rsa'].conf()}\n",
        f"dkim_key = {keys['rsa'].conf()}\ndkim_key = {keys['ed'].conf()}\n")
    d.conf_path.write_text(text)
    d.start()
    qid, raw = send_signed(d, client_factory, tls_ctx, msg_plain())
    assert_all_verify(raw, keys["rsa"], keys["ed"],
                      expect=[("example.com", "s2026", "rsa-sha256"),
                              ("example.com", "e2026", "ed25519-sha256")])
    d.stop()

    missing = tmp_path / "missing.pem"
    d.conf_path.write_text(text.replace(f"dkim_key = {keys['ed'].conf()}\n",
                                        f"dkim_key = e9:{missing}\n"))
    lines = d.conf_path.read_text().splitlines()
    second = [i for i, l in enumerate(lines, 1) if l.startswith("dkim_key")][1]
    p = d.check_config()
    assert p.returncode == 1
    assert re.search(rf":{second}: dkim_key e9: {re.escape(str(missing))}: No such file",
                     p.stderr), p.stderr


def test_relayed_to_smtp_upstream_verifies(keys, daemon_factory, upstream, client_factory,
                                           tls_ctx):
    cfg = signing_config(keys["rsa"], keys["ed"])
    cfg["upstream main"] = upstream.upstream_section()
    d = daemon_factory(cfg)
    r = submit(d, client_factory, tls_ctx, msg_utf8(), params=" BODY=8BITMIME")
    assert r.code == 250, r
    got = upstream.wait_messages(1)[0]
    assert_all_verify(got.content, keys["rsa"], keys["ed"],
                      expect=[("example.com", "s2026", "rsa-sha256"),
                              ("example.com", "e2026", "ed25519-sha256")])


def test_relative_key_path_and_default_keygen_dir(binaries, daemon_factory, client_factory,
                                                  tls_ctx):
    """keygen without --dir writes into <config dir>/dkim; dkim_key paths
    are relative to the config file's directory."""
    d = daemon_factory(start=False)
    p = keygen(d.conf_path, "example.com", "rel2026")
    path = d.conf_path.parent / "dkim" / "example.com.rel2026.pem"
    assert path.is_file(), p.stdout
    recs = parse_txt_records(p.stdout)
    key = Key("example.com", "rel2026", "rsa", path, p.stdout,
              recs["rel2026._domainkey.example.com"])
    d.sections["domain example.com"]["dkim_key"] = "rel2026:dkim/example.com.rel2026.pem"
    d.write_config()
    d.start(cwd="/")
    qid, raw = send_signed(d, client_factory, tls_ctx, msg_plain())
    assert_all_verify(raw, key, expect=[("example.com", "rel2026", "rsa-sha256")])


# ---------------------------------------------------------------------------
# Key rotation (docs/DKIM.md): old and new keys sign side by side, then the
# new ones alone; `outpostctl reload` switches without a restart.


def local_keys(d, *keys):
    """Copy keys into the daemon's dkim/ (mode 0600); the dkim_key value
    with paths relative to the config file."""
    kd = d.conf_path.parent / "dkim"
    kd.mkdir(exist_ok=True)
    for k in keys:
        dst = kd / k.path.name
        if not dst.exists():
            dst.write_bytes(k.path.read_bytes())
            dst.chmod(0o600)
    return ", ".join(f"{k.selector}:dkim/{k.path.name}" for k in keys)


def reload_daemon(d):
    mark = d.mark()
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "reload"],
                       capture_output=True, text=True, timeout=30)
    if p.returncode == 0:
        d.wait_log(r"reload: \d+ users, DKIM keys for \d+ domains", since=mark)
    return p


def test_rotation_overlap_and_reload(keys, daemon_factory, client_factory, tls_ctx):
    old = (keys["rsa"], keys["ed"])
    new = (keys["rsa_new"], keys["ed_new"])
    d = daemon_factory(start=False)
    d.sections["domain example.com"]["dkim_key"] = local_keys(d, *old)
    d.write_config()
    d.start()

    def send(n):
        r = submit(d, client_factory, tls_ctx, simple_message(subject=f"rotation {n}"))
        assert r.code == 250, r
        return d.wait_maildir(n)[-1]

    before = send(1)
    assert_all_verify(before, *old, expect=[("example.com", "s2026", "rsa-sha256"),
                                            ("example.com", "e2026", "ed25519-sha256")])

    # Overlap: four keys, four signatures; the line stays short with
    # relative paths.
    d.sections["domain example.com"]["dkim_key"] = local_keys(d, *old, *new)
    d.write_config()
    p = reload_daemon(d)
    assert p.returncode == 0, p.stdout + p.stderr
    during = send(2)
    assert_all_verify(during, *old, *new,
                      expect=[("example.com", s, a) for s, a in
                              (("s2026", "rsa-sha256"), ("e2026", "ed25519-sha256"),
                               ("s2027", "rsa-sha256"), ("e2027", "ed25519-sha256"))])
    # A receiver that already sees only the new records still passes.
    assert verifies(during, 2, dns_for(*new))

    # Switched: only the new keys sign; mail signed earlier still verifies
    # as long as the old records stay published.
    d.sections["domain example.com"]["dkim_key"] = local_keys(d, *new)
    d.write_config()
    p = reload_daemon(d)
    assert p.returncode == 0, p.stdout + p.stderr
    after = send(3)
    assert_all_verify(after, *new, expect=[("example.com", "s2027", "rsa-sha256"),
                                           ("example.com", "e2027", "ed25519-sha256")])
    assert_all_verify(before, *old)
    assert all_fail(before, *new), "old mail must need the old records"


def test_reload_with_a_bad_key_keeps_the_running_keys(keys, daemon_factory, client_factory,
                                                      tls_ctx, tmp_path):
    d = daemon_factory(signing_config(keys["rsa"]))
    value, _ = bad_key("mode-0644", tmp_path, keys)
    d.sections["domain example.com"]["dkim_key"] = value
    d.write_config()
    p = reload_daemon(d)
    assert p.returncode != 0, p.stdout
    assert "readable by group or others" in p.stdout + p.stderr
    qid, raw = send_signed(d, client_factory, tls_ctx, msg_plain())
    assert_all_verify(raw, keys["rsa"], expect=[("example.com", "s2026", "rsa-sha256")])


# ---------------------------------------------------------------------------
# What may and may not change after signing


def insert_on_top(raw, field):
    return field + b"\r\n" + raw


def insert_after_signatures(raw, field):
    """Insert a header field right after the DKIM-Signature fields."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    i = 0
    in_sig = False
    while i < len(lines):
        if lines[i].lower().startswith(b"dkim-signature:"):
            in_sig = True
        elif not (in_sig and lines[i][:1] in (b" ", b"\t")):
            break
        i += 1
    lines.insert(i, field)
    return b"\r\n".join(lines) + sep + body


def append_header(raw, field):
    head, sep, body = raw.partition(b"\r\n\r\n")
    return head + b"\r\n" + field + sep + body


def all_fail(raw, *keys):
    f = dns_for(*keys)
    n = len(sig_headers(raw))
    return n > 0 and not any(verifies(raw, i, f) for i in range(n))


@pytest.fixture
def signed_pair(keys, daemon_factory, client_factory, tls_ctx):
    """A message signed with RSA and Ed25519; its bytes and the keys."""
    d = daemon_factory(signing_config(keys["rsa"], keys["ed"]))
    data = simple_message(subject="over-signing", body="Original body.\n",
                          extra_headers="Date: Mon, 02 Nov 2026 10:00:00 +0000\n"
                                        "List-Unsubscribe: <mailto:unsub@example.com>\n"
                                        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n")
    qid, raw = send_signed(d, client_factory, tls_ctx, data)
    ks = (keys["rsa"], keys["ed"])
    assert_all_verify(raw, *ks)
    return raw, ks


def test_h_tag_oversigns_and_has_no_l(signed_pair):
    raw, _ = signed_pair
    for sig in sig_headers(raw):
        assert b"l" not in sig
        h = h_list(sig)
        for name in SIGNED_HEADERS_OVERSIGNED + ("list-unsubscribe", "list-unsubscribe-post"):
            assert h.count(name) == 2, f"{name} must be listed twice in h=: {h}"
        assert "message-id" in h, f"Message-ID not signed: {h}"
        assert "received" not in h and "dkim-signature" not in h


def test_unsigned_header_may_be_added(signed_pair):
    """The control for the tests below: a header field that is not signed
    can be added anywhere without breaking the signatures."""
    raw, ks = signed_pair
    for changed in (insert_on_top(raw, b"X-Added: by a later hop"),
                    insert_after_signatures(raw, b"Received: from later.example"),
                    append_header(raw, b"X-Appended: yes")):
        assert_all_verify(changed, *ks, on_top=False)


@pytest.mark.parametrize("where", [insert_on_top, insert_after_signatures, append_header],
                         ids=["top", "after-signatures", "appended"])
@pytest.mark.parametrize("field", [
    b"From: Mallory <mallory@example.com>",
    b"Subject: click here",
    b"To: victim@example.net",
    b"Date: Tue, 03 Nov 2026 10:00:00 +0000",
    b"List-Unsubscribe: <https://evil.example/u>",
], ids=["from", "subject", "to", "date", "list-unsubscribe"])
def test_added_oversigned_header_breaks_verification(signed_pair, field, where):
    raw, ks = signed_pair
    assert all_fail(where(raw, field), *ks), f"adding {field!r} ({where.__name__}) went unnoticed"


def test_tampered_body_fails(signed_pair):
    raw, ks = signed_pair
    assert all_fail(raw.replace(b"Original body.", b"Original b0dy."), *ks)
    assert all_fail(raw + b"appended line\r\n", *ks)


def test_tampered_subject_fails(signed_pair):
    raw, ks = signed_pair
    assert all_fail(raw.replace(b"Subject: over-signing", b"Subject: over-signinG"), *ks)


def test_wrong_public_key_fails(signed_pair, keys):
    """The DNS function really is what decides: another key's record fails."""
    raw, _ = signed_pair
    wrong = Key("example.com", "s2026", "rsa", keys["org"].path, "", keys["org"].strings)
    assert not verifies(raw, 0, dns_for(wrong))


# ---------------------------------------------------------------------------
# Which key signs, and mail without one


def test_from_domain_picks_the_key(keys, daemon_factory, client_factory, tls_ctx):
    """Header From: in example.org, envelope in example.com: example.org's
    key signs (DMARC aligns on the header From:)."""
    cfg = signing_config(keys["rsa"])
    cfg["domain example.org"] = {"dkim_key": keys["org"].conf()}
    d = daemon_factory(cfg)
    data = simple_message(mail_from="alice@example.org", subject="org")
    qid, raw = send_signed(d, client_factory, tls_ctx, data, mail_from=ALICE)
    assert_all_verify(raw, keys["org"], expect=[("example.org", "org2026", "rsa-sha256")])


def test_subdomain_signed_by_parent_when_enabled(keys, daemon_factory, client_factory,
                                                 tls_ctx):
    cfg = signing_config(keys["rsa"])
    cfg["domain example.com"]["dkim_subdomains"] = "yes"
    d = daemon_factory(cfg)
    data = simple_message(mail_from="news@news.example.com", subject="newsletter")
    qid, raw = send_signed(d, client_factory, tls_ctx, data, user="carol",
                           mail_from="news@news.example.com")
    assert_all_verify(raw, keys["rsa"], expect=[("example.com", "s2026", "rsa-sha256")])
    d.wait_log(rf"{re.escape(qid)}: dkim d=example\.com s=s2026 a=rsa-sha256\b")


def test_subdomain_section_with_and_without_own_key(keys, daemon_factory, client_factory,
                                                    tls_ctx):
    """A [domain] of the subdomain without dkim_key (say, for its upstream)
    still gets the parent's signature; with its own key it signs itself."""
    cfg = signing_config(keys["rsa"])
    cfg["domain example.com"]["dkim_subdomains"] = "yes"
    cfg["domain news.example.com"] = {"upstream": "main"}
    d = daemon_factory(cfg)
    data = simple_message(mail_from="news@news.example.com", subject="newsletter")
    _, raw = send_signed(d, client_factory, tls_ctx, data, user="carol",
                         mail_from="news@news.example.com")
    assert_all_verify(raw, keys["rsa"], expect=[("example.com", "s2026", "rsa-sha256")])

    cfg["domain news.example.com"]["dkim_key"] = keys["news"].conf()
    d2 = daemon_factory(cfg)
    _, raw = send_signed(d2, client_factory, tls_ctx, data, user="carol",
                         mail_from="news@news.example.com")
    assert_all_verify(raw, keys["news"], expect=[("news.example.com", "n2026", "rsa-sha256")])


@pytest.mark.parametrize("subdomains", [None, "no"], ids=["default", "no"])
def test_subdomain_rejected_when_not_enabled(subdomains, keys, daemon_factory, client_factory,
                                             tls_ctx):
    cfg = signing_config(keys["rsa"], unsigned=None)
    if subdomains:
        cfg["domain example.com"]["dkim_subdomains"] = subdomains
    d = daemon_factory(cfg)
    mark = d.mark()
    data = simple_message(mail_from="news@news.example.com", subject="newsletter")
    r = submit(d, client_factory, tls_ctx, data, user="carol", mail_from="news@news.example.com")
    assert r.code == 550 and r.enh == "5.7.1", r
    assert "no DKIM key for news.example.com" in r.text, r
    d.assert_nothing_queued(since=mark)


def test_unsigned_reject_is_the_default(keys, daemon_factory, client_factory, tls_ctx):
    d = daemon_factory(signing_config(keys["rsa"], unsigned=None))
    assert "unsigned" not in d.sections["server"]
    mark = d.mark()
    data = simple_message(mail_from="alice@example.org", subject="no key for example.org")
    r = submit(d, client_factory, tls_ctx, data, mail_from="alice@example.org")
    assert r.code == 550 and r.enh == "5.7.1", r
    assert "no DKIM key for example.org; the message would fail DMARC" in r.text, r
    d.assert_nothing_queued(since=mark)
    # The same session goes on: a signed domain is accepted afterwards.
    qid, raw = send_signed(d, client_factory, tls_ctx, msg_plain())
    assert_all_verify(raw, keys["rsa"])


def test_unsigned_reject_without_any_key(daemon_factory, client_factory, tls_ctx):
    """No key anywhere and the default policy: nothing can be sent."""
    d = daemon_factory({"server": {"unsigned": None}})
    mark = d.mark()
    r = submit(d, client_factory, tls_ctx, msg_plain())
    assert r.code == 550 and r.enh == "5.7.1", r
    assert "no DKIM key for example.com" in r.text, r
    d.assert_nothing_queued(since=mark)


def test_unsigned_reject_explicit(keys, daemon_factory, client_factory, tls_ctx):
    d = daemon_factory(signing_config(keys["rsa"], unsigned="reject"))
    data = simple_message(mail_from="alice@example.org")
    r = submit(d, client_factory, tls_ctx, data, mail_from="alice@example.org")
    assert r.code == 550 and r.enh == "5.7.1", r


def test_unsigned_relay_queues_unsigned_with_warning(keys, daemon_factory, client_factory,
                                                      tls_ctx):
    d = daemon_factory(signing_config(keys["rsa"], unsigned="relay"))
    data = simple_message(mail_from="alice@example.org", subject="unsigned")
    r = submit(d, client_factory, tls_ctx, data, mail_from="alice@example.org")
    assert r.code == 250, r
    qid = queue_id(r)
    raw = d.wait_maildir(1)[0]
    assert b"DKIM-Signature" not in raw
    # One warning about this message: it names the queue id or the domain.
    d.wait_log(rf"warning: .*({re.escape(qid)}|example\.org)")
    assert not re.search(rf"{re.escape(qid)}: dkim d=", d.log())


# ---------------------------------------------------------------------------
# Key checks at config load


def dkim_key_line(conf_path, domain="example.com"):
    """Line number of the dkim_key line of [domain DOMAIN]."""
    section = None
    for n, line in enumerate(Path(conf_path).read_text().splitlines(), 1):
        m = re.match(r"\s*\[(.*)\]\s*$", line)
        if m:
            section = m.group(1).strip().lower()
        elif section == f"domain {domain}" and re.match(r"\s*dkim_key\s*=", line):
            return n
    raise AssertionError(f"no dkim_key in [domain {domain}] of {conf_path}")


def bad_key(kind, tmp_path, keys):
    """(dkim_key value, regex the error must match) for each bad key."""
    d = tmp_path / "badkeys"
    d.mkdir(exist_ok=True)
    if kind == "missing":
        return f"s1:{d / 'nonexistent.pem'}", r"nonexistent\.pem|No such file|cannot|can't|unreadable"
    if kind == "mode-0644":
        p = d / "open.pem"
        p.write_bytes(keys["rsa"].path.read_bytes())
        p.chmod(0o644)
        return f"s1:{p}", r"readable by group or others.*0644.*chmod 600"
    if kind == "rsa-512":
        p = d / "weak.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:512", "-out", str(p)],
                       check=True, capture_output=True, timeout=60)
        p.chmod(0o600)
        return f"s1:{p}", r"(?i)512.*(weak)|weak.*512"
    if kind == "ed25519-alone":
        return keys["ed"].conf(), r"(?i)ed25519.*alone|alone.*ed25519|ed25519.*rsa"
    if kind == "garbage":
        p = d / "garbage.pem"
        p.write_bytes(b"this is not a key\n" + os.urandom(64))
        p.chmod(0o600)
        return f"s1:{p}", r"(?i)PEM|private key"
    if kind == "public-key":
        p = d / "public.pem"
        priv = serialization.load_pem_private_key(keys["rsa"].path.read_bytes(), None)
        p.write_bytes(priv.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        p.chmod(0o600)
        return f"s1:{p}", r"(?i)PEM|private key"
    raise ValueError(kind)


BAD_KEYS = ["missing", "mode-0644", "rsa-512", "ed25519-alone", "garbage", "public-key"]


@pytest.mark.parametrize("kind", BAD_KEYS)
def test_bad_key_is_a_config_error(kind, keys, daemon_factory, tmp_path):
    value, rx = bad_key(kind, tmp_path, keys)
    d = daemon_factory({"domain example.com": {"dkim_key": value}}, start=False)
    line = dkim_key_line(d.conf_path)
    want = re.compile(rf"^{re.escape(str(d.conf_path))}:{line}: (?!warning)(.*)$", re.M)
    p = d.check_config()
    out = p.stdout + p.stderr
    assert p.returncode == 1, f"outpostd -n exit {p.returncode}:\n{out}"
    m = want.search(out)
    assert m, f"no error at {d.conf_path.name}:{line} in:\n{out}"
    assert re.search(rx, m.group(1)), f"error does not say what is wrong: {m.group(0)}"
    # outpostctl check-config reports the same.
    q = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "check-config"],
                       capture_output=True, text=True, timeout=30)
    assert q.returncode != 0, q.stdout + q.stderr
    assert want.search(q.stdout + q.stderr), q.stdout + q.stderr


def test_bad_key_refuses_to_start(keys, daemon_factory, tmp_path):
    value, _ = bad_key("mode-0644", tmp_path, keys)
    d = daemon_factory({"domain example.com": {"dkim_key": value}}, start=False)
    d.start(wait=False)
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        d.stop()
        raise AssertionError("outpostd started with a group-readable key")
    d.proc = None
    assert rc != 0
    assert "readable by group or others" in d.log()


def test_bad_key_in_second_entry_names_its_line(keys, daemon_factory, tmp_path):
    """Errors name the dkim_key line of the section they are in."""
    value, _ = bad_key("garbage", tmp_path, keys)
    cfg = signing_config(keys["rsa"])
    cfg["domain example.org"] = {"dkim_key": f"{keys['org'].conf()}, {value}"}
    d = daemon_factory(cfg, start=False)
    p = d.check_config()
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    line = dkim_key_line(d.conf_path, "example.org")
    assert re.search(rf"{re.escape(str(d.conf_path))}:{line}: ", out), out
    good = dkim_key_line(d.conf_path, "example.com")
    assert not re.search(rf"{re.escape(str(d.conf_path))}:{good}: ", out), out


def test_ed25519_with_rsa_is_fine(keys, daemon_factory):
    d = daemon_factory(signing_config(keys["ed"], keys["rsa"]), start=False)
    p = d.check_config()
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------------------
# outpostctl dkim keygen / dns


def spki_b64(priv):
    return base64.b64encode(priv.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def check_record(key, bits=None):
    """The TXT record is a DKIM key record for exactly key.path's key."""
    for s in key.strings:
        assert len(s.encode()) <= 255, f"TXT string over 255 bytes: {len(s)}"
    tags = dkim.util.parse_tag_value(key.txt)
    assert tags[b"v"] == b"DKIM1", tags
    assert tags[b"k"] == key.type.encode(), tags
    priv = serialization.load_pem_private_key(key.path.read_bytes(), None)
    p = tags[b"p"].decode()
    if key.type == "rsa":
        assert isinstance(priv, rsa.RSAPrivateKey)
        assert p == spki_b64(priv), "p= is not the public half of the written key"
        if bits:
            assert priv.key_size == bits
    else:
        assert isinstance(priv, ed25519.Ed25519PrivateKey)
        raw = priv.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
        assert base64.b64decode(p) == raw and len(raw) == 32
    # dkimpy reads the record as a key record of that type and size.
    pk, keysize, ktag, _ = dkim.evaluate_pk(key.name.encode(), key.txt)
    assert ktag == key.type.encode()
    if key.type == "rsa" and bits:
        assert keysize == bits
    # And a signature made with the written private key verifies against it.
    msg = simple_message(subject="keygen round trip")
    if key.type == "rsa":
        sig = dkim.sign(msg, key.selector.encode(), key.domain.encode(),
                        key.path.read_bytes(), canonicalize=(b"relaxed", b"relaxed"))
    else:
        seed = priv.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                  serialization.NoEncryption())
        sig = dkim.DKIM(msg).sign(key.selector.encode(), key.domain.encode(),
                                  base64.b64encode(seed), signature_algorithm=b"ed25519-sha256",
                                  canonicalize=(b"relaxed", b"relaxed"))
    assert dkim.DKIM(sig + msg).verify(dnsfunc=dns_for(key))


def test_keygen_rsa_record_matches_key(keys):
    key = keys["rsa"]
    check_record(key, bits=2048)
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    # As root, the key goes to the account the daemon runs as.
    owner = ", owner outpost" if os.geteuid() == 0 else ""
    assert f"wrote {key.path} (mode 0600{owner})" in key.stdout, key.stdout
    if os.geteuid() == 0:
        assert key.path.stat().st_uid == pwd.getpwnam("outpost").pw_uid
    # A 2048-bit key does not fit one 255-byte string.
    assert len(key.strings) >= 2
    assert re.search(r"^s2026\._domainkey\.example\.com\.\s+(\d+\s+)?IN\s+TXT\s+\(",
                     key.stdout, re.M), key.stdout
    # The config lines to add name the key.
    assert re.search(r"dkim_key\s*=\s*s2026:\S*example\.com\.s2026\.pem", key.stdout), key.stdout


def test_keygen_rsa1024(keys):
    check_record(keys["rsa1024"], bits=1024)


def test_keygen_ed25519_record_matches_key(keys):
    key = keys["ed"]
    check_record(key)
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert len(key.strings) == 1
    assert key.txt.startswith(b"v=DKIM1; k=ed25519; p=") or b"k=ed25519" in key.txt


def test_keygen_rsa3072(ctl_conf, tmp_path):
    key = make_key(ctl_conf, tmp_path, "example.net", "big", bits=3072)
    check_record(key, bits=3072)
    assert len(key.strings) >= 3


def test_keygen_refuses_to_overwrite(ctl_conf, tmp_path):
    key = make_key(ctl_conf, tmp_path, "example.com", "once")
    before = key.path.read_bytes()
    p = keygen(ctl_conf, "example.com", "once", "--dir", str(tmp_path), check=False)
    assert p.returncode != 0, p.stdout
    assert key.path.read_bytes() == before, "an existing key was overwritten"
    assert str(key.path) in p.stderr + p.stdout or "exist" in (p.stderr + p.stdout).lower()
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("args", [
    ["--type", "dsa"],
    ["--bits", "512"],
    ["--bits", "many"],
], ids=["type-dsa", "bits-512", "bits-nan"])
def test_keygen_refuses_bad_arguments(ctl_conf, tmp_path, args):
    p = keygen(ctl_conf, "example.com", "bad", "--dir", str(tmp_path), *args, check=False)
    assert p.returncode != 0, p.stdout
    assert not (tmp_path / "example.com.bad.pem").exists()


def test_keygen_mode_0600_under_open_umask(ctl_conf, tmp_path):
    p = subprocess.run(["sh", "-c", 'umask 000; exec "$@"', "sh", OUTPOSTCTL, "-c", str(ctl_conf),
                        "dkim", "keygen", "example.com", "umask", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE((tmp_path / "example.com.umask.pem").stat().st_mode) == 0o600


def test_dns_prints_every_configured_key(keys, daemon_factory):
    d = daemon_factory(signing_config(keys["rsa"], keys["ed"]), start=False)
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "dkim", "dns", "example.com"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    recs = parse_txt_records(p.stdout)
    assert set(recs) == {keys["rsa"].name, keys["ed"].name}, p.stdout
    for k in (keys["rsa"], keys["ed"]):
        assert "".join(recs[k.name]) == "".join(k.strings), f"dns and keygen differ for {k.name}"
    # A domain without keys has no record to print.
    q = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "dkim", "dns", "example.net"],
                       capture_output=True, text=True, timeout=30)
    assert q.returncode != 0 or not parse_txt_records(q.stdout), q.stdout
