"""Reports as `google.protobuf.Struct` bytes, built fast enough for programs that play 100 000 pulses.

`Struct.update` from Python dicts costs about 100 us a pulse (tens of values each), longer than the whole simulation
of a long program. Here a report arrives as mostly `EntryList`s (engine/waveform_report.py): a few shapes of entry and
the numbers that vary. Each shape is encoded once, with a marker in place of each varying number; since a double
always takes 8 bytes on the wire, every entry of that shape has the same bytes but for those 8-byte slots, so numpy
copies the encoded shape once per entry and writes the numbers into their slots.

Wire format (https://protobuf.dev/programming-guides/encoding/; google/protobuf/struct.proto):
`Struct{map<string, Value> fields = 1}`, a map entry being `{string key = 1; Value value = 2}`;
`Value{oneof kind: NullValue null_value = 1; double number_value = 2; string string_value = 3; bool bool_value = 4;
Struct struct_value = 5; ListValue list_value = 6}`; `ListValue{repeated Value values = 1}`. A oneof member is written
even when it holds its default, so every Value has its tag.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from qopemu.engine.waveform_report import EntryList, Rows

_PACK_DOUBLE = struct.Struct("<d").pack


def length_delimited(field_number: int, length: int) -> bytes:
    """The tag (wire type 2) and the varint length that open a length-delimited field
    (https://protobuf.dev/programming-guides/encoding/, "Length-Delimited Records")."""
    out = bytearray()
    for value in (field_number << 3 | 2, length):
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


# A message is built as a list of pieces (bytes or memoryviews) and its length, joined once at the end: a report of
# 65 MB nests four levels deep, and joining at each level would copy it four times.
Pieces = tuple[list, int]


def _field(tag: int, payload: Pieces) -> Pieces:
    """A length-delimited field: its tag byte (field number << 3 | 2, all below 16 here), length, payload."""
    pieces, size = payload
    head = length_delimited(tag >> 3, size)
    return [head, *pieces], len(head) + size


def _joined(parts: list[Pieces]) -> Pieces:
    return [piece for pieces, _ in parts for piece in pieces], sum(size for _, size in parts)


def encode_struct(fields: dict[str, Any]) -> bytes:
    """The serialized `Struct` of a dict whose values are JSON-like (dict, list, str, number, bool, None) or
    `EntryList`s."""
    return b"".join(_struct(fields)[0])


def _struct(fields: dict[str, Any]) -> Pieces:
    return _joined([_field(0x0A, _joined([_field(0x0A, _bytes(str(key).encode())), _field(0x12, _value(value))]))
                    for key, value in fields.items()])


def _bytes(data: bytes) -> Pieces:
    return [data], len(data)


def _value(value: Any) -> Pieces:
    if isinstance(value, EntryList):
        return _field(0x32, _entry_list(value))
    if isinstance(value, dict):
        return _field(0x2A, _struct(value))
    if isinstance(value, (list, tuple)):
        return _field(0x32, _joined([_field(0x0A, _value(item)) for item in value]))
    if isinstance(value, str):
        return _field(0x1A, _bytes(value.encode()))
    if isinstance(value, (bool, np.bool_)):
        return _bytes(b"\x20\x01" if value else b"\x20\x00")
    if value is None:
        return _bytes(b"\x08\x00")
    return _bytes(b"\x11" + _PACK_DOUBLE(float(value)))


def _entry_list(entries: EntryList) -> Pieces:
    """The `ListValue` of the entries in time order; at equal times, in the order of their groups."""
    groups = [group for group in entries.groups if len(group.values)]
    blocks = [_rows(group) for group in groups]
    if len(blocks) <= 1:
        return ([memoryview(block.reshape(-1)) for block in blocks], sum(block.size for block in blocks))
    times = np.concatenate([group.values[:, 0] for group in groups])
    owner = np.concatenate([np.full(len(block), i) for i, block in enumerate(blocks)])
    row = np.concatenate([np.arange(len(block)) for block in blocks])
    order = np.argsort(times, kind="stable")
    views = [memoryview(block.reshape(-1)) for block in blocks]
    sizes = [block.shape[1] for block in blocks]
    pieces = [views[g][r * sizes[g]:(r + 1) * sizes[g]] for g, r in zip(owner[order].tolist(), row[order].tolist())]
    return pieces, sum(block.size for block in blocks)


def _rows(group: Rows) -> np.ndarray:
    """Each entry of the group as one row of bytes: `ListValue.values` tag and length, then the `Value` holding the
    entry's `Struct`. Its numbers are written into the slots the markers found in the encoded first entry."""
    markers = [_marker(i) for i in range(len(group.varying))]
    entry = group.entry
    for path, marker in zip(group.varying, markers):
        entry = _replaced(entry, path, marker)
    encoded = b"".join(_field(0x0A, _field(0x2A, _struct(entry)))[0])
    template = np.frombuffer(encoded, dtype=np.uint8)
    rows = np.empty((len(group.values), template.size), dtype=np.uint8)
    rows[:] = template
    for column, marker in enumerate(markers):
        at = encoded.find(_PACK_DOUBLE(marker))
        if at < 0 or encoded.find(_PACK_DOUBLE(marker), at + 1) >= 0:
            raise ValueError(f"the varying number {group.varying[column]} is not a number of the entry")
        rows[:, at : at + 8] = group.values[:, column].astype("<f8").view(np.uint8).reshape(-1, 8)
    return rows


def _marker(index: int) -> float:
    """A NaN whose payload no report number has (and whose bytes no UTF-8 string holds), one per varying number."""
    return struct.unpack("<d", struct.pack("<Q", 0x7FF8_D1CE_0000_0000 | index))[0]


def _replaced(value: Any, path: tuple, replacement: float) -> Any:
    """A copy of `value` with the number at `path` replaced; only the containers along the path are copied."""
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], rest, replacement)
    return copy
