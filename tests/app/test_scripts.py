"""scripts/qt_system_libs.sh: what ldd reports missing becomes the exact apt-get line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "qt_system_libs.sh"


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def fake_tools(tmp_path) -> Path:
    """ldd reporting two missing libraries and a non-root id, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lines = [
        "libxcb-icccm.so.4 => not found",
        "libxcb-keysyms.so.1 => not found",
        "libc.so.6 => /lib/libc.so.6",
    ]
    _stub(bin_dir, "ldd", "\n".join(f'echo "\t{line}"' for line in lines))
    _stub(bin_dir, "id", "echo 1000")
    return bin_dir


def test_missing_libraries_print_the_apt_line_and_stop(fake_tools):
    env = {**os.environ, "PATH": f"{fake_tools}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(SCRIPT), "--install"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 3
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1" in proc.stderr


def test_nothing_missing_is_silent_success(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "ldd", 'echo "	libc.so.6 => /lib/libc.so.6"')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
