"""What the server emulates and how it runs: read from a TOML file, then overridden by command-line flags.

Example `qopemu.toml` (every key is optional)::

    host = "127.0.0.1"
    port = 9510
    workers = 2                   # warm worker processes that run jobs
    results_memory_cap_mb = 1024  # per job (results, or a simulation's samples); more fails with a clear error
    realtime = false              # pace jobs to the hardware time they represent
    simulation_timeout_s = 120    # a simulation that computes longer without reaching its duration fails
    simulation_samples = "float64"  # simulated analog samples: "float64" (the platform's) or "float32" (faster)

    [[controllers]]               # default: one OPX+ named con1
    name = "con1"

    [users]                       # bearer token -> user id; when set, the x-qop-user header is ignored
    "token-of-alice" = "alice"

    [inputs]                      # what the analog and digital inputs of executed jobs see
    noise_std = 0.0               # volts, Gaussian
    latency_ns = 24
    loopback = [["con1", 1, "con1", 1]]   # (from controller, analog output, to controller, analog input)
    digital_loopback = [["con1", 1, "con1", 1]]   # (from controller, digital output, to controller, digital input)
    trigger_period_ns = 1000      # the external trigger port sees a rising edge every this many ns (wait_for_trigger)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# OPX+ front panel, from the platform's hardware documentation (see docs/platform.md for the sources).
OPX_PLUS_ANALOG_OUTPUTS = 10
OPX_PLUS_ANALOG_INPUTS = 2
OPX_PLUS_DIGITAL_OUTPUTS = 10
OPX_PLUS_DIGITAL_INPUTS = 10
OPX_PLUS_CORES = 18

# How long after an output a loopback-wired input sees it, when nobody says otherwise: the client's default for a
# simulation's `LoopbackInterface(connections, latency=24)` (qm/simulate/loopback.py), and so the default of the
# `[inputs]` wiring that executed jobs see.
LOOPBACK_LATENCY_NS = 24


# Formats of simulated analog samples: float64 as the platform returns them, float32 to halve the bytes.
SIMULATION_SAMPLES = ("float64", "float32")


@dataclass(frozen=True)
class ControllerSpec:
    name: str = "con1"
    analog_outputs: int = OPX_PLUS_ANALOG_OUTPUTS
    analog_inputs: int = OPX_PLUS_ANALOG_INPUTS
    digital_outputs: int = OPX_PLUS_DIGITAL_OUTPUTS
    digital_inputs: int = OPX_PLUS_DIGITAL_INPUTS
    cores: int = OPX_PLUS_CORES


@dataclass(frozen=True)
class InputSettings:
    noise_std: float = 0.0
    latency_ns: int = LOOPBACK_LATENCY_NS
    loopback: tuple[tuple[str, int, str, int], ...] = ()
    digital_loopback: tuple[tuple[str, int, str, int], ...] = ()
    # What executed jobs' `wait_for_trigger` waits for: a periodic trigger, its edges on the 4 ns clock at multiples
    # of this period from the job's start, as a lab's repetition-rate trigger.
    trigger_period_ns: int = 1000


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9510
    controllers: tuple[ControllerSpec, ...] = (ControllerSpec(),)
    users: dict[str, str] = field(default_factory=dict)  # bearer token -> user id
    workers: int = 2
    results_memory_cap_mb: int = 1024
    realtime: bool = False
    simulation_timeout_s: float = 120.0
    simulation_samples: str = "float64"  # the format of simulated analog samples: "float64" or "float32"
    inputs: InputSettings = InputSettings()


class SettingsError(ValueError):
    pass


def load(path: str | Path | None = None, **overrides) -> Settings:
    """Settings from `path` (TOML) with `overrides` (flag values; None means 'not given') applied on top."""
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
    data.update({key: value for key, value in overrides.items() if value is not None})
    return from_dict(data)


def from_dict(data: dict) -> Settings:
    """Settings from plain data (a parsed TOML file); every wrong key or value is refused, naming it."""
    known = {f.name for f in fields(Settings)}
    unknown = set(data) - known
    if unknown:
        raise SettingsError(f"unknown settings key(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    values = dict(data)
    _check(values, "host", str)
    _check(values, "port", int, 0, 65535)
    _check(values, "workers", int, 1, 64)
    _check(values, "results_memory_cap_mb", int, 1)
    _check(values, "realtime", bool)
    _check(values, "simulation_timeout_s", (int, float), 0.001)
    if values.get("simulation_samples", "float64") not in SIMULATION_SAMPLES:
        raise SettingsError(f"simulation_samples must be one of {', '.join(map(repr, SIMULATION_SAMPLES))}, got "
                            f"{values['simulation_samples']!r}")
    if "users" in values:
        users = values["users"]
        if not isinstance(users, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
            raise SettingsError("users must map bearer tokens (strings) to user ids (strings)")
    if "controllers" in values:
        values["controllers"] = tuple(_controller(c, i) for i, c in enumerate(values["controllers"]))
        names = [c.name for c in values["controllers"]]
        if not names or len(set(names)) != len(names):
            raise SettingsError(f"controllers must be a non-empty list of unique names, got {names}")
    if "inputs" in values:
        values["inputs"] = _inputs(values["inputs"])
    return Settings(**values)


def _check(values: dict, key: str, kind, low: float | None = None, high: float | None = None, where: str = "") -> None:
    if key not in values:
        return
    value = values[key]
    # bool is an int in Python: a number key must not take true/false, nor a bool key a number.
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "a number"
        raise SettingsError(f"{where}{key} must be {expected}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SettingsError(f"{where}{key} must be between {low} and {high}, got {value!r}" if high is not None
                            else f"{where}{key} must be at least {low}, got {value!r}")


def _table(data, cls, name: str) -> None:
    """`data` must be a table whose keys are fields of `cls`; `name` says where it is in the settings."""
    if not isinstance(data, dict):
        raise SettingsError(f"{name} must be a table, got {data!r}")
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise SettingsError(f"unknown key(s) in {name}: {', '.join(sorted(unknown))}")


def _controller(data, index: int) -> ControllerSpec:
    where = f"controllers[{index}]."
    _table(data, ControllerSpec, f"controllers[{index}]")
    _check(data, "name", str, where=where)
    for key in ("analog_outputs", "analog_inputs", "digital_outputs", "digital_inputs", "cores"):
        _check(data, key, int, 0, 64, where=where)
    return ControllerSpec(**data)


def _inputs(data) -> InputSettings:
    _table(data, InputSettings, "inputs")
    _check(data, "noise_std", (int, float), 0, where="inputs.")
    _check(data, "latency_ns", int, 0, where="inputs.")
    _check(data, "trigger_period_ns", int, 4, where="inputs.")
    if data.get("trigger_period_ns", 4) % 4:
        raise SettingsError(f"inputs.trigger_period_ns must be a multiple of 4 ns (the trigger port is sampled on the "
                            f"4 ns clock), got {data['trigger_period_ns']}")
    return InputSettings(**{**data, "loopback": _wires(data, "loopback", "analog"),
                            "digital_loopback": _wires(data, "digital_loopback", "digital")})


def _wires(data: dict, key: str, kind: str) -> tuple[tuple[str, int, str, int], ...]:
    wires = []
    for wire in data.get(key, ()):
        if not (isinstance(wire, (list, tuple)) and len(wire) == 4 and isinstance(wire[0], str)
                and isinstance(wire[2], str) and all(isinstance(w, int) and not isinstance(w, bool) and w > 0
                                                     for w in (wire[1], wire[3]))):
            raise SettingsError(f"inputs.{key} entries are [from controller, {kind} output, to controller, "
                                f"{kind} input], got {wire!r}")
        wires.append(tuple(wire))
    return tuple(wires)
