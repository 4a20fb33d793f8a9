#!/usr/bin/env python3
"""Dump the conntrack table (and expectations) of the current network namespace over
ctnetlink, as JSON on stdout: `ip netns exec NS python3 ctdump.py [--expect]`.

Why not `conntrack -L`: its text output omits what the coverage checks compare — labels
(printed only through /etc/xtables/connlabel.conf, which the lab does not create), SCTP
verification tags, NAT sequence adjustment — and the parse of a fixed binary format is
simpler to trust than that of a human-readable one. Read-only: one dump request per table.

Entry fields: l3 (ipv4/ipv6), proto, orig/reply tuples {src, dst, sport, dport | type, code,
id}, zone, status (list of IPS_* names), timeout, mark, labels (list of set bit numbers),
helper, tcp {state, flags_orig, flags_reply}, sctp {state, vtag_orig, vtag_reply}, seqadj
{orig, reply: [correction_pos, offset_before, offset_after]}.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import sys

NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CT_GET = (1 << 8) | 1          # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET
EXP_GET = (2 << 8) | 1         # NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET

STATUS_BITS = ["EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT",
               "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
               "TEMPLATE", "UNTRACKED", "HELPER", "OFFLOAD", "HW_OFFLOAD"]
TCP_STATES = ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
              "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"]
SCTP_STATES = ["NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
               "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT",
               "HEARTBEAT_ACKED"]
PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 33: "dccp",
          136: "udplite", 47: "gre"}


def attrs(data):
    """Netlink attributes -> {type: payload} (last one wins; types masked)."""
    out, off = {}, 0
    while off + 4 <= len(data):
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4:
            break
        out[atype & 0x3FFF] = data[off + 4:off + alen]
        off += (alen + 3) & ~3
    return out


def u8(b):
    return b[0]


def be16(b):
    return struct.unpack("!H", b[:2])[0]


def be32(b):
    return struct.unpack("!I", b[:4])[0]


def tuple_of(data):
    a = attrs(data)
    t = {}
    ip = attrs(a.get(1, b""))
    for k, name in ((1, "src"), (2, "dst")):
        if k in ip:
            t[name] = str(ipaddress.IPv4Address(ip[k]))
    for k, name in ((3, "src"), (4, "dst")):
        if k in ip:
            t[name] = str(ipaddress.IPv6Address(ip[k]))
    pr = attrs(a.get(2, b""))
    if 1 in pr:
        t["proto"] = PROTOS.get(u8(pr[1]), str(u8(pr[1])))
    if 2 in pr:
        t["sport"] = be16(pr[2])
    if 3 in pr:
        t["dport"] = be16(pr[3])
    for idk, tk, ck in ((4, 5, 6), (7, 8, 9)):
        if idk in pr:
            t["id"] = be16(pr[idk])
        if tk in pr:
            t["type"] = u8(pr[tk])
        if ck in pr:
            t["code"] = u8(pr[ck])
    if 3 in a:
        t["zone"] = be16(a[3])
    return t


def entry_of(payload):
    family = payload[0]
    a = attrs(payload[4:])
    e = {"l3": "ipv4" if family == socket.AF_INET else "ipv6"}
    e["orig"] = tuple_of(a.get(1, b""))
    e["reply"] = tuple_of(a.get(2, b""))
    e["proto"] = e["orig"].pop("proto", "?")
    e["reply"].pop("proto", None)
    status = be32(a[3]) if 3 in a else 0
    e["status"] = [n for i, n in enumerate(STATUS_BITS) if status & (1 << i)]
    e["timeout"] = be32(a[7]) if 7 in a else None
    e["mark"] = be32(a[8]) if 8 in a else 0
    e["zone"] = be16(a[18]) if 18 in a else 0
    if 22 in a:
        bits = a[22]
        e["labels"] = [i for i in range(len(bits) * 8) if bits[i // 8] & (1 << (i % 8))]
    else:
        e["labels"] = []
    if 5 in a:
        h = attrs(a[5])
        e["helper"] = h.get(1, b"").rstrip(b"\0").decode(errors="replace")
    if 4 in a:
        pi = attrs(a[4])
        if 1 in pi:
            tcp = attrs(pi[1])
            e["tcp"] = {"state": TCP_STATES[u8(tcp[1])] if 1 in tcp and u8(tcp[1]) <
                        len(TCP_STATES) else None}
            for k, name in ((4, "flags_orig"), (5, "flags_reply")):
                if k in tcp:
                    e["tcp"][name] = tcp[k][0]
        if 3 in pi:
            sc = attrs(pi[3])
            st = u8(sc[1]) if 1 in sc else None
            e["sctp"] = {"state": SCTP_STATES[st] if st is not None and st < len(SCTP_STATES)
                         else st,
                         "vtag_orig": f"{be32(sc[2]):#x}" if 2 in sc else None,
                         "vtag_reply": f"{be32(sc[3]):#x}" if 3 in sc else None}
    seq = {}
    for k, name in ((15, "orig"), (16, "reply")):
        if k in a:
            s = attrs(a[k])
            seq[name] = [be32(s[i]) if i in s else None for i in (1, 2, 3)]
    if seq:
        e["seqadj"] = seq
    return e


def expectation_of(payload):
    a = attrs(payload[4:])
    e = {"l3": "ipv4" if payload[0] == socket.AF_INET else "ipv6",
         "master": tuple_of(a.get(1, b"")), "tuple": tuple_of(a.get(2, b"")),
         "timeout": be32(a[4]) if 4 in a else None}
    if 6 in a:
        e["helper"] = a[6].rstrip(b"\0").decode(errors="replace")
    return e


def dump(msg_type, parse):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.settimeout(5.0)
    try:
        s.bind((0, 0))
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
        hdr = struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        s.send(hdr + body)
        out = []
        while True:
            data = s.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                mlen, mtype, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
                if mlen < 16:
                    return out
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return out
                out.append(parse(data[off + 16:off + mlen]))
                off += (mlen + 3) & ~3
    finally:
        s.close()


def main(argv):
    if "--expect" in argv:
        print(json.dumps(dump(EXP_GET, expectation_of)))
    else:
        print(json.dumps(dump(CT_GET, entry_of)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
