#!/usr/bin/env python3
"""Coverage of issue 3: every kind of flow survives a crash of the Master.

    coverage.py [--assert] [--event crash|graceful] [--no-sync] [--verbose] [--keep]

One failover, all flow kinds at once (coverage_flows.py has the table): IPv4 and IPv6; TCP,
UDP, ICMP/ICMPv6 echo, SCTP; SNAT (fully-random ports), masquerade, DNAT port forwards,
port-rewriting NAT (DNAT to another port, SNAT to a port range); a conntrack mark, a zone and
a label that the ruleset depends on; FTP active-mode transfers through the ftp helper.

The lab is netlab's, extended from the outside (CoverageLab): IPv6 addresses mirroring the
IPv4 plan (LAN fd00:1::/64, VIP fd00:1::1; WAN fd00:2::/64, VIP fd00:2::1; client fd00:1::10
routed via the LAN VIP; server fd00:2::10), IPv6 forwarding on the firewalls, the IPv6 VIPs in
each [[group.interface]], and the ruleset below (netlab's policy plus the classes above).

Steps: pair up (fw1 Master); listeners, then flows, in the client and server namespaces; once
every flow has answered, fw2's replicated copy of each flow's entry is compared with fw1's
(`conntrack -L -o extended`: tuples, NAT, mark, zone, state, labels, helper); then the crash
(as scenario.py: SIGSTOP every process of fw1, cut its links, SIGKILL) or, with --event
graceful, SIGTERM to fw1's fwhad; then the FTP steps that must work after the failover;
traffic runs POST_S more seconds.

Without replication (--no-sync) every flow fails these checks except udp4_dnat_port: a UDP
port forward without SNAT is recreated identically by the new Master's ruleset, so it proves
the path, not the replication (its replica is compared all the same).

A flow survived when: it had answered before the event; it has no error (reset, EOF, no
answer for 4 s) before the first flow process stops; it answered after the event and until
the end; and the listening side saw one NAT source for it (address:port, ICMP id, or SCTP
port + verification tag) over the whole run. The last point is what makes UDP/ICMP/SCTP
checks able to fail: the ruleset lets the LAN open new UDP/ICMP/SCTP flows, so a new Master
without the entry would simply make a new mapping (another random port or id), and the
packets would still pass.

Output is `key: value` lines; every check prints `check: <what>: PASS|FAIL (detail)`;
capabilities fwhad does not have yet (labels, FTP helper state and expectations) and the
masquerade limitation print `known_gap:` lines instead and never fail the run. Summary lines
`flows_survived_<kind>: K/T` per kind and `flows_survived: K/T` over the flows that are not
known gaps. Exit status: 0 pass (or no --assert), 1 a check failed, 2 the lab failed, 77 not
root (meson: SKIP). Wall-clock cap --max-seconds (default 150).
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import os
import signal
import sys
import time
import traceback

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import coverage_flows as cf  # noqa: E402
import netlab  # noqa: E402
from netlab import FWS, LabError, LabInterrupted, LabTimeout, mono_ns, wait_for  # noqa: E402

FLOWS_PY = os.path.join(HERE, "coverage_flows.py")
PY = sys.executable or "python3"

POST_S = 4.0           # traffic after the event (answers must go on until the end)
STALL_S = 4.0          # no answer for this long = the flow is dead
END_SLACK_S = 2.0      # the last answer must be at most this long before the stop
GAP_LIMIT_S = 3.0      # longest interval without answers around the event

LAN_VIP6, WAN_VIP6 = "fd00:1::1", "fd00:2::1"
CLIENT6, SERVER6 = cf.CLIENT6, cf.SERVER6
ADDR6 = {"fw1": {"lan": "fd00:1::2", "wan": "fd00:2::2"},
         "fw2": {"lan": "fd00:1::3", "wan": "fd00:2::3"}}
MARK, ZONE, LABEL = 0x42, 5, 3
KIND_ORDER = ["ipv4", "ipv6", "tcp", "udp", "icmp", "sctp", "snat", "masquerade", "dnat",
              "port_rewrite", "mark", "zone", "label", "ftp"]

# netlab's policy (forward drop; established/related accepted; invalid dropped; new flows
# LAN -> WAN only, new TCP only with a bare SYN; SNAT of forwarded LAN traffic to the WAN VIP
# with fully-random ports), made dual-stack, plus one class per coverage item:
#   9104/tcp  masquerade (picks the VIP: the node's own WAN address is a /32, see setup())
#   9105/tcp  SNAT to the WAN VIP, ports 20000-20999 (port-rewriting SNAT)
#   9106/tcp  ct mark 0x42 set on the first packet; later packets without it are dropped
#   9107/tcp  conntrack zone 5 (both directions, raw priority, before conntrack)
#   9108/tcp  ct label 3 set on the first packet; later packets without it are dropped
#   21/tcp    ftp helper (nft ct helper object; the helper does the NAT of PORT too)
#   WAN VIP 8080/tcp -> 192.0.2.10 (port forward), 8081/tcp -> 192.0.2.10:80 and
#   [fd00:1::10]:80, 8082/udp -> 192.0.2.10:53 (DNAT with port rewriting); new flows WAN ->
#   LAN only when DNATed (TCP: bare SYN).
RULESET = """\
table inet fwha_cov {{
    ct helper ftp-standard {{
        type "ftp" protocol tcp
        l3proto inet
    }}
    chain raw_pre {{
        type filter hook prerouting priority raw; policy accept;
        tcp dport 9107 ct zone set {zone}
        tcp sport 9107 ct zone set {zone}
    }}
    chain input {{
        type filter hook input priority 0; policy accept;
    }}
    chain forward {{
        type filter hook forward priority 0; policy drop;
        iifname "{lan}" oifname "{wan}" ct state new tcp dport 9106 ct mark set {mark:#x}
        iifname "{lan}" oifname "{wan}" ct state new tcp dport 9108 ct label set {label}
        iifname "{lan}" oifname "{wan}" ct state new tcp dport 21 ct helper set "ftp-standard"
        iifname "{lan}" tcp dport 9106 ct mark != {mark:#x} drop
        iifname "{lan}" tcp dport 9108 ct label != {label} drop
        ct state established,related accept
        ct state invalid drop
        iifname "{lan}" oifname "{wan}" ct state new {bare_syn} accept
        iifname "{lan}" oifname "{wan}" ct state new meta l4proto {{ udp, icmp, icmpv6, sctp }} accept
        iifname "{wan}" oifname "{lan}" ct state new ct status dnat {bare_syn} accept
        iifname "{wan}" oifname "{lan}" ct state new ct status dnat meta l4proto udp accept
    }}
    chain dstnat {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "{wan}" ip daddr {wan_vip} tcp dport 8080 dnat ip to {client4}
        iifname "{wan}" ip daddr {wan_vip} tcp dport 8081 dnat ip to {client4}:80
        iifname "{wan}" ip daddr {wan_vip} udp dport 8082 dnat ip to {client4}:53
        iifname "{wan}" ip6 daddr {wan_vip6} tcp dport 8081 dnat ip6 to [{client6}]:80
    }}
    chain srcnat {{
        type nat hook postrouting priority srcnat; policy accept;
        iifname "{lan}" oifname "{wan}" tcp dport 9104 masquerade fully-random
        iifname "{lan}" oifname "{wan}" tcp dport 9105 snat ip to {wan_vip}:20000-20999
        iifname "{lan}" oifname "{wan}" snat ip to {wan_vip} fully-random
        iifname "{lan}" oifname "{wan}" snat ip6 to {wan_vip6} fully-random
    }}
}}
"""


class Flapped(LabError):
    """The pair changed roles before the event: the run cannot say anything about failover."""


def transitions(lab):
    res = {}
    for fw in FWS:
        st = lab.status(fw)
        if st is None:
            raise LabError(f"{fw} does not answer status")
        res[fw] = (st["group"]["state"], st["group"].get("transitions"))
    return res


def load_average():
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


class CoverageLab(netlab.Lab):
    """netlab's Lab plus IPv6 (addresses, routes, forwarding, VIPs) and the coverage ruleset.
    Uses only Lab's public surface: setup(), load_ruleset(), config_text()."""

    def setup(self):
        super().setup()
        f = self.ifname
        self.ip("client", "-6", "addr", "add", f"{CLIENT6}/64", "dev", f[("client", "lan")],
                "nodad")
        self.ip("client", "-6", "route", "add", "default", "via", LAN_VIP6)
        self.ip("server", "-6", "addr", "add", f"{SERVER6}/64", "dev", f[("server", "wan")],
                "nodad")
        # Masquerade picks inet_select_addr(out, next hop): the first *primary* address of the
        # WAN interface whose prefix holds the next hop (docs/running.md). With the node's own
        # WAN address as a /32 (and a route to the subnet for the node's own traffic), the VIP
        # 198.51.100.1/24 is that address on the Master, so masqueraded flows survive.
        for fw in FWS:
            wan, own = f[(fw, "wan")], netlab.ADDR[fw]["wan"]
            self.ip(fw, "addr", "del", f"{own}/24", "dev", wan)
            self.ip(fw, "addr", "add", f"{own}/32", "dev", wan)
            self.ip(fw, "route", "add", "198.51.100.0/24", "dev", wan, "src", own,
                    "metric", "100")
        for fw in FWS:
            self.nsexec(fw, ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])
            for link in ("lan", "wan"):
                self.ip(fw, "-6", "addr", "add", f"{ADDR6[fw][link]}/64", "dev", f[(fw, link)],
                        "nodad")
        self.log("fw WAN addresses are /32 (masquerade picks the VIP); "
                 "IPv6 up: client fd00:1::10 (default via fd00:1::1), server fd00:2::10, "
                 "fw1 fd00:1::2/fd00:2::2, fw2 fd00:1::3/fd00:2::3, forwarding on")

    def load_ruleset(self, fw):
        text = RULESET.format(lan=self.ifname[(fw, "lan")], wan=self.ifname[(fw, "wan")],
                              wan_vip=netlab.WAN_VIP, wan_vip6=WAN_VIP6, client4=cf.CLIENT4,
                              client6=CLIENT6, mark=MARK, zone=ZONE, label=LABEL,
                              bare_syn="tcp flags & (fin|syn|rst|ack) == syn")
        path = self.path(f"{fw}.nft")
        with open(path, "w") as fh:
            fh.write(text)
        self.nsexec(fw, ["nft", "-f", path])

    def config_text(self, fw, **overrides):
        text = super().config_text(fw, **overrides)
        for vip4, vip6 in ((netlab.LAN_VIP, LAN_VIP6), (netlab.WAN_VIP, WAN_VIP6)):
            old = f'vips = ["{vip4}/24"]'
            if old not in text:
                raise LabError(f"netlab's config no longer has `{old}`: cannot add {vip6}")
            text = text.replace(old, f'vips = ["{vip4}/24", "{vip6}/64"]')
        return text


# --- output -----------------------------------------------------------------------------------

def out(key, value):
    print(f"{key}: {value}", flush=True)


class Checks:
    def __init__(self):
        self.failed = []
        self.gaps = []
        self.summary = []      # (key, value), printed again at the very end

    def check(self, ok, what, detail=""):
        print(f"check: {what}: {'PASS' if ok else 'FAIL'}" + (f" ({detail})" if detail else ""),
              flush=True)
        if not ok:
            self.failed.append(what + (f" ({detail})" if detail else ""))
        return ok

    def known_gap(self, what, detail=""):
        print(f"known_gap: {what}" + (f" ({detail})" if detail else ""), flush=True)
        self.gaps.append(what)


# --- pair -------------------------------------------------------------------------------------

def _alive_or_raise(lab, fws):
    for fw in fws:
        p = lab.fwhad_procs.get(fw)
        if p is not None and not p.running():
            raise LabError(f"fwhad on {fw} exited early with code {p.popen.returncode}")


def start_pair(lab):
    """fw1 first (it must answer on its control socket), then fw2; wait for fw1 Master, fw2
    Backup, sync connected on both, stable for 0.5 s."""
    lab.require_binaries()
    lab.start_fwhad("fw1")
    wait_for(lambda: (_alive_or_raise(lab, ["fw1"]), lab.status("fw1"))[1], 15,
             what="fw1 control socket")
    lab.start_fwhad("fw2")

    def settled():
        _alive_or_raise(lab, FWS)
        st = {fw: lab.status(fw) for fw in FWS}
        if not all(st.values()):
            return None
        if sorted(s["group"]["state"] for s in st.values()) != ["Backup", "Master"]:
            return None
        if not all(s.get("sync", {}).get("connected") for s in st.values()):
            return None
        return st
    try:
        st = wait_for(settled, 40, interval=0.1, what="one Master, one Backup, sync connected")
    except LabTimeout as e:
        raise LabTimeout(f"{e}; last states {lab.states()}") from None
    master = next(fw for fw in FWS if st[fw]["group"]["state"] == "Master")
    time.sleep(0.5)
    if {fw: lab.state(fw) for fw in FWS} != {fw: st[fw]["group"]["state"] for fw in FWS}:
        raise LabError(f"roles not stable after start-up: {lab.states()}")
    return master, ("fw2" if master == "fw1" else "fw1")


# --- conntrack tables -------------------------------------------------------------------------

CTDUMP = os.path.join(HERE, "ctdump.py")


def ct_dump(lab, node, expect=False):
    """node's conntrack table (or expectations) as ctdump.py reports it."""
    cp = lab.nsexec(node, [PY, CTDUMP] + (["--expect"] if expect else []), timeout=15)
    return json.loads(cp.stdout)


def ct_invalid(lab, node):
    """Sum of conntrack's per-CPU `invalid` counters (packets conntrack refused to track, e.g.
    an SCTP chunk whose verification tag does not match the entry)."""
    cp = lab.nsexec(node, ["conntrack", "-S"], check=False, timeout=10)
    return sum(int(tok.split("=", 1)[1]) for tok in cp.stdout.split()
               if tok.startswith("invalid="))


def _norm(addr):
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


def flow_orig(spec, sport):
    """The original tuple of a flow's conntrack entry."""
    if spec["by"] == "client":
        src = cf.CLIENT4 if spec["fam"] == 4 else CLIENT6
    else:
        src = cf.SERVER4 if spec["fam"] == 4 else SERVER6
    t = {"src": _norm(src), "dst": _norm(spec["dst"])}
    if spec["kind"] == "ping":
        t.update(type=8 if spec["fam"] == 4 else 128, id=spec["ident"])
    else:
        t.update(sport=sport, dport=spec["port"])
    return t


PROTO = {"tcp": "tcp", "udp": "udp", "ping": None, "sctp": "sctp", "ftp": "tcp"}


def find_entry(entries, spec, sport):
    want = flow_orig(spec, sport)
    proto = PROTO[spec["kind"]] or ("icmp" if spec["fam"] == 4 else "icmpv6")
    for e in entries:
        if e["proto"] == proto and all(e["orig"].get(k) == v for k, v in want.items()):
            return e
    return None


def _tuple_str(x):
    if "id" in x:
        return f"{x.get('src')}->{x.get('dst')} type={x.get('type')} id={x.get('id')}"
    return f"{x.get('src')}:{x.get('sport')}->{x.get('dst')}:{x.get('dport')}"


def entry_brief(e):
    if e is None:
        return "none"
    extra = []
    if "tcp" in e:
        extra.append(f"state={e['tcp']['state']}")
    if "sctp" in e:
        sc = e["sctp"]
        extra.append(f"state={sc['state']} vtags={sc['vtag_orig']}/{sc['vtag_reply']}")
    extra += [f"mark={e['mark']:#x}", f"zone={e['zone']}", f"labels={e['labels']}"]
    if e.get("helper"):
        extra.append(f"helper={e['helper']}")
    if e.get("seqadj"):
        extra.append(f"seqadj={e['seqadj']}")
    flags = [f for f in e["status"] if f in ("ASSURED", "SEEN_REPLY", "SRC_NAT", "DST_NAT")]
    return (f"orig {_tuple_str(e['orig'])} reply {_tuple_str(e['reply'])} "
            f"[{','.join(flags)}] {' '.join(extra)}")


COMPARED_STATUS = ("SEEN_REPLY", "ASSURED", "SRC_NAT", "DST_NAT")


def compare_replica(m, b):
    """Differences between the Master's entry m and the Backup's copy b:
    (hard differences, known-gap differences). Timeouts are not compared."""
    if b is None:
        return ["missing on the Backup"], []
    hard, gap = [], []
    if m["reply"] != b["reply"]:
        hard.append(f"reply tuple {_tuple_str(b['reply'])} != Master's {_tuple_str(m['reply'])}")
    for k in ("mark", "zone"):
        if m.get(k) != b.get(k):
            hard.append(f"{k} {b.get(k)} != Master's {m.get(k)}")
    for flag in COMPARED_STATUS:
        if (flag in m["status"]) != (flag in b["status"]):
            hard.append(f"{flag} {'set' if flag in b['status'] else 'not set'} (Master: "
                        f"{'set' if flag in m['status'] else 'not set'})")
    if m.get("tcp", {}).get("state") != b.get("tcp", {}).get("state"):
        hard.append(f"TCP state {b.get('tcp', {}).get('state')} != Master's "
                    f"{m.get('tcp', {}).get('state')}")
    if m.get("sctp") != b.get("sctp"):
        hard.append(f"SCTP state/vtags {b.get('sctp')} != Master's {m.get('sctp')}")
    if m["labels"] != b["labels"]:
        hard.append(f"labels {b['labels']} != Master's {m['labels']}")
    if m.get("helper") != b.get("helper"):
        hard.append(f"helper {b.get('helper')!r} != Master's {m.get('helper')!r}")
    if m.get("seqadj") != b.get("seqadj"):
        hard.append(f"NAT sequence adjustment {b.get('seqadj')} != Master's {m.get('seqadj')}")
    return hard, gap


# --- flows ------------------------------------------------------------------------------------

def start_flows(lab):
    files = {k: lab.path(f"flows-{k}") for k in ("go", "post")}
    procs, paths = {}, {}
    for role, node in (("server", "server"), ("client", "client")):
        paths[role] = {k: lab.path(f"flows-{role}.{k}")
                       for k in ("ready", "est", "json", "postdone")}
        procs[role] = lab.spawn(node, [
            PY, FLOWS_PY, role, "--out", paths[role]["json"],
            "--ready-file", paths[role]["ready"], "--go-file", files["go"],
            "--established-file", paths[role]["est"], "--post-file", files["post"],
            "--post-done-file", paths[role]["postdone"],
            "--duration", "90", "--stall", str(STALL_S)], f"flows-{role}")
    for role in procs:
        wait_for(lambda r=role: (_proc_alive(procs[r]), os.path.exists(paths[r]["ready"]))[1],
                 15, what=f"{role} listeners ready")
    with open(files["go"], "w"):
        pass
    est = {}
    for role in procs:
        wait_for(lambda r=role: (_proc_alive(procs[r]), os.path.exists(paths[r]["est"]))[1],
                 20, what=f"{role} flows established")
        with open(paths[role]["est"]) as fh:
            est.update(json.load(fh))
    return procs, paths, files, est


def _proc_alive(proc):
    if not proc.running():
        raise LabError(f"{proc.name} exited early with {proc.popen.returncode}; see "
                       f"{proc.log_path}")


def stop_flows(lab, procs, paths):
    docs = {}
    for role, proc in procs.items():
        proc.signal(signal.SIGTERM)
    for role, proc in procs.items():
        try:
            proc.popen.wait(timeout=15)
        except Exception:  # noqa: BLE001
            proc.signal(signal.SIGKILL)
            raise LabError(f"{proc.name} did not stop on SIGTERM") from None
        try:
            with open(paths[role]["json"]) as fh:
                docs[role] = json.load(fh)
        except (OSError, ValueError) as e:
            raise LabError(f"no result from {proc.name}: {e}") from None
    return docs


def analyse_flow(spec, rec, peer_view, stop_ns, event_ns):
    """-> (survived, detail, facts).

    stop_ns is when the first of the two flow processes was told to stop: both sides open flows,
    so whichever stops first closes flows the other still runs, and what the other records after
    that (a reset, an EOF) is the end of the run, not the firewall."""
    name = spec["name"]
    facts = {}
    if rec is None:
        return False, "no record", facts
    answers = rec["answers"]
    before = [t for t in answers if t < event_ns]
    after = [t for t in answers if t >= event_ns]
    facts["answers_before"], facts["answers_after"] = len(before), len(after)
    reasons = []
    if not before:
        reasons.append("never answered before the event")
    if rec["error"] and rec["error_ns"] < stop_ns:
        reasons.append(f"error: {rec['error']} at {(rec['error_ns'] - event_ns) / 1e9:+.2f}s "
                       "from the event")
    if spec["kind"] == "ftp":
        post = [s for s in rec["steps"] if s["phase"] == "post"]
        pre = [s for s in rec["steps"] if s["phase"] == "pre"]
        facts["pre"] = pre
        facts["post"] = post
        if not post:
            reasons.append("post-failover steps did not run")
        for s in post:
            if not s["ok"]:
                reasons.append(f"after the failover `{s['step']}` failed: {s.get('detail')}")
        for s in pre:
            if not s["ok"]:
                reasons.append(f"before the failover `{s['step']}` failed: {s.get('detail')}")
        # What the server saw after the event (PORT addresses, data connections): detail for
        # the reader; the post steps above are the check.
        facts["server_saw_after"] = [src for src, v in peer_view["flows"].get(name, {}).items()
                                     if v["last_ns"] >= event_ns]
    else:
        if not after:
            reasons.append("no answer after the event")
        elif stop_ns - after[-1] > END_SLACK_S * 1e9:
            reasons.append(f"answers stopped {(after[-1] - event_ns) / 1e9:.2f}s after the event")
        if answers:
            pts = [t for t in answers] + [stop_ns]
            gap = max((b - a for a, b in zip(pts, pts[1:]) if b >= event_ns), default=0)
            facts["gap_ms"] = round(gap / 1e6)
            if gap > GAP_LIMIT_S * 1e9:
                reasons.append(f"longest gap {gap / 1e6:.0f} ms")
        seen = peer_view["flows"].get(name, {})
        facts["sources_seen_by_peer"] = sorted(seen)
        if len(seen) > 1:
            reasons.append("the listening side saw it from " + " then ".join(
                f"{src} ({v['count']}x, {(v['first_ns'] - event_ns) / 1e9:+.2f}s.."
                f"{(v['last_ns'] - event_ns) / 1e9:+.2f}s)"
                for src, v in sorted(seen.items(), key=lambda kv: kv[1]["first_ns"])))
    refused = [r for r in peer_view["refused"] if r.get("flow") == name
               and r["t_ns"] < stop_ns - 0.5e9]
    if refused:
        facts["refused"] = refused[:3]
        reasons.append(f"{len(refused)} packet(s)/event(s) refused by the listening side, "
                       f"first: {refused[0]['event']} from {refused[0]['peer']} at "
                       f"{(refused[0]['t_ns'] - event_ns) / 1e9:+.2f}s")
    ok = not reasons
    detail = (f"{len(before)} answers before, {len(after)} after"
              + (f", gap {facts['gap_ms']} ms" if "gap_ms" in facts else "")
              + (f"; server saw after the event: {', '.join(facts['server_saw_after'])}"
                 if facts.get("server_saw_after") else "")
              + ("" if ok else "; " + "; ".join(reasons)))
    return ok, detail, facts


# --- the run ----------------------------------------------------------------------------------

def coverage_run(lab, args, checks):
    master, backup = start_pair(lab)
    out("master_before", master)
    checks.check(master == "fw1", "initial Master is fw1", f"got {master}")
    roles0 = transitions(lab)
    procs, paths, files, est = start_flows(lab)
    specs = {f["name"]: f for f in cf.FLOWS}
    for name, spec in specs.items():
        e = est.get(name, {})
        pre_steps = [s for s in e.get("steps", []) if s["phase"] == "pre"]
        detail = f"sport/id {e.get('sport')}" + (f", error {e['error']}" if e.get("error") else "")
        if pre_steps:
            detail += "; " + "; ".join(f"{s['step']}: {'ok' if s['ok'] else 'FAILED'} "
                                       f"({s.get('detail')})" for s in pre_steps)
        checks.check(bool(e.get("ok")) and all(s["ok"] for s in pre_steps),
                     f"lab sanity: {name} works through the Master before the failover", detail)
    lab.log("flows established: " + ", ".join(sorted(n for n, e in est.items() if e.get("ok"))))
    time.sleep(1.0)

    # -- the Master's entries and the Backup's copies --
    def snapshot():
        return ct_dump(lab, master), ct_dump(lab, backup)

    def all_match():
        tm, tb = snapshot()
        res = {}
        for name, spec in specs.items():
            sport = est.get(name, {}).get("sport")
            m, b = find_entry(tm, spec, sport), find_entry(tb, spec, sport)
            res[name] = (m, b, *(compare_replica(m, b) if m else (["missing on the Master"], [])))
        return res if all(not r[2] for r in res.values()) else None, res
    deadline = time.monotonic() + 3.0
    while True:
        good, res = all_match()
        if good or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    st_b = lab.status(backup) or {}
    out("backup_sync_before", json.dumps(st_b.get("sync", {}), sort_keys=True))
    exp_m, exp_b = ct_dump(lab, master, expect=True), ct_dump(lab, backup, expect=True)
    out("expectations_on_master", len(exp_m))
    out("expectations_on_backup", len(exp_b))
    for x in exp_m:
        out(f"expectation_on_{master}", f"{_tuple_str(x['tuple'])} (master "
            f"{_tuple_str(x['master'])}, helper {x.get('helper')})")
    for name, spec in specs.items():
        m, b, hard, gap = res[name]
        out(f"ct_master[{name}]", entry_brief(m))
        out(f"ct_backup[{name}]", entry_brief(b))
        checks.check(not hard, f"replica: {backup}'s copy of {name} equals {master}'s entry "
                     "(tuples, NAT, mark, zone, state, labels, helper, seqadj)",
                     "; ".join(hard) or "identical")
        for g in gap:
            checks.known_gap(f"replica of {name}: {g}", "fwhad does not replicate it yet")
        for key, want in (("mark", spec.get("mark")), ("zone", spec.get("zone"))):
            if m and want is not None:
                checks.check(m[key] == want, f"lab sanity: {master}'s entry of {name} has "
                             f"{key} {want}", f"{key} {m[key]}")
        if m and spec.get("label") is not None:
            checks.check(spec["label"] in m["labels"], f"lab sanity: {master}'s entry of "
                         f"{name} has label {spec['label']}", f"labels {m['labels']}")
        if m and "masquerade" in spec["kinds"]:
            checks.check(m["reply"].get("dst") == netlab.WAN_VIP,
                         f"lab sanity: {master} masqueraded {name} to the WAN VIP (the VIP is "
                         "the primary address of the next hop's prefix)",
                         f"reply dst {m['reply'].get('dst')}")
        if m and spec["kind"] in ("tcp", "udp", "sctp") and spec["by"] == "client":
            nat_port = m["reply"].get("dport")
            if spec.get("nat_port_range"):
                lo, hi = spec["nat_port_range"]
                checks.check(nat_port is not None and lo <= nat_port <= hi,
                             f"lab sanity: {name} is SNATed into ports {lo}-{hi}",
                             f"{m['orig'].get('sport')} -> {nat_port}")
            elif spec["kind"] in ("tcp", "udp"):
                checks.check(nat_port != m["orig"].get("sport"),
                             f"lab sanity: {name}'s SNAT port is not the client's port",
                             f"{m['orig'].get('sport')} -> {nat_port}")
            else:
                out(f"nat_port[{name}]", f"{m['orig'].get('sport')} -> {nat_port}")
        if m and spec["kind"] == "ping":
            out(f"nat_icmp_id[{name}]", f"{m['orig'].get('id')} -> {m['reply'].get('id')}")
    # The PORT of ftp_port_before_retr_after is pending: its expectation must be on the Backup
    # (tuple, master and NAT compared through ctdump's view).
    checks.check(len(exp_m) >= 1, f"lab sanity: {master} has the FTP expectation of a pending "
                 "PORT", f"{len(exp_m)} expectation(s)")
    backup_keys = {(json.dumps(x["tuple"], sort_keys=True), json.dumps(x["master"], sort_keys=True),
                    x.get("helper")) for x in exp_b}
    missing = [x for x in exp_m if (json.dumps(x["tuple"], sort_keys=True),
                                    json.dumps(x["master"], sort_keys=True),
                                    x.get("helper")) not in backup_keys]
    checks.check(not missing, f"replica: {backup} holds every expectation of {master} (tuple, "
                 "master, helper)", f"{len(exp_m)} on {master}, {len(exp_b)} on {backup}" +
                 (f"; missing {_tuple_str(missing[0]['tuple'])}" if missing else ""))

    # -- the event --
    roles1 = transitions(lab)
    if roles1 != roles0:
        raise Flapped(f"roles changed before the event: {roles0} -> {roles1} (load average "
                      f"{load_average()}; fwhad starved of CPU?)")
    invalid_before = ct_invalid(lab, backup)
    event_ns = mono_ns()
    if args.event == "crash":
        lab.freeze(master)
        lab.cut_links(master)
        lab.kill9(master)
        lab.log(f"crash: {master} frozen, links cut, killed "
                f"({(mono_ns() - event_ns) / 1e6:.1f} ms)")
    else:
        lab.fwhad_procs[master].signal(signal.SIGTERM)
        lab.log(f"graceful: SIGTERM to {master}'s fwhad")
    try:
        wait_for(lambda: lab.state(backup) == "Master", 15, interval=0.02,
                 what=f"{backup} to become Master")
        out("takeover_ms", f"{(mono_ns() - event_ns) / 1e6:.0f}")
    except LabTimeout as e:
        lab.log(str(e))
    with open(files["post"], "w"):
        pass
    post_done = event_ns + int(POST_S * 1e9)
    while mono_ns() < post_done:
        time.sleep(0.05)
    # The FTP steps after the failover are bounded (~10 s when they fail); wait for them.
    try:
        wait_for(lambda: (_proc_alive(procs["client"]),
                          os.path.exists(paths["client"]["postdone"]))[1], 15,
                 what="ftp steps after the failover")
    except LabTimeout as e:
        lab.log(str(e))
    after_tables = ct_dump(lab, backup)
    out(f"conntrack_invalid_on_{backup}", f"{invalid_before} before the event, "
        f"{ct_invalid(lab, backup)} at the end")
    docs = stop_flows(lab, procs, paths)
    masters = lab.who_is_master()
    out("master_after", ",".join(masters) or "none")
    checks.check(masters == [backup], f"{backup} is the only Master after the {args.event}",
                 f"{masters}")
    st_new = lab.status(backup) or {}
    out("new_master_sync", json.dumps(st_new.get("sync", {}), sort_keys=True))

    # -- marks and zones on the new Master after the failover --
    for name, key, want in (("tcp4_mark", "mark", MARK), ("tcp4_zone", "zone", ZONE)):
        e = find_entry(after_tables, specs[name], est.get(name, {}).get("sport"))
        checks.check(e is not None and e.get(key) == want,
                     f"{backup}'s entry of {name} has {key} {want} after the failover",
                     entry_brief(e))
    e = find_entry(after_tables, specs["tcp4_label"], est.get("tcp4_label", {}).get("sport"))
    checks.check(e is not None and LABEL in e["labels"],
                 f"{backup}'s entry of tcp4_label has label {LABEL} after the failover",
                 entry_brief(e))

    # -- survival --
    by_role = {role: docs[role]["flows"] for role in docs}
    peer_of = {"client": "server", "server": "client"}
    results = {}
    first_stop_ns = min(doc["stop_ns"] for doc in docs.values())
    for name, spec in specs.items():
        rec = by_role[spec["by"]].get(name)
        pv = docs[peer_of[spec["by"]]]["peer_view"]
        ok, detail, facts = analyse_flow(spec, rec, pv, first_stop_ns, event_ns)
        results[name] = ok
        what = f"{name} survives the {args.event} ({', '.join(spec['kinds'])})"
        gap = spec.get("known_gap")
        if "masquerade" in spec["kinds"] and res[name][0] is not None:
            addr = res[name][0]["reply"].get("dst")
            own = [fw for fw in FWS if netlab.ADDR[fw]["wan"] == addr]
            detail += (f"; {master} masqueraded it to {addr}"
                       + (f" = {own[0]}'s own WAN address" if own else ""))
        if gap and not ok:
            checks.known_gap(what, f"{GAP_WHY[gap]}; {detail}")
        else:
            checks.check(ok, what, detail)
            if gap:
                out("known_gap_closed", f"{name} survived although {gap} is listed as a gap")
    def summary(key, value):
        out(key, value)
        checks.summary.append((key, value))
    for kind in KIND_ORDER:
        names = [n for n, s in specs.items() if kind in s["kinds"]]
        gaps = [n for n in names if specs[n].get("known_gap")]
        k = sum(results[n] for n in names)
        note = " (known gap)" if names and len(gaps) == len(names) else (
            f" ({len(gaps)} known-gap flow(s) included)" if gaps else "")
        summary(f"flows_survived_{kind}", f"{k}/{len(names)}{note}")
    counted = [n for n, s in specs.items() if not s.get("known_gap")]
    summary("flows_survived", f"{sum(results[n] for n in counted)}/{len(counted)}")
    summary("known_gaps", len(checks.gaps))


# Capabilities a flow may be marked as missing (coverage_flows.FLOWS `known_gap`): none today.
GAP_WHY: dict[str, str] = {}


# --- main -------------------------------------------------------------------------------------

def one_run(args, checks):
    """One lab, one event; -> None or the lab error (an exception)."""
    lab_error = None
    lab = CoverageLab(conntrack=not args.no_sync, verbose=args.verbose, keep=args.keep,
                      log=(lambda m: print(m, flush=True)) if args.verbose else (lambda m: None))
    try:
        with lab:
            out("run", f"{lab.prefix} {lab.run_dir}")
            try:
                coverage_run(lab, args, checks)
            except (LabError, LabInterrupted) as e:
                lab_error = e
            except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
                traceback.print_exc(file=sys.stdout)
                lab_error = e
            if lab_error:
                out("lab_error", f"{type(lab_error).__name__}: {lab_error}")
            if lab_error or (args.do_assert and checks.failed):
                lab.failed = True
                for fw in FWS:
                    print(f"--- tail of {fw}'s fwhad log ({lab.log_path(fw)}) ---")
                    print(lab.log_tail(fw, 20), end="", flush=True)
    except (LabInterrupted, LabError) as e:
        lab_error = lab_error or e
        out("lab_error", f"{type(e).__name__}: {e}")
    return lab_error


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assert", dest="do_assert", action="store_true",
                    help="exit non-zero when a check fails")
    ap.add_argument("--event", choices=["crash", "graceful"], default="crash")
    ap.add_argument("--no-sync", action="store_true",
                    help="sync.conntrack = false on both nodes (shows the checks can fail)")
    ap.add_argument("--verbose", action="store_true", help="print a timeline")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--retries", type=int, default=1,
                    help="runs repeated when the pair flapped before the event")
    ap.add_argument("--max-seconds", type=int, default=150, help="wall-clock cap")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("skip: the lab needs root (network namespaces)")
        return 77
    netlab.install_signal_handlers()

    def on_alarm(_signum, _frame):
        raise LabInterrupted(f"wall-clock cap of {args.max_seconds} s reached")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.max_seconds)
    t0 = time.monotonic()
    out("scenario", f"coverage ({args.event}{', no sync' if args.no_sync else ''})")
    try:
        for attempt in range(1 + max(0, args.retries)):
            checks, lab_error = Checks(), None
            if attempt:
                out("attempt", f"{attempt + 1} (the previous run was not valid: {flapped})")
            flapped = None
            lab_error = one_run(args, checks)
            if not isinstance(lab_error, Flapped):
                break
            flapped = lab_error
    finally:
        signal.alarm(0)
    lab_error = str(lab_error) if lab_error else None
    if checks.summary:
        print("--- summary ---", flush=True)
        for key, value in checks.summary:
            out(key, value)
    out("run_seconds", f"{time.monotonic() - t0:.1f}")
    if lab_error:
        out("result", f"ERROR ({lab_error})")
        return 2
    if checks.failed:
        out("result", f"FAIL ({len(checks.failed)} check(s)): " + "; ".join(checks.failed))
        return 1 if args.do_assert else 0
    out("result", f"PASS ({len(checks.gaps)} known gap(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
