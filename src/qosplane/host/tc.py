"""Traffic control: apply a pass's tc lines in one `tc -batch` process, and read a device's
shaping back in the desired state's terms.

One process per pass, never one per command: `tc -batch` applies 1,000 operations in about
0.05 s where 1,000 `tc` processes take about 8 s (shared/reference/host-capabilities.md).
tc stops a batch at its first failing line; the lines the agent writes are idempotent
(`replace`), so the next pass finishes what a failed one left.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qosplane.compiler.enforcement.program import (
    UPLINK_DEFAULT_MINOR,
    parse_htb_class,
    uplink_lines,
)
from qosplane.host.errors import HostError
from qosplane.host.process import run
from qosplane.model.host_state import Shaper, UplinkClass, UplinkQos
from qosplane.model.units import (
    BitsPerSecond,
    Bytes,
    parse_tc_rate_bits,
    parse_tc_size_bytes,
    tc_rate_as_printed,
)

# qdiscs the kernel puts on a device by itself: not ours, not drift
DEFAULT_QDISCS = frozenset({"noqueue", "pfifo_fast", "mq", "fq_codel", "noop"})


@dataclass(frozen=True, slots=True)
class DeviceTc:
    exists: bool
    root: Shaper | None = None  # htb 1: with class 1:1, as qosplane writes it
    root_htb: bool = False  # htb 1: is the root qdisc, whatever its classes
    redirect_to: str | None = None  # ingress u32 -> mirred redirect target
    ingress: bool = False  # an ingress qdisc is there, with or without our filter
    foreign: tuple[str, ...] = ()  # other qdiscs found (kind@parent)


class TrafficControl(Protocol):
    def apply(self, lines: Sequence[str]) -> None:
        """Run tc batch lines, in order; HostError naming the failing line."""

    def observe(self, device: str) -> DeviceTc: ...

    def observe_many(self, devices: Sequence[str]) -> dict[str, DeviceTc]:
        """All of `devices` at once; a real kernel answers in three processes, whatever
        their number."""

    def uplink(self, device: str) -> UplinkQos | None:
        """The agent's guarantee hierarchy on `device`'s egress, read back: the link's
        rate from class 1:1, each class with a MAC filter and the link as its ceil. None:
        no htb root 1: there, or no device."""

    def set_uplink(self, device: str, qos: UplinkQos | None) -> None:
        """Make `device`'s egress exactly `qos` (None: remove the agent's hierarchy)."""


def _json_arrays(text: str) -> list[list[dict[str, Any]]]:
    """The JSON arrays a `tc -j -batch` run prints one after another."""
    decoder = json.JSONDecoder()
    out: list[list[dict[str, Any]]] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return out
        value, index = decoder.raw_decode(text, index)
        out.append(value)


def _device_tc(
    qdiscs: list[dict[str, Any]], class_text: str, filters: list[dict[str, Any]]
) -> DeviceTc:
    root_htb = any(
        q.get("kind") == "htb" and q.get("root") and q.get("handle") == "1:" for q in qdiscs
    )
    ours = {("htb", "1:"), ("pfifo", "2:"), ("ingress", "ffff:")}
    foreign = tuple(
        f"{q['kind']}@{q.get('parent', 'root')}"
        for q in qdiscs
        if (q.get("kind"), q.get("handle")) not in ours and q.get("kind") not in DEFAULT_QDISCS
    )
    redirect = None
    for f in filters:
        for action in f.get("options", {}).get("actions", []):
            if action.get("kind") == "mirred" and action.get("mirred_action") == "redirect":
                redirect = action.get("to_dev")
    return DeviceTc(
        exists=True,
        root=parse_htb_class(class_text) if root_htb else None,
        root_htb=root_htb,
        redirect_to=redirect,
        ingress=any(q.get("kind") == "ingress" for q in qdiscs),
        foreign=foreign,
    )


_CLASS = re.compile(
    r"^class htb 1:([0-9a-f]+) (?:root|parent 1:[0-9a-f]+) .*?rate (\S+) ceil (\S+)"
)
_FLOWID = re.compile(r"\*flowid 1:([0-9a-f]+)")
_MATCH = re.compile(r"^\s*match ([0-9a-f]{8})/([0-9a-f]{8}) at (-?\d+)")


def parse_uplink(device: str, qdiscs: str, classes: str, filters: str) -> UplinkQos | None:
    """`tc qdisc/class/filter show dev DEVICE` text as the UplinkQos it holds, with its
    default class's rate. An htb root of another shape (another default class, or one
    not borrowing up to the link) reads as a link of 0 bit/s, which equals no desired
    hierarchy."""
    root = re.search(r"^qdisc htb 1: root .*?default (\S+)", qdiscs, re.MULTILINE)
    if root is None:
        return None
    rates: dict[int, tuple[BitsPerSecond, BitsPerSecond]] = {}
    for line in classes.splitlines():
        found = _CLASS.match(line)
        if found:
            minor = int(found.group(1), 16)
            rates[minor] = (parse_tc_rate_bits(found.group(2)), parse_tc_rate_bits(found.group(3)))
    if 1 not in rates:
        return None
    link = rates[1][0]
    macs: dict[int, str] = {}
    flow: int | None = None
    words: dict[int, tuple[str, str]] = {}
    for line in [*filters.splitlines(), "filter end"]:
        if line.startswith("filter"):
            whole = words.get(-8, ("", ""))[1] == "ffffffff"
            if flow is not None and set(words) == {-8, -4} and whole and words[-4][1] == "ffff0000":
                mac = words[-8][0] + words[-4][0][:4]
                macs[flow] = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
            found = _FLOWID.search(line)
            flow, words = (int(found.group(1), 16) if found else None), {}
            continue
        match = _MATCH.match(line)
        if match:
            words[int(match.group(3))] = (match.group(1), match.group(2))
    out = tuple(
        UplinkClass(minor, macs[minor], rate)
        for minor, (rate, ceil) in sorted(rates.items())
        if minor in macs and ceil == link
    )
    default = rates.get(UPLINK_DEFAULT_MINOR)
    if int(root.group(1), 16) != UPLINK_DEFAULT_MINOR or default is None or default[1] != link:
        return UplinkQos(device, BitsPerSecond(0), out)
    return UplinkQos(device, link, out, default[0])


class RealTrafficControl:
    """The kernel's tc, in network namespace `netns` (None: the agent's own)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def _tc(self, *args: str) -> list[str]:
        return ["tc", *(["-n", self.netns] if self.netns else []), *args]

    def apply(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        run(self._tc("-batch", "-"), input_text="\n".join(lines) + "\n")

    def observe_many(self, devices: Sequence[str]) -> dict[str, DeviceTc]:
        wanted = list(dict.fromkeys(devices))
        if not wanted:
            return {}
        by_device: dict[str, list[dict[str, Any]]] = {}
        for q in json.loads(run(self._tc("-j", "qdisc", "show")) or "[]"):
            by_device.setdefault(q.get("dev", ""), []).append(q)
        present = [d for d in wanted if d in by_device]
        classes: dict[str, str] = {}
        filters: dict[str, list[dict[str, Any]]] = {}
        htb = [d for d in present if any(q.get("kind") == "htb" for q in by_device[d])]
        if htb:
            # Class lines do not name their device, and a device may have none. Each
            # device's section is its qdisc lines (as many as the JSON dump listed) and then
            # its class lines, up to the next device's first qdisc line.
            lines = [line for d in htb for line in (f"qdisc show dev {d}", f"class show dev {d}")]
            text = run(self._tc("-batch", "-"), "\n".join(lines) + "\n").splitlines()
            at = 0
            for device in htb:
                at += len(by_device[device])  # its qdisc lines
                start = at
                while at < len(text) and not text[at].startswith("qdisc "):
                    at += 1
                classes[device] = "\n".join(text[start:at])
        ingress = [d for d in present if any(q.get("kind") == "ingress" for q in by_device[d])]
        if ingress:
            lines = [f"filter show dev {d} parent ffff:" for d in ingress]
            arrays = _json_arrays(run(self._tc("-j", "-batch", "-"), "\n".join(lines) + "\n"))
            filters = dict(zip(ingress, arrays, strict=False))
        return {
            d: _device_tc(by_device[d], classes.get(d, ""), filters.get(d, []))
            if d in by_device
            else DeviceTc(exists=False)
            for d in wanted
        }

    def observe(self, device: str) -> DeviceTc:
        return self.observe_many([device])[device]

    def _uplink_texts(self, device: str) -> tuple[str, str, str] | None:
        try:
            qdiscs = run(self._tc("qdisc", "show", "dev", device))
        except HostError as exc:
            if "Cannot find device" in exc.detail:
                return None
            raise
        classes = run(self._tc("class", "show", "dev", device))
        filters = run(self._tc("filter", "show", "dev", device, "parent", "1:"))
        return qdiscs, classes, filters

    def uplink(self, device: str) -> UplinkQos | None:
        texts = self._uplink_texts(device)
        return parse_uplink(device, *texts) if texts is not None else None

    def set_uplink(self, device: str, qos: UplinkQos | None) -> None:
        texts = self._uplink_texts(device)
        present = texts is not None and bool(re.search(r"^qdisc htb 1: root", texts[0], re.M))
        self.apply(uplink_lines(qos, device, present))

    def bandwidth_texts(self, devices: Sequence[str]) -> dict[str, tuple[str, str]]:
        """`tc class show` and the ingress `tc filter show` text of each device, the
        agent's or not (`inspect` reads what libvirt or Neutron put there); empty for a
        device that is not there. One qdisc listing finds which are."""
        present = {q.get("dev") for q in json.loads(run(self._tc("-j", "qdisc", "show")) or "[]")}
        return {
            d: (
                run(self._tc("class", "show", "dev", d)),
                run(self._tc("filter", "show", "dev", d, "parent", "ffff:")),
            )
            if d in present
            else ("", "")
            for d in devices
        }


@dataclass
class FakeDevice:
    root: Shaper | None = None
    root_htb: bool = False
    ingress: bool = False
    redirect_to: str | None = None


@dataclass
class FakeTrafficControl:
    """An in-memory kernel for the lines qosplane writes, failing as tc does (unknown
    device, deleting what is not there, adding what exists), stopping at the first error."""

    devices: dict[str, FakeDevice] = field(default_factory=dict)
    batches: int = 0
    uplinks: dict[str, UplinkQos] = field(default_factory=dict)

    def uplink(self, device: str) -> UplinkQos | None:
        return self.uplinks.get(device)

    def set_uplink(self, device: str, qos: UplinkQos | None) -> None:
        """Held as a kernel would print it back: rates rounded as tc prints them, the
        default class's rate read."""
        self.batches += 1
        if qos is None:
            self.uplinks.pop(device, None)
            return
        self.uplinks[device] = UplinkQos(
            device,
            tc_rate_as_printed(qos.capacity_bits_per_s),
            tuple(
                UplinkClass(c.minor, c.mac, tc_rate_as_printed(c.rate_bits_per_s))
                for c in qos.classes
            ),
            tc_rate_as_printed(qos.default_rate_bits_per_s),
        )

    def add_device(self, name: str) -> None:
        self.devices.setdefault(name, FakeDevice())

    def remove_device(self, name: str) -> None:
        self.devices.pop(name, None)

    def apply(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        self.batches += 1
        for number, line in enumerate(lines, 1):
            try:
                self._line(line.split())
            except (KeyError, ValueError, IndexError) as exc:
                raise HostError("tc -batch -", f"Command failed -:{number}: {exc}") from None

    def _dev(self, words: list[str]) -> FakeDevice:
        name = words[words.index("dev") + 1]
        if name not in self.devices:
            raise KeyError(f'Cannot find device "{name}"')
        return self.devices[name]

    def _line(self, w: list[str]) -> None:
        dev = self._dev(w)
        verb = w[:2]
        if verb == ["qdisc", "replace"] and "root" in w and "htb" in w:
            if dev.root_htb:
                raise ValueError("Change operation not supported by specified qdisc.")
            dev.root_htb = True
        elif verb == ["class", "replace"]:
            if not dev.root_htb:
                raise ValueError("Specified class not found")
            if parse_tc_rate_bits(w[w.index("rate") + 1]) == 0:
                raise ValueError("Illegal 'rate'")
            dev.root = Shaper(
                BitsPerSecond(parse_tc_rate_bits(w[w.index("rate") + 1])),
                BitsPerSecond(parse_tc_rate_bits(w[w.index("ceil") + 1])),
                Bytes(parse_tc_size_bytes(w[w.index("burst") + 1])),
            )
        elif verb == ["qdisc", "replace"] and "pfifo" in w:
            if dev.root is None:
                raise ValueError("Specified class not found")
        elif verb == ["qdisc", "del"] and w[-1] == "root":
            if not dev.root_htb:
                raise ValueError("Cannot delete qdisc with handle of zero")
            dev.root, dev.root_htb = None, False
        elif verb == ["qdisc", "add"] and w[-1] == "ingress":
            if dev.ingress:
                raise ValueError("Exclusivity flag on, cannot modify")
            dev.ingress = True
        elif verb == ["qdisc", "del"] and w[-1] == "ingress":
            if not dev.ingress:
                raise ValueError("Cannot find specified qdisc on specified device")
            dev.ingress, dev.redirect_to = False, None
        elif verb == ["filter", "add"] and "mirred" in w:
            if not dev.ingress:
                raise ValueError("Parent Qdisc doesn't exists")
            target = w[w.index("redirect") + 2]
            if target not in self.devices:
                raise KeyError(f'Cannot find device "{target}"')
            dev.redirect_to = target
        else:
            raise ValueError(f"unsupported by the fake: {' '.join(w)}")

    def observe_many(self, devices: Sequence[str]) -> dict[str, DeviceTc]:
        return {d: self.observe(d) for d in devices}

    def observe(self, device: str) -> DeviceTc:
        dev = self.devices.get(device)
        if dev is None:
            return DeviceTc(exists=False)
        return DeviceTc(
            exists=True,
            root=dev.root,
            root_htb=dev.root_htb,
            redirect_to=dev.redirect_to,
            ingress=dev.ingress,
        )
