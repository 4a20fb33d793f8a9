"""Network-namespace lab for fwha: two firewalls, a client, a server and a switch.

Why: fwhad's election, VIP moves and conntrack replication only mean something against a
real kernel. This module builds the topology of DESIGN.md ("Lab topology") out of network
namespaces, runs one real fwhad per firewall and gives the scenarios (scenario.py) the few
verbs they need: start/stop daemons, freeze/cut/kill a node, read `fwhactl status --json`.

    client 192.0.2.10/24 (default gw = LAN VIP 192.0.2.1)
       |                                LAN bridge (in namespace "sw")
    fw1 192.0.2.2/24  ------------------  fw2 192.0.2.3/24
    fw1 203.0.113.1/24 == sync veth ==   fw2 203.0.113.2/24
    fw1 198.51.100.2/24 ----------------  fw2 198.51.100.3/24
       |                                WAN bridge (in namespace "sw")
    server 198.51.100.10/24 (no default route; WAN VIP 198.51.100.1 is on-link)

Firewall ruleset (identical on both firewalls, see RULESET): forward policy drop, established
and related accepted, invalid dropped, new flows only LAN -> WAN, new TCP only with a bare
SYN, and SNAT to the WAN VIP with randomised source ports. The last two are what make the
lab able to fail: with port-preserving SNAT and the kernel's mid-stream pickup
(nf_conntrack_tcp_loose=1, the default) a TCP session would survive a failover with no
replication at all (KERNEL-FACTS.md, "Moving a TCP session"). We use `fully-random`:
`random` also gave unrelated ports per connection on this kernel (6.18, checked with
`conntrack -L`), but it derives them from a keyed hash whose inputs differ between kernel
versions, and both firewall namespaces share one kernel and so one key; `fully-random`
draws every port independently on any kernel. scenario.py checks on every run that the NAT
ports really differ from the client's ports.

The SNAT rule matches `iifname LAN oifname WAN`, not only `oifname WAN`: a bare
`oifname WAN snat` also rewrites the firewall's own VRRP adverts on the WAN (source becomes
the VIP, so the peer rejects them as coming from a stranger) and, once the peer's adverts
with that source are in the conntrack table, the NAT clash makes sendto() fail with EPERM:
the pair splits brain. Only forwarded LAN traffic is meant to be NATed.

IPv6 (Lab(ipv6=True)): the same plan in fd00::/8, LAN fd00:1::/64 (VIP fd00:1::1, fw1 ::2,
fw2 ::3, client ::10 with default route via the VIP), WAN fd00:2::/64 (VIP fd00:2::1, fw1 ::2,
fw2 ::3, server ::10), the IPv6 VIPs in the group, IPv6 forwarding on the firewalls and SNAT
of forwarded LAN traffic to the WAN VIP6 (fully-random) as for IPv4. Addresses are added with
`nodad`: nothing else on these links could hold them. With lan_adverts="ipv6" as well, the
adverts on the LAN are IPv6 (peer_address = the peer's link-local address): the firewalls'
LAN links get deterministic link-local addresses, fe80::2 (fw1) and fe80::3 (fw2), instead of
the kernel's EUI-64 ones (addrgenmode none, the generated one flushed), so logs and configs
are readable and fwhad cannot pick another link-local address.

Sysctls set by the lab (everything else keeps the new-namespace defaults):
    fw1, fw2: net.ipv4.ip_forward = 1      (a new namespace starts with 0)
              net.ipv6.conf.all.forwarding = 1   (only with ipv6=True)
Nothing else is changed: rp_filter, arp_*, nf_conntrack_tcp_loose (1) and
nf_conntrack_tcp_be_liberal (0) stay at their defaults, unless a scenario asks for more with
Lab(sysctls=...) (replication.py sets the UDP conntrack timeouts of the firewalls, printed as
its `config_*` lines); Lab(sync_options=...) likewise adds keys to a node's [sync] section,
Lab(group_options=...) to its [group] section.
Bridges are created with stp_state 0 (ports forward at once) and mcast_snooping 0 (VRRP
multicast is flooded).

Hard rules this module keeps: nothing is added to the root namespace (veths are created
directly inside their namespaces), every namespace/link/bridge name carries a per-run random
prefix ('fh' + 5 hex digits), only documentation prefixes are used, every wait is bounded,
and teardown (processes killed by PID, then namespaces deleted) runs on every exit path:
context manager, atexit, and SIGTERM/SIGINT/SIGHUP converted into an exception. A run whose
orchestrator was SIGKILLed is cleaned up by the next Lab (see cleanup_stale()).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Short on purpose: control sockets live here and a UNIX socket path has at most 107 bytes.
RUN_BASE = os.environ.get("FWHA_LAB_TMP", "/tmp")
RUN_DIR_PREFIX = "fwha-lab-"

NODES = ("client", "fw1", "fw2", "server", "sw")
FWS = ("fw1", "fw2")

# Addresses (documentation prefixes only).
CLIENT_IP = "192.0.2.10"
SERVER_IP = "198.51.100.10"
LAN_VIP = "192.0.2.1"
WAN_VIP = "198.51.100.1"
ADDR = {
    "fw1": {"lan": "192.0.2.2", "wan": "198.51.100.2", "sync": "203.0.113.1"},
    "fw2": {"lan": "192.0.2.3", "wan": "198.51.100.3", "sync": "203.0.113.2"},
}
# IPv6 (Lab(ipv6=True)); the same numbers as coverage.py's.
CLIENT6 = "fd00:1::10"
SERVER6 = "fd00:2::10"
LAN_VIP6 = "fd00:1::1"
WAN_VIP6 = "fd00:2::1"
ADDR6 = {
    "fw1": {"lan": "fd00:1::2", "wan": "fd00:2::2", "lan_ll": "fe80::2"},
    "fw2": {"lan": "fd00:1::3", "wan": "fd00:2::3", "lan_ll": "fe80::3"},
}
PRIORITY = {"fw1": 150, "fw2": 100}
SYNC_PORT = 7788
VRID = 51
# With group.virtual_mac, traffic to the LAN VIP's MAC arrives on this link (the group's first
# interface is the LAN one): the ruleset lets it in like the LAN interface itself.
LAN_VMAC_LINK = f"vmac{VRID}-0"
LAN_VMAC = f"00:00:5e:00:01:{VRID:02x}"
GROUP = "gw"
ADVERT_INTERVAL_CS = 10

SYSCTLS = {
    "fw1": {"net.ipv4.ip_forward": "1"},
    "fw2": {"net.ipv4.ip_forward": "1"},
}

RULESET = """\
table inet fwha_lab {{
    chain input {{
        type filter hook input priority 0; policy accept;
    }}
    chain forward {{
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        ct state invalid drop
        iifname {{ "{lan}", "{lan_vmac}" }} oifname "{wan}" ct state new tcp flags & (fin|syn|rst|ack) == syn accept
        iifname {{ "{lan}", "{lan_vmac}" }} oifname "{wan}" ct state new meta l4proto {{ udp, icmp }} accept
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        iifname {{ "{lan}", "{lan_vmac}" }} oifname "{wan}" snat ip to {wan_vip} fully-random
{snat6}    }}
}}
"""

CONFIG = """\
# Written by tests/lab/netlab.py for one lab run.
[node]
name = "{node}"
control_socket = "{socket}"
{node_extra}
[peer]
name = "{peer}"

[sync]
local_address = "{sync_local}"
peer_address = "{sync_peer}"
port = {sync_port}
conntrack = {conntrack}
{sync_extra}
[group]
name = "{group}"
vrid = {vrid}
priority = {priority}
{advert_line}{group_extra}
[[group.interface]]
name = "{lan_if}"
peer_address = "{lan_peer}"
vips = ["{lan_vip}/24"{lan_vip6}]

[[group.interface]]
name = "{wan_if}"
peer_address = "{wan_peer}"
vips = ["{wan_vip}/24"{wan_vip6}]
"""


class LabError(Exception):
    """Something in the lab itself went wrong (not an fwhad assertion)."""


class LabTimeout(LabError):
    """A bounded wait ran out."""


class LabInterrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP/SIGALRM turned into an exception so that teardown runs."""


def mono_ns() -> int:
    return time.monotonic_ns()


def run(argv, *, check=True, timeout=30.0, input=None, capture=True):
    """Run a command with a bound; return CompletedProcess (text mode)."""
    try:
        cp = subprocess.run(argv, input=input, text=True, timeout=timeout,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    except subprocess.TimeoutExpired as e:
        raise LabTimeout(f"command timed out after {timeout}s: {' '.join(argv)}") from e
    if check and cp.returncode != 0:
        raise LabError(f"command failed ({cp.returncode}): {' '.join(argv)}\n"
                       f"{(cp.stderr or '').strip()}")
    return cp


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until it returns something truthy; return that. Bounded by timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (LabInterrupted, LabError):
            raise   # the lab is broken (e.g. a daemon died): no point in waiting on
        except Exception as e:  # noqa: BLE001 - transient; reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise LabTimeout(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


# --- global safety net ------------------------------------------------------------------------

_active_labs: list["Lab"] = []
_handlers_installed = False


def _signal_to_exception(signum, _frame):
    raise LabInterrupted(f"signal {signal.Signals(signum).name}")


def install_signal_handlers():
    """Turn SIGTERM/SIGINT/SIGHUP into LabInterrupted so every `finally` runs."""
    global _handlers_installed
    if _handlers_installed:
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _signal_to_exception)
    _handlers_installed = True


@atexit.register
def _teardown_all():
    for lab in list(_active_labs):
        try:
            lab.teardown()
        except Exception as e:  # noqa: BLE001
            print(f"netlab: teardown at exit failed: {e}", file=sys.stderr)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/run/netns", name))


def _kill_netns_pids(ns: str):
    """SIGKILL, by PID, every process still inside one of our namespaces."""
    if not _netns_exists(ns):
        return
    cp = run(["ip", "netns", "pids", ns], check=False, timeout=10)
    for tok in (cp.stdout or "").split():
        if tok.isdigit() and int(tok) != os.getpid():
            try:
                os.kill(int(tok), signal.SIGKILL)
            except ProcessLookupError:
                pass


def cleanup_stale(verbose=False):
    """Remove namespaces left by lab runs whose orchestrator died without teardown.

    Only names recorded in a run's lab.json are touched, and only when the recorded owner
    PID no longer exists.
    """
    try:
        entries = os.listdir(RUN_BASE)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(RUN_DIR_PREFIX):
            continue
        meta_path = os.path.join(RUN_BASE, entry, "lab.json")
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        if meta.get("torn_down") or _pid_alive(int(meta.get("owner_pid", 0)) or 1):
            continue
        for ns in meta.get("namespaces", []):
            if not re.fullmatch(r"fh[0-9a-f]{5}-\w+", ns):
                continue
            if _netns_exists(ns):
                if verbose:
                    print(f"netlab: removing stale namespace {ns}", file=sys.stderr)
                _kill_netns_pids(ns)
                run(["ip", "netns", "del", ns], check=False, timeout=10)
        meta["torn_down"] = True
        try:
            with open(meta_path, "w") as f:
                json.dump(meta, f)
        except OSError:
            pass


# --- the lab ----------------------------------------------------------------------------------

class LabProcess:
    def __init__(self, name, node, popen, log_path, argv):
        self.name = name
        self.node = node
        self.popen = popen
        self.log_path = log_path
        self.argv = argv
        self.frozen = False
        self.started_ns = mono_ns()

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                pass


class Lab:
    """The topology plus the processes started in it. Use as a context manager."""

    def __init__(self, *, build_dir=None, conntrack=True, verbose=False, keep=False,
                 log=None, sync_options=None, sysctls=None, group_options=None, ipv6=False,
                 node_options=None,
                 lan_adverts="ipv4", advert_interval_cs=ADVERT_INTERVAL_CS):
        """sync_options: {fw: {key: value}} extra keys of a node's [sync] section (e.g.
        reconcile_interval_s, event_buffer_kib); values are written as TOML (str quoted).
        group_options: the same for [group] (e.g. preempt = True); node_options for [node].
        sysctls: {node: {key: value}} set in that namespace on top of SYSCTLS.
        ipv6: add the IPv6 plan (module docstring). lan_adverts: "ipv4", or "ipv6" (needs
        ipv6=True): the LAN's peer_address is the peer's link-local address.
        advert_interval_cs: written into [group]; None leaves the key out, so fwhad runs at
        its default interval (the failover benchmark measures fwha at its defaults)."""
        if lan_adverts not in ("ipv4", "ipv6") or (lan_adverts == "ipv6" and not ipv6):
            raise LabError(f"lan_adverts={lan_adverts!r} needs ipv6=True, or is unknown")
        self.ipv6 = ipv6
        self.lan_adverts = lan_adverts
        self.build_dir = os.path.abspath(
            build_dir or os.environ.get("FWHA_BUILD_DIR") or "/work/main/build")
        self.fwhad = os.path.join(self.build_dir, "src", "fwhad")
        self.fwhactl = os.path.join(self.build_dir, "src", "fwhactl")
        self.conntrack = conntrack
        self.advert_interval_cs = advert_interval_cs
        self.sync_options = {fw: dict((sync_options or {}).get(fw, {})) for fw in FWS}
        self.node_options = {fw: dict((node_options or {}).get(fw, {})) for fw in FWS}
        self.group_options = {fw: {"preempt": False, **(group_options or {}).get(fw, {})}
                              for fw in FWS}
        self.sysctls = {n: dict(v) for n, v in SYSCTLS.items()}
        if ipv6:
            for fw in FWS:
                self.sysctls[fw]["net.ipv6.conf.all.forwarding"] = "1"
        for node, values in (sysctls or {}).items():
            self.sysctls.setdefault(node, {}).update(values)
        self.verbose = verbose
        self.keep = keep
        self.failed = False
        self._log = log or (lambda msg: print(msg, file=sys.stderr) if verbose else None)
        self.prefix = "fh" + secrets.token_hex(3)[:5]
        self.ns = {n: f"{self.prefix}-{n}" for n in NODES}
        p = self.prefix
        # Interface names: prefix (7) + at most 4 chars <= 15.
        self.ifname = {
            ("client", "lan"): p + "cl", ("sw", "client"): p + "scl",
            ("fw1", "lan"): p + "1l", ("sw", "fw1-lan"): p + "s1l",
            ("fw2", "lan"): p + "2l", ("sw", "fw2-lan"): p + "s2l",
            ("fw1", "wan"): p + "1w", ("sw", "fw1-wan"): p + "s1w",
            ("fw2", "wan"): p + "2w", ("sw", "fw2-wan"): p + "s2w",
            ("fw1", "sync"): p + "1s", ("fw2", "sync"): p + "2s",
            ("server", "wan"): p + "sv", ("sw", "server"): p + "ssv",
            ("sw", "br-lan"): p + "brl", ("sw", "br-wan"): p + "brw",
        }
        self.run_dir = None
        self.procs: list[LabProcess] = []
        self.fwhad_procs: dict[str, LabProcess] = {}
        self.created_ns: list[str] = []
        self.t0_ns = mono_ns()
        self.t0_wall = time.time()
        self._torn_down = False

    # -- small helpers --------------------------------------------------------------------------
    def log(self, msg):
        self._log(f"[+{(mono_ns() - self.t0_ns) / 1e9:8.3f}s] {msg}")

    def rel_s(self, t_ns):
        return (t_ns - self.t0_ns) / 1e9

    def nsexec(self, node, argv, **kw):
        """Run a command inside a node's namespace (bounded, see run())."""
        return run(["ip", "netns", "exec", self.ns[node], *argv], **kw)

    def ip(self, node, *args, **kw):
        return run(["ip", "-n", self.ns[node], *args], **kw)

    def path(self, name):
        return os.path.join(self.run_dir, name)

    def socket_path(self, node):
        return self.path(f"{node}.sock")

    def config_path(self, node):
        return self.path(f"{node}.toml")

    def log_path(self, node):
        return self.path(f"{node}.log")

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self):
        install_signal_handlers()
        _active_labs.append(self)
        try:
            self.setup()
        except BaseException:
            self.failed = True
            self.teardown()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.failed = True
        self.teardown()
        return False

    def _write_meta(self, torn_down=False):
        meta = {"owner_pid": os.getpid(), "prefix": self.prefix,
                "namespaces": [self.ns[n] for n in NODES], "torn_down": torn_down,
                "created": self.t0_wall}
        with open(self.path("lab.json"), "w") as f:
            json.dump(meta, f)

    def setup(self):
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        cleanup_stale(self.verbose)
        self.run_dir = tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{self.prefix}-", dir=RUN_BASE)
        self._write_meta()
        self.log(f"run {self.prefix}: dir {self.run_dir}")
        for n in NODES:
            run(["ip", "netns", "add", self.ns[n]])
            self.created_ns.append(self.ns[n])
            self.ip(n, "link", "set", "lo", "up")
        self._build_links()
        self._addresses()
        for node, values in self.sysctls.items():
            for key, value in values.items():
                self.nsexec(node, ["sysctl", "-q", "-w", f"{key}={value}"])
        for fw in FWS:
            self.load_ruleset(fw)
            self.write_config(fw)
        self.log("topology up: client, fw1, fw2, server, sw (LAN/WAN bridges)")

    def _veth(self, a_node, a_name, b_node, b_name):
        run(["ip", "link", "add", a_name, "netns", self.ns[a_node], "type", "veth",
             "peer", "name", b_name, "netns", self.ns[b_node]])

    def _build_links(self):
        f = self.ifname
        for br in ("br-lan", "br-wan"):
            self.ip("sw", "link", "add", f[("sw", br)], "type", "bridge",
                    "stp_state", "0", "mcast_snooping", "0")
            self.ip("sw", "link", "set", f[("sw", br)], "up")
        ports = [
            ("client", ("client", "lan"), ("sw", "client"), "br-lan"),
            ("fw1", ("fw1", "lan"), ("sw", "fw1-lan"), "br-lan"),
            ("fw2", ("fw2", "lan"), ("sw", "fw2-lan"), "br-lan"),
            ("fw1", ("fw1", "wan"), ("sw", "fw1-wan"), "br-wan"),
            ("fw2", ("fw2", "wan"), ("sw", "fw2-wan"), "br-wan"),
            ("server", ("server", "wan"), ("sw", "server"), "br-wan"),
        ]
        for node, near, far, br in ports:
            self._veth(node, f[near], "sw", f[far])
            self.ip("sw", "link", "set", f[far], "master", f[("sw", br)])
            self.ip("sw", "link", "set", f[far], "up")
            self.ip(node, "link", "set", f[near], "up")
        self._veth("fw1", f[("fw1", "sync")], "fw2", f[("fw2", "sync")])
        for fw in FWS:
            self.ip(fw, "link", "set", f[(fw, "sync")], "up")

    def _addresses(self):
        f = self.ifname
        self.ip("client", "addr", "add", f"{CLIENT_IP}/24", "dev", f[("client", "lan")])
        self.ip("client", "route", "add", "default", "via", LAN_VIP)
        self.ip("server", "addr", "add", f"{SERVER_IP}/24", "dev", f[("server", "wan")])
        for fw in FWS:
            for link in ("lan", "wan", "sync"):
                self.ip(fw, "addr", "add", f"{ADDR[fw][link]}/24", "dev", f[(fw, link)])
        if self.ipv6:
            self._addresses6()

    def _addresses6(self):
        f = self.ifname
        self.ip("client", "-6", "addr", "add", f"{CLIENT6}/64", "dev", f[("client", "lan")],
                "nodad")
        self.ip("client", "-6", "route", "add", "default", "via", LAN_VIP6)
        self.ip("server", "-6", "addr", "add", f"{SERVER6}/64", "dev", f[("server", "wan")],
                "nodad")
        for fw in FWS:
            for link in ("lan", "wan"):
                self.ip(fw, "-6", "addr", "add", f"{ADDR6[fw][link]}/64", "dev", f[(fw, link)],
                        "nodad")
            if self.lan_adverts == "ipv6":
                lan = f[(fw, "lan")]
                self.ip(fw, "link", "set", "dev", lan, "addrgenmode", "none")
                self.ip(fw, "-6", "addr", "flush", "dev", lan, "scope", "link")
                self.ip(fw, "-6", "addr", "add", f"{ADDR6[fw]['lan_ll']}/64", "dev", lan,
                        "nodad")

    def load_ruleset(self, fw):
        snat6 = (f'        iifname {{ "{self.ifname[(fw, "lan")]}", "{LAN_VMAC_LINK}" }} oifname '
                 f'"{self.ifname[(fw, "wan")]}" snat ip6 to {WAN_VIP6} fully-random\n'
                 if self.ipv6 else "")
        text = RULESET.format(lan=self.ifname[(fw, "lan")], lan_vmac=LAN_VMAC_LINK,
                              wan=self.ifname[(fw, "wan")],
                              wan_vip=WAN_VIP, snat6=snat6)
        path = self.path(f"{fw}.nft")
        with open(path, "w") as fh:
            fh.write(text)
        self.nsexec(fw, ["nft", "-f", path])

    def config_text(self, fw, **overrides):
        peer = "fw2" if fw == "fw1" else "fw1"
        values = dict(
            node=fw, peer=peer, socket=self.socket_path(fw),
            sync_local=ADDR[fw]["sync"], sync_peer=ADDR[peer]["sync"], sync_port=SYNC_PORT,
            conntrack="true" if self.conntrack else "false",
            group=GROUP, vrid=VRID, priority=PRIORITY[fw],
            advert_line=(lambda cs: "" if cs is None else f"advert_interval_cs = {cs}\n")(
                self.group_options.get(fw, {}).get("advert_interval_cs",
                                                   self.advert_interval_cs)),
            lan_if=self.ifname[(fw, "lan")], lan_vip=LAN_VIP,
            lan_peer=(ADDR6[peer]["lan_ll"] if self.lan_adverts == "ipv6"
                      else ADDR[peer]["lan"]),
            wan_if=self.ifname[(fw, "wan")], wan_peer=ADDR[peer]["wan"], wan_vip=WAN_VIP,
            lan_vip6=f', "{LAN_VIP6}/64"' if self.ipv6 else "",
            wan_vip6=f', "{WAN_VIP6}/64"' if self.ipv6 else "",
            sync_extra="".join(f"{k} = {_toml_value(v)}\n"
                               for k, v in self.sync_options.get(fw, {}).items()),
            node_extra="".join(f"{k} = {_toml_value(v)}\n"
                               for k, v in self.node_options.get(fw, {}).items()),
            group_extra="".join(f"{k} = {_toml_value(v)}\n"
                                for k, v in self.group_options.get(fw, {}).items()
                                if k != "advert_interval_cs"))
        values.update(overrides)
        return CONFIG.format(**values)

    def write_config(self, fw, path=None, text=None):
        path = path or self.config_path(fw)
        with open(path, "w") as fh:
            fh.write(text if text is not None else self.config_text(fw))
        return path

    def teardown(self):
        if self._torn_down:
            return
        self._torn_down = True
        # A second Ctrl-C or the wall-clock alarm must not cut the teardown short.
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            self._teardown()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _teardown(self):
        # 1. Processes, by PID (SIGKILL also ends SIGSTOPped ones).
        for p in self.procs:
            p.signal(signal.SIGKILL)
        for p in self.procs:
            try:
                p.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"netlab: pid {p.pid} ({p.name}) did not die", file=sys.stderr)
        # 2. Anything else still inside our namespaces (e.g. children of a daemon).
        for ns in self.created_ns:
            try:
                _kill_netns_pids(ns)
            except LabError as e:
                print(f"netlab: {e}", file=sys.stderr)
        # 3. Namespaces (deleting sw removes the bridges and the veth peers with it).
        for ns in reversed(self.created_ns):
            try:
                run(["ip", "netns", "del", ns], check=False, timeout=15)
            except LabError as e:
                print(f"netlab: {e}", file=sys.stderr)
        left = [ns for ns in self.created_ns if _netns_exists(ns)]
        if left:
            print(f"netlab: namespaces left behind: {left}", file=sys.stderr)
        if self in _active_labs:
            _active_labs.remove(self)
        if self.run_dir and os.path.isdir(self.run_dir):
            try:
                self._write_meta(torn_down=not left)
            except OSError:
                pass
            if self.keep or self.failed:
                print(f"netlab: run directory kept: {self.run_dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        self.log("teardown done")

    # -- processes ------------------------------------------------------------------------------
    def spawn(self, node, argv, name, *, log_name=None, stdout=None):
        """Start argv inside node's namespace; stderr (and stdout unless given) to a log file.

        `ip netns exec` execs the command, so Popen.pid is the process itself.
        """
        log_path = self.path(log_name or f"{name}.log")
        logf = open(log_path, "ab")
        try:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[node], *argv],
                stdin=subprocess.DEVNULL, stdout=stdout if stdout is not None else logf,
                stderr=logf, start_new_session=True)
        finally:
            logf.close()
        proc = LabProcess(name, node, popen, log_path, argv)
        self.procs.append(proc)
        return proc

    def node_procs(self, node):
        return [p for p in self.procs if p.node == node]

    def ct_load(self):
        """Path of the conntrack load generator (tests/bench/ct_load.cpp) in the build."""
        path = os.path.join(self.build_dir, "tests", "bench", "ct_load")
        if not os.access(path, os.X_OK):
            raise LabError(f"{path} missing: meson builds it (tests/bench/meson.build)")
        return path

    def require_binaries(self):
        for b in (self.fwhad, self.fwhactl):
            if not os.access(b, os.X_OK):
                raise LabError(f"{b} not found or not executable "
                               f"(build first; FWHA_BUILD_DIR={self.build_dir})")

    def start_fwhad(self, fw, extra_args=()):
        proc = self.spawn(fw, [self.fwhad, "-c", self.config_path(fw), *extra_args],
                          f"fwhad-{fw}", log_name=f"{fw}.log")
        self.fwhad_procs[fw] = proc
        self.log(f"{fw}: fwhad started (pid {proc.pid})")
        return proc

    def fwhad_running(self, fw):
        p = self.fwhad_procs.get(fw)
        return p is not None and p.running()

    def freeze(self, node):
        """SIGSTOP every process the lab started in node: it stops sending anything."""
        for p in self.node_procs(node):
            p.signal(signal.SIGSTOP)
            p.frozen = True

    def thaw(self, node):
        for p in self.node_procs(node):
            p.signal(signal.SIGCONT)
            p.frozen = False

    def node_links(self, node):
        return [v for (n, _), v in self.ifname.items() if n == node]

    def set_switch_port(self, fw, side, up):
        """The switch's port of fw's `side` ("lan"/"wan") down or up: fw's interface loses or
        regains carrier, like a pulled and replugged cable."""
        self.ip("sw", "link", "set", self.ifname[("sw", f"{fw}-{side}")], "up" if up else "down")

    def cut_links(self, node):
        """Set every link of node down (its far ends lose carrier, like pulled cables)."""
        # One `ip -batch` so that all links go down within a fraction of a millisecond.
        batch = "".join(f"link set {ifname} down\n" for ifname in self.node_links(node))
        run(["ip", "-n", self.ns[node], "-batch", "-"], input=batch, timeout=10)

    def kill9(self, node):
        for p in self.node_procs(node):
            p.signal(signal.SIGKILL)
        for p in self.node_procs(node):
            try:
                p.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise LabError(f"pid {p.pid} survived SIGKILL") from None

    def sigterm(self, node, timeout=15.0):
        """SIGTERM node's fwhad; wait (bounded) and return its exit code (None: still running)."""
        p = self.fwhad_procs[node]
        p.signal(signal.SIGTERM)
        try:
            return p.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # -- fwhactl --------------------------------------------------------------------------------
    def status(self, node, timeout=3.0):
        """fwhactl status --json for node, as a dict; None if it cannot be read."""
        p = self.fwhad_procs.get(node)
        if p is None or p.frozen or not p.running():
            return None
        try:
            cp = run([self.fwhactl, "-s", self.socket_path(node), "status", "--json"],
                     check=False, timeout=timeout)
        except LabTimeout:
            return None
        if cp.returncode != 0:
            return None
        try:
            return json.loads(cp.stdout)
        except ValueError:
            return None

    def state(self, node):
        st = self.status(node)
        return st.get("group", {}).get("state") if st else None

    def who_is_master(self):
        """Nodes whose fwhad reports Master (frozen or dead nodes are not asked)."""
        return [fw for fw in FWS if self.state(fw) == "Master"]

    def states(self):
        return {fw: self.state(fw) for fw in FWS}

    def log_tail(self, node, lines=40):
        try:
            with open(self.log_path(node), errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return "(no log)\n"

    def role_changes(self, node):
        """(wall_time_s or None, line) for every log line of node's fwhad with 'X -> Y'."""
        out = []
        try:
            with open(self.log_path(node), errors="replace") as fh:
                for line in fh:
                    if "->" not in line:
                        continue
                    if not re.search(r"(Initialize|Backup|Master|Fault)\s*->\s*"
                                     r"(Initialize|Backup|Master|Fault)", line):
                        continue
                    out.append((parse_log_time(line), line.rstrip("\n")))
        except OSError:
            pass
        return out

    def wall_to_rel(self, wall_s):
        return wall_s - self.t0_wall


def stop_and_read_json(proc, path, timeout=10.0):
    """SIGTERM to a helper the lab spawned (it writes its JSON document when it stops), SIGKILL
    if it does not stop within `timeout`, then its document."""
    proc.signal(signal.SIGTERM)
    try:
        proc.popen.wait(timeout=timeout)
    except Exception:  # noqa: BLE001
        proc.signal(signal.SIGKILL)
        raise LabError(f"{proc.name} did not stop on SIGTERM") from None
    with open(path) as f:
        return json.load(f)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def parse_log_time(line):
    """Seconds since the epoch of a fwhad log line's timestamp, or None."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z", line)
    if not m:
        return None
    import datetime
    try:
        dt = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return dt.timestamp()
