"""The guest image qosplane boots its instances from, built on the host from Debian's own
packages, nothing downloaded (issue 12): the host's kernel (linux-image-amd64), an
initramfs holding busybox (busybox-static), the virtio modules in dependency order, iperf3
and the QEMU guest agent (qemu-guest-agent) with the shared libraries each needs.

The initramfs is the whole guest: its /init mounts /proc, /sys and /dev, loads the modules,
configures each NIC from the kernel command line (`qosplane.nic=MAC,CIDR[,GATEWAY]`, what
the port says) and runs `qemu-ga` on the `org.qemu.guest_agent.0` virtio-serial port, the
channel libvirt and QEMU use for `guest-exec`. `qosplane exec` and `verify` run their
commands there.

Built once per set of inputs and kept under the state directory: the cache key hashes the
contents of every input file and the init script, so a new kernel or busybox rebuilds it.
The archive is written here (cpio newc, gzip with a zero mtime), so the same inputs give the
same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from qosplane.compiler.enforcement.backends.libvirt_domain import AGENT_CHANNEL
from qosplane.host.errors import PermanentHostError

# The modules a virtio guest needs; their dependencies come from modules.dep.
GUEST_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "virtio_console")
GUEST_PROGRAMS = ("/usr/sbin/qemu-ga", "/usr/bin/iperf3")
BUSYBOX = "/bin/busybox"
NIC_ARGUMENT = "qosplane.nic"
BOOTED_LINE = "qosplane-guest: up"  # on the console once the NICs are configured
READY_LINE = "qosplane-guest: ready, agent on"  # then once the agent's port is there
PACKAGES = {  # what provides each input, for the error that says what to install
    "kernel": "linux-image-amd64",
    BUSYBOX: "busybox-static",
    "/usr/sbin/qemu-ga": "qemu-guest-agent",
    "/usr/bin/iperf3": "iperf3",
}

INIT = f"""#!/bin/sh
# qosplane's guest: see src/qosplane/host/guest_image.py
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /run /var/run
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r module; do insmod "/lib/modules/$module"; done < /etc/modules-order
ip link set lo up
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    {NIC_ARGUMENT}=*)
      spec="${{arg#{NIC_ARGUMENT}=}}"
      mac="${{spec%%,*}}"; rest="${{spec#*,}}"
      cidr="${{rest%%,*}}"; gateway=""
      [ "$rest" != "$cidr" ] && gateway="${{rest#*,}}"
      for dev in /sys/class/net/*; do
        if [ "$(cat "$dev/address")" = "$mac" ]; then
          name="${{dev##*/}}"
          ip link set "$name" up
          ip addr add "$cidr" dev "$name"
          [ -n "$gateway" ] && ip route add default via "$gateway" dev "$name"
          echo "qosplane-guest: $name $mac $cidr"
        fi
      done
      ;;
  esac
done
echo "{BOOTED_LINE}"
# virtio_console adds its ports after insmod returns: wait for the agent's (up to 10 s).
port=""
for _ in $(seq 100); do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = "{AGENT_CHANNEL}" ] && port="/dev/${{p##*/}}"
  done
  [ -n "$port" ] && [ -e "$port" ] && break
  sleep 0.1
done
echo "{READY_LINE} $port"
# The shell stays PID 1: an agent that exits is started again, not a kernel panic.
while [ -n "$port" ]; do
  /usr/sbin/qemu-ga -m virtio-serial -p "$port" -t /run -f /run/qemu-ga.pid
  sleep 1
done
"""


@dataclass(frozen=True, slots=True)
class GuestImage:
    """A built image: boot `kernel` with `initrd`."""

    kernel: Path
    initrd: Path
    key: str  # the hash of every input


@dataclass(frozen=True, slots=True)
class GuestNic:
    mac: str
    cidr: str  # 10.0.0.3/24
    gateway: str | None = None  # an address, no prefix


def nic_arguments(nics: Sequence[GuestNic]) -> str:
    """The kernel command line words the guest's /init configures its NICs from (MACs in
    lower case, as /sys/class/net prints them)."""
    words = []
    for nic in nics:
        parts = [nic.mac.lower(), nic.cidr, *([nic.gateway] if nic.gateway else [])]
        words.append(f"{NIC_ARGUMENT}={','.join(parts)}")
    return " ".join(words)


def _kernel() -> tuple[Path, str]:
    """The newest installed kernel and its version."""
    found = sorted(
        Path("/boot").glob("vmlinuz-*"),
        key=lambda p: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p.name)],
    )
    if not found:
        raise PermanentHostError("guest image", _missing("kernel"))
    kernel = found[-1]
    return kernel, kernel.name.removeprefix("vmlinuz-")


def guest_image_missing() -> str:
    """Empty when this host has every input of the image, else what to install."""
    if not list(Path("/boot").glob("vmlinuz-*")):
        return _missing("kernel")
    for program in (BUSYBOX, *GUEST_PROGRAMS):
        if not Path(program).exists():
            return _missing(program)
    return ""


def _missing(what: str) -> str:
    return f"no {what} on this host (apt-get install {PACKAGES[what]})"


def module_order(modules_dir: Path, wanted: Iterable[str]) -> list[str]:
    """The module files (relative to `modules_dir`) to insmod, each after what it needs;
    built-in modules are left out."""
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        module, _, needs = line.partition(":")
        deps[module] = needs.split()
    builtin = set((modules_dir / "modules.builtin").read_text().split())
    by_name = {Path(m).name.split(".ko")[0]: m for m in deps}  # .ko, .ko.xz, .ko.zst
    order: list[str] = []
    for name in wanted:
        found = by_name.get(name)
        if found is None:
            if any(Path(b).name == f"{name}.ko" for b in builtin):
                continue
            raise PermanentHostError("guest image", f"no module {name} in {modules_dir}")
        for needed in [*reversed(deps[found]), found]:  # modprobe loads the last first
            if needed not in order:
                order.append(needed)
    return order


_LDD = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def shared_libraries(program: str) -> list[str]:
    """The libraries `program` loads, as ldd resolves them (the loader included); none for
    a static program (busybox-static), which ldd refuses with "not a dynamic executable"."""
    done = subprocess.run(["ldd", program], capture_output=True, text=True, check=False)
    if done.returncode != 0 and "not a dynamic executable" in done.stdout + done.stderr:
        return []
    if done.returncode != 0:
        raise PermanentHostError(f"ldd {program}", done.stderr.strip())
    return sorted({m.group(1) for m in _LDD.finditer(done.stdout)})


def _inputs(version: str, modules: Sequence[str]) -> dict[str, Path]:
    """Path in the guest -> file on the host, for every file the image holds."""
    missing = guest_image_missing()
    if missing:
        raise PermanentHostError("guest image", missing)
    modules_dir = Path("/lib/modules") / version
    files: dict[str, Path] = {}
    for module in modules:
        if not module.endswith(".ko"):  # busybox's insmod loads plain modules only
            raise PermanentHostError("guest image", f"{module} is compressed; not supported")
        files[f"/lib/modules/{module}"] = modules_dir / module
    for program in (BUSYBOX, *GUEST_PROGRAMS):  # Debian's dynamic busybox works too
        files[program] = Path(program)
        for library in shared_libraries(program):
            files[library] = Path(library)
    return files


def _newc(name: str, mode: int, data: bytes, ino: int) -> bytes:
    """One cpio "newc" entry: the format the kernel unpacks an initramfs from."""
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    head = header + encoded
    return head + b"\0" * (-len(head) % 4) + data + b"\0" * (-len(data) % 4)


def _archive(files: dict[str, Path], order: Sequence[str]) -> Iterator[bytes]:
    directories = sorted({str(p) for f in files for p in Path(f).parents if str(p) != "/"})
    directories += ["bin", "proc", "sys", "dev", "tmp", "run", "etc"]
    ino = 1
    for directory in sorted({d.lstrip("/") for d in directories}):
        ino += 1
        yield _newc(directory, stat.S_IFDIR | 0o755, b"", ino)
    for guest_path, host_path in sorted(files.items()):
        ino += 1
        mode = stat.S_IFREG | (0o755 if os.access(host_path, os.X_OK) else 0o644)
        yield _newc(guest_path.lstrip("/"), mode, host_path.read_bytes(), ino)
    extra = {
        "init": (0o755, INIT.encode()),
        "etc/modules-order": (0o644, "".join(f"{m}\n" for m in order).encode()),
    }
    for name, (perm, data) in extra.items():
        ino += 1
        yield _newc(name, stat.S_IFREG | perm, data, ino)
    ino += 1
    yield _newc("bin/sh", stat.S_IFLNK | 0o777, b"busybox", ino)
    yield _newc("TRAILER!!!", 0, b"", 0)


def build_guest_image(cache_dir: Path) -> GuestImage:
    """The image for this host's inputs: from `cache_dir` when built before, else built
    there (written aside, then renamed, so a killed build leaves no half image)."""
    kernel, version = _kernel()
    order = module_order(Path("/lib/modules") / version, GUEST_MODULES)
    files = _inputs(version, order)
    digest = hashlib.sha256(INIT.encode())
    for guest_path, host_path in sorted({**files, "kernel": kernel}.items()):
        digest.update(guest_path.encode() + b"\0" + host_path.read_bytes())
    key = digest.hexdigest()[:16]
    target = cache_dir / key
    image = GuestImage(target / "vmlinuz", target / "initrd.img", key)
    if image.kernel.exists() and image.initrd.exists():
        return image
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".{key}.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        shutil.copyfile(kernel, partial / "vmlinuz")
        with gzip.GzipFile(partial / "initrd.img", "wb", compresslevel=6, mtime=0) as out:
            for chunk in _archive(files, order):
                out.write(chunk)
        partial.rename(target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not (image.kernel.exists() and image.initrd.exists()):  # not a racing builder's
            raise
    return image
