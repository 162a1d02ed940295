"""Vetting a deserialized-to-dataclasses ``.pt2`` program before torch builds it.

torch's ``ExportedProgramDeserializer`` trusts its input: it resolves any
``torch.*`` / ``math.*`` / ``_operator.*`` attribute named as a node target
(``torch.os.system`` is one) and puts it in the graph, pastes node and
parameter names into generated Python source, ``exec``s the program's
``guards_code`` when the module is built, and ``sympify``s symbolic
expressions (Python ``eval``). Each string that reaches one of those is
checked here against a strict allowlist or grammar; anything else is reported
as needing trust. Nothing here imports, calls or evaluates a program string.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch._export.serde import schema
from torch._export.serde.union import _Union

from .bounded import BoundedInputError, loads_json
from .limits import MAX_JSON_INT_DIGITS, MAX_PT2_JSON_DEPTH
from .sym_grammar import SymExprError, check_sym_expr

#: Node, placeholder and value names (fx pastes them into generated code).
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
#: Parameter / buffer / constant paths: dotted, each part a plain word or index.
FQN_RE = re.compile(r"[A-Za-z0-9_]{1,200}(?:\.[A-Za-z0-9_]{1,200}){0,63}")
#: Targets shown in metadata only (resolved with getattr, never called).
_META_TARGET_RE = re.compile(r"[A-Za-z0-9_.<>]{1,300}")
_OP_TARGET_RE = re.compile(
    r"torch\.ops\.(?P<ns>[A-Za-z_][A-Za-z0-9_]*)\.(?P<op>[A-Za-z_][A-Za-z0-9_]*)"
    r"\.(?P<overload>[A-Za-z_][A-Za-z0-9_]*)"
)
#: Operator namespaces whose kernels are pure tensor computations.
OP_NAMESPACES = frozenset({"aten", "prims", "torchvision"})
#: ATen ops that touch files (aten::save writes, aten::from_file reads and maps).
_DENIED_OPS = frozenset({"save", "from_file", "load"})
_FILE_ARGUMENTS = frozenset({"filename", "path", "file", "f"})
#: Higher-order ops that only call subgraphs of the same program.
HIGHER_ORDER_OPS = frozenset(
    {"cond", "while_loop", "map_impl", "wrap_with_set_grad_enabled", "wrap_with_autocast"}
)
#: Python-level symbolic-size functions, as the serializer names them.
SYMBOLIC_TARGETS = frozenset(
    {f"_operator.{n}" for n in (
        "eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add", "sub", "floordiv",
        "mod", "pow", "truediv", "and_", "or_", "lshift", "rshift", "getitem",
    )}
    | {"math.trunc", "math.ceil", "math.floor", "math.sqrt"}
    | {f"torch.{n}" for n in (
        "sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt",
    )}
)  # fmt: skip
_MAX_ABS_INT = 2**62


class NeedsTrust(Exception):
    """The program uses something that would run code (or is outside what we vet)."""


class MalformedProgram(ValueError):
    """The program's data is inconsistent or over a limit; the message says where."""


def vet_program(program: schema.ExportedProgram) -> list[str]:
    """Raise NeedsTrust / MalformedProgram, or return notes about what was dropped.

    Drops ``guards_code`` (Python source torch would ``exec``; the guards only
    re-check input shapes) from ``program`` in place.
    """
    notes: list[str] = []
    if program.guards_code:
        notes.append(
            f"{len(program.guards_code)} input guard(s) of the program are Python code and "
            "were not loaded (they only re-check input shapes)"
        )
        program.guards_code = []
    for key, constraint in program.range_constraints.items():
        _expr(key, "range constraint")
        for bound in (constraint.min_val, constraint.max_val):
            if bound is not None:
                _int(bound, f"range of {key[:40]}")
    for verifier in program.verifiers:
        if verifier not in ("", "ATEN", "TRAINING"):
            raise NeedsTrust(f"it names an unknown verifier dialect {verifier[:40]!r}")
    module = program.graph_module
    for type_name, fields in module.treespec_namedtuple_fields.items():
        _fqn_or_name(type_name, "named tuple type", allow_dots=True)
        for name in fields.field_names:
            _name(name, "named tuple field")
    _json_text(module.metadata.get("custom"), "graph metadata")
    for entry in module.module_call_graph:
        if entry.fqn:
            _fqn_or_name(entry.fqn, "module path", allow_dots=True)
        sig = entry.signature
        if sig is None:
            continue
        for spec in (sig.in_spec, sig.out_spec):
            _json_text(spec, "input/output tree spec")
        for name in sig.forward_arg_names or []:
            _name(name, "forward argument")
    _signature(module.signature)
    for obj in _walk(module):  # graph, nested graphs, signature and call-graph arguments
        _check_object(obj)
    return notes


def _signature(sig: schema.GraphSignature) -> None:
    for spec in sig.input_specs:
        kind, value = spec.type, spec.value
        if kind == "custom_obj":
            raise NeedsTrust("it takes a TorchScript custom object, which is unpickled with code")
        if kind == "parameter":
            _fqn(value.parameter_name)
        elif kind == "buffer":
            _fqn(value.buffer_name)
        elif kind == "tensor_constant":
            _fqn(value.tensor_constant_name)
        elif kind == "constant_input":
            _name(value.name, "constant input")
            if value.value.type == "as_string":
                raise NeedsTrust("it takes a constant string input (pasted into Python guards)")
    for spec in sig.output_specs:
        value = spec.value
        for attr in ("buffer_name", "parameter_name"):
            if hasattr(value, attr):
                _fqn(getattr(value, attr))
        if hasattr(value, "user_input_name"):
            _name(value.user_input_name, "user input")


def _walk(root: Any) -> Iterator[Any]:
    """Every dataclass / union object under ``root`` (iterative: no recursion limit)."""
    stack = [root]
    while stack:
        obj = stack.pop()
        if isinstance(obj, _Union):
            yield obj
            stack.append(obj.value)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            yield obj
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())


def _check_object(obj: Any) -> None:
    if isinstance(obj, schema.Node):
        check_target(obj.target)
        if obj.name is not None:
            _name(obj.name, "node name")
        _node_metadata(obj.metadata)
    elif isinstance(obj, schema.Graph):
        if obj.custom_obj_values:
            raise NeedsTrust("its graph holds TorchScript custom objects")
        for table in (obj.tensor_values, obj.sym_int_values, obj.sym_bool_values,
                      obj.sym_float_values):  # fmt: skip
            for name in table:
                _name(name, "graph value")
        for arg in obj.inputs:
            if arg.type == "as_string":
                raise NeedsTrust("it takes a string graph input (pasted into Python guards)")
    elif isinstance(obj, (schema.TensorArgument, schema.TokenArgument, schema.GraphArgument)):
        _name(obj.name, "graph value")
    elif isinstance(obj, (schema.SymIntArgument, schema.SymFloatArgument, schema.SymBoolArgument)):
        if obj.type == "as_name":
            _name(obj.value, "symbolic value")
    elif isinstance(obj, schema.CustomObjArgument):
        raise NeedsTrust("it passes TorchScript custom objects")
    elif isinstance(obj, schema.Argument):
        if obj.type == "as_operator":
            check_target(obj.value)
        elif obj.type in ("as_int", "as_ints", "as_int_lists"):
            for v in _flat(obj.value):
                _int(v, "integer argument")
    elif isinstance(obj, schema.SymExpr):
        _expr(obj.expr_str, "symbolic size")
        if obj.hint is not None and obj.hint.type == "as_int":
            _int(obj.hint.value, "size hint")
    elif isinstance(obj, schema.TensorMeta):
        _tensor_meta(obj)


def _flat(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def check_target(target: Any) -> None:
    """NeedsTrust unless ``target`` names a pure tensor op, an allowed higher-order op or a
    symbolic-size function (resolved here without torch's open-ended getattr chain)."""
    if not isinstance(target, str):
        raise MalformedProgram(f"a node target is a {type(target).__name__}, not a string")
    if target in SYMBOLIC_TARGETS:
        return
    match = _OP_TARGET_RE.fullmatch(target)
    if match is None:
        hop = target.removeprefix("torch.ops.higher_order.")
        if hop != target and hop in HIGHER_ORDER_OPS:
            return
        raise NeedsTrust(f"it calls {target[:80]!r}, which is not a tensor operator")
    ns, op, overload = match.group("ns", "op", "overload")
    if ns not in OP_NAMESPACES:
        raise NeedsTrust(f"it calls the custom operator {target[:80]!r}")
    if op in _DENIED_OPS:
        raise NeedsTrust(f"it calls {target[:80]!r}, which reads or writes files")
    packet = getattr(getattr(torch.ops, ns), op, None) if hasattr(torch.ops, ns) else None
    overload_obj = getattr(packet, overload, None) if packet is not None else None
    if not isinstance(overload_obj, torch._ops.OpOverload):
        raise MalformedProgram(f"operator {target[:80]!r} does not exist in this torch")
    if any(a.name in _FILE_ARGUMENTS for a in overload_obj._schema.arguments):
        raise NeedsTrust(f"it calls {target[:80]!r}, which takes a file argument")


def _node_metadata(metadata: dict[str, Any]) -> None:
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise MalformedProgram(f"node metadata {key[:40]!r} is not a string")
    for item in (metadata.get("source_fn_stack") or "").split(";"):
        if item and not _META_TARGET_RE.fullmatch(item.partition(",")[2] or "x"):
            raise NeedsTrust(f"its metadata names an unusual function {item[:60]!r}")
    _json_text(metadata.get("custom"), "node metadata")
    _json_text(metadata.get("from_node"), "node provenance")


def _tensor_meta(meta: schema.TensorMeta) -> None:
    for dim in (*meta.sizes, *meta.strides, meta.storage_offset):
        if dim.type == "as_int":
            _int(dim.value, "tensor size")


def _expr(text: Any, what: str) -> None:
    try:
        check_sym_expr(text)
    except SymExprError as exc:
        raise NeedsTrust(f"its {what} expression is not plain arithmetic ({exc})") from None


def _int(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value):
            return
        raise MalformedProgram(f"a {what} is {type(value).__name__}, not an integer")
    if abs(value) > _MAX_ABS_INT:
        raise MalformedProgram(f"a {what} of {value:.3g} is out of range")


def _name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or keyword.iskeyword(name):
        raise NeedsTrust(f"its {what} {str(name)[:60]!r} is not a plain identifier")


def _fqn(name: Any) -> None:
    _fqn_or_name(name, "state path", allow_dots=True)


def _fqn_or_name(name: Any, what: str, *, allow_dots: bool) -> None:
    pattern = FQN_RE if allow_dots else NAME_RE
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise NeedsTrust(f"its {what} {str(name)[:60]!r} has characters outside [A-Za-z0-9_.]")


def _json_text(text: Any, what: str) -> None:
    """Embedded JSON strings torch parses with json.loads: bounded like the program."""
    if text is None:
        return
    if not isinstance(text, str):
        raise MalformedProgram(f"{what} is not a string")
    try:
        loads_json(text, max_depth=MAX_PT2_JSON_DEPTH, max_int_digits=MAX_JSON_INT_DIGITS,
                   allow_non_finite=True)  # fmt: skip
    except (BoundedInputError, ValueError) as exc:
        raise MalformedProgram(f"{what} is not valid bounded JSON ({exc})") from None
