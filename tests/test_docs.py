"""The documentation site builds without a single warning.

Reference: ``mkdocs build --strict`` (MkDocs turns every warning into a failure: a page
missing from the nav, a broken link or anchor, a docstring griffe cannot parse, an API
object that does not exist).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs / mkdocstrings[python] not installed (pip install -e '.[docs]' or '.[test]')",
)


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    # Every page of docs/ is in the site, and the API pages hold the documented objects.
    for page in (ROOT / "docs").rglob("*.md"):
        rel = page.relative_to(ROOT / "docs").with_suffix("")
        built = site / ("index.html" if rel.name == "index" and rel.parent == Path(".") else rel / "index.html")
        assert built.is_file(), f"{page} was not built"
    api = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    for name in ("plip.load", "plip.PLIPModel", "plip.PLIPTokenizer", "plip.retrieve"):
        assert f'id="{name}"' in api, name
