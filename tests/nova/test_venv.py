"""The side venv's cache: where it lives, what counts as a complete build, and the error
when PyPI cannot be reached (no build is attempted, nothing is removed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.nova_peer.venv import (
    MARKER,
    NOVA_VERSION,
    NovaVenvError,
    cache_folder,
    ensure_nova_venv,
    is_complete,
    venv_python,
)


def test_the_cache_folder_follows_metadata_ci_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("METADATA_CI_CACHE", str(tmp_path))
    assert cache_folder() == tmp_path / f"nova-{NOVA_VERSION}"
    monkeypatch.delenv("METADATA_CI_CACHE")
    assert cache_folder() == Path.home() / ".cache" / "metadata-ci" / f"nova-{NOVA_VERSION}"


def test_a_build_without_its_marker_is_not_complete(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv_python(venv).parent.mkdir(parents=True)
    venv_python(venv).touch()
    assert not is_complete(venv)  # interrupted before the last step
    (venv / MARKER).write_text("done\n")
    assert is_complete(venv)


def test_an_unreachable_index_is_a_clear_error_and_keeps_the_half_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("METADATA_CI_CACHE", str(tmp_path))
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on 9
    half = cache_folder()
    half.mkdir(parents=True)
    (half / "left-over").touch()
    with pytest.raises(NovaVenvError, match=r"package index 127\.0\.0\.1:9 is unreachable"):
        ensure_nova_venv()
    assert (half / "left-over").exists()
