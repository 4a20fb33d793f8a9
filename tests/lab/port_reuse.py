#!/usr/bin/env python3
"""Port-reuse lab test: a client port reused for a new flow, after the old flow ended on the
Master while the Backup could not hear it, gets the new flow's NAT binding on the Backup, and
the new flow survives a failover.

    port_reuse.py [--assert] [--sessions N] [--verbose] [--keep] [--max-seconds S]

Found by the failover bench (freeze at 250k, docs/performance.md): the lab's SNAT is
fully-random, so a new flow on a reused client port gets another NAT port than the old one;
a Backup whose copy of the old flow lingered updated that copy instead of replacing it (an
update cannot change a NAT binding), and after the next failover the server answered the old
binding's port with RST.

Steps: fw1 Master. Client "a" opens N sessions from fixed ports. fw1's fwhad is frozen
(SIGSTOP): fw2 takes over. Client "a" stops with RST, and fw2's entries of its flows are
deleted (in the bench they expired): the destroy events reach fw1 while it still believes it
is Master. fw1 is thawed and steps down. Client "b" opens N sessions from the same ports
through fw2. Then fw2 crashes (frozen, links cut, killed) and fw1 takes over.

Asserts: fw2 took over, fw1 stepped down; fw1's copy of every "b" flow has fw2's NAT binding
before the crash; fw1 takes over after it; every "b" session survives.

Output: `key: value` lines and `check:` lines (labrun.py has the exit status).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labrun  # noqa: E402
import netlab  # noqa: E402
from netlab import mono_ns, wait_for  # noqa: E402
from scenario import (analyse_sessions, crash_node, out, snat_bindings,  # noqa: E402
                      start_client, start_pair, start_traffic, stop_traffic)

PORT0 = 41000          # client "a" and "b" connect from PORT0 + i
DURATION_S = 120       # every client's own cap; the test stops them long before
AFTER_CRASH_S = 3.0
REPLICATED_S = 1.0     # for the "b" flows to reach fw1


def nat_bindings(lab, node, ports):
    """client port -> NAT port of node's entries for the flows from `ports`."""
    return {c: n for c, n in snat_bindings(lab, node).items() if c in ports}


def port_reuse_run(lab, args, checks):
    master, backup = start_pair(lab)
    ports = set(range(PORT0, PORT0 + args.sessions))
    server, base, _ = start_traffic(lab, 1, DURATION_S)
    reuse = ("--local-port-base", str(PORT0))
    a, a_ready = start_client(lab, "a", args.sessions, DURATION_S, *reuse, "--close-with-reset")
    checks.check(a_ready["open"] == args.sessions, "client a's sessions are up",
                 f"{a_ready['open']}/{args.sessions}")
    time.sleep(REPLICATED_S)
    old_bindings = nat_bindings(lab, backup, ports)

    lab.freeze(master)
    wait_for(lambda: lab.state(backup) == "Master", 10, interval=0.02,
             what=f"{backup} to take over from the frozen {master}")
    lab.log(f"{backup} took over; {master} frozen")
    # The sessions end with RST, through the new Master.
    netlab.stop_and_read_json(a, lab.path("client-a.json"), timeout=15)
    for p in sorted(ports):
        lab.nsexec(backup, ["conntrack", "-D", "-p", "tcp", "--sport", str(p), "--dport", "9001"],
                   check=False, timeout=10)
    left = nat_bindings(lab, backup, ports)
    checks.check(not left, f"{backup} holds no entry of client a's flows any more",
                 f"{len(left)} left")
    time.sleep(0.5)  # the destroy events go out to the frozen node
    lab.thaw(master)
    wait_for(lambda: lab.state(master) == "Backup", 10, interval=0.02,
             what=f"{master} to step down after the thaw")
    lab.log(f"{master} thawed and stepped down")

    b, b_ready = start_client(lab, "b", args.sessions, DURATION_S, *reuse)
    checks.check(b_ready["open"] == args.sessions, "client b's sessions are up (same ports)",
                 f"{b_ready['open']}/{args.sessions}")
    time.sleep(REPLICATED_S)
    on_master = nat_bindings(lab, backup, ports)
    on_backup = nat_bindings(lab, master, ports)
    rebound = sum(1 for p, n in on_master.items() if old_bindings.get(p) not in (None, n))
    out("client_b_flows_with_a_new_nat_port", f"{rebound}/{len(on_master)}")
    stale = sorted(p for p in on_master if on_backup.get(p) != on_master[p])
    out("backup_copies_with_another_binding", f"{len(stale)}/{len(on_master)}")
    if stale:
        out("bindings_client_port_a_master_backup",
            " ".join(f"{p}:{old_bindings.get(p)}/{on_master[p]}/{on_backup.get(p)}"
                     for p in stale[:8]))
    checks.check(len(on_master) == args.sessions and not stale,
                 f"{master}'s copies carry {backup}'s NAT binding for every client b flow",
                 f"{len(on_master)} flows on {backup}, {len(stale)} differ on {master}"
                 + (f" (ports {stale[:5]})" if stale else ""))

    event_ns = crash_node(lab, backup)
    wait_for(lambda: lab.state(master) == "Master", 10, interval=0.02,
             what=f"{master} to take over after {backup}'s crash")
    time.sleep(AFTER_CRASH_S)
    b_doc = netlab.stop_and_read_json(b, lab.path("client-b.json"), timeout=15)
    stop_traffic(lab, server, base, {"start_ns": event_ns, "end_ns": mono_ns()})
    kept, total, reasons, _ = analyse_sessions(b_doc, event_ns)
    out("client_b_sessions_survived", f"{kept}/{total}")
    out("client_b_sessions_lost_reasons",
        ", ".join(f"{r}={n}" for r, n in reasons.most_common()) or "none")
    checks.check(total == args.sessions and kept == total,
                 "every client b session survived the failover", f"{kept}/{total}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    labrun.add_common_args(ap, max_seconds=150)
    ap.add_argument("--sessions", type=int, default=20)
    args = ap.parse_args(argv)
    return labrun.run(args, "port_reuse", port_reuse_run)


if __name__ == "__main__":
    sys.exit(main())
