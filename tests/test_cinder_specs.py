"""Cinder QoS specs -> the <iotune> one attached volume gets.

Upstream: cinder/volume/qos_specs.py (consumer, default back-end),
cinder/volume/manager.py:VolumeManager._parse_connection_options (per-GB computation),
nova/virt/libvirt/volume/volume.py:LibvirtBaseVolumeDriver.get_config (13 keys), and the
libvirt/QEMU checks of upstream-mapping.md 3.6.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qosplane.model.disk import IoTune
from qosplane.model.errors import InvalidInput
from qosplane.model.units import Bytes, BytesPerSecond, OpsPerSecond
from qosplane.model.volume_qos import DEFAULT_CONSUMER, Consumer
from qosplane.openstack.cinder import (
    FRONT_END_KEYS,
    PER_GB_BASES,
    check_front_end_specs,
    parse_consumer,
    volume_qos,
)

SETTINGS = settings(max_examples=200)
FE = Consumer.FRONT_END


def _cinder_parse_connection_options(specs: dict[str, str], size: int) -> dict[str, object]:
    """VolumeManager._parse_connection_options, per-GB part, as upstream writes it."""
    out: dict[str, object] = dict(specs)
    for option in PER_GB_BASES:
        option_per_gb = f"{option}_per_gb"
        option_per_gb_min = f"{option}_per_gb_min"
        option_max = f"{option}_max"
        if option_per_gb in out:
            minimum_value = int(str(out.pop(option_per_gb_min, 0)))
            value = int(str(out[option_per_gb])) * int(size)
            per_gb_value = max(minimum_value, value)
            max_value = int(str(out.pop(option_max, per_gb_value)))
            out[option] = min(per_gb_value, max_value)
            out.pop(option_per_gb)
    return out


# --- consumer ---------------------------------------------------------------------------


def test_parse_consumer_defaults_to_back_end() -> None:
    # cinder/volume/qos_specs.py: the default consumer is back-end.
    assert parse_consumer(None) is Consumer.BACK_END
    assert DEFAULT_CONSUMER is Consumer.BACK_END


@pytest.mark.parametrize(
    ("text", "consumer"),
    [("front-end", Consumer.FRONT_END), ("back-end", Consumer.BACK_END), ("both", Consumer.BOTH)],
)
def test_parse_consumer_values(text: str, consumer: Consumer) -> None:
    assert parse_consumer(text) is consumer


@pytest.mark.parametrize("value", ["frontend", "Front-End", "", "all", 1, "back_end"])
def test_parse_consumer_refuses_others(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"one of front-end, back-end, both$") as info:
        parse_consumer(value, key="volumes[0].qos_specs.consumer")
    assert info.value.key == "volumes[0].qos_specs.consumer"
    assert info.value.allowed == "one of front-end, back-end, both"


def test_only_front_end_and_both_reach_the_host() -> None:
    assert Consumer.FRONT_END.reaches_host
    assert Consumer.BOTH.reaches_host
    assert not Consumer.BACK_END.reaches_host


# --- plain front-end keys ---------------------------------------------------------------


def test_the_13_front_end_keys() -> None:
    # nova volume.py tune_opts
    assert sorted(FRONT_END_KEYS) == sorted(
        [
            "total_bytes_sec",
            "read_bytes_sec",
            "write_bytes_sec",
            "total_iops_sec",
            "read_iops_sec",
            "write_iops_sec",
            "read_bytes_sec_max",
            "read_iops_sec_max",
            "write_bytes_sec_max",
            "write_iops_sec_max",
            "total_bytes_sec_max",
            "total_iops_sec_max",
            "size_iops_sec",
        ]
    )


@pytest.mark.parametrize("consumer", [Consumer.FRONT_END, Consumer.BOTH])
def test_front_end_keys_copied(consumer: Consumer) -> None:
    qos = volume_qos(
        consumer,
        {"read_bytes_sec": "1000000", "write_iops_sec": "200", "size_iops_sec": "4096"},
        size_gb=10,
        name="gold",
    )
    assert qos.consumer is consumer
    assert qos.name == "gold"
    assert qos.iotune == IoTune(
        read_bytes_per_s=BytesPerSecond(1_000_000),
        write_iops=OpsPerSecond(200),
        size_iops_bytes=Bytes(4096),
    )
    assert qos.per_gb_keys == ()
    assert qos.ignored_keys == ()
    assert qos.specs == (
        ("read_bytes_sec", "1000000"),
        ("size_iops_sec", "4096"),
        ("write_iops_sec", "200"),
    )


# --- per-GB -----------------------------------------------------------------------------


def test_read_iops_per_gb() -> None:
    # 10 IOPS/GB on a 10 GB volume -> read_iops_sec 100.
    qos = volume_qos(FE, {"read_iops_sec_per_gb": "10"}, size_gb=10)
    assert qos.iotune.read_iops == 100
    assert qos.iotune.items() == [("read_iops", 100)]
    assert qos.per_gb_keys == ("read_iops_sec_per_gb",)
    assert qos.ignored_keys == ()


@pytest.mark.parametrize(
    ("base", "field"),
    [
        ("read_iops_sec", "read_iops"),
        ("read_bytes_sec", "read_bytes_per_s"),
        ("write_iops_sec", "write_iops"),
        ("write_bytes_sec", "write_bytes_per_s"),
        ("total_iops_sec", "total_iops"),
        ("total_bytes_sec", "total_bytes_per_s"),
    ],
)
def test_every_per_gb_base(base: str, field: str) -> None:
    qos = volume_qos(FE, {f"{base}_per_gb": "3"}, size_gb=7)
    assert qos.iotune.items() == [(field, 21)]


def test_per_gb_min_is_a_floor() -> None:
    specs = {"read_iops_sec_per_gb": "10", "read_iops_sec_per_gb_min": "500"}
    assert volume_qos(FE, specs, size_gb=10).iotune.read_iops == 500
    assert volume_qos(FE, specs, size_gb=100).iotune.read_iops == 1000
    qos = volume_qos(FE, specs, size_gb=10)
    assert qos.per_gb_keys == ("read_iops_sec_per_gb", "read_iops_sec_per_gb_min")
    assert qos.ignored_keys == ()


def test_max_caps_a_per_gb_value_and_is_removed() -> None:
    # "X_max means two things": with X_per_gb it is a cap and Nova never sees it.
    specs = {"read_iops_sec_per_gb": "10", "read_iops_sec_max": "50"}
    qos = volume_qos(FE, specs, size_gb=10)
    assert qos.iotune.read_iops == 50
    assert qos.iotune.read_iops_max is None
    assert qos.iotune.items() == [("read_iops", 50)]
    # Below the cap the per-GB value stands, still without a burst.
    qos = volume_qos(FE, specs, size_gb=2)
    assert qos.iotune.items() == [("read_iops", 20)]


def test_cap_beats_the_floor() -> None:
    specs = {
        "write_bytes_sec_per_gb": "1000",
        "write_bytes_sec_per_gb_min": "50000",
        "write_bytes_sec_max": "20000",
    }
    assert volume_qos(FE, specs, size_gb=1).iotune.items() == [("write_bytes_per_s", 20000)]


def test_max_without_per_gb_is_a_burst() -> None:
    qos = volume_qos(FE, {"read_iops_sec": "100", "read_iops_sec_max": "200"}, size_gb=10)
    assert qos.iotune.read_iops == 100
    assert qos.iotune.read_iops_max == 200


def test_per_gb_overrides_a_plain_value() -> None:
    # specs[option] = min(...) replaces whatever option held.
    qos = volume_qos(FE, {"read_iops_sec": "5", "read_iops_sec_per_gb": "10"}, size_gb=3)
    assert qos.iotune.read_iops == 30


def test_per_gb_of_another_base_keeps_its_max_as_burst() -> None:
    specs = {"read_iops_sec_per_gb": "10", "write_iops_sec": "10", "write_iops_sec_max": "40"}
    qos = volume_qos(FE, specs, size_gb=10)
    assert qos.iotune.items() == [("read_iops", 100), ("write_iops", 10), ("write_iops_max", 40)]


def test_per_gb_on_zero_size() -> None:
    qos = volume_qos(FE, {"read_iops_sec_per_gb": "10", "read_iops_sec_per_gb_min": "5"}, 0)
    assert qos.iotune.read_iops == 5


# --- back-end and ignored keys ----------------------------------------------------------


def test_back_end_consumer_sends_nothing_to_the_host() -> None:
    specs = {
        "read_iops_sec_per_gb": "10",
        "total_bytes_sec": "1000",
        "vendor:thing": "x",
        "write_iops_sec_per_gb_min": "3",
    }
    qos = volume_qos(Consumer.BACK_END, specs, size_gb=10, name="be")
    assert qos.iotune.is_empty()
    assert qos.consumer is Consumer.BACK_END
    assert qos.per_gb_keys == ("read_iops_sec_per_gb", "write_iops_sec_per_gb_min")
    assert qos.ignored_keys == tuple(sorted(specs))
    assert qos.specs == tuple(sorted(specs.items()))


def test_back_end_consumer_does_not_parse_values() -> None:
    # Cinder does not parse back-end specs; only the driver reads them.
    qos = volume_qos(Consumer.BACK_END, {"read_iops_sec": "fast"}, size_gb=1)
    assert qos.iotune.is_empty()
    assert qos.ignored_keys == ("read_iops_sec",)


def test_unknown_keys_are_recorded_as_ignored() -> None:
    specs = {
        "read_iops_sec": "100",
        "total_iops_sec_max_length": "60",  # libvirt knows it, Nova never sends it
        "group_name": "g",
        "minIOPS": "10",
        "write_iops_sec_per_gb_min": "7",  # a lone *_per_gb_min passes through, unused
    }
    qos = volume_qos(FE, specs, size_gb=10)
    assert qos.iotune.items() == [("read_iops", 100)]
    assert qos.ignored_keys == (
        "group_name",
        "minIOPS",
        "total_iops_sec_max_length",
        "write_iops_sec_per_gb_min",
    )
    assert qos.per_gb_keys == ("write_iops_sec_per_gb_min",)


def test_empty_specs() -> None:
    qos = volume_qos(FE, {}, size_gb=1)
    assert qos.iotune.is_empty()
    assert qos.ignored_keys == ()
    assert qos.per_gb_keys == ()


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "key"),
    [
        ({"read_iops_sec": "fast"}, "read_iops_sec"),
        ({"read_iops_sec": "1.5"}, "read_iops_sec"),
        ({"size_iops_sec": "4k"}, "size_iops_sec"),
        ({"read_iops_sec_per_gb": "ten"}, "read_iops_sec_per_gb"),
        (
            {"read_iops_sec_per_gb": "10", "read_iops_sec_per_gb_min": "x"},
            "read_iops_sec_per_gb_min",
        ),
        ({"read_iops_sec_per_gb": "10", "read_iops_sec_max": "none"}, "read_iops_sec_max"),
        ({"total_bytes_sec_max": ""}, "total_bytes_sec_max"),
    ],
)
def test_non_integer_value_names_the_key(specs: dict[str, str], key: str) -> None:
    # Cinder's int() (per-GB) or libvirt's unsigned long long parse would fail later.
    with pytest.raises(InvalidInput, match=r"not an integer") as info:
        volume_qos(FE, specs, size_gb=10)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


@pytest.mark.parametrize("key", ["read_iops_sec", "total_bytes_sec_max", "read_bytes_sec_per_gb"])
def test_negative_value_refused(key: str) -> None:
    with pytest.raises(InvalidInput, match=r"an integer >= 0") as info:
        volume_qos(FE, {key: "-1"}, size_gb=10)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("total", "part"),
    [
        ("total_iops_sec", "read_iops_sec"),
        ("total_iops_sec", "write_iops_sec"),
        ("total_bytes_sec", "read_bytes_sec"),
        ("total_bytes_sec", "write_bytes_sec"),
    ],
)
def test_total_with_read_or_write_refused(total: str, part: str) -> None:
    # cinder basic-volume-qos.rst and libvirt qemuCheckDiskConfigBlkdeviotune.
    with pytest.raises(InvalidInput, match=r"cannot be set at the same time") as info:
        volume_qos(FE, {total: "100", part: "50"}, size_gb=1)
    assert info.value.key == total
    assert info.value.allowed == f"either {total} or {part}, not both"


def test_total_max_with_read_max_refused() -> None:
    specs = {
        "total_iops_sec": "10",
        "total_iops_sec_max": "20",
        "read_iops_sec_max": "20",
    }
    with pytest.raises(InvalidInput) as info:
        volume_qos(FE, specs, size_gb=1)
    assert info.value.key in {"total_iops_sec_max", "read_iops_sec_max"}


def test_per_gb_total_conflicts_with_plain_read() -> None:
    with pytest.raises(InvalidInput) as info:
        volume_qos(FE, {"total_iops_sec_per_gb": "1", "read_iops_sec": "5"}, size_gb=1)
    assert info.value.key == "total_iops_sec"
    assert "read_iops_sec" in info.value.allowed


@pytest.mark.parametrize(
    ("avg", "high"),
    [
        ("read_iops_sec", "read_iops_sec_max"),
        ("write_iops_sec", "write_iops_sec_max"),
        ("total_iops_sec", "total_iops_sec_max"),
        ("read_bytes_sec", "read_bytes_sec_max"),
        ("write_bytes_sec", "write_bytes_sec_max"),
        ("total_bytes_sec", "total_bytes_sec_max"),
    ],
)
def test_max_below_average_refused(avg: str, high: str) -> None:
    # qemu util/throttle.c:throttle_is_valid: "bps_max/iops_max cannot be lower than bps/iops".
    with pytest.raises(InvalidInput, match=r"a burst limit below its average") as info:
        volume_qos(FE, {avg: "100", high: "50"}, size_gb=1)
    assert info.value.key == high
    assert info.value.allowed == f"an integer >= {avg} (100)"
    tune = volume_qos(FE, {avg: "100", high: "100"}, size_gb=1).iotune
    assert getattr(tune, FRONT_END_KEYS[high]) == 100


def test_max_without_average_refused() -> None:
    # throttle_is_valid: "bps_max/iops_max require corresponding bps/iops values".
    with pytest.raises(InvalidInput, match=r"a burst limit needs its average") as info:
        volume_qos(FE, {"write_bytes_sec_max": "100"}, size_gb=1)
    assert info.value.key == "write_bytes_sec_max"


def test_size_iops_without_an_iops_limit_refused() -> None:
    # throttle_is_valid: "iops size requires an iops value to be set".
    with pytest.raises(InvalidInput, match=r"an IOPS limit set as well") as info:
        volume_qos(FE, {"size_iops_sec": "4096", "total_bytes_sec": "1000"}, size_gb=1)
    assert info.value.key == "size_iops_sec"
    for iops in ("total_iops_sec", "read_iops_sec", "write_iops_sec"):
        qos = volume_qos(FE, {"size_iops_sec": "4096", iops: "10"}, size_gb=1)
        assert qos.iotune.size_iops_bytes == 4096


def test_value_above_qemu_max_refused() -> None:
    with pytest.raises(InvalidInput, match=r"an integer from 0 to 1000000000000000") as info:
        volume_qos(FE, {"read_bytes_sec_per_gb": str(10**14)}, size_gb=11)
    assert info.value.key == "read_bytes_sec"


def test_length_limits() -> None:
    with pytest.raises(InvalidInput, match=r"at most 255 characters") as info:
        volume_qos(FE, {"read_iops_sec": "1" * 256}, size_gb=1)
    assert info.value.key == "read_iops_sec"
    with pytest.raises(InvalidInput, match=r"a key of 1 to 255 characters") as key_info:
        volume_qos(FE, {"k" * 256: "1"}, size_gb=1)
    assert key_info.value.key == "specs"


# --- check_front_end_specs --------------------------------------------------------------


def test_check_front_end_specs_accepts_good_specs() -> None:
    check_front_end_specs({"read_iops_sec_per_gb": "10", "read_iops_sec_max": "5000"})
    check_front_end_specs({"total_bytes_sec": "1000", "vendor:x": "y"})
    check_front_end_specs({})


@pytest.mark.parametrize(
    ("specs", "key"),
    [
        ({"read_iops_sec": "fishfood"}, "read_iops_sec"),
        ({"total_iops_sec": "1", "write_iops_sec": "1"}, "total_iops_sec"),
        ({"size_iops_sec": "512"}, "size_iops_sec"),
        ({"read_iops_sec": "10", "read_iops_sec_max": "9"}, "read_iops_sec_max"),
    ],
)
def test_check_front_end_specs_refuses(specs: dict[str, str], key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_front_end_specs(specs)
    assert info.value.key == key


def test_lone_per_gb_min_is_not_parsed() -> None:
    qos = volume_qos(FE, {"read_iops_sec": "10", "read_iops_sec_per_gb_min": "n/a"}, size_gb=1)
    assert qos.iotune.items() == [("read_iops", 10)]
    assert qos.ignored_keys == ("read_iops_sec_per_gb_min",)


# --- properties -------------------------------------------------------------------------

per_gb_ints = st.integers(min_value=0, max_value=10**5)
sizes = st.integers(min_value=0, max_value=2**31 - 1)
limits = st.integers(min_value=0, max_value=10**14)


@SETTINGS
@given(
    st.sampled_from(PER_GB_BASES),
    per_gb_ints,
    sizes,
    st.none() | limits,
    st.none() | limits,
)
def test_per_gb_property(
    base: str, per_gb: int, size: int, floor: int | None, cap: int | None
) -> None:
    specs = {f"{base}_per_gb": str(per_gb)}
    if floor is not None:
        specs[f"{base}_per_gb_min"] = str(floor)
    if cap is not None:
        specs[f"{base}_max"] = str(cap)
    qos = volume_qos(FE, specs, size_gb=size)
    expected = max(floor or 0, per_gb * size)
    if cap is not None:
        expected = min(expected, cap)
    field = FRONT_END_KEYS[base]
    assert qos.iotune.items() == [(field, expected)]
    assert _cinder_parse_connection_options(specs, size) == {base: expected}
    assert qos.ignored_keys == ()


@SETTINGS
@given(st.sampled_from(PER_GB_BASES), limits, limits)
def test_max_as_burst_property(base: str, avg: int, high: int) -> None:
    specs = {base: str(avg), f"{base}_max": str(high)}
    if high == 0:
        # 0 is "unset" to QEMU: never a burst, never a conflict.
        tune = volume_qos(FE, specs, size_gb=1).iotune
        assert getattr(tune, FRONT_END_KEYS[f"{base}_max"]) == 0
        assert getattr(tune, FRONT_END_KEYS[base]) == avg
    elif avg == 0 or high < avg:
        with pytest.raises(InvalidInput) as info:
            volume_qos(FE, specs, size_gb=1)
        assert info.value.key == f"{base}_max"
    else:
        tune = volume_qos(FE, specs, size_gb=1).iotune
        assert getattr(tune, FRONT_END_KEYS[base]) == avg
        assert getattr(tune, FRONT_END_KEYS[f"{base}_max"]) == high
