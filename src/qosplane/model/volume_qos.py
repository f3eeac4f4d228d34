"""Cinder QoS specs as they reach a host: consumer and the front-end limits."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from qosplane.model.disk import IoTune


class Consumer(enum.Enum):
    FRONT_END = "front-end"
    BACK_END = "back-end"
    BOTH = "both"

    @property
    def reaches_host(self) -> bool:
        """Only front-end and both specs travel in connection_info to the hypervisor."""
        return self is not Consumer.BACK_END


DEFAULT_CONSUMER = Consumer.BACK_END  # cinder/volume/qos_specs.py


@dataclass(frozen=True, slots=True)
class VolumeQos:
    """The QoS of one attached volume after Cinder's per-GB computation.

    `iotune` is what Nova would put in `<iotune>` (empty for back-end specs);
    `per_gb_keys` names the *_per_gb keys that were present (computed or, for back-end,
    lost); `ignored_keys` names keys Nova's volume driver would not read.
    """

    consumer: Consumer = DEFAULT_CONSUMER
    iotune: IoTune = field(default_factory=IoTune)
    name: str = ""
    specs: tuple[tuple[str, str], ...] = ()
    per_gb_keys: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()
