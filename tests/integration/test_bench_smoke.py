"""
scripts/bench, smoke test only: `--quick` runs every scenario tiny (100
messages over 4 sessions, 10 big ones, 2 s of paced latency, 200 idle
connections) against both outpostd and Postfix+OpenDKIM, and this checks
that everything sent was accepted and delivered, that the DKIM runs carry
their signatures (verified with dkimpy at the sink), and that the tables
and the JSON have the documented shape with numbers in them. How large the
numbers are is not checked; docs/PERFORMANCE.md has real ones.

Needs root (smtp-sink drops to nobody, a Postfix instance, cgroups) and
Postfix, smtp-source and OpenDKIM installed; skipped otherwise.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import OUTPOSTCTL, OUTPOSTD, REPO

BENCH = REPO / "scripts" / "bench"
SYSTEMS = ["outpost", "postfix"]
TPUT = {"tput-off": [], "tput-rsa": ["rsa-sha256"],
        "tput-rsa+ed25519": ["rsa-sha256", "ed25519-sha256"], "tput-big-rsa": ["rsa-sha256"]}
TPUT_METRICS = ["accepted_per_s", "e2e_per_s", "peak_rss_mb", "peak_pss_mb", "cpu_s_per_1000"]
LAT_METRICS = ["achieved_per_s", "latency_p50_ms", "latency_p99_ms", "latency_max_ms"]
TPUT_ROWS = ["accepted msg/s", "end-to-end msg/s", "peak RSS sum (MB)", "peak PSS sum (MB)",
             "CPU s / 1000 msg", "accepted / delivered", "DKIM signatures"]
LAT_ROWS = ["latency p50 (ms)", "latency p99 (ms)", "late starts", "failed"]


def positive(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def test_bench_smoke(binaries):
    if os.geteuid() != 0:
        pytest.skip("scripts/bench needs root")
    for tool in ("smtp-source", "smtp-sink", "postfix", "opendkim"):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            pytest.skip(f"{tool} not installed (scripts/bench installs it)")
    # Not pytest's tmp_path: Postfix's daemons, as user postfix, must be
    # able to reach their data_directory, and /tmp/pytest-of-root is 0700.
    tmp = tempfile.mkdtemp(prefix="bench-smoke.", dir="/tmp")
    os.chmod(tmp, 0o755)
    shm = "/dev/shm"
    sinks = lambda: {d for d in (os.listdir(shm) if os.path.isdir(shm) else [])
                     if d.startswith("outpost-bench-sink.")}
    sinks_before = sinks()
    try:
        out = os.path.join(tmp, "bench.json")
        env = dict(os.environ, OUTPOSTD=OUTPOSTD, OUTPOSTCTL=OUTPOSTCTL, TMPDIR=tmp)
        p = subprocess.run([str(BENCH), "--quick", "-o", out], capture_output=True, text=True,
                           timeout=85, env=env)
        assert p.returncode == 0, f"scripts/bench failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        doc = json.loads(open(out).read())
        # With -o the temporary directory is removed again, and so are the
        # sinks' directories on tmpfs.
        assert not [d for d in os.listdir(tmp) if d.startswith("outpost-bench.")]
        assert sinks() <= sinks_before, sorted(sinks() - sinks_before)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # The tables: a header per scenario naming both systems and the ratio.
    text = p.stdout
    lines = text.splitlines()
    assert lines[0].startswith("machine: ") and "Postfix 3" in lines[0] and "OpenDKIM" in lines[0]
    heads = [l for l in lines if l.split()[:3] == ["outpost", "Postfix+OpenDKIM", "ratio"]]
    assert len(heads) == 5, text            # 4 throughput tables, 1 latency
    for title in TPUT_ROWS + LAT_ROWS:
        rows = [l for l in lines if l.startswith(title)]
        assert rows, f"no row {title!r}:\n{text}"
    for row in (l for l in lines if l.startswith("accepted / delivered")):
        cells = row[len("accepted / delivered"):].split()
        assert cells in (["100", "/", "100"] * 2, ["10", "/", "10"] * 2, ["80", "/", "80"] * 2), row
    assert "FAILED" not in text
    assert any(l.startswith("connections held") and l.split()[-1] == "200" for l in lines), text

    # The JSON: the same data.
    assert set(doc) >= {"machine", "options", "scenarios", "notes", "failed"}
    assert doc["failed"] == []
    assert doc["options"]["quick"] is True
    for k in ("cpu", "cores", "kernel", "openssl", "postfix", "opendkim", "outpost"):
        assert doc["machine"][k], k
    # The ceiling signing puts on any DKIM run, measured on the spot.
    assert positive(doc["machine"]["rsa2048_sign_per_s"])
    assert any(l.startswith("signing bound: ") for l in lines), text
    sc = doc["scenarios"]
    assert set(sc) == set(TPUT) | {"latency-rsa", "idle"}
    for key, algs in TPUT.items():
        n = sc[key]["n"]
        assert n == (10 if key == "tput-big-rsa" else 100)
        for s in SYSTEMS:
            r = sc[key][s]
            assert r["accepted"] == n and r["delivered"] == n, (key, s, r)
            assert r["sink_messages"] == n, (key, s, r)
            assert r["smtp_source_exit"] == 0 and r["deferred_logged"] == 0, (key, s, r)
            for m in TPUT_METRICS:
                assert positive(r[m]), (key, s, m, r[m])
            for a in ("rsa-sha256", "ed25519-sha256"):
                want = n if a in algs else 0
                assert r["signatures"][a] == want, (key, s, a, r["signatures"])
            if algs:
                v = r["verified"]
                assert v["checked"] >= len(algs) and v["ok"] == v["checked"], (key, s, v)
                if s == "outpost":
                    assert all(r["signatures_logged"][a] >= n for a in algs), r
        for m in TPUT_METRICS:
            assert positive(sc[key]["ratio"][m]), (key, m)

    lat = sc["latency-rsa"]
    for s in SYSTEMS:
        r = lat[s]
        assert r["offered"] == 80 and r["accepted"] == 80 and r["delivered"] == 80, (s, r)
        assert r["failed"] == 0, (s, r)
        for m in LAT_METRICS:
            assert positive(r[m]), (s, m, r[m])
        assert r["latency_p50_ms"] <= r["latency_p99_ms"] <= r["latency_max_ms"]

    idle = sc["idle"]["outpost"]
    assert idle["held"] == 200 and idle["daemon_alive"], idle
    assert positive(idle["rss_before_mb"]) and idle["rss_held_mb"] >= idle["rss_before_mb"]
