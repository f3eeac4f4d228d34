"""OpenFlow as the agent speaks it to Open vSwitch: the pure diff from what a bridge holds
to what a pass wants (hypothesis: applying it converges and touches nothing kept), the
ovs-ofctl text that tools and tests read, and the one-connection channel against a real
ovs-vswitchd (root; its own daemons in a throwaway namespace, userspace datapath), read
back independently with ovs-ofctl."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qosplane.compiler.enforcement.program import (
    OVS_BASE_COOKIE,
    OVS_COOKIE_MASK,
    OVS_COOKIE_MATCH,
    OVS_COOKIE_TAG,
    OVS_TABLE_TO,
    openflow_changes,
    ovs_base_flows,
    ovs_flow_text,
    ovs_meter_ids,
    ovs_port_cookie,
    ovs_port_flows,
    ovs_port_meters,
)
from qosplane.host.errors import HostError, PermanentHostError
from qosplane.host.openflow import OpenFlowChannel
from qosplane.host.ovs import RealSwitch, parse_flow, parse_flows, parse_meters
from qosplane.model.host_state import (
    FlowAdd,
    FlowsDelete,
    Meter,
    MeterDelete,
    MeterPut,
    OpenFlowChange,
    OvsFlow,
    PacketLimit,
    PortQos,
)
from qosplane.model.units import Kilobits, KilobitsPerSecond, Packets, PacketsPerSecond
from tests.hostkit import own_ovs

# --- the pure diff --------------------------------------------------------------------------

meters_st = st.builds(
    Meter,
    st.integers(1, 10**7).map(KilobitsPerSecond),
    st.integers(1, 10**6).map(Kilobits),
)
packet_limits_st = st.builds(
    PacketLimit, st.integers(1, 10**6).map(PacketsPerSecond), st.integers(1, 10**5).map(Packets)
)
port_qos_st = st.builds(
    PortQos,
    st.sampled_from(["tapa", "tapb", "tapc", "tapd"]),
    st.none(),
    st.none() | meters_st,
    st.none() | st.integers(0, 63),
    st.none() | packet_limits_st,
    st.none() | packet_limits_st,
)
MACS = {tap: f"02:00:00:00:00:0{tap[-1]}" for tap in ("tapa", "tapb", "tapc", "tapd")}
VLANS = {"tapa": 1, "tapb": 1, "tapc": 2, "tapd": 2}


def _simulate(
    flows: dict[int, set[OvsFlow]],
    meters: dict[int, Meter | PacketLimit | None],
    changes: tuple[OpenFlowChange, ...],
) -> None:
    """What OVS does with the changes, in order, refusing what it would refuse."""
    for change in changes:
        if isinstance(change, MeterPut):
            assert (change.meter_id in meters) == change.modify, "add of an existing meter"
            meters[change.meter_id] = change.meter
        elif isinstance(change, MeterDelete):
            meters.pop(change.meter_id)
            for cookie in list(flows):  # OpenFlow: a deleted meter takes its flows along
                flows[cookie] = {f for f in flows[cookie] if f.meter_id != change.meter_id}
                if not flows[cookie]:
                    del flows[cookie]
        elif isinstance(change, FlowsDelete):
            flows.pop(change.cookie, None)
        else:
            flow = change.flow
            assert flow.meter_id is None or flow.meter_id in meters, "flow naming no meter"
            flows.setdefault(flow.cookie, set()).add(flow)


@given(
    before=st.lists(port_qos_st, max_size=4, unique_by=lambda q: q.port),
    after=st.lists(port_qos_st, max_size=4, unique_by=lambda q: q.port),
    kept=st.sets(st.sampled_from(["tapa", "tapb", "tapc", "tapd"])),
    stray_meter=st.none() | st.integers(50, 60),
)
def test_the_diff_converges_in_an_order_ovs_accepts_and_leaves_kept_ports_alone(
    before: list[PortQos], after: list[PortQos], kept: set[str], stray_meter: int | None
) -> None:
    ofport = {"tapa": 1, "tapb": 2, "tapc": 3, "tapd": 4}

    def state(
        ports: list[PortQos],
    ) -> tuple[dict[int, set[OvsFlow]], dict[int, Meter | PacketLimit | None]]:
        flows = {
            ovs_port_cookie(q.port): set(
                ovs_port_flows(q, ofport[q.port], MACS[q.port], VLANS[q.port])
            )
            for q in ports
        }
        flows[OVS_BASE_COOKIE] = set(ovs_base_flows())
        meters: dict[int, Meter | PacketLimit | None] = {}
        for q in ports:
            meters |= ovs_port_meters(q, ofport[q.port])
        return {c: f for c, f in flows.items() if f}, meters

    flows, meters = state(before)
    if not before:
        del flows[OVS_BASE_COOKIE]  # a new bridge: not even the pipeline yet
    if stray_meter is not None:
        meters[stray_meter] = None  # a meter of another shape, on the agent's own bridge
    wanted = [q for q in after if q.port not in kept]
    still = [q for q in before if q.port in kept]
    want_flows, want_meters = state(wanted)
    changes = openflow_changes(
        {c: list(f) for c, f in flows.items()},
        meters,
        want_flows,
        {i: m for i, m in want_meters.items() if m is not None},
        kept_cookies={ovs_port_cookie(p) for p in kept},
        kept_meters={m for p in kept for m in ovs_meter_ids(ofport[p])},
    )
    _simulate(flows, meters, changes)
    expect_flows, expect_meters = state(wanted + still)
    assert flows == expect_flows
    assert meters == expect_meters
    again = openflow_changes(
        flows,
        meters,
        want_flows,
        {i: m for i, m in want_meters.items() if m is not None},
        kept_cookies={ovs_port_cookie(p) for p in kept},
        kept_meters={m for p in kept for m in ovs_meter_ids(ofport[p])},
    )
    assert again == ()


def test_a_changed_meter_is_modified_in_place_and_flows_are_left_as_they_are() -> None:
    old = PortQos("tapa", None, Meter(KilobitsPerSecond(3000), Kilobits(2400)), 26)
    new = PortQos("tapa", None, Meter(KilobitsPerSecond(5000), Kilobits(4000)), 26)
    cookie = ovs_port_cookie("tapa")
    changes = openflow_changes(
        {cookie: list(ovs_port_flows(old, 7))},
        {7: old.from_instance},
        {cookie: ovs_port_flows(new, 7)},
        {7: new.from_instance} if new.from_instance else {},
    )
    assert changes == (MeterPut(7, Meter(KilobitsPerSecond(5000), Kilobits(4000)), modify=True),)


flow_st = st.builds(
    OvsFlow,
    st.integers(1, 2**64 - 1),
    st.integers(0, 65535),
    st.integers(0, 65279),
    st.booleans(),
    st.none() | st.integers(1, 2**32 - 256),
    st.none() | st.integers(0, 63),
    table=st.integers(0, 253),
    eth_dst=st.none() | st.sampled_from(["02:00:00:00:00:0a", "fa:16:3e:12:34:56"]),
    goto_table=st.none() | st.integers(1, 254),
    metadata=st.none() | st.integers(1, 4094),
    write_metadata=st.none() | st.integers(1, 4094),
)


@given(flow_st)
def test_the_ovs_ofctl_text_of_a_flow_reads_back_as_that_flow(flow: OvsFlow) -> None:
    assert parse_flow(" " + ovs_flow_text(flow)) == flow


def test_flows_of_another_shape_are_read_as_unrecognised() -> None:
    text = (
        " cookie=0x9051000000000001, table=3, priority=5,udp,in_port=1 actions=drop\n"
        " cookie=0x9051000000000001, priority=190,in_port=1 actions=meter:1,NORMAL\n"
        " priority=0 actions=NORMAL\n"
    )
    flows = parse_flows(text)
    assert list(flows) == [0x9051000000000001]
    odd, ours = flows[0x9051000000000001]
    assert (odd.table, odd.unrecognised) == (3, "udp,action drop,0 outputs (NORMAL or goto_table)")
    assert ours == OvsFlow(0x9051000000000001, 190, 1, False, 1)


# --- the channel against a real ovs-vswitchd ------------------------------------------------


@pytest.fixture
def switch() -> Iterator[RealSwitch]:
    ns = f"qptest-of-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=False, capture_output=True)
    try:
        with own_ovs(ns, f"qpo{uuid.uuid4().hex[:4]}-") as sw:
            yield sw
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _ofctl(switch: RealSwitch, *args: str) -> str:
    mgmt = switch.daemons.mgmt(switch.bridge)
    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", *args[:1], mgmt, *args[1:]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _channel(switch: RealSwitch) -> OpenFlowChannel:
    return OpenFlowChannel(switch.daemons.mgmt_path(switch.bridge))


def test_what_the_channel_writes_ovs_ofctl_reads_back_and_so_does_the_channel(
    switch: RealSwitch,
) -> None:
    """Every shape the agent writes (the pipeline, each port's network metadata, kbps and
    pktps meters both ways, DSCP), read back by the channel and by ovs-ofctl's text."""

    def limit(n: int) -> PacketLimit:
        return PacketLimit(PacketsPerSecond(1000 * n), Packets(100 * n))

    qos = {
        f"tap{i}": PortQos(
            f"tap{i}",
            None,
            Meter(KilobitsPerSecond(1000 * i), Kilobits(800 * i)),
            i,
            limit(i) if i != 2 else None,
            limit(i + 10) if i != 3 else None,
        )
        for i in range(1, 4)
    }
    flows = {
        ovs_port_cookie(p): ovs_port_flows(q, i, f"02:00:00:00:00:0{i}", 7)
        for i, (p, q) in enumerate(qos.items(), 1)
    }
    flows[OVS_BASE_COOKIE] = ovs_base_flows()
    meters: dict[int, Meter | PacketLimit] = {}
    for i, q in enumerate(qos.values(), 1):
        meters |= ovs_port_meters(q, i)
    assert len(meters) == 7
    with _channel(switch) as channel:
        channel.commit(openflow_changes({}, {}, flows, meters))
        read_flows = channel.flows(OVS_COOKIE_TAG << 48, OVS_COOKIE_MASK)
        read_meters = channel.meters()
    by_text = parse_flows(_ofctl(switch, "dump-flows", "--no-stats", OVS_COOKIE_MATCH))
    assert {c: frozenset(f) for c, f in by_text.items()} == flows
    assert {f.cookie for f in read_flows} == set(flows)
    assert frozenset(read_flows) == frozenset().union(*flows.values())
    assert not [f for f in read_flows if f.unrecognised]
    assert parse_meters(_ofctl(switch, "dump-meters")) == meters == read_meters


def test_a_flow_of_someone_else_survives_the_channel_connecting(switch: RealSwitch) -> None:
    """The management socket is a service connection: connecting there must not flush
    the bridge's flows and meters, as replacing its controller would."""
    _ofctl(switch, "add-flow", "cookie=0x1,priority=7,actions=NORMAL")
    _ofctl(switch, "add-meter", "meter=9,kbps,band=type=drop,rate=100")
    with _channel(switch) as channel:
        channel.commit([MeterPut(3, Meter(KilobitsPerSecond(100), Kilobits(80)))])
    assert "cookie=0x1, priority=7" in _ofctl(switch, "dump-flows", "--no-stats")
    assert set(parse_meters(_ofctl(switch, "dump-meters"))) == {3, 9}


def test_each_refusal_names_its_change_and_says_if_retrying_can_help(switch: RealSwitch) -> None:
    meter = Meter(KilobitsPerSecond(100), Kilobits(80))
    with _channel(switch) as channel:
        channel.commit([MeterPut(4, meter)])
        with pytest.raises(HostError, match=r"add meter 4: .*OFPMMFC_METER_EXISTS") as exists:
            channel.commit([MeterPut(4, meter)])
        assert exists.value.retryable
        good = OvsFlow(ovs_port_cookie("tapz"), 190, 1, False, 4)
        # A flow naming a meter that is not there: the meter went away between the pass's
        # read and its write, which the next pass repairs.
        gone = OvsFlow(ovs_port_cookie("tapy"), 190, 2, False, 99)
        with pytest.raises(HostError, match=r"OFPMMFC_INVALID_METER") as raced:
            channel.commit([FlowAdd(gone)])
        assert raced.value.retryable
        # A table OVS does not have: refused whatever the next pass does.
        bad = OvsFlow(ovs_port_cookie("tapy"), 190, 2, table=255)
        with pytest.raises(PermanentHostError, match=r"1 of 2 refused.*priority=190: ") as e:
            channel.commit([FlowAdd(good), FlowAdd(bad)])
        assert f"cookie={bad.cookie:#x}" in str(e.value)
        # The change before the refused one still landed: the next pass sees it.
        assert channel.flows(good.cookie, (1 << 64) - 1) == [good]


def test_a_bridge_without_openflow13_and_a_missing_socket_are_told_apart(
    switch: RealSwitch, tmp_path: Path
) -> None:
    with pytest.raises(HostError, match="connect OpenFlow") as missing:
        OpenFlowChannel(tmp_path / "nothing.mgmt")
    assert missing.value.retryable  # vswitchd may be restarting
    subprocess.run(
        [
            "ovs-vsctl",
            f"--db={switch.daemons.db}",
            "set",
            "bridge",
            switch.bridge,
            "protocols=OpenFlow10",
        ],
        check=True,
    )
    try:
        with pytest.raises(PermanentHostError, match="must include OpenFlow13"):
            _channel(switch)
        # A bridge that also allows later versions says hello in its highest: 1.3 is
        # still what both speak.
        subprocess.run(
            ["ovs-vsctl", f"--db={switch.daemons.db}", "set", "bridge", switch.bridge,
             "protocols=OpenFlow10,OpenFlow13,OpenFlow14"],
            check=True,
        )  # fmt: skip
        with _channel(switch) as channel:
            assert channel.meters() == {}
    finally:
        subprocess.run(
            [
                "ovs-vsctl",
                f"--db={switch.daemons.db}",
                "set",
                "bridge",
                switch.bridge,
                "protocols=OpenFlow10,OpenFlow13",
            ],
            check=True,
        )


def test_thousands_of_refusals_come_back_named_not_as_a_timeout(switch: RealSwitch) -> None:
    """vswitchd stops reading a connection whose replies back up: the changes go in
    batches, each behind its own barrier, so every refusal is read and named."""
    flows = [FlowAdd(OvsFlow(0x9051_0000_0000_0000 | i, 190, i, table=255)) for i in range(1, 1201)]
    with _channel(switch) as channel, pytest.raises(PermanentHostError) as refused:
        channel.commit(flows)
    text = str(refused.value)
    assert "(1200 of 1200 refused)" in text
    assert "add flow cookie=0x9051000000000001 priority=190: " in text
    assert text.endswith("; and 1195 more")


def test_unplugging_a_port_removes_all_three_of_its_meters(switch: RealSwitch) -> None:
    ns = switch.daemons.netns
    assert ns is not None
    subprocess.run(
        ["ip", "-n", ns, "link", "add", "tapm1", "type", "veth", "peer", "name", "ethm1"],
        check=True,
    )
    subprocess.run(["ip", "-n", ns, "link", "set", "tapm1", "up"], check=True)
    switch.plug("tapm1", network_id="n", owner="i", mac="02:00:00:00:00:01")
    limit = PacketLimit(PacketsPerSecond(1000), Packets(100))
    qos = PortQos("tapm1", None, Meter(KilobitsPerSecond(1000), Kilobits(800)), None, limit, limit)
    assert switch.apply([qos]).failed == {}
    assert len(parse_meters(_ofctl(switch, "dump-meters"))) == 3
    switch.unplug("tapm1")
    assert parse_meters(_ofctl(switch, "dump-meters")) == {}


def test_a_packet_rate_to_an_instance_counts_only_its_own_networks_senders() -> None:
    """Every port's packets carry its network as metadata from table 0; table 60 meters a
    packet to a MAC only with its network, so equal MACs on two networks stay apart."""
    limit = PacketLimit(PacketsPerSecond(1000), Packets(100))
    one = ovs_port_flows(PortQos("tapa", packets_to_instance=limit), 1, "02:00:00:00:00:01", 5)
    two = ovs_port_flows(PortQos("tapb", packets_to_instance=limit), 2, "02:00:00:00:00:01", 6)
    (to_one,) = [f for f in one if f.table == OVS_TABLE_TO]
    (to_two,) = [f for f in two if f.table == OVS_TABLE_TO]
    assert (to_one.eth_dst, to_one.metadata) == ("02:00:00:00:00:01", 5)
    assert (to_two.eth_dst, to_two.metadata) == ("02:00:00:00:00:01", 6)
    # A port with no QoS still marks what it sends with its network.
    (classify,) = ovs_port_flows(PortQos("tapc"), 3, None, 5)
    assert (classify.table, classify.in_port, classify.write_metadata) == (0, 3, 5)
    with pytest.raises(ValueError, match="MAC and VLAN"):
        ovs_port_flows(PortQos("tapd", packets_to_instance=limit), 4, "02:00:00:00:00:04", None)


def test_the_channel_reads_a_flow_of_another_shape_as_ovs_ofctl_does(switch: RealSwitch) -> None:
    """The channel's own decoder (os-ken's was the slow half of a quiet pass) against
    ovs-ofctl's text on flows the agent never writes: both keep what differs."""
    for flow in (
        "cookie=0x9051000000000001,table=3,priority=5,udp,in_port=1,actions=drop",
        "cookie=0x9051000000000001,priority=6,ipv6,dl_dst=02:00:00:00:00:01/ff:ff:ff:00:00:00,"
        "actions=set_field:10->ip_dscp,output:2",
        "cookie=0x9051000000000002,priority=7,metadata=0x5/0xff,actions=NORMAL,write_metadata:0x1/0x1",
    ):
        _ofctl(switch, "add-flow", flow)
    with _channel(switch) as channel:
        read = channel.flows(OVS_COOKIE_TAG << 48, OVS_COOKIE_MASK)
    by_text = parse_flows(_ofctl(switch, "dump-flows", "--no-stats", OVS_COOKIE_MATCH))
    assert len(read) == 3
    assert all(f.unrecognised for f in read)
    assert {(f.cookie, f.table, f.priority) for f in read} == {
        (f.cookie, f.table, f.priority) for flows in by_text.values() for f in flows
    }
    assert all(f.unrecognised for flows in by_text.values() for f in flows)
