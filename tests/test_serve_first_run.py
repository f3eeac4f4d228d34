"""`qosplane serve` the first time, as a new user runs it (issue 12, item 6).

serve runs its local agent by default. When this machine cannot run one it stops with one
line naming what is missing and what to run, rather than serving ACTIVE servers nothing
enforces. When it can, the agent starts once the API listens, so its first pass does not
meet a refused connection, and a server goes from BUILD to ACTIVE through it: a real guest
where libvirt, QEMU and the guest image's packages are installed (as CI installs them),
else a namespace, and serve says which and why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import uuid
from pathlib import Path

from qosplane.cli.hostside import (
    HostOptions,
    choose_hypervisor,
    chosen_file,
    wait_for_listener,
    why_no_guests,
)
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.host.cgroups import RealCgroups
from qosplane.host.hypervisor import LibvirtDaemon, RealHypervisor
from qosplane.host.instances import RealInstances
from tests.conftest import require_root_and
from tests.serving import QOSPLANE, free_port, running_serve, wait_for


def test_serve_stops_with_one_line_when_the_local_agent_cannot_run(tmp_path: Path) -> None:
    # A PATH with ip and tc but no nft: the state of a fresh Debian machine's root.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "tc"):
        found = shutil.which(tool)
        if found is not None:
            (bin_dir / tool).symlink_to(found)
    done = subprocess.run(
        [str(QOSPLANE), "serve", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bin_dir)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "local agent" in x]
    assert line.startswith("qosplane serve: cannot run the local agent: "), line
    expected = "missing nft" if os.geteuid() == 0 else "needs root"
    assert expected in line, line
    assert "--no-agent" in line, line
    assert "http://" not in done.stderr  # it never started serving


def test_wait_for_listener_returns_once_a_port_accepts_and_gives_up_on_stop() -> None:
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert wait_for_listener(f"http://127.0.0.1:{port}", stop)
    closed = free_port()  # nothing listens here now
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    assert not wait_for_listener(f"http://127.0.0.1:{closed}", stop)
    timer.join()


def test_serve_runs_its_local_agent_from_the_first_pass(tmp_path: Path) -> None:
    require_root_and("ip", "tc", "nft")
    unique = uuid.uuid4().hex[:6]
    host_ns, prefix = f"qpf-host-{unique}", f"qpf{unique}-"
    cgroup_root = f"qosplane-first-{unique}"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    options = ("--prefix", prefix, "--host-netns", host_ns, "--cgroup-root", cgroup_root)
    tag = prefix.rstrip("-")
    daemon = LibvirtDaemon(tmp_path / "libvirt" / tag, host_ns)  # as hostside names it
    machine_groups = set(Path("/sys/fs/cgroup").glob("*/machine"))
    try:
        with running_serve(tmp_path, local_agent=options) as endpoint:
            admin = json.loads((tmp_path / "admin.json").read_text())
            client = QosplaneClient(Credentials(endpoint, "admin", admin["password"], "admin"))
            nova, neutron = "/compute/v2.1", "/networking/v2.0"
            flavor = client.call(
                "POST", f"{nova}/flavors", {"flavor": {"name": "m1.f", "ram": 256, "vcpus": 1}}
            )["flavor"]["id"]
            net = client.call("POST", f"{neutron}/networks", {"network": {"name": "first"}})
            net_id = net["network"]["id"]
            client.call(
                "POST",
                f"{neutron}/subnets",
                {"subnet": {"network_id": net_id, "cidr": "10.204.0.0/24", "ip_version": 4}},
            )
            server = client.call(
                "POST",
                f"{nova}/servers",
                {"server": {"name": "vm1", "flavorRef": flavor, "networks": [{"uuid": net_id}]}},
            )["server"]
            # Nova's create answers without a status; the local agent's host holds the
            # server in BUILD until its agent reports, then ACTIVE.
            wait_for(
                lambda: (
                    client.call("GET", f"{nova}/servers/{server['id']}")["server"]["status"]
                    == "ACTIVE"
                ),
                30,
                "the local agent applied the server's plan",
            )
            instances = RealInstances(prefix=prefix, host_netns=host_ns)
            assert len(instances.names()) == 1
            if not why_no_guests("linuxbridge"):  # the default then: a real guest
                hypervisor = RealHypervisor(daemon.uri, tmp_path / "images" / tag, prefix)
                wait_for(lambda: len(hypervisor.names()) == 1, 10, "the guest's domain")
                hypervisor.close()
        log = (tmp_path / "serve.log").read_text()
        assert "unreachable" not in log, log
        assert "pass failed" not in log, log
        # It says what instances are on this host, and why.
        reason = why_no_guests("linuxbridge")
        if reason:
            assert f"instances are network namespaces: {reason}" in log, log
        else:
            assert "instances are real guests (libvirt)" in log, log
            assert "real guests run under" in log, log
    finally:
        RealInstances(prefix=prefix, host_netns=host_ns).remove_everything()
        if daemon.running():  # the local agent's own libvirtd, and its domains
            hypervisor = RealHypervisor(daemon.uri, tmp_path / "images" / tag, prefix)
            hypervisor.remove_everything()
            hypervisor.close()
            daemon.stop()
        for leftover in set(Path("/sys/fs/cgroup").glob("*/machine")) - machine_groups:
            with contextlib.suppress(OSError):  # not empty: something else uses it now
                leftover.rmdir()
        RealCgroups(root=cgroup_root).remove_everything()
        subprocess.run(["ip", "netns", "del", host_ns], check=False)


def test_auto_is_made_concrete_with_a_reason_and_explicit_choices_stay(tmp_path: Path) -> None:
    ovs = HostOptions(tmp_path, switch="ovs")  # hypervisor auto, the default
    chosen, line = choose_hypervisor(ovs)
    assert chosen.hypervisor == "netns"
    assert line == f"instances are network namespaces: {why_no_guests('ovs')}"
    assert "--switch linuxbridge" in line
    explicit = HostOptions(tmp_path, hypervisor="netns")
    assert choose_hypervisor(explicit) == (explicit, "")
    bridged, said = choose_hypervisor(HostOptions(tmp_path))
    assert bridged.hypervisor == ("netns" if why_no_guests("linuxbridge") else "libvirt")
    assert said


def test_exec_and_verify_follow_what_the_agent_recorded(tmp_path: Path) -> None:
    options = HostOptions(tmp_path, prefix="qprec-")
    chosen_file(options).parent.mkdir(parents=True)
    chosen_file(options).write_text("netns\n")
    followed, line = choose_hypervisor(options)
    assert followed.hypervisor == "netns"
    assert line == "instances are netns, as the agent runs them"
    fresh, _ = choose_hypervisor(options, follow_record=False)  # an agent decides again
    assert fresh.hypervisor == ("netns" if why_no_guests("linuxbridge") else "libvirt")
