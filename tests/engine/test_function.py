"""Tests for engine.function: per-layer pruners, module-level handlers, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import engine.function as F

torch.manual_seed(0)


def _sel(t: torch.Tensor, dim: int, keep: list[int]) -> torch.Tensor:
    return torch.index_select(t.detach().clone(), dim, torch.tensor(keep))


def _keep(n: int, removed: list[int]) -> list[int]:
    return [i for i in range(n) if i not in set(removed)]


def _fill_grads(module: nn.Module) -> None:
    for p in module.parameters():
        p.grad = torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape)


def _zero_channels(x: torch.Tensor, removed: list[int]) -> torch.Tensor:
    x = x.clone()
    x[:, removed] = 0
    return x


# --------------------------------------------------------------- index helpers


def test_normalize_idxs_sorts_dedups_and_accepts_tensors():
    assert F.normalize_idxs([5, 1, 5, 3], 6) == [1, 3, 5]
    assert F.normalize_idxs(torch.tensor([2, 0, 2]), 3) == [0, 2]
    assert F.normalize_idxs([], 3) == []


@pytest.mark.parametrize("bad", [[3], [-1]])
def test_normalize_idxs_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="out of range"):
        F.normalize_idxs(bad, 3)


# ---------------------------------------------------------------------- linear


def test_linear_out_and_in_slices_exact_rows_and_cols_in_place():
    layer = nn.Linear(5, 6)
    _fill_grads(layer)
    w, b = layer.weight, layer.bias
    w0, b0, gw0 = w.detach().clone(), b.detach().clone(), w.grad.clone()

    out = F.prune_linear_out_channels(layer, [4, 0, 4])
    assert out is layer
    assert layer.weight is w and layer.bias is b
    assert layer.out_features == 4
    assert torch.equal(layer.weight, _sel(w0, 0, [1, 2, 3, 5]))
    assert torch.equal(layer.bias, _sel(b0, 0, [1, 2, 3, 5]))
    assert torch.equal(layer.weight.grad, _sel(gw0, 0, [1, 2, 3, 5]))

    F.prune_linear_in_channels(layer, [3, 1])
    assert layer.in_features == 3
    assert torch.equal(layer.weight, _sel(_sel(w0, 0, [1, 2, 3, 5]), 1, [0, 2, 4]))
    assert layer.weight.grad.shape == (4, 3)
    assert layer(torch.randn(2, 3)).shape == (2, 4)


# ------------------------------------------------------------------------ conv


@pytest.mark.parametrize(
    "cls,spatial", [(nn.Conv1d, (7,)), (nn.Conv2d, (5, 5)), (nn.Conv3d, (4, 4, 4))]
)
def test_conv_out_and_in(cls, spatial):
    layer = cls(4, 6, 3, padding=1)
    _fill_grads(layer)
    w, b = layer.weight, layer.bias
    w0, b0 = w.detach().clone(), b.detach().clone()
    ref = cls(4, 6, 3, padding=1)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, *spatial)

    F.prune_conv_out_channels(layer, [2, 5])
    assert (layer.out_channels, layer.weight is w, layer.bias is b) == (4, True, True)
    assert torch.equal(layer.weight, _sel(w0, 0, [0, 1, 3, 4]))
    assert torch.equal(layer.bias, _sel(b0, 0, [0, 1, 3, 4]))
    assert layer.weight.grad.shape == layer.weight.shape
    assert torch.equal(layer.bias.grad, torch.tensor([0.0, 1, 3, 4]))

    F.prune_conv_in_channels(layer, [0])
    assert layer.in_channels == 3
    assert torch.equal(layer.weight, _sel(_sel(w0, 0, [0, 1, 3, 4]), 1, [1, 2, 3]))
    # pruning input channel 0 == feeding zeros on it, restricted to the kept outputs
    expect = ref(_zero_channels(x, [0]))[:, [0, 1, 3, 4]]
    torch.testing.assert_close(layer(x[:, [1, 2, 3]]), expect)


def test_grouped_conv_in_channels_removes_same_positions_in_every_group():
    layer = nn.Conv2d(8, 6, 3, groups=2, padding=1)  # 4 in per group
    ref = nn.Conv2d(8, 6, 3, groups=2, padding=1)
    ref.load_state_dict(layer.state_dict())
    w, w0 = layer.weight, layer.weight.detach().clone()
    F.prune_conv_in_channels(layer, [5, 1, 7, 3])  # positions {1, 3} in both groups
    assert (layer.in_channels, layer.groups, layer.weight is w) == (4, 2, True)
    assert torch.equal(layer.weight, _sel(w0, 1, [0, 2]))
    x = torch.randn(1, 8, 5, 5)
    expect = ref(_zero_channels(x, [1, 3, 5, 7]))
    torch.testing.assert_close(layer(x[:, [0, 2, 4, 6]]), expect)


def test_grouped_conv_in_channels_rejects_asymmetric_removal():
    layer = nn.Conv2d(8, 6, 3, groups=2)
    with pytest.raises(ValueError, match="same within-group positions"):
        F.prune_conv_in_channels(layer, [1])
    assert layer.weight.shape == (6, 4, 3, 3) and layer.in_channels == 8


def test_grouped_conv_out_channels_needs_equal_count_per_group():
    layer = nn.Conv2d(4, 6, 3, groups=2, padding=1)  # 3 out per group
    ref = nn.Conv2d(4, 6, 3, groups=2, padding=1)
    ref.load_state_dict(layer.state_dict())
    with pytest.raises(ValueError, match=r"per-group removals \[2, 0\]"):
        F.prune_conv_out_channels(layer, [0, 1])
    F.prune_conv_out_channels(layer, [0, 4])
    assert (layer.out_channels, layer.groups) == (4, 2)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(layer(x), ref(x)[:, [1, 2, 3, 5]])
    assert F.ConvPruner().get_out_channel_groups(layer) == 2
    assert F.ConvPruner().get_in_channel_groups(layer) == 2


@pytest.mark.parametrize(
    "fn", [F.prune_depthwise_conv_out_channels, F.prune_depthwise_conv_in_channels]
)
def test_depthwise_conv_prunes_in_out_and_groups_together(fn):
    layer = nn.Conv2d(6, 6, 3, groups=6, padding=1)
    ref = nn.Conv2d(6, 6, 3, groups=6, padding=1)
    ref.load_state_dict(layer.state_dict())
    w0 = layer.weight.detach().clone()
    fn(layer, [4, 1, 1])
    assert (layer.in_channels, layer.out_channels, layer.groups) == (4, 4, 4)
    assert torch.equal(layer.weight, _sel(w0, 0, [0, 2, 3, 5]))
    assert F.is_depthwise_conv(layer)
    assert F.ConvPruner().get_out_channel_groups(layer) == 1
    x = torch.randn(1, 6, 5, 5)
    torch.testing.assert_close(layer(x[:, [0, 2, 3, 5]]), ref(x)[:, [0, 2, 3, 5]])


def test_depthwise_conv_with_channel_multiplier_prunes_whole_blocks():
    layer = nn.Conv1d(3, 6, 3, groups=3)  # multiplier 2
    b0 = layer.bias.detach().clone()
    with pytest.raises(ValueError, match="whole blocks of 2"):
        F.prune_conv_out_channels(layer, [2])
    F.prune_conv_out_channels(layer, [3, 2])
    assert (layer.in_channels, layer.out_channels, layer.groups) == (2, 4, 2)
    assert torch.equal(layer.bias, _sel(b0, 0, [0, 1, 4, 5]))
    F.prune_conv_in_channels(layer, [0])  # removes group 0 and its 2 outputs
    assert (layer.in_channels, layer.out_channels, layer.groups) == (1, 2, 1)
    assert torch.equal(layer.bias, _sel(b0, 0, [4, 5]))
    assert layer(torch.randn(1, 1, 5)).shape == (1, 2, 3)


# -------------------------------------------------------------- conv transpose


def test_conv_transpose_out_and_in():
    layer = nn.ConvTranspose2d(4, 6, 3)  # weight (in, out, k, k)
    _fill_grads(layer)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    w = layer.weight
    F.prune_conv_transpose_out_channels(layer, [0, 5])
    assert (layer.out_channels, layer.weight is w) == (4, True)
    assert torch.equal(layer.weight, _sel(w0, 1, [1, 2, 3, 4]))
    assert torch.equal(layer.bias, _sel(b0, 0, [1, 2, 3, 4]))
    assert layer.weight.grad.shape == (4, 4, 3, 3)
    F.prune_conv_transpose_in_channels(layer, [2])
    assert layer.in_channels == 3
    assert torch.equal(layer.weight, _sel(_sel(w0, 1, [1, 2, 3, 4]), 0, [0, 1, 3]))
    assert layer(torch.randn(1, 3, 4, 4)).shape == (1, 4, 6, 6)


def test_grouped_conv_transpose_matches_reference():
    layer = nn.ConvTranspose2d(4, 6, 3, groups=2)  # weight (4, 3, k, k)
    ref = nn.ConvTranspose2d(4, 6, 3, groups=2)
    ref.load_state_dict(layer.state_dict())
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    with pytest.raises(ValueError, match="same within-group positions"):
        F.prune_conv_transpose_out_channels(layer, [1])
    F.prune_conv_transpose_out_channels(layer, [4, 1])  # position 1 in both groups
    assert layer.out_channels == 4
    assert torch.equal(layer.weight, _sel(w0, 1, [0, 2]))
    assert torch.equal(layer.bias, _sel(b0, 0, [0, 2, 3, 5]))
    F.prune_conv_transpose_in_channels(layer, [0, 3])  # one per group
    assert (layer.in_channels, layer.groups) == (2, 2)
    x = torch.randn(1, 4, 3, 3)
    expect = ref(_zero_channels(x, [0, 3]))[:, [0, 2, 3, 5]]
    torch.testing.assert_close(layer(x[:, [1, 2]]), expect)


def test_depthwise_conv_transpose():
    layer = nn.ConvTranspose1d(4, 4, 3, groups=4)
    ref = nn.ConvTranspose1d(4, 4, 3, groups=4)
    ref.load_state_dict(layer.state_dict())
    F.prune_conv_transpose_out_channels(layer, [2])
    assert (layer.in_channels, layer.out_channels, layer.groups) == (3, 3, 3)
    x = torch.randn(1, 4, 5)
    torch.testing.assert_close(layer(x[:, [0, 1, 3]]), ref(x)[:, [0, 1, 3]])


# ----------------------------------------------------------------------- norms


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize(
    "cls,shape",
    [(nn.BatchNorm1d, (3, 6)), (nn.BatchNorm2d, (3, 6, 2, 2)), (nn.BatchNorm3d, (3, 6, 2, 2, 2))],
)
def test_batchnorm(cls, shape, affine, track):
    layer = cls(6, affine=affine, track_running_stats=track)
    layer(torch.randn(*shape))  # populate running stats
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    objs = {k: getattr(layer, k) for k in ("weight", "bias", "running_mean", "running_var")}
    F.prune_batchnorm_in_channels(layer, [5, 0])
    assert layer.num_features == 4
    for name, obj in objs.items():
        assert getattr(layer, name) is obj
        if obj is not None:
            assert torch.equal(obj, _sel(state[name], 0, [1, 2, 3, 4]))
    if track:
        assert torch.equal(layer.num_batches_tracked, state["num_batches_tracked"])
    layer.eval()
    assert layer(torch.randn(2, 4, *shape[2:])).shape == (2, 4, *shape[2:])


@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False}])
def test_layernorm_prunes_last_dim(kwargs):
    layer = nn.LayerNorm((3, 8), **kwargs)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    F.prune_layernorm_out_channels(layer, [7, 2, 2])
    assert tuple(layer.normalized_shape) == (3, 6)
    for name, value in state.items():
        assert torch.equal(getattr(layer, name), _sel(value, 1, [0, 1, 3, 4, 5, 6]))
    assert layer(torch.randn(2, 3, 6)).shape == (2, 3, 6)


def test_rmsnorm():
    layer = nn.RMSNorm(5)
    w = layer.weight
    with torch.no_grad():
        w.copy_(torch.arange(5.0))
    F.prune_rmsnorm_out_channels(layer, [1, 3])
    assert layer.weight is w and tuple(layer.normalized_shape) == (3,)
    assert torch.equal(w, torch.tensor([0.0, 2.0, 4.0]))
    assert layer(torch.randn(2, 3)).shape == (2, 3)
    unweighted = nn.RMSNorm(5, elementwise_affine=False)
    F.prune_rmsnorm_in_channels(unweighted, [0])
    assert tuple(unweighted.normalized_shape) == (4,)


def test_groupnorm_keeps_num_groups_and_checks_divisibility():
    layer = nn.GroupNorm(2, 8)
    w0 = layer.weight.detach().clone() + torch.arange(8.0)
    with torch.no_grad():
        layer.weight.copy_(w0)
    with pytest.raises(ValueError, match="not divisible"):
        F.prune_groupnorm_out_channels(layer, [0])
    F.prune_groupnorm_out_channels(layer, [0, 5])
    assert (layer.num_channels, layer.num_groups) == (6, 2)
    assert torch.equal(layer.weight, _sel(w0, 0, [1, 2, 3, 4, 6, 7]))
    assert layer(torch.randn(2, 6, 3)).shape == (2, 6, 3)


@pytest.mark.parametrize("affine,track", [(False, False), (True, True)])
def test_instancenorm(affine, track):
    layer = nn.InstanceNorm2d(5, affine=affine, track_running_stats=track)
    layer(torch.randn(2, 5, 3, 3))
    state = {k: v.clone() for k, v in layer.state_dict().items() if k != "num_batches_tracked"}
    F.prune_instancenorm_out_channels(layer, [4])
    assert layer.num_features == 4
    assert sorted(state) == (["bias", "running_mean", "running_var", "weight"] if affine else [])
    for name, value in state.items():
        assert torch.equal(getattr(layer, name), value[:4])
    layer.eval()
    assert layer(torch.randn(1, 4, 3, 3)).shape == (1, 4, 3, 3)


# ---------------------------------------------------------- prelu / embedding


def test_prelu_shared_slope_is_untouched_and_per_channel_is_sliced():
    shared = nn.PReLU()
    F.prune_prelu_out_channels(shared, [0, 3])
    assert shared.weight.shape == (1,) and F.PReLUPruner().get_out_channels(shared) is None
    per = nn.PReLU(4)
    with torch.no_grad():
        per.weight.copy_(torch.arange(4.0))
    F.prune_prelu_in_channels(per, [1])
    assert per.num_parameters == 3
    assert torch.equal(per.weight, torch.tensor([0.0, 2.0, 3.0]))
    assert per(torch.randn(2, 3, 2)).shape == (2, 3, 2)


def test_embedding_prunes_embedding_dim():
    layer = nn.Embedding(10, 6)
    w, w0 = layer.weight, layer.weight.detach().clone()
    F.prune_embedding_out_channels(layer, [0, 3])
    assert layer.weight is w and layer.embedding_dim == 4 and layer.num_embeddings == 10
    assert torch.equal(w, _sel(w0, 1, [1, 2, 4, 5]))
    assert layer(torch.tensor([[1, 9]])).shape == (1, 2, 4)
    assert F.prune_embedding_in_channels == F.prune_embedding_out_channels


# ------------------------------------------------------------------- parameter


def test_parameter_pruner_default_and_explicit_dim():
    p = nn.Parameter(torch.arange(12.0).reshape(3, 4))
    p.grad = torch.arange(12.0).reshape(3, 4) * 10
    out = F.prune_parameter_out_channels(p, [0, 2])  # default dim -1
    assert out is p
    assert torch.equal(p, torch.tensor([[1.0, 3], [5, 7], [9, 11]]))
    assert torch.equal(p.grad, torch.tensor([[10.0, 30], [50, 70], [90, 110]]))
    F.prune_parameter_in_channels(p, [1], dim=0)
    assert torch.equal(p, torch.tensor([[1.0, 3], [9, 11]]))
    assert F.ParameterPruner(pruning_dim=0).get_out_channels(p) == 2
    assert F._parameter.get_out_channels(p, dim=1) == 2


# --------------------------------------------------- cross-cutting invariants


def test_dtype_kept_and_empty_idxs_is_noop():
    layer = nn.Linear(3, 4).to(torch.float64)
    w0 = layer.weight.detach().clone()
    F.prune_linear_out_channels(layer, [])
    assert torch.equal(layer.weight, w0) and layer.out_features == 4
    F.prune_linear_out_channels(layer, [1])
    assert layer.weight.dtype == torch.float64 and layer.bias.dtype == torch.float64


@pytest.mark.parametrize(
    "fn,make,n",
    [
        (F.prune_conv_out_channels, lambda: nn.Conv2d(2, 3, 1), 3),
        (F.prune_conv_in_channels, lambda: nn.Conv2d(2, 3, 1), 2),
        (F.prune_conv_in_channels, lambda: nn.Conv2d(4, 2, 1, groups=2), 4),
        (F.prune_depthwise_conv_out_channels, lambda: nn.Conv2d(3, 3, 1, groups=3), 3),
        (F.prune_conv_transpose_out_channels, lambda: nn.ConvTranspose2d(2, 3, 1), 3),
        (F.prune_linear_in_channels, lambda: nn.Linear(2, 3), 2),
        (F.prune_batchnorm_out_channels, lambda: nn.BatchNorm2d(3), 3),
        (F.prune_layernorm_out_channels, lambda: nn.LayerNorm(3), 3),
        (F.prune_groupnorm_out_channels, lambda: nn.GroupNorm(1, 3), 3),
        (F.prune_instancenorm_out_channels, lambda: nn.InstanceNorm1d(3, affine=True), 3),
        (F.prune_prelu_out_channels, lambda: nn.PReLU(3), 3),
        (F.prune_embedding_out_channels, lambda: nn.Embedding(5, 3), 3),
        (F.prune_rmsnorm_out_channels, lambda: nn.RMSNorm(3), 3),
        (F.prune_parameter_out_channels, lambda: nn.Parameter(torch.ones(2, 3)), 3),
    ],
)
def test_refuses_to_remove_every_channel_and_leaves_layer_intact(fn, make, n):
    obj = make()
    before = (
        {k: v.clone() for k, v in obj.state_dict().items()}
        if isinstance(obj, nn.Module)
        else obj.clone()
    )
    with pytest.raises(ValueError, match="at least one must remain"):
        fn(obj, list(range(n)))
    if isinstance(obj, nn.Module):
        for k, v in obj.state_dict().items():
            assert torch.equal(v, before[k])
    else:
        assert torch.equal(obj, before)


def test_call_dispatches_and_checks_type():
    layer = nn.Linear(4, 5)
    pruner = F.LinearPruner()
    pruner(layer, [0])
    pruner(layer, [0, 1], to_output=False)
    assert (layer.out_features, layer.in_features) == (4, 2)
    with pytest.raises(TypeError, match="LinearPruner cannot prune Conv2d"):
        pruner(nn.Conv2d(1, 1, 1), [0])


# --------------------------------------------------------------------- registry


def test_module_level_functions_are_bound_to_default_instances():
    reg = F.PrunerRegistry()
    conv, bn = nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)
    assert F.prune_conv_out_channels == reg.lookup(conv).prune_out_channels
    assert F.prune_conv_out_channels.__self__ is F.prune_depthwise_conv_out_channels.__self__
    assert F.prune_conv_in_channels == F.prune_depthwise_conv_in_channels
    assert F.prune_batchnorm_in_channels == F.prune_batchnorm_out_channels
    assert F.prune_batchnorm_out_channels == reg.lookup(bn).prune_in_channels
    assert F.prune_conv_out_channels != F.prune_conv_in_channels
    assert reg.lookup(nn.ConvTranspose2d(1, 1, 1)) is F.prune_conv_transpose_out_channels.__self__


def test_default_pruners_returns_fresh_dict():
    first = F.default_pruners()
    first[nn.Linear] = F.ConvPruner()
    assert F.default_pruners()[nn.Linear] is F.prune_linear_out_channels.__self__
    assert F.default_pruners()[nn.RMSNorm] is F.prune_rmsnorm_out_channels.__self__
    assert F.default_pruners()[nn.Parameter] is F.prune_parameter_out_channels.__self__


def test_registry_lookup_by_mro_and_customization_does_not_leak():
    class MyLinear(nn.Linear):
        pass

    class MyLinearPruner(F.LinearPruner):
        pass

    custom = MyLinearPruner()
    layer = MyLinear(2, 3)
    plain = F.PrunerRegistry()
    assert plain.lookup(layer) is F.prune_linear_out_channels.__self__
    assert plain.lookup(nn.ReLU()) is None and nn.ReLU() not in plain

    reg = F.PrunerRegistry({MyLinear: custom})
    assert reg.lookup(layer) is custom
    assert reg.lookup(nn.Linear(2, 3)) is F.prune_linear_out_channels.__self__
    assert F.PrunerRegistry().lookup(layer) is F.prune_linear_out_channels.__self__
    assert MyLinear not in F.default_pruners()


def test_registry_instance_override_and_bad_keys():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    custom = F.LinearPruner()
    reg = F.PrunerRegistry({a: custom})
    assert reg.lookup(a) is custom and reg.lookup(b) is F.prune_linear_out_channels.__self__
    with pytest.raises(TypeError, match="must be a BasePruningFunc"):
        F.PrunerRegistry({nn.Linear: F.prune_linear_out_channels})
    with pytest.raises(TypeError, match="types or nn.Module"):
        F.PrunerRegistry({"linear": custom})


def test_handler_name():
    assert F.handler_name(F.prune_conv_out_channels) == "prune_conv_out_channels"
    assert F.handler_name(F.prune_depthwise_conv_in_channels) == "prune_conv_in_channels"
    assert F.handler_name(F.prune_conv_transpose_in_channels) == "prune_conv_transpose_in_channels"
    assert F.handler_name(F.prune_batchnorm_in_channels) == "prune_batchnorm_out_channels"
    assert F.handler_name(F.prune_parameter_in_channels) == "prune_parameter_out_channels"

    class MyPruner(F.LinearPruner):
        pass

    assert F.handler_name(MyPruner().prune_in_channels) == "MyPruner.prune_in_channels"
    assert F.handler_name(F.LinearPruner().prune_out_channels) == "LinearPruner.prune_out_channels"


def test_grouped_conv_pruned_down_to_depthwise_keeps_its_grouped_out_rule():
    """A grouped conv whose in channels drop to `groups` looks depthwise (multiplier 3);
    the same out positions removed from each group shrink the multiplier, while a whole
    block still removes a group (found by the OBDC compatibility test)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, groups=2)
    F.prune_conv_in_channels(conv, [1, 3])
    assert (conv.in_channels, conv.groups, tuple(conv.weight.shape)) == (2, 2, (6, 1, 3, 3))
    w, b = conv.weight.detach().clone(), conv.bias.detach().clone()
    F.prune_conv_out_channels(conv, [1, 4])
    assert (conv.out_channels, conv.groups) == (4, 2)
    assert torch.equal(conv.weight, w[[0, 2, 3, 5]]) and torch.equal(conv.bias, b[[0, 2, 3, 5]])
    F.prune_conv_out_channels(conv, [0, 1])  # group 0's whole block
    assert (conv.in_channels, conv.out_channels, conv.groups) == (1, 2, 1)
    assert conv(torch.randn(1, 1, 5, 5)).shape == (1, 2, 3, 3)
    with pytest.raises(ValueError, match="whole blocks"):
        F.prune_conv_out_channels(nn.Conv2d(2, 6, 1, groups=2), [0, 4])
