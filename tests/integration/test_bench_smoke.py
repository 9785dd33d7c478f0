"""
scripts/bench, smoke test only: a small run (200 messages over 4
connections) finishes, signs in the DKIM runs, and prints the side-by-side
table and the JSON with the documented shape. The numbers themselves are
not checked; docs/PERFORMANCE.md has real ones.
"""

import json
import os
import subprocess

from conftest import OUTPOSTCTL, OUTPOSTD, REPO

BENCH = REPO / "scripts" / "bench"
LABELS = ["off", "rsa", "rsa+ed25519"]
METRICS = ["accepted_per_s", "latency_p50_ms", "latency_p99_ms", "e2e_per_s"]


def test_bench_smoke(binaries, tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, OUTPOSTD=OUTPOSTD, OUTPOSTCTL=OUTPOSTCTL, TMPDIR=str(tmp_path))
    p = subprocess.run([str(BENCH), "-n", "200", "-c", "4", "-o", str(out)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, f"scripts/bench failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"

    # The table: a header naming the three runs, one row per measure.
    lines = p.stdout.splitlines()
    header = next((l for l in lines if l.split()[:2] == ["DKIM", "off"]), None)
    assert header, p.stdout
    assert "DKIM rsa" in header and "DKIM rsa+ed25519" in header and "ratio" in header
    for title in ("accepted msg/s", "accept latency p50", "accept latency p99",
                  "end-to-end msg/s"):
        row = next((l for l in lines if l.startswith(title)), None)
        assert row, f"no row {title!r}:\n{p.stdout}"
        # value, value, ratio, value, ratio
        assert len(row[len(title):].split()) >= 5, row

    doc = json.loads(out.read_text())
    assert doc["n"] == 200 and doc["connections"] == 4
    assert doc["baseline"] == "off"
    assert list(doc["runs"]) == LABELS
    for label in LABELS:
        r = doc["runs"][label]
        assert r["accepted"] == 200 and r["rejected"] == 0, r
        assert r["delivered"] == 200, r
        for m in METRICS:
            assert isinstance(r[m], (int, float)) and r[m] > 0, (label, m, r[m])
        assert r["latency_p50_ms"] <= r["latency_p99_ms"]
    assert set(doc["ratio_to_baseline"]) == {"rsa", "rsa+ed25519"}
    for label, ratios in doc["ratio_to_baseline"].items():
        for m in METRICS:
            assert ratios[m] > 0, (label, m)
    # With -o the temp dir is gone again.
    assert not [d for d in tmp_path.iterdir() if d.name.startswith("outpost-bench.")]
