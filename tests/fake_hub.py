"""A fake Hugging Face Hub on 127.0.0.1 for hermetic tests of the zoo's downloads and uploads.

It serves the endpoints huggingface_hub 2.x calls:

- ``HEAD`` / ``GET /{owner}/{name}/resolve/{revision}/{path}``: file metadata
  (``X-Repo-Commit``, ``ETag`` = sha256 of the true content, ``Content-Length``)
  and content, with ``Range`` support so interrupted transfers can resume; errors
  carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) like the Hub;
- ``POST /api/repos/create``, ``POST /api/validate-yaml``,
  ``POST /api/models/{owner}/{name}/preupload/{revision}`` (every file "regular"),
  ``POST /api/models/{owner}/{name}/commit/{revision}`` (ndjson, base64 files),
  which is what ``HfApi.create_repo`` and ``HfApi.create_commit`` need.

Faults are injected per file: ``corrupt[(repo, path)] = n`` serves a body with
flipped bytes on the next ``n`` GETs; ``truncate[(repo, path)] = n`` sends half
the body then closes the connection on the next ``n`` GETs. Every request is
recorded in ``requests`` as ``(method, path)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> path -> bytes
        self.refs: dict[str, dict[str, str]] = {}  # repo -> branch/tag -> commit
        self.requests: list[tuple[str, str]] = []
        self.corrupt: dict[tuple[str, str], int] = {}
        self.truncate: dict[tuple[str, str], int] = {}
        self._commits = 0
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                hub._record("HEAD", self.path)
                hub._resolve(self, head=True)

            def do_GET(self):
                hub._record("GET", self.path)
                hub._resolve(self, head=False)

            def do_POST(self):
                hub._record("POST", self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                hub._post(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_commit(self, repo_id: str, files: dict[str, bytes], branch: str | None = "main",
                   parent: str | None = None) -> str:
        """Create a commit holding ``parent``'s files updated with ``files``; move ``branch`` to it."""
        with self._lock:
            self._commits += 1
            commit = hashlib.sha1(f"{repo_id}:{self._commits}".encode()).hexdigest()
            commits = self.repos.setdefault(repo_id, {})
            refs = self.refs.setdefault(repo_id, {})
            base = commits.get(parent or refs.get(branch or "", ""), {})
            commits[commit] = {**base, **files}
            if branch:
                refs[branch] = commit
        return commit

    def count(self, method: str | None = None, contains: str = "") -> int:
        return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    # ------------------------------------------------------------------ serving

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    @staticmethod
    def _send(handler, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        handler.end_headers()
        if not head and body:
            handler.wfile.write(body)

    def _error(self, handler, status: int, code: str, head: bool, extra: dict | None = None) -> None:
        body = json.dumps({"error": code}).encode()
        headers = {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json", **(extra or {})}
        self._send(handler, status, headers, body, head)

    def _resolve(self, handler, head: bool) -> None:
        parts = urlsplit(handler.path).path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            self._error(handler, 404, "NotFound", head)
            return
        repo_id = f"{parts[0]}/{parts[1]}"
        revision = unquote(parts[3])
        path = unquote("/".join(parts[4:]))
        with self._lock:
            commits = self.repos.get(repo_id)
            commit = None
            if commits is not None:
                commit = revision if revision in commits else self.refs[repo_id].get(revision)
            files = commits.get(commit) if commits is not None and commit else None
            content = files.get(path) if files is not None else None
            corrupt = truncate = False
            if content is not None and not head:
                key = (repo_id, path)
                if self.corrupt.get(key, 0) > 0 and "Range" not in handler.headers:
                    self.corrupt[key] -= 1
                    corrupt = True
                if self.truncate.get(key, 0) > 0:
                    self.truncate[key] -= 1
                    truncate = True
        if commits is None:
            self._error(handler, 401, "RepoNotFound", head)
            return
        if files is None:
            self._error(handler, 404, "RevisionNotFound", head)
            return
        if content is None:
            self._error(handler, 404, "EntryNotFound", head, {"X-Repo-Commit": commit})
            return
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        body = bytes(b ^ 0xFF for b in content) if corrupt else content
        status = 200
        range_header = handler.headers.get("Range")
        if range_header and not head and range_header.startswith("bytes="):
            start = int(range_header[len("bytes="):].split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            body = body[start:]
            status = 206
        headers["Content-Length"] = str(len(body))
        if truncate:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        self._send(handler, status, headers, body, head)

    def _post(self, handler, body: bytes) -> None:
        path = urlsplit(handler.path).path
        parts = path.lstrip("/").split("/")
        json_headers = {"Content-Type": "application/json"}
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if repo_id in self.repos:  # like the Hub, a conflict still tells where the repository is
                body = json.dumps({"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"})
                self._send(handler, 409, json_headers, body.encode())
                return
            self.add_commit(repo_id, {})
            self._send(handler, 200, json_headers, json.dumps({"url": f"{self.url}/{repo_id}"}).encode())
        elif path == "/api/validate-yaml":
            self._send(handler, 200, json_headers, b"{}")
        elif len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
            repo_id = f"{parts[2]}/{parts[3]}"
            revision = unquote(parts[5])
            if repo_id not in self.repos:
                self._error(handler, 404, "RepoNotFound", False)
                return
            if parts[4] == "preupload":
                files = json.loads(body)["files"]
                answer = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                                    for f in files]}
                self._send(handler, 200, json_headers, json.dumps(answer).encode())
                return
            added = {}
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            commit = self.add_commit(repo_id, added, branch=revision)
            answer = {"commitUrl": f"{self.url}/{repo_id}/commit/{commit}", "commitOid": commit}
            self._send(handler, 200, json_headers, json.dumps(answer).encode())
        else:
            self._error(handler, 404, "NotFound", False)
