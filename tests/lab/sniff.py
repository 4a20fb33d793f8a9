#!/usr/bin/env python3
"""Records, on one link, what the election puts on the wire: VRRP adverts (IPv4 and IPv6)
and IPv6 Neighbour Advertisements, so a lab scenario can check them from a bystander's
point of view (the client's) rather than trusting fwhad's own counters.

    ip netns exec NS python3 sniff.py --ifname IF --out FILE [--ready-file F] [--duration S]

An AF_PACKET socket with a classic BPF filter (IPv6 next header 112 or 58, IPv4 protocol
112: the TCP and UDP test traffic never reaches Python). Stops after --duration seconds or
on SIGTERM/SIGINT and writes one JSON document:

  vrrp6: [{t_ns, src_mac, src, dst, hop_limit, version, type, vrid, priority, interval_cs,
           addresses, checksum_ok}]   checksum_ok: recomputed here over RFC 8200 8.1's
                                      pseudo-header, independently of fwhad's code
  vrrp4: [{t_ns, src_mac, src, ttl, vrid, priority}]
  na:    [{t_ns, src_mac, src, dst, hop_limit, target, router, solicited, override,
           target_mac}]               Neighbour Advertisements (ICMPv6 type 136)

Times are time.monotonic_ns(), the orchestrator's clock too. At most MAX_RECORDS per list.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
MAX_RECORDS = 5000

# ldh [12]; IPv6? ldb [20] (next header) in {112, 58}; IPv4? ldb [23] (protocol) == 112.
BPF = [
    (0x28, 0, 0, 12),          # 0: A = ethertype
    (0x15, 0, 3, 0x86DD),      # 1: IPv6 -> 2, else 5
    (0x30, 0, 0, 20),          # 2: A = next header
    (0x15, 5, 0, 112),         # 3: VRRP -> accept
    (0x15, 4, 3, 58),          # 4: ICMPv6 -> accept, else reject
    (0x15, 0, 2, 0x0800),      # 5: IPv4 -> 6, else reject
    (0x30, 0, 0, 23),          # 6: A = protocol
    (0x15, 1, 0, 112),         # 7: VRRP -> accept
    (0x06, 0, 0, 0),           # 8: reject
    (0x06, 0, 0, 0x40000),     # 9: accept (whole frame)
]

stop = False


def _on_signal(_signum, _frame):
    global stop
    stop = True


def attach_filter(sock):
    prog = b"".join(struct.pack("HBBI", *ins) for ins in BPF)
    buf = ctypes.create_string_buffer(prog)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    struct.pack("HL", len(BPF), ctypes.addressof(buf)))


def mac(b):
    return ":".join(f"{x:02x}" for x in b)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def parse_vrrp6(frame, t):
    ip6 = frame[14:]
    if len(ip6) < 48:
        return None
    plen = struct.unpack("!H", ip6[4:6])[0]
    vrrp = ip6[40:40 + plen]
    src, dst = ip6[8:24], ip6[24:40]
    pseudo = src + dst + struct.pack("!I", len(vrrp)) + b"\0\0\0" + bytes([112])
    count = vrrp[3] if len(vrrp) >= 4 else 0
    addrs = [str(ipaddress.IPv6Address(vrrp[8 + 16 * i:24 + 16 * i]))
             for i in range(count) if len(vrrp) >= 24 + 16 * i]
    return {"t_ns": t, "src_mac": mac(frame[6:12]), "src": str(ipaddress.IPv6Address(src)),
            "dst": str(ipaddress.IPv6Address(dst)), "hop_limit": ip6[7],
            "version": vrrp[0] >> 4, "type": vrrp[0] & 0xF, "vrid": vrrp[1],
            "priority": vrrp[2], "interval_cs": struct.unpack("!H", vrrp[4:6])[0] & 0xFFF,
            "addresses": addrs, "checksum_ok": checksum(pseudo + vrrp) == 0}


def parse_na(frame, t):
    ip6 = frame[14:]
    icmp = ip6[40:]
    if len(icmp) < 24 or icmp[0] != 136:
        return None
    flags = icmp[4]
    target_mac = None
    opts = icmp[24:]
    while len(opts) >= 8 and opts[1]:
        if opts[0] == 2:  # Target Link-Layer Address
            target_mac = mac(opts[2:8])
        opts = opts[8 * opts[1]:]
    return {"t_ns": t, "src_mac": mac(frame[6:12]),
            "src": str(ipaddress.IPv6Address(ip6[8:24])),
            "dst": str(ipaddress.IPv6Address(ip6[24:40])), "hop_limit": ip6[7],
            "target": str(ipaddress.IPv6Address(icmp[8:24])), "router": bool(flags & 0x80),
            "solicited": bool(flags & 0x40), "override": bool(flags & 0x20),
            "target_mac": target_mac}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ifname", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--duration", type=float, default=120.0)
    args = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    attach_filter(sock)
    sock.bind((args.ifname, 0))
    sock.settimeout(0.1)
    doc = {"ifname": args.ifname, "vrrp6": [], "vrrp4": [], "na": []}
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    deadline = time.monotonic() + args.duration
    while not stop and time.monotonic() < deadline:
        try:
            frame = sock.recv(65536)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        t = time.monotonic_ns()
        if len(frame) < 34:
            continue
        ethertype = struct.unpack("!H", frame[12:14])[0]
        rec, key = None, None
        if ethertype == 0x86DD and len(frame) >= 54:
            if frame[20] == 112:
                rec, key = parse_vrrp6(frame, t), "vrrp6"
            elif frame[20] == 58:
                rec, key = parse_na(frame, t), "na"
        elif ethertype == 0x0800 and frame[23] == 112 and len(frame) >= 42:
            ihl = (frame[14] & 0xF) * 4
            v = frame[14 + ihl:]
            if len(v) >= 3:
                rec, key = {"t_ns": t, "src_mac": mac(frame[6:12]),
                            "src": socket.inet_ntoa(frame[26:30]), "ttl": frame[22],
                            "vrid": v[1], "priority": v[2]}, "vrrp4"
        if rec is not None and len(doc[key]) < MAX_RECORDS:
            doc[key].append(rec)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
