"""`arborist prune` tells how many attention layers shrank, and why the rest did not."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from app.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tiny_bert_folder(path) -> str:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32)
    config.architectures = ["BertModel"]
    config.save_pretrained(str(path))
    return str(path)


def locked_attention_file(path) -> str:
    """nn.MultiheadAttention straight on the model's input: its embed width is the input's."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.TransformerEncoderLayer(8, 2, 64, dropout=0.0, batch_first=True),
        nn.Linear(8, 10),
    ).eval()
    torch.save(model, path)
    return str(path)


def test_json_counts_pruned_attention_layers(capsys, tmp_path):
    folder = tiny_bert_folder(tmp_path / "bert")
    code, out, err = run(capsys, "prune", f"hf:{folder}", "--ratio", "0.5",
                         "-o", str(tmp_path / "b.pt"), "--json")
    assert code == 0, err
    attention = json.loads(out)["attention"]
    assert (attention["pruned"], attention["total"]) == (2, 2)
    assert attention["full_width"] == [] and attention["all_full_width"] is False
    assert attention["summary"] == "attention layers pruned: 2 / 2"
    code, out, err = run(capsys, "prune", f"hf:{folder}", "--ratio", "0.5",
                         "-o", str(tmp_path / "c.pt"))
    assert code == 0, err
    assert "  attention layers pruned: 2 / 2" in out.splitlines()


def test_text_report_names_the_lock_that_kept_attention_at_full_width(capsys, tmp_path):
    source = locked_attention_file(tmp_path / "enc.pt")
    flags = ["prune", source, "--trust", "--input-shape", "1,6,8", "--ratio", "0.5"]
    code, out, err = run(capsys, *flags, "-o", str(tmp_path / "a.pt"), "--json")
    assert code == 0, err
    report = json.loads(out)
    attention = report["attention"]
    assert (attention["pruned"], attention["total"]) == (0, 1)
    assert attention["all_full_width"] is True and attention["full_width"] == ["0.self_attn"]
    assert any("MultiheadAttention" in r for r in attention["reasons"])
    assert report["after"]["params"] < report["before"]["params"]  # the MLP still pruned
    code, out, err = run(capsys, *flags, "-o", str(tmp_path / "b.pt"))
    assert code == 0, err
    line = next(x for x in out.splitlines() if "attention" in x)
    assert line.startswith("  all 1 attention layers stayed at full width")
    assert "MultiheadAttention: fixed input channels" in line


def test_no_attention_no_attention_section(capsys, tmp_path):
    code, out, err = run(capsys, "prune", "arborist:demo", "--ratio", "0.25",
                         "-o", str(tmp_path / "d.safe.pt"), "--json")
    assert code == 0, err
    assert "attention" not in json.loads(out)


@pytest.mark.parametrize("kind", ["bert", "locked"])
def test_dry_run_predicts_the_attention_section(capsys, tmp_path, kind):
    if kind == "bert":
        flags = [f"hf:{tiny_bert_folder(tmp_path / 'bert')}"]
    else:
        flags = [locked_attention_file(tmp_path / "enc.pt"), "--trust", "--input-shape", "1,6,8"]
    flags = ["prune", *flags, "--ratio", "0.5", "--json"]
    code, out, err = run(capsys, *flags, "--dry-run")
    assert code == 0, err
    dry = json.loads(out)["attention"]
    code, out, err = run(capsys, *flags, "-o", str(tmp_path / "m.pt"))
    assert code == 0, err
    real = json.loads(out)["attention"]
    for key in ("pruned", "total", "full_width", "all_full_width"):
        assert dry[key] == real[key], key
    if kind == "locked":  # the graph's lock is known before pruning
        assert "MultiheadAttention: fixed input channels" in dry["reasons"]


def test_text_lists_every_lock_reason_beyond_the_summary():
    from app.cli.prune_cmd import format_attention
    from engine.families.report import AttentionReport

    reasons = [f"reshape lock {i}" for i in range(5)]
    lines = format_attention(AttentionReport(2, 0, ["a", "b"], reasons).to_dict())
    assert lines[0].startswith("  all 2 attention layers stayed at full width")
    assert "reshape lock 2" in lines[0] and "reshape lock 3" not in lines[0]
    assert lines[1:] == ["    also locked: reshape lock 3", "    also locked: reshape lock 4"]
    assert format_attention(AttentionReport(2, 2, [], reasons).to_dict()) == [
        "  attention layers pruned: 2 / 2"]
