"""Prune every group of every torchvision model by half and check the model still runs.

Usage: python -m benchmarks.prunability [--families classification,detection,...]
       [--models a,b] [--device meta|cpu] [--json out.json] [--markdown docs/prunability.md]

Covers classification, segmentation, detection, video, optical flow and the float (not yet
quantized) quantization-ready models. Success: the pruned model runs, its outputs have the same
structure and shapes as before (for detection, the per-image detection count is data-dependent,
so only the trailing dims are compared) and it has fewer parameters. Not part of the default
test run.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torchvision
from torch.nn.modules.conv import _ConvNd
from torch.utils._pytree import tree_flatten

import engine as tp
from engine.families.report import attention_widths, compare_attention

from .measure import write_json, write_text

FAMILIES: tuple[str, ...] = (
    "classification",
    "segmentation",
    "detection",
    "video",
    "optical_flow",
    "quantization",
)
# Families whose builders or forward do data-dependent work (NMS, .item()) the meta device cannot
# do: they are built and checked on the CPU with random weights and small inputs.
CPU_FAMILIES = ("detection", "optical_flow")
# Last layers of the heads (their outputs are the model's outputs): ignored as pruning roots, as a
# user would ignore the final classifier.
HEAD_SUFFIXES = (
    "cls_score",
    "bbox_pred",
    "cls_logits",
    "bbox_reg",
    "bbox_ctrness",
    "mask_fcn_logits",
    "kps_score_lowres",
)


@dataclass
class Result:
    model: str
    ok: bool
    groups: int
    params_before: int
    params_after: int
    seconds: float
    reason: str = ""
    family: str = "classification"
    device: str = "meta"
    input: str = ""
    attention: str = ""  # attention layers pruned / total ("-": none recognised)
    locks: str = ""  # the graph's lock reasons, kept when the model keeps > 0.5 of its params


@dataclass(frozen=True)
class Case:
    """How to build and feed one model: builder kwargs, inputs, and how outputs compare."""

    name: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    inputs: Callable[[str], tuple[torch.Tensor, ...]] = lambda d: (
        torch.randn(1, 3, 224, 224, device=d),
    )
    data_dependent_dim0: bool = False  # detections per image vary with the weights


def family_module(family: str) -> Any:
    return torchvision.models if family == "classification" else getattr(
        torchvision.models, family
    )


def models_of(family: str) -> list[str]:
    return sorted(torchvision.models.list_models(module=family_module(family)))


def classification_models() -> list[str]:
    return models_of("classification")


def all_models(families: tuple[str, ...] = FAMILIES) -> list[tuple[str, str]]:
    """(family, model) for every model torchvision ships in the given families."""
    return [(f, m) for f in families for m in models_of(f)]


def family_of(name: str) -> str:
    for f in FAMILIES:
        if name in models_of(f):
            return f
    raise ValueError(f"{name!r} is not a torchvision model; see torchvision.models.list_models()")


def input_size(name: str) -> int:
    try:
        weights = torchvision.models.get_model_weights(name)
        first = next(iter(weights))
        return int(first.transforms().crop_size[0])
    except Exception:
        return 224


def _images(n: int, c: int, *spatial: int) -> Callable[[str], tuple[torch.Tensor, ...]]:
    return lambda d: (torch.randn(n, c, *spatial, device=d),)


def case_for(name: str, family: str | None = None) -> Case:
    """Builder kwargs and small inputs per model (weights=None everywhere)."""
    family = family or family_of(name)
    kw: dict[str, Any] = {"weights": None}
    if family == "classification":
        if name in ("googlenet", "inception_v3"):
            kw.update(aux_logits=False, init_weights=False)
        if name.startswith("vit_h_14"):
            kw["image_size"] = 518
        size = input_size(name)
        return Case(name, family, kw, _images(1, 3, size, size))
    if family == "quantization":
        # quantize=False: the float, quantization-ready model (QuantStub/DeQuantStub around it);
        # converting to int8 needs calibrated weights and kernels no pruner can slice.
        kw.update(quantize=False)
        if name in ("quantized_googlenet", "quantized_inception_v3"):
            kw.update(aux_logits=False, init_weights=False)
        size = 299 if "inception" in name else 224
        return Case(name, family, kw, _images(1, 3, size, size))
    kw["weights_backbone"] = None
    if family == "segmentation":
        return Case(name, family, kw, _images(1, 3, 128, 128))
    if family == "detection":
        if not name.startswith("ssd"):
            kw.update(min_size=128, max_size=128)  # the transform resizes to these
        size = 300 if name.startswith("ssd300") else 320 if name.startswith("ssdlite") else 128
        return Case(name, family, kw, _images(1, 3, size, size), data_dependent_dim0=True)
    if family == "video":
        kw.pop("weights_backbone")
        if name.startswith("mvit"):  # positional embeddings fix 16 x 224 x 224
            return Case(name, family, kw, _images(1, 3, 16, 224, 224))
        if name == "s3d":  # its final pool is a fixed (2, 7, 7) window
            return Case(name, family, kw, _images(1, 3, 16, 224, 224))
        return Case(name, family, kw, _images(1, 3, 8, 112, 112))
    if family == "optical_flow":
        kw.pop("weights_backbone")
        pair = _images(2, 3, 128, 128)  # two frames, given as image1, image2
        return Case(name, family, kw, lambda d: tuple(pair(d)[0].split(1)))
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def build(name: str, device: str, case: Case | None = None) -> torch.nn.Module:
    case = case or case_for(name)
    if device == "meta" and name.startswith("regnet"):
        # RegNet's builder calls .tolist() on a tensor, which meta tensors cannot do
        return build(name, "cpu", case).to("meta")
    with torch.device(device):
        return torchvision.models.get_model(name, **case.kwargs).eval()


def head_layers(model: torch.nn.Module, family: str) -> list[torch.nn.Module]:
    """The final classifier(s): last Linear/Conv for classifiers, named predictors for heads."""
    layers = [
        m
        for n, m in model.named_modules()
        if n.split(".")[-1] in HEAD_SUFFIXES and isinstance(m, _ConvNd | torch.nn.Linear)
    ]
    if family == "segmentation":  # the convs that emit the class maps (LRASPP has two)
        for attr in ("classifier", "aux_classifier"):
            head = getattr(model, attr, None)
            convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)] if head else []
            last = convs[-1].out_channels if convs else 0
            layers += [m for m in convs if m.out_channels == last]
    if not layers:
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
        layers = last[-1:]
    return layers


def output_signature(out: Any, drop_dim0: bool) -> tuple[str, list[tuple[int, ...]]]:
    """Structure (pytree spec) and leaf shapes of a model output, for before/after comparison."""
    leaves, spec = tree_flatten(out)
    shapes = []
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            s = tuple(leaf.shape)
            shapes.append(s[1:] if drop_dim0 and leaf.dim() > 0 else s)
        else:
            shapes.append(())
    return str(spec), shapes


def compare_outputs(before: Any, after: Any, drop_dim0: bool = False) -> str:
    """Empty string when structures and shapes match, else a short reason."""
    spec_b, shapes_b = output_signature(before, drop_dim0)
    spec_a, shapes_a = output_signature(after, drop_dim0)
    if spec_b != spec_a:
        return "output structure changed"
    for i, (sb, sa) in enumerate(zip(shapes_b, shapes_a, strict=True)):
        if sb != sa:
            return f"output {i}: shape {sb} -> {sa}"
    return ""


def halve_group(group: Any, ratio: float) -> bool:
    """Prune whole indivisible units of `group` up to `ratio` of its channels."""
    n = len(group[0].idxs)
    chosen: list[int] = []
    for s in group.channel_sets():
        if len(chosen) + len(s) > n * ratio:
            break
        chosen += s
    if chosen:
        group.prune(idxs=chosen)
    return bool(chosen)


def _forward(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Any:
    return model(*inputs)


def check_model(
    name: str, device: str | None = None, ratio: float = 0.5, family: str | None = None
) -> Result:
    """Build `name`, prune every group by `ratio` (final classifier ignored), run it again."""
    t0 = time.perf_counter()
    family = family or family_of(name)
    device = device or ("cpu" if family in CPU_FAMILIES else "meta")
    case = case_for(name, family)
    shape_text = ""
    try:
        torch.manual_seed(0)
        model = build(name, device, case)
        inputs = case.inputs(device)
        shape_text = " + ".join("x".join(map(str, x.shape)) for x in inputs)
        with torch.no_grad():
            before = _forward(model, inputs)
        params_before = sum(p.numel() for p in model.parameters())
        example = inputs[0] if len(inputs) == 1 else inputs
        forward_fn = None if len(inputs) == 1 else (lambda m, x: m(*x))
        dg = tp.DependencyGraph().build_dependency(model, example, forward_fn=forward_fn)
        widths = attention_widths(model)  # after the build: lifted blocks are recognised
        groups = list(dg.get_all_groups(ignored_layers=head_layers(model, family)))
        for g in groups:
            halve_group(g, ratio)
        with torch.no_grad():
            after = _forward(model, inputs)
        params_after = sum(p.numel() for p in model.parameters())
        att = compare_attention(widths, attention_widths(model))
        attention = f"{att.pruned} / {att.total}" if att.total else "-"
        locks = "; ".join(dict.fromkeys(dg.lock_reasons)) \
            if params_after > ratio * params_before else ""
        reason = compare_outputs(before, after, case.data_dependent_dim0)
        if not reason and params_after >= params_before:
            reason = f"params did not shrink ({params_before} -> {params_after})"
        if not reason and not groups:
            reason = "no prunable group"
        return Result(
            name,
            not reason,
            len(groups),
            params_before,
            params_after,
            time.perf_counter() - t0,
            reason,
            family,
            device,
            shape_text,
            attention,
            locks,
        )
    except Exception as exc:
        tb = traceback.format_exc().strip().splitlines()[-3:]
        text = f"{type(exc).__name__}: {exc} | {' / '.join(tb)}"
        return Result(
            name,
            False,
            0,
            0,
            0,
            time.perf_counter() - t0,
            _one_line(text)[:400],
            family,
            device,
            shape_text,
        )


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "/")


def markdown_table(results: list[Result]) -> list[str]:
    lines = [
        "| model | ok | groups | params before (M) | params after (M) | input | device "
        "| seconds | reason |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {'yes' if r.ok else 'NO'} | {r.groups} | {r.params_before / 1e6:.2f} "
            f"| {r.params_after / 1e6:.2f} | {r.input} | {r.device} | {r.seconds:.2f} "
            f"| {_one_line(r.reason)} |"
        )
    return lines


def write_markdown(results: list[Result], path: str, device: str = "") -> None:
    """Write docs/prunability.md: a summary line per family, then a table per family."""
    families = [f for f in FAMILIES if any(r.family == f for r in results)]
    n_ok = sum(r.ok for r in results)
    lines = [
        "# Prunability of torchvision models",
        "",
        "Generated by `python -m benchmarks.prunability --markdown docs/prunability.md` "
        f"(torch {torch.__version__}, torchvision {torchvision.__version__}).",
        "Every group from `DependencyGraph.get_all_groups()` (final classifier / prediction "
        "layers ignored as roots) loses half of its channels, in whole indivisible units; "
        "success means the model still runs, its outputs keep the same structure and shapes, "
        "and it has fewer parameters. Groups whose pruning the model's code cannot absorb "
        "(e.g. attention reshapes that hard-code the head width) are locked and not counted.",
        "All models are built with `weights=None` (and `weights_backbone=None`) and default "
        "`num_classes`. Meta-device models are traced and run without weights; detection and "
        "optical-flow models run on the CPU with random weights and small inputs, because "
        "their post-processing (NMS, score thresholds) is data-dependent. For detection the "
        "number of boxes per image depends on the weights, so only the trailing dims of each "
        "output are compared. Quantization models are the float, quantization-ready variants "
        "(`quantize=False`): int8 kernels have packed weights that no pruner can slice.",
        "",
        "Known gap: models traced on real tensors (detection, optical flow) skip the probe, "
        "and an output reached only through data-dependent indexing is not locked. "
        "keypointrcnn's keypoint heatmap conv (`kps_score_lowres`) passes here because it is "
        "ignored as a prediction layer; as a root it would be halved (17 -> 9 keypoints) "
        "and the model would still run.",
        "",
        f"**{n_ok} of {len(results)} models pass.**",
        "",
        "| family | pass | models |",
        "|---|---|---|",
    ]
    for f in families:
        rs = [r for r in results if r.family == f]
        lines.append(f"| {f} | {sum(r.ok for r in rs)} | {len(rs)} |")
    for f in families:
        rs = [r for r in results if r.family == f]
        lines += ["", f"## {f}", ""] + markdown_table(rs)
    write_text(path, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="", help="meta or cpu (default: per family)")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--models", default="", help="comma-separated model names (overrides)")
    ap.add_argument("--json", default="")
    ap.add_argument(
        "--markdown", default="", help="write the result table here (docs/prunability.md)"
    )
    ap.add_argument("--from-json", default="", help="only re-render --markdown from this JSON")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as fh:
            write_markdown([Result(**r) for r in json.load(fh)], args.markdown)
        return
    torch.set_num_threads(1)
    if args.models:
        todo = [(family_of(m), m) for m in args.models.split(",")]
    else:
        todo = all_models(tuple(args.families.split(",")))
    results = []
    for fam, name in todo:
        r = check_model(name, args.device or None, family=fam)
        results.append(r)
        status = "ok " if r.ok else "FAIL"
        print(
            f"{status} {fam:14s} {name:36s} groups={r.groups:4d} params "
            f"{r.params_before / 1e6:8.2f}M -> {r.params_after / 1e6:8.2f}M  {r.seconds:6.2f}s "
            f"{r.reason}",
            flush=True,
        )
        if args.json:  # rewritten after every model: a long sweep leaves partial results
            write_json(args.json, [asdict(x) for x in results])
    n_ok = sum(r.ok for r in results)
    print(f"{n_ok} of {len(results)} models pruned and ran")
    if args.markdown:
        write_markdown(results, args.markdown)


if __name__ == "__main__":
    main()
