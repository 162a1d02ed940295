"""PruningPlan schema: JSON round-trip, atomic save/load, and every validation message."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torchvision

from engine.graph import DependencyGraph
from engine.plan import PLAN_VERSION, PlanError, PruningPlan, UserScope, build_pruner
from engine.plan.build import ratio_dict


def _full_plan() -> PruningPlan:
    return PruningPlan(
        source="torchvision:resnet18", input_spec="1,3,64,64", importance="lamp",
        importance_options={"p": 1}, pruning_ratio=0.4, max_pruning_ratio=0.9,
        global_pruning=True, isomorphic=True, layer_ratios={"layer1.0.conv1": 0.3},
        group_ratios={"layer2.0.conv1": 0.2},
        scopes=[UserScope(["layer3.0.conv1", "layer3.1.conv1"], 0.6, "mid")],
        ignored_layers=["fc"], round_to=8, iterative_steps=3, prune_head_dims=False,
        prune_num_heads=True, head_pruning_ratio=0.25, head_pruning_ratio_dict={"layer4": 0.5},
    )


@pytest.fixture(scope="module")
def resnet18() -> torch.nn.Module:
    return torchvision.models.resnet18(weights=None)


# ------------------------------------------------------------------ round trip
def test_json_round_trip_keeps_every_field() -> None:
    plan = _full_plan()
    again = PruningPlan.from_json(plan.to_json())
    assert again == plan
    assert again.scopes[0] == UserScope(["layer3.0.conv1", "layer3.1.conv1"], 0.6, "mid")
    d = json.loads(plan.to_json())
    assert d["version"] == PLAN_VERSION == 1
    assert d["scopes"] == [{"layers": ["layer3.0.conv1", "layer3.1.conv1"], "ratio": 0.6,
                            "name": "mid"}]


def test_defaults_round_trip_and_missing_fields_take_defaults() -> None:
    assert PruningPlan.from_json(PruningPlan().to_json()) == PruningPlan()
    plan = PruningPlan.from_json('{"pruning_ratio": 0.25}')
    assert plan == PruningPlan(pruning_ratio=0.25)
    assert isinstance(PruningPlan.from_json('{"pruning_ratio": 0}').pruning_ratio, float)


def test_save_load_atomic_round_trip(tmp_path) -> None:
    plan = _full_plan()
    path = plan.save(tmp_path / "plan.json")
    assert PruningPlan.load(path) == plan
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temp file left


def test_load_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(PlanError, match="does not exist"):
        PruningPlan.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PlanError, match="bad.json: not valid JSON"):
        PruningPlan.load(bad)


def test_replace_copies_containers() -> None:
    plan = PruningPlan(layer_ratios={"a": 0.1})
    other = plan.replace(pruning_ratio=0.3)
    other.layer_ratios["b"] = 0.2
    assert plan.layer_ratios == {"a": 0.1} and other.pruning_ratio == 0.3


# ----------------------------------------------------------- JSON type errors
def test_from_dict_reports_every_type_problem() -> None:
    with pytest.raises(PlanError) as e:
        PruningPlan.from_dict({
            "version": 7, "pruning_ratio": "half", "global_pruning": 1, "round_to": 2.5,
            "layer_ratios": {"conv1": "x"}, "ignored_layers": "fc", "scopes": [{"layers": "a"}],
            "colour": "red",
        })
    assert sorted(e.value.problems) == sorted([
        "colour: unknown field (known fields: " + ", ".join(sorted(
            f for f in PruningPlan().to_dict())) + ")",
        "version: 7 is not supported (this Arborist reads version 1)",
        'pruning_ratio: must be a number, got "half"',
        "global_pruning: must be true or false, got 1",
        "round_to: must be an integer or null, got 2.5",
        "layer_ratios['conv1']: ratio must be a number, got \"x\"",
        'ignored_layers: must be a list of layer names, got "fc"',
        "scopes[0].layers: must be a list of layer names",
        "scopes[0].ratio: must be a number, got null",
    ])


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(PlanError, match="must be a JSON object, got list"):
        PruningPlan.from_json("[1, 2]")


# ------------------------------------------------------------ validation
def _problems(plan: PruningPlan, model: torch.nn.Module | None = None) -> list[str]:
    with pytest.raises(PlanError) as e:
        plan.validate(model)
    return e.value.problems


@pytest.mark.parametrize(("changes", "message"), [
    ({"pruning_ratio": 1.2}, "pruning_ratio: 1.2 is outside [0, 1)"),
    ({"pruning_ratio": -0.1}, "pruning_ratio: -0.1 is outside [0, 1)"),
    ({"max_pruning_ratio": 0.0}, "max_pruning_ratio: 0.0 is outside (0, 1]"),
    ({"max_pruning_ratio": 1.5}, "max_pruning_ratio: 1.5 is outside (0, 1]"),
    ({"round_to": 0}, "round_to: must be an integer >= 1 (or null), got 0"),
    ({"round_to": 2.0}, "round_to: must be an integer or null, got 2.0"),
    ({"iterative_steps": 0}, "iterative_steps: must be an integer >= 1, got 0"),
    ({"head_pruning_ratio": 1.0}, "head_pruning_ratio: 1.0 is outside [0, 1)"),
    ({"version": 2}, "version: 2 is not supported (this Arborist reads version 1)"),
    ({"importance": "l1"}, "importance: unknown criterion 'l1' (choose one of activation, "
     "bn_scale, fpgm, group_hessian, group_magnitude, group_taylor, hessian, lamp, magnitude, "
     "random, taylor)"),
    ({"importance_options": {"q": 2}}, "importance_options['q']: magnitude does not accept "
     "this option (accepted: p, group_reduction, normalizer, bias)"),
    ({"importance_options": {"p": -1}}, "importance_options: p must be positive, got -1"),
    ({"importance": "taylor", "importance_options": {"p": 2}}, "importance_options['p']: "
     "taylor does not accept this option (accepted: group_reduction, normalizer, "
     "multivariable, bias)"),
    ({"isomorphic": True}, "isomorphic: ranks within topology classes across the network and "
     "needs global_pruning: true"),
    ({"layer_ratios": {"conv1": 1.0}}, "layer_ratios['conv1']: 1.0 is outside [0, 1)"),
    ({"group_ratios": {"conv1": -1}}, "group_ratios['conv1']: -1 is outside [0, 1)"),
    ({"layer_ratios": {"fc": 0.5}, "ignored_layers": ["fc"]},
     "layer_ratios['fc']: this layer is also in ignored_layers; remove one of the two"),
    ({"scopes": [UserScope(["fc"], 0.3, "head")], "ignored_layers": ["fc"]},
     "scopes[0] ('head'): layer 'fc' is also in ignored_layers; remove one of the two"),
    ({"scopes": [UserScope(["conv1", "fc"], 0.3), UserScope(["fc"], 0.2)]},
     "scopes[1]: layer 'fc' is already in scopes[0]; a layer can belong to one scope only"),
    ({"scopes": [UserScope([], 0.3)]}, "scopes[0].layers: must be a non-empty list of layer "
     "names"),
    ({"scopes": [UserScope(["fc"], 2.0)]}, "scopes[0].ratio: 2.0 is outside [0, 1)"),
    ({"global_pruning": "yes"}, "global_pruning: must be true or false, got 'yes'"),
])
def test_each_structural_problem_has_its_message(changes: dict, message: str) -> None:
    assert _problems(PruningPlan(**changes)) == [message]


def test_all_problems_are_collected_not_just_the_first(resnet18) -> None:
    problems = _problems(PruningPlan(pruning_ratio=2.0, round_to=0, layer_ratios={"layer9": 0.1},
                                     iterative_steps=0), resnet18)
    assert len(problems) == 4
    assert "layer_ratios['layer9']: no such layer 'layer9' (did you mean 'layer1'?)" in problems


def test_unknown_layer_names_suggest_close_matches(resnet18) -> None:
    plan = PruningPlan(layer_ratios={"layer1.0.conv": 0.2}, ignored_layers=["fc1"],
                       group_ratios={"zzz": 0.1}, scopes=[UserScope(["layer2.0.bn"], 0.3)])
    assert _problems(plan, resnet18) == [
        "layer_ratios['layer1.0.conv']: no such layer 'layer1.0.conv' "
        "(did you mean 'layer1.0.conv1'?)",
        "group_ratios['zzz']: no such layer 'zzz'",
        "ignored_layers[0]: no such layer 'fc1' (did you mean 'fc'?)",
        "scopes[0].layers: no such layer 'layer2.0.bn' (did you mean 'layer2.0.bn1'?)",
    ]
    PruningPlan(layer_ratios={"layer1.0.conv1": 0.2}).validate(resnet18)  # fine


def test_graph_checks_coupling_and_group_roots(resnet18) -> None:
    x = torch.randn(1, 3, 64, 64)
    dg = DependencyGraph().build_dependency(resnet18, x)
    # conv1's out channels feed the identity adds of layer1: coupled with layer1.*.conv2
    plan = PruningPlan(layer_ratios={"conv1": 0.2, "layer1.0.conv2": 0.5},
                       group_ratios={"bn1": 0.3})
    with pytest.raises(PlanError) as e:
        build_pruner(resnet18, x, plan, dependency_graph=dg)
    assert e.value.problems == [
        "group_ratios['bn1']: 'bn1' is not the root of a prunable group"
        "; its channels belong to the group rooted at 'conv1'",
        "layer_ratios: layers 'conv1': 0.2, 'layer1.0.conv2': 0.5 are coupled in the group "
        "rooted at 'conv1' and must share one ratio (set it once in group_ratios)",
    ]
    # the same ratio on coupled layers is fine
    build_pruner(resnet18, x, PruningPlan(layer_ratios={"conv1": 0.2, "layer1.0.conv2": 0.2}),
                 dependency_graph=dg)


def test_ratio_on_a_layer_no_group_prunes_warns(resnet18) -> None:
    x = torch.randn(1, 3, 64, 64)
    dg = DependencyGraph().build_dependency(resnet18, x)
    with pytest.warns(UserWarning, match=r"layer_ratios\['fc'\]: no prunable group owns the "
                      r"out-channels of 'fc' \(a model output, locked or ignored\)"):
        build_pruner(resnet18, x, PruningPlan(layer_ratios={"fc": 0.5}), dependency_graph=dg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a container path covering prunable layers is fine
        build_pruner(resnet18, x, PruningPlan(layer_ratios={"layer1": 0.5}),
                     dependency_graph=dg)


def test_ratio_dict_precedence_scope_group_layer(resnet18) -> None:
    m = dict(resnet18.named_modules())
    plan = PruningPlan(layer_ratios={"layer1": 0.1, "layer1.0.conv1": 0.2},
                       group_ratios={"layer2.0.conv1": 0.3},
                       scopes=[UserScope(["layer3.0.conv1", "layer3.1.conv1"], 0.4)])
    d = ratio_dict(plan, resnet18)
    assert list(d.items()) == [
        ((m["layer3.0.conv1"], m["layer3.1.conv1"]), 0.4),
        (m["layer2.0.conv1"], 0.3),
        (m["layer1.0.conv1"], 0.2),  # more specific path before its container
        (m["layer1"], 0.1),
    ]
