# Sourced by the scripts: make sure the project's virtual environment exists and is current.
# Installs the package (editable) with its dev extras when pyproject.toml changed.
VENV="${QOSPLANE_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.qosplane-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/pip" install --quiet -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c "import qosplane" 
  touch "$stamp"
fi
# libvirt-python compiles against libvirt's headers: installed when they are present
# (scripts/host-packages puts them there), so the libvirt driver's tests can run.
if pkg-config --exists libvirt 2>/dev/null && ! "$VENV/bin/python" -c "import libvirt" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet -e ".[dev,libvirt]" 2>&1 | grep -v '^WARNING: Location' || true
fi
export VENV

# The real OpenStack client, pinned, in a venv of its own (its dependency tree must not
# leak into qosplane's): the end-to-end tests drive `qosplane serve` with it.
OSC_VENV="${QOSPLANE_OSC_VENV:-$PWD/.venv-osc}"
OSC_VERSION="10.5.0"
if [ ! -x "$OSC_VENV/bin/openstack" ] || [ ! -f "$OSC_VENV/.osc-$OSC_VERSION" ]; then
  "$PYTHON" -m venv "$OSC_VENV"
  "$OSC_VENV/bin/pip" install --quiet "python-openstackclient==$OSC_VERSION" "openstacksdk==4.22.0" \
    2>&1 | grep -v '^WARNING: Location' || true
  "$OSC_VENV/bin/openstack" --version >/dev/null && touch "$OSC_VENV/.osc-$OSC_VERSION"
fi
export OSC_VENV

# Upstream's API test suite, pinned, in a venv of its own: tests/test_tempest.py runs
# tempest's QoS, Cinder QoS, flavor and identity sets against a `qosplane serve`.
TEMPEST_VENV="${QOSPLANE_TEMPEST_VENV:-$PWD/.venv-tempest}"
TEMPEST_VERSION="47.0.0"
NTP_VERSION="3.3.0"
if [ ! -x "$TEMPEST_VENV/bin/tempest" ] || [ ! -f "$TEMPEST_VENV/.tempest-$TEMPEST_VERSION-$NTP_VERSION" ]; then
  "$PYTHON" -m venv "$TEMPEST_VENV"
  "$TEMPEST_VENV/bin/pip" install --quiet "tempest==$TEMPEST_VERSION" \
    "neutron-tempest-plugin==$NTP_VERSION" 2>&1 | grep -v '^WARNING: Location' || true
  "$TEMPEST_VENV/bin/tempest" --version >/dev/null \
    && touch "$TEMPEST_VENV/.tempest-$TEMPEST_VERSION-$NTP_VERSION"
fi
export TEMPEST_VENV
