"""What the server emulates and how it runs: read from a TOML file, then overridden by command-line flags.

Example `qopemu.toml` (every key is optional)::

    host = "127.0.0.1"
    port = 9510
    workers = 2                   # warm worker processes that run jobs
    results_memory_cap_mb = 1024  # per job; a job saving more fails with a clear error
    realtime = false              # pace jobs to the hardware time they represent

    [[controllers]]               # default: one OPX+ named con1
    name = "con1"

    [users]                       # bearer token -> user id; when set, the x-qop-user header is ignored
    "token-of-alice" = "alice"

    [inputs]                      # what the analog inputs of executed jobs see
    noise_std = 0.0               # volts, Gaussian
    latency_ns = 24
    loopback = [["con1", 1, "con1", 1]]   # (from controller, analog output, to controller, analog input)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
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
    latency_ns: int = 24
    loopback: tuple[tuple[str, int, str, int], ...] = ()


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9510
    controllers: tuple[ControllerSpec, ...] = (ControllerSpec(),)
    users: dict[str, str] = field(default_factory=dict)  # bearer token -> user id
    workers: int = 2
    results_memory_cap_mb: int = 1024
    realtime: bool = False
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
    known = {"host", "port", "controllers", "users", "workers", "results_memory_cap_mb", "realtime", "inputs"}
    unknown = set(data) - known
    if unknown:
        raise SettingsError(f"unknown settings key(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    values = dict(data)
    try:
        if "controllers" in values:
            controllers = tuple(ControllerSpec(**c) for c in values["controllers"])
            names = [c.name for c in controllers]
            if not controllers or len(set(names)) != len(names):
                raise SettingsError(f"controllers must be a non-empty list of unique names, got {names}")
            values["controllers"] = controllers
        if "inputs" in values:
            inputs = dict(values["inputs"])
            inputs["loopback"] = tuple(tuple(c) for c in inputs.get("loopback", ()))
            values["inputs"] = InputSettings(**inputs)
        return Settings(**values)
    except TypeError as exc:
        raise SettingsError(f"bad settings: {exc}") from exc
