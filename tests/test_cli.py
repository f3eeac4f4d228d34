"""`qosplane plan` as a user runs it: a subprocess of the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

QOSPLANE = shutil.which("qosplane", path=str(Path(sys.executable).parent))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    assert QOSPLANE is not None, "the qosplane console script is not installed in this venv"
    return subprocess.run([QOSPLANE, *args], capture_output=True, text=True, check=False)


def test_plan_json_has_the_contract_keys() -> None:
    result = run("plan", str(EXAMPLES / "m1-resquota.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in (
        "domain_xml",
        "qemu_drives",
        "cgroup",
        "tc",
        "ovs",
        "effective",
        "errors",
        "warnings",
    ):
        assert key in data
    assert data["cgroup"]["v1"]["cpu.shares"] == "512"
    assert data["qemu_drives"]["vda"].endswith(
        "throttling.bps-read=1000000,throttling.bps-write=1024000"
    )


def test_plan_report_is_per_layer_and_readable() -> None:
    result = run("plan", str(EXAMPLES / "vm-neutron-qos.yaml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in (
        "== Effective QoS",
        "== cgroup ==",
        "== QEMU -drive ==",
        "== tc (libvirt) ==",
        "== Open vSwitch ==",
        "== Errors ==",
        "== Warnings ==",
    ):
        assert heading in out
    assert (
        "ovs-vsctl set Interface tap679563b6-d1 ingress_policing_rate=3000 ingress_policing_burst=300"
        in out
    )
    assert "burst_bytes=38400" in out


def test_plan_with_errors_exits_1() -> None:
    result = run("plan", str(EXAMPLES / "flavor-and-policy-conflict.yaml"), "--json")
    assert result.returncode == 1
    codes = {e["code"] for e in json.loads(result.stdout)["errors"]}
    assert codes == {"cpu_shares_above_cgroup_v2_max", "burst_below_mtu"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "instance: {uuid: u, name: n}\nflavor: {name: f, extra_specs: {'quota:cpu_sharez': '1'}}\n",
            "quota:cpu_sharez",
        ),
        (
            "instance: {uuid: u, name: n}\nflavor: {name: f}\nports:\n - id: p\n   mac: m\n"
            "   qos_policy: {rules: [{type: dscp_marking, dscp_mark: 27}]}\n",
            "ports[0].qos_policy.rules[0].dscp_mark: got 27; allowed: one of 0, 8, 10",
        ),
        (
            "instance: {uuid: u, name: n}\nflavor: {name: f}\nhost: {cgroup: v3}\n",
            "host.cgroup: got 'v3'; allowed: one of v1, v2",
        ),
        (
            "instance: {uuid: u, name: n}\nflavor: {name: f}\nvolumes: [{id: v, size_gb: 1, "
            "qos_specs: {consumer: frontend}}]\n",
            "volumes[0].qos_specs.consumer",
        ),
        ("instance: {uuid: u, name: n}\nflavr: {}\n", "case.flavr: unknown key"),
        ("[unclosed", "is not valid YAML"),
    ],
)
def test_invalid_case_exits_2_naming_the_key(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(body)
    result = run("plan", str(path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stdout == ""


def test_missing_case_file_exits_2(tmp_path: Path) -> None:
    result = run("plan", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


@pytest.mark.parametrize("rounds", ["0", "999", "-5", "1e3", str(1 << 32)])
def test_serve_refuses_password_hash_rounds_out_of_range(tmp_path: Path, rounds: str) -> None:
    done = run("serve", "--state-dir", str(tmp_path), "--password-hash-rounds", rounds)
    assert done.returncode == 2
    assert f"--password-hash-rounds takes 1000 to {(1 << 32) - 1}, got {rounds!r}" in done.stderr
    assert not (tmp_path / "qosplane.db").exists()  # refused before anything was made


def test_serve_help_names_the_default_password_hash_rounds() -> None:
    from qosplane.store.identity import DEFAULT_PASSWORD_HASH_ROUNDS

    assert f"(default {DEFAULT_PASSWORD_HASH_ROUNDS})" in " ".join(
        run("serve", "--help").stdout.split()
    )
