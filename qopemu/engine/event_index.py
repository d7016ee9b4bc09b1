"""The play and ramp events of a run, per element in start order, so that rendering a window of the outputs looks
up only the events that can reach it (loopback inputs, simulated samples rendered window after window)."""

from __future__ import annotations

import bisect

from qopemu.engine.events import PlayEvent, RampToZeroEvent


class EventIndex:
    """The recorded play and ramp events of some elements, per element in start order, so a window looks up only the
    events that can reach it. The runtime records events in program order, which is not time order across
    elements."""

    def __init__(self, elements: set[str], whole: set[str], reach: int, ahead: int = 0):
        self.elements = elements
        self._whole = whole  # elements whose every earlier event matters (sticky levels, IIR filters)
        self._reach = reach  # how far before a window an event's effect can start (port delays, buffers)
        self._ahead = ahead  # how far after a window an event's effect can start (a marker's buffer opens it early)
        self._plays: dict[str, list[PlayEvent]] = {}
        self._ramps: dict[str, list[RampToZeroEvent]] = {}
        self._longest: dict[str, int] = {}

    def record(self, event: PlayEvent | RampToZeroEvent) -> None:
        bisect.insort_right(self._timeline(event), event, key=_start)

    def extend(self, events: list[PlayEvent | RampToZeroEvent]) -> None:
        """Record many events at once: appended, then each timeline sorted once (a run's events come mostly in time
        order per element, which the sort takes in linear time)."""
        touched = {}
        for event in events:
            timeline = self._timeline(event)
            timeline.append(event)
            touched[id(timeline)] = timeline
        for timeline in touched.values():
            timeline.sort(key=_start)

    def near(self, start: int, length: int) -> tuple[dict[str, list[PlayEvent]], dict[str, list[RampToZeroEvent]]]:
        """The recorded plays and ramps that can reach the output window, per element in start order: those
        overlapping it (widened by the reach and the lead), and the whole history of the elements that need it.
        Slices of the timelines, with no work per event."""
        lo, hi = start - self._reach, start + length + self._ahead
        return self._near(self._plays, lo, hi), self._near(self._ramps, lo, hi)

    def _near(self, timelines: dict[str, list], lo: int, hi: int) -> dict[str, list]:
        out = {}
        for name, timeline in timelines.items():
            last = bisect.bisect_left(timeline, hi, key=_start)
            first = 0 if name in self._whole else bisect.bisect_left(timeline, lo - self._longest[name], key=_start)
            if last > first:
                out[name] = timeline[first:last]
        return out

    def _timeline(self, event: PlayEvent | RampToZeroEvent) -> list:
        """The timeline `event` belongs in (its element's plays or ramps); notes how far its effect lasts."""
        span = event.length if isinstance(event, PlayEvent) else event.duration
        self._longest[event.element] = max(self._longest.get(event.element, 0), span)
        timelines = self._plays if isinstance(event, PlayEvent) else self._ramps
        return timelines.setdefault(event.element, [])


def _start(event: PlayEvent | RampToZeroEvent) -> int:
    return event.start
