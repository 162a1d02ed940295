"""Ordinary Torch-Pruning programs (the ones issue #18 found failing, and the other shapes
its users write: iterative Taylor loops, heads/GQA, serialization, unwrapped parameters,
forward_fn / output_transform, the pruner's bookkeeping) against `import engine as tp`."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import engine as tp


# --------------------------------------------------------------- issue #18's programs
def test_model_left_in_training_mode_is_traced_in_eval_and_given_back() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(64, 10))
    model[3].eval()  # a user's mix of modes is given back as it was
    stats = model[1].running_mean.clone()
    pruner = tp.pruner.MagnitudePruner(model, torch.randn(1, 32),
                                       tp.importance.MagnitudeImportance(), pruning_ratio=0.5)
    assert [m.training for m in model] == [True, True, True, False, True]
    assert torch.equal(model[1].running_mean, stats)  # tracing did not update BN statistics
    pruner.step()
    assert model[0].out_features == 32 and model[1].num_features == 32
    assert [m.training for m in model] == [True, True, True, False, True]
    assert model(torch.randn(4, 32)).shape == (4, 10)


class TwoInThreeOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(128, 64)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x1 = torch.relu(self.fc1(a))
        x2 = torch.relu(self.fc2(b))
        return self.fc3(torch.cat([x1, x2], dim=1)), x1, x2


def test_explicit_group_reaching_outputs_prunes_with_a_warning() -> None:
    torch.manual_seed(0)
    model = TwoInThreeOut().eval()
    inputs = (torch.randn(1, 128), torch.randn(1, 128))
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    w1, w3 = model.fc1.weight.detach().clone(), model.fc3.weight.detach().clone()
    with pytest.warns(UserWarning, match="width of model output"):
        DG.get_pruning_group(model.fc3, tp.prune_linear_in_channels, idxs=[0, 2, 4, 48]).prune()
    keep = [i for i in range(128) if i not in (0, 2, 4, 48)]
    assert torch.equal(model.fc3.weight, w3[:, keep])
    assert torch.equal(model.fc1.weight, w1[[i for i in range(64) if i not in (0, 2, 4, 48)]])
    out, x1, x2 = model(*inputs)
    assert out.shape == (1, 10) and x1.shape == (1, 60) and x2.shape == (1, 64)
    # the pruner and get_all_groups still keep outputs: x1/x2 are outputs, so fc1/fc2 stay
    assert list(DG.get_all_groups()) == []


def test_state_dict_round_trip_without_example_inputs() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    tp.pruner.MagnitudePruner(model, x, tp.importance.MagnitudeImportance(), pruning_ratio=0.5,
                              ignored_layers=[model.fc]).step()
    sd = tp.state_dict(model)
    unpruned = torchvision.models.resnet18(weights=None).eval()
    tp.load_state_dict(unpruned, state_dict=sd)
    assert unpruned.conv1.out_channels == 32 and unpruned.fc.in_features == 256
    torch.testing.assert_close(unpruned(x), model(x))
    # and the restored model prunes again
    tp.pruner.MagnitudePruner(unpruned, x, tp.importance.MagnitudeImportance(),
                              pruning_ratio=0.5, ignored_layers=[unpruned.fc]).step()
    assert unpruned.conv1.out_channels == 16


def test_state_dict_of_heads_and_a_saved_file(tmp_path) -> None:
    def vit() -> nn.Module:
        torch.manual_seed(0)
        return torchvision.models.VisionTransformer(
            image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64,
            mlp_dim=128, num_classes=10).eval()

    model, x = vit(), torch.randn(1, 3, 32, 32)
    tp.pruner.MagnitudePruner(model, x, tp.importance.MagnitudeImportance(),
                              pruning_ratio=0.25, ignored_layers=[model.heads],
                              prune_num_heads=True, head_pruning_ratio=0.5).step()
    tp.save(tp.state_dict(model), tmp_path / "pruned.pth")
    restored = tp.load_state_dict(vit(), state_dict=tp.load(tmp_path / "pruned.pth"))
    attn = restored.encoder.layers[0].self_attention
    assert attn.num_heads == 2
    assert attn.embed_dim == model.encoder.layers[0].self_attention.embed_dim
    torch.testing.assert_close(restored(x), model(x))


# ------------------------------------------------------------ iterative loops
def test_torch_pruning_iterative_taylor_example() -> None:
    """Torch-Pruning's iterative recipe: gradients on data, prune, fine-tune, repeat."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    example_inputs = torch.randn(1, 3, 32, 32)
    data = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))]
    imp = tp.importance.GroupTaylorImportance()
    iterative_steps = 3
    pruner = tp.pruner.BasePruner(model, example_inputs, imp, pruning_ratio=0.5,
                                  iterative_steps=iterative_steps, ignored_layers=[model.fc])
    base_macs, _ = tp.utils.count_ops_and_params(model, example_inputs)
    history = []
    for _ in range(iterative_steps):
        model.zero_grad()
        for xb, yb in data:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()  # `loss` stays alive across the prune
        pruner.step()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for xb, yb in data:  # finetune(model)
            optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        history.append(tp.utils.count_ops_and_params(model, example_inputs)[0])
    assert history == sorted(history, reverse=True) and history[-1] < base_macs / 3
    assert model.conv1.out_channels == 32


def test_hessian_iterative_loop_with_zero_grad() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 3))
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))
    imp = tp.importance.GroupHessianImportance()
    pruner = tp.pruner.BasePruner(model, x[:1], imp, pruning_ratio=0.5, iterative_steps=2,
                                  ignored_layers=[model[-1]])
    for _ in range(2):
        imp.zero_grad()  # accumulated gradients predate the last prune
        for loss in F.cross_entropy(model(x), y, reduction="none"):
            model.zero_grad()
            loss.backward(retain_graph=True)
            imp.accumulate_grad(model)
        pruner.step()
    assert model[0].out_channels == 4 and model[2].out_channels == 4
    assert model(x).shape == (4, 3)


# ----------------------------------------------------------------- heads / GQA
def test_vit_heads_and_head_dims() -> None:
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
        num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    num_heads = {m: m.num_heads for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    pruner = tp.pruner.MagnitudePruner(
        model, x, tp.importance.MagnitudeImportance(), pruning_ratio=0.25,
        ignored_layers=[model.heads], num_heads=num_heads, prune_num_heads=True,
        prune_head_dims=False, head_pruning_ratio=0.5)
    pruner.step()
    for attn in num_heads:
        assert attn.num_heads == 2 and attn.head_dim == 16 and attn.embed_dim == 32
    assert all(n == 2 for n in pruner.num_heads.values())  # Torch-Pruning's bookkeeping
    assert model(x).shape == (1, 10)


def test_llama_gqa_whole_heads_with_num_heads_declared() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=50,
                                   attn_implementation="eager")
    model = transformers.LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 50, (1, 6))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    num_heads = {}
    for m in model.modules():
        if hasattr(m, "q_proj"):
            num_heads[m.q_proj] = cfg.num_attention_heads
            num_heads[m.k_proj] = cfg.num_key_value_heads
            num_heads[m.v_proj] = cfg.num_key_value_heads
    pruner = tp.pruner.BasePruner(
        model, example_inputs=inputs, importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=0.5, ignored_layers=[model.lm_head], num_heads=num_heads,
        prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=0.5,
        output_transform=lambda out: out.logits)
    pruner.step()
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.out_features == 32 and attn.k_proj.out_features == 16  # 2 q, 1 kv head
    assert model.config.num_attention_heads == 2 and model.config.num_key_value_heads == 1
    assert model.model.layers[0].mlp.gate_proj.out_features == 48
    assert model(**inputs).logits.shape == (1, 6, 50)


# ------------------------------------------------- arguments users pass through
def test_unwrapped_parameters_forward_fn_and_output_transform() -> None:
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(4, 16)
            self.cls = nn.Parameter(torch.randn(1, 1, 16))
            self.fc = nn.Linear(16, 3)

        def forward(self, batch: dict) -> dict:
            t = self.embed(batch["x"])
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
            return {"logits": self.fc(torch.relu(t[:, 0]))}

    torch.manual_seed(0)
    model = Tokens().eval()
    batch = {"x": torch.randn(2, 5, 4)}
    pruner = tp.pruner.BasePruner(
        model, batch, tp.importance.MagnitudeImportance(), pruning_ratio=0.5,
        ignored_layers=[model.fc], unwrapped_parameters=[(model.cls, 2)],
        forward_fn=lambda m, inputs: m(inputs), output_transform=lambda out: out["logits"])
    pruner.step()
    assert model.cls.shape == (1, 1, 8) and model.embed.out_features == 8
    assert model(batch)["logits"].shape == (2, 3)


def test_pruner_bookkeeping_api() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 32, 32)
    pruner = tp.pruner.BasePruner(model, x, tp.importance.MagnitudeImportance(),
                                  pruning_ratio=0.5, iterative_steps=4, ignored_layers=[model.fc],
                                  round_to=4, max_pruning_ratio=0.9,
                                  in_channel_groups={}, out_channel_groups={})
    assert pruner.get_target_pruning_ratio(model.conv1) == 0.0
    pruner.step()
    assert pruner.current_step == 1 and pruner.get_target_pruning_ratio(model.conv1) == 0.125
    assert all(m.out_channels % 4 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))
    history = pruner.pruning_history()
    assert history and all(isinstance(n, str) and o is True for n, o, _ in history)
    fresh = torchvision.models.resnet18(weights=None).eval()
    tp.pruner.BasePruner(fresh, x, tp.importance.MagnitudeImportance(),
                         ignored_layers=[fresh.fc]).load_pruning_history(history)
    assert [m.weight.shape for m in fresh.modules() if isinstance(m, nn.Conv2d)] == [
        m.weight.shape for m in model.modules() if isinstance(m, nn.Conv2d)]
    pruner.reset()
    assert pruner.current_step == 0
    DG = pruner.DG
    assert DG.is_out_channel_pruning_fn(tp.prune_conv_out_channels)
    assert DG.is_in_channel_pruning_fn(tp.prune_linear_in_channels)
    assert DG.get_out_channels(model.conv1) == model.conv1.out_channels
    assert DG.get_in_channels(model.fc) == model.fc.in_features
    assert isinstance(DG.get_pruner_of_module(model.bn1), tp.pruner.BasePruningFunc)
    assert DG.module2node[model.conv1].module is model.conv1


def test_utils_helpers(capsys) -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = torch.randn(3, 4)
    assert tp.utils.count_params(model) == 4 * 8 + 8 + 8 * 2 + 2
    macs, params = tp.utils.count_ops_and_params(model, x[:1])
    assert macs == 4 * 8 + 8 + 8 + 8 * 2 + 2 and params == 58  # TP's Linear and ReLU rules
    out = (x, [x, {"a": x}])
    assert len(tp.utils.flatten_as_list(out)) == 3
    mean_ms, std_ms = tp.utils.benchmark.measure_latency(model, x, repeat=5, warmup=1)
    assert mean_ms > 0 and std_ms >= 0
    assert tp.utils.benchmark.measure_throughput(model, x, repeat=5, warmup=1) > 0
    tp.utils.print_tool.before_pruning(model)
    tp.prune_linear_out_channels(model[0], [0])
    tp.prune_linear_in_channels(model[2], [0])
    text = tp.utils.print_tool.after_pruning(model)
    assert "0: Linear(in_features=4, out_features=8, bias=True) => Linear(in_features=4, " \
           "out_features=7, bias=True)" in text
    assert text in capsys.readouterr().out


def test_deprecated_and_alias_names() -> None:
    assert tp.pruner.MetaPruner is tp.pruner.BasePruner
    assert issubclass(tp.pruner.MagnitudePruner, tp.pruner.BasePruner)
    from engine.pruner.algorithms import BasePruner

    assert BasePruner is tp.BasePruner
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    DG = tp.DependencyGraph().build_dependency(model, torch.randn(1, 3, 2, 2))
    group = DG.get_pruning_group(model[0], tp.pruner.function.prune_conv_out_channels, [1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        group.exec()
    assert model[0].out_channels == 3
