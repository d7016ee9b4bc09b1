"""The emulated hardware: controllers with their port counts and cores."""

from __future__ import annotations

from dataclasses import dataclass

from qopemu.qmconfig import ANALOG_INPUTS, ANALOG_OUTPUTS, DIGITAL_INPUTS, DIGITAL_OUTPUTS
from qopemu.settings import ControllerSpec


@dataclass(frozen=True)
class Hardware:
    controllers: tuple[ControllerSpec, ...]

    def port_counts(self) -> dict[str, dict[str, int]]:
        """controller -> port family -> number of ports, the shape `qmconfig.from_pb` checks configs against."""
        return {
            c.name: {
                ANALOG_OUTPUTS: c.analog_outputs,
                ANALOG_INPUTS: c.analog_inputs,
                DIGITAL_OUTPUTS: c.digital_outputs,
                DIGITAL_INPUTS: c.digital_inputs,
            }
            for c in self.controllers
        }

    def cores(self, controller: str) -> int:
        return next(c.cores for c in self.controllers if c.name == controller)

    def names(self) -> list[str]:
        return [c.name for c in self.controllers]

    def describe(self) -> str:
        return ", ".join(
            f"{c.name} (OPX+: {c.analog_outputs} AO, {c.analog_inputs} AI, {c.digital_outputs} DO, "
            f"{c.digital_inputs} DI, {c.cores} cores)"
            for c in self.controllers
        )
