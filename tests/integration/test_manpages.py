"""
The man pages (man/) against the code, so that the documentation cannot
fall behind it unnoticed. No daemon is started.

- outpost.conf(5): every key of daemon/conf.c's settings table is
  documented in its section's part of the page (".SH [server] SECTION"
  ... one ".TP" entry per key), with "Default: DEF" exactly as the table
  has it (or some "Default:" text when the table has none: computed or
  empty), its type and, for enums, every value; ranged keys say
  "Range:". No entry names a key the table does not know.
- outpostctl(8): every verb and sub-verb of `outpostctl -h` has an entry
  of its own, and every --option of the usage text appears.
- outpostd(8): every option letter of main.c's getopt string has an entry.
- conf/outpost.conf (installed as /etc/outpost/outpost.conf) uses only
  known keys, shows user and metrics_listen, and passes `outpostd -n`
  once its /etc/outpost files are made in a temporary directory.
- The README and the pages name only outpostctl commands that exist, and
  the configuration of README's "Installing on the office server" loads
  with each provider's [upstream].
- groff -man -ww -z prints nothing for each page (no warnings).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import OUTPOSTCTL, OUTPOSTD, REPO, make_cert

SRC = Path(os.environ.get("top_srcdir") or REPO).resolve()
MAN = SRC / "man"
PAGES = ["outpostd.8", "outpostctl.8", "outpost.conf.5"]
TIMEOUT = 60

KINDS = {"SRV": "server", "LSN": "listen", "UPS": "upstream", "DOM": "domain",
         "QUE": "queue", "UNS": "unsubscribe"}
# conf.c's macros that a default may be built from (configure's defaults
# for the paths the installed page shows).
DEF_MACROS = {"LOCALSTATEDIR": "/var"}
# Words the entry of a key of each type must use (outpost.conf(5),
# "Value types").
TYPE_WORDS = {
    "T_STR": ["string"], "T_PATH": ["path"], "T_BOOL": ["boolean"],
    "T_INT": ["integer"], "T_COUNT": ["integer"], "T_SIZE": ["size"],
    "T_DUR": ["duration"], "T_DURS": ["list", "duration"], "T_ENUM": ["enum"],
    "T_LISTEN_ADDR": ["host:port"], "T_UPSTREAM_ADDR": ["host:port", "maildir:"],
    "T_NETS": ["list"], "T_NAMES": ["list"], "T_DKIM_KEYS": ["list"],
    "T_DECIMAL": ["decimal"], "T_RATE": ["rate"], "T_RATES": ["list", "rate"],
}


# ---- conf.c --------------------------------------------------------------

def c_strip_comments(text):
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


def c_string_concat(expr):
    """A default expression: C string literals and DEF_MACROS, juxtaposed."""
    out = []
    for tok in re.finditer(r'"((?:[^"\\]|\\.)*)"|([A-Z_][A-Z0-9_]*)', expr):
        if tok.group(1) is not None:
            out.append(tok.group(1))
        else:
            assert tok.group(2) in DEF_MACROS, f"default uses unknown macro {tok.group(2)}"
            out.append(DEF_MACROS[tok.group(2)])
    return "".join(out)


def conf_table():
    """[{kind, key, type, def, enums, ranged}] from conf.c's settings[]."""
    src = c_strip_comments((SRC / "daemon" / "conf.c").read_text())
    enums = {}
    for m in re.finditer(r"struct enumval (\w+)\[\]\s*=\s*\{(.*?)\{\s*NULL", src, re.S):
        enums[m.group(1)] = re.findall(r'\{\s*"([^"]+)"', m.group(2))
    m = re.search(r"struct setting settings\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    assert m, "settings[] not found in daemon/conf.c"
    rows = []
    for r in re.finditer(r"\{\s*(SRV|LSN|UPS|DOM|QUE|UNS)\((\w+)\)(.*?)\}\s*,", m.group(1), re.S):
        body = r.group(3)
        key = re.search(r'\.key\s*=\s*"([^"]+)"', body)
        typ = re.search(r"\.type\s*=\s*(T_\w+)", body)
        assert key and typ, f"row without .key or .type: {r.group(0)!r}"
        d = re.search(r'\.def\s*=\s*((?:\s*(?:"(?:[^"\\]|\\.)*"|[A-Z_][A-Z0-9_]*))+)', body)
        en = re.search(r"\.enums\s*=\s*(\w+)", body)
        rows.append({
            "kind": KINDS[r.group(1)], "key": key.group(1), "type": typ.group(1),
            "def": c_string_concat(d.group(1)) if d else None,
            "enums": enums[en.group(1)] if en else [],
            "ranged": ".max" in body,
        })
    assert len(rows) > 50, f"only {len(rows)} settings parsed from conf.c"
    return rows


# ---- roff ----------------------------------------------------------------

ESCAPES = [(r"\(aq", "'"), (r"\(dq", '"'), (r"\(+-", "\u00b1"), (r"\(ha", "^"),
           (r"\(bu", ""), (r"\-", "-"), (r"\&", ""), (r"\e", "\\"), (r"\ ", " ")]


def roff_args(rest):
    return [m.group(1) if m.group(1) is not None else m.group(2)
            for m in re.finditer(r'"((?:[^"]|"")*)"|(\S+)', rest)]


def roff_text(lines):
    """Plain text of roff source lines: macros' arguments, escapes undone."""
    words = []
    for line in lines:
        if line.startswith((".", "'")):
            m = re.match(r"[.'](\w+)\s*(.*)", line)
            if not m:
                continue
            name, args = m.group(1), roff_args(m.group(2))
            if name in ("B", "I", "SM", "SB"):
                words.append(" ".join(args))
            elif name in ("BR", "RB", "BI", "IB", "IR", "RI"):
                words.append("".join(args))
            # .TP .IP .br .PP .EX ... carry no text of their own here
            continue
        words.append(line)
    text = " ".join(words)
    text = re.sub(r"\\f[BIRP]|\\f\(\w\w|\\f\[\w*\]", "", text)
    for esc, rep in ESCAPES:
        text = text.replace(esc, rep)
    return re.sub(r"\s+", " ", text).strip()


def page_lines(name):
    return (MAN / name).read_text().split("\n")


def tp_entries(lines):
    """[(tag text, body lines, .SH heading)] of every .TP in the page."""
    out, sh, i = [], "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SH"):
            sh = roff_text([" ".join(roff_args(line[3:]))])
        if line.startswith(".TP") and i + 1 < len(lines):
            tag = roff_text([lines[i + 1]])
            j = i + 2
            while j < len(lines) and not lines[j].startswith((".TP", ".SH", ".SS")):
                j += 1
            out.append((tag, lines[i + 2:j], sh))
            i = j
            continue
        i += 1
    return out


def conf_page_keys():
    """{(kind, key): entry text} from outpost.conf(5)'s section parts."""
    found = {}
    for tag, body, sh in tp_entries(page_lines("outpost.conf.5")):
        m = re.match(r"\[(server|listen|upstream|domain|queue|unsubscribe)\b", sh)
        if not m:
            continue
        key = re.match(r"([a-z_]+)", tag)
        assert key, f"entry {tag!r} under {sh!r} does not start with a key"
        assert (m.group(1), key.group(1)) not in found, \
            f"{key.group(1)} is documented twice in [{m.group(1)}]"
        found[(m.group(1), key.group(1))] = roff_text(body)
    return found


# ---- outpost.conf(5) -----------------------------------------------------

def test_conf_page_documents_every_key():
    table = conf_table()
    page = conf_page_keys()
    missing = [f"[{r['kind']}] {r['key']}" for r in table if (r["kind"], r["key"]) not in page]
    assert not missing, f"keys of conf.c not documented in outpost.conf.5: {missing}"
    known = {(r["kind"], r["key"]) for r in table}
    unknown = [f"[{k}] {key}" for k, key in page if (k, key) not in known]
    assert not unknown, f"outpost.conf.5 documents keys conf.c does not know: {unknown}"
    for kind in KINDS.values():
        assert any(k == kind for k, _ in page), f"no [{kind}] part in outpost.conf.5"


def test_conf_page_defaults_types_ranges():
    page = conf_page_keys()
    problems = []
    for r in conf_table():
        text = page.get((r["kind"], r["key"]))
        if text is None:
            continue            # test_conf_page_documents_every_key says so
        where = f"[{r['kind']}] {r['key']}"
        if r["def"] is not None:
            want = "Default: " + re.sub(r"\s+", " ", r["def"])
            if want not in text:
                problems.append(f"{where}: no {want!r}")
        elif "Default:" not in text:
            problems.append(f"{where}: no Default: (computed, empty or none)")
        if "Type:" not in text:
            problems.append(f"{where}: no Type:")
        for w in TYPE_WORDS[r["type"]]:
            if w not in text:
                problems.append(f"{where}: type {r['type']} but {w!r} not in its entry")
        for v in r["enums"]:
            if not re.search(r"\b%s\b" % re.escape(v), text):
                problems.append(f"{where}: enum value {v!r} not documented")
        if r["ranged"] and "Range:" not in text:
            problems.append(f"{where}: has a range in conf.c but no Range:")
        if "Example" not in text:
            problems.append(f"{where}: no example")
    assert not problems, "outpost.conf.5 is behind conf.c:\n" + "\n".join(problems)


# ---- outpostctl(8), outpostd(8) ------------------------------------------

def outpostctl_usage():
    if os.access(OUTPOSTCTL, os.X_OK):
        p = subprocess.run([OUTPOSTCTL, "-h"], capture_output=True, text=True,
                           timeout=TIMEOUT)
        assert p.returncode == 0, f"outpostctl -h: {p.returncode} {p.stderr}"
        return p.stdout
    pytest.skip(f"{OUTPOSTCTL} is not built")


def usage_verbs(text):
    """["passwd", "queue list", ...] from the usage's command lines."""
    verbs = []
    for line in text.splitlines():
        m = re.match(r"^  ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?(?=\s|$)", line)
        if m:
            verbs.append(" ".join(g for g in m.groups() if g))
    return verbs


def test_outpostctl_page_has_every_verb_and_option():
    usage = outpostctl_usage()
    verbs = usage_verbs(usage)
    assert len(verbs) >= 15, f"too few verbs parsed from outpostctl -h: {verbs}"
    lines = page_lines("outpostctl.8")
    tags = [tag for tag, _, _ in tp_entries(lines)]
    missing = [v for v in verbs
               if not any(re.match(re.escape(v) + r"(\s|$)", t) for t in tags)]
    assert not missing, f"outpostctl verbs without an entry in outpostctl.8: {missing}"
    text = roff_text(lines)
    opts = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b", usage)))
    absent = [o for o in opts if not re.search(r"(?<![\w-])%s\b" % re.escape(o), text)]
    assert not absent, f"outpostctl options missing from outpostctl.8: {absent}"


def test_outpostd_page_has_every_option():
    src = (SRC / "daemon" / "main.c").read_text()
    m = re.search(r'getopt\(argc, argv, "([^"]+)"\)', src)
    assert m, "outpostd's getopt string not found in daemon/main.c"
    letters = [c for c in m.group(1) if c.isalpha() and c != "h"]
    tags = [tag for tag, _, _ in tp_entries(page_lines("outpostd.8"))]
    missing = [f"-{c}" for c in letters if not any(t.startswith(f"-{c}") for t in tags)]
    assert not missing, f"outpostd options without an entry in outpostd.8: {missing}"


# ---- conf/outpost.conf -----------------------------------------------------

def example_keys(text):
    kind, out = None, []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        m = re.match(r"\[(\w+)", line)
        if m:
            kind = m.group(1)
        elif line and line[0] not in "#;" and "=" in line:
            out.append((n, kind, line.split("=", 1)[0].strip()))
    return out


def test_example_config_keys_known():
    text = (SRC / "conf" / "outpost.conf").read_text()
    known = {(r["kind"], r["key"]) for r in conf_table()}
    unknown = [f"line {n}: [{k}] {key}" for n, k, key in example_keys(text)
               if (k, key) not in known]
    assert not unknown, f"conf/outpost.conf uses unknown keys: {unknown}"
    for key in ("user", "metrics_listen"):
        assert re.search(r"^#?\s*%s\s*=" % key, text, re.M), \
            f"conf/outpost.conf does not show {key}"


def test_example_config_loads(tmp_path):
    """outpostd -n accepts it once the files it names exist."""
    if not os.access(OUTPOSTD, os.X_OK) or not os.access(OUTPOSTCTL, os.X_OK):
        pytest.skip("outpostd / outpostctl are not built")
    if shutil.which("openssl") is None:
        pytest.skip("no openssl CLI")
    etc = tmp_path / "etc"
    text = (SRC / "conf" / "outpost.conf").read_text().replace("/etc/outpost", str(etc))
    text = text.replace("/var/lib/outpost", str(tmp_path / "state"))
    conf = etc / "outpost.conf"
    etc.mkdir()
    conf.write_text(text)
    cert, key = make_cert(etc / "tls")
    shutil.copy(SRC / "conf" / "users.example", etc / "users")
    for n, kind, k in example_keys(text):
        value = re.search(r"^\s*%s\s*=\s*(.*)$" % re.escape(k),
                          text.splitlines()[n - 1]).group(1)
        if k == "password_file" and value:
            Path(value).write_text("secret\n")
            Path(value).chmod(0o600)
        if k == "dkim_key":
            sel, path = [s.strip() for s in value.split(":", 1)]
            path = Path(path)
            domain = path.name.split("." + sel + ".")[0]
            args = [OUTPOSTCTL, "-c", str(conf), "dkim", "keygen", domain, sel,
                    "--dir", str(path.parent)]
            if sel.startswith("e"):
                args += ["--type", "ed25519"]
            p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
            assert p.returncode == 0, p.stderr
            made = path.parent / f"{domain}.{sel}.pem"
            assert made == path, f"{made} is not {path}"
    p = subprocess.run([OUTPOSTD, "-c", str(conf), "-n"], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert p.returncode == 0, f"conf/outpost.conf does not load:\n{p.stderr}"
    assert "configuration ok" in p.stdout
    assert "warning" not in p.stderr, p.stderr


def test_docs_name_only_real_outpostctl_verbs():
    """Every "outpostctl [-c FILE] VERB [SUB]" in the README and the pages
    names a verb that outpostctl -h lists."""
    verbs = set(usage_verbs(outpostctl_usage()))
    groups = {v.split()[0] for v in verbs if " " in v}
    texts = {"README": (SRC / "README").read_text()}
    for page in PAGES:
        texts[page] = (MAN / page).read_text().replace("\\-", "-")
    # commands, not prose: an indented or example line, `...`, a pipe,
    # or a bold .B/.BR "outpostctl ..." in a page
    tail = r"outpostctl(?: -c \S+)? ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?"
    in_readme = re.compile(r"(?m)(?:^\s+|`|\| |&& )" + tail)
    in_page = re.compile(r'(?m)(?:^|\| |&& |\.BR? "?)' + tail)  # .EX lines start at 0
    bad = []
    for name, text in texts.items():
        for m in (in_readme if name == "README" else in_page).finditer(text):
            verb, sub = m.group(1), m.group(2)
            if verb in groups and sub and f"{verb} {sub}" not in verbs:
                bad.append(f"{name}: {m.group(0).strip()}")
            elif verb not in groups and verb not in verbs:
                bad.append(f"{name}: {m.group(0).strip()}")
    assert not bad, f"unknown outpostctl commands in the docs: {bad}"


def test_readme_walkthrough_configs_load(tmp_path):
    """The configuration of README's "Installing on the office server",
    with each provider's [upstream], passes outpostd -n."""
    if not os.access(OUTPOSTD, os.X_OK) or not os.access(OUTPOSTCTL, os.X_OK):
        pytest.skip("outpostd / outpostctl are not built")
    if shutil.which("openssl") is None:
        pytest.skip("no openssl CLI")
    readme = (SRC / "README").read_text()
    start = readme.index("Installing on the office server\n---")
    sec = readme[start:readme.index("\n---", start + 40)]
    blocks = re.findall(r"\n((?:     \[.*\n(?:     .*\n|\n)*?))(?=\n {0,3}\S)", sec)
    base = [b for b in blocks if "[server]" in b]
    ups = [b for b in blocks if b.strip().startswith("[upstream")]
    assert len(base) == 1 and len(ups) >= 3, "walkthrough config blocks not found"
    etc = tmp_path / "etc"
    make_cert(etc / "tls")
    subprocess.run([OUTPOSTCTL, "-c", str(etc / "outpost.conf"), "dkim", "keygen",
                    "example.com", "s2026"], check=True, capture_output=True,
                   timeout=TIMEOUT)
    p = subprocess.run([OUTPOSTCTL, "passwd", "alice", "alice@example.com"],
                       input="pw\n", capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    (etc / "users").write_text(p.stdout)
    (etc / "upstream.secret").write_text("secret\n")
    (etc / "upstream.secret").chmod(0o600)
    for up in ups:
        name = re.search(r"\[upstream (\S+)\]", up).group(1)
        text = "\n".join(l[5:] for l in (base[0] + "\n" + up).split("\n"))
        text = re.sub(r"(?m)^upstream = \S+$", f"upstream = {name}", text)
        text = text.replace("[server]\n", f"[server]\nstate_dir = {tmp_path / 'state'}\n")
        (etc / "outpost.conf").write_text(text)
        p = subprocess.run([OUTPOSTD, "-c", str(etc / "outpost.conf"), "-n"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert p.returncode == 0 and "warning" not in p.stderr, \
            f"README's config with [upstream {name}]:\n{text}\n{p.stderr}"


# ---- rendering -----------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_warnings(page):
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    p = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", str(MAN / page)],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", \
        f"groff -man -ww on {page}:\n{p.stdout}{p.stderr}"
