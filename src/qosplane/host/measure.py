"""Measurements with real traffic and real CPU time, between namespaces the agent owns
or from inside a real guest (host/endpoints.py).

- Throughput: iperf3, TCP, receiver-side bytes (the sender's count includes what still sits
  in socket buffers), the first seconds omitted so a configured burst is spent first.
- DSCP: tcpdump on the receiving side of echo requests (Linux copies the TOS of a request
  into its reply, so only the request proves the mark).
- CPU: two busy loops pinned to one CPU, one in the instance's cgroup and one in a
  reference sibling group at the default weight; the ratio of their CPU time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qosplane.compiler.enforcement.backends.libvirt_domain import NBD_EXPORT
from qosplane.host.cgroups import domain_group, group_cpu_seconds
from qosplane.host.endpoints import Endpoint, endpoint
from qosplane.host.errors import HostError
from qosplane.host.process import in_netns, run
from qosplane.model.units import Bytes, PacketsPerSecond, bytes_to_bits

IPERF_PORT = 5201
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Throughput:
    received_bits_per_s: float
    seconds: float
    retransmits: int


def _iperf3(
    sender: str | Endpoint, receiver: str | Endpoint, receiver_ip: str, client_args: list[str]
) -> Any:
    """One iperf3 run from `sender` to a one-off server at `receiver` (a namespace's name,
    or any endpoint: inside a guest): the client's JSON."""
    send, receive = endpoint(sender), endpoint(receiver)
    # -J: a client asking --get-server-output then gets the receiver's JSON.
    server = receive.start(["iperf3", "-s", "-1", "-J", "-p", str(IPERF_PORT)])
    try:
        deadline = time.monotonic() + 10
        while not receive.listening(IPERF_PORT):
            if server.exited() or time.monotonic() > deadline:
                server.stop()
                _, out, err = server.finish(5)
                raise HostError(f"iperf3 -s in {receive.label}", (err or out)[-300:])
            time.sleep(0.05)
        client = ["iperf3", "-c", receiver_ip, "-p", str(IPERF_PORT), *client_args, "-J"]
        out = send.run(client)
    finally:
        server.finish(10)
    report = json.loads(out)
    if "error" in report:  # iperf3 -J exits 1 with its reason in the JSON
        raise HostError(f"iperf3 -c {receiver_ip} from {send.label}", str(report["error"]))
    return report


def throughput(
    sender: str | Endpoint, receiver: str | Endpoint, receiver_ip: str, seconds: int, omit_s: int
) -> Throughput:
    """TCP from `sender` to `receiver_ip` at `receiver`, as the receiver counted it."""
    args = ["-t", str(seconds + omit_s), "-O", str(omit_s)]
    end = _iperf3(sender, receiver, receiver_ip, args)["end"]
    return Throughput(
        float(end["sum_received"]["bits_per_second"]),
        float(end["sum_received"]["seconds"]),
        int(end["sum_sent"].get("retransmits", 0)),
    )


@dataclass(frozen=True, slots=True)
class PacketRateReading:
    received_packets_per_s: float
    seconds: float
    lost_packets: int  # dropped on the way: what a packet limit drops shows up here


UDP_PAYLOAD_BYTES = Bytes(64)  # small packets: the count is what limits them, not the bytes


def packet_rate(
    sender_ns: str | Endpoint,
    receiver_ns: str | Endpoint,
    receiver_ip: str,
    seconds: int,
    omit_s: int,
    offered_packets_per_s: PacketsPerSecond,
) -> PacketRateReading:
    """UDP datagrams of UDP_PAYLOAD_BYTES offered at `offered_packets_per_s`; the rate the
    receiver got them at: its per-second counts of packets less the ones it saw lost,
    after the first `omit_s` seconds. The receiver's own intervals, because iperf3's UDP
    summary counts the lost packets of the omitted seconds too (measured: 1571 packet/s
    reported for 2000 received)."""
    offered_bits_per_s = offered_packets_per_s * bytes_to_bits(UDP_PAYLOAD_BYTES)  # of payload
    args = ["-u", "-l", str(UDP_PAYLOAD_BYTES), "-b", str(offered_bits_per_s)]
    args += ["-t", str(seconds + omit_s), "-O", str(omit_s), "--get-server-output"]
    report = _iperf3(sender_ns, receiver_ns, receiver_ip, args)
    counted = [
        i["sum"]
        for i in report.get("server_output_json", {}).get("intervals", [])
        if not i["sum"].get("omitted")
    ]
    span_s = sum(float(c["seconds"]) for c in counted)
    if not counted or span_s <= 0:
        raise HostError("iperf3 -u", f"the receiver reported no interval past {omit_s} s")
    lost = sum(int(c["lost_packets"]) for c in counted)
    got = sum(int(c["packets"]) for c in counted) - lost
    return PacketRateReading(got / span_s, span_s, lost)


_TOS = re.compile(r"\btos 0x([0-9a-f]+)")


def tos_seen(
    sender: str | Endpoint, receiver_ns: str, receiver_ip: str, interface: str = "eth0"
) -> int:
    """The TOS byte of echo requests from `sender` as they arrive in `receiver_ns`."""
    capture = subprocess.Popen(
        in_netns(
            receiver_ns,
            [
                "tcpdump",
                "-i",
                interface,
                "-c",
                "3",
                "-nn",
                "-v",
                "-l",
                "icmp[icmptype] == icmp-echo",
            ],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)  # tcpdump opens its socket
        endpoint(sender).run(["ping", "-c", "3", "-i", "0.2", "-W", "1", receiver_ip])
        out, err = capture.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        capture.kill()
        out, err = capture.communicate()
    finally:
        if capture.poll() is None:  # ping failed: do not leave tcpdump behind
            capture.kill()
            capture.wait()
    found = _TOS.findall(out)
    if not found:
        raise HostError("tcpdump", f"no echo request seen in {receiver_ns}: {err[-300:]}")
    return int(found[0], 16)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def cpu_ratio(procs_file: str, reference_procs_file: str, seconds: float, cpu: int = 0) -> float:
    """CPU time of a busy loop in the first group over one in the reference group, both
    pinned to `cpu`, so their shares decide the split."""
    loop = BUSY_LOOP
    starts = [
        subprocess.Popen(
            ["taskset", "-c", str(cpu), "sh", "-c", f"echo $$ > {path}; exec sh -c '{loop}'"]
        )
        for path in (procs_file, reference_procs_file)
    ]
    try:
        time.sleep(seconds)
        used = [_cpu_seconds(p.pid) for p in starts]
    finally:
        for p in starts:
            p.kill()
            p.wait()
    if used[1] == 0:
        raise HostError("cpu ratio", "the reference loop got no CPU time")
    return used[0] / used[1]


BUSY_LOOP = "while :; do :; done"
# After threads move to one CPU, the scheduler's load averages take a while to say so
# (PELT, a 32 ms half-life): readings over the first second favoured the domain by 4-10%.
SETTLE_S = 1.0
REFERENCE_GROUP = "qosplane-reference"  # beside a domain's group, at the default weight


@contextmanager
def _pinned(pids: Sequence[int], cpu: int) -> Iterator[None]:
    """Every thread of the processes `pids` on `cpu` while it lasts, so their groups'
    weights decide the split; each thread's own affinity is put back after."""
    saved: dict[int, set[int]] = {}
    try:
        for pid in pids:
            for task in Path(f"/proc/{pid}/task").iterdir():
                tid = int(task.name)
                try:
                    saved[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {cpu})
                except ProcessLookupError:
                    continue  # a thread that ended between the listing and now
                except OSError as exc:  # EINVAL: `cpu` outside the process's cpuset
                    raise HostError(f"pin thread {tid} to CPU {cpu}", str(exc)) from None
        yield
    finally:
        for tid, cpus in saved.items():
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile: nothing to undo
                os.sched_setaffinity(tid, cpus)


def _run_seconds(pid: int) -> float:
    """Time the threads of `pid` have run, to the nanosecond (schedstat's first field);
    utime and stime are sampled at the tick, which preemption at the tick biases when two
    busy tasks share a CPU (measured: 0.53-0.55 for 512:1024)."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total_ns += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended between the listing and now
    return total_ns / 1e9


def _domain_cpu(pid: int) -> tuple[Callable[[], float], str]:
    """How the CPU time of a domain's whole group is read, and what that reading is: its
    accounting group's (cpuacct on v1, cpu.stat on v2), or where libvirt made none, its
    QEMU process's (every thread; the group holds nothing else)."""
    group = domain_group(pid)
    if group is not None:
        return (lambda: group_cpu_seconds(*group)), "the domain's cgroup"
    return (lambda: _run_seconds(pid)), "the domain's QEMU threads (libvirt made no cpuacct group)"


def domains_cpu_ratio(
    first_pid: int, second_pid: int, seconds: float, cpu: int = 0
) -> tuple[float, str]:
    """CPU time of the first domain's whole group over the second's, both QEMU processes
    on `cpu`, each guest kept busy by the caller; and what was read."""
    readers = [_domain_cpu(pid) for pid in (first_pid, second_pid)]
    with _pinned([first_pid, second_pid], cpu):
        time.sleep(SETTLE_S)
        before = [read() for read, _ in readers]
        time.sleep(seconds)
        used = [read() - b for (read, _), b in zip(readers, before, strict=True)]
    if used[1] <= 0:
        raise HostError("cpu ratio", "the second domain got no CPU time")
    return used[0] / used[1], readers[0][1]


def domain_cpu_ratio(qemu_pid: int, seconds: float, cpu: int = 0) -> tuple[float, bool, str]:
    """CPU time of the domain's whole group over a busy loop's in a sibling group at the
    kernel's default weight, both on `cpu` (the guest kept busy by the caller); whether
    the groups are v2's (whose default weight is 100, not 1024); and what was read."""
    weighted = domain_group(qemu_pid, "cpu")
    if weighted is None:
        raise HostError("cpu ratio", f"libvirt put QEMU {qemu_pid} in no cpu group of its own")
    read, source = _domain_cpu(qemu_pid)
    reference = weighted[0].parent / REFERENCE_GROUP
    try:
        reference.mkdir(exist_ok=True)
    except OSError as exc:
        raise HostError(f"create {reference}", exc.strerror or str(exc)) from None
    loop = subprocess.Popen(
        ["taskset", "-c", str(cpu), "sh", "-c",
         f"echo $$ > {reference}/cgroup.procs; exec sh -c '{BUSY_LOOP}'"]
    )  # fmt: skip
    try:
        with _pinned([qemu_pid], cpu):
            time.sleep(SETTLE_S)
            before = read(), _run_seconds(loop.pid)
            time.sleep(seconds)
            domain_s = read() - before[0]
            reference_s = _run_seconds(loop.pid) - before[1]
    finally:
        loop.kill()
        loop.wait()
        try:
            reference.rmdir()
        except OSError as exc:
            raise HostError(f"remove {reference}", exc.strerror or str(exc)) from None
    if reference_s <= 0:
        raise HostError("cpu ratio", "the reference loop got no CPU time")
    return domain_s / reference_s, weighted[1], source


@dataclass(frozen=True, slots=True)
class DiskRate:
    ops_per_s: float
    bytes_per_s: float
    seconds: float


def disk_rate(
    netns: str, socket_path: str, op: str, request_bytes: int, count: int, span_bytes: int
) -> DiskRate:
    """`count` sequential `op` (read or write) requests of `request_bytes` through the
    volume's NBD export, from inside the instance's namespace, cycling over the first
    `span_bytes` (allocated, so no request is answered from a hole)."""
    args = [
        "qemu-io",
        "--image-opts",
        f"driver=nbd,server.type=unix,server.path={socket_path},export={NBD_EXPORT}",
    ]
    slots = max(1, span_bytes // request_bytes)
    for i in range(count):
        args += ["-c", f"{op} {(i % slots) * request_bytes} {request_bytes}"]
    start = time.monotonic()
    run(in_netns(netns, args))
    seconds = time.monotonic() - start
    return DiskRate(count / seconds, count * request_bytes / seconds, seconds)


# virtio-blk carries at most 20 bytes of a disk's serial (VIRTIO_BLK_ID_BYTES, the kernel's
# include/uapi/linux/virtio_blk.h): a volume id reaches the guest cut to that.
VIRTIO_SERIAL_BYTES = 20
_GUEST_DD = r"""
dev=
for d in /sys/block/vd*; do
  [ "$(cat "$d/serial" 2>/dev/null)" = "$1" ] && dev=/dev/${d##*/}
done
[ -n "$dev" ] || { echo "no disk with serial $1 in the guest" >&2; exit 2; }
if [ "$2" = write ]; then set -- "$@" if=/dev/zero "of=$dev" oflag=direct
else set -- "$@" "if=$dev" of=/dev/null iflag=direct; fi
bs=$3 warmup=$4 count=$5; shift 5
# The disk may hold fewer requests than asked for: round after round from its start.
blocks=$(( $(cat "/sys/block/${dev##*/}/size") * 512 / bs ))
[ "$blocks" -gt 0 ] || { echo "$dev is smaller than one request" >&2; exit 2; }
rounds() {
  left=$1; shift
  while [ "$left" -gt 0 ]; do
    n=$left; [ "$n" -gt "$blocks" ] && n=$blocks
    dd bs="$bs" count="$n" "$@" 2>/dev/null || exit 3
    left=$(( left - n ))
  done
}
rounds "$warmup" "$@"
read start _ < /proc/uptime
rounds "$count" "$@"
read end _ < /proc/uptime
echo "$start $end"
"""


def guest_disk_rate(
    inside: Endpoint, serial: str, op: str, request_bytes: int, count: int, warmup: int = 0
) -> DiskRate:
    """`count` `op` requests of `request_bytes` on the guest's disk whose serial is
    `serial`, by the guest's own dd with O_DIRECT (so each one reaches the virtual disk and
    its QEMU throttle, not the guest's page cache), timed by the guest's clock after
    `warmup` requests have emptied QEMU's bucket."""
    out = inside.run(
        [
            "sh",
            "-c",
            _GUEST_DD,
            "dd",
            serial[:VIRTIO_SERIAL_BYTES],
            op,
            str(request_bytes),
            str(warmup),
            str(count),
        ]
    )
    try:
        start_s, end_s = (float(x) for x in out.split())
    except ValueError:
        raise HostError(f"{inside.label}: dd", f"unexpected output {out!r}") from None
    seconds = max(end_s - start_s, 0.01)  # /proc/uptime counts hundredths
    return DiskRate(count / seconds, count * request_bytes / seconds, seconds)
