"""Clean an ONNX graph into the form onnx2torch converts: no Identity, weights as initializers.

What today's exporters write and onnx2torch trips over:

* the legacy exporter shares equal initializers (fresh BatchNorm folds give equal zero
  biases) through ``Identity`` nodes, and onnx2torch's Conv/Gemm converters look their
  weight up among the initializers by name: ``KeyError: 'onnx::Conv_197'``;
* weights or shapes held in ``Constant`` nodes rather than initializers (same lookup);
* ``Reshape(allowzero=1)`` from the dynamo exporter, which onnx2torch refuses although with
  a constant shape that holds no zero the flag changes nothing.

onnxslim (a maintained graph optimiser) does the heavy part: constant folding, dead-node
and Identity elimination, shape inference. Our own passes, which also serve as the whole
cleaning when onnxslim is missing or fails, then turn Constant nodes into initializers,
bypass remaining Identity nodes and relax ``allowzero``; onnx's shape inference runs last so
converters that read value shapes (AveragePool) find them. The model is changed in memory
only: the user's file is never rewritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .errors import short_reason

_SLIM_LOGGERS = ("onnxslim",)


@dataclass
class CleanReport:
    """The cleaned model and what was done to it, for the load description."""

    model: Any  # onnx.ModelProto
    nodes_before: int
    nodes_after: int
    steps: list[str] = field(default_factory=list)


def clean_onnx(model: Any, *, use_onnxslim: bool = True) -> CleanReport:
    """Return a cleaned copy of ``model`` (an ``onnx.ModelProto``); ``model`` is left as is."""
    import onnx

    before = len(model.graph.node)
    steps: list[str] = []
    cleaned = None
    if use_onnxslim:
        cleaned, note = _slim(model)
        steps.append(note)
    if cleaned is None:
        cleaned = onnx.ModelProto()
        cleaned.CopyFrom(model)
    constants = constants_to_initializers(cleaned)
    if constants:
        steps.append(f"{constants} Constant nodes made initializers")
    identities = bypass_identities(cleaned)
    if identities:
        steps.append(f"{identities} Identity nodes removed")
    relaxed = relax_reshape_allowzero(cleaned)
    if relaxed:
        steps.append(f"allowzero dropped on {relaxed} Reshape nodes")
    try:
        cleaned = onnx.shape_inference.infer_shapes(cleaned, data_prop=True)
    except Exception as exc:  # a graph onnx cannot infer may still convert
        steps.append(f"onnx shape inference skipped ({short_reason(exc, 80)})")
    flattened = reshapes_to_flatten(cleaned)
    if flattened:
        steps.append(f"{flattened} flattening Reshapes made Flatten")
    return CleanReport(cleaned, before, len(cleaned.graph.node), steps)


def _slim(model: Any) -> tuple[Any | None, str]:
    """onnxslim's optimisation, or None with the reason it was skipped."""
    try:
        import onnxslim
    except ImportError:
        return None, "onnxslim not installed (pip install onnxslim); basic cleaning only"
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # onnxslim rewrites its argument in place
    saved = _quiet(_SLIM_LOGGERS)
    try:
        # FusionGemm wraps MatMul+Add on 3-D inputs in Reshapes to constant shapes, which
        # pin the widths; our fx pass makes those MatMuls Linear layers instead
        slimmed = onnxslim.slim(copy, skip_fusion_patterns=["FusionGemm"])
    except Exception as exc:
        return None, f"onnxslim failed ({short_reason(exc, 80)}); basic cleaning only"
    finally:
        _restore(saved)
    if slimmed is None:  # pragma: no cover - slim returns None only when asked to check
        return None, "onnxslim gave no model; basic cleaning only"
    return slimmed, "onnxslim"


def _quiet(names: tuple[str, ...]) -> list[tuple[logging.Logger, int, list[logging.Handler]]]:
    """Silence onnxslim's own stderr handler for the call; restored by ``_restore``."""
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, list(logger.handlers)))
        logger.setLevel(logging.CRITICAL + 1)
    return saved


def _restore(saved: list[tuple[logging.Logger, int, list[logging.Handler]]]) -> None:
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers = handlers


def constants_to_initializers(model: Any) -> int:
    """Replace every tensor-valued top-level ``Constant`` node by an initializer of its name.

    A Constant that is itself a graph output stays a node (onnx2torch needs a producer).
    """
    from onnx import TensorProto

    graph = model.graph
    outputs = {o.name for o in graph.output}
    kept, moved = [], 0
    for node in graph.node:
        tensor = _constant_tensor(node) if node.output and node.output[0] not in outputs else None
        if tensor is None:
            kept.append(node)
            continue
        init = TensorProto()
        init.CopyFrom(tensor)
        init.name = node.output[0]
        graph.initializer.append(init)
        moved += 1
    if moved:
        del graph.node[:]
        graph.node.extend(kept)
    return moved


def _constant_tensor(node: Any) -> Any | None:
    """The TensorProto a ``Constant`` node outputs (value / value_float(s) / value_int(s))."""
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    import numpy as np
    from onnx import helper, numpy_helper

    for attr in node.attribute:
        if attr.name == "value":
            return attr.t
        if attr.name in ("value_float", "value_floats", "value_int", "value_ints"):
            value = helper.get_attribute_value(attr)
            dtype = np.float32 if "float" in attr.name else np.int64
            return numpy_helper.from_array(np.asarray(value, dtype=dtype), node.output[0])
    return None  # sparse or string constants stay nodes


def bypass_identities(model: Any) -> int:
    """Rewire consumers of each ``Identity`` to its input and drop it.

    An Identity that produces a graph output stays (its output name is part of the
    model's interface), as does one whose input is a graph output too.
    """
    graph = model.graph
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    kept, dropped = [], 0
    for node in graph.node:
        if (
            node.op_type == "Identity"
            and node.domain in ("", "ai.onnx")
            and node.output[0] not in outputs
        ):
            source = node.input[0]
            rename[node.output[0]] = rename.get(source, source)
            dropped += 1
            continue
        kept.append(node)
    if not dropped:
        return 0
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del graph.node[:]
    graph.node.extend(kept)
    return dropped


def relax_reshape_allowzero(model: Any) -> int:
    """Drop ``allowzero=1`` from Reshapes whose constant target shape holds no 0.

    ``allowzero`` only decides what a 0 in the shape means (copy the input's dimension, or
    a real empty dimension); without a 0 both readings agree.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    relaxed = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        attr = next((a for a in node.attribute if a.name == "allowzero"), None)
        if attr is None or attr.i == 0:
            continue
        shape = inits.get(node.input[1])
        if shape is None or 0 in numpy_helper.to_array(shape).reshape(-1).tolist():
            continue
        node.attribute.remove(attr)
        relaxed += 1
    return relaxed


def reshapes_to_flatten(model: Any) -> int:
    """Turn ``Reshape(x, [N, C*H*W])`` with a constant shape into ``Flatten(axis=1)``.

    The dynamo exporter writes ``x.flatten(1)`` before a classifier as a Reshape to a
    constant width; once the convs before it are pruned that width is wrong, and since it
    is a constant nothing can update it. Flatten computes it from its input. Only rank-2
    targets whose first entry is the input's batch (or -1 / 0) and whose second is the
    product of the input's other dims (or -1) are rewritten: there both forms agree.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    shapes = _known_shapes(model)
    done = 0
    for i, node in enumerate(graph.node):
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        target = numpy_helper.to_array(inits[node.input[1]]).reshape(-1).tolist()
        source = shapes.get(node.input[0])
        if len(target) != 2 or source is None or len(source) < 2:
            continue
        rest = source[1:]
        if any(not isinstance(d, int) for d in rest):
            continue
        width = 1
        for d in rest:
            width *= d
        first_ok = target[0] in (-1, 0) or (isinstance(source[0], int) and target[0] == source[0])
        second_ok = target[1] == width or (target[1] == -1 and target[0] != -1)
        if not (first_ok and second_ok):
            continue
        graph.node[i].CopyFrom(
            helper.make_node("Flatten", [node.input[0]], list(node.output), name=node.name, axis=1)
        )
        done += 1
    return done


def _known_shapes(model: Any) -> dict[str, list[int | str]]:
    """Value name -> dims (ints, or dim_param strings) from inputs and value_info."""
    found: dict[str, list[int | str]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if not value.type.HasField("tensor_type"):
            continue
        shape = value.type.tensor_type.shape
        if not value.type.tensor_type.HasField("shape"):
            continue
        found[value.name] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim
        ]
    return found
