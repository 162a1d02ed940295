"""Shared pytest setup: make Qt headless before anything imports it."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


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
