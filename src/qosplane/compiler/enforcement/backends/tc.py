"""tc on a Linux bridge or netns host: an htb shaper on the tap for what goes to the
instance, and an ifb fed by a mirred redirect, shaped with htb, for what comes from it
(this kernel has no `tc police`: it shapes instead, and says so). Two backends, one module:
they share the device and its rendering. The commands that take a device from what it
shows to what it should show are here too, pure (`device_commands`)."""

from __future__ import annotations

import re

from qosplane.compiler.enforcement.base import (
    FROM_GUEST,
    TO_GUEST,
    Claim,
    Decision,
    Desired,
    shaper_of,
)
from qosplane.model.host_state import Capabilities, DeviceQos, Mechanism, ObservedDevice, Shaper
from qosplane.model.plan import Rate
from qosplane.model.units import (
    BitsPerSecond,
    Bytes,
    parse_tc_rate_bits,
    parse_tc_size_bytes,
    tc_burst_resolution_bytes,
    tc_rate_as_printed,
    tc_rate_bits,
    tc_size_bytes,
)

PFIFO_LIMIT_PACKETS = 1000  # an ifb's txqueuelen is 32: the leaf queue must not be


class TcShaper:
    """To the instance: htb on the tap's root."""

    name = "tc-htb"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind != "bandwidth" or claim.direction != TO_GUEST:
            return None
        if not caps.htb:
            return Decision.refused("this kernel has no htb")
        assert isinstance(claim.limit, Rate)
        desired.shape(claim.device, True, shaper_of(claim.limit, policer=False))
        return Decision.applied(Mechanism.SHAPE_HTB.value)


class IfbShaper:
    """From the instance: the tap's ingress redirected to an ifb, shaped there."""

    name = "ifb"

    def take(self, claim: Claim, caps: Capabilities, desired: Desired) -> Decision | None:
        if claim.kind != "bandwidth" or claim.direction != FROM_GUEST:
            return None
        if not (caps.ifb_mirred and caps.htb):
            return Decision.refused("neither ifb+mirred nor tc police is available")
        assert isinstance(claim.limit, Rate)
        desired.shape(claim.device, False, shaper_of(claim.limit, policer=True))
        reason = "" if caps.tc_police else "tc police is not available: shaping instead"
        return Decision.applied(Mechanism.SHAPE_IFB.value, reason=reason)


def devices(desired: Desired) -> tuple[DeviceQos, ...]:
    return tuple(
        DeviceQos(
            d,
            parts.to_instance,
            parts.from_instance,
            parts.dscp,
            parts.packets_to_instance,
            parts.packets_from_instance,
        )
        for d, parts in sorted(desired.devices.items())
    )


def _shaper_lines(dev: str, shaper: Shaper) -> list[str]:
    return [
        f"qdisc replace dev {dev} root handle 1: htb default 1",
        f"class replace dev {dev} parent 1: classid 1:1 htb "
        f"rate {tc_rate_bits(shaper.rate_bits_per_s)} ceil {tc_rate_bits(shaper.ceil_bits_per_s)} "
        f"burst {tc_size_bytes(shaper.burst_bytes)}",
        f"qdisc replace dev {dev} parent 1:1 handle 2: pfifo limit {PFIFO_LIMIT_PACKETS}",
    ]


def root_commands(
    dev: str, desired: Shaper | None, observed: Shaper | None, htb_present: bool
) -> list[str]:
    """tc batch lines taking `dev`'s root from `observed` to `desired` (none when equal).

    htb refuses `qdisc replace` of itself ("Change operation not supported"), so an
    existing htb root keeps its qdisc and only its class changes; an htb root without our
    class is deleted and rebuilt; any other root qdisc is replaced."""
    if same_shaper(desired, observed) and (desired is None) == (not htb_present):
        return []
    if desired is None:
        return [f"qdisc del dev {dev} root"] if htb_present else []
    lines = _shaper_lines(dev, desired)
    if htb_present and observed is not None:
        return [lines[1]]
    if htb_present:
        return [f"qdisc del dev {dev} root", *lines]
    return lines


def redirect_commands(
    dev: str, ifb: str, wanted: bool, current: str | None, ingress: bool
) -> list[str]:
    """The ingress qdisc and u32 filter that steer everything `dev` receives (what the
    instance sends) to `ifb`. Anything else on the ingress (no filter, a filter to a
    deleted or other device) is replaced whole."""
    if (wanted and current == ifb) or (not wanted and not ingress):
        return []
    lines = [f"qdisc del dev {dev} ingress"] if ingress else []
    if wanted:
        lines += [
            f"qdisc add dev {dev} handle ffff: ingress",
            f"filter add dev {dev} parent ffff: protocol all prio 1 u32 match u32 0 0 "
            f"action mirred egress redirect dev {ifb}",
        ]
    return lines


def same_shaper(desired: Shaper | None, observed: Shaper | None) -> bool:
    """Equal as tc reads back: rates exactly as tc prints the desired ones (it divides by
    1000 with truncation), bursts within 2%, 2 KiB or tc's microsecond resolution at the
    rate (htb keeps a burst as a time at the rate and tc prints sizes rounded to KiB or
    MiB; above about 8 Gbit/s the microseconds are the coarser)."""
    if desired is None or observed is None:
        return desired is observed
    burst_gap = abs(desired.burst_bytes - observed.burst_bytes)
    allowed = max(
        0.02 * max(desired.burst_bytes, observed.burst_bytes),
        2048,
        tc_burst_resolution_bytes(desired.rate_bits_per_s),
    )
    return (
        tc_rate_as_printed(desired.rate_bits_per_s) == observed.rate_bits_per_s
        and tc_rate_as_printed(desired.ceil_bits_per_s) == observed.ceil_bits_per_s
        and burst_gap <= allowed
    )


def device_commands(desired: DeviceQos, observed: ObservedDevice) -> list[str]:
    """Every tc line for one device and its ifb; empty when the device is converged."""
    lines = root_commands(
        desired.device, desired.to_instance, observed.qos.to_instance, observed.root_htb
    )
    wanted = desired.from_instance is not None
    lines += redirect_commands(
        desired.device, desired.ifb, wanted, observed.redirect_to, observed.ingress
    )
    if wanted:
        lines += root_commands(
            desired.ifb, desired.from_instance, observed.qos.from_instance, observed.ifb_root_htb
        )
    return lines


_CLASS = re.compile(
    r"class htb 1:1 (?:root|parent 1:)\S*.*?rate (\S+) ceil (\S+) burst (\S+)", re.DOTALL
)


def parse_htb_class(text: str) -> Shaper | None:
    """Class 1:1 from `tc class show` text (htb classes have no JSON output in iproute2
    6.1)."""
    match = _CLASS.search(text)
    if match is None:
        return None
    rate, ceil, burst = match.groups()
    return Shaper(
        BitsPerSecond(parse_tc_rate_bits(rate)),
        BitsPerSecond(parse_tc_rate_bits(ceil)),
        Bytes(parse_tc_size_bytes(burst)),
    )
