"""Nova flavor extra specs: the `quota:` catalogue validated as Nova's API does (>= 2.86),
and the QoS the libvirt driver derives from it.

Upstream: nova/api/validation/extra_specs/quota.py (validators), base.py:_validate_int
(`int()`, bounds inclusive), flavors_extraspecs.py (255 characters, numbers stringified),
nova/virt/libvirt/designer.py:set_vif_bandwidth_config and config.py (VIF <bandwidth>).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qosplane.model.errors import InvalidInput
from qosplane.model.flavor import CpuTune, VifLimit
from qosplane.model.units import Bytes, BytesPerSecond, Microseconds
from qosplane.openstack.nova import (
    EXTRA_SPEC_MAX_LENGTH,
    LIBVIRT_QUOTA_KEYS,
    QUOTA_KEYS,
    dropped_vif_keys,
    flavor_qos,
    make_flavor,
    validate_extra_spec,
    validate_extra_specs,
)

SETTINGS = settings(max_examples=200)

CPU_KEYS = ["quota:cpu_shares", "quota:cpu_period", "quota:cpu_quota"]
DISK_KEYS = [
    f"quota:disk_{op}_{unit}_sec" for op in ("read", "write", "total") for unit in ("bytes", "iops")
]
VIF_KEYS = [
    f"quota:vif_{way}_{part}"
    for way in ("inbound", "outbound")
    for part in ("average", "peak", "burst")
]
RESOURCES = ("cpu", "memory", "disk_io", "vif")
VMWARE_MIN0_KEYS = [f"quota:{r}_{k}" for r in RESOURCES for k in ("limit", "shares_share")]
VMWARE_RESERVATION_KEYS = [f"quota:{r}_reservation" for r in RESOURCES]
VMWARE_LEVEL_KEYS = [f"quota:{r}_shares_level" for r in RESOURCES]
# Every key Nova's quota.py registers with 'min': 0.
MIN0_KEYS = ["quota:cpu_shares", "quota:cpu_period", *DISK_KEYS, *VIF_KEYS, *VMWARE_MIN0_KEYS]
# int without bounds: quota:cpu_quota (negative = unlimited) and the VMware reservations.
UNBOUNDED_KEYS = ["quota:cpu_quota", *VMWARE_RESERVATION_KEYS]
INT_KEYS = MIN0_KEYS + UNBOUNDED_KEYS
# qosplane's deliberate upper bounds (README: deviations), values no host can honour:
# libvirt's cgroup v1 shares maximum, the kernel's CFS period and quota maxima
# (libvirt vircgroup.h), 2^32-1 KB/s for a VIF rate and tc's 32-bit byte burst in KiB.
MAXIMUM = {
    "quota:cpu_shares": 262144,
    "quota:cpu_period": 1_000_000,
    "quota:cpu_quota": 17592186044415,
    **{k: 4194303 if k.endswith("burst") else 4294967295 for k in VIF_KEYS},
}


def _allowed(key: str) -> str:
    minimum = 0 if key in MIN0_KEYS else None
    maximum = MAXIMUM.get(key)
    if maximum is None:
        return "an integer >= 0" if minimum == 0 else "an integer"
    return f"an integer from {minimum} to {maximum}" if minimum == 0 else f"an integer <= {maximum}"


def test_catalogue_is_exactly_novas() -> None:
    # 3 CPU + 6 disk + 6 VIF libvirt keys, 4 x 4 VMware keys.
    assert sorted(LIBVIRT_QUOTA_KEYS) == sorted(CPU_KEYS + DISK_KEYS + VIF_KEYS)
    assert sorted(QUOTA_KEYS) == sorted(INT_KEYS + VMWARE_LEVEL_KEYS)
    assert len(QUOTA_KEYS) == 31


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", ["0", "1", "1024", "32768", 4096, " 7 ", "1" * 255])
def test_every_int_key_accepts_valid_ints(key: str, value: object) -> None:
    if int(str(value)) > MAXIMUM.get(key, int(str(value))):
        with pytest.raises(InvalidInput, match="out of range") as info:
            validate_extra_spec(key, value)
        assert info.value.allowed == _allowed(key)
    else:
        assert validate_extra_spec(key, value) == str(value)


@pytest.mark.parametrize("key", sorted(MAXIMUM))
def test_values_no_host_can_honour_are_refused_naming_the_range(key: str) -> None:
    top = MAXIMUM[key]
    assert validate_extra_spec(key, str(top)) == str(top)
    for value in (top + 1, 2**63, 2**64):
        with pytest.raises(InvalidInput) as info:
            validate_extra_spec(key, str(value))
        assert (info.value.key, info.value.allowed) == (key, _allowed(key))
        assert str(top) in str(info.value)


@pytest.mark.parametrize("key", INT_KEYS)
def test_numbers_are_stored_as_strings(key: str) -> None:
    # flavors_extraspecs.py: JSON numbers are stringified.
    assert validate_extra_specs({key: 2048}) == {key: "2048"}


@pytest.mark.parametrize("key", ["quota:disk_read_bytes_sec_max", "quota:vif_inbound_floor"])
def test_unknown_quota_key_refused_in_strict_mode(key: str) -> None:
    # upstream-mapping.md 2.1: rejected at microversion >= 2.86.
    with pytest.raises(InvalidInput, match=r"not a valid extra spec") as info:
        validate_extra_spec(key, "100")
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")
    for known in QUOTA_KEYS:
        assert known in info.value.allowed
    assert "quota:cpu_shares" in str(info.value)
    assert "quota:vif_outbound_burst" in str(info.value)


def test_unknown_quota_key_accepted_in_lax_mode() -> None:
    # Below 2.86 Nova stores it and the driver ignores it.
    assert validate_extra_spec("quota:vif_inbound_floor", "100", strict=False) == "100"
    assert validate_extra_spec("quota:whatever", "not-an-int", strict=False) == "not-an-int"
    qos = flavor_qos({"quota:vif_inbound_floor": "100", "quota:cpu_shares": "2048"}, strict=False)
    assert qos.ignored_keys == ("quota:vif_inbound_floor",)
    assert qos.cpu.shares == 2048


def test_flavor_qos_is_strict_by_default() -> None:
    with pytest.raises(InvalidInput) as info:
        flavor_qos({"quota:disk_read_bytes_sec_max": "1"})
    assert info.value.key == "quota:disk_read_bytes_sec_max"


@pytest.mark.parametrize("key", MIN0_KEYS)
@pytest.mark.parametrize("value", ["-1", -1, "-1024"])
def test_negative_refused_for_min0_keys(key: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=r"an integer (>= 0|from 0 to)") as info:
        validate_extra_spec(key, value)
    assert info.value.key == key
    assert info.value.allowed == _allowed(key)
    message = str(info.value)
    assert key in message
    assert str(value) in message


@pytest.mark.parametrize("key", UNBOUNDED_KEYS)
@pytest.mark.parametrize("value", ["-1", "-100000", -5, "0", "17592186044415"])
def test_unbounded_keys_accept_negatives(key: str, value: object) -> None:
    # quota:cpu_quota: "negative value indicates that the instance has infinite bandwidth";
    # VMware reservations are 'type': int with no min.
    assert validate_extra_spec(key, value) == str(value)


def test_cpu_quota_negative_reaches_the_model() -> None:
    qos = flavor_qos({"quota:cpu_quota": "-1", "quota:cpu_period": "100000"})
    assert qos.cpu == CpuTune(
        shares=None, quota_us=Microseconds(-1), period_us=Microseconds(100000)
    )


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", ["fishfood", "1.5", "1e3", "", "0x10", "10 0", 1.5, "one"])
def test_non_integers_refused(key: str, value: object) -> None:
    # base.py:_validate_int uses int(); driver.py would raise ValueError on 'fishfood'.
    with pytest.raises(InvalidInput, match=r"not an integer") as info:
        validate_extra_spec(key, value)
    assert info.value.key == key


@pytest.mark.parametrize("key", ["quota:cpu_shares", "quota:vif_inbound_average", "hw:foo"])
@pytest.mark.parametrize("value", [True, False, None, [1], {"a": 1}])
def test_booleans_and_non_scalars_refused(key: str, value: object) -> None:
    # The flavor extra-spec schema accepts strings and numbers only.
    with pytest.raises(InvalidInput, match=r"a string or a number") as info:
        validate_extra_spec(key, value)
    assert info.value.key == key


@pytest.mark.parametrize("key", VMWARE_LEVEL_KEYS)
@pytest.mark.parametrize("value", ["custom", "high", "normal", "low"])
def test_vmware_shares_level_enum_accepts(key: str, value: str) -> None:
    assert validate_extra_spec(key, value) == value


@pytest.mark.parametrize("key", VMWARE_LEVEL_KEYS)
@pytest.mark.parametrize("value", ["HIGH", "medium", "", "1", 1, " high"])
def test_vmware_shares_level_enum_refuses(key: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=r"one of custom, high, normal, low") as info:
        validate_extra_spec(key, value)
    assert info.value.key == key


def test_vmware_keys_are_ignored_by_libvirt() -> None:
    qos = flavor_qos(
        {
            "quota:cpu_limit": "1000",
            "quota:memory_shares_level": "high",
            "quota:vif_reservation": "-3",
            "quota:cpu_shares": "512",
        }
    )
    assert qos.ignored_keys == (
        "quota:cpu_limit",
        "quota:memory_shares_level",
        "quota:vif_reservation",
    )
    assert qos.cpu.shares == 512


def test_length_limit_on_values() -> None:
    assert validate_extra_spec("hw:x", "a" * EXTRA_SPEC_MAX_LENGTH) == "a" * 255
    assert validate_extra_spec("quota:cpu_limit", "1" * 255) == "1" * 255
    with pytest.raises(InvalidInput, match=r"at most 255 characters") as info:
        validate_extra_spec("hw:x", "a" * 256)
    assert info.value.key == "hw:x"
    with pytest.raises(InvalidInput, match=r"at most 255 characters"):
        validate_extra_spec("quota:cpu_shares", "1" * 256)
    with pytest.raises(InvalidInput, match=r"at most 255 characters"):
        validate_extra_spec("quota:cpu_shares", int("1" * 256))


def test_length_limit_on_keys() -> None:
    key = "hw:" + "k" * 252
    assert len(key) == 255
    assert validate_extra_spec(key, "v") == "v"
    with pytest.raises(InvalidInput, match=r"a key of 1 to 255 characters") as info:
        validate_extra_spec(key + "k", "v")
    assert info.value.key == "extra_specs"
    with pytest.raises(InvalidInput, match=r"a key of 1 to 255 characters"):
        validate_extra_spec("", "v")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hw:cpu_policy", "dedicated"),
        ("hw:mem_page_size", "large"),
        ("aggregate_instance_extra_specs:ssd", "true"),
        ("bogus_namespace:anything", "fishfood"),
        ("no_namespace", "-1"),
        ("quotas:cpu_shares", "fishfood"),  # not the quota: namespace
        ("hw:numa_nodes", 2),
        ("trait:CUSTOM_X", 1.5),
    ],
)
def test_other_namespaces_pass_through(key: str, value: object) -> None:
    assert validate_extra_spec(key, value) == str(value)
    qos = flavor_qos({key: str(value)})
    assert qos.ignored_keys == ()
    assert qos.disk.is_empty()
    assert qos.vif_inbound is None
    assert qos.vif_outbound is None


# --- flavor_qos: the model the libvirt driver builds ------------------------------------


def test_flavor_qos_vif_units() -> None:
    # libvirt <bandwidth>: average/peak kB/s (x1000 bytes/s), burst KiB (x1024 bytes).
    qos = flavor_qos(
        {
            "quota:vif_inbound_average": "32768",
            "quota:vif_inbound_peak": "65536",
            "quota:vif_inbound_burst": "131072",
            "quota:vif_outbound_average": "1024",
        }
    )
    assert qos.vif_inbound == VifLimit(
        average_bytes_per_s=BytesPerSecond(32_768_000),
        peak_bytes_per_s=BytesPerSecond(65_536_000),
        burst_bytes=Bytes(134_217_728),
    )
    assert qos.vif_outbound is not None
    assert qos.vif_outbound.average_bytes_per_s == 1_024_000
    assert qos.vif_outbound.peak_bytes_per_s is None
    assert qos.vif_outbound.burst_bytes is None


def test_flavor_qos_vif_zero_average_is_kept() -> None:
    # nova config.py writes <inbound> when its average is not None; '0' is truthy.
    qos = flavor_qos({"quota:vif_inbound_average": "0"})
    assert qos.vif_inbound is not None
    assert qos.vif_inbound.average_bytes_per_s == 0


def test_flavor_qos_cpu_and_disk() -> None:
    qos = flavor_qos(
        {
            "quota:cpu_shares": "2048",
            "quota:cpu_period": "100000",
            "quota:cpu_quota": "50000",
            "quota:disk_read_bytes_sec": "1000000",
            "quota:disk_write_bytes_sec": "1024000",
            "quota:disk_total_iops_sec": "500",
        }
    )
    assert qos.cpu.shares == 2048
    assert qos.cpu.period_us == 100000
    assert qos.cpu.quota_us == 50000
    # Disk values are bytes/s and IOPS, copied verbatim (imagebackend.Image.disk_qos).
    assert qos.disk.items() == [
        ("read_bytes_per_s", 1_000_000),
        ("write_bytes_per_s", 1_024_000),
        ("total_iops", 500),
    ]
    assert qos.ignored_keys == ()


def test_empty_specs_give_empty_qos() -> None:
    qos = flavor_qos({})
    assert qos.cpu == CpuTune()
    assert qos.disk.is_empty()
    assert qos.vif_inbound is None
    assert qos.vif_outbound is None


@pytest.mark.parametrize(
    ("total", "part"),
    [
        ("quota:disk_total_bytes_sec", "quota:disk_read_bytes_sec"),
        ("quota:disk_total_bytes_sec", "quota:disk_write_bytes_sec"),
        ("quota:disk_total_iops_sec", "quota:disk_read_iops_sec"),
        ("quota:disk_total_iops_sec", "quota:disk_write_iops_sec"),
    ],
)
def test_total_and_read_write_disk_conflict(total: str, part: str) -> None:
    # libvirt qemuCheckDiskConfigBlkdeviotune: "total and read/write ... cannot be set at
    # the same time".
    with pytest.raises(InvalidInput, match=r"cannot be set at the same time") as info:
        flavor_qos({total: "1000", part: "500"})
    assert info.value.key == total
    assert total in info.value.allowed
    assert part in info.value.allowed
    assert part in str(info.value)


def test_total_bytes_with_read_iops_is_fine() -> None:
    qos = flavor_qos({"quota:disk_total_bytes_sec": "1000", "quota:disk_read_iops_sec": "5"})
    assert qos.disk.total_bytes_per_s == 1000
    assert qos.disk.read_iops == 5


def test_total_zero_does_not_conflict() -> None:
    # libvirt tests the values for truth: 0 means unset to QEMU.
    qos = flavor_qos({"quota:disk_total_bytes_sec": "0", "quota:disk_read_bytes_sec": "5"})
    assert qos.disk.total_bytes_per_s == 0
    assert qos.disk.read_bytes_per_s == 5


def test_disk_value_above_qemu_max_refused() -> None:
    with pytest.raises(InvalidInput, match=r"an integer from 0 to 1000000000000000") as info:
        flavor_qos({"quota:disk_read_iops_sec": str(10**15 + 1)})
    assert info.value.key == "quota:disk_read_iops_sec"


@pytest.mark.parametrize(
    ("specs", "dropped"),
    [
        ({"quota:vif_inbound_peak": "1"}, ["quota:vif_inbound_peak"]),
        (
            {"quota:vif_inbound_peak": "1", "quota:vif_inbound_burst": "2"},
            ["quota:vif_inbound_peak", "quota:vif_inbound_burst"],
        ),
        ({"quota:vif_inbound_peak": "1", "quota:vif_inbound_average": "2"}, []),
        (
            {
                "quota:vif_inbound_average": "2",
                "quota:vif_inbound_burst": "2",
                "quota:vif_outbound_burst": "3",
            },
            ["quota:vif_outbound_burst"],
        ),
        (
            {"quota:vif_outbound_peak": "1", "quota:vif_inbound_burst": "3"},
            ["quota:vif_inbound_burst", "quota:vif_outbound_peak"],
        ),
        ({"quota:cpu_shares": "1"}, []),
        ({}, []),
    ],
)
def test_dropped_vif_keys(specs: dict[str, str], dropped: list[str]) -> None:
    # nova config.py: <inbound>/<outbound> only when its average is set; a peak or burst
    # without it is dropped silently.
    assert dropped_vif_keys(specs) == dropped
    qos = flavor_qos(specs)
    for way in ("inbound", "outbound"):
        limit = qos.vif_inbound if way == "inbound" else qos.vif_outbound
        has_average = f"quota:vif_{way}_average" in specs
        assert (limit is not None) == has_average


def test_make_flavor_validates_and_derives_qos() -> None:
    flavor = make_flavor(
        "m1.small", 1, 2048, 20, {"quota:cpu_shares": 1024, "hw:cpu_policy": "shared"}
    )
    assert flavor.extra_specs == {"quota:cpu_shares": "1024", "hw:cpu_policy": "shared"}
    assert flavor.qos.cpu.shares == 1024
    with pytest.raises(InvalidInput) as info:
        make_flavor("m1.small", 1, 2048, 20, {"quota:cpu_shares": "-1"})
    assert info.value.key == "quota:cpu_shares"


# --- properties: nothing valid refused, nothing invalid accepted ------------------------

any_int = st.integers(min_value=-(2**70), max_value=2**70)


@SETTINGS
@given(st.sampled_from(MIN0_KEYS), any_int, st.booleans())
def test_min0_keys_accept_iff_in_range(key: str, number: int, as_text: bool) -> None:
    value: object = str(number) if as_text else number
    if 0 <= number <= MAXIMUM.get(key, number):
        assert validate_extra_spec(key, value) == str(number)
    else:
        with pytest.raises(InvalidInput) as info:
            validate_extra_spec(key, value)
        assert (info.value.key, info.value.allowed) == (key, _allowed(key))


@SETTINGS
@given(st.sampled_from(UNBOUNDED_KEYS), any_int, st.booleans())
def test_keys_without_a_minimum_accept_every_integer_to_their_maximum(
    key: str, number: int, as_text: bool
) -> None:
    value: object = str(number) if as_text else number
    if number <= MAXIMUM.get(key, number):
        assert validate_extra_spec(key, value) == str(number)
    else:
        with pytest.raises(InvalidInput) as info:
            validate_extra_spec(key, value)
        assert info.value.allowed == _allowed(key)


def _nova_accepts_int(text: str, minimum: int | None, maximum: int | None = None) -> bool:
    """nova base.py:_validate_int plus the 255-character limit (and qosplane's maximum)."""
    if len(text) > 255:
        return False
    try:
        number = int(text)
    except ValueError:
        return False
    return (minimum is None or number >= minimum) and (maximum is None or number <= maximum)


@SETTINGS
@given(st.sampled_from(INT_KEYS), st.text(max_size=20))
@example("quota:cpu_shares", "1\x1c")  # str.strip() takes it, int() does not (found by CI)
@example("quota:cpu_shares", " 7 ")
def test_text_values_accepted_iff_int_parses(key: str, text: str) -> None:
    minimum = 0 if key in MIN0_KEYS else None
    if _nova_accepts_int(text, minimum, MAXIMUM.get(key)):
        assert validate_extra_spec(key, text) == text
    else:
        with pytest.raises(InvalidInput) as info:
            validate_extra_spec(key, text)
        assert info.value.key == key


@SETTINGS
@given(
    st.sampled_from(INT_KEYS),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not f.is_integer()),
)
def test_fractional_floats_refused(key: str, value: float) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_extra_spec(key, value)
    assert info.value.key == key


@SETTINGS
@given(
    st.text(
        alphabet=st.characters(codec="ascii", exclude_characters=":"), min_size=1, max_size=30
    ).map(lambda s: "quota:" + s)
)
def test_unknown_quota_keys_refused(key: str) -> None:
    if key in QUOTA_KEYS:
        assert validate_extra_spec(key, "high" if key.endswith("_level") else "1")
    else:
        with pytest.raises(InvalidInput, match=r"not a valid extra spec") as info:
            validate_extra_spec(key, "1")
        assert info.value.key == key
        assert validate_extra_spec(key, "1", strict=False) == "1"


@SETTINGS
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=0, max_value=2**22 - 1),
)
def test_vif_conversion_property(average: int, peak: int, burst: int) -> None:
    qos = flavor_qos(
        {
            "quota:vif_outbound_average": str(average),
            "quota:vif_outbound_peak": str(peak),
            "quota:vif_outbound_burst": str(burst),
        }
    )
    assert qos.vif_outbound == VifLimit(
        average_bytes_per_s=BytesPerSecond(average * 1000),
        peak_bytes_per_s=BytesPerSecond(peak * 1000),
        burst_bytes=Bytes(burst * 1024),
    )
    assert qos.vif_inbound is None
