"""Write the whole of docs/prunability.md: torchvision sweep, HF, torchvision attention, YOLO.

Usage: python -m benchmarks.prunability_doc [--out docs/prunability.md]
       [--torchvision swin_t,maxvit_t|all|none] [--slow] [--families-only llama,gpt_oss]

One generator for the one document, so every section uses the same columns ("params kept
at ratio 0.5", "attention layers pruned / total") and the same rule:

- **yes**: the model runs after ratio 0.5 and keeps at most 0.5 of its parameters, with its
  attention (if any) shrunk;
- **partial**: it keeps at most 0.5, but some attention stayed at full width, or (torchvision
  rows carried from an older run) it keeps more than 0.5 and the row names no reason;
- **locked: <reasons>**: it keeps more than 0.5 and the graph named why (locked outputs,
  fixed shapes). Counted apart: explained, not a success;
- **NO**: it failed, or kept more than 0.5 with no reason recorded.

The full torchvision sweep (121 models) takes longer than a doc rebuild should on a small
machine: models named with --torchvision are re-run (benchmarks.prunability.check_model),
the others are carried over from the current document, and every carried row says so.
Not part of the default test run.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path

import torch

from . import prunability as tv
from . import prunability_families as fam

DOC = Path("docs/prunability.md")
RATIO = 0.5
# re-run by default: the attention models whose rows predate engine.families.lift, and two
# controls (a CNN and a plain ViT)
DEFAULT_TV = ("resnet18", "vit_b_16", "swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s",
              "swin_v2_b", "maxvit_t", "swin3d_t", "swin3d_s", "swin3d_b", "raft_small")


@dataclasses.dataclass
class TvRow:
    """One torchvision sweep row, fresh or carried over from the current document."""

    model: str
    family: str
    ok: bool
    groups: int
    before_m: float
    after_m: float
    input: str
    device: str
    seconds: float
    reason: str
    attention: str = ""
    locks: str = ""
    fresh: bool = False

    @property
    def kept(self) -> float | None:
        return self.after_m / self.before_m if self.ok and self.before_m else None

    @property
    def verdict(self) -> str:
        return verdict(self.ok, self.kept, self.attention, self.locks, self.reason, self.fresh)


def summarise_locks(locks: str) -> str:
    """Lock reasons, deduplicated, with the probe's per-group lines folded into one count."""
    parts = [p.strip() for p in locks.split("; ") if p.strip()]
    probe = [p for p in parts if p.startswith("pruning the group of ")]
    rest = list(dict.fromkeys(p for p in parts if p not in probe))
    if probe:
        first = probe[0][len("pruning the group of "):].split(" breaks", 1)[0]
        rest.append(f"{len(probe)} groups break the model's forward when pruned (its code "
                    f"depends on the original width; first: {first})")
    return "; ".join(rest)


def verdict(ok: bool, kept: float | None, attention: str, locks: str, reason: str,
            fresh: bool = True) -> str:
    """The one rule of this document (see the module docstring)."""
    if not ok or kept is None:
        return f"NO: {reason}" if reason else "NO"
    full = _attention_full(attention)
    if kept <= RATIO:
        return "partial: attention kept full width" if full else "yes"
    if locks:
        return f"locked: {summarise_locks(locks)}"
    if not fresh:
        return f"partial: keeps {kept:.3f} (carried row: no lock reason recorded)"
    return f"NO: keeps {kept:.3f} and no lock reason was recorded"


def _attention_full(attention: str) -> bool:
    m = re.match(r"(\d+) / (\d+)", attention or "")
    return bool(m) and int(m.group(1)) < int(m.group(2))


def success(v: str) -> bool:
    return v == "yes"


# ----------------------------------------------------------- the current document
def carried_rows(text: str) -> dict[str, TvRow]:
    """The torchvision sweep rows of the current document, by model: the old 9-column
    tables (..., seconds, reason) and this generator's own 12-column ones (..., seconds,
    kept, attention, pruned, row)."""
    out: dict[str, TvRow] = {}
    top = text.split("\n# Model families", 1)[0]
    family = ""
    for line in top.splitlines():
        if line.startswith("## "):
            family = line[3:].strip().split(" ")[0]
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not family or len(cells) not in (9, 12) or cells[1] not in ("yes", "NO"):
            continue
        try:
            groups, before, after = int(cells[2]), float(cells[3]), float(cells[4])
            seconds = float(cells[7])
        except ValueError:
            continue
        if len(cells) == 9:
            reason, attention = cells[8], ""
        else:
            pruned = cells[10]
            reason = pruned[4:] if pruned.startswith("NO: ") else ""
            attention = "" if cells[9] == "not recorded" else cells[9]
        out[cells[0]] = TvRow(cells[0], family, cells[1] == "yes", groups, before, after,
                              cells[5], cells[6], seconds, reason, attention)
    return out


def fresh_row(name: str, family: str) -> TvRow:
    r = tv.check_model(name, family=family)
    return TvRow(r.model, r.family, r.ok, r.groups, r.params_before / 1e6,
                 r.params_after / 1e6, r.input, r.device, r.seconds, tv._one_line(r.reason),
                 r.attention, tv._one_line(r.locks), fresh=True)


# ------------------------------------------------------------------- rendering
def tv_table(rows: list[TvRow]) -> list[str]:
    lines = ["| model | ok | groups | params before (M) | params after (M) | input | device "
             "| seconds | params kept at ratio 0.5 | attention layers pruned / total "
             "| pruned | row |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = f"{r.kept:.3f}" if r.kept is not None else "-"
        attention = r.attention or ("-" if r.fresh else "not recorded")
        lines.append(
            f"| {r.model} | {'yes' if r.ok else 'NO'} | {r.groups} | {r.before_m:.2f} | "
            f"{r.after_m:.2f} | {r.input} | {r.device} | {r.seconds:.2f} | {kept} | "
            f"{attention} | {_cell(r.verdict)} | {'fresh' if r.fresh else 'carried'} |")
    return lines


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "/")[:400]


def family_table(rows: list[fam.Row]) -> list[str]:
    lines = ["| model | params kept at ratio 0.5 | attention layers pruned / total "
             "| pruned | seconds |", "|---|---|---|---|---|"]
    for r in rows:
        kept = f"{r.kept:.3f}" if r.kept is not None else "-"
        lines.append(f"| {r.model} | {kept} | {r.attention} | {_cell(_family_verdict(r))} "
                     f"| {r.seconds:.1f} |")
    return lines


def _family_verdict(r: fam.Row) -> str:
    return "NO" + r.pruned[2:] if r.pruned.startswith("no") else r.pruned


def tally(verdicts: list[str]) -> str:
    n = len(verdicts)
    yes = sum(success(v) for v in verdicts)
    locked = sum(v.startswith("locked") for v in verdicts)
    partial = sum(v.startswith("partial") for v in verdicts)
    no = n - yes - locked - partial
    return (f"**{yes} of {n} pruned** (keep at most 0.5 of their parameters); {locked} locked "
            f"with a named reason, {partial} partial, {no} failed")


TV_PROSE = """\
Every group from `DependencyGraph.get_all_groups()` (final classifier / prediction layers
ignored as roots) loses half of its channels, in whole indivisible units; the model must
still run, its outputs keep the same structure and shapes, and it must have fewer parameters.
Groups whose pruning the model's code cannot absorb are locked and not counted. All models are
built with `weights=None` (and `weights_backbone=None`) and default `num_classes`. Meta-device
models are traced and run without weights; detection and optical-flow models run on the CPU
with random weights and small inputs, because their post-processing (NMS, score thresholds)
is data-dependent. For detection the number of boxes per image depends on the weights, so only
the trailing dims of each output are compared. Quantization models are the float,
quantization-ready variants (`quantize=False`): int8 kernels have packed weights that no pruner
can slice. "ok" is that the model still runs; "pruned" applies the rule above. This sweep
halves every group of `get_all_groups()` (no whole-head pruning); the family tables further
down prune through `BasePruner` with whole heads, so a model in both (swin_t, maxvit_t,
vit_b_16) has two different, both valid, figures.

Known gap: models traced on real tensors (detection, optical flow) skip the probe, and an
output reached only through data-dependent indexing is not locked. keypointrcnn's keypoint
heatmap conv (`kps_score_lowres`) passes here because it is ignored as a prediction layer; as
a root it would be halved (17 -> 9 keypoints) and the model would still run."""

FAMILY_PROSE = """\
Ratio 0.5 with exactly what a no-code tool passes (`engine.families.pruner_kwargs`); attention
models also with `prune_num_heads=True`, `head_pruning_ratio=0.5`; BERT/RoBERTa/ALBERT/BART with
the all-ones `attention_mask`. "attention layers pruned / total" counts the blocks whose q/k/v
width shrank (`engine.families.report`, the same report `apply_plan` returns in
`PruneOutcome.attention`). Seconds are on a shared 2-core machine (noisy).

Semantic checks behind these rows (not only shapes): tests/engine/test_attention_equivalence.py
zeroes what will be pruned (the same dims of every head, or whole heads) and requires every
output unchanged to 1e-5 for DETR, BERT (with and without mask), RoBERTa, ALBERT, BART, HF ViT,
GPT-2, timm-style fused qkv, nn.MultiheadAttention, Llama, Qwen2, Mistral, Qwen3, Gemma 2 and
Gemma 3; tests/engine/test_attention_swin.py does the same for Swin V1/V2;
tests/engine/test_fused_heads.py for the packed q|k|v decoders (whole heads): Phi-3 (GQA),
Falcon (classic interleaved layout and new_decoder_architecture with KV groups) and GPT-NeoX;
tests/engine/test_t5_moe.py for T5 (head dims, whole heads) and Mixtral (experts, whole KV
heads); tests/engine/test_moe_families.py for GPT-OSS (experts' zeroed channels in its
transposed, gate/up-interleaved layout with biases; whole heads with their attention sinks,
plus a control where misplaced sinks move the logits) and for OLMoE, OLMo 2, OLMo 3 and
FlexOlmo, whose q/k RMSNorm spans all heads' concatenated width: removing zeroed heads would
divide the same sum of squares by a smaller width, so the norm keeps its original divisor
(the width is stamped before pruning and the change folded into its weight and its own
epsilon; a control without the stamp fails). Phi-3 and GPT-NeoX attention is lifted
(engine/families/lift_packed.py: q|k|v cut along a head axis, counts read from the module);
their head dims stay (RoPE). Falcon with ALiBi (`alibi=True`, no RoPE) also prunes the same dims
of every head, equivalently. With an attention mask the trace runs for real and HF's sdpa
receives grouped k/v (`enable_gqa`, no repeat_kv); the sdpa rule repeats the KV heads, so Llama
and Phi-3 lose whole heads with a mask too.

MoE: fused experts (`gate_up_proj`/`down_proj` 3-D tensors; Mixtral, Qwen-MoE and OLMoE store
them E x 2I x H / E x H x I, GPT-OSS E x H x 2I / E x I x H with gate and up interleaved and
biases) are a graph leaf over the residual width; each expert keeps its own strongest
intermediate channels (the same count for all; the router and the expert count untouched),
the config's `intermediate_size` (or `moe_intermediate_size`) follows and the change is in the
pruning history. MACs count routed work: tokens x top_k x (H * 2I + I * H, plus the bias adds),
the same under the eager loop, `grouped_mm` and weightless previews (tests in
tests/engine/test_moe_families.py). GPT-OSS's attention sinks (one logit per head) follow the
heads. T5: q/k/v share one head size; the relative attention bias follows whole heads;
`n_heads`, `key_value_proj_dim`, `inner_dim` and the config are refreshed, and the decoder's
`model_dim ** -0.5` output scale is folded into `decoder.final_layer_norm` so `from_pretrained`
rebuilds the same function.

CLIP (`CLIPModel`): the default output is `logits_per_image`, so both towers' residual widths
prune; on a tiny config (2+2 layers, width 64) params kept at ratio 0.5 go from 0.59 (whole
output) to 0.29 (tests/engine/test_fused_heads.py).

Known gaps (not done yet): Falcon with `multi_query=True` prunes no query heads (all q heads
contract with the one shared k head and form one unit); T5's cross-attention keeps its heads
under `prune_num_heads` (its layers share one zero bias sized by the first one's `n_heads`;
head dims still prune), so a whole-head T5 then has per-layer head counts that
`config.num_heads` cannot express (reload through `engine.load_state_dict`); the MoE experts'
widths are narrowed outside the planner's groups (`engine.families.moe`): `plan_step()` does not
list them and `round_to` does not apply to them (previews and MAC counts do include them);
OLMoE-style q/k norms reloaded with `from_pretrained` take the config's one `rms_norm_eps`
instead of their scaled one (outputs move by about eps / mean square; measured within 1e-3 on
the tiny test model; `engine.load_state_dict` is exact), and OLMoE's config sizes `q_norm` by
`hidden_size`, so only a prune that keeps heads x head_dim equal to the residual width rebuilds
from the config; yolo11's C2PSA attention (`split((self.c, self.c))`) is locked by the probe
(its row says partial); torchvision's video Swin (swin3d_t/s/b: its 3-D window attention is
not lifted like the 2-D Swin's, so the probe locks q/k/v and the residual, ~0.68 kept) and
MViT (mvit_v1_b, mvit_v2_s: pooling attention, 0 of 16 attention layers shrink while the MLPs
carry the ratio) are the torchvision attention models still locked; raft_small keeps 0.66
(its correlation and GRU widths are fixed).

YOLO: ultralytics models save back with `engine.families.yolo.save_ultralytics(model, path)`;
`ultralytics.YOLO(path)` then loads, predicts and exports them. Fine-tuning (the recovery path
for YOLO) needs one step more: the stock `YOLO(path).train(data=...)` rebuilds the model from
its yaml and copies only the weights whose shapes match, so it trains a FULL-width model
(measured: a 0.5-pruned yolov8n of 1.02 M parameters came back with 2.86 M, the class count
unchanged). Give the trainer the pruned module instead:

```python
from ultralytics.models.yolo.detect import DetectionTrainer

class PrunedTrainer(DetectionTrainer):
    def get_model(self, cfg=None, weights=None, verbose=True):
        return pruned  # the pruned nn.Module itself

YOLO(path).train(trainer=PrunedTrainer, data="data.yaml", epochs=..., plots=False)
```

The dataset must keep the model's class count (the pruned head keeps its `nc`). Tested in
tests/engine/test_yolo_finetune.py (slow, ~14 s CPU): a 0.5-pruned yolov8n trains one epoch
on 4 synthetic 64x64 images with `YOLO_OFFLINE=1`, `plots=False` (no font or asset download),
and `YOLO(runs/.../last.pt)` reloads it with every pruned width."""

RULE = """\
**The rule, in every table below**: a model counts as pruned ("yes") only when it runs after
ratio 0.5 and keeps at most 0.5 of its parameters, with its attention (if any) shrunk.
"partial" (some attention kept full width, or a carried row that keeps more than 0.5 and names
no reason) and "locked: <reasons>" (keeps more than 0.5, and the graph named why, such as
locked outputs) are not counted as success; "NO" is a failure."""


def _versions() -> str:
    import importlib

    parts = [f"torch {torch.__version__}"]
    for name in ("torchvision", "transformers", "ultralytics"):
        try:
            parts.append(f"{name} {importlib.import_module(name).__version__}")
        except ImportError:
            parts.append(f"{name} missing")
    return ", ".join(parts)


def render(tv_rows: list[TvRow], fam_rows: list[fam.Row], command: str) -> str:
    fresh = [r.model for r in tv_rows if r.fresh]
    carried = len(tv_rows) - len(fresh)
    all_verdicts = [r.verdict for r in tv_rows] + [_family_verdict(r) for r in fam_rows]
    if carried:
        provenance = (
            f"torchvision sweep: {len(fresh)} models re-run for this version "
            f"({', '.join(fresh) or 'none'}); the other {carried} rows are **carried over** "
            "from an earlier run (not re-run here, to keep a doc rebuild short on the shared "
            "2-core machine) and say `carried` in their last column; their attention column "
            "is `not recorded` unless that run recorded it. Re-run them all with "
            "`python -m benchmarks.prunability_doc --torchvision all`.")
    else:
        provenance = (f"torchvision sweep: all {len(fresh)} models re-run for this version "
                      "(none carried over; every row says `fresh`).")
    lines = [
        "# Prunability at ratio 0.5",
        "",
        f"Generated by `{command}` ({_versions()}), one generator for the whole document "
        "(benchmarks/prunability_doc.py).",
        "",
        provenance,
        "",
        RULE,
        "",
        "Overall: " + tally(all_verdicts) + ".",
        "",
        "# torchvision sweep",
        "",
        TV_PROSE,
        "",
        "torchvision: " + tally([r.verdict for r in tv_rows]) + ".",
        "",
        "| family | yes | locked | partial | NO | models |",
        "|---|---|---|---|---|---|",
    ]
    fams = [f for f in tv.FAMILIES if any(r.family == f for r in tv_rows)]
    for f in fams:
        vs = [r.verdict for r in tv_rows if r.family == f]
        y, lk = sum(success(v) for v in vs), sum(v.startswith("locked") for v in vs)
        pa = sum(v.startswith("partial") for v in vs)
        lines.append(f"| {f} | {y} | {lk} | {pa} | {len(vs) - y - lk - pa} | {len(vs)} |")
    for f in fams:
        lines += ["", f"## {f}", ""] + tv_table(
            sorted((r for r in tv_rows if r.family == f), key=lambda r: r.model))
    lines += ["", "", "# Model families: Hugging Face, torchvision attention, ultralytics "
              "(issue #19)", "", FAMILY_PROSE]
    titles = {"hf": "Hugging Face (tiny configs, random weights)",
              "torchvision": "torchvision attention models (full size, random weights)",
              "ultralytics": "ultralytics YOLO (package yaml, random weights)"}
    for section, title in titles.items():
        part = [r for r in fam_rows if r.section == section]
        if part:
            lines += ["", f"## {title}", "",
                      tally([_family_verdict(r) for r in part]) + ".", ""] + family_table(part)
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DOC))
    ap.add_argument("--torchvision", default=",".join(DEFAULT_TV),
                    help="models of the torchvision sweep to re-run: names, 'all' or 'none'")
    ap.add_argument("--slow", action="store_true", help="also the slow family models")
    ap.add_argument("--families-only", default="", help="family rows to run (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    old = carried_rows(Path(args.out).read_text(encoding="utf-8")) if Path(
        args.out).exists() else {}
    everything = {name: f for f, name in tv.all_models()}
    if args.torchvision == "all":
        rerun = list(everything)
    elif args.torchvision == "none":
        rerun = []
    else:
        rerun = [n.strip() for n in args.torchvision.split(",") if n.strip()]
    tv_rows: list[TvRow] = []
    for name, family in everything.items():
        if name in rerun:
            row = fresh_row(name, family)
            print(f"tv {name}: {row.verdict} ({row.seconds:.1f}s)", flush=True)
        elif name in old:
            row = old[name]
        else:
            continue  # neither re-run nor in the old document
        tv_rows.append(row)
    only = {n.strip() for n in args.families_only.split(",") if n.strip()}
    fam_rows = []
    for name, case in fam.CASES.items():
        if (only and name not in only) or (case.slow and not args.slow and name not in only):
            continue
        row = fam.run_case(name, case)
        print(f"family {name}: {row.pruned} ({row.seconds:.1f}s)", flush=True)
        fam_rows.append(row)
    command = "python -m benchmarks.prunability_doc" + (" --slow" if args.slow else "")
    if args.torchvision != ",".join(DEFAULT_TV):
        command += f" --torchvision {args.torchvision}"
    Path(args.out).write_text(render(tv_rows, fam_rows, command), encoding="utf-8")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
