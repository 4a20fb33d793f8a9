#!/usr/bin/env python3
"""Traffic for the fwha lab: a probe stream that measures the failover gap, and many
long-lived TCP sessions that show whether connection state survived the failover.

Run inside a namespace with `ip netns exec NS python3 traffic.py server|client ...`.
Both modes stop after --duration seconds or on SIGTERM/SIGINT and then write one JSON
document to --out. Times are time.monotonic_ns(), which is the same clock in every network
namespace, so the orchestrator can compare them with its own.

server: * UDP probe receiver on ADDR:9000 recording, for every sequence-numbered probe, its
          arrival time. At stop it reports count / lost / duplicates, the longest gap between
          consecutive arrivals overall and inside a window that the orchestrator writes to
          --window-file (JSON {"start_ns": .., "end_ns": ..}) before stopping it, and every
          gap above --gap-threshold-ms (so the orchestrator can also pick its own window).
        * TCP echo server on ADDR:9001 (one selector, any number of connections) that echoes
          every byte back and keeps per-connection state (bytes, how and when it ended).
client: * a dedicated thread sends a UDP probe every --probe-interval-ms (default 1 ms),
          scheduled on absolute deadlines (start + k * interval) so jitter does not
          accumulate; after a stall longer than --max-catchup-ms it skips ahead instead of
          bursting, and reports its own longest send gap so a stalled sender is not mistaken
          for a network gap.
        * --sessions N (default 100) TCP connections opened with a normal connect() (SYN),
          each from its own ephemeral port. Each sends a small sequence-numbered line every
          20-50 ms (random) and checks the echo. Per connection it records errors (reset, EOF,
          timeout = no echo for --stall-timeout s while data is outstanding, corrupt echo),
          first/last echo time and the longest interval between echoes (including the
          interval from the last echo to the stop).
        IPv4 or IPv6: the family follows the address given (--addr, --server).
        * --local-port-base P: session i connects from port P + i instead of an ephemeral
          one, so a later client can reuse the same flows' tuples (tests/lab/port_reuse.py);
          --close-with-reset ends the sessions with RST at stop (SO_LINGER 0: no TIME_WAIT
          on the client, so the ports are free again at once).
        * --ready-file is written once every session has connected and seen a first echo (or
          failed), so the orchestrator knows the baseline is up.
"""

from __future__ import annotations

import argparse
import array
import collections
import errno
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time

PROBE_FMT = "!QQ"          # sequence number, client send time (monotonic ns)
PROBE_SIZE = 32            # padded
MAX_LINE = 256

stop_event = threading.Event()


def family(addr):
    """AF_INET6 for an IPv6 address literal, else AF_INET."""
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def now_ns() -> int:
    return time.monotonic_ns()


def log(msg):
    print(f"traffic[{os.getpid()}] {msg}", file=sys.stderr, flush=True)


def _on_signal(signum, _frame):
    stop_event.set()


def install_stop_handlers():
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


# --- server ----------------------------------------------------------------------------------

class ProbeReceiver(threading.Thread):
    def __init__(self, addr, port):
        super().__init__(name="probe-rx", daemon=True)
        self.sock = socket.socket(family(addr), socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((addr, port))
        self.sock.settimeout(0.1)
        self.seqs = array.array("q")
        self.arrivals = array.array("q")
        self.sources = collections.Counter()   # (ip, port) -> count: shows SNAT port changes
        self.malformed = 0

    def run(self):
        while not stop_event.is_set():
            try:
                data, src = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError as e:
                log(f"probe rx error: {e}")
                time.sleep(0.01)
                continue
            t = now_ns()
            if len(data) < struct.calcsize(PROBE_FMT):
                self.malformed += 1
                continue
            seq, _sent = struct.unpack_from(PROBE_FMT, data)
            self.seqs.append(seq)
            self.arrivals.append(t)
            self.sources[f"{src[0]}:{src[1]}"] += 1

    def stats(self, window, stop_ns, gap_threshold_ms):
        n = len(self.arrivals)
        seqs, arr = self.seqs, self.arrivals
        unique = len(set(seqs))
        max_seq = max(seqs) if n else -1
        reordered = sum(1 for i in range(1, n) if seqs[i] < seqs[i - 1])
        gaps = []
        longest = (0, None, None)
        for i in range(1, n):
            g = arr[i] - arr[i - 1]
            if g > longest[0]:
                longest = (g, arr[i - 1], arr[i])
            if g >= gap_threshold_ms * 1e6 and len(gaps) < 5000:
                gaps.append({"start_ns": arr[i - 1], "end_ns": arr[i], "ms": g / 1e6,
                             "seq_before": seqs[i - 1], "seq_after": seqs[i]})
        doc = {
            "received": n, "unique": unique, "max_seq": max_seq,
            "lost_by_seq": (max_seq + 1 - unique) if n else 0,
            "duplicates": n - unique, "reordered": reordered, "malformed": self.malformed,
            "first_ns": arr[0] if n else None, "last_ns": arr[-1] if n else None,
            "longest_gap_ms": longest[0] / 1e6, "longest_gap_start_ns": longest[1],
            "longest_gap_end_ns": longest[2], "gaps": gaps,
            "sources": dict(self.sources.most_common(20)),
        }
        if window:
            doc["window"] = window_gap(arr, window["start_ns"], window["end_ns"], stop_ns)
        return doc


def window_gap(arr, ws, we, stop_ns):
    """Longest interval without arrivals that overlaps [ws, we]; an interval still open at
    the stop (probes never resumed) counts up to min(we, stop)."""
    best = {"ms": 0.0, "start_ns": None, "end_ns": None, "resumed": True,
            "start_ns_window": ws, "end_ns_window": we}
    n = len(arr)
    before = [i for i in range(n) if arr[i] <= ws]
    i0 = before[-1] if before else 0
    for i in range(i0 + 1, n):
        if arr[i - 1] > we:
            break
        g = arr[i] - arr[i - 1]
        if g / 1e6 > best["ms"]:
            best.update(ms=g / 1e6, start_ns=arr[i - 1], end_ns=arr[i], resumed=True)
    if n and arr[-1] < we:
        tail_end = min(we, stop_ns)
        g = tail_end - arr[-1]
        if g / 1e6 > best["ms"]:
            best.update(ms=g / 1e6, start_ns=arr[-1], end_ns=tail_end, resumed=False)
    if n == 0:
        best.update(ms=(min(we, stop_ns) - ws) / 1e6, start_ns=ws, end_ns=min(we, stop_ns),
                    resumed=False)
    return best


class EchoConn:
    __slots__ = ("sock", "peer", "opened_ns", "closed_ns", "end", "rx_bytes", "tx_bytes",
                 "outbuf", "last_rx_ns")

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = f"{peer[0]}:{peer[1]}"
        self.opened_ns = now_ns()
        self.closed_ns = None
        self.end = None
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.outbuf = bytearray()
        self.last_rx_ns = None


def run_server(args):
    install_stop_handlers()
    sys.setswitchinterval(0.0005)
    rx = ProbeReceiver(args.addr, args.udp_port)
    rx.start()
    lsock = socket.socket(family(args.addr), socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.addr, args.tcp_port))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    conns: list[EchoConn] = []
    start = now_ns()
    deadline = start + int(args.duration * 1e9)
    log(f"server up: udp {args.addr}:{args.udp_port} tcp {args.addr}:{args.tcp_port}")
    if args.ready_file:
        write_json(args.ready_file, {"ready_ns": now_ns()})

    def close(c, why):
        if c.end is None:
            c.end = why
            c.closed_ns = now_ns()
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    while not stop_event.is_set() and now_ns() < deadline:
        for key, events in sel.select(timeout=0.05):
            if key.data is None:
                for _ in range(64):
                    try:
                        s, peer = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    s.setblocking(False)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    c = EchoConn(s, peer)
                    conns.append(c)
                    sel.register(s, selectors.EVENT_READ, c)
                continue
            c = key.data
            if events & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except ConnectionResetError:
                    close(c, "reset")
                    continue
                except OSError as e:
                    close(c, f"error: {e}")
                    continue
                if data == b"":
                    close(c, "eof")
                    continue
                if data:
                    c.rx_bytes += len(data)
                    c.last_rx_ns = now_ns()
                    c.outbuf += data
            if c.outbuf:
                try:
                    n = c.sock.send(c.outbuf)
                    del c.outbuf[:n]
                    c.tx_bytes += n
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    close(c, "reset" if isinstance(e, ConnectionResetError) else f"error: {e}")
                    continue
                if len(c.outbuf) > (1 << 20):
                    close(c, "overflow")
                    continue
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbuf else 0)
                sel.modify(c.sock, want, c)
            elif events & selectors.EVENT_WRITE:
                sel.modify(c.sock, selectors.EVENT_READ, c)
    stop_ns = now_ns()
    stop_event.set()
    rx.join(timeout=2)
    window = None
    if args.window_file and os.path.exists(args.window_file):
        try:
            with open(args.window_file) as f:
                window = json.load(f)
        except (OSError, ValueError) as e:
            log(f"cannot read window file: {e}")
    doc = {
        "mode": "server", "start_ns": start, "stop_ns": stop_ns,
        "probes": rx.stats(window, stop_ns, args.gap_threshold_ms),
        "tcp": {
            "accepted": len(conns),
            "open_at_stop": sum(1 for c in conns if c.end is None),
            "ended": dict(collections.Counter(c.end for c in conns if c.end)),
            "connections": [{"peer": c.peer, "opened_ns": c.opened_ns, "end": c.end,
                             "closed_ns": c.closed_ns, "rx_bytes": c.rx_bytes,
                             "tx_bytes": c.tx_bytes, "last_rx_ns": c.last_rx_ns}
                            for c in conns],
        },
    }
    for c in conns:
        if c.end is None:
            c.sock.close()
    write_json(args.out, doc)
    log(f"server stopped: {doc['probes']['received']} probes, {len(conns)} tcp connections")
    return 0


# --- client ----------------------------------------------------------------------------------

class ProbeSender(threading.Thread):
    def __init__(self, server, port, interval_ms, max_catchup_ms):
        super().__init__(name="probe-tx", daemon=True)
        self.sock = socket.socket(family(server), socket.SOCK_DGRAM)
        self.dst = (server, port)
        self.interval_ns = int(interval_ms * 1e6)
        self.max_catchup_ns = int(max_catchup_ms * 1e6)
        self.sent = 0
        self.send_errors = collections.Counter()
        self.skipped_slots = 0
        self.max_send_gap_ns = 0
        self.max_send_gap_at_ns = None
        self.start_ns = None
        self.last_send_ns = None

    def run(self):
        pad = b"\0" * (PROBE_SIZE - struct.calcsize(PROBE_FMT))
        self.start_ns = now_ns()
        slot = 0
        while not stop_event.is_set():
            due = self.start_ns + slot * self.interval_ns
            t = now_ns()
            if t < due:
                time.sleep((due - t) / 1e9)
                continue
            if t - due > self.max_catchup_ns:
                # We were stalled (CPU starvation): skip ahead rather than burst.
                missed = (t - due) // self.interval_ns
                self.skipped_slots += missed
                slot += missed
            t = now_ns()
            try:
                self.sock.sendto(struct.pack(PROBE_FMT, self.sent, t) + pad, self.dst)
                self.sent += 1
            except OSError as e:
                self.send_errors[errno.errorcode.get(e.errno, str(e.errno))] += 1
            if self.last_send_ns is not None and t - self.last_send_ns > self.max_send_gap_ns:
                self.max_send_gap_ns = t - self.last_send_ns
                self.max_send_gap_at_ns = t
            self.last_send_ns = t
            slot += 1


class Session:
    __slots__ = ("cid", "sock", "state", "local_port", "connect_start_ns", "connected_ns",
                 "next_send_ns", "seq_sent", "seq_echoed", "send_times", "outbuf", "inbuf",
                 "first_echo_ns", "last_echo_ns", "max_gap_ns", "max_gap_end_ns", "echoes",
                 "error", "error_ns", "rtt_max_ns")

    def __init__(self, cid):
        self.cid = cid
        self.sock = None
        self.state = "new"
        self.local_port = None
        self.connect_start_ns = None
        self.connected_ns = None
        self.next_send_ns = None
        self.seq_sent = 0
        self.seq_echoed = 0
        self.send_times = collections.deque()
        self.outbuf = bytearray()
        self.inbuf = bytearray()
        self.first_echo_ns = None
        self.last_echo_ns = None
        self.max_gap_ns = 0
        self.max_gap_end_ns = None
        self.echoes = 0
        self.error = None
        self.error_ns = None
        self.rtt_max_ns = 0

    def to_json(self, stop_ns):
        # The interval from the last echo to the stop counts as a gap too: a session that
        # went silent right before the stop must not look healthy.
        max_gap, gap_end = self.max_gap_ns, self.max_gap_end_ns
        if self.last_echo_ns is not None and self.error is None:
            tail = stop_ns - self.last_echo_ns
            if tail > max_gap:
                max_gap, gap_end = tail, stop_ns
        return {"id": self.cid, "local_port": self.local_port, "state": self.state,
                "connected_ns": self.connected_ns, "first_echo_ns": self.first_echo_ns,
                "last_echo_ns": self.last_echo_ns, "echoes": self.echoes,
                "sent": self.seq_sent, "echoed": self.seq_echoed,
                "max_echo_gap_ms": max_gap / 1e6, "max_echo_gap_end_ns": gap_end,
                "max_rtt_ms": self.rtt_max_ns / 1e6,
                "error": self.error, "error_ns": self.error_ns}


def run_client(args):
    install_stop_handlers()
    sys.setswitchinterval(0.0005)
    rnd = random.Random(args.seed)
    start = now_ns()
    deadline = start + int(args.duration * 1e9)
    prober = None
    if args.probe_interval_ms > 0:
        prober = ProbeSender(args.server, args.udp_port, args.probe_interval_ms,
                             args.max_catchup_ms)
        prober.start()
    sel = selectors.DefaultSelector()
    sessions = [Session(i) for i in range(args.sessions)]
    stall_ns = int(args.stall_timeout * 1e9)
    connect_timeout_ns = int(args.connect_timeout * 1e9)
    lo_ns, hi_ns = int(args.min_interval_ms * 1e6), int(args.max_interval_ms * 1e6)
    ready_written = False

    def fail(s, why):
        if s.error is None:
            s.error = why
            s.error_ns = now_ns()
        s.state = "failed"
        if s.sock is not None:
            try:
                sel.unregister(s.sock)
            except (KeyError, ValueError):
                pass
            s.sock.close()
            s.sock = None

    for s in sessions:
        sock = socket.socket(family(args.server), socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if args.local_port_base:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("", args.local_port_base + s.cid))
            except OSError as e:
                s.sock = sock
                fail(s, f"bind: {errno.errorcode.get(e.errno, e)}")
                continue
        s.sock = sock
        s.connect_start_ns = now_ns()
        rc = sock.connect_ex((args.server, args.tcp_port))
        if rc not in (0, errno.EINPROGRESS):
            fail(s, f"connect: {errno.errorcode.get(rc, rc)}")
            continue
        s.state = "connecting"
        s.local_port = sock.getsockname()[1]
        sel.register(sock, selectors.EVENT_WRITE, s)

    def want(s):
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if s.outbuf else 0)

    def flush(s):
        try:
            n = s.sock.send(s.outbuf)
            del s.outbuf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except ConnectionResetError:
            fail(s, "reset")
            return
        except BrokenPipeError:
            fail(s, "reset")
            return
        except OSError as e:
            fail(s, f"error: {errno.errorcode.get(e.errno, e)}")
            return
        sel.modify(s.sock, want(s), s)

    def on_echo_lines(s, t):
        while True:
            nl = s.inbuf.find(b"\n")
            if nl < 0:
                if len(s.inbuf) > MAX_LINE:
                    fail(s, "corrupt")
                return
            line = bytes(s.inbuf[:nl])
            del s.inbuf[:nl + 1]
            try:
                cid, seq, _ = line.split(b" ")
                cid, seq = int(cid), int(seq)
            except ValueError:
                fail(s, "corrupt")
                return
            if cid != s.cid or seq != s.seq_echoed + 1:
                fail(s, "corrupt")
                return
            s.seq_echoed = seq
            sent_at = s.send_times.popleft() if s.send_times else t
            s.rtt_max_ns = max(s.rtt_max_ns, t - sent_at)
            if s.last_echo_ns is not None:
                gap = t - s.last_echo_ns
                if gap > s.max_gap_ns:
                    s.max_gap_ns, s.max_gap_end_ns = gap, t
            else:
                s.first_echo_ns = t
            s.last_echo_ns = t
            s.echoes += 1

    while not stop_event.is_set():
        t = now_ns()
        if t >= deadline:
            break
        for key, events in sel.select(timeout=0.005):
            s = key.data
            if s.sock is None:
                continue
            t = now_ns()
            if s.state == "connecting":
                err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, f"connect: {errno.errorcode.get(err, err)}")
                    continue
                s.state = "open"
                s.connected_ns = t
                s.next_send_ns = t
                sel.modify(s.sock, selectors.EVENT_READ, s)
                continue
            if events & selectors.EVENT_READ:
                try:
                    data = s.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except ConnectionResetError:
                    fail(s, "reset")
                    continue
                except OSError as e:
                    fail(s, f"error: {errno.errorcode.get(e.errno, e)}")
                    continue
                if data == b"":
                    fail(s, "eof")
                    continue
                if data:
                    s.inbuf += data
                    on_echo_lines(s, t)
                    if s.sock is None:
                        continue
            if events & selectors.EVENT_WRITE and s.outbuf:
                flush(s)
        t = now_ns()
        for s in sessions:
            if s.sock is None:
                continue
            if s.state == "connecting":
                if t - s.connect_start_ns > connect_timeout_ns:
                    fail(s, "connect: timeout")
                continue
            if s.send_times and t - max(s.send_times[0], s.last_echo_ns or 0) > stall_ns:
                fail(s, "timeout")
                continue
            if t >= s.next_send_ns:
                s.seq_sent += 1
                s.outbuf += b"%d %d %d\n" % (s.cid, s.seq_sent, t)
                s.send_times.append(t)
                s.next_send_ns = t + rnd.randint(lo_ns, hi_ns)
                flush(s)
        if not ready_written and args.ready_file:
            settled = all(s.state == "failed" or s.first_echo_ns is not None for s in sessions)
            if settled:
                ready_written = True
                write_json(args.ready_file, {
                    "ready_ns": now_ns(),
                    "open": sum(1 for s in sessions if s.state == "open"),
                    "failed": sum(1 for s in sessions if s.state == "failed")})
    stop_ns = now_ns()
    stop_event.set()
    if prober:
        prober.join(timeout=2)
    sess_json = [s.to_json(stop_ns) for s in sessions]
    doc = {
        "mode": "client", "start_ns": start, "stop_ns": stop_ns,
        "probes": None if not prober else {
            "sent": prober.sent, "interval_ms": args.probe_interval_ms,
            "send_errors": dict(prober.send_errors), "skipped_slots": prober.skipped_slots,
            "max_send_gap_ms": prober.max_send_gap_ns / 1e6,
            "max_send_gap_at_ns": prober.max_send_gap_at_ns,
            "start_ns": prober.start_ns, "last_send_ns": prober.last_send_ns},
        "sessions": sess_json,
        "summary": {
            "sessions": len(sessions),
            "connected": sum(1 for s in sessions if s.connected_ns is not None),
            "errors": dict(collections.Counter(s.error for s in sessions if s.error)),
        },
    }
    for s in sessions:
        if s.sock is not None:
            if args.close_with_reset:
                s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sock.close()
    write_json(args.out, doc)
    log(f"client stopped: {doc['summary']}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--udp-port", type=int, default=9000)
    common.add_argument("--tcp-port", type=int, default=9001)
    common.add_argument("--duration", type=float, default=60.0,
                        help="stop after this many seconds at the latest")
    common.add_argument("--out", required=True, help="JSON result path")
    common.add_argument("--ready-file", help="written once the traffic is up")
    sp = sub.add_parser("server", parents=[common])
    sp.add_argument("--addr", default="198.51.100.10")
    sp.add_argument("--window-file", help="JSON {start_ns, end_ns} read at stop")
    sp.add_argument("--gap-threshold-ms", type=float, default=5.0)
    cp = sub.add_parser("client", parents=[common])
    cp.add_argument("--server", default="198.51.100.10")
    cp.add_argument("--sessions", type=int, default=100)
    cp.add_argument("--probe-interval-ms", type=float, default=1.0, help="0 = no probes")
    cp.add_argument("--max-catchup-ms", type=float, default=20.0)
    cp.add_argument("--min-interval-ms", type=float, default=20.0)
    cp.add_argument("--max-interval-ms", type=float, default=50.0)
    cp.add_argument("--stall-timeout", type=float, default=5.0)
    cp.add_argument("--connect-timeout", type=float, default=10.0)
    cp.add_argument("--seed", type=int, default=None)
    cp.add_argument("--local-port-base", type=int, default=0,
                    help="session i connects from this port + i (0: ephemeral ports)")
    cp.add_argument("--close-with-reset", action="store_true",
                    help="end the sessions with RST at stop (no TIME_WAIT)")
    args = ap.parse_args(argv)
    return run_server(args) if args.mode == "server" else run_client(args)


if __name__ == "__main__":
    sys.exit(main())
