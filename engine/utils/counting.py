"""MAC and parameter counting, number-compatible with Torch-Pruning's counter.

Why this design: users compare Arborist's figures with Torch-Pruning's, so the per-module
rules below mirror its ptflops-derived rules (same exact-type table, same quirks). Those rules
see nothing that runs outside the listed module types, which makes attention `q @ k^T`,
`F.linear(x, self.qkv.weight)` or a `Conv2d` subclass cost zero; a dispatch mode therefore
also counts matrix products and convolutions that run outside a counted module.

Conventions (as in Torch-Pruning): one MAC per multiply-accumulate, MACs are *per sample*
(the total is divided by the batch size read from the first positional input), params are the
unique elements of `model.parameters()`. Nothing is computed on real data if the model and the
inputs live on the `meta` device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils._python_dispatch import TorchDispatchMode

from .meta_kernels import MetaKernels

__all__ = ["CountReport", "LayerCount", "count_layers", "count_ops_and_params"]

Number = int | float


# ---------------------------------------------------------------- module rules
# Each rule gets (module, positional args, keyword args, output) and returns MACs for the
# whole batch. The table is matched on the exact type, like Torch-Pruning: a subclass is
# not covered here (its matmuls/convs are still caught by the dispatch counter).


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def _first_tensor(args: tuple, kwargs: dict) -> Any:
    if args:
        return args[0]
    return next(iter(kwargs.values()), None)


def _first_output(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _conv_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    x = _first_tensor(args, kwargs)
    batch = int(x.shape[0])
    positions = batch * _numel(output.shape[2:])
    per_position = _numel(m.kernel_size) * m.in_channels * (m.out_channels // m.groups)
    bias = m.out_channels * positions if m.bias is not None else 0
    return per_position * positions + bias


def _elementwise_output_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    return _first_output(output).numel()


def _input_numel_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    return _first_tensor(args, kwargs).numel()


def _norm_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    affine = getattr(m, "affine", getattr(m, "elementwise_affine", False))
    return _first_tensor(args, kwargs).numel() * (2 if affine else 1)


def _linear_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    out_features = int(output.shape[-1])
    # Torch-Pruning quirk kept for equal numbers: the bias costs out_features once,
    # not once per row of the input.
    bias = out_features if m.bias is not None else 0
    return _first_tensor(args, kwargs).numel() * out_features + bias


def _experts_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    """Fused MoE experts (Mixtral, OLMoE, Qwen-MoE, GPT-OSS): routed work, not all experts.

    Each token runs through top_k of the E experts: per (token, expert) pair H * 2I MACs
    for gate_up, I * H for down, plus one per output for each bias (GPT-OSS: 2I + H).
    top_k is the width of the routing indices passed in (args[1], shape (tokens, top_k)),
    so eager loops, `grouped_mm` and weightless meta copies all count the same.
    """
    from ..families.moe import expert_hidden, expert_width  # lazy: families imports us

    x = _first_tensor(args, kwargs)
    h, i = int(expert_hidden(m) or 0), int(expert_width(m) or 0)
    if x is None or h == 0:
        return 0
    tokens = x.numel() // h
    index = args[1] if len(args) > 1 else next(
        (v for k, v in kwargs.items() if "ind" in k), None)
    top_k = int(index.shape[-1]) if isinstance(index, torch.Tensor) and index.dim() else int(
        getattr(getattr(m, "config", None), "num_experts_per_tok", 1) or 1)
    per_pair = h * 2 * i + i * h
    if isinstance(getattr(m, "gate_up_proj_bias", None), torch.Tensor):
        per_pair += 2 * i
    if isinstance(getattr(m, "down_proj_bias", None), torch.Tensor):
        per_pair += h
    return tokens * top_k * per_pair


_EXPERT_TYPES: dict[type, bool] = {}


def _module_rule(module: nn.Module) -> ModuleRule | None:
    """MODULE_RULES by exact type, or the fused-experts rule (classes made at runtime)."""
    rule = MODULE_RULES.get(type(module))
    if rule is not None:
        return rule
    cls = type(module)
    if cls not in _EXPERT_TYPES:
        from ..families.moe import is_fused_experts  # lazy: families imports us

        _EXPERT_TYPES[cls] = is_fused_experts(module)
    return _experts_rule if _EXPERT_TYPES[cls] else None


def _rnn_per_token(m: nn.Module, w_ih: torch.Tensor, w_hh: torch.Tensor) -> int:
    """ptflops' per-token cost of one RNN/GRU/LSTM layer (gates + elementwise updates)."""
    flops = w_ih.numel() + w_hh.numel()
    h = m.hidden_size
    if isinstance(m, (nn.RNN, nn.RNNCell)):
        flops += h
    elif isinstance(m, (nn.GRU, nn.GRUCell)):
        flops += h + 3 * h + 3 * h
    elif isinstance(m, (nn.LSTM, nn.LSTMCell)):
        flops += 4 * h + 3 * h + 3 * h
    return flops


def _rnn_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    x = _first_tensor(args, kwargs)
    if isinstance(x, PackedSequence):
        tokens = int(x.data.shape[0])
    elif x.dim() == 3:
        tokens = int(x.shape[0]) * int(x.shape[1])
    else:  # unbatched (seq, features)
        tokens = int(x.shape[0])
    per_token = 0
    for layer in range(m.num_layers):
        w_ih = getattr(m, f"weight_ih_l{layer}")
        w_hh = getattr(m, f"weight_hh_l{layer}")
        per_token += _rnn_per_token(m, w_ih, w_hh)
        if m.bias:
            per_token += getattr(m, f"bias_ih_l{layer}").numel()
            per_token += getattr(m, f"bias_hh_l{layer}").numel()
    directions = 2 if m.bidirectional else 1
    return per_token * tokens * directions


def _rnn_cell_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    x = _first_tensor(args, kwargs)
    batch = int(x.shape[0]) if x.dim() == 2 else 1
    per_sample = _rnn_per_token(m, m.weight_ih, m.weight_hh)
    if m.bias:
        per_sample += m.bias_ih.numel() + m.bias_hh.numel()
    return per_sample * batch


def _mha_rule(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> int:
    """Torch-Pruning's nn.MultiheadAttention formula (projections, QK^T, softmax, AV, out)."""
    names = ("query", "key", "value")
    q, k, v = (args[i] if i < len(args) else kwargs[names[i]] for i in range(3))
    if q.dim() == 2:  # unbatched (L, E)
        batch, len_idx = 1, 0
    elif getattr(m, "batch_first", False):
        batch, len_idx = int(q.shape[0]), 1
    else:
        batch, len_idx = int(q.shape[1]), 0
    qdim, kdim, vdim = int(q.shape[-1]), int(k.shape[-1]), int(v.shape[-1])
    qlen, klen, vlen = int(q.shape[len_idx]), int(k.shape[len_idx]), int(v.shape[len_idx])
    heads = m.num_heads
    flops = qlen * qdim  # scaling of q
    flops += qlen * qdim * qdim + klen * kdim * kdim + vlen * vdim * vdim
    if m.in_proj_bias is not None:
        flops += (qlen + klen + vlen) * qdim
    qk_head_dim, v_head_dim = qdim // heads, vdim // heads
    flops += heads * (qlen * klen * qk_head_dim + qlen * klen + qlen * klen * v_head_dim)
    flops += qlen * vdim * (vdim + 1)  # output projection
    return flops * batch


ModuleRule = Callable[[nn.Module, tuple, dict, Any], int]

_CONV_TYPES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_ACTIVATION_TYPES = (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6, nn.GELU)
_POOL_TYPES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
_NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
)

MODULE_RULES: dict[type[nn.Module], ModuleRule] = {
    **dict.fromkeys(_CONV_TYPES, _conv_rule),
    **dict.fromkeys(_ACTIVATION_TYPES, _elementwise_output_rule),
    **dict.fromkeys(_POOL_TYPES, _input_numel_rule),
    **dict.fromkeys(_NORM_TYPES, _norm_rule),
    nn.Linear: _linear_rule,
    nn.Upsample: _elementwise_output_rule,
    nn.RNN: _rnn_rule,
    nn.GRU: _rnn_rule,
    nn.LSTM: _rnn_rule,
    nn.RNNCell: _rnn_cell_rule,
    nn.GRUCell: _rnn_cell_rule,
    nn.LSTMCell: _rnn_cell_rule,
    nn.MultiheadAttention: _mha_rule,
}


# ------------------------------------------------------------------ aten rules
# MACs of matrix-like aten ops that run outside any counted module. `out` is the op's result.


def _mm(args: tuple, out: Any) -> int:  # (n,k) @ (k,m)
    return _numel(args[0].shape) * int(args[1].shape[-1])


def _addmm(args: tuple, out: Any) -> int:  # bias + (n,k) @ (k,m): one MAC per output for the add
    return _numel(args[1].shape) * int(args[2].shape[-1]) + out.numel()


def _bmm(args: tuple, out: Any) -> int:  # (b,n,k) @ (b,k,m)
    return _numel(args[0].shape) * int(args[1].shape[-1])


def _baddbmm(args: tuple, out: Any) -> int:
    return _numel(args[1].shape) * int(args[2].shape[-1]) + out.numel()


def _mv(args: tuple, out: Any) -> int:
    return _numel(args[0].shape)


def _dot(args: tuple, out: Any) -> int:
    return int(args[0].numel())


def _convolution(args: tuple, out: Any) -> int:
    """out.numel() x (Cin/groups x kernel) per output element, + bias; as the conv rule."""
    weight, bias, transposed, groups = args[1], args[2], args[6], args[8]
    if transposed:  # weight: (Cin, Cout/groups, *k); per output: Cin/groups * k
        per_output = int(weight.shape[0]) // groups * _numel(weight.shape[2:])
    else:  # weight: (Cout, Cin/groups, *k)
        per_output = _numel(weight.shape[1:])
    return out.numel() * per_output + (out.numel() if bias is not None else 0)


def _sdpa(args: tuple, out: Any) -> int:
    """QK^T plus AV: batch*heads x Nq x Nk x (d_qk + d_v), i.e. B*h*Nq*Nk*d*2 for d_qk == d_v."""
    q, k, v = args[0], args[1], args[2]
    return _numel(q.shape[:-1]) * int(k.shape[-2]) * (int(q.shape[-1]) + int(v.shape[-1]))


def _aten_rules() -> dict[Any, Callable[[tuple, Any], int]]:
    aten = torch.ops.aten
    rules: dict[Any, Callable[[tuple, Any], int]] = {
        aten.mm.default: _mm,
        aten.addmm.default: _addmm,
        aten.bmm.default: _bmm,
        aten.baddbmm.default: _baddbmm,
        aten.mv.default: _mv,
        aten.dot.default: _dot,
        aten.convolution.default: _convolution,
    }
    sdpa_ops = (
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
    )
    for name in sdpa_ops:  # not every build has every backend
        packet = getattr(aten, name, None)
        if packet is not None:
            rules[packet.default] = _sdpa
    return rules


ATEN_RULES = _aten_rules()


# --------------------------------------------------------------------- counter


class _Counter(TorchDispatchMode):
    """Collects per-module MACs from module hooks and from aten ops outside counted modules."""

    def __init__(self, model: nn.Module, kernels: MetaKernels) -> None:
        super().__init__()
        self.model = model
        self.kernels = kernels
        self.stack: list[nn.Module] = []
        self.counted_depth = 0  # how many MODULE_RULES modules are on the stack
        self.self_macs: dict[nn.Module, int] = {}
        self.handles: list[Any] = []

    def attach(self) -> None:
        for module in self.model.modules():
            self.handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self.handles.append(
                module.register_forward_hook(self._post, with_kwargs=True, always_call=True)
            )

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.stack.clear()
        self.counted_depth = 0

    def _add(self, module: nn.Module, macs: int) -> None:
        self.self_macs[module] = self.self_macs.get(module, 0) + int(macs)

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.stack.append(module)
        if _module_rule(module) is not None:
            self.counted_depth += 1

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if not self.stack or self.stack[-1] is not module:
            return  # pre-hook did not run (e.g. a hook added after ours raised)
        self.stack.pop()
        rule = _module_rule(module)
        if rule is None:
            return
        self.counted_depth -= 1
        # A counted module nested in another counted one is covered by the outer formula.
        if self.counted_depth == 0 and output is not None:
            self._add(module, rule(module, args, kwargs, output))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = self.kernels.call(func, args, kwargs or {})  # a meta copy counts fast too
        rule = ATEN_RULES.get(func)
        if rule is not None and self.counted_depth == 0:
            owner = self.stack[-1] if self.stack else self.model
            self._add(owner, rule(args, out))
        return out


def _batch_size(example_inputs: Any) -> int:
    """Batch size as Torch-Pruning reads it: len() of the first positional input, else 1."""
    if isinstance(example_inputs, Mapping):
        return 1
    first = example_inputs[0] if isinstance(example_inputs, (tuple, list)) else example_inputs
    if isinstance(first, (tuple, list)) and not first:
        return 1
    try:
        return max(len(first), 1)
    except TypeError:
        return 1


def _run(
    model: nn.Module, example_inputs: Any, kernels: MetaKernels | None = None
) -> dict[nn.Module, int]:
    """Forward once in eval mode with counting; restores train flags and removes all hooks."""
    training = {m: m.training for m in model.modules()}
    counter = _Counter(model, kernels if kernels is not None else MetaKernels())
    try:
        model.eval()
        counter.attach()
        with torch.no_grad(), counter:
            if isinstance(example_inputs, Mapping):
                model(**example_inputs)
            elif isinstance(example_inputs, (tuple, list)):
                model(*example_inputs)
            else:
                model(example_inputs)
    finally:
        counter.detach()
        for module, flag in training.items():
            module.training = flag
    return counter.self_macs


def _per_sample(macs: int, batch: int) -> Number:
    """Exact integer when the batch divides the count (always for batch 1), else a float."""
    quotient, remainder = divmod(macs, batch)
    return quotient if remainder == 0 else macs / batch


def _unique_params(params: Any, seen: set[int]) -> int:
    total = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _inclusive(model: nn.Module, self_values: dict[nn.Module, int]) -> dict[nn.Module, int]:
    """Sum each module's own value with all its descendants' (per the module tree)."""
    result: dict[nn.Module, int] = {}

    def visit(module: nn.Module) -> int:
        if module not in result:
            result[module] = self_values.get(module, 0) + sum(
                visit(child) for child in module.children()
            )
        return result[module]

    visit(model)
    return result


def count_ops_and_params(
    model: nn.Module,
    example_inputs: Any,
    layer_wise: bool = False,
    *,
    meta_kernels: MetaKernels | None = None,
) -> tuple:
    """Per-sample MACs and parameter count of `model` on `example_inputs`.

    `example_inputs` is a tensor, a tuple/list of positional inputs or a dict of keyword
    inputs. With `layer_wise=True` also returns `{module: MACs}` and `{module: params}` for
    every module, each including its descendants (as Torch-Pruning does; the root's entry
    equals the total). `meta_kernels`: the caller's fast meta kernels (a previewer counting
    the same meta copy again and again keeps its layout memo warm); a fresh set otherwise.
    """
    self_macs = _run(model, example_inputs, meta_kernels)
    batch = _batch_size(example_inputs)
    total_macs = _per_sample(sum(self_macs.values()), batch)
    total_params = _unique_params(model.parameters(), set())
    if not layer_wise:
        return total_macs, total_params
    layer_macs = {m: _per_sample(v, batch) for m, v in _inclusive(model, self_macs).items()}
    layer_params = {m: sum(p.numel() for p in m.parameters()) for m in model.modules()}
    return total_macs, total_params, layer_macs, layer_params


@dataclass(frozen=True)
class LayerCount:
    """One module's own (exclusive) figures: children are listed separately."""

    name: str
    type: str
    macs: Number
    params: int


@dataclass
class CountReport:
    """Totals plus one row per module (in `named_modules` order) whose rows sum to the totals."""

    total_macs: Number
    total_params: int
    layers: list[LayerCount] = field(default_factory=list)

    def by_name(self) -> dict[str, LayerCount]:
        return {layer.name: layer for layer in self.layers}


def count_layers(
    model: nn.Module, example_inputs: Any, *, meta_kernels: MetaKernels | None = None
) -> CountReport:
    """Per-module-path breakdown for display; each parameter is owned by its first module."""
    self_macs = _run(model, example_inputs, meta_kernels)
    batch = _batch_size(example_inputs)
    seen: set[int] = set()
    layers = [
        LayerCount(
            name=name,
            type=type(module).__name__,
            macs=_per_sample(self_macs.get(module, 0), batch),
            params=_unique_params(module.parameters(recurse=False), seen),
        )
        for name, module in model.named_modules()
    ]
    return CountReport(
        total_macs=_per_sample(sum(self_macs.values()), batch),
        total_params=sum(layer.params for layer in layers),
        layers=layers,
    )
