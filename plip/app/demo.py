"""``plip demo``: text-based person search end to end, with pictures.

Without a gallery, the demo generates a synthetic gallery with
:func:`plip.data.synthetic.generate_dataset` from a seed that no model of this project
was trained on (:data:`DEFAULT_SEED`, 2026; the embedded ``plip-tiny-synth`` is trained on
galleries of other seeds, see its model card), so every person in it is new to the model.
It then

1. encodes every image and every caption of the gallery and scores R@1 / R@5 / R@10 / mAP
   over *all* captions with :func:`plip.evaluation.text_retrieval.evaluate_text_to_image`,
   next to the chance level of each metric (the exact expectation under a uniformly random
   ranking, :mod:`plip.evaluation.chance`);
2. runs a handful of text queries of different styles: captions of different persons,
   chosen deterministically so that they cover the caption styles of the generator, and
   one attribute-prompt caption;
3. writes ``demo.html`` (each query with its top-5 thumbnails, the correct ones marked),
   ``demo_contact_sheet.png`` (one row per query) and ``demo.json`` into the output folder.

With ``gallery=DIR`` it runs the same on real images: a text-ReID dataset folder
(CUHK-PEDES, ICFG-PEDES, RSTPReid, SYNTH-PEDES or a generic annotation file, recognised by
the annotation file present) gives metrics and hit / miss marks; a plain folder of images
with your own queries gives the retrieval only.

The output folder is built next to its final place and moved there at the end, so it is
either the previous complete output or the new complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data.captions import CAPTION_STYLES, generate_captions
from ..data.synthetic import INFO_JSON, SYNTHPEDES_JSON, generate_dataset, sample_identities
from ..data.textreid import DATASETS, TextReIDSplit, load_text_reid
from ..errors import ConfigError, DataError
from ..evaluation.chance import chance_retrieval_metrics
from ..evaluation.text_retrieval import evaluate_text_to_image
from ..inference.retrieval import retrieve
from .training_overlap import training_overlap
from .visualize import QueryRow, RetrievedImage, contact_sheet, relative_src, render_retrieval_html

__all__ = [
    "DEFAULT_MODEL", "DEFAULT_SEED", "DEFAULT_IDENTITIES", "DEFAULT_QUERIES",
    "DemoQuery", "DemoReport", "run_demo", "detect_dataset", "select_queries",
    "synthetic_caption_styles", "format_table", "format_metrics",
]

from .demo_defaults import (  # noqa: F401  (re-exported)
    DEFAULT_IDENTITIES,
    DEFAULT_IMAGES_PER_ID,
    DEFAULT_MODEL,
    DEFAULT_QUERIES,
    DEFAULT_SEED,
)
KS = (1, 5, 10)

HTML_FILE = "demo.html"
SHEET_FILE = "demo_contact_sheet.png"
JSON_FILE = "demo.json"
GALLERY_DIR = "gallery"
MARKER = ".plip_demo"  # marks a folder written by the demo, which a later run may replace

CHANCE_METHOD = "exact expectation under a uniformly random ranking (computed analytically)"


@dataclass(frozen=True)
class DemoQuery:
    """A text query of the demo."""

    text: str
    kind: str  # a caption style ("narrative", ...), "prompt", "caption" (style unknown) or "yours"
    person_id: int | None = None  # the person it describes, when known
    caption_index: int | None = None  # index in ``split.queries()`` when it is one of the split's captions


@dataclass
class DemoReport:
    """Everything the demo found and wrote."""

    model: str
    gallery: str  # one line saying what the gallery is
    dataset: str | None
    split: str | None
    num_images: int
    num_identities: int | None
    num_captions: int | None
    queries: list[DemoQuery]
    rows: list[QueryRow]  # image paths inside ``out_dir``
    metrics: dict[str, float] | None  # percent, over all captions of the split
    chance: dict[str, float] | None
    out_dir: Path
    files: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- galleries


def detect_dataset(path: str | os.PathLike) -> str | None:
    """The text-ReID dataset whose annotation file is in folder ``path`` (or is ``path``).

    Returns a key of :data:`plip.data.textreid.DATASETS`, or ``None`` for a folder without
    annotations. A ``plip synth`` folder holds both a SYNTH-PEDES and a CUHK-PEDES file and
    reads as ``synth-pedes`` (which also has the prompt captions).

    Raises:
        ConfigError: the folder holds the annotation files of several datasets.
    """
    root = Path(path)
    if root.is_file():
        for name, info in DATASETS.items():
            if info.annotation == root.name:
                return name
        return "generic" if root.suffix.lower() in (".json", ".jsonl", ".csv") else None
    found = []
    for name, info in DATASETS.items():
        if info.annotation is None:
            continue
        if (root / info.annotation).is_file() or (root / info.title / info.annotation).is_file():
            found.append(name)
    if "synth-pedes" in found and "cuhk-pedes" in found and (root / INFO_JSON).is_file():
        found.remove("cuhk-pedes")
    if len(found) > 1:
        raise ConfigError(f"{root} holds the annotation files of {', '.join(found)}; choose one with --dataset")
    if found:
        return found[0]
    if any((root / name).is_file() for name in ("annotations.json", "annotations.jsonl", "annotations.csv")):
        return "generic"
    return None


def synthetic_caption_styles(root: str | os.PathLike) -> dict[tuple[int, str], str]:
    """``(person id, caption) -> caption style`` for a folder written by ``generate_dataset``.

    The generator does not store styles, but documents its random streams: the captions of
    image ``n`` of person ``i`` come from the stream ``(seed, 2, i, n)``, which first draws
    how many captions and then which styles. The styles are recovered by replaying that
    stream, and kept only where regenerating the captions gives exactly the stored text
    (so a changed generator yields no labels rather than wrong ones). Returns ``{}`` for
    any other folder.
    """
    root = Path(root)
    try:
        info = json.loads((root / INFO_JSON).read_text(encoding="utf-8"))
        entries = json.loads((root / SYNTHPEDES_JSON).read_text(encoding="utf-8"))
        if info.get("generator") != "plip.data.synthetic":
            return {}
        seed, count, share = int(info["seed"]), int(info["identities"]), float(info["share"])
        low, high = (int(v) for v in info["captions_per_image"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    people = {p.person_id: p for p in sample_identities(count, seed, share=share)}
    names = list(CAPTION_STYLES)
    styles: dict[tuple[int, str], str] = {}
    for entry in entries:
        try:
            pid, shot, stored = int(entry["id"]), int(Path(entry["file_path"]).stem), list(entry["captions"])
        except (KeyError, TypeError, ValueError):
            continue
        if pid not in people:
            continue
        replay = np.random.default_rng([seed, 2, pid, shot])
        chosen = replay.choice(len(names), size=int(replay.integers(low, high + 1)), replace=False)
        check = np.random.default_rng([seed, 2, pid, shot])
        if generate_captions(people[pid].description(), check, int(check.integers(low, high + 1))) != stored:
            continue
        for text, index in zip(stored, chosen):
            styles[(pid, text)] = names[int(index)]
    return styles


def _prompt_captions(split: TextReIDSplit) -> dict[int, str]:
    """Person id -> attribute-prompt caption, for SYNTH-PEDES files that have them."""
    if split.dataset != "SYNTH-PEDES":
        return {}
    try:
        prompts = load_text_reid("synth-pedes", split.annotation_file, split.split, caption_fields=("prompt_caption",))
    except DataError:
        return {}
    out: dict[int, str] = {}
    for sample in prompts.samples:
        if sample.captions:
            out.setdefault(sample.person_id, sample.captions[0])
    return out


def select_queries(
    split: TextReIDSplit,
    count: int,
    styles: dict[tuple[int, str], str] | None = None,
    prompts: dict[int, str] | None = None,
) -> list[DemoQuery]:
    """``count`` queries from a split: captions of different persons, and one prompt caption.

    Deterministic. The persons are spread evenly over the split's ids (in increasing
    order). When ``styles`` labels the captions, each caption query takes its person's
    caption whose style comes first in :data:`~plip.data.captions.CAPTION_STYLES` among the
    styles not shown yet (a new round starts once all are shown); otherwise the person's
    first unused caption. With ``prompts`` (and ``count >= 2``) the last query is the
    attribute-prompt caption of the last chosen person.
    """
    if count <= 0:
        return []
    queries = split.queries()
    styles = styles or {}
    ids = sorted(set(queries.person_ids.tolist()))
    by_id: dict[int, list[int]] = {}
    for index, pid in enumerate(queries.person_ids.tolist()):
        by_id.setdefault(pid, []).append(index)
    picks = [ids[(i * len(ids)) // count] for i in range(count)]
    use_prompt = bool(prompts) and count >= 2 and picks[-1] in prompts
    num_captions = min(count - int(use_prompt), len(queries))
    order = list(CAPTION_STYLES) if styles else []
    chosen: list[DemoQuery] = []
    used: set[int] = set()
    used_styles: set[str] = set()

    def style_of(index: int) -> str | None:
        return styles.get((int(queries.person_ids[index]), queries.captions[index]))

    for k in range(num_captions):
        pid = picks[k]
        candidates = [i for i in by_id[pid] if i not in used]
        if not candidates:  # more queries than this person has captions
            candidates = [i for i in range(len(queries)) if i not in used]
        if used_styles >= set(order):
            used_styles = set()  # every style has been shown: start another round
        rank = {s: n for n, s in enumerate(s for s in order if s not in used_styles)}
        labelled = [i for i in candidates if style_of(i) in rank]
        pick = min(labelled, key=lambda i: rank[style_of(i)]) if labelled else candidates[0]
        used.add(pick)
        kind = style_of(pick) or "caption"
        used_styles.add(kind)
        chosen.append(DemoQuery(queries.captions[pick], kind, int(queries.person_ids[pick]), pick))
    if use_prompt:
        chosen.append(DemoQuery(prompts[picks[-1]], "prompt", picks[-1]))
    return chosen


# --------------------------------------------------------------------------- output folder


def _check_out(out: Path, gallery: Path | None) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if out.is_dir():
        _check_only_demo_files(out)
    if gallery is not None:
        g, o = gallery.resolve(), out.resolve()
        if g == o or o in g.parents:
            raise ConfigError(f"--out {out} contains the gallery {gallery}; the demo replaces its output folder")


def _entries(folder: Path) -> list[str]:
    """Every file, folder and link under ``folder`` (relative POSIX paths, links not followed)."""
    found = []
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            found.append(Path(os.path.relpath(os.path.join(top, name), folder)).as_posix())
    return sorted(found)


def _write_marker(staging: Path) -> None:
    """The marker lists every entry the demo wrote, so a later run replaces only those."""
    entries = _entries(staging) + [MARKER]
    payload = {"written_by": "plip demo", "note": "a later plip demo run may replace this folder if it "
               "holds only these entries", "entries": sorted(set(entries))}
    (staging / MARKER).write_text(json.dumps(payload, indent=0) + "\n", encoding="utf-8")


def _check_only_demo_files(out: Path) -> None:
    """Refuse to replace ``out`` unless it is empty or holds only what an earlier demo wrote."""
    present = _entries(out)
    if not present:
        return
    if MARKER not in present:
        raise ConfigError(f"--out {out} is a non-empty folder that plip demo did not write; choose another or empty it")
    try:
        listed = set(json.loads((out / MARKER).read_text(encoding="utf-8"))["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"--out {out} was written by an older plip demo that kept no list of its files, so it cannot tell "
            "them from yours; move what you want to keep and delete the folder, or choose another --out"
        ) from None
    foreign = [entry for entry in present if entry not in listed]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(
            f"--out {out} holds {len(foreign)} file(s) plip demo did not write ({shown}); the demo replaces its "
            "whole output folder, so move them out or choose another --out"
        )


def _commit(staging: Path, out: Path) -> None:
    """Move the finished ``staging`` folder to ``out``, replacing a previous demo output
    (checked again here: files may have been added while the demo ran)."""
    old = None
    if out.exists():
        _check_only_demo_files(out)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _moved(path: str, staging: Path, out: Path) -> str:
    """Where ``path`` lives once ``staging`` has become ``out``."""
    p = Path(path).resolve()
    try:
        return str(out.resolve() / p.relative_to(staging.resolve()))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- the demo


def run_demo(
    model: Any,
    out_dir: str | os.PathLike,
    *,
    gallery: str | os.PathLike | None = None,
    dataset: str | None = None,
    split: str | None = None,
    identities: int = DEFAULT_IDENTITIES,
    seed: int = DEFAULT_SEED,
    images_per_id: int = DEFAULT_IMAGES_PER_ID,
    num_queries: int = DEFAULT_QUERIES,
    queries: Sequence[str] = (),
    top_k: int = 5,
    batch_size: int = 64,
    num_workers: int | None = None,
    model_name: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoReport:
    """Run the demo with ``model`` and write its pages into ``out_dir`` (see the module docstring).

    Args:
        model: a loaded PLIP model (``plip.load(...)``).
        out_dir: output folder; created, or replaced if an earlier demo wrote it.
        gallery: a text-ReID dataset folder (or annotation file) or a plain image folder;
            ``None`` generates a synthetic gallery into ``out_dir/gallery``.
        dataset: the dataset name, overriding the detection from the annotation file.
        split: the split to use (default ``all`` for a generated gallery, whose persons are
            all unseen, and ``test`` for a dataset folder).
        identities: persons in the generated gallery.
        seed: seed of the generated gallery.
        images_per_id: images per generated person.
        num_queries: number of queries picked from the split's captions (and prompt).
        queries: your own text queries, added after those (no hit / miss marks: the person
            they describe is unknown).
        top_k: hits shown per query.
        batch_size: images per encoding batch.
        num_workers: image decoding processes (default: 0 for up to 1,000 images, else up to 4).
        model_name: how the model is named in the outputs.
        progress: progress bars on stderr.
        log: receives one line per step.

    Raises:
        ConfigError: bad option values, an output folder that is not the demo's, or a plain
            image folder without ``queries``.
        DataError: unreadable or inconsistent dataset files.
    """
    started = time.perf_counter()
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    if num_queries < 0:
        raise ConfigError(f"the number of queries must be >= 0, got {num_queries}")
    if gallery is None and (identities < 2 or images_per_id < 1):
        raise ConfigError(f"need at least 2 identities and 1 image per identity, got {identities} and {images_per_id}")
    queries = list(queries)
    if any(not q.strip() for q in queries):
        raise ConfigError("a --query is empty")
    out = Path(out_dir).expanduser()
    gallery_path = Path(gallery).expanduser() if gallery is not None else None
    if gallery_path is not None and not gallery_path.exists():
        raise DataError(f"gallery {gallery_path} does not exist")
    _check_out(out, gallery_path)
    if dataset is None and gallery_path is not None:
        dataset = detect_dataset(gallery_path)
    elif dataset is not None:
        dataset = dataset.lower()
    if gallery_path is not None and dataset is None and not queries:
        raise ConfigError(
            f"{gallery_path} has no annotation file ({', '.join(d.annotation for d in DATASETS.values() if d.annotation)}"
            ", or annotations.json/.jsonl/.csv), so there are no captions to query with: give --query \"text\" ..."
        )
    seconds: dict[str, float] = {}
    name = model_name or getattr(getattr(model, "config", None), "name", "") or "model"

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        tic = time.perf_counter()
        styles: dict[tuple[int, str], str] = {}
        data: TextReIDSplit | None = None
        if gallery_path is None:
            log(f"generating an unseen synthetic gallery: {identities} identities x {images_per_id} images, seed {seed}")
            generated = generate_dataset(staging / GALLERY_DIR, identities=identities, images_per_id=images_per_id,
                                         seed=seed, progress=progress)
            data = load_text_reid("synth-pedes", generated.root, split or "all")
            styles = synthetic_caption_styles(generated.root)
            unseen = "; a seed no training run of this project uses, so every person is new to the model" if (
                seed == DEFAULT_SEED) else ""
            where = (f"synthetic gallery generated with seed {seed} ({identities} identities x {images_per_id} images, "
                     f"split {data.split}{unseen})")
        elif dataset is not None:
            data = _load_dataset(dataset, gallery_path, split, log)
            styles = synthetic_caption_styles(Path(data.annotation_file).parent)
            where = f"{data.dataset} {data.split} split at {gallery_path}"
        else:
            where = f"images under {gallery_path}"
        seconds["gallery"] = time.perf_counter() - tic

        workers = num_workers
        if data is not None:
            overlap = training_overlap(model, data)
            if overlap:
                log(f"warning: {overlap}")
            data.check_files()
            if workers is None:
                workers = 0 if data.num_images <= 1000 else min(4, os.cpu_count() or 1)
            report = _run_on_split(model, data, styles, num_queries, queries, top_k, batch_size, workers, progress,
                                   log, seconds)
        else:
            report = _run_on_folder(model, gallery_path, queries, top_k, batch_size, workers, progress, log, seconds)
        rows, metrics, chance, counts = report

        tic = time.perf_counter()
        title = f"plip demo: {name}"
        summary = _summary_lines(where, counts, metrics is not None)
        html_rows = _relocated(rows, staging, out)
        page = render_retrieval_html(
            html_rows, title=title, summary=summary, metrics_table=_metrics_rows(metrics, chance),
            image_src=relative_src(out),
        )
        (staging / HTML_FILE).write_text(page, encoding="utf-8")
        sheet_title = title if metrics is None else (
            f"{title}  |  R@1 {metrics['R@1']:.1f}% (chance {chance['R@1']:.1f}%)  "
            f"mAP {metrics['mAP']:.1f}% (chance {chance['mAP']:.1f}%)"
        )
        sheet, _ = contact_sheet(rows, columns=top_k, title=sheet_title)
        sheet.save(staging / SHEET_FILE, format="PNG")
        seconds["render"] = time.perf_counter() - tic
        seconds["total"] = time.perf_counter() - started
        report_json = _report_json(name, where, data, counts, rows, html_rows, metrics, chance, out, seconds)
        (staging / JSON_FILE).write_text(json.dumps(report_json, indent=2) + "\n", encoding="utf-8")
        _write_marker(staging)
        _commit(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = {"html": out / HTML_FILE, "contact_sheet": out / SHEET_FILE, "json": out / JSON_FILE}
    if gallery_path is None:
        files["gallery"] = out / GALLERY_DIR
    return DemoReport(
        model=name, gallery=where, dataset=data.dataset if data else None, split=data.split if data else None,
        num_images=counts["images"], num_identities=counts.get("identities"), num_captions=counts.get("captions"),
        queries=[r.extra["query"] for r in rows], rows=html_rows, metrics=metrics, chance=chance, out_dir=out,
        files=files, seconds={k: round(v, 3) for k, v in seconds.items()},
    )


def _load_dataset(dataset: str, root: Path, split: str | None, log: Callable[[str], None]) -> TextReIDSplit:
    name = dataset
    if split is not None:
        return load_text_reid(name, root, split)
    try:
        return load_text_reid(name, root, "test")
    except DataError:
        if DATASETS.get(name) is None or DATASETS[name].splits != ("train",):
            raise
        # The SYNTH-PEDES release has no splits: the whole file is one split.
        log(f"{root}: no test split; using the whole file")
        return load_text_reid(name, root, "train")


def _hits(indices: list[int], scores: list[float], paths: list[str], labels: list[str],
          person_ids: np.ndarray | None, query_id: int | None) -> list[RetrievedImage]:
    hits = []
    for rank, (index, score) in enumerate(zip(indices, scores), 1):
        correct = None
        if person_ids is not None and query_id is not None:
            correct = bool(int(person_ids[index]) == query_id)
        hits.append(RetrievedImage(rank, paths[index], float(score), labels[index], correct))
    return hits


def _run_on_split(model, data, styles, num_queries, own, top_k, batch_size, workers, progress, log, seconds):
    tic = time.perf_counter()
    gallery = data.gallery()
    captions = data.queries()
    log(f"encoding {len(gallery)} images and {len(captions)} captions ({data.num_identities} identities)")
    result = evaluate_text_to_image(
        model, data, ks=KS, batch_size=batch_size, num_workers=workers, progress=progress,
        check_files=False, return_embeddings=True,
    )
    image_emb = result["embeddings"]["images"]
    text_emb = result["embeddings"]["texts"]
    metrics = {key: float(result["t2i"][key]) for key in [f"R@{k}" for k in KS] + ["mAP"]}
    chance = chance_retrieval_metrics(captions.person_ids, gallery.person_ids, ks=KS)
    seconds["encode_and_score"] = time.perf_counter() - tic

    picked = select_queries(data, num_queries, styles, _prompt_captions(data))
    picked += [DemoQuery(text, "yours") for text in own]
    parts = []
    extra = [q.text for q in picked if q.caption_index is None]
    extra_emb = model.encode_text(extra) if extra else None
    j = 0
    for q in picked:
        if q.caption_index is not None:
            parts.append(text_emb[q.caption_index])
        else:
            parts.append(extra_emb[j])
            j += 1
    top = retrieve(torch.stack(parts), image_emb, top_k=min(top_k, len(gallery)))
    labels = [str(int(pid)) for pid in gallery.person_ids]
    rows = []
    for q, indices, scores in zip(picked, top.indices.tolist(), top.scores.tolist()):
        hits = _hits(indices, scores, gallery.image_paths, labels, gallery.person_ids, q.person_id)
        note = _note(q)
        rows.append(QueryRow(q.text, hits, note, {"query": q}))
    counts = {"images": len(gallery), "identities": data.num_identities, "captions": len(captions),
              "dataset": data.dataset, "split": data.split}
    return rows, metrics, chance, counts


def _run_on_folder(model, folder, own, top_k, batch_size, workers, progress, log, seconds):
    from ..data.images import find_images

    tic = time.perf_counter()
    root, relative = find_images([str(folder)])
    paths = [os.path.join(root, r) for r in relative]
    log(f"encoding {len(paths)} images under {folder}")
    workers = workers if workers is not None else (0 if len(paths) <= 1000 else min(4, os.cpu_count() or 1))
    image_emb = model.encode_image(paths, batch_size=batch_size, progress=progress, num_workers=workers)
    top = retrieve(model.encode_text(list(own)), image_emb, top_k=min(top_k, len(paths)))
    seconds["encode_and_score"] = time.perf_counter() - tic
    rows = []
    for text, indices, scores in zip(own, top.indices.tolist(), top.scores.tolist()):
        q = DemoQuery(text, "yours")
        rows.append(QueryRow(text, _hits(indices, scores, paths, relative, None, None), _note(q), {"query": q}))
    return rows, None, None, {"images": len(paths)}


def _note(q: DemoQuery) -> str:
    if q.kind == "yours":
        return "your query"
    what = "attribute-prompt caption" if q.kind == "prompt" else (
        "caption" if q.kind == "caption" else f"{q.kind} caption")
    return f"{what} of person {q.person_id}"


def _relocated(rows: list[QueryRow], staging: Path, out: Path) -> list[QueryRow]:
    return [
        QueryRow(r.text, [RetrievedImage(h.rank, _moved(h.image_path, staging, out), h.score, h.label, h.correct)
                          for h in r.hits], r.note, r.extra)
        for r in rows
    ]


def _summary_lines(where: str, counts: dict, scored: bool) -> list[str]:
    lines = [f"Gallery: {where}: {counts['images']} images."]
    if scored:
        lines.append(
            f"Metrics: every one of the {counts['captions']} captions ranks all {counts['images']} images "
            f"({counts['identities']} identities); a match is an image of the caption's person. "
            f"Chance: {CHANCE_METHOD}."
        )
        lines.append("Thumbnails: green border = the query's person, red = someone else.")
    return lines


def _metrics_rows(metrics: dict[str, float] | None, chance: dict[str, float] | None) -> list[list[str]]:
    if metrics is None or chance is None:
        return []
    rows = [["metric", "model (%)", "chance (%)", "x chance"]]
    for key in metrics:
        ratio = metrics[key] / chance[key] if chance[key] > 0 else float("inf")
        rows.append([key, f"{metrics[key]:.2f}", f"{chance[key]:.2f}", f"{ratio:.1f}x"])
    return rows


def _report_json(name, where, data, counts, rows, html_rows, metrics, chance, out, seconds) -> dict[str, Any]:
    entries = []
    for row, final in zip(rows, html_rows):
        q: DemoQuery = row.extra["query"]
        entries.append({
            "text": q.text, "kind": q.kind, "person_id": q.person_id,
            "hits": [
                {"rank": h.rank, "label": h.label, "score": round(h.score, 6), "correct": h.correct,
                 "src": Path(os.path.relpath(f.image_path, out.resolve())).as_posix()}
                for h, f in zip(row.hits, final.hits)
            ],
        })
    return {
        "model": name, "gallery": where, "dataset": data.dataset if data else None,
        "split": data.split if data else None, "counts": counts, "metrics": metrics, "chance": chance,
        "chance_method": CHANCE_METHOD if chance else None, "queries": entries,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


# --------------------------------------------------------------------------- text output


def _result_word(hits: Sequence[RetrievedImage]) -> str:
    if not hits or hits[0].correct is None:
        return "-"
    first = next((h.rank for h in hits if h.correct), None)
    return "miss" if first is None else f"hit@{first}"


def format_table(report: DemoReport) -> str:
    """One block per query: number, kind, person, result (``hit@r`` for the first correct
    rank within the top-k, ``miss`` if none), the top-k ids (``*`` marks the query's
    person), then the query text."""
    k = max((len(r.hits) for r in report.rows), default=0)
    lines = [f"{'#':>3}  {'query kind':<22} {'person':>6}  {'result':<7} top-{k} (* = the query's person)"]
    for number, row in enumerate(report.rows, 1):
        q: DemoQuery = row.extra["query"]
        person = "-" if q.person_id is None else str(q.person_id)
        ids = "  ".join(("*" if h.correct else "") + h.label for h in row.hits)
        lines.append(f"{number:>3}  {q.kind:<22} {person:>6}  {_result_word(row.hits):<7} {ids}")
        lines.append(f"{'':5}\"{row.text}\"")
    return "\n".join(lines)


def format_metrics(report: DemoReport) -> str:
    """Model vs chance for each metric, or an empty string when there is nothing to score."""
    if report.metrics is None or report.chance is None:
        return ""
    rows = _metrics_rows(report.metrics, report.chance)
    lines = [f"{rows[0][0]:<7}" + "".join(f"{c:>12}" for c in rows[0][1:])]
    lines += [f"{r[0]:<7}" + "".join(f"{c:>12}" for c in r[1:]) for r in rows[1:]]
    lines.append(
        f"over all {report.num_captions} captions x {report.num_images} images ({report.num_identities} identities); "
        f"chance = {CHANCE_METHOD}"
    )
    return "\n".join(lines)
