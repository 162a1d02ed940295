"""Model families beyond torchvision CNNs: Hugging Face, torchvision attention, ultralytics.

Usage: python -m benchmarks.prunability_families [--markdown docs/prunability_families.md]
       [--only llama,swin_t] [--slow]

Each model (tiny configs for Hugging Face, full size for torchvision, package yaml for
ultralytics; random weights, no downloads) is pruned at ratio 0.5 with exactly what a
no-code tool passes (`families.pruner_kwargs`; attention families also with
prune_num_heads=True, head_pruning_ratio=0.5). Columns: params kept, attention layers
pruned / total (engine.families.report), and "pruned": yes only when the model keeps at
most 0.5 of its parameters and its attention shrank; "partial" when only the MLPs and
embeddings carried the ratio; "locked: <reasons>" when it keeps more and the graph named
why; "no: ..." otherwise. benchmarks/prunability_doc.py writes these rows into
docs/prunability.md. Not part of the default test run.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import engine as tp
from engine import families
from engine.families.report import attention_report, attention_widths

IDS = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
MASK = torch.ones_like(IDS)


def _hf(name: str, cfg: str, model: str, **kw: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import transformers

        transformers.logging.set_verbosity_error()
        return getattr(transformers, model)(getattr(transformers, cfg)(**kw))
    return build


_DEC = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64)
_T5 = dict(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
           num_heads=4, decoder_start_token_id=0)
_ENC = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=64)


def _detr() -> nn.Module:
    import transformers

    backbone = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                         out_features=["stage2"])
    return transformers.DetrForObjectDetection(transformers.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=5,
        num_labels=3))


def _tv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    return build


def _yolo(cfg: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from engine.families.yolo import build_yolo

        return build_yolo(cfg)
    return build


@dataclass
class Case:
    section: str
    build: Callable[[], nn.Module]
    inputs: Any
    heads: bool = True
    slow: bool = False
    ignored: str = ""  # attribute path of a classifier to ignore as a root


PIX = torch.randn(1, 3, 224, 224)
CASES: dict[str, Case] = {
    "llama": Case("hf", _hf("llama", "LlamaConfig", "LlamaForCausalLM", **_DEC), IDS),
    "qwen2": Case("hf", _hf("qwen2", "Qwen2Config", "Qwen2ForCausalLM", **_DEC), IDS),
    "mistral": Case("hf", _hf("mistral", "MistralConfig", "MistralForCausalLM", **_DEC), IDS),
    "qwen3": Case("hf", _hf("qwen3", "Qwen3Config", "Qwen3ForCausalLM", head_dim=8, **_DEC), IDS),
    "gemma2": Case("hf", _hf("g2", "Gemma2Config", "Gemma2ForCausalLM", head_dim=8, **_DEC), IDS),
    "gemma3": Case("hf", _hf("g3", "Gemma3TextConfig", "Gemma3ForCausalLM", head_dim=8, **_DEC),
                   IDS),
    "phi3": Case("hf", _hf("phi3", "Phi3Config", "Phi3ForCausalLM", pad_token_id=0, **_DEC), IDS),
    "falcon": Case("hf", _hf("falcon", "FalconConfig", "FalconForCausalLM", vocab_size=128,
                             hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                             new_decoder_architecture=True, num_kv_heads=2), IDS),
    "gpt_neox": Case("hf", _hf("neox", "GPTNeoXConfig", "GPTNeoXForCausalLM", **{
        k: v for k, v in _DEC.items() if k != "num_key_value_heads"}), IDS),
    "gpt2": Case("hf", _hf("gpt2", "GPT2Config", "GPT2LMHeadModel", vocab_size=128, n_embd=64,
                           n_layer=2, n_head=4, n_positions=64), IDS),
    "bert (mask)": Case("hf", _hf("bert", "BertConfig", "BertForSequenceClassification",
                                  **_ENC), {"input_ids": IDS, "attention_mask": MASK}),
    "roberta (mask)": Case("hf", _hf("rob", "RobertaConfig", "RobertaForSequenceClassification",
                                     **_ENC), {"input_ids": IDS + 2, "attention_mask": MASK}),
    "albert (mask)": Case("hf", _hf("alb", "AlbertConfig", "AlbertForSequenceClassification",
                                    embedding_size=32, **_ENC),
                          {"input_ids": IDS, "attention_mask": MASK}),
    "bart (mask)": Case("hf", _hf("bart", "BartConfig", "BartModel", vocab_size=128, d_model=64,
                                  encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                                  decoder_attention_heads=4, encoder_ffn_dim=64,
                                  decoder_ffn_dim=64, max_position_embeddings=64),
                        {"input_ids": IDS, "attention_mask": MASK}),
    "vit (hf)": Case("hf", _hf("vit", "ViTConfig", "ViTForImageClassification", hidden_size=64,
                               intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, image_size=32, patch_size=8),
                     torch.randn(1, 3, 32, 32)),
    "detr": Case("hf", _detr, {"pixel_values": torch.randn(1, 3, 64, 64)}),
    "t5": Case("hf", _hf("t5", "T5Config", "T5ForConditionalGeneration", **_T5),
               {"input_ids": IDS, "decoder_input_ids": IDS[:, :5]}),
    "t5 (encoder)": Case("hf", _hf("t5e", "T5Config", "T5EncoderModel", **_T5),
                         {"input_ids": IDS}),
    "mixtral": Case("hf", _hf("mixtral", "MixtralConfig", "MixtralForCausalLM",
                              num_local_experts=4, num_experts_per_tok=2, **_DEC), IDS),
    "gpt_oss": Case("hf", _hf("gpt_oss", "GptOssConfig", "GptOssForCausalLM", **{
        **_DEC, "intermediate_size": 32}, head_dim=8, num_local_experts=4,
        num_experts_per_tok=2, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"]), IDS),
    "olmoe": Case("hf", _hf("olmoe", "OlmoeConfig", "OlmoeForCausalLM", **{
        **_DEC, "intermediate_size": 32}, num_experts=4, num_experts_per_tok=2), IDS),
    "olmo2": Case("hf", _hf("olmo2", "Olmo2Config", "Olmo2ForCausalLM", pad_token_id=0,
                          bos_token_id=None, eos_token_id=None, **_DEC), IDS),
    "swin_t": Case("torchvision", _tv("swin_t"), PIX, ignored="head"),
    "swin_v2_t": Case("torchvision", _tv("swin_v2_t"), PIX, ignored="head"),
    "maxvit_t": Case("torchvision", _tv("maxvit_t"), PIX, slow=True, ignored="classifier"),
    "vit_b_16": Case("torchvision", _tv("vit_b_16"), PIX, slow=True, ignored="heads"),
    "yolov8n.yaml": Case("ultralytics", _yolo("yolov8n.yaml"), torch.randn(1, 3, 64, 64),
                         heads=False),
    "yolo11n.yaml": Case("ultralytics", _yolo("yolo11n.yaml"), torch.randn(1, 3, 64, 64),
                         heads=False),
    "yolov8n-seg.yaml": Case("ultralytics", _yolo("yolov8n-seg.yaml"),
                             torch.randn(1, 3, 64, 64), heads=False),
    "yolov8n-cls.yaml": Case("ultralytics", _yolo("yolov8n-cls.yaml"),
                             torch.randn(1, 3, 64, 64), heads=False),
}


@dataclass
class Row:
    model: str
    section: str
    kept: float | None
    attention: str
    pruned: str
    seconds: float


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _attention_blocks(model: nn.Module) -> int:
    """Modules named like attention that hold projections themselves (recognised or not)."""
    def weighted(c: nn.Module) -> bool:  # a layer, or ultralytics' Conv wrapper of one
        return hasattr(c, "weight") or hasattr(getattr(c, "conv", None), "weight")

    return sum(1 for m in model.modules() if "attention" in type(m).__name__.lower()
               and any(weighted(c) for c in m.children()))


def run_case(name: str, case: Case) -> Row:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    try:
        model = case.build().eval()
        before = _count(model)
        widths = attention_widths(model)
        blocks = _attention_blocks(model)
        kwargs = families.pruner_kwargs(model)
        if case.heads:
            kwargs.update(prune_num_heads=True, head_pruning_ratio=0.5)
        if case.ignored:
            kwargs["ignored_layers"] = [getattr(model, case.ignored)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = tp.pruner.BasePruner(model, case.inputs, tp.importance.MagnitudeImportance(),
                                          pruning_ratio=0.5, **kwargs)
            pruner.step()
        with torch.no_grad():
            model(**case.inputs) if isinstance(case.inputs, dict) else model(case.inputs)
        heads = getattr(pruner, "_heads", None)
        reasons = list(pruner.DG.lock_reasons) + list(getattr(heads, "problems", []))
        rep = attention_report(widths, model, reasons)
        kept = _count(model) / before
        attn = f"{rep.pruned} / {rep.total}" if rep.total else "-"
        if not rep.total and blocks:
            attn = f"0 / {blocks} (attention not recognised, or locked)"
        if kept <= 0.5 and (rep.total == 0 or rep.pruned == rep.total) and not (
                blocks and not rep.total):
            verdict = "yes"
        elif kept <= 0.5:
            verdict = "partial: params <= 0.5 but attention kept full width"
        elif reasons:  # keeps more than half, and the report says why
            verdict = "locked: " + (rep.summary() if rep.full_width else
                                    "; ".join(dict.fromkeys(reasons))[:200])
        else:
            verdict = "no: keeps more than 0.5 and no lock reason was recorded"
        return Row(name, case.section, kept, attn, verdict, time.perf_counter() - t0)
    except Exception as exc:  # a failure is a row, not a crash of the sweep
        return Row(name, case.section, None, "-", f"no: {type(exc).__name__}: {exc}"[:200],
                   time.perf_counter() - t0)


def markdown(rows: list[Row]) -> list[str]:
    out: list[str] = []
    titles = {"hf": "Hugging Face (tiny configs, random weights)",
              "torchvision": "torchvision attention models (full size, random weights)",
              "ultralytics": "ultralytics YOLO (package yaml, random weights)"}
    for section, title in titles.items():
        part = [r for r in rows if r.section == section]
        if not part:
            continue
        out += ["", f"## {title}", "",
                "| model | params kept at ratio 0.5 | attention layers pruned / total "
                "| pruned | seconds |", "|---|---|---|---|---|"]
        for r in part:
            kept = f"{r.kept:.3f}" if r.kept is not None else "-"
            text = r.pruned.replace("|", "/").replace("\n", " ")
            out.append(f"| {r.model} | {kept} | {r.attention} | {text} | {r.seconds:.1f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--slow", action="store_true", help="also the slow full-size models")
    ap.add_argument("--markdown", default="")
    args = ap.parse_args()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    rows = []
    for name, case in CASES.items():
        if (only and name not in only) or (case.slow and not args.slow and name not in only):
            continue
        row = run_case(name, case)
        print(f"{row.model}: kept {row.kept}, attention {row.attention}, {row.pruned}",
              flush=True)
        rows.append(row)
    text = "\n".join(markdown(rows)) + "\n"
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
