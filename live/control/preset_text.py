"""Editing a preset file's text in place, as a person would: only the lines that change.

MIDI learn adds a binding to ``midi.cc`` of the preset file a performer wrote by hand, and a
keyframe save adds ``- w: file.npy`` entries to its ``keyframes`` (``with_keyframes``). Loading
and dumping the YAML (even with a round-trip loader) re-flows the rest of the file: lists
re-indented, inline mappings wrapped, quotes dropped, comments lost. So the edit is made on the
text: the YAML is only parsed for where things are (PyYAML's node marks: line and column of
every node), the entries the new binding replaces are cut out line by line, and the new entry
is written in the style of its neighbours. Every other byte stays.

The result is checked by loading it: it must hold exactly the data the edit means. A layout the
text edit does not handle (a ``midi`` written as an inline mapping, anchors, ...) falls back to
ruamel.yaml's round trip, which keeps comments but not every detail of the layout.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class _CannotEdit(Exception):
    """The text edit does not handle this layout (the caller falls back)."""


def cc_entry(control: int, target: str, channel: int | None) -> dict[str, Any]:
    """A ``midi.cc`` entry as the preset schema writes it (no ``channel``: any channel)."""
    entry: dict[str, Any] = {"control": int(control)}
    if channel is not None:
        entry["channel"] = int(channel)
    entry["target"] = target
    return entry


def _replaced(entry: Any, new: dict[str, Any]) -> bool:
    """An existing entry the new binding replaces: the same control on an overlapping
    channel (the binding's own, or any)."""
    return isinstance(entry, dict) and entry.get("control") == new["control"] \
        and entry.get("channel") in (None, new.get("channel"))


def with_cc_binding(text: str, control: int, target: str, channel: int | None) -> str:
    """``text`` (a preset file) with a ``midi.cc`` entry binding ``control`` to ``target``:
    entries for the same control on the same (or any) channel are replaced, the new entry
    goes after the others. Only those lines change where the layout allows (module doc)."""
    entry = cc_entry(control, target, channel)
    data = yaml.safe_load(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("a preset file holds a mapping of keys")
    expected = _expected(data, entry)
    try:
        edited = _edit_text(text, data, entry)
        if yaml.safe_load(edited) == expected:
            return edited
    except (_CannotEdit, yaml.YAMLError):
        pass
    return _round_trip(text, entry)


def _expected(data: dict, entry: dict) -> dict:
    midi = dict(data.get("midi") or {})
    midi["cc"] = [e for e in (midi.get("cc") or []) if not _replaced(e, entry)] + [entry]
    return {**data, "midi": midi}


# -- the text edit -------------------------------------------------------------------------------
def _scalar(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _CannotEdit(f"unexpected value {value!r}")
    if isinstance(value, int):
        return str(value)
    if _PLAIN.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)          # a JSON string is a YAML double-quoted scalar


def _flow(entry: dict) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in entry.items()) + "}"


def _child(mapping: MappingNode, key: str) -> Node | None:
    found = [v for k, v in mapping.value if isinstance(k, ScalarNode) and k.value == key]
    if len(found) > 1:
        raise _CannotEdit(f"key {key!r} appears twice")
    return found[0] if found else None


def _last_line(node: Node) -> int:
    """The last line (0-based) holding any of ``node``'s text."""
    if isinstance(node, ScalarNode):
        end = node.end_mark
        # a block scalar ends at the start of the line after it
        return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line
    if node.flow_style:
        return node.end_mark.line
    children: list[Node] = []
    if isinstance(node, MappingNode):
        for k, v in node.value:
            children += [k, v]
    else:
        children = list(node.value)
    return max([node.start_mark.line] + [_last_line(c) for c in children])


def _dash(text: str, item: Node) -> tuple[int, int]:
    """(line, column) of the ``-`` that introduces a block sequence item."""
    i = item.start_mark.index - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    if i < 0 or text[i] != "-":
        raise _CannotEdit("a sequence item without its dash")
    line = text.count("\n", 0, i)
    return line, i - (text.rfind("\n", 0, i) + 1)


def _check_anchors(text: str) -> None:
    # aliases make one node stand for several places: leave such files to the round trip
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, (yaml.AnchorToken, yaml.AliasToken, yaml.TagToken)):
            raise _CannotEdit("anchors, aliases or tags")


def _edit_text(text: str, data: dict, entry: dict) -> str:
    _check_anchors(text)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    ended = "".join(lines) + (nl if lines and not lines[-1].endswith(("\n", "\r")) else "")
    if root is None:
        return ended + f"midi:{nl}  cc:{nl}    - {_flow(entry)}{nl}"
    if not isinstance(root, MappingNode) or root.flow_style:
        raise _CannotEdit("the file is not a block mapping")
    midi = _child(root, "midi")
    if midi is None:                  # a new section at the end, indented like the file
        unit = _indent_unit(root)
        return ended + f"midi:{nl}{unit}cc:{nl}{unit}{unit}- {_flow(entry)}{nl}"
    if not isinstance(midi, MappingNode) or midi.flow_style or not midi.value:
        raise _CannotEdit("midi is not a block mapping")
    cc = _child(midi, "cc")
    if cc is None:                    # a new key after midi's last one
        column = midi.value[0][0].start_mark.column
        unit = _indent_unit(root)
        at = _last_line(midi) + 1
        new = [f"{' ' * column}cc:{nl}", f"{' ' * column}{unit}- {_flow(entry)}{nl}"]
        return "".join(_ended(lines[:at], nl) + new + lines[at:])
    if not isinstance(cc, SequenceNode):
        raise _CannotEdit("midi.cc is not a list")
    entries = data["midi"]["cc"]
    if len(entries) != len(cc.value):
        raise _CannotEdit("midi.cc does not match its nodes")
    keep = [not _replaced(e, entry) for e in entries]
    if cc.flow_style:                 # [a, b]: the list is rewritten on its own line(s)
        items = [text[n.start_mark.index:n.end_mark.index] for n, k in zip(cc.value, keep) if k]
        start, end = cc.start_mark.index, cc.end_mark.index
        return text[:start] + "[" + ", ".join(items + [_flow(entry)]) + "]" + text[end:]
    spans = [(_dash(text, n)[0], _last_line(n)) for n in cc.value]
    template = cc.value[-1]
    _, column = _dash(text, template)
    if isinstance(template, MappingNode) and not template.flow_style and template.value:
        key_column = template.value[0][0].start_mark.column
        first, *rest = [f"{k}: {_scalar(v)}" for k, v in entry.items()]
        new = [f"{' ' * column}-{' ' * (key_column - column - 1)}{first}{nl}"]
        new += [f"{' ' * key_column}{line}{nl}" for line in rest]
    else:
        new = [f"{' ' * column}- {_flow(entry)}{nl}"]
    out: list[str] = []
    at = spans[-1][1] + 1
    for number, line in enumerate(lines):
        if number == at:
            out += new
        if not any(a <= number <= b and not k for (a, b), k in zip(spans, keep)):
            out.append(line)
    if at >= len(lines):
        out = _ended(out, nl) + new
    return "".join(out)


def _ended(lines: list[str], nl: str) -> list[str]:
    """``lines`` with a line break after the last one (text goes after it)."""
    if lines and not lines[-1].endswith(("\n", "\r")):
        return lines[:-1] + [lines[-1] + nl]
    return lines


def _indent_unit(root: MappingNode) -> str:
    """The file's indentation step: the column of the first nested block mapping's keys."""
    for _, value in root.value:
        if isinstance(value, MappingNode) and not value.flow_style and value.value:
            column = value.value[0][0].start_mark.column
            if column > 0:
                return " " * column
    return "  "


# -- the fallback --------------------------------------------------------------------------------
def _round_trip(text: str, entry: dict) -> str:
    """ruamel.yaml's round trip: comments and key order kept, layout mostly."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096                   # never wrap a line that was not wrapped
    data = rt.load(text) if text.strip() else CommentedMap()
    midi = data.get("midi")
    if midi is None:
        midi = data["midi"] = CommentedMap()
    cc = midi.get("cc")
    if cc is None:
        cc = midi["cc"] = CommentedSeq()
    keep = [e for e in cc if not _replaced(e, entry)]
    new = CommentedMap(entry)
    new.fa.set_flow_style()
    cc[:] = keep + [new]
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue()


# -- keyframes (``/phosphene/keyframe/save``) ----------------------------------------------------
def with_keyframes(text: str, entries: list[dict[str, Any]]) -> str:
    """``text`` (a preset file) with ``entries`` appended to its top-level ``keyframes`` list,
    each written in the style of the last entry there (block or flow); every other line stays
    (module doc). Falls back to ruamel.yaml's round trip for layouts the text edit leaves."""
    data = yaml.safe_load(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("a preset file holds a mapping of keys")
    expected = {**data, "keyframes": list(data.get("keyframes") or []) + entries}
    try:
        edited = _append_keyframes(text, entries)
        if yaml.safe_load(edited) == expected:
            return edited
    except (_CannotEdit, yaml.YAMLError):
        pass
    return _round_trip_keyframes(text, entries)


def _append_keyframes(text: str, entries: list[dict[str, Any]]) -> str:
    _check_anchors(text)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, MappingNode) or root.flow_style:
        raise _CannotEdit("the file is not a block mapping")
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    keyframes = _child(root, "keyframes")
    if not isinstance(keyframes, SequenceNode) or not keyframes.value:
        raise _CannotEdit("keyframes is not a non-empty list")
    if keyframes.flow_style:          # [a, b]: the new entries go inside the brackets
        items = [text[n.start_mark.index:n.end_mark.index] for n in keyframes.value]
        start, end = keyframes.start_mark.index, keyframes.end_mark.index
        return text[:start] + "[" + ", ".join(items + [_flow_path(e) for e in entries]) + "]" \
            + text[end:]
    template = keyframes.value[-1]
    _, column = _dash(text, template)
    new: list[str] = []
    for entry in entries:
        if isinstance(template, MappingNode) and not template.flow_style and template.value:
            key_column = template.value[0][0].start_mark.column
            first, *rest = [f"{k}: {_path_scalar(v)}" for k, v in entry.items()]
            new.append(f"{' ' * column}-{' ' * (key_column - column - 1)}{first}{nl}")
            new += [f"{' ' * key_column}{line}{nl}" for line in rest]
        else:
            new.append(f"{' ' * column}- {_flow_path(entry)}{nl}")
    at = _last_line(keyframes) + 1
    return "".join(_ended(lines[:at], nl) + new + lines[at:])


_PLAIN_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./\-]*$")


def _path_scalar(value: Any) -> str:
    """A relative file path unquoted where YAML reads it back as the same string."""
    if isinstance(value, str) and _PLAIN_PATH.match(value) and yaml.safe_load(value) == value:
        return value
    return _scalar(value)


def _flow_path(entry: dict) -> str:
    return "{" + ", ".join(f"{k}: {_path_scalar(v)}" for k, v in entry.items()) + "}"


def _round_trip_keyframes(text: str, entries: list[dict[str, Any]]) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096
    data = rt.load(text) if text.strip() else CommentedMap()
    keyframes = data.get("keyframes")
    if keyframes is None:
        keyframes = data["keyframes"] = CommentedSeq()
    for entry in entries:
        keyframes.append(CommentedMap(entry))
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue()
