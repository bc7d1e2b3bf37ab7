"""External caption sets: re-caption the images of a text-ReID split from another file.

Re-captioning the same images with better captions is the largest gain reported since PLIP
(HAM-PEDES re-captions one million SYNTH-PEDES images). :func:`read_caption_set` reads such a
file into a :class:`CaptionSet` (normalised image path -> captions) and :func:`join_captions`
joins it to a loaded :class:`~plip.data.textreid.TextReIDSplit` by image path, returning a new
split and a :class:`CaptionJoinReport` (images matched, images without external captions,
external entries matching no image, captions per image).

Formats (``format="auto"`` picks one from the file name and the JSON's top level):

- ``ham-pedes``: a JSON object ``{"Part1/1/1.jpg": ["caption", "caption"], ...}``, image
  path -> list of captions (what HAM's ``caption.py`` writes; HAM-PEDES has two per image).
- ``luperson-mllm``: a JSON object ``{"path/to/image.jpg": "caption", ...}``, image path -> one
  caption (MLLM4Text-ReID ships one such file per captioner and instruction; pass several
  files to merge them).
- ``json``: a JSON list (or ``.jsonl`` lines) of objects with the image in ``path``,
  ``file_path``, ``image``, ``image_path`` or ``img_path`` and the text in ``captions`` (a
  list or one string) or ``caption`` (a string).
- ``csv``: a ``.csv`` / ``.tsv`` with a header: a path column (same names) and a
  ``caption`` / ``captions`` / ``text`` column; several rows of one path give that image
  several captions.

Paths are matched after normalisation: backslashes become ``/``, ``./`` and repeated
slashes are removed, ``..`` is collapsed as text, case is kept. A key is matched against the
image path relative to the dataset root and, for datasets whose images live in a sub-folder
(CUHK-PEDES' ``imgs/``), relative to that folder; absolute keys inside the root are made
relative. ``match="filename"`` joins by file name only (MLLM4Text-ReID's own loader does;
an ambiguous name is an error). Several entries naming one image add up (file order).
Blank captions are skipped and counted. Nothing here opens an image: external paths are only
compared with the split's own, so a key pointing outside the root simply matches nothing.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from ..errors import ConfigError, DataError
from .textreid import PersonSample, TextReIDSplit, dataset_info

__all__ = [
    "CaptionFormat",
    "CaptionSet",
    "CaptionJoinReport",
    "FORMATS",
    "normalize_key",
    "read_caption_set",
    "join_captions",
]

CaptionFormat = Literal["auto", "ham-pedes", "luperson-mllm", "json", "csv"]
FORMATS: tuple[str, ...] = ("auto", "ham-pedes", "luperson-mllm", "json", "csv")
PATH_FIELDS: tuple[str, ...] = ("path", "file_path", "image", "image_path", "img_path")
JSON_CAPTION_FIELDS: tuple[str, ...] = ("captions", "caption")
CSV_CAPTION_FIELDS: tuple[str, ...] = ("caption", "captions", "text")
_SHOWN = 5  # examples listed in errors and reports


# ----------------------------------------------------------------------------- the caption set
@dataclass
class CaptionSet:
    """External captions by normalised image path, in file order.

    Attributes:
        files: the files read, in order.
        formats: the format of each file (``auto`` resolved).
        captions: normalised path -> its non-blank captions.
        where: normalised path -> where it first appears (``file, entry 3``), for reports.
        blank: blank captions skipped.
    """

    files: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    captions: dict[str, list[str]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    blank: int = 0

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def num_captions(self) -> int:
        return sum(len(c) for c in self.captions.values())

    def add(self, path: str, captions: list[str], where: str | tuple[str, int, str]) -> None:
        """Add ``captions`` to image ``path``; ``where`` is a location, or ``(file, index, key)``
        of a mapping entry (formatted only when first seen: files hold millions)."""
        key = normalize_key(path)
        kept = self.captions.get(key)
        if kept is None:
            kept = self.captions[key] = []
            self.where[key] = where if isinstance(where, str) else f"{where[0]}, entry {where[1]} ({where[2]!r})"
        good = [c for c in captions if c.strip()]
        self.blank += len(captions) - len(good)
        kept.extend(good)


def normalize_key(path: str) -> str:
    """An image path as the join compares it: ``/`` separators, no ``./`` or ``//``,
    ``..`` collapsed as text, surrounding whitespace removed, case kept."""
    text = path.strip()
    if "\\" in text:
        text = text.replace("\\", "/")
    if "//" in text or "/." in text or text.startswith(".") or text.endswith("/"):
        text = posixpath.normpath(text)
    return text


# ----------------------------------------------------------------------------- readers
def read_caption_set(files: str | os.PathLike | Sequence[str | os.PathLike], format: str = "auto") -> CaptionSet:
    """Read one or several caption files into one :class:`CaptionSet`.

    Args:
        files: a path or a list of paths (their captions add up, in order).
        format: ``auto``, ``ham-pedes``, ``luperson-mllm``, ``json`` or ``csv`` (for all files).

    Raises:
        DataError: a missing / unreadable / malformed file, naming the file, the entry (or
            line) and the field.
        ConfigError: an unknown format.
    """
    if format not in FORMATS:
        raise ConfigError(f"caption format must be one of {', '.join(map(repr, FORMATS))}, got {format!r}")
    paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    if not paths:
        raise ConfigError("no caption file given")
    result = CaptionSet()
    formats = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise DataError(f"caption file {path} not found")
        try:
            formats.append(_read_file(path, format, result))
        except OSError as err:
            raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err})") from None
    result.files = tuple(str(p) for p in paths)
    result.formats = tuple(formats)
    return result


def _read_file(path: Path, format: str, out: CaptionSet) -> str:
    suffix = path.suffix.lower()
    if format == "csv" or (format == "auto" and suffix in (".csv", ".tsv")):
        _read_csv(path, out)
        return "csv"
    if suffix == ".jsonl" and format in ("auto", "json"):
        _read_json_rows(_jsonl_rows(path), path, out)
        return "json"
    if format == "auto" and suffix != ".json":
        raise DataError(f"{path}: cannot tell the caption format from the name; "
                        f"give the format (one of {', '.join(FORMATS[1:])})")
    data = _load_json(path)
    if format == "auto":
        format = _detect(data, path)
    if format == "json":
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of entries (format 'json'), found a {_kind(data)}")
        _read_json_rows(((i, f"entry {i}", row) for i, row in enumerate(data)), path, out)
    else:
        _read_mapping(data, path, format, out)
    return format


def _detect(data: Any, path: Path) -> str:
    if isinstance(data, list):
        return "json"
    if isinstance(data, dict):
        first = next(iter(data.values()), [])
        return "luperson-mllm" if isinstance(first, str) else "ham-pedes"
    raise DataError(f"{path}: expected a JSON object (path -> captions) or a list of entries, found a {_kind(data)}")


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


class _DuplicateKey(Exception):
    pass


def _load_json(path: Path) -> Any:
    with open(path, "r", encoding="utf-8") as f:
        try:
            return json.load(f, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
        except _DuplicateKey as err:
            # json.load would keep only the last value, silently dropping captions
            raise DataError(f"{path}: key {err.args[0]!r} appears twice in one JSON object") from None


def _jsonl_rows(path: Path) -> Iterable[tuple[int, str, Any]]:
    with open(path, "r", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=_no_duplicate_keys)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {line_no} is not valid JSON ({err.msg})") from None
            except _DuplicateKey as err:
                raise DataError(f"{path}: line {line_no}: key {err.args[0]!r} appears twice") from None
            yield line_no, f"line {line_no}", row


def _read_mapping(data: Any, path: Path, format: str, out: CaptionSet) -> None:
    """``ham-pedes``: path -> list of captions; ``luperson-mllm``: path -> one caption."""
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of image path -> captions (format {format!r}), "
                        f"found a {_kind(data)}")
    single = format == "luperson-mllm"
    for i, (key, value) in enumerate(data.items()):
        if single and type(value) is str:
            captions = [value]
        elif not single and type(value) is list and all(type(c) is str for c in value):
            captions = value
        else:
            where = f"entry {i} ({key!r})"
            if single:
                raise DataError(f"{path}: {where}: expected one caption string (format 'luperson-mllm'), "
                                f"got a {_kind(value)}")
            if not isinstance(value, list):
                raise DataError(f"{path}: {where}: expected a list of captions (format 'ham-pedes'), "
                                f"got a {_kind(value)}")
            captions = _strings(value, path, where, "captions")
        if not key.strip():
            raise DataError(f"{path}: entry {i} ({key!r}): the image path (the key) is empty")
        out.add(key, captions, (str(path), i, key))


def _strings(values: list, path: Path, where: str, name: str) -> list[str]:
    for j, caption in enumerate(values):
        if not isinstance(caption, str):
            raise DataError(f"{path}: {where}, field {name!r}: caption {j} is a {_kind(caption)}, expected a string")
    return values


def _read_json_rows(rows: Iterable[tuple[int, str, Any]], path: Path, out: CaptionSet) -> None:
    for _, where, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{path}: {where} is a {_kind(row)}, expected an object")
        image = _field(row, PATH_FIELDS, path, where)
        if not isinstance(image, str) or not image.strip():
            raise DataError(f"{path}: {where}, field {_name(row, PATH_FIELDS)!r}: expected a non-empty image path, "
                            f"got {image!r}")
        name = _name(row, JSON_CAPTION_FIELDS)
        value = _field(row, JSON_CAPTION_FIELDS, path, where)
        if isinstance(value, str):
            captions = [value]
        elif isinstance(value, list) and name == "captions":
            captions = _strings(value, path, where, name)
        else:
            expected = "a list of captions or a string" if name == "captions" else "a string"
            raise DataError(f"{path}: {where}, field {name!r}: expected {expected}, got a {_kind(value)}")
        out.add(image, captions, f"{path}, {where}")


def _name(row: dict, names: Sequence[str]) -> str:
    return next((n for n in names if n in row), names[0])


def _field(row: dict, names: Sequence[str], path: Path, where: str) -> Any:
    for name in names:
        if name in row:
            return row[name]
    also = f" (also looked for {', '.join(map(repr, names[1:]))})" if len(names) > 1 else ""
    raise DataError(f"{path}: {where}, field {names[0]!r}: missing{also}")


def _read_csv(path: Path, out: CaptionSet) -> None:
    with open(path, "r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        header = reader.fieldnames or []
        path_col = next((n for n in PATH_FIELDS if n in header), None)
        text_col = next((n for n in CSV_CAPTION_FIELDS if n in header), None)
        for wanted, found in (("path", path_col), ("caption", text_col)):
            if found is None:
                names = PATH_FIELDS if wanted == "path" else CSV_CAPTION_FIELDS
                raise DataError(f"{path}: line 1 (header): no {wanted} column (one of {', '.join(names)}); "
                                f"the header is {header}")
        assert path_col is not None and text_col is not None
        for row in reader:
            where = f"line {reader.line_num}"
            image, text = row.get(path_col), row.get(text_col)
            if image is None or text is None:
                missing = path_col if image is None else text_col
                raise DataError(f"{path}: {where}, column {missing!r}: missing "
                                "(the row has fewer columns than the header)")
            if not image.strip():
                raise DataError(f"{path}: {where}, column {path_col!r}: empty image path")
            out.add(image, [text], f"{path}, {where}")


# ----------------------------------------------------------------------------- the join
@dataclass(frozen=True)
class CaptionJoinReport:
    """What :func:`join_captions` did; ``str(report)`` is the printed summary."""

    files: tuple[str, ...]
    formats: tuple[str, ...]
    dataset: str
    split: str
    mode: str
    match: str
    missing_policy: str
    images: int  # distinct images of the split
    matched: int  # images given external captions
    without: int  # images with no external caption
    without_examples: tuple[str, ...]
    kept: int  # of ``without``: kept with their own captions
    dropped: int  # of ``without``: dropped from the split
    entries: int  # distinct (normalised) external paths
    unmatched: int  # external paths matching no image
    unmatched_examples: tuple[str, ...]
    external_captions: int  # external captions given to images
    blank_captions: int  # blank external captions skipped
    per_image: tuple[int, float, int]  # min / mean / max external captions per matched image
    samples: int  # samples of the returned split

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    def __str__(self) -> str:
        low, mean, high = self.per_image
        lines = [
            f"external captions ({self.mode}, by {self.match}) from {', '.join(self.files)} "
            f"[{', '.join(self.formats)}] for {self.dataset} ({self.split}):",
            f"  images matched: {self.matched} of {self.images}",
            f"  images without external captions: {self.without}"
            + (f" ({self.kept} kept with their own captions, {self.dropped} dropped)" if self.without else "")
            + _examples(self.without_examples, self.without),
            f"  external entries matching no image: {self.unmatched} of {self.entries}"
            + (" (skipped)" if self.unmatched else "") + _examples(self.unmatched_examples, self.unmatched),
            f"  external captions per matched image: min {low}, mean {mean:.2f}, max {high} "
            f"({self.external_captions} captions; {self.blank_captions} blank skipped)",
            f"  training samples: {self.samples}",
        ]
        return "\n".join(lines)


def _examples(shown: Sequence[str], total: int) -> str:
    if not shown:
        return ""
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    return f": {', '.join(shown)}{more}"


def join_captions(
    split: TextReIDSplit,
    captions: CaptionSet,
    *,
    mode: Literal["replace", "append"] = "replace",
    unmatched: Literal["error", "skip"] = "error",
    missing: Literal["error", "keep", "drop"] = "error",
    match: Literal["path", "filename"] = "path",
) -> tuple[TextReIDSplit, CaptionJoinReport]:
    """A copy of ``split`` whose samples carry the external captions, and the join report.

    Args:
        split: a loaded text-ReID split (its ``root`` is the dataset root).
        captions: from :func:`read_caption_set`.
        mode: ``replace`` the images' own captions, or ``append`` the external ones to them.
        unmatched: an external path that names no image of the split is an ``error``
            (naming the first few), or is ``skip``-ped and counted.
        missing: an image with no external caption is, under ``replace``, an ``error``,
            ``keep``-s its own captions, or is ``drop``-ped; under ``append`` it keeps its own
            captions unless ``drop``.
        match: compare whole relative ``path``-s or only the ``filename``.

    An image listed by several samples of the split (same path) becomes one sample under
    ``replace``; under ``append`` the external captions go to its first sample.

    Raises:
        DataError: unmatched entries (``unmatched="error"``), images without captions under
            ``replace`` with ``missing="error"``, no image left, or (``match="filename"``) two
            images of the split sharing a file name.
        ConfigError: an unknown mode or policy.
    """
    for name, value, allowed in (("mode", mode, ("replace", "append")), ("unmatched", unmatched, ("error", "skip")),
                                 ("missing", missing, ("error", "keep", "drop")),
                                 ("match", match, ("path", "filename"))):
        if value not in allowed:
            raise ConfigError(f"external captions: {name} must be one of {', '.join(map(repr, allowed))}, "
                              f"got {value!r}")
    source = ", ".join(captions.files) or "the caption set"
    images = list(dict.fromkeys(s.image_path for s in split.samples))
    owner = _index(images, split, match)  # external key -> image path
    found: dict[str, list[str]] = {}
    stray: list[str] = []
    prefix = split.root.replace(os.sep, "/").rstrip("/") + "/"
    for key, texts in captions.captions.items():
        if match == "filename":
            key_in_root = posixpath.basename(key)
        else:  # an absolute path inside the root is made relative
            key_in_root = key[len(prefix):] if key.startswith(prefix) else key
        image = owner.get(key_in_root)
        if image is None:
            stray.append(key)
        else:
            found.setdefault(image, []).extend(texts)
    if stray and unmatched == "error":
        shown = "; ".join(f"{k!r} ({captions.where[k]})" for k in stray[:_SHOWN])
        more = f" and {len(stray) - _SHOWN} more" if len(stray) > _SHOWN else ""
        raise DataError(
            f"{len(stray)} of {len(captions)} entries of {source} name no image of {split.dataset} ({split.split}, "
            f"root {split.root}): {shown}{more}; paths are compared relative to the root (match={match!r}); "
            f"pass unmatched='skip' (config: data.captions_unmatched: skip) to leave them out"
        )
    has = {image for image, texts in found.items() if texts}
    without = [image for image in images if image not in has]
    if without and mode == "replace" and missing == "error":
        shown = ", ".join(_shown_path(p, split.root) for p in without[:_SHOWN])
        more = f" and {len(without) - _SHOWN} more" if len(without) > _SHOWN else ""
        raise DataError(
            f"{len(without)} of {len(images)} images of {split.dataset} ({split.split}) have no caption in "
            f"{source}: {shown}{more}; pass missing='keep' (keep their own captions) or 'drop' "
            f"(config: data.captions_missing)"
        )
    samples: list[PersonSample] = []
    done: set[str] = set()
    for sample in split.samples:
        path = sample.image_path
        if path not in has:
            if missing != "drop":
                samples.append(sample)
            continue
        if path in done:  # a second sample of the same image
            if mode == "append":
                samples.append(sample)
            continue
        done.add(path)
        extra = tuple(found[path])
        samples.append(PersonSample(path, sample.person_id, extra if mode == "replace" else sample.captions + extra))
    if not samples:
        raise DataError(f"no image of {split.dataset} ({split.split}) is left after joining {source}")
    counts = [len(found[p]) for p in images if p in has]
    report = CaptionJoinReport(
        files=captions.files, formats=captions.formats, dataset=split.dataset, split=split.split, mode=mode,
        match=match, missing_policy=missing, images=len(images), matched=len(has), without=len(without),
        without_examples=tuple(_shown_path(p, split.root) for p in without[:_SHOWN]),
        kept=0 if missing == "drop" else len(without), dropped=len(without) if missing == "drop" else 0,
        entries=len(captions), unmatched=len(stray), unmatched_examples=tuple(stray[:_SHOWN]),
        external_captions=sum(counts), blank_captions=captions.blank,
        per_image=(min(counts), sum(counts) / len(counts), max(counts)) if counts else (0, 0.0, 0),
        samples=len(samples),
    )
    joined = TextReIDSplit(split.dataset, split.split, split.root, split.annotation_file, samples,
                           split.skipped_captions)
    return joined, report


def _index(images: list[str], split: TextReIDSplit, match: str) -> dict[str, str]:
    """Every key an external file may use for each image -> the image path."""
    bases = [split.root]
    try:
        sub = dataset_info(split.dataset).image_dir
    except DataError:
        sub = "."
    if sub not in (".", ""):
        bases.append(os.path.join(split.root, sub))
    prefixes = [(base, base.rstrip(os.sep) + os.sep) for base in bases]
    owner: dict[str, str] = {}
    real_dirs: dict[str, str] = {}
    for image in images:
        if match == "filename":
            name = posixpath.basename(image.replace(os.sep, "/"))
            other = owner.setdefault(name, image)
            if other != image:
                raise DataError(
                    f"{split.dataset} ({split.split}) has two images named {name!r} ({other} and {image}); "
                    f"match='filename' cannot tell them apart: join by path (config: data.captions_match: path)"
                )
            continue
        for key in _relative_keys(image, prefixes, real_dirs):
            owner.setdefault(key, image)
    return owner


def _relative_keys(image: str, prefixes: list[tuple[str, str]], real_dirs: dict[str, str]) -> list[str]:
    keys = []
    for base, prefix in prefixes:
        rel = image[len(prefix):] if image.startswith(prefix) else os.path.relpath(image, base)
        if rel.startswith(".."):
            # the root is stored resolved; the sample path may run through a symlinked folder
            folder, name = os.path.split(image)
            real = real_dirs.get(folder)
            if real is None:
                real = real_dirs[folder] = os.path.realpath(folder)
            rel = os.path.relpath(os.path.join(real, name), os.path.realpath(base))
        if not rel.startswith(".."):
            keys.append(normalize_key(rel if os.sep == "/" else rel.replace(os.sep, "/")))
    return keys


def _shown_path(image: str, root: str) -> str:
    rel = os.path.relpath(image, root)
    return image if rel.startswith("..") else rel.replace(os.sep, "/")
