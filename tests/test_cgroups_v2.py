"""cgroup v2: the plan's cpu limits as cpu.weight and cpu.max, drift named in v2's terms,
and the v2 driver's files.

This host mounts the cpu controller on cgroup v1 (host-capabilities.md §6: the v2
hierarchy has no cpu controller here, and a controller serves one hierarchy at a time),
so no kernel here accepts these files: the driver is exercised on a directory laid out
like a cgroup2 mount, and against the kernel only where the probe finds v2's cpu
controller (a v2-only distribution's host)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qosplane.compiler.enforcement.program import host_program
from qosplane.host.cgroups import CGROUP_V2, RealCgroupsV2
from qosplane.host.probe import V2_CONTROLLERS
from qosplane.model.host_state import Capabilities, CpuQos, Mechanism
from qosplane.model.plan import HostPlan
from qosplane.verify.drift import cpu_drift
from tests.test_host_program import hybrid_plan

V2_ONLY = Capabilities(htb=True, ifb_mirred=True, cgroup_v2=True, cgroup_v2_cpu=True)


def test_the_seed_shares_become_a_v2_weight_with_the_same_number() -> None:
    qos, outcomes = host_program(HostPlan.from_json(hybrid_plan("m1-resquota.yaml")), V2_ONLY)
    assert qos.cpu == CpuQos("instance-00000041", shares=512, v2=True)
    mechanism = {o.kind: o.mechanism for o in outcomes}["cpu_shares"]
    assert mechanism == Mechanism.CGROUP_V2_CPU.value


def test_without_any_cpu_controller_the_limit_is_reported_not_enforceable() -> None:
    _, outcomes = host_program(HostPlan.from_json(hybrid_plan("m1-resquota.yaml")), Capabilities())
    shares = {o.kind: o for o in outcomes}["cpu_shares"]
    assert shares.reason == "no cgroup cpu controller"


def test_v2_drift_uses_v2_names_and_defaults() -> None:
    unset = CpuQos("g", v2=True)
    assert cpu_drift("i", unset, CpuQos("g", 100, None, 100_000, v2=True)) == []
    found = cpu_drift("i", unset, CpuQos("g", 1024, 50_000, 100_000, v2=True))
    assert [(d.aspect, d.desired, d.observed) for d in found] == [
        ("cpu.weight", "100", "1024"),
        ("cpu.max quota", "None", "50000"),
    ]


def _fake_mount(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.subtree_control").write_text("")
    (tmp_path / "cgroup.procs").write_text("")
    return tmp_path


def test_the_v2_driver_writes_weight_and_max_and_reads_them_back(tmp_path: Path) -> None:
    mount = _fake_mount(tmp_path)
    cgroups = RealCgroupsV2("qosplane-t", mount)
    cgroups.apply(CpuQos("instance-1", shares=512, cfs_quota_us=50_000, v2=True))
    group = mount / "qosplane-t" / "instance-1"
    assert (group / "cpu.weight").read_text() == "512"
    assert (group / "cpu.max").read_text() == "50000 100000"
    assert "+cpu" in (mount / "cgroup.subtree_control").read_text()
    assert "+cpu" in (mount / "qosplane-t" / "cgroup.subtree_control").read_text()
    assert cgroups.observe("instance-1") == CpuQos("instance-1", 512, 50_000, 100_000, v2=True)
    cgroups.apply(CpuQos("instance-1", v2=True))  # limits removed: the kernel's defaults
    assert (group / "cpu.weight").read_text() == "100"
    assert (group / "cpu.max").read_text() == "max 100000"
    assert cgroups.observe("instance-1") == CpuQos("instance-1", 100, None, 100_000, v2=True)
    assert cgroups.groups() == {"instance-1"}


def test_the_v2_driver_on_this_kernel(tmp_path: Path) -> None:
    if not (V2_CONTROLLERS.exists() and "cpu" in V2_CONTROLLERS.read_text().split()):
        pytest.skip(
            "this kernel's cpu controller is on cgroup v1 (no 'cpu' in "
            f"{V2_CONTROLLERS}); a kernel setting, not a package CI can install"
        )
    cgroups = RealCgroupsV2(f"qosplane-v2test-{tmp_path.name[-6:]}", CGROUP_V2)
    try:
        cgroups.apply(CpuQos("instance-1", shares=512, cfs_quota_us=50_000, v2=True))
        assert cgroups.observe("instance-1") == CpuQos("instance-1", 512, 50_000, 100_000, v2=True)
    finally:
        cgroups.remove_everything()


def test_a_capability_cache_older_than_a_capability_is_probed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import platform
    from dataclasses import asdict

    from qosplane.host import probe as probe_module

    fresh = Capabilities(cgroup_v2=True, cgroup_v2_cpu=True)
    monkeypatch.setattr(probe_module, "probe", lambda: fresh)
    old = {k: v for k, v in asdict(Capabilities(cgroup_v2=True)).items() if k != "cgroup_v2_cpu"}
    cache = tmp_path / "capabilities.json"
    cache.write_text(json.dumps({"kernel": platform.release(), "capabilities": old}))
    assert probe_module.cached_probe(cache) == fresh
    assert json.loads(cache.read_text())["capabilities"]["cgroup_v2_cpu"] is True
    monkeypatch.setattr(probe_module, "probe", Capabilities)
    assert probe_module.cached_probe(cache) == fresh  # a complete cache is used as it is
