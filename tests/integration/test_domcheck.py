"""The daemon's own self-check (issue 6): every [domain] is checked at
start and every check_interval; FAILs are logged with their fix and shown
in outpostctl status; with refuse_when_failing, mail from a domain whose
SPF and DKIM both fail is refused with 451 4.7.26 until the records are
fixed. DNS from the dnslib fixture only."""
import json
import subprocess

from conftest import ALICE_PW, OUTPOSTCTL, dot_stuff, simple_message
from test_check import DOMAIN, EGRESS, OTHER_IP, SEL, dns, good_zone, keys  # noqa: F401


def submit(d, client_factory, tls_ctx):
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd("MAIL FROM:<alice@example.com>").code == 250
    assert c.cmd("RCPT TO:<bob@example.net>").code == 250
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(simple_message(subject="domcheck")))
    r = c.reply()
    c.cmd("QUIT")
    return r


def status(d):
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "status", "--json"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_failing_domain_is_refused_until_fixed(daemon_factory, dns, keys,  # noqa: F811
                                               client_factory, tls_ctx):
    dns.records.update(good_zone(keys))
    dns.records[DOMAIN]["TXT"] = [f"v=spf1 ip4:{OTHER_IP} -all"]    # egress not allowed
    del dns.records[f"{SEL}._domainkey.{DOMAIN}"]                   # key not published
    d = daemon_factory({
        "server": {"dns_server": dns.address, "check_interval": "2s"},
        "upstream main": {"address": "smtp.provider.test:587", "egress_ip": EGRESS},
        "domain example.com": {"dkim_key": f"{SEL}:{keys[SEL][0]}",
                               "refuse_when_failing": "yes"},
    })
    d.wait_log(r"selfcheck example\.com: FAIL spf: .*; fix: publish example\.com TXT",
               timeout=20)
    d.wait_log(r"selfcheck example\.com: FAIL dkim: ", timeout=5)
    d.wait_log(r"selfcheck example\.com: \d+ OK, \d+ WARN, [1-9]\d* FAIL", timeout=5)
    sc = status(d)["selfcheck"]
    assert sc[0]["domain"] == "example.com" and sc[0]["fail"] >= 2 and sc[0]["refusing"], sc
    r = submit(d, client_factory, tls_ctx)
    assert r.code == 451 and r.enh == "4.7.26", r
    assert "fails SPF and DKIM" in str(r) and "outpostctl check dns example.com" in str(r)

    dns.records.update(good_zone(keys))                              # the fix
    mark = d.mark()
    d.wait_log(r"selfcheck example\.com: \d+ OK, \d+ WARN, 0 FAIL", timeout=20, since=mark)
    assert status(d)["selfcheck"][0]["refusing"] is False
    assert submit(d, client_factory, tls_ctx).code == 250


def test_failing_domain_without_refuse_is_relayed(daemon_factory, dns, keys,  # noqa: F811
                                                  client_factory, tls_ctx):
    dns.records.update(good_zone(keys))
    del dns.records[f"{SEL}._domainkey.{DOMAIN}"]
    dns.records[DOMAIN]["TXT"] = [f"v=spf1 ip4:{OTHER_IP} -all"]
    d = daemon_factory({
        "server": {"dns_server": dns.address, "check_interval": "1h"},
        "upstream main": {"address": "smtp.provider.test:587", "egress_ip": EGRESS},
        "domain example.com": {"dkim_key": f"{SEL}:{keys[SEL][0]}"},
    })
    d.wait_log(r"selfcheck example\.com: \d+ OK, \d+ WARN, [1-9]\d* FAIL", timeout=20)
    assert submit(d, client_factory, tls_ctx).code == 250
    p = subprocess.run([OUTPOSTCTL, "-c", str(d.conf_path), "status"], capture_output=True,
                       text=True, timeout=30)
    assert "self-check (check dns, every 1h0m):" in p.stdout, p.stdout
    assert "  example.com: " in p.stdout and " FAIL; first: " in p.stdout, p.stdout
