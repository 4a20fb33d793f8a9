"""keepalived as one firewall of the namespace lab, the peer of fwhad (interop.py).

Why a module of its own: interop.py's phases only need to start keepalived with a priority,
read its VRRP states, crash it or stop it; how keepalived is configured and run is here.

fwhad runs one group over the LAN and the WAN with one VRID; keepalived has one
vrrp_instance per interface, so it gets two (VI_LAN, VI_WAN) with that VRID, joined in a
vrrp_sync_group so that they fail over together, like fwhad's group. VRRPv3, the lab's advert
interval and VIPs (netlab.py). No scripts (notify, track_script) and no strict mode (which
would add firewall rules): the state is read from keepalived's log lines
"(VI_LAN) Entering MASTER STATE".

keepalived runs inside the node's namespace in the foreground (-n), VRRP only (-P), logging
to its console (-l -D, collected in the run directory) and not to syslog (-G); its config
and every pid file it could write (-p -r -c -b) are in the run directory, so it touches
nothing of the host's /etc or /run. `ip netns exec` execs keepalived, so the process the lab
tracks (Lab.spawn) is keepalived's parent; the parent forks the VRRP child, whose PID comes
from its pid file. Teardown is netlab's: the parent is killed by PID, the child with every
other process left in the namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import netlab
from netlab import LabError, wait_for

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"
INSTANCES = {"lan": "VI_LAN", "wan": "VI_WAN"}   # keepalived instance per lab interface

CONFIG = """\
# Written by tests/lab/keepalived.py for one lab run: keepalived on {node}, fwhad's peer.
global_defs {{
    router_id {node}
    vrrp_version 3
}}

# fwhad's group spans both interfaces: the two instances fail over together.
vrrp_sync_group {group} {{
    group {{
        VI_LAN
        VI_WAN
    }}
{group_extra}}}

vrrp_instance VI_LAN {{
    state BACKUP
    interface {lan_if}
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert_s}
{instance_extra}    virtual_ipaddress {{
        {lan_vip}/24
    }}
}}

vrrp_instance VI_WAN {{
    state BACKUP
    interface {wan_if}
    virtual_router_id {vrid}
    priority {priority}
    advert_int {advert_s}
{instance_extra}    virtual_ipaddress {{
        {wan_vip}/24
    }}
}}
"""

# keepalived's complaints about a received advert (its vrrp.c, 2.2.x): any of them means
# that it did not take fwhad's advert as fwhad meant it.
ADVERT_ERRORS = re.compile(
    r"Invalid VRRPv\d checksum|invalid TTL|TTL/HL .* not in range|wrong version|"
    r"unexpected ip number count|not present in MASTER advert|advertisement interval mismatch|"
    r"bad advert|invalid ip number count", re.I)
STATE_LINE = re.compile(r"\((VI_\w+)\) Entering (\w+) STATE")
PRIORITY_ZERO = re.compile(r"\((VI_\w+)\) Backup received priority 0 advertisement")


def installed():
    return os.access(KEEPALIVED, os.X_OK)


def version():
    cp = netlab.run([KEEPALIVED, "--version"], check=False, timeout=10)
    text = (cp.stdout or "") + (cp.stderr or "")
    m = re.search(r"Keepalived v(\S+)", text)
    return m.group(1) if m else "unknown"


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else int(fields[1])


class Keepalived:
    """One keepalived run on a lab node; `tag` keeps each run's files apart.

    For the failover benchmark (tests/bench/failover): advert_s overrides the lab's interval,
    nopreempt adds `nopreempt` to both instances (as fwhad's lab config has no preemption),
    notify is the command of the documented primary-backup set-up (conntrack-tools'
    doc/sync/keepalived.conf: notify_master/backup/fault "SCRIPT primary|backup|fault" on the
    sync group), log_path lets several runs on one node append to one log."""

    def __init__(self, lab, node, priority, tag, *, advert_s=None, nopreempt=False,
                 notify=None, log_path=None):
        self.lab, self.node, self.priority, self.tag = lab, node, priority, tag
        self.advert_s = advert_s
        self.nopreempt = nopreempt
        self.notify = notify
        self.name = f"keepalived-{node}-{tag}"
        self.conf = lab.path(f"{self.name}.conf")
        self.log_path = log_path or lab.path(f"{self.name}.log")
        self.pid_files = {opt: lab.path(f"{self.name}-{kind}.pid")
                          for opt, kind in (("-p", "main"), ("-r", "vrrp"), ("-c", "checkers"),
                                            ("-b", "bfd"))}
        self.proc = None

    def write_config(self):
        f = self.lab.ifname
        advert_s = self.advert_s if self.advert_s is not None else netlab.ADVERT_INTERVAL_CS / 100
        group_extra = "".join(f'    notify_{state} "{self.notify} {arg}"\n' for state, arg in
                              (("master", "primary"), ("backup", "backup"), ("fault", "fault"))
                              ) if self.notify else ""
        text = CONFIG.format(
            node=self.node, group=netlab.GROUP, vrid=netlab.VRID, priority=self.priority,
            advert_s=f"{advert_s:g}", group_extra=group_extra,
            instance_extra="    nopreempt\n" if self.nopreempt else "",
            lan_if=f[(self.node, "lan")], wan_if=f[(self.node, "wan")],
            lan_vip=netlab.LAN_VIP, wan_vip=netlab.WAN_VIP)
        with open(self.conf, "w") as fh:
            fh.write(text)

    def start(self):
        self.write_config()
        self.log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        argv = [KEEPALIVED, "-n", "-P", "-l", "-D", "-G", "-f", self.conf]
        for opt, path in self.pid_files.items():
            argv += [opt, path]
        self.proc = self.lab.spawn(self.node, argv, self.name,
                                   log_name=os.path.basename(self.log_path))
        self.lab.log(f"{self.node}: keepalived started (pid {self.proc.pid}, "
                     f"priority {self.priority})")
        wait_for(lambda: self._alive_or_raise() and self.vrrp_pid(), 10, interval=0.05,
                 what="keepalived's VRRP child")
        return self.proc

    def _alive_or_raise(self):
        if not self.proc.running():
            raise LabError(f"keepalived on {self.node} exited early with code "
                           f"{self.proc.popen.returncode}; log {self.log_path}")
        return True

    def vrrp_pid(self):
        """The VRRP child's PID, only while it is a child of our keepalived (the pid file is
        ours, but a stale number must never be signalled)."""
        try:
            with open(self.pid_files["-r"]) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid > 0 and _ppid(pid) == self.proc.pid else None

    def running(self):
        return self.proc is not None and self.proc.running()

    def log_text(self):
        """This run's part of the log."""
        try:
            with open(self.log_path, errors="replace") as fh:
                fh.seek(getattr(self, "log_offset", 0))
                return fh.read()
        except OSError:
            return ""

    def transitions(self):
        """[(instance, STATE)] in log order."""
        return STATE_LINE.findall(self.log_text())

    def states(self):
        """{"VI_LAN": "MASTER", ...}: each instance's last state, from its log."""
        return dict(self.transitions())

    def all_in(self, state):
        st = self.states()
        return all(st.get(i) == state for i in INSTANCES.values())

    def advert_errors(self):
        return [line for line in self.log_text().splitlines() if ADVERT_ERRORS.search(line)]

    def stop(self, timeout=10.0):
        """SIGTERM to keepalived (it sends priority-0 adverts and removes its VIPs); its exit
        code, or None if it did not exit within timeout."""
        self.proc.signal(signal.SIGTERM)
        try:
            return self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def crash(self):
        """No goodbye: both processes stopped (SIGSTOP) at once, then killed (SIGKILL), child
        first, so neither the parent's respawn nor the child's shutdown sends anything.
        Returns the monotonic ns of the stop."""
        child = self.vrrp_pid()
        event_ns = netlab.mono_ns()
        self.proc.signal(signal.SIGSTOP)
        if child:
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                try:
                    os.kill(child, sig)
                except ProcessLookupError:
                    pass
        self.proc.signal(signal.SIGKILL)
        try:
            self.proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise LabError(f"keepalived pid {self.proc.pid} survived SIGKILL") from None
        if child:
            deadline = time.monotonic() + 5
            while _ppid(child) is not None:     # gone or a zombie waiting for init
                if time.monotonic() > deadline:
                    raise LabError(f"keepalived VRRP child {child} survived SIGKILL")
                time.sleep(0.01)
        return event_ns
