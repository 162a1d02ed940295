"""Timing a module on a device: one small interface, a runner per device.

Why an interface: the lookup table, its calibration, the re-timing before a budget and the
closed loop all ask the same question ("how long does this module take at this input,
here?"). Hard-coding PyTorch CPU answered it only for `--device cpu`; a runner answers it
for the PyTorch CPU kernels, ONNX Runtime's CPU execution provider (the module exported
to ONNX in memory, as a deployment would run it) and CUDA (synchronised around the call).

Each timed call is repeated after a warm-up (the first calls at a new shape build oneDNN
primitives, ORT allocates its arena, CUDA loads kernels); a `Timing` keeps the samples, so
callers choose the statistic: the table keeps the best-of (engine.latency.table explains
why on a shared machine), reports may show the median.
"""

from __future__ import annotations

import dataclasses
import io
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..io.input_spec import call_with


@dataclasses.dataclass
class Timing:
    """Milliseconds of each timed repeat (warm-up excluded)."""

    samples_ms: list[float]

    @property
    def best(self) -> float:
        return min(self.samples_ms)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)


def _flat_tensors(inputs: Any) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)]


def _to(inputs: Any, device: str) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, inputs)


class Runner:
    """Times modules on one device. Subclasses say how a module is made runnable there.

    `device` is the name the user chose (cpu / ort / cuda); `torch_device` is where the
    PyTorch module and its inputs live before the runner takes them.
    """

    device = "cpu"
    torch_device = "cpu"

    def __init__(self, *, sync: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.sync = sync or (lambda: None)
        self.clock = clock

    # -- what differs per device
    def prepare(self, module: nn.Module, inputs: Any) -> Callable[[], Any]:
        """A no-argument call that runs `module` once on `inputs` on this device (a module
        elsewhere is copied there: the caller's model stays where it is)."""
        target = torch.device(self.torch_device)
        if any(p.device.type != target.type
               or (target.index is not None and p.device.index != target.index)
               for p in module.parameters()):
            import copy

            module = copy.deepcopy(module).to(target)
        module = module.eval()
        inputs = _to(inputs, self.torch_device)

        def run() -> Any:
            with torch.inference_mode():
                return call_with(module, inputs)
        return run

    def key_parts(self) -> list[str]:
        """What a cached table measured with this runner depends on, besides the model."""
        return [self.device, torch.__version__, str(torch.get_num_threads())]

    # -- shared
    def time_call(self, fn: Callable[[], Any], *, warmup: int = 2, min_reps: int = 5,
                  max_reps: int = 40, budget_s: float = 0.03,
                  max_total_s: float | None = None) -> Timing:
        """`fn` repeated (at least `min_reps`, then until `budget_s`, at most `max_reps`)
        after `warmup` untimed calls, the device synchronised before and after each.
        `max_total_s`: stop after one sample once that much is spent (a slow model)."""
        for _ in range(warmup):
            fn()
        samples: list[float] = []
        spent = 0.0
        while len(samples) < max_reps and (len(samples) < min_reps or spent < budget_s):
            self.sync()
            t0 = self.clock()
            fn()
            self.sync()
            dt = self.clock() - t0
            samples.append(dt * 1e3)
            spent += dt
            if max_total_s is not None and spent >= max_total_s:
                break
        return Timing(samples)

    def time(self, module: nn.Module, inputs: Any, **kw: Any) -> Timing:
        """Time `module` at `inputs` (see `time_call` for the repeats)."""
        return self.time_call(self.prepare(module, inputs), **kw)

    def time_models(self, models: Sequence[nn.Module], inputs: Any, *,
                    rounds: int = 15, budget_s: float = 4.0,
                    max_total_s: float = 20.0) -> list[float]:
        """Best-of ms of each model, timed in interleaved rounds (one call of each per
        round) so that load drift hits all of them alike."""
        from ..utils.latency import compare_latency

        calls = [self.prepare(m, inputs) for m in models]
        timed = compare_latency(calls, min_rounds=min(5, rounds), max_rounds=rounds,
                                budget_s=budget_s, max_total_s=max_total_s, warmup_rounds=2,
                                clock=self.clock)
        return [min(s) * 1e3 for s in timed.samples_s]


class TorchCPURunner(Runner):
    """PyTorch's own CPU kernels, with the process's torch thread count."""


class CudaRunner(Runner):
    """PyTorch on a CUDA device; the clock reads are fenced by `sync`
    (torch.cuda.synchronize by default) so asynchronous launches are not timed as free."""

    device = "cuda"

    def __init__(self, *, sync: Callable[[], None] | None = None, torch_device: str = "cuda",
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(sync=sync or torch.cuda.synchronize, clock=clock)
        self.torch_device = torch_device

    def key_parts(self) -> list[str]:
        parts = super().key_parts()
        if torch.cuda.is_available() and self.torch_device.startswith("cuda"):
            idx = torch.device(self.torch_device).index or 0
            major, minor = torch.cuda.get_device_capability(idx)
            parts += [torch.cuda.get_device_name(idx), f"sm_{major}{minor}",
                      str(torch.version.cuda)]
        return parts


class OrtCPURunner(Runner):
    """ONNX Runtime's CPUExecutionProvider, with as many intra-op threads as torch uses.

    Each module is exported to ONNX in memory (the legacy TorchScript exporter: no
    onnxscript needed, and it folds eval-mode BatchNorm into the preceding Conv as a
    deployed model would have it) and run in its own InferenceSession. Sessions are kept
    per module and input shape, so repeated sweeps over a table do not re-export.
    """

    device = "ort"

    def __init__(self, *, threads: int | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(clock=clock)
        ort = require_onnxruntime()
        self.ort = ort
        self.threads = int(threads or torch.get_num_threads())
        self._sessions: dict[tuple, tuple[Any, dict[str, Any]]] = {}

    def key_parts(self) -> list[str]:
        return [self.device, f"onnxruntime {self.ort.__version__}", "CPUExecutionProvider",
                str(self.threads), torch.__version__]

    def session(self, module: nn.Module, inputs: Any) -> tuple[Any, dict[str, Any]]:
        """The module's InferenceSession and its input feed (exported once per shape)."""
        tensors = [t.detach().cpu() for t in _flat_tensors(inputs)]
        # what the timing depends on (not the weights' values): a rebuilt layer of the same
        # shapes in a later sweep reuses the session
        key = (repr(module), tuple(tuple(p.shape) for p in module.parameters()),
               tuple(tuple(b.shape) for b in module.buffers()),
               tuple(tuple(t.shape) for t in tensors), tuple(str(t.dtype) for t in tensors))
        hit = self._sessions.get(key)
        if hit is not None:
            return hit
        blob = export_onnx_bytes(module.cpu().eval(), inputs)
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        sess = self.ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        names = [f"in{i}" for i in range(len(tensors))]
        wanted = {i.name for i in sess.get_inputs()}
        feed = {n: t.numpy() for n, t in zip(names, tensors, strict=True) if n in wanted}
        self._sessions[key] = (sess, feed)
        return sess, feed

    def prepare(self, module: nn.Module, inputs: Any) -> Callable[[], Any]:
        sess, feed = self.session(module, inputs)
        return lambda: sess.run(None, feed)

    def clear(self) -> None:
        """Drop the kept sessions (their weights) once a table is measured."""
        self._sessions.clear()


def require_onnxruntime() -> Any:
    """The onnxruntime module, or ValueError saying how to get it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ValueError("--device ort needs ONNX Runtime: pip install onnxruntime "
                         f"(it could not be imported: {e})") from None
    return onnxruntime


def export_onnx_bytes(module: nn.Module, inputs: Any, *, opset: int = 17) -> bytes:
    """`module` as an ONNX model in memory (inputs named in0, in1, ... in flattened order)."""
    if isinstance(inputs, dict):
        args: tuple = ()
        kwargs: dict | None = dict(inputs)
    elif isinstance(inputs, (tuple, list)):
        args, kwargs = tuple(inputs), None
    else:
        args, kwargs = (inputs,), None
    names = [f"in{i}" for i in range(len(_flat_tensors(inputs)))]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, kwargs=kwargs, dynamo=False, opset_version=opset,
                          input_names=names, do_constant_folding=True)
    return buf.getvalue()


def runner_for(device: str) -> Runner:
    """The runner for a device name (cpu / ort / cuda; 'cuda:1' picks that GPU)."""
    if device == "cpu":
        return TorchCPURunner()
    if device == "ort":
        return OrtCPURunner()
    if device.startswith("cuda"):
        return CudaRunner(torch_device=device)
    raise ValueError(f"unknown device {device!r}; choose one of cpu, ort, cuda")
