"""Paths named by dataset annotations stay inside the dataset root.

An annotation file is data from elsewhere: a ``file_path`` of ``../../etc/passwd``,
``/etc/passwd`` or a symlink pointing out of the dataset would make an evaluation open files
that are not part of the dataset. :class:`PathGuard` resolves every such path (symlinks
included, as the OS would follow them) and raises :class:`~plip.errors.DataError` naming the
annotation file, the entry and the path when it lands outside the root, unless the caller
explicitly allowed it (``allow_outside_root=True``; ``plip eval --allow-outside-root``).
"""

from __future__ import annotations

import os

from ...errors import DataError

__all__ = ["PathGuard", "ALLOW_HINT"]

ALLOW_HINT = "pass allow_outside_root=True (plip eval --allow-outside-root) if this is intended"


class PathGuard:
    """Joins annotation paths to a base folder and checks they resolve inside ``root``.

    Args:
        root: the dataset root (resolved once; a root that is itself a symlink is fine).
        annotation: the file the paths come from (named in errors).
        allow_outside_root: skip the check (the paths are still made absolute).
    """

    def __init__(self, root: str | os.PathLike, annotation: str | os.PathLike, allow_outside_root: bool = False):
        self.root = os.path.realpath(root)
        self.annotation = str(annotation)
        self.allow_outside_root = bool(allow_outside_root)
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self._real_dirs: dict[str, str] = {}  # folder as joined -> its realpath (few distinct folders)

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self._prefix)

    def resolve(self, path: str | os.PathLike) -> str:
        """Where the OS would open ``path``: symlinks and ``..`` resolved."""
        path = os.fspath(path)
        folder, name = os.path.split(path)
        real_folder = self._real_dirs.get(folder)
        if real_folder is None:
            real_folder = self._real_dirs[folder] = os.path.realpath(folder or ".")
        if name in ("", ".", ".."):
            return os.path.realpath(path)
        real = os.path.join(real_folder, name)
        return os.path.realpath(real) if os.path.islink(real) else real

    def join(self, base: str | os.PathLike, relative: str | os.PathLike, entry: str) -> str:
        """``base/relative`` as an absolute path (``..`` collapsed as text), after checking
        that it resolves inside the root; ``entry`` says where in the annotation it is
        (``"entry 12, field 'file_path'"``)."""
        joined = os.path.join(os.fspath(base), os.fspath(relative))
        self.check(joined, entry, shown=os.fspath(relative))
        return os.path.abspath(joined)

    def check(self, path: str | os.PathLike, entry: str, shown: str | None = None) -> None:
        """:class:`DataError` unless ``path`` resolves inside the root (or outside paths are allowed)."""
        if self.allow_outside_root:
            return
        real = self.resolve(path)
        if not self.inside(real):
            raise DataError(
                f"{self.annotation}: {entry}: path {shown if shown is not None else os.fspath(path)!r} "
                f"resolves to {real}, outside the dataset root {self.root}; {ALLOW_HINT}"
            )

