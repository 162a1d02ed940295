"""Shared pytest setup: make Qt headless before anything imports it."""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(autouse=True)
def _automatic_gc_outside_gui_tests(request):
    """tests/app moves garbage collection to the GUI thread; every other test gets
    CPython's own back (no event loop runs there to collect)."""
    runtime = sys.modules.get("app.runtime")
    if runtime is not None and "gc_on_gui_thread" not in request.fixturenames:
        runtime.automatic_garbage_collection()


@pytest.fixture(scope="session")
def digit_folders(tmp_path_factory):
    """sklearn's digits as PNG class folders: the demo's own train and held-out split."""
    from engine.data.digits import write_image_folders

    return write_image_folders(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def unlabeled_digit_folders(tmp_path_factory):
    """The same digits as flat folders with no class subfolders (no labels)."""
    from engine.data.digits import write_image_folders

    return write_image_folders(tmp_path_factory.mktemp("digits_flat"), labeled=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two
    OpenMP threads stall each other (test_scan_planner: 25 s with one thread, 6 min with
    two). A module asks for it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def own_cache(tmp_path_factory):
    """One throwaway Arborist cache per module (latency tables, scans are measured once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARBORIST_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
