"""Model I/O: loading any model source safely, and exporting with validation."""

from .atomic import atomic_write
from .errors import (
    ArchRequiredError,
    ExportError,
    InputSpecError,
    MissingCodeError,
    ModelLoadError,
    UntrustedPickleError,
)
from .export import export_onnx, export_pt2, export_pytorch, export_safe_checkpoint
from .guess import guess_example_inputs, guess_input_spec
from .input_spec import InputSpec, TensorSpec, call_with
from .load import LoadedModel, load_model
from .onnx_export import ValidationReport
from .pt2_lift import lift_exported_program
from .pt2_reader import Pt2Contents, read_pt2

__all__ = [
    "ArchRequiredError",
    "MissingCodeError",
    "atomic_write",
    "call_with",
    "export_onnx",
    "export_pt2",
    "export_pytorch",
    "export_safe_checkpoint",
    "ExportError",
    "guess_example_inputs",
    "guess_input_spec",
    "InputSpec",
    "InputSpecError",
    "lift_exported_program",
    "LoadedModel",
    "load_model",
    "ModelLoadError",
    "Pt2Contents",
    "read_pt2",
    "TensorSpec",
    "UntrustedPickleError",
    "ValidationReport",
]
