"""Loaded .pt2 programs get real layers back (engine/io/pt2_lift.py) and prune like the original."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from engine import DependencyGraph
from engine.io import load_model
from engine.io.pt2_lift import Pt2LiftWarning, is_lifted, lift_with_report
from engine.models.digits_net import load_demo
from engine.plan import PruningPlan
from engine.plan.apply import apply_plan
from engine.utils import count_ops_and_params


def _resnet18() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics, so BN lifting is really checked
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model, torch.randn(1, 3, 64, 64)


def _demo() -> tuple[nn.Module, torch.Tensor]:
    model, x = load_demo()
    return model, x


MODELS = {"resnet18": _resnet18, "demo": _demo}


def _save(model: nn.Module, x: torch.Tensor, path: Path) -> Path:
    torch.export.save(torch.export.export(model, (x,)), str(path))
    return path


def _layers(model: nn.Module) -> dict[str, type]:
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
    return {n: type(m) for n, m in model.named_modules() if isinstance(m, kinds)}


def _groups(model: nn.Module, x: torch.Tensor) -> list[list[str]]:
    dg = DependencyGraph().build_dependency(model, example_inputs=x)
    return sorted(
        sorted({dg.module2name[d.target.module] for d, _ in g if d.target.module in dg.module2name})
        for g in dg.get_all_groups()
    )


@pytest.fixture(params=sorted(MODELS))
def loaded_pair(request, tmp_path):
    torch.set_num_threads(1)
    model, x = MODELS[request.param]()
    loaded = load_model(_save(model, x, tmp_path / "m.pt2"))
    return model, x, loaded


def test_lifted_layers_have_original_names_and_hold_the_program_state(loaded_pair):
    model, x, loaded = loaded_pair
    lifted = loaded.model
    assert is_lifted(lifted) and "layers lifted" in loaded.description
    assert _layers(lifted) == _layers(model)  # same names, same layer types
    modules = dict(lifted.named_modules())
    for name, layer in model.named_modules():
        if isinstance(layer, nn.BatchNorm2d):
            assert modules[name].running_var.shape == layer.running_var.shape
            torch.testing.assert_close(modules[name].running_var, layer.running_var, rtol=0, atol=0)
    assert sorted(lifted.state_dict()) == sorted(model.state_dict())
    assert not lifted.training  # eval statistics, like the exported program


def test_lifted_outputs_macs_params_and_groups_match_the_original(loaded_pair):
    model, x, loaded = loaded_pair
    lifted = loaded.model
    with torch.no_grad():
        torch.testing.assert_close(lifted(x), model(x), rtol=0, atol=1e-6)
    assert count_ops_and_params(lifted, x) == count_ops_and_params(model, x)
    assert _groups(lifted, x) == _groups(model, x)


def test_pruning_the_lifted_program_matches_pruning_the_original(loaded_pair, tmp_path):
    model, x, loaded = loaded_pair
    lifted = loaded.model
    plan = PruningPlan(pruning_ratio=0.5)
    want = apply_plan(copy.deepcopy(model), x, plan)
    got = apply_plan(lifted, x, plan)
    assert (got.params_after, got.macs_after) == (want.params_after, want.macs_after)
    assert got.params_after < got.params_before
    with torch.no_grad():
        out = lifted(x)
    assert out.shape == model(x).shape
    program = torch.export.export(lifted, (x,))  # the pruned model exports again
    path = tmp_path / "pruned.pt2"
    torch.export.save(program, str(path))
    again = load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(again.model(x), out, rtol=0, atol=1e-6)
    assert count_ops_and_params(again.model, x)[1] == got.params_after


def test_transformer_encoder_lifts_and_runs_exactly(tmp_path):
    torch.manual_seed(0)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 32)
            layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(32)
            self.head = nn.Linear(32, 7)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.norm(self.encoder(self.embed(ids))))

    model = Tiny().eval()
    ids = torch.randint(0, 50, (2, 6))
    loaded = load_model(_save(model, ids, tmp_path / "t.pt2"))
    lifted = loaded.model
    modules = dict(lifted.named_modules())
    assert isinstance(modules["embed"], nn.Embedding) and isinstance(modules["head"], nn.Linear)
    assert isinstance(modules["norm"], nn.LayerNorm)
    assert isinstance(modules["encoder.layers.0.linear1"], nn.Linear)
    assert isinstance(modules["encoder.layers.1.norm2"], nn.LayerNorm)
    with torch.no_grad():
        torch.testing.assert_close(lifted(ids), model(ids), rtol=0, atol=1e-6)
    assert count_ops_and_params(lifted, ids)[1] == count_ops_and_params(model, ids)[1]
    # the MLP widths prune; attention reshapes are baked into the graph with export-time
    # sizes, so the model width (embedding/residual/heads) stays locked, unlike on the eager model
    assert _groups(lifted, ids) == [[f"encoder.layers.{i}.linear1", f"encoder.layers.{i}.linear2"]
                                    for i in (0, 1)]
    outcome = apply_plan(lifted, ids, PruningPlan(pruning_ratio=0.5))
    assert modules["encoder.layers.0.linear1"].out_features == 32
    assert outcome.params_after < outcome.params_before
    assert lifted(ids).shape == (2, 6, 7)


def test_tied_weights_stay_unlifted_and_the_model_stays_exact(tmp_path):
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.mid = nn.Linear(8, 8)
            self.out = nn.Linear(8, 20, bias=False)
            self.out.weight = self.embed.weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.out(self.mid(self.embed(ids)))

    torch.manual_seed(0)
    model = Tied().eval()
    ids = torch.randint(0, 20, (1, 5))
    report = lift_with_report(torch.export.export(model, (ids,)))
    assert report.lifted == ["mid"]  # the shared weight is never split between two layers
    with torch.no_grad():
        torch.testing.assert_close(report.module(ids), model(ids), rtol=0, atol=0)


def test_a_lift_that_changes_outputs_falls_back_with_a_warning(monkeypatch):
    import engine.io.pt2_lift as pt2_lift

    model, x = _demo()
    program = torch.export.export(model, (x,))
    real = pt2_lift._take_state

    def corrupt(module, site, gm):  # simulate a wrong lift: an extra bias offset
        real(module, site, gm)
        if isinstance(module, nn.Linear):
            module.bias = nn.Parameter(module.bias.detach() + 1.0)

    monkeypatch.setattr(pt2_lift, "_take_state", corrupt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = lift_with_report(program)
    assert report.lifted == [] and "differ" in (report.fallback_reason or "")
    assert any(issubclass(w.category, Pt2LiftWarning) for w in caught)
    assert not is_lifted(report.module)
    with torch.no_grad():
        torch.testing.assert_close(report.module(x), model(x), rtol=0, atol=1e-6)


def test_cli_prunes_a_pt2_into_a_smaller_working_pt2(tmp_path, capsys):
    from app.cli import main

    model, x = _demo()
    source = _save(model, x, tmp_path / "demo.pt2")
    out = tmp_path / "small.pt2"
    code = main(["prune", str(source), "-o", str(out), "--ratio", "0.5", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["after"]["params"] < report["before"]["params"]
    assert report["validation"]["outputs_match"] is True
    again = load_model(out)
    assert count_ops_and_params(again.model, x)[1] == report["after"]["params"]
    with torch.no_grad():
        assert again.model(x).shape == (1, 10)


def test_a_decomposed_program_lifts_and_prunes_like_the_original(tmp_path):
    model, x = _demo()
    program = torch.export.export(model, (x,)).run_decompositions()  # aten.convolution, addmm
    torch.export.save(program, str(tmp_path / "d.pt2"))
    lifted = load_model(tmp_path / "d.pt2").model
    assert is_lifted(lifted)
    assert _layers(lifted) == _layers(model)  # convolution, BN (tuple op) and addmm lifted
    with torch.no_grad():
        torch.testing.assert_close(lifted(x), model(x), rtol=0, atol=1e-6)
    assert _groups(lifted, x) == _groups(model, x)
    plan = PruningPlan(pruning_ratio=0.5)
    want = apply_plan(copy.deepcopy(model), x, plan)
    got = apply_plan(lifted, x, plan)
    assert got.params_after == want.params_after < want.params_before


def test_checking_a_training_mode_program_leaves_its_statistics_alone():
    model, x = _demo()
    program = torch.export.export(model.train(), (x,))  # BN updates running stats
    before = {k: v.clone() for k, v in program.state_dict.items()}
    report = lift_with_report(program)
    assert report.fallback_reason is None and "stem.0" in report.lifted
    assert "stem.1" not in report.lifted  # a training-mode BN is not an eval nn.BatchNorm2d
    for name, value in program.state_dict.items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_names_stay_unique_and_valid_when_paths_collide():
    class Inner(nn.Module):  # owns a weight AND a child layer: both cannot be modules at "a"
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(4, 4))
            self.b = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(nn.functional.linear(x, self.weight))

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(4, 4))  # a root-level weight
            self.a = Inner()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(nn.functional.linear(x, self.weight))

    torch.manual_seed(0)
    model, x = Outer().eval(), torch.randn(2, 4)
    report = lift_with_report(torch.export.export(model, (x,)))
    assert report.lifted == ["a", "a_b", "layer"]
    modules = dict(report.module.named_modules())
    assert all(isinstance(modules[n], nn.Linear) for n in report.lifted)
    assert modules["a_b"].weight is model.a.b.weight  # the program's own Parameter, no copy
    with torch.no_grad():
        torch.testing.assert_close(report.module(x), model(x), rtol=0, atol=0)


def test_transposed_grouped_and_1d_layers_lift_exactly():
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1)
            self.gn = nn.GroupNorm(2, 8)
            self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
            self.seq = nn.Conv1d(4, 6, 3, padding="same", bias=False)
            self.bn = nn.BatchNorm1d(6)
            self.ln = nn.LayerNorm(6, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.up(self.gn(self.down(x)))  # (1, 4, 8, 8)
            z = self.bn(self.seq(y.flatten(2)))  # (1, 6, 64)
            return self.ln(z.transpose(1, 2))

    torch.manual_seed(0)
    model, x = Mixed().eval(), torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
    report = lift_with_report(torch.export.export(model, (x,)))
    modules = dict(report.module.named_modules())
    expected = {"down": nn.Conv2d, "gn": nn.GroupNorm, "up": nn.ConvTranspose2d,
                "seq": nn.Conv1d, "bn": nn.BatchNorm1d, "ln": nn.LayerNorm}
    assert {n: type(modules[n]) for n in expected} == expected
    assert modules["up"].groups == 2 and modules["up"].output_padding == (1, 1)
    assert modules["seq"].padding == "same" and modules["ln"].bias is None
    with torch.no_grad():
        torch.testing.assert_close(report.module(x), model(x), rtol=0, atol=0)
    assert count_ops_and_params(report.module, x) == count_ops_and_params(model, x)


def test_a_flat_program_still_counts_after_loading(tmp_path, monkeypatch):
    """torch.export modules refuse .eval(); a loaded flat program must still count and run."""
    import engine.io.load as load_module
    from engine.io import load_model
    from engine.io.pt2_lift import _fallback, is_lifted
    from engine.utils import count_ops_and_params

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    x = torch.randn(1, 3, 8, 8)
    path = tmp_path / "flat.pt2"
    torch.export.save(torch.export.export(net, (x,)), str(path))
    monkeypatch.setattr(load_module, "lift_with_report", lambda p: _fallback(p, "forced"))
    with pytest.warns(UserWarning, match="could not lift"):
        loaded = load_model(str(path))
    assert not is_lifted(loaded.model)
    # the flat graph's aten conv is counted like the Conv2d module; its batch norm op is not
    # a counted layer there (module rules, as in Torch-Pruning)
    assert count_ops_and_params(loaded.model, loaded.example_inputs) == (
        count_ops_and_params(net[0], x)[0], sum(p.numel() for p in net.parameters()))
