"""Prometheus metrics on [server] metrics_listen (issue 9: "/metrics
scraped and parsed"): a strict parser of the text exposition format 0.0.4
reads what the daemon serves after real traffic (accepted, refused and
throttled mail, an AUTH failure, STARTTLS in and out, DKIM signatures),
and the counts must match what happened; the HTTP side answers 404/405
where it should; metrics_listen = no listens nowhere; a port in use stops
the start with a clear message; a bad value is a file:line error."""
import http.client
import math
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ALICE_PW, OUTPOSTCTL, can_connect, free_port, submit_many, wait_until

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []       # (sample name, {labels}, value)


def _labels(text, line):
    """'{a="x",b="y\\"z"}' body (without braces) -> dict; strict."""
    out = {}
    i = 0
    while i < len(text):
        m = LABEL_NAME_RE.match(text, i)
        assert m, f"bad label name in {line!r}"
        name = m.group(0)
        i = m.end()
        assert text[i:i + 2] == '="', f"label {name} without =\" in {line!r}"
        i += 2
        val = []
        while True:
            assert i < len(text), f"unterminated label value in {line!r}"
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1:i + 2]
                assert nxt in ("\\", '"', "n"), f"bad escape \\{nxt} in {line!r}"
                val.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            if ch == '"':
                i += 1
                break
            assert ch != "\n", f"raw newline in {line!r}"
            val.append(ch)
            i += 1
        assert name not in out, f"label {name} twice in {line!r}"
        out[name] = "".join(val)
        if i < len(text):
            assert text[i] == ",", f"expected , after label {name} in {line!r}"
            i += 1
    return out


def _value(text, line):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text), \
        f"bad value {text!r} in {line!r}"
    return float(text)


def _family_of(sample, families, current):
    """The family a sample name belongs to: itself, or a histogram's
    _bucket/_sum/_count (summary: _sum/_count)."""
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            base = families.get(sample[:-len(suffix)])
            if base and (base.type == "histogram" or
                         (base.type == "summary" and suffix != "_bucket")):
                return base
    raise AssertionError(f"sample {sample} has no # TYPE before it")


def parse_exposition(text):
    """Text format 0.0.4 -> {family name: Family}; asserts every rule the
    tests rely on: HELP and TYPE once per family and before its samples,
    valid names, families contiguous, no series twice, histograms
    cumulative and ending with +Inf == _count."""
    assert text.endswith("\n"), "the body must end with a newline"
    families = {}
    order = []
    seen_series = set()
    current = None
    for line in text.split("\n")[:-1]:
        assert line != "", "empty line in the exposition"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert NAME_RE.match(name), f"bad metric name {name!r}"
                fam = families.get(name)
                if fam is None:
                    fam = families[name] = Family(name)
                    order.append(name)
                assert not fam.samples, f"# {parts[1]} {name} after its samples"
                if parts[1] == "HELP":
                    assert fam.help is None, f"two # HELP for {name}"
                    assert len(parts) == 4 and parts[3].strip(), f"empty # HELP {name}"
                    fam.help = parts[3]
                else:
                    assert fam.type is None, f"two # TYPE for {name}"
                    assert len(parts) == 4 and parts[3] in TYPES, f"bad type in {line!r}"
                    fam.type = parts[3]
                current = fam
            continue
        m = re.fullmatch(r"([^{} ]+)(?:\{(.*)\})? (\S+)(?: (-?\d+))?", line)
        assert m, f"unparsable sample line {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        assert NAME_RE.match(name), f"bad metric name {name!r}"
        fam = _family_of(name, families, current)
        assert fam is current, f"{name}: family {fam.name} is not contiguous"
        assert fam.type is not None, f"{name}: no # TYPE"
        assert fam.help is not None, f"{name}: no # HELP"
        lab = _labels(labels, line)
        key = (name, tuple(sorted(lab.items())))
        assert key not in seen_series, f"series twice: {line!r}"
        seen_series.add(key)
        fam.samples.append((name, lab, _value(value, line)))
    for fam in families.values():
        assert fam.type is not None and fam.help is not None, f"{fam.name}: HELP/TYPE"
        if fam.type == "counter":
            for _, _, v in fam.samples:
                assert v >= 0, f"negative counter {fam.name}"
        if fam.type == "histogram":
            _check_histogram(fam)
    return families


def _check_histogram(fam):
    groups = {}
    for name, lab, v in fam.samples:
        rest = tuple(sorted((k, x) for k, x in lab.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == fam.name + "_bucket":
            assert "le" in lab, f"{fam.name} bucket without le"
            g["buckets"].append((float(lab["le"].replace("+Inf", "inf")), v))
        elif name == fam.name + "_sum":
            g["sum"] = v
        elif name == fam.name + "_count":
            g["count"] = v
    assert groups, f"histogram {fam.name} has no samples"
    for g in groups.values():
        b = g["buckets"]
        assert b and b[-1][0] == math.inf, f"{fam.name}: last bucket not +Inf"
        assert [x for x, _ in b] == sorted(x for x, _ in b), f"{fam.name}: le not sorted"
        assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), \
            f"{fam.name}: buckets not cumulative {b}"
        assert g["count"] is not None and g["sum"] is not None, f"{fam.name}: _sum/_count"
        assert b[-1][1] == g["count"], f"{fam.name}: +Inf {b[-1][1]} != _count {g['count']}"


def value(fams, name, **labels):
    """The one sample of family/sample name with exactly these labels."""
    fam = fams.get(name) or next(f for f in fams.values() if name.startswith(f.name))
    hits = [v for n, lab, v in fam.samples if n == name and lab == labels]
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} samples in {fam.samples}"
    return hits[0]


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.status == 200
        ctype = r.headers["Content-Type"]
        body = r.read().decode("utf-8")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    return parse_exposition(body)


def metrics_daemon(daemon_factory, config=None, start=True):
    port = free_port()
    cfg = {"server": {"metrics_listen": f"127.0.0.1:{port}"}}
    for k, v in (config or {}).items():
        cfg.setdefault(k, {}).update(v) if v is not None else cfg.__setitem__(k, None)
    d = daemon_factory(cfg, start=start)
    d.metrics_port = port
    return d


def keygen(conf, keydir, domain, selector, type_):
    p = subprocess.run([OUTPOSTCTL, "-c", str(conf), "dkim", "keygen", domain, selector,
                        "--type", type_, "--dir", str(keydir)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return f"{selector}:{Path(keydir) / f'{domain}.{selector}.pem'}"


# ---------------------------------------------------------------------------


def test_metrics_count_what_happened(daemon_factory, upstream_factory, client_factory,
                                     tls_ctx):
    """Accepted, refused, AUTH failure, STARTTLS in and out, DKIM: the
    scrape says exactly what happened."""
    up = upstream_factory()                         # STARTTLS + AUTH, like a smarthost
    d = metrics_daemon(daemon_factory, {
        "server": {"auth_failure_delay": "0"},
        "upstream main": up.upstream_section(rate="5/second"),
    }, start=False)
    keydir = d.workdir / "keys"
    rsa = keygen(d.conf_path, keydir, "example.com", "m1", "rsa")
    ed = keygen(d.conf_path, keydir, "example.com", "m2", "ed25519")
    d.sections["domain example.com"]["dkim_key"] = f"{rsa}, {ed}"
    d.write_config()
    d.start()
    d.wait_log(rf"metrics on http://127\.0\.0\.1:{d.metrics_port}/metrics")

    fams = scrape(d.metrics_port)
    assert value(fams, "outpost_build_info", version=value_label(fams, "outpost_build_info",
                                                                  "version")) == 1
    assert time.time() - 300 < value(fams, "outpost_start_time_seconds") <= time.time()
    assert value(fams, "outpost_messages_received_total", listener="submission") == 0
    assert value(fams, "outpost_messages_sent_total", upstream="main") == 0
    assert value(fams, "outpost_commit_latency_seconds_count") == 0

    # no AUTH: the relay refuses (530), one per MAIL
    c = client_factory(d.port)
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@example.com>").code == 530
    c.cmd("QUIT")
    # a wrong password, under TLS
    c = client_factory(d.port)
    c.ehlo()
    c.starttls(tls_ctx)
    c.ehlo()
    assert c.auth_plain("alice", "wrong-password").code == 535
    c.cmd("QUIT")
    # someone else's address as the envelope sender (553)
    c = client_factory(d.port)
    c.login(tls_ctx, "alice", ALICE_PW)
    assert c.cmd("MAIL FROM:<mallory@elsewhere.test>").code == 553
    c.cmd("QUIT")
    # three accepted, each signed rsa + ed25519
    qids = submit_many(d, client_factory, tls_ctx, 3, prefix="metrics")
    up.wait_messages(3, timeout=20)
    for q in qids:
        d.wait_log(rf"{q}: to=<bob@example\.net>.*status=sent")
    # a session left open counts as active
    held = client_factory(d.port)
    held.ehlo()

    fams = wait_until(lambda: (lambda f: f if value(f, "outpost_connections_active") == 1
                               else None)(scrape(d.metrics_port)), 10,
                      "one active connection")
    # five sessions above, and the start-up probe of wait_ready
    assert value(fams, "outpost_connections_total", listener="submission") == 6
    assert value(fams, "outpost_messages_received_total", listener="submission") == 3
    assert value(fams, "outpost_messages_sent_total", upstream="main") == 3
    assert value(fams, "outpost_messages_deferred_total", upstream="main") == 0
    assert value(fams, "outpost_messages_bounced_total", upstream="main") == 0
    rejected = {lab["reason"]: v for _, lab, v in
                fams["outpost_messages_rejected_total"].samples}
    assert rejected["auth_required"] == 1 and rejected["sender_not_owned"] == 1, rejected
    assert sum(rejected.values()) == 2, rejected
    assert value(fams, "outpost_auth_failures_total") == 1
    assert value(fams, "outpost_auth_successes_total") == 2
    tls = {(lab["direction"], lab["version"]): v for _, lab, v in
           fams["outpost_tls_sessions_total"].samples}
    assert sum(v for (dr, _), v in tls.items() if dr == "in") == 3, tls
    assert tls[("in", "TLSv1.3")] >= 1, tls
    assert sum(v for (dr, _), v in tls.items() if dr == "out") >= 1, tls
    assert value(fams, "outpost_dkim_signatures_total", algorithm="rsa-sha256") == 3
    assert value(fams, "outpost_dkim_signatures_total", algorithm="ed25519-sha256") == 3
    assert value(fams, "outpost_arc_seals_total") == 0
    assert value(fams, "outpost_commit_latency_seconds_count") == 3
    assert 0 < value(fams, "outpost_commit_latency_seconds_sum") < 30
    for state in ("queued", "deferred", "delivering", "held"):
        assert value(fams, "outpost_queue_messages", state=state) == 0, state
    assert value(fams, "outpost_queue_recipients") == 0
    assert value(fams, "outpost_queue_oldest_age_seconds") == 0
    assert value(fams, "outpost_queue_messages_older_than", seconds="60") == 0
    assert value(fams, "outpost_upstream_up", upstream="main") == 1
    assert value(fams, "outpost_upstream_state", upstream="main", state="up") == 1
    assert value(fams, "outpost_upstream_state", upstream="main", state="down") == 0
    assert value(fams, "outpost_upstream_rate_configured", upstream="main") == 5
    assert value(fams, "outpost_upstream_throttle_events_total", upstream="main") == 0
    held.cmd("QUIT")


def value_label(fams, name, label):
    (_, lab, _), = fams[name].samples
    assert re.fullmatch(r"[0-9][0-9A-Za-z.+~-]*", lab[label]), lab
    return lab[label]


def test_metrics_throttling_and_queue(daemon_factory, upstream_factory, client_factory,
                                      tls_ctx):
    """A 421 from the upstream: one throttle event, a deferral, the rate
    halved, the upstream suspended and the message waiting, then sent."""
    up = upstream_factory(tls=False, auth=False)
    up.rcpt_replies["bob@example.net"] = ["421 4.7.0 Too many messages, slow down"]
    d = metrics_daemon(daemon_factory, {
        "upstream main": up.upstream_section(rate="8/second", throttle_cooldown="3s"),
        "queue": {"retry": "1s"},
    })
    qid, = submit_many(d, client_factory, tls_ctx, 1, prefix="t")
    d.wait_log(rf"{qid}: to=<bob@example\.net>.*status=deferred \(421 4\.7\.0")
    fams = scrape(d.metrics_port)
    assert value(fams, "outpost_messages_deferred_total", upstream="main") == 1
    assert value(fams, "outpost_messages_sent_total", upstream="main") == 0
    assert value(fams, "outpost_upstream_throttle_events_total", upstream="main") == 1
    assert value(fams, "outpost_upstream_state", upstream="main", state="suspended") == 1
    assert value(fams, "outpost_upstream_up", upstream="main") == 1
    assert value(fams, "outpost_upstream_rate", upstream="main") == 4
    assert value(fams, "outpost_upstream_rate_configured", upstream="main") == 8
    assert value(fams, "outpost_queue_messages", state="deferred") == 1
    assert value(fams, "outpost_queue_recipients") == 1
    assert value(fams, "outpost_queue_oldest_age_seconds") >= 0
    # after the cool-down it goes
    up.wait_messages(1, timeout=15)
    d.wait_log(rf"{qid}: to=<bob@example\.net>.*status=sent")
    fams = scrape(d.metrics_port)
    assert value(fams, "outpost_messages_sent_total", upstream="main") == 1
    assert value(fams, "outpost_queue_messages", state="deferred") == 0


def test_metrics_http_answers(daemon_factory):
    """Only GET/HEAD /metrics: other paths 404, other methods 405, bounded
    headers refused, a slow or idle client does not hold the loop."""
    d = metrics_daemon(daemon_factory)
    port = d.metrics_port
    for path in ("/", "/metric", "/metrics/x", "/favicon.ico"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
            raise AssertionError(f"{path} answered 200")
        except urllib.error.HTTPError as e:
            assert e.code == 404, (path, e.code)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/metrics", body=b"x")
    r = conn.getresponse()
    r.read()
    assert r.status == 405 and "GET" in (r.getheader("Allow") or ""), r.status
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("HEAD", "/metrics")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    conn.close()
    # a query string does not change the path
    assert "outpost_build_info" in scrape(port, "/metrics?x=1")
    # oversized headers are refused, the daemon keeps serving
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        assert not data.startswith(b"HTTP/1.1 200"), data[:100]
    # an idle connection stays open while scrapes go on
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    idle.sendall(b"GET /metr")
    assert "outpost_build_info" in scrape(port)
    idle.close()
    # SMTP still answers
    assert d.running()


def _listening_ports(pid):
    """TCP ports in LISTEN state held by process pid (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            t = os.readlink(fd)
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", str(t))
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            f = l.split()
            if f[3] == "0A" and f[9] in inodes:            # 0A = LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def test_metrics_listen_no(daemon_factory):
    """metrics_listen = no (the tests' default): only the SMTP port."""
    d = daemon_factory()
    assert d.sections["server"]["metrics_listen"] == "no"
    assert _listening_ports(d.proc.pid) == {d.port}
    assert "metrics on" not in d.log()
    # and with a port, exactly that one more
    d2 = metrics_daemon(daemon_factory)
    assert _listening_ports(d2.proc.pid) == {d2.port, d2.metrics_port}


def test_metrics_port_in_use_stops_the_start(daemon_factory):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        d = daemon_factory({"server": {"metrics_listen": f"127.0.0.1:{port}"}}, start=False)
        d.start(wait=False)
        rc = d.proc.wait(timeout=20)
        assert rc != 0
        d.wait_log(rf"metrics_listen 127\.0\.0\.1:{port}: cannot listen: Address already in use",
                   timeout=1)
        assert not can_connect("127.0.0.1", d.port), "the SMTP port opened anyway"
    finally:
        busy.close()


def test_metrics_listen_bad_value_is_a_config_error(daemon_factory):
    for i, bad in enumerate(("localhost:9587", "127.0.0.1", "127.0.0.1:0", "yes")):
        d = daemon_factory({"server": {"metrics_listen": bad}}, start=False,
                           subdir=f"bad{i}")
        p = d.check_config()
        assert p.returncode != 0, (bad, p.stdout, p.stderr)
        line = next(i for i, l in enumerate(d.conf_path.read_text().splitlines(), 1)
                    if l.startswith("metrics_listen"))
        assert re.search(rf"{re.escape(str(d.conf_path))}:{line}: .*metrics_listen",
                         p.stdout + p.stderr), (bad, p.stdout, p.stderr)
