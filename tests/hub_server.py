"""A minimal Hugging Face Hub-compatible file server for tests (127.0.0.1 only).

It implements what ``huggingface_hub.hf_hub_download`` uses: ``HEAD``/``GET`` on
``/{org}/{repo}/resolve/{revision}/{filename}`` with ``X-Repo-Commit``, ``ETag`` and, for
large (LFS) files, ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``. ``corrupt`` makes
it serve different bytes of the same length than the sha256 it announces.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin")


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.corrupt: set[tuple[str, str]] = set()
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def add_folder(self, repo: str, folder: Path) -> None:
        self.repos[repo] = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _resolve(self):
                hub.requests.append(f"{self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, None, "RepoNotFound"
                repo, filename = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
                if repo not in hub.repos:
                    return None, None, "RepoNotFound"
                if filename not in hub.repos[repo]:
                    return repo, None, "EntryNotFound"
                return repo, filename, None

            def _headers(self, repo, filename):
                data = hub.repos[repo][filename]
                commit = hashlib.sha1(repo.encode()).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Length", str(len(data)))
                if filename.endswith(LFS_SUFFIXES):
                    sha = hashlib.sha256(data).hexdigest()
                    self.send_header("ETag", f'"{sha}"')
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                else:
                    self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                self.end_headers()
                return data

            def _error(self, code):
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                repo, filename, error = self._resolve()
                if error:
                    return self._error(error)
                self._headers(repo, filename)

            def do_GET(self):
                repo, filename, error = self._resolve()
                if error:
                    return self._error(error)
                data = self._headers(repo, filename)
                if (repo, filename) in hub.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
