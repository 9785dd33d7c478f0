#!/usr/bin/env python3
"""
scripts/bench_client.py - the load generator and report of scripts/bench
(Python standard library only).

  bench_client.py run --port P --maildir DIR/new --label NAME --out FILE.json
                      [-n N] [-c C] [-s SIZE] [--pid PID]
      N messages of about SIZE bytes over C parallel SMTP connections
      (plain SMTP, no AUTH: the bench listener trusts 127.0.0.0/8). Measures
      accepted messages per second, the acceptance latency (from sending the
      final dot to reading the 250) and, once all are accepted, how long
      until DIR/new holds them all (end to end). With --pid: the daemon's
      CPU time over the run, per message.

  bench_client.py report [--out FILE.json] RESULT.json...
      prints the results side by side, each with its ratio to the first
      (the baseline), and writes them all as one JSON document.
"""

import argparse
import asyncio
import json
import math
import os
import socket
import sys
import time

FROM = "bench@example.com"
RCPT = "rcpt@example.net"


class SMTPError(Exception):
    pass


async def read_reply(reader):
    """One (possibly multi-line) reply -> (code, text)."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SMTPError(f"connection closed (after {lines!r})")
        line = line.rstrip(b"\r\n").decode("utf-8", "replace")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return int(line[:3]), "\n".join(lines)


def make_message(i, size):
    """A plain text message of about size bytes, CRLF, dot-stuffed, without
    the final dot."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    head = (f"From: Bench <{FROM}>\r\nTo: <{RCPT}>\r\nSubject: bench message {i}\r\n"
            f"Date: {date}\r\nMessage-ID: <bench.{os.getpid()}.{i}@example.com>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen.\r\n"
    body = []
    left = max(size - len(head), len(line))
    n = 0
    while left > 0:
        body.append(f"{n:05d} {line}")
        left -= len(body[-1])
        n += 1
    return (head + "".join(body)).encode()


class Load:
    def __init__(self, args):
        self.args = args
        self.next = 0
        self.latencies = []
        self.accepted = 0
        self.rejected = []
        self.message = {}

    def take(self):
        if self.next >= self.args.n:
            return None
        i = self.next
        self.next += 1
        return i

    async def connection(self):
        a = self.args
        reader, writer = await asyncio.open_connection(a.host, a.port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            code, text = await read_reply(reader)
            if code != 220:
                raise SMTPError(f"greeting: {text}")
            writer.write(b"EHLO bench.test\r\n")
            code, text = await read_reply(reader)
            if code != 250:
                raise SMTPError(f"EHLO: {text}")
            pipelining = "PIPELINING" in text.upper()
            while True:
                i = self.take()
                if i is None:
                    break
                data = make_message(i, a.size)
                cmds = [f"MAIL FROM:<{FROM}>\r\n".encode(), f"RCPT TO:<{RCPT}>\r\n".encode(),
                        b"DATA\r\n"]
                if pipelining:
                    writer.write(b"".join(cmds))
                    replies = [await read_reply(reader) for _ in cmds]
                else:
                    replies = []
                    for c in cmds:
                        writer.write(c)
                        replies.append(await read_reply(reader))
                if [r[0] for r in replies] != [250, 250, 354]:
                    self.rejected.append(" | ".join(r[1] for r in replies))
                    writer.write(b"RSET\r\n")
                    await read_reply(reader)
                    continue
                writer.write(data)
                await writer.drain()
                t0 = time.perf_counter()
                writer.write(b".\r\n")
                code, text = await read_reply(reader)
                self.latencies.append(time.perf_counter() - t0)
                if code == 250:
                    self.accepted += 1
                else:
                    self.rejected.append(text)
            writer.write(b"QUIT\r\n")
            await read_reply(reader)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def run(self):
        await asyncio.gather(*(self.connection() for _ in range(self.args.c)))


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (Linux /proc)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def count_files(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def cmd_run(args):
    load = Load(args)
    already = count_files(args.maildir)
    cpu0 = cpu_seconds(args.pid)
    t0 = time.perf_counter()
    asyncio.run(load.run())
    t_accept = time.perf_counter() - t0
    # End to end: until the maildir holds every accepted message.
    deadline = time.monotonic() + args.timeout
    while count_files(args.maildir) - already < load.accepted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    t_e2e = time.perf_counter() - t0
    cpu1 = cpu_seconds(args.pid)
    delivered = count_files(args.maildir) - already
    lat = sorted(load.latencies)
    result = {
        "label": args.label,
        "n": args.n,
        "connections": args.c,
        "size": len(make_message(0, args.size)),
        "accepted": load.accepted,
        "rejected": len(load.rejected),
        "first_rejection": load.rejected[0] if load.rejected else None,
        "delivered": delivered,
        "accept_seconds": round(t_accept, 4),
        "accepted_per_s": round(load.accepted / t_accept, 1) if t_accept > 0 else None,
        "latency_p50_ms": round(percentile(lat, 50) * 1000, 3) if lat else None,
        "latency_p99_ms": round(percentile(lat, 99) * 1000, 3) if lat else None,
        "latency_max_ms": round(lat[-1] * 1000, 3) if lat else None,
        "e2e_seconds": round(t_e2e, 4),
        "e2e_per_s": round(delivered / t_e2e, 1) if t_e2e > 0 else None,
        "daemon_cpu_ms_per_msg": (round((cpu1 - cpu0) * 1000 / max(load.accepted, 1), 3)
                                  if cpu0 is not None and cpu1 is not None else None),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    if load.rejected:
        print(f"bench_client: {len(load.rejected)} message(s) not accepted; first: "
              f"{load.rejected[0]}", file=sys.stderr)
    if delivered < load.accepted:
        print(f"bench_client: only {delivered} of {load.accepted} delivered within "
              f"{args.timeout}s", file=sys.stderr)
    return 0 if not load.rejected and delivered >= load.accepted else 1


ROWS = [
    ("accepted msg/s", "accepted_per_s", True),
    ("accept latency p50 (ms)", "latency_p50_ms", False),
    ("accept latency p99 (ms)", "latency_p99_ms", False),
    ("end-to-end msg/s", "e2e_per_s", True),
    ("daemon CPU ms/msg", "daemon_cpu_ms_per_msg", False),
]


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def cmd_report(args):
    runs = []
    for path in args.results:
        with open(path) as f:
            runs.append(json.load(f))
    base = runs[0]
    ratios = {}
    for r in runs[1:]:
        ratios[r["label"]] = {key: (round(r[key] / base[key], 3) if r.get(key) and base.get(key)
                                    else None) for _, key, _ in ROWS}
    doc = {
        "n": base["n"],
        "connections": base["connections"],
        "message_size": base["size"],
        "cores": os.cpu_count(),
        "outpostd": args.outpostd,
        "baseline": base["label"],
        "runs": {r["label"]: r for r in runs},
        "ratio_to_baseline": ratios,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")

    header = ["", f"DKIM {base['label']}"]
    for r in runs[1:]:
        header += [f"DKIM {r['label']}", "ratio"]
    table = [header]
    for title, key, _ in ROWS:
        row = [title, fmt(base.get(key))]
        for r in runs[1:]:
            ratio = ratios[r["label"]][key]
            row += [fmt(r.get(key)), f"{ratio:.2f}" if ratio is not None else "-"]
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"outpost bench: {base['n']} messages of {base['size']} bytes over "
          f"{base['connections']} connections, {os.cpu_count()} cores; ratio = run / "
          f"DKIM {base['label']}")
    for j, row in enumerate(table):
        print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                        for i, c in enumerate(row)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
    bad = [r["label"] for r in runs if r["rejected"] or r["delivered"] < r["accepted"]]
    if bad:
        print(f"incomplete runs: {', '.join(bad)} (see rejected/delivered in the JSON)")
    if args.out:
        print(f"JSON: {args.out}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("-n", type=int, default=5000)
    r.add_argument("-c", type=int, default=20)
    r.add_argument("-s", "--size", type=int, default=2048)
    r.add_argument("--maildir", required=True, help="the upstream Maildir's new/")
    r.add_argument("--label", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--pid", type=int, default=0, help="outpostd's pid, for its CPU time")
    r.add_argument("--timeout", type=float, default=600,
                   help="seconds to wait for the maildir after the last 250")
    p = sub.add_parser("report")
    p.add_argument("--out")
    p.add_argument("--outpostd", default="")
    p.add_argument("results", nargs="+")
    args = ap.parse_args()
    if args.cmd == "run":
        if args.n < 1 or args.c < 1 or args.size < 1:
            ap.error("-n, -c and -s must be positive")
        return cmd_run(args)
    return cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
