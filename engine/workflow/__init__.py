"""The one workflow both front ends call (Qt-free): open, trace, preview, prune a copy,
evaluate, export and validate. See `Session`."""

from ..utils.progress import CancelFn, Cancelled, ProgressFn
from .errors import InputsDoNotRun, InputsUnknown
from .export import FORMATS, TOLERANCE, check_format_possible, export_validated, output_format
from .reports import ExportReport, LayerChange, LayerWidth, PruneReport, PruneResult
from .session import Session, layer_widths

__all__ = [
    "Session",
    "Cancelled",
    "CancelFn",
    "ProgressFn",
    "InputsDoNotRun",
    "InputsUnknown",
    "ExportReport",
    "LayerChange",
    "LayerWidth",
    "PruneReport",
    "PruneResult",
    "FORMATS",
    "TOLERANCE",
    "check_format_possible",
    "export_validated",
    "output_format",
    "layer_widths",
]
