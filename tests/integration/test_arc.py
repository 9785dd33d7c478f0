"""ARC sealing of forwarded mail (issue 5), black box.

A message is forwarded when its From: is not the submitting user's and
either its top Resent-From: is, or the user is a forward/list account
(users file option `forward`, `list`, `list=ID`), or the listener says
`forward = yes`. Forwarded mail is not refused with 553; its envelope
sender becomes the forwarder's (the Resent- address, the account's first
full address, or `[domain D] forward_return_path`), and under `arc = auto`
it gets one ARC set (i = previous + 1) sealed with D's DKIM key, then
D's DKIM-Signature.

Everything outpost writes is checked by an independent implementation
(dkimpy's arc_verify and DKIM verify) against the TXT records of the test:
the outside domains' keys made here, outpost's key made by the real
`outpostctl dkim keygen`. The daemon reads the same records (and the
DMARC policy) from the dns_server fixture.
"""
import base64
import email.utils
import logging
import re
import subprocess
import time

import dkim
import dkim.util
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import (HOSTNAME, DNSTestServer, OUTPOSTCTL, USERS, crlf, default_sections, dot_stuff,
                      free_port, outpostctl_passwd, parse_txt_records, queue_id,
                      render_config, simple_message, txt_dnsfunc)

log = logging.getLogger("test_arc.dkimpy")

ALICE = "alice@example.com"
ALICE_PW = USERS["alice"][0]
FWD_PW = "fwd-Secret-4"
LISTS_PW = "lists-Secret-5"
NEWS_PW = "news-Secret-6"
ORIGIN = "origin.example"          # an outside domain that signs and has DMARC p=reject
NODMARC = "nodmarc.example"        # an outside domain that signs, no DMARC record
OUTSIDER = f"sender@{ORIGIN}"
OUR_SEL = "arc2026"                # outpost's key for example.com
ORIGIN_SEL = "o2026"               # the outside domains' DKIM selector
ORIGIN_ARC_SEL = "arc1"            # origin.example's ARC sealer (i=1 sets)
ORIGIN_SRV_ID = "mx.origin.example"

# Users of this file: alice as in conftest, plus forward and list accounts.
# fwd's first sender is a wildcard: "the account's first full address" is
# the second entry.
ARC_USERS = {
    "alice": (ALICE_PW, USERS["alice"][1], ""),
    "fwd": (FWD_PW, "@forwarded.example.org,fwd@example.com", "forward"),
    "lists": (LISTS_PW, "team@example.com", "list"),
    "news": (NEWS_PW, "news@example.com", "list=news.lists.example.com"),
}

WAIT = 10.0


# ---------------------------------------------------------------------------
# Keys, DNS, users


class Keys:
    pass


def rsa_pair():
    """(PKCS#1 PEM private key, the p= value) of a fresh RSA-2048 key."""
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = k.private_bytes(serialization.Encoding.PEM,
                          serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    der = k.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


@pytest.fixture(scope="session")
def arc_env(tmp_path_factory, binaries, tls_files, users_file):
    """Session: outpost's key (real keygen), the outside keys, a users file
    with forward/list accounts (real `outpostctl passwd`)."""
    d = tmp_path_factory.mktemp("arcenv")
    (d / "state").mkdir()
    conf = d / "outpost.conf"
    conf.write_text(render_config(default_sections(d, free_port(), tls_files, users_file)))

    env = Keys()
    keydir = d / "keys"
    p = subprocess.run([OUTPOSTCTL, "-c", str(conf), "dkim", "keygen", "example.com", OUR_SEL,
                        "--type", "rsa", "--dir", str(keydir)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"dkim keygen failed: {p.stdout}{p.stderr}"
    env.our_path = keydir / f"example.com.{OUR_SEL}.pem"
    assert env.our_path.is_file(), p.stdout
    recs = parse_txt_records(p.stdout)
    our_name = f"{OUR_SEL}._domainkey.example.com"
    assert our_name in recs, p.stdout
    env.our_txt = "".join(recs[our_name])

    env.origin_pem, p_value = rsa_pair()
    env.origin_txt = f"v=DKIM1; k=rsa; p={p_value}"

    lines = []
    for user, (pw, senders, options) in ARC_USERS.items():
        line = outpostctl_passwd(conf, user, pw, senders)
        lines.append(line + (f":{options}" if options else ""))
    env.users = d / "arc-users"
    env.users.write_text("\n".join(lines) + "\n")
    env.users.chmod(0o600)
    return env


def dns_records(env, dmarc=True):
    recs = {
        f"{OUR_SEL}._domainkey.example.com": env.our_txt,
        f"{ORIGIN_SEL}._domainkey.{ORIGIN}": env.origin_txt,
        f"{ORIGIN_ARC_SEL}._domainkey.{ORIGIN}": env.origin_txt,
        f"{ORIGIN_SEL}._domainkey.{NODMARC}": env.origin_txt,
    }
    if dmarc:
        recs[f"_dmarc.{ORIGIN}"] = "v=DMARC1; p=reject"
    return recs


def dnsfunc(env):
    """dkimpy's view of DNS: the same keys the daemon's DNS serves."""
    return txt_dnsfunc(dns_records(env))


@pytest.fixture
def arc_daemon(daemon_factory, plain_upstream, dns_server, arc_env):
    """make(extra config) -> (daemon, upstream): outpost with the arc users
    file, the test DNS, example.com's key and the plain upstream."""
    dns_server.records.update(dns_records(arc_env))

    def make(extra=None, domain=None):
        cfg = {
            "server": {"users_file": str(arc_env.users), "dns_server": dns_server.address},
            "upstream main": plain_upstream.upstream_section(),
            "domain example.com": {"upstream": "main",
                                   "dkim_key": f"{OUR_SEL}:{arc_env.our_path}"},
        }
        if domain:
            cfg["domain example.com"].update(domain)
        for name, keys in (extra or {}).items():
            cfg.setdefault(name, {}).update(keys)
        return daemon_factory(cfg), plain_upstream
    return make


# ---------------------------------------------------------------------------
# Messages


def origin_message(subject="forward me", from_=OUTSIDER, to=ALICE, body="Hello from outside.\n",
                   extra=""):
    mid = email.utils.make_msgid(domain=from_.split("@")[1])
    return crlf(f"From: Outside Sender <{from_}>\nTo: {to}\nSubject: {subject}\n"
                f"Date: {email.utils.formatdate()}\nMessage-ID: {mid}\nMIME-Version: 1.0\n"
                f"Content-Type: text/plain; charset=us-ascii\n{extra}\n{body}")


def origin_sign(env, msg, domain=ORIGIN):
    sig = dkim.sign(msg, ORIGIN_SEL.encode(), domain.encode(), env.origin_pem,
                    canonicalize=(b"relaxed", b"relaxed"), logger=log)
    out = sig + msg
    assert dkim.verify(out, dnsfunc=dnsfunc(env), logger=log), "test setup: bad origin signature"
    return out


def origin_seal(env, msg, ar="dkim=pass header.d=origin.example; spf=pass "
                            "smtp.mailfrom=origin.example"):
    """An i=1 ARC set by origin.example's MX, made by dkimpy."""
    msg = f"Authentication-Results: {ORIGIN_SRV_ID}; {ar}\r\n".encode() + msg
    sets = dkim.arc_sign(msg, ORIGIN_ARC_SEL.encode(), ORIGIN.encode(), env.origin_pem,
                         ORIGIN_SRV_ID.encode(), timestamp=int(time.time()), logger=log)
    assert sets, "test setup: dkimpy made no ARC set"
    out = b"".join(sets) + msg
    cv, _, why = dkim.arc_verify(out, dnsfunc=dnsfunc(env), logger=log)
    assert cv == dkim.CV_Pass, f"test setup: dkimpy's own i=1 set does not verify: {why}"
    return out


def resent(msg, header="Resent-From", addr=ALICE, to="bob@example.net"):
    """What a MUA's redirect adds on top."""
    mid = email.utils.make_msgid(domain=addr.split("@")[1])
    return (f"{header}: {addr}\r\nResent-To: {to}\r\nResent-Date: {email.utils.formatdate()}\r\n"
            f"Resent-Message-ID: {mid}\r\n").encode() + msg


# ---------------------------------------------------------------------------
# Submission and what arrives


def submit(d, client_factory, tls_ctx, data, user="alice", password=ALICE_PW,
           mail_from=ALICE, rcpts=("bob@example.net",), port=None):
    """One transaction; returns the reply to the final dot."""
    c = client_factory(port or d.port)
    c.login(tls_ctx, user, password)
    r = c.cmd(f"MAIL FROM:<{mail_from}>")
    assert r.code == 250, f"MAIL FROM:<{mail_from}> as {user}: {r}"
    for rc in rcpts:
        r = c.cmd(f"RCPT TO:<{rc}>")
        assert r.code == 250, f"RCPT {rc}: {r}"
    r = c.cmd("DATA")
    assert r.code == 354, r
    c.send(dot_stuff(data))
    reply = c.reply()
    c.cmd("QUIT")
    return reply


def relay(d, up, client_factory, tls_ctx, data, n=1, **kw):
    """Submit, expect 250, return (queue id, the n-th message at the upstream)."""
    r = submit(d, client_factory, tls_ctx, data, **kw)
    assert r.code == 250, f"expected 250 after DATA, got: {r}\nlog tail:\n{d.log_tail()}"
    qid = queue_id(r)
    msgs = up.wait_messages(n, timeout=WAIT)
    return qid, msgs[n - 1]


def wire(m):
    """The upstream's bytes with CRLF line ends (what dkimpy wants)."""
    c = m.content
    if b"\r\n" not in c:
        c = c.replace(b"\n", b"\r\n")
    return c


def headers(raw):
    """[(name lower-case str, unfolded value str)], top first."""
    out = []
    for k, v in dkim.DKIM(raw, logger=log).headers:
        val = re.sub(r"\r?\n[ \t]+", " ", v.decode("utf-8", "replace")).strip()
        out.append((k.decode().lower(), val))
    return out


def values(raw, name):
    return [v for k, v in headers(raw) if k == name.lower()]


def arc_names(raw):
    return [k for k, _ in headers(raw) if k.startswith("arc-")]


def tags(value):
    t = dkim.util.parse_tag_value(value.encode())
    return {k.decode(): v.decode() for k, v in t.items()}


def arc_sets(raw):
    """{i: {"as": tags, "ams": tags, "aar": value}} of every ARC header."""
    sets = {}
    for k, v in headers(raw):
        if k == "arc-seal":
            t = tags(v)
            sets.setdefault(int(t["i"]), {})["as"] = t
        elif k == "arc-message-signature":
            t = tags(v)
            sets.setdefault(int(t["i"]), {})["ams"] = t
        elif k == "arc-authentication-results":
            m = re.match(r"\s*i\s*=\s*(\d+)\s*;", v)
            assert m, f"ARC-Authentication-Results without i=: {v!r}"
            sets.setdefault(int(m.group(1)), {})["aar"] = v
    return sets


def dkim_sigs(raw):
    return [tags(v) for v in values(raw, "dkim-signature")]


def dkim_valid(env, raw, idx):
    try:
        return bool(dkim.DKIM(raw, logger=log).verify(idx=idx, dnsfunc=dnsfunc(env)))
    except dkim.DKIMException as e:
        log.info("signature %d: %s", idx, e)
        return False


def assert_dkim(env, raw, domains):
    """The DKIM-Signatures have exactly these d= (any order) and all verify."""
    sigs = dkim_sigs(raw)
    assert sorted(s["d"] for s in sigs) == sorted(domains), \
        f"DKIM-Signature d= {[s['d'] for s in sigs]}, expected {domains}:\n{raw[:3000]!r}"
    for i, s in enumerate(sigs):
        assert dkim_valid(env, raw, i), \
            f"DKIM-Signature {i} (d={s['d']}, s={s['s']}) does not verify:\n{raw[:4000]!r}"
    # dkim.verify() checks the first one only: it must pass too.
    assert dkim.verify(raw, dnsfunc=dnsfunc(env), logger=log)
    return sigs


def arc_check(env, raw):
    """dkimpy's arc_verify: (cv, results, reason)."""
    return dkim.arc_verify(raw, dnsfunc=dnsfunc(env), logger=log)


def assert_our_seal(env, raw, i, cv):
    """The top ARC set is ours: i, cv, d=example.com, our selector, RSA;
    it sits above every older set. Returns the sets."""
    sets = arc_sets(raw)
    assert sets, f"no ARC headers in the relayed message:\n{raw[:3000]!r}"
    assert max(sets) == i, f"highest ARC instance {max(sets)}, expected {i}: {arc_names(raw)}"
    assert sorted(sets) == list(range(1, i + 1)), f"ARC instances {sorted(sets)}"
    top = sets[i]
    assert set(top) == {"as", "ams", "aar"}, f"incomplete ARC set i={i}: {sorted(top)}"
    for part in ("as", "ams"):
        t = top[part]
        assert t["d"] == "example.com", f"{part} d={t['d']}"
        assert t["s"] == OUR_SEL, f"{part} s={t['s']}"
        assert t["a"] == "rsa-sha256", f"{part} a={t['a']}"
    assert top["as"]["cv"] == cv, f"ARC-Seal i={i} cv={top['as']['cv']}, expected {cv}"
    assert "h" not in top["as"], "ARC-Seal must not have h="
    # The new set is above the older ones: its headers come first.
    insts = []
    for k, v in headers(raw):
        if k == "arc-seal":
            insts.append(int(tags(v)["i"]))
    assert insts == sorted(insts, reverse=True), f"ARC-Seal order {insts}"
    # At the top: above our Received:, only the new set and our DKIM-Signature.
    hs = headers(raw)
    names = [k for k, _ in hs]
    assert "received" in names, names
    # (A List-Id: the daemon added may sit there too.)
    above = [(k, v) for k, v in hs[:names.index("received")] if k != "list-id"]
    assert sorted(k for k, _ in above) == sorted(["dkim-signature", "arc-seal",
                                                  "arc-message-signature",
                                                  "arc-authentication-results"]), \
        f"expected the new ARC set and our DKIM-Signature above our Received:, got {names}"
    for k, v in above:
        if k == "dkim-signature":
            assert tags(v)["d"] == "example.com", v
        elif k == "arc-authentication-results":
            assert re.match(rf"\s*i={i};", v), v
        else:
            assert tags(v)["i"] == str(i), v
    aar = top["aar"]
    assert re.match(rf"\s*i={i};\s*{re.escape(HOSTNAME)}\s*;", aar), \
        f"AAR must start with i={i}; {HOSTNAME}; got {aar!r}"
    assert "127.0.0.1" not in aar, f"a LAN client IP in the AAR: {aar!r}"
    return sets


def assert_forwarded_log(d, addr, since=0):
    d.wait_log(rf"^(?=.*forwarded)(?=.*{re.escape(addr)}).*$", timeout=WAIT, since=since)


# ---------------------------------------------------------------------------
# 1. Resent-From by a normal user: envelope rewritten, sealed, both signatures good


def test_redirect_by_resent_from_is_sealed_and_verifies(arc_env, arc_daemon, client_factory,
                                                        tls_ctx):
    d, up = arc_daemon()
    orig = origin_sign(arc_env, origin_message(subject="redirect"))
    # alice submits with her other address; the envelope must become the
    # Resent-From (alice@example.com), which also picks example.com's key.
    qid, m = relay(d, up, client_factory, tls_ctx, resent(orig), mail_from="alice@example.org")
    raw = wire(m)
    assert m.mail_from == ALICE, f"envelope sender {m.mail_from!r}, expected the Resent-From"
    assert m.rcpt_tos == ["bob@example.net"]
    assert_forwarded_log(d, ALICE)

    sets = assert_our_seal(arc_env, raw, 1, "none")
    cv, results, why = arc_check(arc_env, raw)
    assert cv == dkim.CV_Pass, f"arc_verify: {cv} {why}\n{raw[:4000]!r}"
    assert [r["instance"] for r in results] == [1]
    assert results[0]["cv"] == b"none" and results[0]["as-valid"] and results[0]["ams-valid"]
    assert re.search(r"\bdkim=pass\b[^;]*header\.d=origin\.example", sets[1]["aar"]), \
        sets[1]["aar"]

    assert_dkim(arc_env, raw, ["origin.example", "example.com"])
    # The original header and body arrive unchanged.
    body_sent = orig.partition(b"\r\n\r\n")[2]
    assert raw.partition(b"\r\n\r\n")[2] == body_sent
    assert values(raw, "from") == [f"Outside Sender <{OUTSIDER}>"]


def test_top_resent_block_owned_is_forwarded(arc_env, arc_daemon, client_factory, tls_ctx):
    """An older foreign Resent- block below hers does not matter; a
    Resent-Sender: of hers (under a foreign Resent-From:) counts as hers."""
    d, up = arc_daemon()
    older = resent(origin_sign(arc_env, origin_message(subject="twice")),
                   addr="someone@origin.example")
    _, m = relay(d, up, client_factory, tls_ctx, resent(older), mail_from="alice@example.org")
    assert m.mail_from == ALICE, m.mail_from
    assert_our_seal(arc_env, wire(m), 1, "none")

    msg = origin_sign(arc_env, origin_message(subject="resent-sender"))
    msg = b"Resent-Sender: alice@example.com\r\n" + resent(msg, addr="boss@origin.example")
    _, m = relay(d, up, client_factory, tls_ctx, msg, mail_from="alice@example.org", n=2)
    assert m.mail_from == ALICE, f"envelope {m.mail_from!r}, expected the Resent-Sender"
    raw = wire(m)
    assert_our_seal(arc_env, raw, 1, "none")
    cv, _, why = arc_check(arc_env, raw)
    assert cv == dkim.CV_Pass, f"arc_verify: {cv} {why}"


# ---------------------------------------------------------------------------
# 2./3. An existing chain: continued with cv=pass, or ended with cv=fail


def test_existing_chain_gets_i2_cv_pass(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon()
    sealed = origin_seal(arc_env, origin_sign(arc_env, origin_message(subject="chain")))
    qid, m = relay(d, up, client_factory, tls_ctx, resent(sealed))
    raw = wire(m)
    sets = assert_our_seal(arc_env, raw, 2, "pass")
    assert sets[1]["as"]["d"] == ORIGIN, "the i=1 set must be kept as it was"
    assert re.search(r"\barc=pass\b", sets[2]["aar"]), sets[2]["aar"]
    cv, results, why = arc_check(arc_env, raw)
    assert cv == dkim.CV_Pass, f"arc_verify: {cv} {why}\n{raw[:5000]!r}"
    assert [r["instance"] for r in results] == [2, 1]
    assert results[0]["cv"] == b"pass"
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])


def test_tampered_chain_is_sealed_with_cv_fail(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon()
    sealed = origin_seal(arc_env, origin_sign(arc_env, origin_message(subject="tampered")))
    head, _, body = sealed.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    idx = [n for n, l in enumerate(lines) if l.lower().startswith(b"arc-authentication-results:")]
    assert len(idx) == 1
    before = lines[idx[0]]
    lines[idx[0]] = before.replace(b"dkim=pass", b"dkim=fail")
    assert lines[idx[0]] != before, f"test setup: nothing to tamper in {before!r}"
    tampered = b"\r\n".join(lines) + b"\r\n\r\n" + body
    cv, _, why = arc_check(arc_env, tampered)
    assert cv != dkim.CV_Pass, "test setup: tampering did not break the chain"

    qid, m = relay(d, up, client_factory, tls_ctx, resent(tampered))
    raw = wire(m)
    sets = assert_our_seal(arc_env, raw, 2, "fail")
    assert re.search(r"\barc=fail\b", sets[2]["aar"]), sets[2]["aar"]
    cv, results, why = arc_check(arc_env, raw)
    # dkimpy: None ("chain is terminated") or fail; never pass.
    assert cv in (None, dkim.CV_Fail), f"arc_verify passed a failed chain: {cv} {why}"
    assert results and results[0]["instance"] == 2 and results[0]["cv"] == b"fail", results
    assert results[0]["ams-valid"], "our ARC-Message-Signature must still verify"
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])


def test_chain_already_failed_is_not_sealed(arc_env, arc_daemon, client_factory, tls_ctx):
    """README: a chain that already ended with cv=fail is left unsealed
    (RFC 8617 5.1.2), with a log line saying why; the mail still goes,
    DKIM-signed by the forwarder."""
    d, up = arc_daemon()
    sealed = origin_seal(arc_env, origin_sign(arc_env, origin_message(subject="ended")))
    sealed = sealed.replace(b"i=1; mx.origin.example; dkim=pass",
                            b"i=1; mx.origin.example; dkim=fail")
    ended = dkim.arc_sign(b"Authentication-Results: relay2.origin.example; arc=fail\r\n" + sealed,
                          ORIGIN_ARC_SEL.encode(), ORIGIN.encode(), arc_env.origin_pem,
                          b"relay2.origin.example", timestamp=int(time.time()), logger=log)
    assert ended and b"cv=fail" in ended[0], f"test setup: {ended!r}"
    msg = b"".join(ended) + b"Authentication-Results: relay2.origin.example; arc=fail\r\n" + sealed
    qid, m = relay(d, up, client_factory, tls_ctx, resent(msg))
    raw = wire(m)
    assert m.mail_from == ALICE
    assert sorted(arc_sets(raw)) == [1, 2], f"an ended chain got another set: {arc_names(raw)}"
    assert arc_names(raw)[:3] == arc_names(msg)[:3], "the old sets must stay on top, unchanged"
    d.wait_log(rf"{re.escape(qid)}: arc not sealed \([^)]*cv=fail", timeout=WAIT)
    assert not re.search(rf"{re.escape(qid)}: arc i=3", d.log())
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])


def test_arc_key_dns_failure_leaves_unsealed(arc_env, arc_daemon, client_factory, tls_ctx,
                                             dns_server):
    """README: a DNS failure for a key of the chain leaves the message
    unsealed (our DNS trouble must not end someone's chain), logged."""
    d, up = arc_daemon()
    dns_server.records[f"{ORIGIN_ARC_SEL}._domainkey.{ORIGIN}"] = DNSTestServer.SERVFAIL
    sealed = origin_seal(arc_env, origin_sign(arc_env, origin_message(subject="servfail")))
    t0 = time.monotonic()
    qid, m = relay(d, up, client_factory, tls_ctx, resent(sealed))
    assert time.monotonic() - t0 < 9, "a DNS failure must not hold the message long"
    raw = wire(m)
    assert sorted(arc_sets(raw)) == [1], f"sealed despite the DNS failure: {arc_names(raw)}"
    d.wait_log(rf"{re.escape(qid)}: arc not sealed \([^)]*temperror", timeout=WAIT)
    assert dns_server.queried(f"{ORIGIN_ARC_SEL}._domainkey.{ORIGIN}")
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])


# ---------------------------------------------------------------------------
# 4. What the ARC-Authentication-Results says


def test_aar_reports_dkim_and_dmarc(arc_env, arc_daemon, client_factory, tls_ctx, dns_server):
    d, up = arc_daemon()
    good = origin_sign(arc_env, origin_message(subject="aar good"))
    broken = origin_sign(arc_env, origin_message(subject="aar broken", body="Original body.\n"))
    broken = broken.replace(b"Original body.\r\n", b"Changed body.\r\n")
    assert not dkim.verify(broken, dnsfunc=dnsfunc(arc_env), logger=log)
    nodmarc = origin_sign(arc_env, origin_message(subject="aar nodmarc",
                                                  from_=f"sender@{NODMARC}"), domain=NODMARC)
    got = {}
    for n, (name, msg) in enumerate([("good", good), ("broken", broken),
                                     ("nodmarc", nodmarc)], start=1):
        _, m = relay(d, up, client_factory, tls_ctx, resent(msg), n=n)
        raw = wire(m)
        sets = assert_our_seal(arc_env, raw, 1, "none")
        cv, _, why = arc_check(arc_env, raw)
        assert cv == dkim.CV_Pass, f"{name}: arc_verify {cv} {why}"
        got[name] = sets[1]["aar"]

    aar = got["good"]
    assert re.search(r"\bdkim=pass\b[^;]*header\.d=origin\.example\b", aar), aar
    assert re.search(r"\bdmarc=pass\b[^;]*header\.from=origin\.example\b", aar), aar
    assert re.search(r"\barc=none\b", aar), aar

    aar = got["broken"]
    assert re.search(r"\bdkim=fail\b[^;]*header\.d=origin\.example\b", aar), aar
    assert not re.search(r"\bdkim=pass\b", aar), aar
    assert re.search(r"\bdmarc=fail\b[^;]*header\.from=origin\.example\b", aar), aar

    aar = got["nodmarc"]
    assert re.search(r"\bdkim=pass\b[^;]*header\.d=nodmarc\.example\b", aar), aar
    assert re.search(r"\bdmarc=none\b[^;]*header\.from=nodmarc\.example\b", aar), aar

    # The results came from the test's DNS.
    for name in (f"{ORIGIN_SEL}._domainkey.{ORIGIN}", f"_dmarc.{ORIGIN}",
                 f"{ORIGIN_SEL}._domainkey.{NODMARC}", f"_dmarc.{NODMARC}"):
        assert dns_server.queried(name), f"the daemon never asked the DNS for {name}"


# ---------------------------------------------------------------------------
# 5. Not forwarded: no ARC


def test_own_mail_gets_no_arc(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon()
    qid, m = relay(d, up, client_factory, tls_ctx, simple_message(subject="own mail"))
    raw = wire(m)
    assert arc_names(raw) == [], f"ARC headers on mail that was not forwarded: {arc_names(raw)}"
    assert m.mail_from == ALICE
    assert_dkim(arc_env, raw, ["example.com"])
    # Own From: with a Resent-From of her own is still her own mail.
    _, m = relay(d, up, client_factory, tls_ctx,
                 resent(simple_message(subject="own resent"), addr="alice@example.org"), n=2)
    assert arc_names(wire(m)) == [], arc_names(wire(m))


# ---------------------------------------------------------------------------
# 6./7. Forward accounts: any MAIL FROM, envelope rewritten


def test_forward_account_foreign_mail_from(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon()
    orig = origin_sign(arc_env, origin_message(subject="forward account", to="fwd@example.com"))
    qid, m = relay(d, up, client_factory, tls_ctx, orig, user="fwd", password=FWD_PW,
                   mail_from=OUTSIDER)
    raw = wire(m)
    assert m.mail_from == "fwd@example.com", \
        f"envelope {m.mail_from!r}: expected the account's first full address"
    assert_forwarded_log(d, "fwd@example.com")
    assert_our_seal(arc_env, raw, 1, "none")
    cv, _, why = arc_check(arc_env, raw)
    assert cv == dkim.CV_Pass, f"arc_verify: {cv} {why}"
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])


def test_forward_account_own_mail_keeps_the_envelope_rule(arc_env, arc_daemon,
                                                          client_factory, tls_ctx):
    """A forward account's own From: is not forwarded mail: its MAIL FROM
    must be its own too, or anybody's envelope could be borrowed."""
    d, up = arc_daemon()
    mark = d.mark()
    own = origin_message(subject="own mail", from_="fwd@example.com")
    r = submit(d, client_factory, tls_ctx, own, user="fwd", password=FWD_PW,
               mail_from=OUTSIDER)
    assert r.code == 553 and r.enh == "5.7.1", r
    assert "only forwarded mail keeps a foreign envelope" in str(r), r
    d.assert_nothing_queued(since=mark)
    _, m = relay(d, up, client_factory, tls_ctx, own, user="fwd", password=FWD_PW,
                 mail_from="fwd@example.com")
    assert m.mail_from == "fwd@example.com" and not arc_names(wire(m))


def test_forward_return_path_overrides(arc_env, arc_daemon, client_factory, tls_ctx):
    rp = "bounces+fwd@example.com"
    d, up = arc_daemon(domain={"forward_return_path": rp})
    orig = origin_sign(arc_env, origin_message(subject="return path", to="fwd@example.com"))
    qid, m = relay(d, up, client_factory, tls_ctx, orig, user="fwd", password=FWD_PW,
                   mail_from=OUTSIDER)
    assert m.mail_from == rp, f"envelope {m.mail_from!r}, expected forward_return_path {rp}"
    assert_forwarded_log(d, rp)
    raw = wire(m)
    assert_our_seal(arc_env, raw, 1, "none")
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])
    # A Resent-From redirect by alice in the same domain gets it too.
    _, m = relay(d, up, client_factory, tls_ctx,
                 resent(origin_sign(arc_env, origin_message(subject="rp resent"))), n=2)
    assert m.mail_from == rp, f"envelope {m.mail_from!r}, expected forward_return_path {rp}"


# ---------------------------------------------------------------------------
# 8. A normal user may not send a foreign From: without Resent-


def test_plain_foreign_from_is_refused(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon()
    mark = d.mark()
    cases = {
        "plain foreign From": origin_sign(arc_env, origin_message(subject="spoof")),
        "Resent-From not hers": resent(origin_sign(arc_env, origin_message(subject="spoof 2")),
                                       addr="mallory@evil.example"),
        # Only the top Resent- block counts: hers further down does not.
        "hers below a foreign top block": resent(
            resent(origin_sign(arc_env, origin_message(subject="spoof 3"))),
            addr="mallory@evil.example"),
    }
    for what, data in cases.items():
        r = submit(d, client_factory, tls_ctx, data)
        assert r.code == 553 and r.enh == "5.7.1", f"{what}: expected 553 5.7.1, got {r}"
    d.assert_nothing_queued(since=mark)
    assert up.messages() == []


# ---------------------------------------------------------------------------
# 9. List accounts: List-Id


def test_list_account_list_id(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon()
    n = 0

    def via(user, pw, extra=""):
        nonlocal n
        n += 1
        orig = origin_sign(arc_env, origin_message(subject=f"list {n}", to=f"{user}@example.com",
                                                   extra=extra))
        _, m = relay(d, up, client_factory, tls_ctx, orig, user=user, password=pw,
                     mail_from=OUTSIDER, n=n)
        raw = wire(m)
        assert_our_seal(arc_env, raw, 1, "none")
        cv, _, why = arc_check(arc_env, raw)
        assert cv == dkim.CV_Pass, f"{user}: arc_verify {cv} {why}"
        return m, raw

    m, raw = via("lists", LISTS_PW)
    assert m.mail_from == "team@example.com", m.mail_from
    assert values(raw, "list-id") == ["<team.example.com>"], values(raw, "list-id")

    m, raw = via("news", NEWS_PW)
    assert m.mail_from == "news@example.com", m.mail_from
    assert values(raw, "list-id") == ["<news.lists.example.com>"], values(raw, "list-id")

    m, raw = via("lists", LISTS_PW, extra="List-Id: Upstream list <up.lists.example.net>\n")
    assert values(raw, "list-id") == ["Upstream list <up.lists.example.net>"], \
        values(raw, "list-id")


# ---------------------------------------------------------------------------
# 10. arc = never / always


def test_arc_never_signs_without_seal(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon(domain={"arc": "never"})
    orig = origin_sign(arc_env, origin_message(subject="never"))
    _, m = relay(d, up, client_factory, tls_ctx, resent(orig))
    raw = wire(m)
    assert m.mail_from == ALICE
    assert arc_names(raw) == [], f"arc = never, yet: {arc_names(raw)}"
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])


def test_arc_always_seals_own_mail(arc_env, arc_daemon, client_factory, tls_ctx):
    d, up = arc_daemon(domain={"arc": "always"})
    _, m = relay(d, up, client_factory, tls_ctx, simple_message(subject="always"))
    raw = wire(m)
    assert m.mail_from == ALICE
    assert_our_seal(arc_env, raw, 1, "none")
    cv, _, why = arc_check(arc_env, raw)
    assert cv == dkim.CV_Pass, f"arc_verify: {cv} {why}"
    assert_dkim(arc_env, raw, ["example.com"])


# ---------------------------------------------------------------------------
# 11. A forwarding listener


def test_forward_listener(arc_env, arc_daemon, client_factory, tls_ctx, tls_files):
    cert, key = tls_files
    port = free_port()
    d, up = arc_daemon({"listen fwd": {"address": f"127.0.0.1:{port}", "tls": "starttls",
                                       "auth": "required", "cert": str(cert), "key": str(key),
                                       "forward": "yes"}})
    orig = origin_sign(arc_env, origin_message(subject="via listener"))
    # The submission listener refuses it...
    r = submit(d, client_factory, tls_ctx, orig)
    assert r.code == 553, f"plain listener: {r}"
    # ...the forwarding one takes it and rewrites to alice's first full address.
    _, m = relay(d, up, client_factory, tls_ctx, orig, port=port, mail_from="alice@example.org")
    assert m.mail_from == ALICE, m.mail_from
    raw = wire(m)
    assert_our_seal(arc_env, raw, 1, "none")
    cv, _, why = arc_check(arc_env, raw)
    assert cv == dkim.CV_Pass, f"arc_verify: {cv} {why}"
    assert_dkim(arc_env, raw, ["origin.example", "example.com"])
