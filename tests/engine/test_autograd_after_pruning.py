"""After any prune the model trains: parameters are valid leaves, `.grad` fits, optimizers
can be brought along (engine.utils.rebuild_optimizer / drop_stale_state)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import engine as tp
from engine.utils import drop_stale_state, rebuild_optimizer


def _upsampler() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 64, 2, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    )


@pytest.mark.parametrize("keep_loss", [False, True])
def test_taylor_iterative_loop_backward_after_every_prune(keep_loss: bool) -> None:
    """Issue #16's program. With the last `loss` still referenced, its autograd graph kept
    the leaves' old AccumulateGrad nodes alive and the next backward failed with
    'invalid gradient ... got [8, 58, 3, 3] but expected [8, 64, 3, 3]'."""
    torch.manual_seed(0)
    model = _upsampler()
    x = torch.randn(1, 3, 48, 48)
    pruner = tp.pruner.MagnitudePruner(model, x, tp.importance.TaylorImportance(),
                                       pruning_ratio=0.5, iterative_steps=5)
    widths = []
    loss = None
    for _ in range(5):
        if keep_loss:
            loss = model(x).sum()
            loss.backward()
        else:
            model(x).sum().backward()
        for g in pruner.step(interactive=True):
            g.prune()
        for p in model.parameters():
            assert p.is_leaf and p.grad_fn is None and p.requires_grad
            assert p.grad is not None and p.grad.shape == p.shape
        macs, params = tp.utils.count_ops_and_params(model, x)
        widths.append(model[0].out_channels)
    assert widths == [14, 13, 11, 10, 8]  # 16 * (1 - 0.1 k), rounded half up
    assert model(x).shape == (1, 8, 96, 96)  # the last layer feeds the output: kept
    model(x).sum().backward()  # and one more backward on the final structure


def test_grad_is_pruned_alongside_the_weight() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(4, 6)
    model(x).sum().backward()
    before_w0, before_w2 = model[0].weight.grad.clone(), model[2].weight.grad.clone()
    dg = tp.DependencyGraph().build_dependency(model, x)
    dg.get_pruning_group(model[0], tp.prune_linear_out_channels, [1, 3]).prune()
    keep = [0, 2, 4]
    assert torch.equal(model[0].weight.grad, before_w0[keep])
    assert torch.equal(model[2].weight.grad, before_w2[:, keep])
    assert model[0].bias.grad.shape == (3,)


def _trained_adam(model: nn.Module, x: torch.Tensor) -> torch.optim.Adam:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(2):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    return opt


def test_optimizer_made_before_a_prune_fails_and_rebuild_fixes_it() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(4, 6)
    opt = _trained_adam(model, x)
    kept_state = {k: v.clone() for k, v in opt.state[model[2].bias].items()}
    dg = tp.DependencyGraph().build_dependency(model, x)
    dg.get_pruning_group(model[0], tp.prune_linear_out_channels, [0, 5]).prune()
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    with pytest.raises(RuntimeError):
        opt.step()  # exp_avg of model[0].weight is still (8, 6)

    new = rebuild_optimizer(opt, model)
    assert type(new) is torch.optim.Adam
    assert new.param_groups[0]["lr"] == 1e-2 and new.param_groups[0]["weight_decay"] == 1e-4
    assert model[0].weight not in new.state  # pruned: its moments restart
    for k, v in kept_state.items():  # unchanged shape: state carried over
        assert torch.equal(new.state[model[2].bias][k], v)
    before = model[0].weight.detach().clone()
    new.step()
    assert not torch.equal(model[0].weight.detach(), before)


def test_drop_stale_state_keeps_the_optimizer_and_its_scheduler() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(4, 6)
    opt = _trained_adam(model, x)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    dg = tp.DependencyGraph().build_dependency(model, x)
    dg.get_pruning_group(model[0], tp.prune_linear_out_channels, [7]).prune()
    stale = drop_stale_state(opt)
    assert {id(p) for p in stale} == {id(model[0].weight), id(model[0].bias),
                                      id(model[2].weight)}
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-3)
    assert opt.state[model[0].weight]["exp_avg"].shape == (7, 6)


def test_rebuild_adds_parameters_a_custom_pruner_replaced() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    old = model[1].bias
    model[1].bias = nn.Parameter(old.detach().clone())  # what Torch-Pruning's pruners do
    new = rebuild_optimizer(opt, model)
    params = [p for g in new.param_groups for p in g["params"]]
    assert any(p is model[1].bias for p in params) and not any(p is old for p in params)
    assert new.param_groups[0]["momentum"] == 0.9
