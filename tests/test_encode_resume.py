"""`plip encode` is crash-safe: SIGKILL it mid-encode, run it again, get the uninterrupted file.

Oracle: an uninterrupted `plip encode` of the same images with the same arguments; the
resumed output must equal it bit for bit (embeddings, ids and every metadata field).
The kills come from outside (``SIGKILL`` to the process group) at moments chosen by the
shards on disk, while the child is encoding; decoding is slowed down in the child only, so
that the kill lands before the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from plip.app.cli.main import main

REPO = Path(__file__).resolve().parents[1]
SHARDS = 6  # 12 images, 2 per shard

# The child is `plip encode` itself; only image decoding is slowed (0.2 s an image).
CHILD = textwrap.dedent("""
    import sys, time
    from plip.inference import batching
    slow = batching.PreprocessedImages.__getitem__
    def getitem(self, index):
        time.sleep(0.2)
        return slow(self, index)
    batching.PreprocessedImages.__getitem__ = getitem
    from plip.app.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """12 synthetic pedestrians (6 people x 2 shots)."""
    from plip.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root / "d", identities=6, images_per_id=2, seed=5, workers=0, progress=False)
    return root / "d" / "Part1"


def _args(photos: Path, out: Path, *extra: str) -> list[str]:
    """The test's `plip encode` command line (the default --optimize: a traced image graph)."""
    return ["encode", "--model", "plip-tiny-synth", "--images", str(photos), "--out", str(out), "--shard-size", "2",
            "--batch-size", "2", "--workers", "0", "--no-progress", *extra]


def _done(work: Path) -> int:
    return len(list(work.glob("shard-*.safetensors")))


def _read(path: Path) -> tuple[torch.Tensor, dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor("embeddings"), handle.metadata()


def _kill_when(cmd: list[str], work: Path, shards_on_disk: int, env: dict) -> int | None:
    """Start ``cmd``; SIGKILL it once ``shards_on_disk`` shards exist. None if it finished first."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while _done(work) < shards_on_disk and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        return None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode


def test_sigkill_mid_encode_then_resume_equals_an_uninterrupted_run(photos, tmp_path, capsys):
    out = tmp_path / "killed.safetensors"
    work = Path(str(out) + ".shards")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", CHILD, *_args(photos, out)]
    seen = []
    for target in (1, 3):  # kill after the first shard, then again later in the resumed run
        assert _kill_when(cmd, work, target, env) == -signal.SIGKILL
        assert not out.exists(), "a killed run must not leave an output file"
        seen.append(_done(work))
    assert 1 <= seen[0] <= seen[1] < SHARDS, seen

    # What a kill can leave: a temporary shard (ignored, removed) and, on a bad disk, an
    # unreadable shard (encoded again, never read).
    (work / ".shard-000005.safetensors.x1y2.tmp").write_bytes(b"half a shard")
    victim = work / "shard-000000.safetensors"
    victim.write_bytes(victim.read_bytes()[:40])
    capsys.readouterr()
    assert main(_args(photos, out)) == 0
    err = capsys.readouterr().err
    assert f"resuming: {seen[1] - 1} of {SHARDS} shards already encoded" in err
    assert not work.exists(), "the shards are removed once the output is written"

    clean = tmp_path / "clean.safetensors"
    assert main(_args(photos, clean)) == 0
    (emb, meta), (ref, ref_meta) = _read(out), _read(clean)
    assert emb.dtype == torch.float32 and emb.shape == (12, 64)
    assert torch.equal(emb, ref) and meta == ref_meta
    assert emb.numpy().tobytes() == ref.numpy().tobytes()


def test_other_settings_start_over_and_skip_bad_reuses_the_shards(photos, tmp_path, capsys):
    """A work folder of another batch size is discarded (never mixed in); after a failure on a
    bad image, --skip-bad keeps the shards encoded so far (they skipped nothing)."""
    import shutil

    eager = ("--optimize", "none")  # no graph to trace per run: a faster test
    folder = tmp_path / "imgs"
    shutil.copytree(photos, folder)
    last = sorted(folder.iterdir())[-1]
    (last / "zz-broken.jpg").write_bytes(b"not a jpeg")  # the last file: shard 6 of 7
    out = tmp_path / "g.safetensors"
    capsys.readouterr()
    assert main(_args(folder, out, *eager)) == 2
    assert "zz-broken.jpg" in capsys.readouterr().err and not out.exists()
    work = Path(str(out) + ".shards")
    assert _done(work) == SHARDS  # everything before the bad image is on disk
    assert main(_args(folder, out, *eager, "--skip-bad")) == 0
    err = capsys.readouterr().err
    assert f"resuming: {SHARDS} of {SHARDS + 1} shards" in err and "skipped 1 unreadable image(s) of 13" in err

    clean = tmp_path / "clean.safetensors"
    assert main(_args(folder, clean, *eager, "--skip-bad")) == 0
    assert torch.equal(_read(out)[0], _read(clean)[0]) and _read(out)[1] == _read(clean)[1]

    assert main(_args(folder, out, *eager, "--skip-bad", "--max-pixels", "1")) == 2  # every image refused
    capsys.readouterr()
    assert main(_args(folder, out, *eager, "--skip-bad", "--batch-size", "1")) == 0
    assert "discarding an unfinished encoding" in capsys.readouterr().err


def test_worker_batches_cross_as_one_tensor_and_keep_order(photos, tmp_path):
    """Oracle: the same encoding without worker processes (nothing crosses a process)."""
    import shutil

    import plip
    from plip.inference.batching import collate_images, encode_image_items

    folder = tmp_path / "imgs"
    shutil.copytree(photos, folder)
    (folder / "0-broken.jpg").write_bytes(b"not a jpeg")
    paths = sorted(str(p) for p in folder.rglob("*.jpg"))
    model = plip.load("plip-tiny-synth")
    inline = encode_image_items(model, paths, batch_size=5, skip_bad=True, num_workers=0)
    workers = encode_image_items(model, paths, batch_size=5, skip_bad=True, num_workers=1)
    assert workers.kept == inline.kept and [i for i, _ in workers.failures] == [i for i, _ in inline.failures] == [0]
    assert torch.equal(workers.embeddings, inline.embeddings)
    batch = collate_images([(0, None, "bad"), (1, torch.ones(3, 2, 2), ""), (2, torch.zeros(3, 2, 2), "")])
    assert batch.positions == [1, 2] and batch.images.shape == (2, 3, 2, 2) and batch.failures == [(0, "bad")]
    assert [(i, e) for i, _, e in batch.items()] == [(0, "bad"), (1, ""), (2, "")]
