"""A quantum machine's config as a validated, typed model.

The client sends its config as a `QuaConfig` protobuf (see shared/protocol/QOP2-PROTOCOL.md §8). This module
turns it into plain frozen dataclasses that the platform allocates ports and cores from and the engine compiles
programs against. Every problem found is reported with the config key path a user would write in their Python
dict (``elements.qubit.operations.x``), and *all* problems of a config are collected before anything is rejected,
so a user fixes their config in one round trip instead of one error at a time.

Protobuf stays here: nothing outside this module reads the config message. The model keeps the message as received
(`QmConfig.pb`) only to hand it back to the client (`get_config`) and to edit it for the runtime setters below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

# OPX+ port families, in the spelling of the user's config dict (used in key paths and messages).
ANALOG_OUTPUTS = "analog_outputs"
ANALOG_INPUTS = "analog_inputs"
DIGITAL_OUTPUTS = "digital_outputs"
DIGITAL_INPUTS = "digital_inputs"

_PB_PORT_FIELDS = {
    ANALOG_OUTPUTS: "analogOutputs",
    ANALOG_INPUTS: "analogInputs",
    DIGITAL_OUTPUTS: "digitalOutputs",
    DIGITAL_INPUTS: "digitalInputs",
}


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config. `group` classifies it the way the client prints it: [group]."""

    path: str
    message: str
    group: str = "config"


class ConfigError(Exception):
    """A config that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("; ".join(f'{p.path}: {p.message}' for p in problems))


@dataclass(frozen=True)
class PortRef:
    """A physical port: controller name, port family and 1-based number."""

    controller: str
    kind: str
    number: int

    def __str__(self) -> str:
        return f"{self.controller}.{self.kind}.{self.number}"


@dataclass(frozen=True)
class Port:
    ref: PortRef
    shareable: bool = False
    offset: float = 0.0  # analog ports: DC offset in volts
    delay: int = 0  # analog outputs: ns
    gain_db: int = 0  # analog inputs
    inverted: bool = False  # digital outputs
    filter_feedforward: tuple[float, ...] = ()
    filter_feedback: tuple[float, ...] = ()
    crosstalk: tuple[tuple[int, float], ...] = ()
    threshold: float = 0.0  # digital inputs
    deadtime: int = 0
    polarity: str = "rising"
    # Not under `controllers`, only used by an element: the QM holds it with the defaults (docs/platform.md)
    implied: bool = False


@dataclass(frozen=True)
class Controller:
    name: str
    ports: dict[PortRef, Port]


@dataclass(frozen=True)
class Waveform:
    """An analog waveform. Constant waveforms hold one sample; arbitrary ones hold their samples at `sampling_rate`
    (S/s, default 1 GS/s: one per ns), which the OPX+ plays resampled at 1 GS/s (engine/waveforms.py)."""

    name: str
    is_constant: bool
    samples: np.ndarray
    is_overridable: bool = False
    sampling_rate: float = 1e9

    @property
    def played_length(self) -> int:
        """How many ns an arbitrary waveform lasts when played at its sampling rate."""
        return round(self.samples.size * 1e9 / self.sampling_rate)


@dataclass(frozen=True)
class DigitalWaveform:
    """Digital marker: (value, length ns) segments; a length of 0 means 'until the end of the pulse'."""

    name: str
    segments: tuple[tuple[bool, int], ...]


@dataclass(frozen=True)
class IntegrationWeights:
    """Piecewise-constant weights as (value, length ns) segments, for the cosine and sine parts."""

    name: str
    cosine: tuple[tuple[float, int], ...]
    sine: tuple[tuple[float, int], ...]

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-ns weight arrays (cosine, sine), of the longer segment list's total length."""
        return _expand_segments(self.cosine), _expand_segments(self.sine)


def _expand_segments(segments: Iterable[tuple[float, int]]) -> np.ndarray:
    parts = [np.full(length, value, dtype=float) for value, length in segments]
    return np.concatenate(parts) if parts else np.zeros(0)


# The platform holds a mixer-correction entry as a fixed-point number in steps of 2**-16 from -2 to 2 - 2**-16
# (the client's `set_element_correction` docstring and QM's docs: "between -2 and (2 - 2^-16)"), so -2.0 is a valid
# entry and 2.0 is not. Every place that checks or stores a correction (config, QM and job setters, QUA's
# `update_correction`) uses this one rule.
CORRECTION_STEP = 2.0 ** -16
CORRECTION_MIN, CORRECTION_LIMIT = -2.0, 2.0
CORRECTION_RANGE = f"[{CORRECTION_MIN:g}, {CORRECTION_LIMIT:g})"


def correction_in_range(value: float) -> bool:
    """Whether a mixer-correction entry is one the platform can hold (before rounding to CORRECTION_STEP)."""
    return CORRECTION_MIN <= value < CORRECTION_LIMIT


@dataclass(frozen=True)
class MixerCorrection:
    intermediate_frequency: float  # signed Hz
    lo_frequency: float
    matrix: tuple[float, float, float, float]  # v00, v01, v10, v11


@dataclass(frozen=True)
class Mixer:
    name: str
    corrections: tuple[MixerCorrection, ...]

    def matrix_for(self, intermediate_frequency: float, lo_frequency: float) -> tuple[float, float, float, float]:
        """The correction entry matching the frequencies; identity when none was configured for them."""
        for entry in self.corrections:
            if entry.intermediate_frequency == intermediate_frequency and entry.lo_frequency == lo_frequency:
                return entry.matrix
        return (1.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Pulse:
    name: str
    length: int  # ns
    is_measurement: bool
    waveforms: dict[str, str]  # "single" or "I"/"Q" -> waveform name
    digital_marker: str | None
    integration_weights: dict[str, str]  # user's weight name -> integration weights name


@dataclass(frozen=True)
class DigitalInput:
    """A digital input of an element: the controller's digital output port that drives it."""

    name: str
    port: PortRef
    delay: int
    buffer: int


@dataclass(frozen=True)
class OutputPulseParameters:
    """How an element detects pulses on its analog input, for time tagging (`outputPulseParameters`)."""
    signal_threshold: int  # raw ADC units
    descending: bool  # the signal crosses the threshold downwards (polarity DESCENDING)


@dataclass(frozen=True)
class Sticky:
    analog: bool
    digital: bool
    duration: int  # ns the output takes to ramp back after the element's last pulse


@dataclass(frozen=True)
class Element:
    name: str
    single_input: PortRef | None
    mixed_inputs: tuple[PortRef, PortRef] | None  # (I, Q)
    mixer: str | None
    lo_frequency: float
    multiple_inputs: dict[str, PortRef]  # singleInputCollection / multipleInputs
    outputs: dict[str, PortRef]  # "out1" -> analog input port
    digital_inputs: dict[str, DigitalInput]
    intermediate_frequency: float  # signed Hz; 0 when the element has no oscillator
    operations: dict[str, str]  # operation -> pulse
    time_of_flight: int
    smearing: int
    core: str | None  # elements naming the same core share it
    sticky: Sticky | None
    # "out1" -> controller digital input (OPD) the element counts and time-tags pulses from (Hardware/dib.md)
    digital_outputs: dict[str, PortRef] = field(default_factory=dict)
    output_pulse: OutputPulseParameters | None = None

    @property
    def analog_ports(self) -> tuple[PortRef, ...]:
        """The analog outputs this element drives, in waveform-key order (single, or I then Q)."""
        if self.single_input is not None:
            return (self.single_input,)
        if self.mixed_inputs is not None:
            return self.mixed_inputs
        return tuple(self.multiple_inputs.values())

    @property
    def core_group(self) -> str:
        """Elements of one group share cores: those naming the same `core`, or the element alone."""
        return f"core:{self.core}" if self.core else f"element:{self.name}"

    @property
    def cores_needed(self) -> int:
        """Cores the element takes on an OPX+: an IQ pair needs two, anything else one (features guide)."""
        return 2 if self.mixed_inputs is not None else 1

    def ports(self) -> list[PortRef]:
        used = list(self.analog_ports) + list(self.outputs.values())
        used += [d.port for d in self.digital_inputs.values()]
        used += list(self.digital_outputs.values())
        return used


@dataclass(frozen=True)
class QmConfig:
    controllers: dict[str, Controller]
    elements: dict[str, Element]
    pulses: dict[str, Pulse]
    waveforms: dict[str, Waveform]
    digital_waveforms: dict[str, DigitalWaveform]
    integration_weights: dict[str, IntegrationWeights]
    mixers: dict[str, Mixer]
    pb: object = field(repr=False, compare=False)  # the QuaConfig message exactly as received

    def __getstate__(self) -> dict:
        # The message stays in the server process: worker processes only need the model (and the client's
        # generated message classes do not pickle).
        return {name: value for name, value in self.__dict__.items() if name != "pb"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, pb=None)

    def port(self, ref: PortRef) -> Port:
        return self.controllers[ref.controller].ports[ref]

    def declared_ports(self) -> list[Port]:
        return [port for controller in self.controllers.values() for port in controller.ports.values()]

    def used_ports(self) -> dict[PortRef, Port]:
        """Every port the config declares: declaring a port claims it, as on the real platform."""
        return {port.ref: port for port in self.declared_ports()}

    def core_groups(self) -> dict[str, int]:
        """Cores this config takes, by core group: a named core is shared by its elements (it takes the most any
        of them needs); an element without a core name takes cores of its own."""
        groups: dict[str, int] = {}
        for element in self.elements.values():
            groups[element.core_group] = max(groups.get(element.core_group, 0), element.cores_needed)
        return groups

    def cores_needed(self) -> int:
        return sum(self.core_groups().values())


# ---------------------------------------------------------------------------------------------------------------
# protobuf -> model


def from_pb(pb, platform_ports: dict[str, dict[str, int]] | None = None) -> QmConfig:
    """Build and validate the model of a `QuaConfig` message.

    `platform_ports` maps controller name -> port family -> how many ports of that family the platform has;
    when given, the config is also checked against the hardware. Raises `ConfigError` with every problem found.
    """
    if not pb.HasField("v1beta"):
        raise ConfigError([ConfigProblem("", "only QuaConfig v1beta (QOP 2.x) configs are supported by qopemu")])
    v1 = pb.v1beta
    opx1000 = _opx1000_signs(v1)
    if opx1000:  # alone: the OPX+ checks would only add errors that follow from the platform mismatch
        raise ConfigError([ConfigProblem(
            "controllers",
            "this config is for an OPX1000: " + "; ".join(opx1000) + ". This qopemu server emulates an OPX+ "
            "(QOP 2.x) only. An OPX+ config declares its ports directly under controllers.<name> (analog_outputs, "
            "analog_inputs, digital_outputs, digital_inputs; no 'fems') and elements address them as "
            "(controller, port).",
            "controller",
        )])
    problems: list[ConfigProblem] = []
    elements = {name: _element(name, e, v1, problems) for name, e in v1.elements.items()}
    implied = _implied_ports(v1, elements)
    if implied:  # the QM's config holds them declared, as `qm.get_config()` needs (docs/platform.md)
        pb = _copy(pb)
        v1 = pb.v1beta
        for ref in implied:
            for declaration in _opx_declarations(v1, ref.controller):
                _declare_default(getattr(declaration, _PB_PORT_FIELDS[ref.kind]), ref)
    controllers = _controllers(v1, implied)
    waveforms = {name: _waveform(name, w) for name, w in v1.waveforms.items()}
    digital_waveforms = {
        name: DigitalWaveform(name, tuple((bool(s.value), int(s.length)) for s in w.samples))
        for name, w in v1.digitalWaveforms.items()
    }
    weights = {
        name: IntegrationWeights(
            name,
            tuple((float(s.value), int(s.length)) for s in w.cosine),
            tuple((float(s.value), int(s.length)) for s in w.sine),
        )
        for name, w in v1.integrationWeights.items()
    }
    mixers = {name: _mixer(name, m) for name, m in v1.mixers.items()}
    pulses = {name: _pulse(name, p) for name, p in v1.pulses.items()}
    config = QmConfig(controllers, elements, pulses, waveforms, digital_waveforms, weights, mixers, pb)
    problems += validate(config, platform_ports)
    if problems:
        raise ConfigError(problems)
    return config


def controller_names(pb) -> set[str]:
    """The controllers a `QuaConfig` message declares, before any validation."""
    return set(pb.v1beta.controllers) | set(pb.v1beta.controlDevices)


# The client's FEM declarations (FEMTypes oneof) other than the OPX+ itself, by the names users know them by.
_FEM_NAMES = {"octo_dac": "LF-FEM", "microwave": "MW-FEM", "bb_fem": "BB-FEM"}
# The FEM number the client gives a port written as (controller, port) (qm.api.models.capabilities.OPX_FEM_IDX).
_OPX_PLUS_FEM = 1
_PORT_REFERENCES = {"DacPortReference", "AdcPortReference", "PortReference"}


def _opx1000_signs(v1) -> list[str]:
    """What in a config can only be meant for an OPX1000, as the 1.4 client serialises it: controllers with `fems`
    (sent as LF-FEM / MW-FEM declarations instead of an OPX+ one), a controller typed 'opx1000', MW-FEM element
    ports (MWInput / MWOutput), and element ports written (controller, FEM, port) with a FEM other than 1 (a FEM
    of 1 is what the client sends for an OPX+ (controller, port), so it tells nothing)."""
    signs = []
    for name in sorted(v1.controlDevices):
        fems = v1.controlDevices[name].fems
        declared = [f"{number}: {_FEM_NAMES[fems[number].WhichOneof('fem_type_one_of')]}" for number in sorted(fems)
                    if fems[number].WhichOneof("fem_type_one_of") in _FEM_NAMES]
        if declared:
            signs.append(f"controller '{name}' declares FEMs ({', '.join(declared)})")
    for name in sorted(set(v1.controllers) | set(v1.controlDevices)):
        if any(dec.type == "opx1000" for dec in _opx_declarations(v1, name)):
            signs.append(f"controller '{name}' has type 'opx1000'")
    microwave = [name for name in sorted(v1.elements) if v1.elements[name].HasField("microwaveInput")
                 or v1.elements[name].HasField("microwaveOutput")]
    if microwave:
        signs.append(f"elements {', '.join(repr(n) for n in microwave)} use MW-FEM ports (MWInput / MWOutput)")
    on_fems = {}
    for name in sorted(v1.elements):
        for ref in _port_references(v1.elements[name]):
            if ref.fem not in (0, _OPX_PLUS_FEM):
                on_fems.setdefault(name, (ref.controller, ref.fem, ref.number))
    if on_fems:
        examples = ", ".join(f"'{name}' {ref}" for name, ref in on_fems.items())
        signs.append(f"elements address ports as (controller, FEM, port): {examples}")
    return signs


def _port_references(message):
    """Every port reference inside a message (an element: its inputs, outputs, digital inputs and outputs)."""
    for field_desc, value in message.ListFields():
        entry = field_desc.message_type
        if entry is None:
            continue
        if entry.GetOptions().map_entry:
            values = value.values() if entry.fields_by_name["value"].message_type else []
        elif hasattr(value, "DESCRIPTOR"):  # one message
            values = [value]
        else:  # a repeated field
            values = value
        for item in values:
            if item.DESCRIPTOR.name in _PORT_REFERENCES:
                yield item
            else:
                yield from _port_references(item)


def _controllers(v1, implied: frozenset[PortRef] = frozenset()) -> dict[str, Controller]:
    """OPX+ controllers: from `controlDevices[name].fems[1].opx` when the client filled it, else `controllers`."""
    declarations = {name: dec for name, dec in v1.controllers.items()}
    for name, device in v1.controlDevices.items():
        for fem in device.fems.values():
            if fem.HasField("opx"):
                declarations[name] = fem.opx
    controllers = {}
    for name, dec in declarations.items():
        ports: dict[PortRef, Port] = {}
        for kind, pb_field in _PB_PORT_FIELDS.items():
            for number, port_dec in getattr(dec, pb_field).items():
                ref = PortRef(name, kind, int(number))
                ports[ref] = _port(ref, port_dec, ref in implied)
        controllers[name] = Controller(name, ports)
    return controllers


def _opx_declarations(v1, controller: str) -> list:
    """Every OPX+ declaration of a controller: its `controllers` entry and its `controlDevices` FEM copy."""
    declarations = [v1.controllers[controller]] if controller in v1.controllers else []
    if controller in v1.controlDevices:
        declarations += [fem.opx for fem in v1.controlDevices[controller].fems.values() if fem.HasField("opx")]
    return declarations


# Ports an element may use without a declaration: QM's own examples do it for analog outputs (qua-libs
# Two-Fixed-Coupled-Transmons) and the platform opens them. A digital input is not among them: it has no defaults
# (the client requires its threshold, polarity and deadtime), so it must be declared.
_IMPLIED_KINDS = (ANALOG_OUTPUTS, ANALOG_INPUTS, DIGITAL_OUTPUTS)


def _implied_ports(v1, elements: dict[str, Element]) -> frozenset[PortRef]:
    """The ports elements use on a declared controller that the controller's declaration leaves out."""
    implied = set()
    for element in elements.values():
        for ref in element.ports():
            if ref.kind not in _IMPLIED_KINDS:
                continue
            declarations = _opx_declarations(v1, ref.controller)
            if declarations and any(
                    ref.number not in getattr(dec, _PB_PORT_FIELDS[ref.kind]) for dec in declarations):
                implied.add(ref)
    return frozenset(implied)


def _declare_default(ports, ref: PortRef) -> None:
    """Declare `ref` in a controller's port map as the 1.4 client sends a port written `{}`: its converters'
    default schemas (analog output: offset 0, delay 0, no filter nor crosstalk; analog input: offset 0, gain 0 dB,
    1 GS/s; digital output: not inverted, LVTTL; all not shareable)."""
    if ref.number in ports:
        return
    dec = ports[ref.number]
    dec.shareable = False
    if ref.kind == ANALOG_OUTPUTS:
        dec.offset, dec.delay = 0.0, 0
    elif ref.kind == ANALOG_INPUTS:
        dec.offset, dec.samplingRate = 0.0, 1e9
        dec.gainDb.value = 0
    else:
        dec.inverted = False
        dec.level = dec.DESCRIPTOR.fields_by_name["level"].enum_type.values_by_name["LVTTL"].number


def _copy(pb):
    copy = type(pb)()
    copy.CopyFrom(pb)
    return copy


def _port(ref: PortRef, dec, implied: bool = False) -> Port:
    values: dict = {"shareable": bool(getattr(dec, "shareable", False)), "implied": implied}
    if ref.kind == ANALOG_OUTPUTS:
        values.update(offset=dec.offset, delay=dec.delay, crosstalk=tuple(sorted(dec.crosstalk.items())))
        if dec.HasField("filter"):
            values.update(
                filter_feedforward=tuple(dec.filter.feedforward), filter_feedback=tuple(dec.filter.feedback)
            )
    elif ref.kind == ANALOG_INPUTS:
        values.update(offset=dec.offset, gain_db=dec.gainDb.value if dec.HasField("gainDb") else 0)
    elif ref.kind == DIGITAL_OUTPUTS:
        values.update(inverted=dec.inverted)
    else:
        values.update(threshold=dec.threshold, deadtime=dec.deadtime, polarity="falling" if dec.polarity else "rising")
    return Port(ref, **values)


def _waveform(name: str, dec) -> Waveform:
    if dec.HasField("constant"):
        return Waveform(name, True, np.array([dec.constant.sample], dtype=float))
    if dec.HasField("arbitrary"):
        arbitrary = dec.arbitrary
        rate = arbitrary.samplingRate.value if arbitrary.HasField("samplingRate") else 1e9
        return Waveform(name, False, np.array(arbitrary.samples, dtype=float), bool(arbitrary.isOverridable), rate)
    # compressed / array waveforms are QOP 3 forms; an empty arbitrary makes the validator name the waveform.
    return Waveform(name, False, np.zeros(0))


def _mixer(name: str, dec) -> Mixer:
    entries = []
    for c in dec.correction:
        frequency = c.frequencyDouble or float(c.frequency)
        if c.frequencyNegative:
            frequency = -frequency
        lo = c.loFrequencyDouble or float(c.loFrequency)
        m = c.correction
        entries.append(MixerCorrection(frequency, lo, (m.v00, m.v01, m.v10, m.v11)))
    return Mixer(name, tuple(entries))


def _pulse(name: str, dec) -> Pulse:
    return Pulse(
        name=name,
        length=int(dec.length),
        is_measurement=dec.operation == 0,
        waveforms=dict(dec.waveforms),
        digital_marker=dec.digitalMarker.value if dec.HasField("digitalMarker") else None,
        integration_weights=dict(dec.integrationWeights),
    )


def _dac_port(ref) -> PortRef:
    return PortRef(ref.controller, ANALOG_OUTPUTS, int(ref.number))


def _element(name: str, dec, v1, problems: list[ConfigProblem]) -> Element:
    single = mixed = None
    mixer = None
    lo = 0.0
    multiple: dict[str, PortRef] = {}
    which = dec.WhichOneof("element_inputs_one_of")
    if which == "singleInput":
        single = _dac_port(dec.singleInput.port)
    elif which == "mixInputs":
        mixed = (_dac_port(dec.mixInputs.I), _dac_port(dec.mixInputs.Q))
        mixer = dec.mixInputs.mixer or None
        lo = dec.mixInputs.loFrequencyDouble or float(dec.mixInputs.loFrequency)
    elif which in ("singleInputCollection", "multipleInputs"):
        multiple = {k: _dac_port(v) for k, v in getattr(dec, which).inputs.items()}
    elif which is not None:
        problems.append(ConfigProblem(f"elements.{name}", f"input type '{which}' is not an OPX+ input", "element"))
    outputs = {k: PortRef(v.controller, ANALOG_INPUTS, int(v.number)) for k, v in dec.outputs.items()}
    digital_inputs = {
        k: DigitalInput(k, PortRef(v.port.controller, DIGITAL_OUTPUTS, int(v.port.number)), v.delay, v.buffer)
        for k, v in dec.digitalInputs.items()
    }
    digital_outputs = {k: PortRef(v.port.controller, DIGITAL_INPUTS, int(v.port.number))
                       for k, v in dec.digitalOutputs.items()}
    sticky = None
    if dec.HasField("sticky"):
        sticky = Sticky(dec.sticky.analog, dec.sticky.digital, int(dec.sticky.duration) * 4)
    elif dec.HasField("holdOffset"):
        sticky = Sticky(True, False, int(dec.holdOffset.duration) * 4)
    return Element(
        name=name,
        single_input=single,
        mixed_inputs=mixed,
        mixer=mixer,
        lo_frequency=lo,
        multiple_inputs=multiple,
        outputs=outputs,
        digital_inputs=digital_inputs,
        intermediate_frequency=_signed_if(dec, v1),
        operations=dict(dec.operations),
        time_of_flight=dec.timeOfFlight.value if dec.HasField("timeOfFlight") else 0,
        smearing=dec.smearing.value if dec.HasField("smearing") else 0,
        core=dec.thread.threadName if dec.HasField("thread") and dec.thread.threadName else None,
        sticky=sticky,
        digital_outputs=digital_outputs,
        output_pulse=OutputPulseParameters(int(dec.outputPulseParameters.signalThreshold),
                                           dec.outputPulseParameters.signalPolarity == 1)
        if dec.HasField("outputPulseParameters") else None,
    )


def _signed_if(dec, v1) -> float:
    which = dec.WhichOneof("oscillator_one_of")
    if which == "intermediateFrequencyOscillatorDouble":
        return float(dec.intermediateFrequencyOscillatorDouble)
    if which == "namedOscillator":
        oscillator = v1.oscillators.get(dec.namedOscillator.value)
        if oscillator is None:
            return 0.0
        return float(oscillator.intermediateFrequencyDouble or oscillator.intermediateFrequency.value)
    if which == "noOscillator":
        return 0.0
    magnitude = dec.intermediateFrequencyDouble or float(dec.intermediateFrequency.value)
    return -magnitude if dec.intermediateFrequencyNegative else magnitude


# ---------------------------------------------------------------------------------------------------------------
# validation


def validate(config: QmConfig, platform_ports: dict[str, dict[str, int]] | None = None) -> list[ConfigProblem]:
    """Every problem of `config`, against itself and (when given) the platform's controllers and port counts."""
    problems: list[ConfigProblem] = []
    problems += _check_controllers(config, platform_ports)
    for element in config.elements.values():
        problems += _check_element(config, element, platform_ports)
    for pulse in config.pulses.values():
        problems += _check_pulse(config, pulse)
    for waveform in config.waveforms.values():
        if not waveform.is_constant and waveform.samples.size == 0:
            problems.append(
                ConfigProblem(f"waveforms.{waveform.name}", "waveform has no samples (only 'constant' and "
                              "'arbitrary' waveforms exist on QOP 2.x)", "waveform")
            )
        if not 0 < waveform.sampling_rate <= 1e9:
            problems.append(ConfigProblem(f"waveforms.{waveform.name}.sampling_rate", f"sampling rate "
                                          f"{waveform.sampling_rate:g} S/s is not in (0, 1e9]: the OPX+ plays at most "
                                          "1 GS/s", "waveform"))
    for mixer in config.mixers.values():
        for i, entry in enumerate(mixer.corrections):
            if not all(correction_in_range(v) for v in entry.matrix):
                problems.append(
                    ConfigProblem(f"mixers.{mixer.name}[{i}].correction",
                                  f"correction matrix {entry.matrix} is outside the range {CORRECTION_RANGE}", "mixer")
                )
    return problems


def _check_controllers(config: QmConfig, platform_ports: dict[str, dict[str, int]] | None) -> list[ConfigProblem]:
    if platform_ports is None:
        return []
    problems = []
    for controller in config.controllers.values():
        path = f"controllers.{controller.name}"
        if controller.name not in platform_ports:
            known = ", ".join(sorted(platform_ports))
            problems.append(ConfigProblem(path, f"controller '{controller.name}' does not exist on this platform "
                                                f"(it has: {known})", "controller"))
            continue
        for port in controller.ports.values():
            if not port.implied:  # an implied port is checked where an element uses it, naming the element
                problems += _check_exists(port.ref, platform_ports, f"{path}.{port.ref.kind}.{port.ref.number}")
    return problems


def _check_exists(ref: PortRef, platform_ports: dict[str, dict[str, int]], path: str) -> list[ConfigProblem]:
    count = platform_ports[ref.controller].get(ref.kind, 0)
    if 1 <= ref.number <= count:
        return []
    return [ConfigProblem(path, f"port ('{ref.controller}', {ref.number}) does not exist: {ref.controller} has "
                                f"{ref.kind} 1..{count}", "port")]


def _check_port_ref(config: QmConfig, ref: PortRef, path: str,
                    platform_ports: dict[str, dict[str, int]] | None) -> list[ConfigProblem]:
    controller = config.controllers.get(ref.controller)
    if controller is None:
        return [ConfigProblem(path, f"controller '{ref.controller}' is not declared in 'controllers'", "element")]
    port = controller.ports.get(ref)
    if port is None:  # only digital inputs are never implied (see _IMPLIED_KINDS)
        return [ConfigProblem(path, f"port ('{ref.controller}', {ref.number}) is not declared in "
                                    f"controllers.{ref.controller}.{ref.kind} (a digital input has no defaults: "
                                    "declare its threshold, polarity and deadtime)", "element")]
    if port.implied and platform_ports is not None and ref.controller in platform_ports:
        return _check_exists(ref, platform_ports, path)
    return []


def _check_element(config: QmConfig, element: Element,
                   platform_ports: dict[str, dict[str, int]] | None) -> list[ConfigProblem]:
    base = f"elements.{element.name}"
    problems = []
    for ref in element.analog_ports:
        problems += _check_port_ref(config, ref, f"{base}.inputs", platform_ports)
    for key, ref in element.outputs.items():
        problems += _check_port_ref(config, ref, f"{base}.outputs.{key}", platform_ports)
    for key, digital in element.digital_inputs.items():
        problems += _check_port_ref(config, digital.port, f"{base}.digitalInputs.{key}.port", platform_ports)
    for key, ref in element.digital_outputs.items():
        problems += _check_port_ref(config, ref, f"{base}.digitalOutputs.{key}", platform_ports)
    if element.mixer is not None and element.mixer not in config.mixers:
        problems.append(ConfigProblem(f"{base}.mixInputs.mixer", f"mixer '{element.mixer}' is not defined in 'mixers'",
                                      "element"))
    for operation, pulse_name in element.operations.items():
        path = f"{base}.operations.{operation}"
        pulse = config.pulses.get(pulse_name)
        if pulse is None:
            problems.append(ConfigProblem(path, f"pulse '{pulse_name}' is not defined in 'pulses'", "element"))
            continue
        expected = _expected_waveform_keys(element)
        if expected is not None and pulse.waveforms and set(pulse.waveforms) != expected:
            problems.append(ConfigProblem(
                path, f"pulse '{pulse_name}' has waveforms {sorted(pulse.waveforms)} but element '{element.name}' "
                      f"needs {sorted(expected)}", "element"))
        if pulse.is_measurement and not element.outputs and not element.digital_outputs:
            problems.append(ConfigProblem(path, f"measurement pulse '{pulse_name}' is used by element "
                                                f"'{element.name}', which has no 'outputs' nor 'digitalOutputs'",
                                          "element"))
    return problems


def _expected_waveform_keys(element: Element) -> set[str] | None:
    if element.single_input is not None:
        return {"single"}
    if element.mixed_inputs is not None:
        return {"I", "Q"}
    return None


def _check_pulse(config: QmConfig, pulse: Pulse) -> list[ConfigProblem]:
    base = f"pulses.{pulse.name}"
    problems = []
    if pulse.length < 16 or pulse.length % 4:
        problems.append(ConfigProblem(f"{base}.length", f"pulse length {pulse.length} ns must be a multiple of 4 "
                                                        "and at least 16", "pulse"))
    for key, name in pulse.waveforms.items():
        path = f"{base}.waveforms.{key}"
        waveform = config.waveforms.get(name)
        if waveform is None:
            problems.append(ConfigProblem(path, f"waveform '{name}' is not defined in 'waveforms'", "pulse"))
        elif (not waveform.is_constant and waveform.samples.size and 0 < waveform.sampling_rate <= 1e9
              and waveform.played_length != pulse.length):
            at_rate = "" if waveform.sampling_rate == 1e9 else (
                f" at {waveform.sampling_rate:g} S/s, which play for {waveform.played_length} ns,")
            problems.append(ConfigProblem(path, f"waveform '{name}' has {waveform.samples.size} samples{at_rate} but "
                                                f"pulse '{pulse.name}' is {pulse.length} ns long", "pulse"))
    if pulse.digital_marker is not None and pulse.digital_marker not in config.digital_waveforms:
        problems.append(ConfigProblem(f"{base}.digital_marker", f"digital waveform '{pulse.digital_marker}' is not "
                                                                "defined in 'digital_waveforms'", "pulse"))
    for key, name in pulse.integration_weights.items():
        path = f"{base}.integration_weights.{key}"
        weights = config.integration_weights.get(name)
        if weights is None:
            problems.append(ConfigProblem(path, f"integration weights '{name}' are not defined in "
                                                "'integration_weights'", "pulse"))
    if pulse.integration_weights and not pulse.is_measurement:
        problems.append(ConfigProblem(f"{base}.integration_weights", "only measurement pulses have integration "
                                                                     "weights", "pulse"))
    return problems


def notes(config: QmConfig) -> list[str]:
    """What a valid config does that its author may not expect, for the QM's open warnings.

    Integration weights whose length differs from their pulse's are accepted, as the platform accepts them: QM's
    readout-optimisation scripts make the weights longer than the pulse on purpose, to integrate the resonator's
    ringdown (docs/engine.md). A measurement integrates over the weights' own length.
    """
    found = []
    for pulse in config.pulses.values():
        for key, name in pulse.integration_weights.items():
            weights = config.integration_weights.get(name)
            if weights is None:
                continue
            lengths = {sum(length for _, length in part) for part in (weights.cosine, weights.sine) if part}
            if lengths - {pulse.length}:
                found.append(f"pulses.{pulse.name}.integration_weights.{key}: integration weights '{name}' last "
                             f"{'/'.join(map(str, sorted(lengths)))} ns but the pulse is {pulse.length} ns long; "
                             f"a measurement with them integrates {max(lengths)} ns")
    return found


# ---------------------------------------------------------------------------------------------------------------
# QM-level runtime settings (qm.set_output_dc_offset_by_element, qm.set_intermediate_frequency, ...)
#
# They change the QM's stored config, as on the real platform, so that the client's getters read them back and
# programs added afterwards run with them. Each returns a new model; the message is edited on a copy.


class SettingError(ValueError):
    pass


def _edited(config: QmConfig, edit) -> QmConfig:
    pb = _copy(config.pb)
    edit(pb.v1beta)
    return from_pb(pb)


def _element_named(config: QmConfig, name: str) -> Element:
    element = config.elements.get(name)
    if element is None:
        raise SettingError(f"element '{name}' is not in the quantum machine's config")
    return element


def _port_declarations(v1, ref: PortRef) -> list:
    """Every declaration of a port: the `controllers` entry and the `controlDevices` FEM copy, when present."""
    declarations = [getattr(dec, _PB_PORT_FIELDS[ref.kind]) for dec in _opx_declarations(v1, ref.controller)]
    return [ports[ref.number] for ports in declarations if ref.number in ports]


def _with_port(config: QmConfig, ref: PortRef, change) -> QmConfig:
    """`change(declaration)` applied to every declaration of the port `ref`."""
    def edit(v1):
        for declaration in _port_declarations(v1, ref):
            change(declaration)
    return _edited(config, edit)


def _input_port(element: Element, key: str) -> PortRef:
    ports = {"single": element.single_input}
    if element.mixed_inputs is not None:
        ports.update(I=element.mixed_inputs[0], Q=element.mixed_inputs[1])
    ports.update(element.multiple_inputs)
    ref = ports.get(key)
    if ref is None:
        known = ", ".join(k for k, v in ports.items() if v is not None)
        raise SettingError(f"element '{element.name}' has no input '{key}' (it has: {known})")
    return ref


def with_output_dc_offset(config: QmConfig, element: str, input_key: str, offset: float) -> QmConfig:
    if not -0.5 <= offset < 0.5:
        raise SettingError(f"output DC offset {offset} V is outside [-0.5, 0.5)")
    ref = _input_port(_element_named(config, element), input_key)
    return _with_port(config, ref, lambda declaration: setattr(declaration, "offset", offset))


def with_input_dc_offset(config: QmConfig, element: str, output_key: str, offset: float) -> QmConfig:
    target = _element_named(config, element)
    ref = target.outputs.get(output_key)
    if ref is None:
        raise SettingError(f"element '{element}' has no output '{output_key}' "
                           f"(it has: {', '.join(target.outputs) or 'none'})")
    return _with_port(config, ref, lambda declaration: setattr(declaration, "offset", offset))


def with_intermediate_frequency(config: QmConfig, element: str, frequency: float) -> QmConfig:
    _element_named(config, element)

    def edit(v1):
        dec = v1.elements[element]
        dec.intermediateFrequency.value = int(abs(frequency))
        dec.intermediateFrequencyDouble = abs(frequency)
        dec.intermediateFrequencyNegative = frequency < 0
        dec.intermediateFrequencyOscillatorDouble = frequency
    return _edited(config, edit)


def with_digital_route(config: QmConfig, element: str, digital_input: str, *, delay: int | None = None,
                       buffer: int | None = None) -> QmConfig:
    target = _element_named(config, element)
    if digital_input not in target.digital_inputs:
        raise SettingError(f"element '{element}' has no digital input '{digital_input}' "
                           f"(it has: {', '.join(target.digital_inputs) or 'none'})")

    def edit(v1):
        dec = v1.elements[element].digitalInputs[digital_input]
        if delay is not None:
            dec.delay = delay
        if buffer is not None:
            dec.buffer = buffer
    return _edited(config, edit)


def with_mixer_correction(config: QmConfig, mixer: str, intermediate_frequency: float, lo_frequency: float,
                          matrix: tuple[float, float, float, float]) -> QmConfig:
    if mixer not in config.mixers:
        raise SettingError(f"mixer '{mixer}' is not in the quantum machine's config")
    if not all(correction_in_range(v) for v in matrix):
        raise SettingError(f"correction matrix {matrix} is outside the range {CORRECTION_RANGE}")

    def edit(v1):
        corrections = v1.mixers[mixer].correction
        for entry in corrections:
            frequency = -(entry.frequencyDouble or entry.frequency) if entry.frequencyNegative else \
                (entry.frequencyDouble or entry.frequency)
            if frequency == intermediate_frequency and (entry.loFrequencyDouble or entry.loFrequency) == lo_frequency:
                break
        else:
            entry = corrections.add()
            entry.frequency, entry.frequencyDouble = int(abs(intermediate_frequency)), abs(intermediate_frequency)
            entry.frequencyNegative = intermediate_frequency < 0
            entry.loFrequency, entry.loFrequencyDouble = int(lo_frequency), lo_frequency
        entry.correction.v00, entry.correction.v01, entry.correction.v10, entry.correction.v11 = matrix
    return _edited(config, edit)


def with_output_filter(config: QmConfig, element: str, input_key: str, feedforward: list[float],
                       feedback: list[float]) -> QmConfig:
    ref = _input_port(_element_named(config, element), input_key)

    def change(declaration):
        declaration.filter.feedforward[:] = feedforward
        declaration.filter.feedback[:] = feedback
    return _with_port(config, ref, change)


def with_digital_input(config: QmConfig, controller: str, port: int, *, threshold: float | None = None,
                       deadtime: int | None = None, polarity: str | None = None) -> QmConfig:
    ref = PortRef(controller, DIGITAL_INPUTS, port)
    if controller not in config.controllers or ref not in config.controllers[controller].ports:
        raise SettingError(f"digital input ('{controller}', {port}) is not in the quantum machine's config")

    def change(declaration):
        if threshold is not None:
            declaration.threshold = threshold
        if deadtime is not None:
            declaration.deadtime = deadtime
        if polarity is not None:
            declaration.polarity = 1 if polarity == "falling" else 0
    return _with_port(config, ref, change)
