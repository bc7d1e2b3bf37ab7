"""Every shipped recipe under torchrun (2 gloo processes), and 1 x 2B == 2 x B for the global losses.

One spawned group (tests/helpers/ddp_recipes.py) runs, for each recipe in plip/training/recipes
at tiny size, a single-process step (every trainable parameter must get a gradient) and a few
DDP training steps; then it compares a DDP step on two halves with one process on the whole
batch (oracle: the single-process computation; for ``cmpm_gather: false`` the official
per-GPU loss of each half, DDP averaging the gradients).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _render(person, shot):
    from plip.data.synthetic import render_image, sample_variation

    return render_image(person, sample_variation(np.random.default_rng([0, person.person_id, shot])))


def write_market(root: Path, train_ids: int = 8) -> Path:
    """Market-1501 file layout: ``train_ids`` identities x 4 images, 2 test identities."""
    from plip.data.synthetic import sample_identities

    folders = {n: root / n for n in ("bounding_box_train", "query", "bounding_box_test")}
    for f in folders.values():
        f.mkdir(parents=True)
    people = sample_identities(train_ids + 2, seed=3)
    for person in people[:train_ids]:
        for shot in range(4):
            _render(person, shot).save(
                folders["bounding_box_train"] / f"{person.person_id:04d}_c{1 + shot % 2}s1_{shot:06d}_00.jpg")
    for person in people[train_ids:]:
        _render(person, 0).save(folders["query"] / f"{person.person_id:04d}_c1s1_000000_00.jpg")
        _render(person, 1).save(folders["bounding_box_test"] / f"{person.person_id:04d}_c2s1_000001_00.jpg")
    return root


def write_pa100k(root: Path) -> Path:
    """PA-100K layout (annotation.mat + data/, ``plip synth --format pa100k``): 4 train, 2 val,
    4 test persons x 2 images."""
    from plip.data.synthetic.formats import write_pa100k as write

    write(root, identities=10, images_per_id=2, seed=5, split=(0.4, 0.2, 0.4), progress=False)
    return root


@pytest.fixture(scope="module")
def ddp_report(tmp_path_factory):
    from plip.data.synthetic import generate_dataset
    from plip import create_model
    from plip.models import PLIPConfig

    base = tmp_path_factory.mktemp("ddp")
    generate_dataset(base / "synth", identities=12, images_per_id=3, seed=11, workers=0, progress=False)
    config = PLIPConfig.tiny()
    config.vision.layers = (1, 1, 2, 1)  # MGN's branches copy layer3[1:]
    torch.manual_seed(0)
    create_model(config.validate()).save_pretrained(base / "plip")
    spec = {"synth": str(base / "synth"), "market": str(write_market(base / "market")),
            "pa100k": str(write_pa100k(base / "pa100k")), "plip": str(base / "plip"), "out": str(base / "runs")}
    (base / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "helpers" / "ddp_recipes.py"), str(base / "spec.json"), str(base / "report.json")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    reports = json.loads((base / "report.json").read_text())
    for r in reports:
        assert "error" not in r, r["error"]
    return reports


def test_every_shipped_recipe_trains_under_torchrun(ddp_report):
    from plip.training.config import list_recipes

    for report in ddp_report:  # both ranks
        assert sorted(report["recipes"]) == list_recipes()
        for recipe, result in report["recipes"].items():
            assert result["steps"] == 2, recipe
    exports = [r["export"] for r in ddp_report[0]["recipes"].values()]
    assert all(e and Path(e).is_dir() for e in exports)


def test_every_trainable_parameter_gets_a_gradient(ddp_report):
    """Parameters a config does not use (the BERT pooler under mean pooling, ...) are frozen."""
    for recipe, result in ddp_report[0]["recipes"].items():
        assert result["no_grad"] == [], f"{recipe}: trainable parameters without a gradient"


@pytest.mark.parametrize("case", ["finetune_gathered", "bot_gathered", "mgn_gathered", "finetune_per_gpu"])
def test_two_processes_equal_one_process_on_the_whole_batch(ddp_report, case):
    for report in ddp_report:
        eq = report["equivalence"][case]
        assert eq["loss"] == pytest.approx(eq["reference_loss"], rel=1e-5, abs=1e-6), case
        assert eq["grad_max_rel_diff"] < 1e-5, case
