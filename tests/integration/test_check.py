"""
`outpostctl check dns` / `check rbl`, black box: the real outpostctl
against zones served by the dns_server fixture (dnslib on loopback, given
to outpost as [server] dns_server). No daemon runs; the config is written
by daemon_factory(start=False).

The done-when of the self-check: on a misconfigured domain every broken
record is named with its fix (exit 1), and once the printed fixes are
published the same command reports all OK (exit 0).
"""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import (OUTPOSTCTL, SANITIZER_IGNORE_RE, SANITIZER_RE, DNSTestServer,
                      parse_txt_records)

DOMAIN = "example.com"
EGRESS = "203.0.113.7"
OTHER_IP = "198.51.100.1"
SEL = "s1"
PTR_NAME = f"{'.'.join(reversed(EGRESS.split('.')))}.in-addr.arpa"
RBL_LISTING = "bl.test"
RBL_CLEAN = "clean.test"
RBL_REFUSING = "refuse.test"


class PTRServer(DNSTestServer):
    """The conftest server, plus PTR: {"PTR": [name, ...]} in a record."""

    def resolve(self, request, handler):
        from dnslib import PTR, QTYPE, RR
        if QTYPE.get(request.q.qtype) != "PTR":
            return super().resolve(request, handler)
        name = str(request.q.qname).rstrip(".").lower()
        with self.lock:
            self.queries.append((name, "PTR"))
        value = self._lookup(name)
        reply = request.reply()
        if value is None:
            from dnslib import RCODE
            reply.header.rcode = RCODE.NXDOMAIN
        elif isinstance(value, dict):
            for target in value.get("PTR", []):
                reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=PTR(target),
                                    ttl=60))
        return reply


@pytest.fixture
def dns():
    srv = PTRServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two RSA keys made by the real keygen: s1 (configured) and a stranger
    whose record stands in for a mismatched one."""
    d = tmp_path_factory.mktemp("checkkeys")
    conf = d / "outpost.conf"
    conf.write_text("[server]\nhostname = relay.test.example\n"
                    f"state_dir = {d}\n[listen s]\naddress = 127.0.0.1:2525\ntls = none\n")
    out = {}
    for sel in (SEL, "stranger"):
        p = subprocess.run([OUTPOSTCTL, "-c", str(conf), "dkim", "keygen", DOMAIN, sel,
                            "--dir", str(d / "keys")], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        out[sel] = (d / "keys" / f"{DOMAIN}.{sel}.pem",
                    parse_txt_records(p.stdout)[f"{sel}._domainkey.{DOMAIN}"])
    return out


def good_zone(keys):
    """Everything right for example.com sending from EGRESS."""
    return {
        DOMAIN: {"TXT": [f"v=spf1 ip4:{OTHER_IP} ip4:{EGRESS} -all"],
                 "MX": [(10, f"mx.{DOMAIN}")]},
        f"mx.{DOMAIN}": {"A": ["198.51.100.25"]},
        f"{SEL}._domainkey.{DOMAIN}": keys[SEL][1],
        f"_dmarc.{DOMAIN}": f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}",
        PTR_NAME: {"PTR": [f"mail.{DOMAIN}"]},
        f"mail.{DOMAIN}": {"A": [EGRESS]},
        f"_mta-sts.{DOMAIN}": "v=STSv1; id=20240101T000000",
        f"_smtp._tls.{DOMAIN}": f"v=TLSRPTv1; rua=mailto:tlsrpt@{DOMAIN}",
    }


@pytest.fixture
def setup(daemon_factory, dns, keys):
    """-> make(domain={...}, upstream={...}, server={...}) -> config path;
    the good zone is loaded, tests break it."""
    dns.records.update(good_zone(keys))

    def make(domain=None, upstream=None, server=None):
        cfg = {
            "server": {"dns_server": dns.address,
                       "rbl": f"{RBL_LISTING}, {RBL_CLEAN}"},
            "upstream main": {"address": "smtp.provider.test:587", "egress_ip": EGRESS},
            "domain example.com": {"upstream": "main", "dkim_key": f"{SEL}:{keys[SEL][0]}"},
        }
        for sec, extra in (("domain example.com", domain), ("upstream main", upstream),
                           ("server", server)):
            cfg[sec].update(extra or {})
        return daemon_factory(cfg, start=False).conf_path
    return make


def check(conf, *args, json_out=False):
    """Run outpostctl check ARGS; -> (exit code, stdout, parsed JSON or None)."""
    cmd = [OUTPOSTCTL, "-c", str(conf), "check", *args] + (["--json"] if json_out else [])
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0"})
    assert time.monotonic() - t0 < 20, f"{cmd} took too long"
    assert p.returncode in (0, 1), f"{cmd}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    reports = [line for line in p.stderr.splitlines()
               if SANITIZER_RE.search(line) and not SANITIZER_IGNORE_RE.search(line)]
    assert not reports, p.stderr
    return p.returncode, p.stdout, json.loads(p.stdout) if json_out else None


def findings(doc, check_name, level=None):
    return [f for f in doc["findings"]
            if f["check"] == check_name and (level is None or f["level"] == level)]


def one(doc, check_name, level):
    got = findings(doc, check_name, level)
    assert len(got) == 1, f"want one {level} {check_name}: {json.dumps(doc, indent=1)}"
    return got[0]


# ---------------------------------------------------------------------------
# check dns: the whole setup


def test_good_zone_all_ok(setup):
    rc, out, doc = check(setup(), "dns", DOMAIN, json_out=True)
    assert rc == 0, out
    assert doc["ok"] is True and doc["subject"] == DOMAIN
    assert {f["level"] for f in doc["findings"]} == {"OK"}, json.dumps(doc, indent=1)
    checks = {f["check"] for f in doc["findings"]}
    assert checks == {"spf", "dkim", "dmarc", "mx", "fcrdns", "mta-sts", "tls-rpt"}
    assert f"ip4:{EGRESS} matched" in one(doc, "spf", "OK")["text"]
    assert "p=reject" in one(doc, "dmarc", "OK")["text"]
    assert f"mailto:dmarc@{DOMAIN}" in one(doc, "dmarc", "OK")["text"]
    assert f"mail.{DOMAIN}" in one(doc, "fcrdns", "OK")["text"]


def test_broken_zone_names_every_fix_and_fixes_work(setup, dns, keys):
    """The done-when: each broken record FAILs with its fix; publishing the
    fixes as printed gives all OK."""
    dns.records[DOMAIN] = {"TXT": [f"v=spf1 ip4:{OTHER_IP} ~all"]}     # no MX either
    del dns.records[f"{SEL}._domainkey.{DOMAIN}"]
    del dns.records[f"_dmarc.{DOMAIN}"]
    dns.records[PTR_NAME] = {"PTR": [f"host7.isp.test"]}
    conf = setup()

    rc, text, _ = check(conf, "dns", DOMAIN)
    assert rc == 1, text
    assert (f"FAIL spf  {EGRESS} is not allowed by {DOMAIN}'s SPF "
            f"(v=spf1 ip4:{OTHER_IP} ~all)") in text
    assert (f'     fix: publish {DOMAIN} TXT "v=spf1 ip4:{OTHER_IP} ip4:{EGRESS} ~all"'
            in text), text

    rc, _, doc = check(conf, "dns", DOMAIN, json_out=True)
    assert rc == 1 and doc["ok"] is False
    failed = {f["check"] for f in doc["findings"] if f["level"] == "FAIL"}
    assert failed == {"spf", "dkim", "dmarc", "mx", "fcrdns"}, json.dumps(doc, indent=1)
    assert all(f["fix"] for f in doc["findings"] if f["level"] == "FAIL")

    # publish every fix as printed
    spf = one(doc, "spf", "FAIL")
    m = re.fullmatch(rf'publish {re.escape(DOMAIN)} TXT "(.*)"', spf["fix"])
    assert m, spf
    dkim = one(doc, "dkim", "FAIL")
    assert f"{SEL}._domainkey.{DOMAIN}: no DKIM key published" in dkim["text"]
    published = parse_txt_records(dkim["fix"])
    assert published == {f"{SEL}._domainkey.{DOMAIN}": keys[SEL][1]}
    dmarc = one(doc, "dmarc", "FAIL")
    dm = re.fullmatch(rf'publish _dmarc\.{re.escape(DOMAIN)} TXT "(.*)"', dmarc["fix"])
    assert dm and dm.group(1) == f"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}", dmarc
    fc = one(doc, "fcrdns", "FAIL")
    assert "host7.isp.test does not resolve back" in fc["text"]
    fm = re.match(r"publish (\S+) A (\S+),", fc["fix"])
    assert fm and fm.group(2) == EGRESS, fc
    assert "MX 10" in one(doc, "mx", "FAIL")["fix"]

    dns.records[DOMAIN] = {"TXT": [m.group(1)], "MX": [(10, f"mx.{DOMAIN}")]}
    dns.records.update(published)
    dns.records[f"_dmarc.{DOMAIN}"] = dm.group(1)
    dns.records[fm.group(1)] = {"A": [fm.group(2)]}

    rc, _, doc = check(conf, "dns", DOMAIN, json_out=True)
    assert rc == 0, json.dumps(doc, indent=1)
    # p=none is monitoring only: a WARN whose fix is the next step
    warn = one(doc, "dmarc", "WARN")
    wm = re.search(r'publish _dmarc\.\S+ TXT "([^"]*)"', warn["fix"])
    assert wm and "p=quarantine" in wm.group(1), warn
    dns.records[f"_dmarc.{DOMAIN}"] = wm.group(1)

    rc, text, _ = check(conf, "dns", DOMAIN)
    assert rc == 0, text
    assert all(line.startswith("OK ") for line in text.splitlines()[:-1]), text
    assert text.splitlines()[-1] == f"{DOMAIN}: 0 FAIL, 0 WARN, 0 INFO, 7 OK"


def test_spf_permerror_too_many_lookups(setup, dns):
    """Two includes with six a: each: 14 lookups through the chain; libspf2
    alone counts per record and would not notice."""
    dns.records[DOMAIN]["TXT"] = [f"v=spf1 ip4:{EGRESS} include:a.spf.{DOMAIN} "
                                  f"include:b.spf.{DOMAIN} -all"]
    for part in "ab":
        dns.records[f"{part}.spf.{DOMAIN}"] = "v=spf1 " + " ".join(
            f"a:h{i}.{part}.spf.{DOMAIN}" for i in range(6)) + " -all"
    rc, _, doc = check(setup(), "dns", DOMAIN, json_out=True)
    assert rc == 1
    f = one(doc, "spf", "FAIL")
    assert "permerror: too many DNS lookups" in f["text"], f
    assert "at most 10 DNS lookups" in f["fix"]


def test_spf_two_records_and_none(setup, dns):
    dns.records[DOMAIN]["TXT"] = ["v=spf1 -all", f"v=spf1 ip4:{EGRESS} -all"]
    conf = setup()
    rc, _, doc = check(conf, "dns", DOMAIN, json_out=True)
    f = one(doc, "spf", "FAIL")
    assert rc == 1 and "more than one v=spf1 record" in f["text"], f
    assert "exactly one" in f["fix"]

    dns.records[DOMAIN]["TXT"] = ["google-site-verification=abc"]
    rc, _, doc = check(conf, "dns", DOMAIN, json_out=True)
    f = one(doc, "spf", "FAIL")
    assert f"{DOMAIN} publishes no SPF record" in f["text"]
    assert f["fix"] == f'publish {DOMAIN} TXT "v=spf1 ip4:{EGRESS} -all"'


def test_spf_temperror_warns(setup, dns):
    dns.records[f"inc.{DOMAIN}"] = DNSTestServer.SERVFAIL
    dns.records[DOMAIN]["TXT"] = [f"v=spf1 include:inc.{DOMAIN} -all"]
    rc, _, doc = check(setup(), "dns", DOMAIN, json_out=True)
    assert "temperror" in one(doc, "spf", "WARN")["text"]
    assert rc == 0, "a temporary failure is no FAIL"


def test_spf_upstream_host_resolved(setup, dns):
    """Without egress_ip the upstream host's addresses are checked; one of
    them missing from SPF is named, with the include: hint."""
    dns.records["smtp.provider.test"] = {"A": [EGRESS, "203.0.113.8"]}
    rc, _, doc = check(setup(upstream={"egress_ip": None}), "dns", DOMAIN, json_out=True)
    assert rc == 1
    assert EGRESS in one(doc, "spf", "OK")["text"]
    f = one(doc, "spf", "FAIL")
    assert f["text"].startswith("203.0.113.8 is not allowed")
    assert "ip4:203.0.113.7 ip4:203.0.113.8 -all" in f["fix"] and "include:" in f["fix"]


def test_dkim_key_mismatch(setup, dns, keys):
    dns.records[f"{SEL}._domainkey.{DOMAIN}"] = keys["stranger"][1]
    rc, _, doc = check(setup(), "dns", DOMAIN, json_out=True)
    assert rc == 1
    f = one(doc, "dkim", "FAIL")
    assert f"published key does not match {SEL}'s private key" in f["text"], f
    assert parse_txt_records(f["fix"]) == {f"{SEL}._domainkey.{DOMAIN}": keys[SEL][1]}


def test_dkim_not_configured(setup):
    rc, _, doc = check(setup(domain={"dkim_key": None}), "dns", DOMAIN, json_out=True)
    assert rc == 1
    f = one(doc, "dkim", "FAIL")
    assert f"no dkim_key configured for {DOMAIN}" in f["text"]
    assert "outpostctl dkim keygen" in f["fix"]


@pytest.mark.parametrize("record,level,words", [
    ("v=DMARC1; p=reject; adkim=s; rua=mailto:d@example.com", "OK",
     ["p=reject", "adkim=s", "mailto:d@example.com"]),
    ("v=DMARC1; p=none; rua=mailto:d@example.com", "WARN", ["monitoring only"]),
    ("v=DMARC1; p=bogus", "FAIL", ["_dmarc.example.com"]),
])
def test_dmarc_records(setup, dns, record, level, words):
    dns.records[f"_dmarc.{DOMAIN}"] = record
    rc, _, doc = check(setup(), "dns", DOMAIN, json_out=True)
    f = one(doc, "dmarc", level)
    for w in words:
        assert w in f["text"], f
    assert rc == (1 if level == "FAIL" else 0)


def test_dmarc_from_organizational_domain(setup, dns):
    """news.example.com has no record: the organizational domain's applies.
    It is no [domain] of the config, so its keys are not checked."""
    dns.records[f"news.{DOMAIN}"] = {"TXT": [f"v=spf1 ip4:{EGRESS} -all"],
                                     "MX": [(10, f"mx.{DOMAIN}")]}
    rc, _, doc = check(setup(), "dns", f"news.{DOMAIN}", json_out=True)
    f = one(doc, "dmarc", "OK")
    assert f"_dmarc.{DOMAIN}: p=reject" in f["text"] and "organizational" in f["text"]
    assert "no [domain]" in one(doc, "dkim", "INFO")["text"]


def test_ptr_missing_and_unknown_egress(setup, dns):
    del dns.records[PTR_NAME]
    rc, _, doc = check(setup(), "dns", DOMAIN, json_out=True)
    f = one(doc, "ptr", "FAIL")
    assert rc == 1 and f"{EGRESS} has no PTR record" in f["text"]
    assert "relay.test.example" in f["fix"]

    rc, _, doc = check(setup(upstream={"address": "maildir:/nonexistent/outbox",
                                       "egress_ip": None}), "dns", DOMAIN, json_out=True)
    assert findings(doc, "ptr", "INFO") and findings(doc, "spf", "INFO")
    assert not findings(doc, "ptr", "FAIL")


def test_mta_sts_tls_rpt_absent_is_info(setup, dns):
    del dns.records[f"_mta-sts.{DOMAIN}"]
    del dns.records[f"_smtp._tls.{DOMAIN}"]
    rc, _, doc = check(setup(), "dns", DOMAIN, json_out=True)
    assert rc == 0
    assert one(doc, "mta-sts", "INFO") and one(doc, "tls-rpt", "INFO")


# ---------------------------------------------------------------------------
# check rbl


def rbl_zone(ip, zone):
    return ".".join(reversed(ip.split("."))) + "." + zone


def test_rbl_listed_with_reason(setup, dns):
    dns.records[rbl_zone(EGRESS, RBL_LISTING)] = {
        "A": ["127.0.0.2"], "TXT": ["Listed for spam runs, see https://bl.test/lookup"]}
    conf = setup()
    rc, text, _ = check(conf, "rbl")
    assert rc == 1, text
    assert f"FAIL rbl  {EGRESS} is listed in {RBL_LISTING} (127.0.0.2): Listed for spam runs" \
        in text, text
    assert f"OK   rbl  {EGRESS} is not listed in {RBL_CLEAN}" in text
    assert f"ask {RBL_LISTING} to delist {EGRESS}" in text

    rc, _, doc = check(conf, "rbl", "198.51.100.20", json_out=True)
    assert rc == 0 and doc["ok"] is True and doc["subject"] == "198.51.100.20"
    assert [f["level"] for f in doc["findings"]] == ["OK", "OK"]
    assert dns.queried(rbl_zone("198.51.100.20", RBL_CLEAN))


def test_rbl_refused_query_warns(setup, dns):
    dns.records[rbl_zone(EGRESS, RBL_REFUSING)] = {"A": ["127.255.255.254"]}
    rc, _, doc = check(setup(server={"rbl": RBL_REFUSING}), "rbl", EGRESS, json_out=True)
    assert rc == 0
    assert "refused the query" in one(doc, "rbl", "WARN")["text"]


def test_rbl_bad_address_is_usage_error(setup):
    p = subprocess.run([OUTPOSTCTL, "-c", str(setup()), "check", "rbl", "not-an-ip"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "not an IPv4 or IPv6 address" in p.stderr
