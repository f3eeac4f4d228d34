"""The guest image (host/guest_image.py) and the guest agent client (host/guest_agent.py).

The archive and module order are checked without booting; then one real guest boots under
QEMU (TCG: this machine's KVM boots no stock kernel, host-capabilities.md §11) with a NIC
on a tap in a throwaway namespace's bridge, and commands run inside it through qemu-ga.
Needs root, qemu-system-x86_64 and the image's Debian packages (linux-image-amd64,
busybox-static, qemu-guest-agent, iperf3); CI installs them (scripts/host-packages).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qosplane.host import guest_image
from qosplane.host.errors import HostError, PermanentHostError
from qosplane.host.guest_agent import GuestAgent, SocketTransport
from qosplane.host.guest_image import (
    GuestNic,
    build_guest_image,
    module_order,
    nic_arguments,
)
from tests.conftest import require_root_and

IMAGE_TOOLS = ("qemu-system-x86_64", "busybox", "qemu-ga", "iperf3", "ldd")


def _require_image_inputs() -> None:
    require_root_and(*IMAGE_TOOLS)
    if not list(Path("/boot").glob("vmlinuz-*")):
        pytest.skip("no kernel in /boot (scripts/host-packages installs linux-image-amd64)")


def test_nic_arguments_carry_mac_address_and_gateway() -> None:
    nics = [
        GuestNic("fa:16:3e:00:00:01", "10.0.0.5/24", "10.0.0.1"),
        GuestNic("fa:16:3e:00:00:02", "10.1.0.5/24"),
    ]
    assert nic_arguments([GuestNic("FA:16:3E:00:00:0A", "10.0.0.6/24")]) == (
        "qosplane.nic=fa:16:3e:00:00:0a,10.0.0.6/24"  # as /sys/class/net prints MACs
    )
    assert nic_arguments(nics) == (
        "qosplane.nic=fa:16:3e:00:00:01,10.0.0.5/24,10.0.0.1 qosplane.nic=fa:16:3e:00:00:02,10.1.0.5/24"
    )


def test_modules_load_after_what_they_need_and_builtins_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/a/net.ko: kernel/a/fail.ko kernel/b/core.ko\n"
        "kernel/a/fail.ko: kernel/b/core.ko\n"
        "kernel/b/core.ko:\n"
        "kernel/c/blk.ko: kernel/b/core.ko\n"
    )
    (tmp_path / "modules.builtin").write_text("kernel/d/pci.ko\n")
    assert module_order(tmp_path, ["pci", "net", "blk"]) == [
        "kernel/b/core.ko",
        "kernel/a/fail.ko",
        "kernel/a/net.ko",
        "kernel/c/blk.ko",
    ]
    with pytest.raises(PermanentHostError, match="no module gone"):
        module_order(tmp_path, ["gone"])


def test_a_cpio_entry_is_the_kernel_newc_format() -> None:
    entry = guest_image._newc("init", 0o100755, b"abc", 7)
    assert entry[:6] == b"070701"
    assert int(entry[6:14], 16) == 7  # inode
    assert int(entry[14:22], 16) == 0o100755
    assert int(entry[54:62], 16) == 3  # file size
    assert int(entry[94:102], 16) == len("init") + 1
    assert len(entry) % 4 == 0
    assert entry[110:115] == b"init\0"


def _listing(initrd: Path) -> list[str]:
    done = subprocess.run(
        f"zcat {initrd} | busybox cpio -t", shell=True, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_the_image_is_built_once_holds_the_guest_and_rebuilds_when_an_input_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_image_inputs()
    image = build_guest_image(tmp_path)
    names = _listing(image.initrd)
    for needed in ("init", "bin/busybox", "bin/sh", "usr/sbin/qemu-ga", "usr/bin/iperf3"):
        assert needed in names
    assert any(n.endswith("virtio_net.ko") for n in names)
    built_at = image.initrd.stat().st_mtime_ns
    again = build_guest_image(tmp_path)
    assert again == image
    assert again.initrd.stat().st_mtime_ns == built_at  # from the cache, not rebuilt
    monkeypatch.setattr(guest_image, "INIT", guest_image.INIT + "# changed\n")
    changed = build_guest_image(tmp_path)
    assert changed.key != image.key
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([image.key, changed.key])


def sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True)


@pytest.fixture
def booted(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A guest on a tap in a bridge of a throwaway namespace, with a probe namespace on
    that bridge at 10.210.0.1; stopped and everything removed afterwards."""
    _require_image_inputs()
    image = build_guest_image(tmp_path / "images")
    tag = uuid.uuid4().hex[:6]
    host_ns, probe_ns = f"qpg-host-{tag}", f"qpg-probe-{tag}"
    tap, mac = f"tapg{tag}", "52:54:00:10:20:30"
    console, socket_path = tmp_path / "console.log", tmp_path / "qga.sock"
    qemu: subprocess.Popen[bytes] | None = None
    try:
        sh("ip", "netns", "add", host_ns)
        sh("ip", "netns", "add", probe_ns)
        sh("ip", "-n", host_ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", host_ns, "link", "set", "br0", "up")
        sh(
            "ip",
            "-n",
            host_ns,
            "link",
            "add",
            "prb0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            probe_ns,
        )
        sh("ip", "-n", host_ns, "link", "set", "prb0", "master", "br0", "up")
        sh("ip", "-n", probe_ns, "addr", "add", "10.210.0.1/24", "dev", "eth0")
        sh("ip", "-n", probe_ns, "link", "set", "eth0", "up")
        sh("ip", "-n", probe_ns, "link", "set", "lo", "up")
        sh("ip", "-n", host_ns, "tuntap", "add", "dev", tap, "mode", "tap")
        sh("ip", "-n", host_ns, "link", "set", tap, "master", "br0", "up")
        cmdline = "console=ttyS0 quiet panic=-1 " + nic_arguments(
            [GuestNic(mac, "10.210.0.5/24", "10.210.0.1")]
        )
        qemu = subprocess.Popen(
            [
                "ip", "netns", "exec", host_ns, "qemu-system-x86_64",
                "-accel", "tcg", "-m", "192", "-display", "none", "-no-reboot", "-nodefaults",
                "-serial", f"file:{console}",
                "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", cmdline,
                "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
                "-chardev", f"socket,id=qga,path={socket_path},server=on,wait=off",
                "-device", "virtio-serial",
                "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            ]
        )  # fmt: skip
        agent = GuestAgent(SocketTransport(socket_path))
        agent.wait_ready(90)
        yield {"agent": agent, "probe_ns": probe_ns, "console": console}
    finally:
        if qemu is not None:
            qemu.kill()
            qemu.wait()
        for ns in (host_ns, probe_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_a_booted_guest_runs_commands_and_reaches_its_network(booted: dict[str, Any]) -> None:
    agent: GuestAgent = booted["agent"]
    failed = agent.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (failed.exit_code, failed.stdout, failed.stderr) == (7, b"out\n", b"err\n")
    addresses = agent.run(["/bin/ip", "-o", "-4", "addr", "show"]).stdout.decode()
    assert "10.210.0.5/24" in addresses  # configured from the port's MAC and fixed IP
    assert agent.run(["/bin/ping", "-c", "1", "-W", "5", "10.210.0.1"]).exit_code == 0
    # TCP from inside the guest to the probe, as verify will measure it.
    server = subprocess.Popen(
        ["ip", "netns", "exec", booted["probe_ns"], "iperf3", "-s", "-1", "-J"],
        stdout=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            ready = subprocess.run(
                ["ip", "netns", "exec", booted["probe_ns"], "ss", "-ltn", "sport = :5201"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if ":5201" in ready.stdout:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("iperf3 -s never listened in the probe")
        sent = agent.run(["/usr/bin/iperf3", "-c", "10.210.0.1", "-t", "2", "-J"], 60)
        assert sent.exit_code == 0, sent.stderr
        received = json.loads(sent.stdout)["end"]["sum_received"]["bits_per_second"]
        assert received > 0
    finally:
        server.wait(timeout=30)
    with pytest.raises(HostError, match=r"guest-exec|No such file"):
        agent.run(["/no/such/program"])


def test_an_agent_that_never_answers_is_an_error_in_time(tmp_path: Path) -> None:
    agent = GuestAgent(SocketTransport(tmp_path / "nothing.sock"))
    with pytest.raises(HostError, match="not ready"):
        agent.wait_ready(0.5)
