"""The CLI's output checks before a (long) prune, and the export through the workflow.

Writing and validating (every format read back and run on the example inputs) is
engine.workflow.export's, the code the GUI runs too; here the path is checked up
front so a typo never costs a full prune, and engine errors become CLI errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CliError


def output_format(path: str) -> str:
    """The format name for ``path``'s suffix; CliError listing the choices otherwise."""
    from engine.io.errors import ExportError
    from engine.workflow.export import output_format as engine_output_format

    try:
        return engine_output_format(path)
    except ExportError as exc:
        raise CliError(str(exc)) from None


def check_writable(
    path: str, source: str, *, inputs: tuple[str, ...] = (), flag: str = "-o"
) -> None:
    """Fail before the (long) pruning when the output path is unusable.

    Never an input (the model, a plan file); the folder must exist and take a small
    probe file (so a read-only folder, even for root, or a full disk shows now, not
    after the model was written); names too long for the file system are refused.
    """
    from engine.io.atomic import same_file

    shown = path if len(path) <= 120 else path[:117] + "..."
    out = Path(path)
    try:
        if source and Path(source).exists() and same_file(out, source):
            raise CliError(
                f"refusing to overwrite the source model {source}; choose another {flag} path"
            )
        for given in inputs:
            if given and Path(given).exists() and same_file(out, given):
                raise CliError(
                    f"refusing to overwrite the input file {given} with {flag}; "
                    "Arborist never overwrites its inputs, choose another path"
                )
        if out.is_dir():
            raise CliError(f"output path {shown} is a directory; give a file name")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise CliError(f"output directory {parent} does not exist")
        _probe(parent, out.name)
    except OSError as exc:
        raise CliError(f"cannot write {shown} ({flag}): {exc.strerror or exc}") from None


def _probe(folder: Path, name: str) -> None:
    """Create, fill and remove a small temporary file where ``name`` will go."""
    import os
    import tempfile

    max_name = os.pathconf(folder, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    if len(name.encode()) > max_name:
        raise OSError(36, f"File name too long ({len(name.encode()):,} bytes, limit {max_name})")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".arborist-probe-")
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(tmp)


def write_model(
    fmt: str,
    model: Any,
    example_inputs: Any,
    path: str,
    *,
    source: str,
    arch: str | None,
    history: list[Any],
    input_spec: str,
) -> dict[str, Any]:
    """Write ``model`` to ``path`` and validate it (engine.workflow); the report as JSON."""
    from engine.io.errors import ExportError
    from engine.workflow.export import export_validated

    try:
        report = export_validated(
            model, example_inputs, path, fmt, source=source, arch=arch, history=history,
            input_spec=input_spec,
        )
    except ExportError as exc:
        raise CliError(str(exc)) from None
    return report.to_dict()


def check_format_possible(fmt: str, arch: str | None) -> None:
    from engine.io.errors import ExportError
    from engine.workflow.export import check_format_possible as engine_check

    try:
        engine_check(fmt, arch)
    except ExportError as exc:
        raise CliError(str(exc)) from None
