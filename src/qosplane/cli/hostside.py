"""The commands that run on a host: `agent`, `exec`, `verify`, `explain`, and the local
agent of `serve`. This module wires real drivers to the agent; nothing else does."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from qosplane.agent.loop import Agent
from qosplane.agent.measurement import verdicts_json, verify_server
from qosplane.agent.reconcile import HostDrivers, Reconciler
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.host.cgroups import RealCgroups, RealCgroupsV2, domain_cpu_files
from qosplane.host.endpoints import in_guest_shell
from qosplane.host.errors import HostError
from qosplane.host.guest_agent import GUEST_READY_S
from qosplane.host.guest_image import guest_image_missing
from qosplane.host.hypervisor import (
    SYSTEM_SOCKET,
    LibvirtDaemon,
    RealHypervisor,
    find_qemu_pid,
    has_libvirt_python,
)
from qosplane.host.instances import RealInstances
from qosplane.host.nft import RealDscpMarking, table_for_prefix
from qosplane.host.ovn import OvnDaemons, RealOvnSwitch, nb_qos_texts
from qosplane.host.ovs import (
    SYSTEM_DB,
    SYSTEM_RUNDIR,
    OvsDaemons,
    RealSwitch,
    interface_policing_text,
)
from qosplane.host.probe import cached_probe
from qosplane.host.tc import RealTrafficControl
from qosplane.host.volumes import RealVolumes
from qosplane.model.errors import QosplaneError
from qosplane.model.host_facts import CgroupVersion, HostFacts, NeutronBackend
from qosplane.model.host_state import Capabilities
from qosplane.model.instance import VifType
from qosplane.model.report import Verdict
from qosplane.model.units import KilobitsPerSecond, kilobits_per_s_to_bits_per_s
from qosplane.verify.explain import explain, render_explain
from qosplane.verify.inspect import (
    HostDomain,
    declared_limits,
    inspect_domain,
    ovn_nb_qos_rows,
    ovs_interface_policing,
    render_inspect,
    tap_bandwidth,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INCONCLUSIVE = 3
HOST_TOOLS = ("ip", "tc", "nft")


@dataclass(frozen=True, slots=True)
class HostSetup:
    drivers: HostDrivers
    caps: Capabilities


SWITCHES = ("linuxbridge", "ovs", "ovn")


def ovs_switch(state_dir: Path, prefix: str, host_netns: str | None, bridge: str) -> RealSwitch:
    """The host's Open vSwitch when one runs (and the agent shares its namespace), else the
    agent's own ovsdb-server and ovs-vswitchd under the state directory."""
    system = OvsDaemons(SYSTEM_RUNDIR, managed=False)
    daemons = (
        system
        if host_netns is None and system.running()
        else OvsDaemons(state_dir / "ovs" / prefix.rstrip("-"), host_netns)
    )
    daemons.ensure()
    return RealSwitch(daemons, bridge, prefix)


def _kbps(text: str) -> int:
    """A capacity in kbit/s, as Neutron's resource_provider_bandwidths takes it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of kbit/s") from None
    if not 0 <= value <= 2**32:
        raise argparse.ArgumentTypeError(f"{value} kbit/s: give 0 to 4294967296")
    return value


def ovn_switch(state_dir: Path, prefix: str, host_netns: str | None, bridge: str) -> RealOvnSwitch:
    """The agent's own OVN over its own Open vSwitch, every file under the state
    directory: never a host's OVN, whose Northbound is a Neutron deployment's."""
    name = prefix.rstrip("-")
    ovs = OvsDaemons(state_dir / "ovn-ovs" / name, host_netns)
    return RealOvnSwitch(
        OvnDaemons(state_dir / "ovn" / name, ovs, f"qosplane-{name}"), bridge, prefix
    )


HYPERVISORS = ("auto", "netns", "libvirt")
LIBVIRT_TOOLS = ("libvirtd", "qemu-system-x86_64", "nsenter", "unshare")


def why_no_guests(switch: str) -> str:
    """Empty when `--hypervisor auto` can run real guests here, else why it cannot."""
    if switch != "linuxbridge":
        return "real guests' NICs go into Linux bridges only, for now (--switch linuxbridge)"
    if not has_libvirt_python():
        return "libvirt-python is not installed (scripts/venv.sh installs it)"
    missing = [t for t in LIBVIRT_TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (scripts/host-packages installs them, as root)"
    return guest_image_missing()


def chosen_file(options: HostOptions) -> Path:
    """Where an agent keeps the hypervisor it runs, so `exec` and `verify` with `auto` use
    the same one whatever this host could run now."""
    return options.state_dir / "hypervisor" / options.prefix.rstrip("-")


def choose_hypervisor(options: HostOptions, follow_record: bool = True) -> tuple[HostOptions, str]:
    """`auto` made concrete: what this host's agent runs when it recorded it, else libvirt
    with real guests where this host can run them, else network namespaces; and one line
    saying which and why."""
    if options.hypervisor != "auto":
        return options, ""
    recorded = chosen_file(options)
    if follow_record and recorded.exists() and recorded.read_text().strip() in HYPERVISORS[1:]:
        kind = recorded.read_text().strip()
        return replace(options, hypervisor=kind), f"instances are {kind}, as the agent runs them"
    reason = why_no_guests(options.switch)
    if reason:
        return replace(options, hypervisor="netns"), f"instances are network namespaces: {reason}"
    return replace(options, hypervisor="libvirt"), "instances are real guests (libvirt)"


@dataclass(frozen=True, slots=True)
class HostOptions:
    """How this host runs instances: `qosplane agent/exec/verify` options, or the
    all-in-one's defaults."""

    state_dir: Path
    prefix: str = "qp-"
    host_netns: str | None = None
    cgroup_root: str = "qosplane"
    switch: str = "linuxbridge"
    bridge: str = "br-int"
    hypervisor: str = "auto"
    uplink_kbps: int = 0  # each network's uplink, egress (resource_provider_bandwidths)
    overcommit: str = "refuse"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HostOptions:
        return cls(
            Path(args.state_dir),
            args.prefix,
            args.host_netns,
            args.cgroup_root,
            args.switch,
            args.bridge,
            args.hypervisor,
            args.uplink_kbps,
            args.overcommit,
        )


def host_volumes(options: HostOptions) -> RealVolumes:
    return RealVolumes(options.state_dir / "volumes" / options.prefix.rstrip("-"))


def libvirt_hypervisor(options: HostOptions) -> RealHypervisor:
    """The host's libvirtd when one runs (and the agent shares its namespace), else the
    agent's own under the state directory."""
    tag = options.prefix.rstrip("-")
    images = options.state_dir / "images" / tag
    # Real guests need their taps in the network's bridge: Linux bridges only, for now.
    guests = options.state_dir / "guest-image" if options.switch == "linuxbridge" else None
    socket = host_volumes(options).socket
    if options.host_netns is None and SYSTEM_SOCKET.exists():
        return RealHypervisor(
            "qemu:///system", images, options.prefix, guest_images=guests, volume_socket=socket
        )
    daemon = LibvirtDaemon(options.state_dir / "libvirt" / tag, options.host_netns)
    daemon.ensure()
    return RealHypervisor(
        daemon.uri, images, options.prefix, daemon, guest_images=guests, volume_socket=socket
    )


def host_setup(options: HostOptions, say: Callable[[str], None] | None = None) -> HostSetup:
    """The real drivers for `options`; `say` hears which hypervisor `auto` chose, why,
    and, for real guests, whether they run under KVM or TCG."""
    # An agent (it has someone to `say` to) decides afresh and records what it runs; exec
    # and verify follow that record.
    o, choice = choose_hypervisor(options, follow_record=say is None)
    if say is not None:
        if choice:
            say(choice)
        chosen_file(o).parent.mkdir(parents=True, exist_ok=True)
        chosen_file(o).write_text(o.hypervisor + "\n")
    caps = cached_probe(o.state_dir / "capabilities.json")
    ovs = ovs_switch(o.state_dir, o.prefix, o.host_netns, o.bridge) if o.switch == "ovs" else None
    ovn = ovn_switch(o.state_dir, o.prefix, o.host_netns, o.bridge) if o.switch == "ovn" else None
    hypervisor = libvirt_hypervisor(o) if o.hypervisor == "libvirt" else None
    if hypervisor is not None and hypervisor.boots_guests and say is not None:
        say(hypervisor.prepare_guests())  # builds the image, tries KVM once
    return HostSetup(
        HostDrivers(
            RealInstances(
                prefix=o.prefix,
                host_netns=o.host_netns,
                switch=ovs if ovs is not None else ovn,
                guest_taps=hypervisor is not None and hypervisor.boots_guests,
            ),
            RealTrafficControl(o.host_netns),
            RealDscpMarking(o.host_netns, table_for_prefix(o.prefix)),
            RealCgroupsV2(root=o.cgroup_root)
            if caps.cgroup_v2_cpu and not caps.cgroup_v1_cpu
            else RealCgroups(root=o.cgroup_root),
            host_volumes(o),
            ovs,
            hypervisor,
            ovn,
        ),
        replace(
            caps,
            ovs_switch=ovs is not None,
            ovn_switch=ovn is not None,
            uplink_bits_per_s=kilobits_per_s_to_bits_per_s(KilobitsPerSecond(o.uplink_kbps)),
            refuse_overcommit=o.overcommit == "refuse",
            libvirt=hypervisor is not None,
            guest_volumes=hypervisor is not None and hypervisor.boots_guests,
        ),
    )


def _setup(args: argparse.Namespace, verb: str, tell: bool = False) -> HostSetup | None:
    """The host's drivers for a command; `tell`: say what `--hypervisor auto` chose."""

    def say(line: str) -> None:
        print(f"qosplane {verb}: {line}", file=sys.stderr, flush=True)

    try:
        return host_setup(HostOptions.from_args(args), say if tell else None)
    except QosplaneError as exc:
        print(f"qosplane {verb}: {exc}", file=sys.stderr)
        return None


def why_no_agent() -> str:
    """Empty when this machine can run the netns agent, else the reason it cannot."""
    if platform.system() != "Linux":
        return "the netns driver needs Linux"
    if os.geteuid() != 0:
        return "the agent needs root (network namespaces, tc, cgroups)"
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (scripts/host-packages installs them, as root)"
    return ""


def agent_facts(caps: Capabilities) -> HostFacts:
    """What the API compiles this host's plans with: taps in Linux bridges (libvirt's
    `hybrid` wiring, so libvirt's police on the tap holds) or taps straight in br-int
    (`bridge`, the seed's wiring, Neutron's OVS rows on the tap), this host's cgroups."""
    return HostFacts(
        vif_type=VifType.BRIDGE if caps.switched else VifType.HYBRID,
        # OVN: the plan then holds the Northbound rows ML2/OVN would write for the host.
        neutron_backend=NeutronBackend.OVN if caps.ovn_switch else NeutronBackend.OPENVSWITCH,
        cgroup=CgroupVersion.V2
        if caps.cgroup_v2_cpu and not caps.cgroup_v1_cpu
        else CgroupVersion.V1,
        virt_type="qemu",
    )


def desired_state_cache(state_dir: Path, prefix: str, host: str) -> Path:
    """Where an agent keeps its last desired state: one file per agent (prefix and host),
    so two agents on one machine never read each other's."""
    return state_dir / "desired" / f"{prefix}{host}.json"


def build_agent(
    client: QosplaneClient, host: str, setup: HostSetup, drift_check_s: float, cache: Path
) -> Agent:
    return Agent(
        api=client,
        host=host,
        reconciler=Reconciler(setup.drivers, setup.caps),
        facts=agent_facts(setup.caps),
        drift_check_s=drift_check_s,
        cache=cache,
    )


def local_agent(creds: Credentials, host: str, options: HostOptions) -> Agent:
    """The all-in-one's agent, set up (its switch and hypervisor daemons started) but not
    yet running; a QosplaneError names what this machine lacks."""
    reason = why_no_agent()
    if reason:
        raise QosplaneError(reason)
    setup = host_setup(options, lambda line: print(f"qosplane serve: {line}", file=sys.stderr))
    cache = desired_state_cache(options.state_dir, options.prefix, host)
    return build_agent(QosplaneClient(creds), host, setup, 1.0, cache)


def start_when_listening(agent: Agent, endpoint: str, stop: threading.Event) -> threading.Thread:
    """Runs `agent` in a thread of `serve` once the API accepts connections, so its first
    pass does not meet a port uvicorn has not bound yet."""

    def run() -> None:
        if wait_for_listener(endpoint, stop):
            agent.run(stop)

    thread = threading.Thread(target=run, name="qosplane-agent", daemon=True)
    thread.start()
    return thread


def wait_for_listener(endpoint: str, stop: threading.Event, pause_s: float = 0.05) -> bool:
    """True once something accepts TCP connections at `endpoint` (http://HOST:PORT), False
    if `stop` is set first."""
    url = urlsplit(endpoint)
    address = (url.hostname or "127.0.0.1", url.port or 80)
    while not stop.is_set():
        try:
            socket.create_connection(address, timeout=1).close()
        except OSError:
            stop.wait(pause_s)
        else:
            return True
    return False


# --- commands ---------------------------------------------------------------------------


def cmd_agent(args: argparse.Namespace, creds: Credentials) -> int:
    reason = why_no_agent()
    if reason:
        print(f"qosplane agent: {reason}", file=sys.stderr)
        return EXIT_INVALID
    setup = _setup(args, "agent", tell=True)
    if setup is None:
        return EXIT_FAILED
    cache = desired_state_cache(Path(args.state_dir), args.prefix, args.host)
    agent = build_agent(QosplaneClient(creds), args.host, setup, args.drift_check_s, cache)
    stop = threading.Event()
    print(
        f"qosplane agent: host {args.host} -> {creds.endpoint}, capabilities {setup.caps}",
        file=sys.stderr,
        flush=True,
    )
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return EXIT_OK


def exec_in_guest(hypervisor: RealHypervisor, domain: str, command: Sequence[str]) -> int:
    """`command` inside a real guest, through its guest agent: its output here, its exit
    status returned. A shell inside resolves the program on the guest's PATH."""
    try:
        agent = hypervisor.agent(domain)
        agent.wait_ready(GUEST_READY_S)
        done = agent.run(in_guest_shell(command), timeout_s=3600)
    except HostError as exc:
        print(f"qosplane exec: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.buffer.write(done.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(done.stderr)
    sys.stderr.flush()
    return done.exit_code


def cmd_exec(args: argparse.Namespace, creds: Credentials) -> int:
    """Run a command inside the instance on this host: in its guest through qemu-ga when
    it is a real guest, else in its network namespace and cgroup."""
    command = list(args.cmd or [])
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("qosplane exec: give a command after --", file=sys.stderr)
        return EXIT_INVALID
    placed = QosplaneClient(creds).server_plan(args.server)
    instance = placed.desired.plan.instance_name
    setup = _setup(args, "exec")
    if setup is None:
        return EXIT_FAILED
    ns = setup.drivers.instances.namespace(instance)
    if instance not in setup.drivers.instances.names():
        print(
            f"qosplane exec: {placed.desired.name} ({instance}) does not run on this host "
            f"({socket.gethostname()}); it is placed on {placed.host}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    hypervisor = setup.drivers.hypervisor
    if isinstance(hypervisor, RealHypervisor) and hypervisor.boots_guests:
        return exec_in_guest(hypervisor, instance, command)
    procs = setup.drivers.cgroups.procs_file(instance)
    join = f'[ -w "{procs}" ] && echo $$ > "{procs}"; exec "$@"'
    os.execvp(
        "nsenter", ["nsenter", f"--net=/run/netns/{ns}", "--", "sh", "-c", join, "sh", *command]
    )
    return EXIT_FAILED  # not reached: execvp replaces this process


def cmd_verify(args: argparse.Namespace, creds: Credentials) -> int:
    client = QosplaneClient(creds)
    placed = client.server_plan(args.server)
    setup = _setup(args, "verify")
    if setup is None:
        return EXIT_FAILED
    verdicts = verify_server(
        placed.desired,
        setup.caps,
        setup.drivers.instances,
        setup.drivers.cgroups,
        setup.drivers.volumes,
        args.seconds,
        setup.drivers.hypervisor,
    )
    client.record_measurement(placed.desired.id, verdicts)
    if args.json:
        json.dump(verdicts_json(verdicts), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for v in verdicts:
            mark = v.outcome if v.passed else v.outcome.upper()
            path = "" if v.capacity is None else f"; the path carries {v.capacity:.1f} unlimited"
            print(
                f"{v.device:16} {v.kind:11} {v.direction:8} configured {v.configured:22} "
                f"expected {v.expected:14.1f} measured {v.measured:14.1f} {v.unit:6} "
                f"±{v.tolerance:.0%} {mark}   ({v.method}{path})"
            )
    return verify_exit(verdicts)


def verify_exit(verdicts: Sequence[Verdict]) -> int:
    """0: every limit held; 1: one failed; 3: none failed, but one could not be judged on
    this host (its path cannot carry well above the limit)."""
    if any(v.outcome == "fail" for v in verdicts):
        return EXIT_FAILED
    return EXIT_INCONCLUSIVE if any(v.inconclusive for v in verdicts) else EXIT_OK


def cmd_explain(args: argparse.Namespace, creds: Credentials) -> int:
    client = QosplaneClient(creds)
    try:
        placed = client.server_plan(args.server)
        status = client.server_status(placed.desired.id)
    except QosplaneError as exc:
        print(f"qosplane explain: {exc}", file=sys.stderr)
        return EXIT_INVALID
    view = explain(placed, status)
    _print_view(view, args.json, render_explain)
    return EXIT_OK


def _print_view(
    view: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], str]
) -> None:
    """A command's view as JSON (`--json`) or rendered for people."""
    if as_json:
        json.dump(view, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(view))


def cloud_name(value: str) -> str | None:
    """`--os-cloud`'s NAME; "" or "-": OS_CLOUD or the OS_* variables decide."""
    return None if value in ("", "-") else value


def cmd_explain_cloud(args: argparse.Namespace) -> int:
    """`explain --os-cloud`: read a real cloud (never written to) and explain its server."""
    # openstacksdk takes half a second to import: only this command pays for it.
    from qosplane.cloud.explain import explain_records  # noqa: PLC0415
    from qosplane.cloud.reader import connect, read_server  # noqa: PLC0415

    try:
        view, _ = explain_records(read_server(connect(cloud_name(args.os_cloud)), args.server))
    except QosplaneError as exc:
        print(f"qosplane explain: {exc}", file=sys.stderr)
        return EXIT_INVALID
    _print_view(view, args.json, render_explain)
    return EXIT_OK


def read_host_domain(
    hypervisor: RealHypervisor,
    name: str,
    uuid: str,
    netns: str | None,
    ovs_db: str | None = None,
    ovn_nb: str | None = None,
) -> HostDomain | None:
    """Everything `inspect` reads of one running domain, read-only: libvirt's live values,
    its cgroup files, tc on each of its taps (in `netns`), with `ovs_db` Open vSwitch's
    Interface policing, and with `ovn_nb` OVN's Northbound QoS rows. None: no such
    domain runs."""
    held = hypervisor.read_domain(name, uuid)
    if held is None:
        return None
    running = ET.fromstring(held.xml).findtext("name") or name
    not_read: list[str] = []
    files: dict[str, int] | None = None
    pid = find_qemu_pid(running)
    if pid is None:
        not_read.append(f"cgroup files: no QEMU process named guest={running} in /proc")
    else:
        try:
            # No cpu group at all: the files hold none of the declared values.
            files = domain_cpu_files(pid) or {}
        except HostError as exc:
            not_read.append(f"cgroup files: {exc}")
    tc = RealTrafficControl(netns)
    taps = declared_limits(held.xml).interfaces
    ovs = None
    if ovs_db is None:
        not_read.append("Open vSwitch Interface: no ovsdb-server here (--ovs-db names one)")
    else:
        try:
            ovs = ovs_interface_policing(interface_policing_text(ovs_db))
        except HostError as exc:
            not_read.append(f"Open vSwitch Interface: {exc}")
    ovn = None
    if ovn_nb is not None:
        try:
            ovn = tuple(ovn_nb_qos_rows(*nb_qos_texts(ovn_nb)))
        except HostError as exc:
            not_read.append(f"OVN Northbound: {exc}")
    return replace(
        held,
        cgroup=files,
        tc={t: tap_bandwidth(*text) for t, text in tc.bandwidth_texts(list(taps)).items()},
        ovs=ovs,
        ovn=ovn,
        not_read=tuple(not_read),
    )


def cmd_inspect(args: argparse.Namespace, creds: Credentials | None = None) -> int:
    """`inspect`: what this host's libvirt holds for one server against its plan, from a
    real cloud (`--os-cloud`) or from qosplane's API. Read-only."""
    try:
        if args.os_cloud is not None:
            # openstacksdk takes half a second to import: only the cloud commands pay it.
            from qosplane.cloud.explain import plan_of_records  # noqa: PLC0415
            from qosplane.cloud.reader import connect, read_server  # noqa: PLC0415

            plan, _ = plan_of_records(read_server(connect(cloud_name(args.os_cloud)), args.server))
        else:
            assert creds is not None
            plan = QosplaneClient(creds).server_plan(args.server).desired.plan
        if not has_libvirt_python():
            raise HostError("inspect", "libvirt-python is not installed")
        hypervisor = RealHypervisor(args.uri, Path(args.state_dir) / "images")
        try:
            ovs_db = args.ovs_db
            if ovs_db is None and (SYSTEM_RUNDIR / "db.sock").exists():
                ovs_db = SYSTEM_DB  # the host's own Open vSwitch, as Neutron's agent uses it
            held = read_host_domain(
                hypervisor, plan.instance_name, plan.instance_uuid, args.netns, ovs_db, args.ovn_nb
            )
            if held is not None and plan.ovn_qos and args.ovn_nb is None:
                why = "OVN Northbound: not read (--ovn-nb names its database)"
                held = replace(held, not_read=(*held.not_read, why))
        finally:
            hypervisor.close()
    except (QosplaneError, FileNotFoundError) as exc:
        print(f"qosplane inspect: {exc}", file=sys.stderr)
        return EXIT_INVALID
    rows = inspect_domain(plan.domain_xml, held, plan.ovs, plan.ovn_qos)
    if args.json:
        out = {
            "server": args.server,
            "domain": plan.instance_name,
            "running": held is not None,
            "ovs_read": held is not None and held.ovs is not None,
            "ovn_read": held is not None and held.ovn is not None,
            "not_read": list(held.not_read) if held is not None else [],
            "limits": [r.to_json() for r in rows],
        }
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if held is None:
            print(f"{plan.instance_name}: no such domain runs on {args.uri}")
        else:
            for why in held.not_read:
                print(f"not read: {why}")
        sys.stdout.write(render_inspect(plan.instance_name, rows))
    return EXIT_OK if all(r.status == "holds" for r in rows) else EXIT_FAILED


def cmd_audit_cloud(args: argparse.Namespace) -> int:
    """`audit --os-cloud`: every server the credentials see, read-only, as one table."""
    # openstacksdk takes half a second to import: only the cloud commands pay for it.
    from qosplane.cloud.audit import audit_of, render_audit  # noqa: PLC0415
    from qosplane.cloud.reader import connect, list_servers, read_servers  # noqa: PLC0415

    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\rread {done}/{total} servers", end="", file=sys.stderr, flush=True)

    try:
        conn = connect(cloud_name(args.os_cloud))
        servers, version = list_servers(conn, args.all_projects)
        view = audit_of(read_servers(conn, servers, version, progress))
    except QosplaneError as exc:
        print(f"qosplane audit: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if tty and servers:
        print(file=sys.stderr)
    _print_view(view, args.json, render_audit)
    return EXIT_OK


def add_host_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="qp-", help="name prefix of the instance namespaces")
    parser.add_argument(
        "--host-netns",
        default=None,
        help="network namespace holding the host side (taps, bridges); default: this one",
    )
    parser.add_argument("--cgroup-root", default="qosplane", help="cgroup under the cpu controller")
    parser.add_argument(
        "--switch",
        choices=SWITCHES,
        default="linuxbridge",
        help="wire ports into Linux bridges (tc, ifb, nftables enforce QoS) or into an Open "
        "vSwitch bridge (linux-htb QoS rows, OpenFlow meters and DSCP flows); ovs starts "
        "its own ovsdb-server/ovs-vswitchd when none runs; ovn runs its own OVN (NB and SB "
        "databases, ovn-northd, ovn-controller) and writes the Northbound QoS rows ML2/OVN "
        "would",
    )
    parser.add_argument("--bridge", default="br-int", help="the OVS bridge (--switch ovs or ovn)")
    parser.add_argument(
        "--uplink-kbps",
        type=_kbps,
        default=0,
        metavar="KBPS",
        help="the egress capacity of each network's uplink in kbit/s, as Neutron's "
        "resource_provider_bandwidths gives a NIC's: minimum bandwidth rules then get an "
        "htb class there (Linux bridges only); 0, the default: they stay Placement's",
    )
    parser.add_argument(
        "--overcommit",
        choices=("refuse", "report"),
        default="refuse",
        help="guarantees that do not fit in an uplink's capacity: refused (not applied, "
        "the rule says why) or applied and reported as over-committed",
    )
    parser.add_argument(
        "--hypervisor",
        choices=HYPERVISORS,
        default="auto",
        help="netns: an instance is a network namespace (qemu-storage-daemon exports its "
        "volumes); libvirt: also the plan's domain, under KVM where it boots the guest "
        "image, else TCG, its CPU and image-disk limits libvirt's, re-tuned live, a real "
        "guest with its ports as NICs on Linux bridges (starts its own libvirtd when none "
        "runs); auto (default): libvirt where libvirt, QEMU and the guest image's packages "
        "are installed and ports go into Linux bridges, else netns, saying why",
    )
