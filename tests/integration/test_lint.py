"""
outpostctl lint over the corpus in tests/data/lint: each message must give
exactly the finding ids tests/data/lint/expected.txt lists, and a score in
its range. The oversized attachment is generated here, not stored.

lint needs no daemon and no configuration: verb_lint ignores -c.
"""

import base64
import json
import subprocess
from pathlib import Path

import pytest

from conftest import OUTPOSTCTL, REPO

CORPUS = REPO / "tests" / "data" / "lint"
TIMEOUT = 30


def expected():
    rows = []
    for line in (CORPUS / "expected.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, ids, lo, hi = line.split()
        rows.append((name, set() if ids == "-" else set(ids.split(",")), float(lo), float(hi)))
    return rows


def lint(path, *extra, stdin=None):
    return subprocess.run([OUTPOSTCTL, "-c", "/nonexistent/outpost.conf", "lint", *extra]
                          + ([str(path)] if path else []),
                          input=stdin, capture_output=True, timeout=TIMEOUT)


def parse_text(out):
    """score and ids from the text form: "score: 7.5/10", "-1.0 id: text" """
    lines = out.decode().splitlines()
    assert lines[0].startswith("score: ") and lines[0].endswith("/10"), lines[0]
    score = float(lines[0][len("score: "):-len("/10")])
    ids = set()
    for line in lines[1:]:
        pen, rest = line.split(" ", 1)
        assert pen.startswith("-") and float(pen) < 0, line
        ids.add(rest.split(":", 1)[0])
    return score, ids


@pytest.mark.parametrize("name,ids,lo,hi", expected(), ids=[r[0] for r in expected()])
def test_corpus(name, ids, lo, hi):
    p = lint(CORPUS / name)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    score, got = parse_text(p.stdout)
    assert got == ids, f"{name}: {sorted(got)} != {sorted(ids)}\n{p.stdout.decode()}"
    assert lo <= score <= hi, f"{name}: score {score} not in [{lo}, {hi}]"


def test_corpus_has_every_kind():
    names = {r[0] for r in expected()}
    assert len(names) >= 8
    assert {p.name for p in CORPUS.glob("*.eml")} == names


def test_json_matches_text():
    name = "promo-fr.eml"
    text = lint(CORPUS / name)
    js = lint(CORPUS / name, "--json")
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)
    score, ids = parse_text(text.stdout)
    assert doc["score"] == score
    assert {f["id"] for f in doc["findings"]} == ids
    for f in doc["findings"]:
        assert set(f) == {"id", "penalty", "text"}
        assert f["penalty"] > 0 and f["text"]
    assert score == max(0.0, round(10 - sum(f["penalty"] for f in doc["findings"]), 1))
    words = next(f for f in doc["findings"] if f["id"] == "spam-words")["text"]
    assert '"gratuit" x2' in words and '"offre exceptionnelle"' in words


def test_big_attachment_generated(tmp_path):
    """11 MB of attachment, base64 in 76-character lines"""
    raw = bytes(range(256)) * (11 * 1024 * 4)
    b64 = base64.encodebytes(raw)
    msg = (b"From: Files <files@share.example>\r\nTo: bob@reader.example\r\n"
           b"Subject: The scans you asked for\r\n"
           b"Date: Sun, 22 Nov 2026 16:00:00 +0000\r\nMessage-ID: <big-1@share.example>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n"
           b"--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Here are the scans of the signed contract, as promised.\r\n"
           b"--mix\r\nContent-Type: application/pdf; name=\"scans.pdf\"\r\n"
           b"Content-Disposition: attachment; filename=\"scans.pdf\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + b64.replace(b"\n", b"\r\n") + b"--mix--\r\n")
    path = tmp_path / "big.eml"
    path.write_bytes(msg)
    score, ids = parse_text(lint(path).stdout)
    assert ids == {"big-attachment"}
    assert score == 8.5
    out = lint(path).stdout.decode()
    assert "scans.pdf" in out and "11.0 MB" in out


def test_stdin_and_errors(tmp_path):
    msg = (CORPUS / "re-no-thread.eml").read_bytes()
    p = lint(None, stdin=msg)
    assert p.returncode == 0 and parse_text(p.stdout)[1] == {"re-fwd-no-thread"}
    p = lint("-", stdin=msg)
    assert p.returncode == 0 and parse_text(p.stdout)[1] == {"re-fwd-no-thread"}
    p = lint(None, stdin=b"this is not a message\n\nat all\n")
    assert p.returncode == 1 and b"not a message" in p.stderr
    p = lint(tmp_path / "missing.eml")
    assert p.returncode == 1 and b"missing.eml" in p.stderr


def test_hostile_input_is_bounded(tmp_path):
    """deep nesting, an unclosed boundary, NUL bytes and a huge header line:
    a score, no crash, in bounded time"""
    nest = b"".join(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(10000))
    msg = (b"From: a@b.example\r\nDate: Sun, 22 Nov 2026 16:00:00 +0000\r\n"
           b"Message-ID: <h@b.example>\r\nSubject: " + b"x" * 2000000 + b"\r\n" + nest
           + b"text\0with\0nul \xff\xfe\r\n")
    path = tmp_path / "hostile.eml"
    path.write_bytes(msg)
    p = lint(path, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert "mime-structure" in {f["id"] for f in doc["findings"]}
