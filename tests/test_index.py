"""plip.Index and `plip index`: round trips, backends, crash-safe and distributed builds, errors.

Oracles: ``model.encode_image`` on the same files (the torch path) for stored embeddings,
``plip.retrieve`` over those embeddings for search results, a brute-force scan for filters,
the exact backend for FAISS results, and an uninterrupted one-process build for resumed and
``torchrun`` builds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import plip
from plip.app.cli.main import main
from plip.errors import ImageLoadError, PlipError
from plip.index import IndexFormatError, MissingShardError, ModelMismatchError, backends
from plip.inference import shards

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return plip.load("plip-tiny-synth")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """12 synthetic pedestrians (6 people x 2 shots) in Part1/<id>/<n>.jpg."""
    from plip.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root / "d", identities=6, images_per_id=2, seed=3, workers=0, progress=False)
    return root / "d" / "Part1"


def _copy(src: Path, dst: Path, people: list[str]) -> Path:
    for person in people:
        shutil.copytree(src / person, dst / person)
    return dst


def _clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _rows(hits) -> list[list[int]]:
    return [[h.row for h in q] for q in hits]


# -- build / search / add / delete --------------------------------------------------------
def test_build_stores_what_encode_image_returns(model, photos, tmp_path):
    index = plip.Index.build(tmp_path / "ix", model, photos, dtype="float32", shard_size=5, batch_size=2)
    root, files = shards.find_images(photos)
    assert index.ids == files and index.paths == [os.path.join(root, f) for f in files]
    expected = model.encode_image(index.paths).numpy()
    np.testing.assert_allclose(index.embeddings(range(index.rows)), expected, atol=1e-5)
    assert index.info()["model"] == "plip-tiny-synth" and index.info()["backend"] == "exact"
    assert not (tmp_path / "ix" / ".build").exists()


def test_text_and_image_search_equal_plip_retrieve(model, photos, tmp_path):
    index = plip.Index.build(tmp_path / "ix", model, photos, dtype="float32")
    gallery = torch.from_numpy(index.embeddings(range(index.rows)))
    texts = ["a man in a red shirt", "a woman with a black bag"]
    expected = plip.retrieve(torch.cat([model.encode_text(texts), model.encode_image([index.paths[3]])]), gallery, top_k=4)
    hits = index.search(texts, image=[index.paths[3]], model=model, top_k=4)
    assert _rows(hits) == expected.indices.tolist()
    np.testing.assert_allclose([[h.score for h in q] for q in hits], expected.scores.numpy(), atol=1e-5)
    assert hits[2][0].id == index.ids[3]
    reopened = plip.Index.open(tmp_path / "ix")
    assert _rows(reopened.search(embedding=gallery[:2].numpy(), top_k=3)) == plip.retrieve(gallery[:2], gallery, 3).indices.tolist()


def test_float16_store_is_the_rounded_float32(model, photos, tmp_path):
    index = plip.Index.build(tmp_path / "ix", model, photos)  # default float16
    expected = model.encode_image(index.paths).numpy()
    np.testing.assert_array_equal(index.embeddings(range(index.rows)), expected.astype(np.float16).astype(np.float32))


def test_add_encodes_only_new_images_and_delete_hides_them(model, photos, tmp_path):
    people = sorted(p.name for p in photos.iterdir())
    folder = _copy(photos, tmp_path / "imgs", people[:3])
    index = plip.Index.build(tmp_path / "ix", model, folder)
    assert len(index) == 6
    _copy(photos, folder, people[3:])
    assert index.add(folder, model) == 6  # the first 6 are skipped, not re-encoded
    assert index.add(folder, model) == 0
    fresh = plip.Index.build(tmp_path / "clean", model, folder)
    assert sorted(index.ids) == sorted(fresh.ids) and len(index.segments) == 2
    order = [index.ids.index(i) for i in fresh.ids]
    np.testing.assert_array_equal(index.embeddings(order), fresh.embeddings(range(fresh.rows)))

    victim = index.ids[7]
    query = index.embeddings([7])
    assert index.search(embedding=query, top_k=1)[0][0].id == victim
    assert index.delete([victim]) == 1 and len(index) == 11
    for opened in (index, plip.Index.open(tmp_path / "ix")):
        hits = opened.search(embedding=query, top_k=12)[0]
        assert victim not in [h.id for h in hits] and len(hits) == 11
    with pytest.raises(PlipError, match="no entry with id"):
        index.delete([victim])
    with pytest.raises(PlipError, match="already in the index"):
        index.add_embeddings(query, [index.ids[0]])
    assert index.add_embeddings(query, [victim]) == 1  # a deleted id may come back
    assert index.search(embedding=query, top_k=1)[0][0].id == victim


def test_metadata_filters_equal_a_brute_force_scan(model, photos, tmp_path):
    root, files = shards.find_images(photos)
    meta = {f: {"camera": f"c{i % 3}", "time": i} for i, f in enumerate(files)}
    index = plip.Index.build(tmp_path / "ix", model, photos, metadata=meta, dtype="float32")
    gallery = index.embeddings(range(index.rows))
    query = model.encode_text(["a person in blue"]).numpy()
    for where, keep in ((["camera=c1"], lambda m: m["camera"] == "c1"),
                        (["camera!=c1", "time>=4"], lambda m: m["camera"] != "c1" and m["time"] >= 4),
                        ({"camera": ["c0", "c2"]}, lambda m: m["camera"] in ("c0", "c2"))):
        allowed = [r for r, f in enumerate(files) if keep(meta[f])]
        oracle = plip.retrieve(torch.from_numpy(query), torch.from_numpy(gallery[allowed]), top_k=3)
        hits = index.search(embedding=query, top_k=3, where=where)[0]
        assert [h.row for h in hits] == [allowed[i] for i in oracle.indices[0].tolist()]
        assert all(keep(h.metadata) for h in hits)
    with pytest.raises(PlipError, match="no column 'colour'"):
        index.search(embedding=query, where="colour=red")
    with pytest.raises(PlipError, match="COLUMN OP VALUE"):
        index.search(embedding=query, where="camera")


def _hits(index, queries, **kw):
    return [[(h.id, h.score, h.metadata) for h in q] for q in index.search(embedding=queries, top_k=10, **kw)]


@pytest.mark.parametrize("kind", ["exact", "flat", "ivf"])
def test_compact_drops_deleted_rows_and_keeps_every_answer(tmp_path, kind):
    """Oracle: the same index before compaction (ids, scores, metadata of every hit) and the
    stored embeddings of its live rows."""
    if kind != "exact":
        pytest.importorskip("faiss")
    data, more = _clustered(600, 32, 12, seed=0), _clustered(80, 32, 12, seed=2)
    queries = _clustered(15, 32, 12, seed=1)
    ids = [str(i) for i in range(600)]
    meta = {i: {"camera": f"c{int(i) % 3}"} for i in ids}
    index = plip.Index.from_embeddings(tmp_path / kind, data, ids, metadata=meta, backend=kind,
                                       backend_params={"nlist": 8} if kind == "ivf" else None)
    index.add_embeddings(more, [f"n{i}" for i in range(80)])
    victims = ids[::7] + ["n3", "n50"]
    index.delete(victims)
    live = np.flatnonzero(~index.deleted)
    before = {"ids": [index.ids[r] for r in live], "emb": index.embeddings(live), "plain": _hits(index, queries),
              "where": _hits(index, queries, where="camera=c1"), "bytes": index.info()["bytes"]}

    assert index.compact() == len(victims)
    for opened in (index, plip.Index.open(tmp_path / kind)):
        assert (len(opened.segments), opened.rows, len(opened), int(opened.deleted.sum())) == (1, live.size, live.size, 0)
        assert opened.ids == before["ids"] and opened.info()["backend"] == kind
        np.testing.assert_array_equal(opened.embeddings(range(opened.rows)), before["emb"])
        assert _hits(opened, queries) == before["plain"]
        assert _hits(opened, queries, where="camera=c1") == before["where"]
    assert index.info()["bytes"] < before["bytes"]
    assert sorted(p.name for p in (tmp_path / kind).glob("seg-*")) == ["seg-000004.json", "seg-000004.npy"]
    assert index.compact() == 0  # nothing left to do
    index.add_embeddings(more[[3, 50]], ["n3", "n50"])  # deleted ids may come back after compaction too
    assert index.search(embedding=more[3], top_k=1)[0][0].id == "n3"
    index.delete(index.ids)
    with pytest.raises(PlipError, match="every entry is deleted"):
        index.compact()


COMPACT_KILLER = textwrap.dedent("""
    import os, signal, sys
    import plip
    from plip.index import storage
    def die(folder, manifest):  # the new segment and FAISS part are written; the manifest is not
        os.kill(os.getpid(), signal.SIGKILL)
    storage.write_manifest = die
    plip.Index.open(sys.argv[1]).compact()
""")


def test_kill_mid_compact_leaves_the_old_index_readable(tmp_path):
    """Oracle: the index as it was before the killed compaction, then a compaction that runs
    through."""
    kind = "flat" if backends.has_faiss() else "exact"
    data, queries = _clustered(300, 16, 6, seed=0), _clustered(5, 16, 6, seed=1)
    folder = tmp_path / "ix"
    index = plip.Index.from_embeddings(folder, data, [str(i) for i in range(300)], backend=kind)
    index.delete([str(i) for i in range(0, 300, 4)])
    before, files = _hits(index, queries), sorted(p.name for p in folder.iterdir())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", COMPACT_KILLER, str(folder)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == -9, out.stderr
    left = sorted(p.name for p in folder.iterdir())
    assert "seg-000003.npy" in left and set(files) < set(left)  # the crash's files, beside the old ones
    old = plip.Index.open(folder)
    assert old.rows == 300 and int(old.deleted.sum()) == 75 and _hits(old, queries) == before
    assert old.compact() == 75 and _hits(old, queries) == before
    manifest = json.loads((folder / "index.json").read_text())
    backend = manifest["backend"]
    referenced = {"index.json", "seg-000003.npy", "seg-000003.json", *filter(None, [backend.get("template")]),
                  *backend.get("parts", {}).values()}
    assert {p.name for p in folder.iterdir()} == referenced  # nothing of the old index or the crash is left


def test_coded_columns_filter_like_the_row_by_row_scan():
    """Oracle: filters.mask over plain lists (one Python test per row), for = / != and the
    ordered comparisons (mixed types fall back to comparing strings, missing never matches)."""
    from plip.index import filters

    values = ["c1", "c2", None, 3, "3", 1, True, 2.5, ["a", 1], {"k": 1}, "c1", 0, False]
    rows = len(values)
    for where in ("camera=c1", "camera!=c1", "camera=3", "camera=1", "camera=true", "camera=null",
                  'camera=["a", 1]', "camera=c2,2.5,0", {"camera": [{"k": 1}, None]}, "camera=nothing",
                  "camera>=2", "camera<c2", "camera>1", "camera<=2.5", "camera>=c1", "camera<0",
                  ["camera>=1", "camera!=3"]):
        parsed = filters.parse(where)
        expected = filters.mask(parsed, {"camera": values}, rows)
        np.testing.assert_array_equal(filters.mask(parsed, {"camera": filters.CodedColumn(values)}, rows), expected)
    # an all-number column (missing values and NaN included) takes numpy's comparison; one
    # holding an int beyond float64's exact range keeps Python's: the same rows either way
    numbers = [3, 2.5, None, -1, float("nan"), 7, 2.5, 0, 1e300]
    assert filters.CodedColumn(numbers).numbers is not None
    assert filters.CodedColumn([*numbers, 2**60]).numbers is None
    for column in (numbers, [*numbers, 2**60]):
        for where in ("score>=2.5", "score<3", "score>-1", "score<=0", f"score>={2**60 - 1}", "score>1e299",
                      "score<x", "score>true"):
            parsed = filters.parse(where)
            expected = filters.mask(parsed, {"score": column}, len(column))
            np.testing.assert_array_equal(filters.mask(parsed, {"score": filters.CodedColumn(column)}, len(column)),
                                          expected, err_msg=where)


# -- backends ------------------------------------------------------------------------------
def test_faiss_flat_agrees_with_exact(tmp_path):
    pytest.importorskip("faiss")
    data = _clustered(600, 32, 12, seed=0)
    queries = _clustered(20, 32, 12, seed=1)
    ids = [str(i) for i in range(600)]
    exact = plip.Index.from_embeddings(tmp_path / "e", data, ids, backend="exact", dtype="float32")
    flat = plip.Index.from_embeddings(tmp_path / "f", data, ids, backend="flat", dtype="float32")
    assert _rows(flat.search(embedding=queries, top_k=10)) == _rows(exact.search(embedding=queries, top_k=10))
    flat.delete(["3", "10"])
    exact.delete(["3", "10"])
    more = _clustered(50, 32, 12, seed=2)
    flat.add_embeddings(more, [f"n{i}" for i in range(50)])
    exact.add_embeddings(more, [f"n{i}" for i in range(50)])
    assert _rows(flat.search(embedding=queries, top_k=10, where="id!=5")) == _rows(
        exact.search(embedding=queries, top_k=10, where="id!=5"))


@pytest.mark.parametrize("kind, knob", [("ivf", {"nprobe": 4}), ("ivfpq", {"nprobe": 4}), ("hnsw", {"ef": 64})])
def test_approximate_recall_on_clustered_data(tmp_path, kind, knob):
    pytest.importorskip("faiss")
    data = _clustered(2000, 32, 10, seed=0)
    queries = _clustered(50, 32, 10, seed=1)
    ids = [str(i) for i in range(2000)]
    truth = plip.retrieve(torch.from_numpy(queries), torch.from_numpy(data), top_k=10).indices.tolist()
    index = plip.Index.from_embeddings(tmp_path / kind, data, ids, backend=kind, dtype="float32")
    found = _rows(index.search(embedding=queries, top_k=10, **knob))
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.9, recall
    assert index.info()["backend"] == kind


def test_auto_without_faiss_searches_exactly_and_says_so_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(backends, "EXACT_UP_TO", 10)
    monkeypatch.setattr(backends, "has_faiss", lambda: False)
    monkeypatch.setattr(backends, "_warned_no_faiss", False)
    data = _clustered(50, 8, 3, seed=0)
    for name in ("a", "b"):
        index = plip.Index.from_embeddings(tmp_path / name, data, [str(i) for i in range(50)])
        assert index.info()["backend"] == "exact"
    assert capsys.readouterr().err.count("FAISS is not installed") == 1


# -- crash safety and distribution -----------------------------------------------------------
KILLER = textwrap.dedent("""
    import os, signal, sys
    import plip
    from plip.inference import shards
    from safetensors.torch import save_file as real_save
    written = []
    def save_then_die(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        written.append(path)
        if len(written) == 3:  # the third shard is on disk under its temporary name only
            os.kill(os.getpid(), signal.SIGKILL)
    shards.save_file = save_then_die
    plip.Index.build(sys.argv[1], plip.load("plip-tiny-synth"), sys.argv[2], shard_size=3, batch_size=2)
""")


def test_resume_after_sigkill_equals_a_clean_build(model, photos, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "ix"), str(photos)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == -9, out.stderr
    work = tmp_path / "ix" / ".build"
    assert sorted(p.name for p in work.glob("shard-*")) == ["shard-000000.safetensors", "shard-000001.safetensors"]
    assert list(work.glob(".*.tmp")), "the half-written shard should be left as a temporary file"
    with pytest.raises(IndexFormatError, match="not a plip index"):
        plip.Index.open(tmp_path / "ix")
    resumed = plip.Index.build(tmp_path / "ix", model, photos, shard_size=3, batch_size=2)
    clean = plip.Index.build(tmp_path / "clean", model, photos, shard_size=3, batch_size=2)
    assert resumed.ids == clean.ids
    np.testing.assert_array_equal(resumed.embeddings(range(resumed.rows)), clean.embeddings(range(clean.rows)))
    assert not work.exists()


def test_torchrun_two_ranks_equal_one_process(model, photos, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to python")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "plip.index", "build", str(tmp_path / "two"),
           "--model", "plip-tiny-synth", "--images", str(photos), "--shard-size", "2", "--batch-size", "2",
           "--workers", "0", "--no-progress", "--optimize", "none"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "wrote" in out.stdout
    two = plip.Index.open(tmp_path / "two")
    one = plip.Index.build(tmp_path / "one", model, photos, shard_size=2, batch_size=2)
    assert two.ids == one.ids
    np.testing.assert_allclose(two.embeddings(range(two.rows)), one.embeddings(range(one.rows)), atol=1e-3)


# -- errors ------------------------------------------------------------------------------------
def test_wrong_model_is_refused(model, photos, tmp_path):
    import copy

    index = plip.Index.build(tmp_path / "ix", model, photos)
    tuned = copy.deepcopy(model)  # same architecture and name, one weight changed
    with torch.no_grad():
        next(tuned.parameters()).data.add_(1e-3)
    with pytest.raises(ModelMismatchError, match="built with model 'plip-tiny-synth' \\(weights [0-9a-f]{12}"):
        index.search("a man", model=tuned)
    with pytest.raises(ModelMismatchError):
        index.add(photos, tuned)
    with pytest.raises(ModelMismatchError, match="holds 64-d embeddings, model '\\(unnamed\\)' makes 32-d"):
        index.search("a man", model=plip.PLIPModel(plip.PLIPConfig.tiny()))
    index.search("a man", model=model)  # the right model passes
    with pytest.raises(PlipError, match="do not match the index dimension 64"):
        index.search(embedding=np.zeros(5, np.float32))


def test_corrupt_and_incomplete_indexes_give_clear_errors(tmp_path):
    data = _clustered(100, 16, 4, seed=0)
    folder = tmp_path / "ix"
    plip.Index.from_embeddings(folder, data, [str(i) for i in range(100)], backend="flat" if backends.has_faiss() else "exact")
    seg = folder / "seg-000001.npy"
    original = seg.read_bytes()
    seg.write_bytes(original[: len(original) // 2])
    with pytest.raises(IndexFormatError, match="seg-000001.npy"):
        plip.Index.open(folder)
    seg.unlink()
    with pytest.raises(IndexFormatError, match="seg-000001.npy is missing"):
        plip.Index.open(folder)
    seg.write_bytes(original)
    if backends.has_faiss():
        part = next(folder.glob("faiss-*-seg-*.index"))
        part.write_bytes(b"not faiss")
        with pytest.raises(IndexFormatError, match="unreadable FAISS index"):
            plip.Index.open(folder)
    (folder / "index.json").write_text("{broken")
    with pytest.raises(IndexFormatError, match="corrupt manifest"):
        plip.Index.open(folder)
    with pytest.raises(IndexFormatError, match="no such index folder"):
        plip.Index.open(tmp_path / "nowhere")


def test_missing_shard_is_named(model, photos, tmp_path):
    """What rank 0 sees when another rank died before writing its shards."""
    root, files = shards.find_images(photos)
    work = tmp_path / "work"
    digest = shards.prepare(work, root, files, 4, "fp")
    shards.encode_shards(model, root, files, work, digest, [0, 2], shard_size=4)
    with pytest.raises(MissingShardError, match="1 of 3 shards missing \\(shard-000001.safetensors\\)"):
        shards.shard_summary(work, digest, 3)
    with pytest.raises(PlipError, match="unfinished encoding of other files"):
        shards.prepare(work, root, files[:-1], 4, "fp")


def test_empty_folder_and_unreadable_images(model, photos, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlipError, match="no images found"):
        plip.Index.build(tmp_path / "ix", model, tmp_path / "empty")
    folder = _copy(photos, tmp_path / "imgs", sorted(p.name for p in photos.iterdir())[:2])
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        plip.Index.build(tmp_path / "ix", model, folder)
    index = plip.Index.build(tmp_path / "ix", model, folder, skip_bad=True, restart=True)
    assert len(index) == 4 and "broken.jpg" not in index.ids
    assert index.info()["skipped_images"] == 1
    assert json.loads((tmp_path / "ix" / "skipped.json").read_text())[0]["path"].endswith("broken.jpg")


# -- command line -------------------------------------------------------------------------------
def test_cli_round_trip(model, photos, tmp_path, capsys):
    root, files = shards.find_images(photos)
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"id": f, "camera": f"c{i % 2}"}) + "\n" for i, f in enumerate(files)))
    ix = str(tmp_path / "ix")
    assert main(["index", "build", ix, "--model", "plip-tiny-synth", "--images", str(photos), "--metadata", str(meta),
                 "--workers", "0", "--no-progress", "--store-dtype", "float32"]) == 0
    html, hits_json = tmp_path / "hits.html", tmp_path / "hits.json"
    assert main(["index", "search", ix, "a man in black", "--where", "camera=c1", "-k", "3",
                 "--html", str(html), "--json", str(hits_json)]) == 0
    report = json.loads(hits_json.read_text())
    oracle = plip.Index.open(ix).search("a man in black", model=model, top_k=3, where="camera=c1")[0]
    assert [h["id"] for h in report[0]["hits"]] == [h.id for h in oracle]
    assert all(h["metadata"]["camera"] == "c1" for h in report[0]["hits"])
    assert html.read_text().count('class="thumb') == 3
    assert main(["index", "delete", ix, oracle[0].id]) == 0
    capsys.readouterr()
    assert main(["index", "info", ix, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["entries"], info["deleted"], info["columns"]) == (len(files) - 1, 1, ["camera"])
    assert main(["index", "compact", ix]) == 0
    assert "dropped 1 deleted entries" in capsys.readouterr().out
    assert main(["index", "info", ix, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["entries"], info["rows"], info["deleted"]) == (len(files) - 1, len(files) - 1, 0)
    assert main(["index", "search", ix, "x", "--model", str(tmp_path / "missing")]) == 2
    assert main(["index", "build", ix, "--model", "plip-tiny-synth", "--images", str(photos)]) == 2  # exists


def test_parquet_export_holds_the_live_rows(photos, model, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    root, files = shards.find_images(photos)
    index = plip.Index.build(tmp_path / "ix", model, photos, metadata={files[0]: {"camera": "c9", "time": 3}})
    index.delete([files[1]])
    assert main(["index", "export", str(tmp_path / "ix"), "--out", str(tmp_path / "e.parquet")]) == 0
    table = pq.read_table(tmp_path / "e.parquet")
    live = [r for r in range(index.rows) if not index.deleted[r]]
    assert table.column("id").to_pylist() == [index.ids[r] for r in live]
    assert table.column("camera").to_pylist()[0] == "c9" and table.column("time").to_pylist()[1] is None
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_array_equal(emb, index.embeddings(live))
    assert json.loads(table.schema.metadata[b"plip.model"])["name"] == "plip-tiny-synth"
