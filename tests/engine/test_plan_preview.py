"""The dry run equals the real result EXACTLY; solver; apply_plan progress/cancel/calibration.

Every preview is compared with `count_ops_and_params` of a deep copy really pruned by
`apply_plan`: total MACs/params, and per layer its in/out channels, params and MACs.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

from engine.models.digits_net import load_demo
from engine.plan import (
    Cancelled,
    PlanError,
    Previewer,
    PruningPlan,
    UserScope,
    apply_plan,
    preview_plan,
    solve_ratio,
)
from engine.pruner.serialization import HISTORY_ATTR
from engine.utils import count_ops_and_params


def _resnet18() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval(), torch.randn(1, 3, 64, 64)


def _mobilenet_v2() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v2(weights=None).eval(), torch.randn(1, 3, 64, 64)


def _densenet121() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.densenet121(weights=None).eval(), torch.randn(1, 3, 64, 64)


MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "resnet18": _resnet18,
    "digits": load_demo,
    "mobilenet_v2": _mobilenet_v2,
    "densenet121": _densenet121,  # concats: a conv's input spans many groups (slow only)
}


@functools.cache
def _setup(name: str) -> tuple[nn.Module, torch.Tensor, Previewer, list[str]]:
    torch.set_num_threads(1)
    model, x = MODELS[name]()
    previewer = Previewer(model, x)
    roots = [previewer.dg.module2name[g[0].dep.target.module]
             for g in previewer._groups_for(PruningPlan())]
    return model, x, previewer, roots


@pytest.fixture(params=["resnet18", "digits", "mobilenet_v2"])
def setup(request) -> tuple[nn.Module, torch.Tensor, Previewer, list[str]]:
    return _setup(request.param)


# Plans built from the model's own group roots (r[i]) so every family gets each feature.
PLANS: dict[str, Callable[[list[str]], PruningPlan]] = {
    "local": lambda r: PruningPlan(pruning_ratio=0.5),
    "global": lambda r: PruningPlan(pruning_ratio=0.5, global_pruning=True),
    "isomorphic": lambda r: PruningPlan(pruning_ratio=0.4, global_pruning=True,
                                        isomorphic=True),
    "round_to_8": lambda r: PruningPlan(pruning_ratio=0.3, round_to=8),
    "global_capped_lamp": lambda r: PruningPlan(pruning_ratio=0.6, global_pruning=True,
                                                max_pruning_ratio=0.7, importance="lamp"),
    "scope_group_layer_ignored": lambda r: PruningPlan(
        pruning_ratio=0.2,
        scopes=[UserScope([r[0], r[-1]], 0.6, "ends")],
        group_ratios={r[1]: 0.75},
        layer_ratios={r[2]: 0.4} if len(r) > 3 else {},
        ignored_layers=[r[3]] if len(r) > 4 else [],
    ),
    "global_with_layer_ratio": lambda r: PruningPlan(pruning_ratio=0.3, global_pruning=True,
                                                     layer_ratios={r[1]: 0.6}),
    "two_iterative_steps": lambda r: PruningPlan(pruning_ratio=0.5, iterative_steps=2,
                                                 global_pruning=True),
    "taylor_random_calibration": lambda r: PruningPlan(pruning_ratio=0.5, importance="taylor"),
    "random_seeded_global": lambda r: PruningPlan(pruning_ratio=0.5, importance="random",
                                                  importance_options={"seed": 3},
                                                  global_pruning=True),
}


def _pruned_copy(model: nn.Module, x: torch.Tensor, plan: PruningPlan) -> nn.Module:
    pruned = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        apply_plan(pruned, x, plan)
    return pruned


def _assert_preview_is_exact(model, x, previewer: Previewer, plan: PruningPlan) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preview = previewer.preview(plan)
    pruned = _pruned_copy(model, x, plan)
    macs, params, layer_macs, _ = count_ops_and_params(pruned, x, layer_wise=True)
    assert (preview.macs_after, preview.params_after) == (macs, params)
    assert (preview.macs_before, preview.params_before) == count_ops_and_params(model, x)
    assert preview.macs_after < preview.macs_before  # the plan really prunes something
    modules = dict(pruned.named_modules())
    originals = dict(model.named_modules())
    assert preview.layers, "a preview lists the prunable layers"
    for layer in preview.layers:
        m = modules[layer.name]
        pruner = previewer.dg.get_pruner_of_module(originals[layer.name])
        got = (int(pruner.get_in_channels(m) or 0), int(pruner.get_out_channels(m) or 0),
               sum(p.numel() for p in m.parameters()), layer_macs[m])
        assert (layer.in_after, layer.out_after, layer.params_after, layer.macs_after) == got, \
            layer.name


# mobilenet_v2 (depthwise convs) runs four core plans by default, the rest with -m slow;
# densenet121 only with -m slow.
_MOBILENET_DEFAULT = {"local", "global", "round_to_8", "scope_group_layer_ignored"}


def _is_slow(model: str, plan: str) -> bool:
    return model == "densenet121" or (model == "mobilenet_v2" and plan not in _MOBILENET_DEFAULT)


CASES = [
    pytest.param(m, p, id=f"{m}-{p}", marks=pytest.mark.slow if _is_slow(m, p) else ())
    for m in MODELS for p in PLANS
]


@pytest.mark.parametrize(("model_name", "plan_name"), CASES)
def test_preview_equals_real_pruning_exactly(model_name: str, plan_name: str) -> None:
    model, x, previewer, roots = _setup(model_name)
    _assert_preview_is_exact(model, x, previewer, PLANS[plan_name](roots))


def test_preview_leaves_the_model_untouched(setup) -> None:
    model, x, previewer, roots = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    previewer.preview(PLANS["global"](roots))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previewer.preview(PLANS["taylor_random_calibration"](roots))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert len(previewer.dg.pruning_history()) == 0


def test_editing_one_ratio_back_and_forth_stays_exact() -> None:
    """Layer states cached per removal count must not leak between previews."""
    model, x, previewer, _ = _setup("resnet18")
    base = PruningPlan(pruning_ratio=0.5)
    edits = [0.2, 0.7, 0.2, 0.0]
    results = []
    for r in edits:
        plan = base.replace(layer_ratios={"layer2.0.conv1": r})
        _assert_preview_is_exact(model, x, previewer, plan)
        results.append(previewer.preview(plan))
    assert results[0] == results[2]
    assert results[0].by_name()["layer2.0.conv1"].out_after == 102  # round(128 * 0.8)
    assert results[1].by_name()["layer2.0.conv1"].out_after == 38
    assert results[3].by_name()["layer2.0.conv1"].out_after == 128


def test_previewer_refuses_a_graph_pruned_behind_its_back() -> None:
    model, x = load_demo()
    previewer = Previewer(model, x)
    apply_plan(model, x, PruningPlan(pruning_ratio=0.25), dependency_graph=previewer.dg)
    with pytest.raises(RuntimeError, match="build a new Previewer"):
        previewer.preview(PruningPlan())


def test_unseeded_random_criterion_warns() -> None:
    _, _, previewer, _ = _setup("digits")
    with pytest.warns(UserWarning, match="without a seed"):
        previewer.preview(PruningPlan(importance="random"))


def test_zero_ratio_preview_changes_nothing(setup) -> None:
    _, _, previewer, _ = setup
    preview = previewer.preview(PruningPlan(pruning_ratio=0.0))
    assert preview.groups == []
    assert (preview.macs_after, preview.params_after) == (preview.macs_before,
                                                          preview.params_before)
    assert all(lp.out_after == lp.out_before and lp.macs_after == lp.macs_before
               for lp in preview.layers)


def test_preview_rejects_bad_plans_with_plan_error(setup) -> None:
    _, _, previewer, _ = setup
    with pytest.raises(PlanError, match="no such layer 'nope'"):
        previewer.preview(PruningPlan(ignored_layers=["nope"]))


def test_json_reloaded_plan_reproduces_the_same_structure(tmp_path) -> None:
    model, x = _resnet18()
    plan = PLANS["scope_group_layer_ignored"](["conv1", "layer1.0.conv1", "layer2.0.conv1",
                                               "layer3.0.conv1", "layer4.1.conv1"])
    plan.global_pruning = True
    reloaded = PruningPlan.load(plan.save(tmp_path / "plan.json"))
    a, b = _pruned_copy(model, x, plan), _pruned_copy(model, x, reloaded)
    shapes_a = {k: tuple(v.shape) for k, v in a.state_dict().items()}
    shapes_b = {k: tuple(v.shape) for k, v in b.state_dict().items()}
    assert shapes_a == shapes_b
    assert shapes_a != {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in shapes_a)


def test_pruning_zero_importance_channels_keeps_outputs() -> None:
    """Channels whose weights are all zero are the ones removed, and outputs stay equal."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    with torch.no_grad():
        for c in (1, 4, 6, 7):
            model[0].weight[c] = 0
            model[0].bias[c] = 0
    x = torch.randn(2, 3, 6, 6)
    preview = preview_plan(model, x, PruningPlan(pruning_ratio=0.5))
    assert preview.groups[0].idxs == [1, 4, 6, 7]
    pruned = copy.deepcopy(model)
    apply_plan(pruned, x, PruningPlan(pruning_ratio=0.5))
    assert pruned[0].out_channels == 4 and pruned[2].in_channels == 4
    torch.testing.assert_close(pruned(x), model(x), atol=1e-5, rtol=0)


class _DataDependent(nn.Module):
    """A forward that reads tensor values: it cannot run on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        if float(y.abs().sum()) >= 0:
            y = torch.relu(y)
        return self.conv2(y)


def test_model_without_meta_forward_falls_back_to_a_real_copy() -> None:
    torch.manual_seed(0)
    model, x = _DataDependent(), torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match="cannot run on the meta device"):
        previewer = Previewer(model, x)
    _assert_preview_is_exact(model, x, previewer, PruningPlan(pruning_ratio=0.5))
    assert previewer.preview(PruningPlan(pruning_ratio=0.5)).by_name()["conv1"].out_after == 4


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(16, 32)
        self.lstm = nn.LSTM(32, 48, num_layers=2, batch_first=True)
        self.fc = nn.Linear(48, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(torch.relu(self.emb(x)))
        return self.fc(y[:, -1])


@pytest.mark.parametrize("global_pruning", [False, True])
def test_lstm_preview_is_exact_even_for_fractional_per_sample_macs(global_pruning: bool) -> None:
    torch.manual_seed(0)
    model, x = _Recurrent().eval(), torch.randn(2, 7, 16)  # batch 2: MACs/sample end in .5
    plan = PruningPlan(pruning_ratio=0.5, global_pruning=global_pruning)
    previewer = Previewer(model, x)
    _assert_preview_is_exact(model, x, previewer, plan)
    preview = previewer.preview(plan)
    assert preview.by_name()["lstm"].out_after < 48
    assert preview.macs_after == count_ops_and_params(_pruned_copy(model, x, plan), x)[0]


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 64)
        self.attn = nn.MultiheadAttention(64, 8, batch_first=True)
        self.fc = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        a, _ = self.attn(h, h, h)
        return self.fc(a.mean(1))


@pytest.mark.parametrize("plan", [
    PruningPlan(pruning_ratio=0.25),
    PruningPlan(pruning_ratio=0.0, prune_num_heads=True, head_pruning_ratio=0.5),
], ids=["head_dims", "whole_heads"])
def test_attention_preview_is_exact(plan: PruningPlan) -> None:
    torch.manual_seed(0)
    model, x = _Attention().eval(), torch.randn(1, 6, 16)
    previewer = Previewer(model, x)
    _assert_preview_is_exact(model, x, previewer, plan)
    pruned = _pruned_copy(model, x, plan)
    if plan.prune_num_heads:
        assert pruned.attn.num_heads == 4
        assert [g.root_name for g in previewer.preview(plan).groups] == ["attn"]


# ------------------------------------------- whole heads: the fast (meta) path, exactly
def _tv_vit() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=2, num_heads=12, hidden_dim=96, mlp_dim=192,
        num_classes=10).eval(), torch.randn(1, 3, 32, 32)


def _timm_vit() -> tuple[nn.Module, torch.Tensor]:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2,
                             num_heads=6, num_classes=10).eval(), torch.randn(1, 3, 32, 32)


def _llama_gqa() -> tuple[nn.Module, torch.Tensor]:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=8,
                                   num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    ids = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
    return transformers.LlamaForCausalLM(cfg).eval(), ids


HEAD_MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "tv_vit": _tv_vit, "timm_vit": _timm_vit, "llama_gqa": _llama_gqa,
}


@functools.cache
def _head_setup(name: str) -> tuple[nn.Module, torch.Tensor, Previewer]:
    torch.set_num_threads(1)
    model, x = HEAD_MODELS[name]()
    return model, x, Previewer(model, x)


def _heads(ratio: float = 0.0, head_ratio: float = 0.0, **kw) -> PruningPlan:
    return PruningPlan(pruning_ratio=ratio, prune_num_heads=True, head_pruning_ratio=head_ratio,
                       **kw)


HEAD_PLANS = {
    # torchvision ViT: every block's heads are one scope (they share the residual stream)
    "tv_vit-heads": ("tv_vit", _heads(0.0, 0.5)),
    "tv_vit-heads_and_dims": ("tv_vit", _heads(0.5, 0.5, ignored_layers=["heads"])),
    "tv_vit-heads_without_dims": ("tv_vit", _heads(0.3, 0.25, prune_head_dims=False)),
    "tv_vit-head_ratio_dict": ("tv_vit", _heads(0.0, 0.0, head_pruning_ratio_dict={
        "encoder.layers.encoder_layer_1.self_attention": 0.25})),
    "tv_vit-taylor": ("tv_vit", _heads(0.25, 0.5, importance="taylor")),
    "tv_vit-random_seeded": ("tv_vit", _heads(0.25, 0.5, importance="random",
                                              importance_options={"seed": 1})),
    # timm: fused qkv per block, the owner's num_heads lowered on the meta copy
    "timm_vit-heads": ("timm_vit", _heads(0.0, 0.5)),
    "timm_vit-heads_dims_and_dict": ("timm_vit", _heads(
        0.5, 0.34, head_pruning_ratio_dict={"blocks.0.attn": 0.5})),
    # Llama GQA (RoPE: whole heads only): a unit is one KV head with its 4 query heads
    "llama_gqa-heads": ("llama_gqa", _heads(0.0, 0.5)),
    "llama_gqa-head_ratio_dict_and_mlp": ("llama_gqa", _heads(0.25, 0.0, head_pruning_ratio_dict={
        "model.layers.0.self_attn": 0.5})),
}


@pytest.fixture
def fast_path_only(monkeypatch) -> None:
    """Fail if a preview falls back to really pruning a copy (the slow path)."""
    def refuse(self, plan):
        raise AssertionError("the preview fell back to pruning a real copy")
    monkeypatch.setattr(Previewer, "_simulate", refuse)


@pytest.mark.parametrize("case", list(HEAD_PLANS))
def test_whole_head_preview_is_exact_on_the_meta_path(case: str, fast_path_only) -> None:
    model, x, previewer = _head_setup(HEAD_PLANS[case][0])
    plan = HEAD_PLANS[case][1]
    _assert_preview_is_exact(model, x, previewer, plan)
    preview = previewer.preview(plan)
    assert any(g.scope.startswith("heads:") for g in preview.groups), "whole heads planned"
    assert previewer._shadow is not None


def test_whole_heads_preview_counts_heads_as_pruning_does(fast_path_only) -> None:
    model, x, previewer = _head_setup("llama_gqa")
    plan = HEAD_PLANS["llama_gqa-head_ratio_dict_and_mlp"][1]
    by_name = previewer.preview(plan).by_name()
    pruned = _pruned_copy(model, x, plan)
    attn0, attn1 = (pruned.model.layers[i].self_attn for i in (0, 1))
    assert (attn0.q_proj.out_features, attn0.k_proj.out_features) == (32, 8)  # 4 q + 1 kv head
    assert (attn1.q_proj.out_features, attn1.k_proj.out_features) == (64, 16)
    assert by_name["model.layers.0.self_attn.q_proj"].out_after == 32
    assert by_name["model.layers.0.self_attn.k_proj"].out_after == 8
    assert by_name["model.layers.1.self_attn.q_proj"].out_after == 64


def test_head_dims_and_one_head_of_equal_size_are_told_apart(fast_path_only) -> None:
    """8 of 64 MHA positions: one dim of every head (8 heads of 7) or one head (7 of 8).
    The meta copy caches pruned layers per removal count; the two must not share one."""
    torch.manual_seed(0)
    model, x = _Attention().eval(), torch.randn(1, 6, 16)
    previewer = Previewer(model, x)
    dims = PruningPlan(pruning_ratio=0.125)
    one_head = _heads(0.0, 0.125)
    for plan in (dims, one_head, dims, one_head):
        _assert_preview_is_exact(model, x, previewer, plan)
    assert _pruned_copy(model, x, dims).attn.num_heads == 8
    assert _pruned_copy(model, x, one_head).attn.num_heads == 7


# ------------------------------------------------------------------ solver
@pytest.fixture
def resnet_previewer() -> tuple[nn.Module, torch.Tensor, Previewer]:
    model, x, previewer, _ = _setup("resnet18")
    return model, x, previewer


@pytest.mark.parametrize("target", ["macs", "params"])
def test_solver_keeps_half_of_resnet18(resnet_previewer, target: str) -> None:
    model, x, previewer = resnet_previewer
    plan = PruningPlan(round_to=8)
    result = solve_ratio(previewer, plan, target=target, keep=0.5)
    assert plan.pruning_ratio == result.ratio
    assert 0.45 <= result.achieved <= 0.5  # never above, close below (round_to=8 steps)
    macs, params = count_ops_and_params(_pruned_copy(model, x, plan), x)
    before = previewer.macs_before if target == "macs" else previewer.params_before
    assert (macs if target == "macs" else params) / before == pytest.approx(result.achieved,
                                                                              abs=1e-12)
    # one ratio step less would keep more than asked: the answer is the tightest
    looser = previewer.preview(plan.replace(pruning_ratio=result.ratio - 2e-4))
    kept = looser.macs_ratio if target == "macs" else looser.params_ratio
    assert kept > 0.5 or kept == result.achieved


def test_solver_impossible_target_returns_the_floor(resnet_previewer) -> None:
    _, _, previewer = resnet_previewer
    plan = PruningPlan(max_pruning_ratio=0.3)
    result = solve_ratio(previewer, plan, target="macs", keep=0.1)
    assert result.achieved > 0.1
    floor = previewer.preview(plan.replace(pruning_ratio=0.99)).macs_ratio
    assert result.achieved == floor


def test_solver_argument_errors(resnet_previewer) -> None:
    model, _, previewer = resnet_previewer
    with pytest.raises(PlanError, match="target: must be 'macs' or 'params'"):
        solve_ratio(previewer, PruningPlan(), target="flops", keep=0.5)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match=r"keep: 1.5 must be a fraction in \(0, 1\]"):
        solve_ratio(previewer, PruningPlan(), target="macs", keep=1.5)
    with pytest.raises(PlanError, match="example_inputs are needed"):
        solve_ratio(model, PruningPlan(), target="macs", keep=0.5)


# ------------------------------------------------------------------ apply
def test_apply_reports_progress_per_group_and_outcome() -> None:
    model, x = load_demo()
    calls: list[tuple[int, int, str]] = []
    outcome = apply_plan(model, x, PruningPlan(pruning_ratio=0.5, iterative_steps=2),
                         progress=lambda d, t, m: calls.append((d, t, m)))
    assert outcome.steps_done == 2
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[0] == 0  # the bar only moves forward, from 0
    assert calls[-1][0] == calls[-1][1] and calls[-1][2] == "done"
    assert all(d <= t for d, t, _ in calls)
    messages = [m for _, _, m in calls]
    # the slow part before any cut (counting, graph, scoring every group) moves the bar too
    assert messages[:2] == ["counting MACs and parameters", "built the dependency graph"]
    assert calls[1][0] == 2 and calls[1][1] == calls[-1][1]  # the total is known from here
    scored = [m for m in messages if "scored group" in m]
    pruned = [m for m in messages if "pruned the group of" in m]
    assert scored[0] == f"step 1: scored group 1 of {len(scored) // 2}"
    assert pruned[0] == "step 1/2: pruned the group of stem.0"
    assert messages.index(scored[0]) < messages.index(pruned[0])
    assert (outcome.macs_after, outcome.params_after) == count_ops_and_params(model, x)
    assert outcome.macs_after < outcome.macs_before
    assert len(outcome.history) == len(pruned)
    assert outcome.history[0][0] == "stem.0" and outcome.history[0][1] is True


def test_apply_cancel_stops_and_leaves_a_valid_model() -> None:
    model, x = load_demo()
    seen = []

    def cancel() -> bool:
        return len(seen) >= 2

    with pytest.raises(Cancelled, match="cancelled during step 1 of 1"):
        apply_plan(model, x, PruningPlan(pruning_ratio=0.5),
                   progress=lambda d, t, m: "pruned" in m and seen.append(d), cancel=cancel)
    assert len(seen) == 2
    assert model(x).shape == (1, 10)  # partly pruned, still consistent
    assert model.stem[0].out_channels == 8
    # the two groups that were pruned are recorded on the model (engine.state_dict saves it)
    assert [h[0] for h in model.__dict__[HISTORY_ATTR]] == ["stem.0", "branch_a.0"]


def test_apply_with_calibration_uses_its_gradients() -> None:
    """Taylor with a user loss: the preview (same loss) predicts the result; no warning."""
    model, x = _resnet18()
    target = torch.randint(0, 1000, (4,))
    batch = torch.randn(4, 3, 64, 64)

    def loss(m: nn.Module) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch), target)

    plan = PruningPlan(pruning_ratio=0.4, importance="taylor", global_pruning=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preview = Previewer(model, x, calibration=loss).preview(plan)
        pruned = copy.deepcopy(model)
        apply_plan(pruned, x, plan, calibration=loss)
    assert (preview.macs_after, preview.params_after) == count_ops_and_params(pruned, x)
    assert all(p.grad is None for p in pruned.parameters())
    with pytest.warns(UserWarning, match="needs gradients and no calibration was given"):
        apply_plan(copy.deepcopy(model), x, plan)


def test_previews_share_rankings_through_the_plan_cache():
    """The second preview of a criterion scores no group again (the ranking stage of the
    PlanCache); a pruner refuses a cache made for a graph that was pruned since."""
    import engine as tp
    from engine.pruner import PlanCache

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 32, 32)
    calls = []

    class Counting(tp.importance.MagnitudeImportance):
        def __call__(self, group):  # noqa: ANN001, ANN204
            calls.append(group[0].dep.target.name)
            return super().__call__(group)

    dg = tp.DependencyGraph().build_dependency(model, x)
    groups = list(dg.get_all_groups(ignored_layers=[model.fc]))
    cache = PlanCache(dg, groups=groups)
    first = tp.pruner.BasePruner(model, x, Counting(), pruning_ratio=0.5, dependency_graph=dg,
                                 plan_cache=cache, ignored_layers=[model.fc]).plan_step()
    n = len(calls)
    assert n == len(groups)
    again = tp.pruner.BasePruner(model, x, Counting(), pruning_ratio=0.3, dependency_graph=dg,
                                 plan_cache=cache, ignored_layers=[model.fc]).plan_step()
    assert len(calls) == n  # rankings came from the cache
    assert [p.root_name for p in again] == [p.root_name for p in first]
    assert sum(p.n_removed for p in again) < sum(p.n_removed for p in first)
    dg.get_pruning_group(model.conv1, tp.prune_conv_out_channels, [0]).prune()
    with pytest.raises(RuntimeError, match="pruned after this PlanCache"):
        tp.pruner.BasePruner(model, x, Counting(), dependency_graph=dg, plan_cache=cache)


def test_slow_preview_path_reports_monotonic_progress_and_is_unchanged_by_it() -> None:
    """An iterative plan is previewed on a real pruned deep copy (the slow path): its
    progress moves unit by unit, ends at done == total, and observing it changes nothing."""
    model, x = _resnet18()
    plan = PruningPlan(pruning_ratio=0.3, iterative_steps=3)
    pv = Previewer(model, x)
    ticks: list[tuple[int, int, str]] = []
    seen = pv.preview(plan, on_progress=lambda d, t, m: ticks.append((d, t, m)))
    quiet = Previewer(model, x).preview(plan)
    assert (seen.macs_after, seen.params_after) == (quiet.macs_after, quiet.params_after)
    done = [d for d, _, _ in ticks]
    assert done == sorted(done) and len(set(done)) >= 10
    assert [d / t for d, t, _ in ticks] == sorted(d / t for d, t, _ in ticks)
    assert ticks[-1][0] == ticks[-1][1] and ticks[-1][2] == "counted the pruned copy"
    assert any("step 3/3: pruned the group of" in m for _, _, m in ticks)
