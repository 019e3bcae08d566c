"""Fetching the BIG-bench sdist (issue 15): the URL from pip's index's simple page, nothing in
the archive run, a pinned sha256 checked. A real HTTP server on 127.0.0.1 plays the index."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading

import pytest

from labelwise.pool import bigbench


def fake_sdist(marker) -> bytes:
    """A tar.gz laid out like the sdist whose setup.py leaves ``marker`` if anything runs it."""
    setup = f"open({str(marker)!r}, 'w').write('setup.py ran')\nfrom setuptools import setup\nsetup(name='bigbench', version='1.0.0')\n"
    task = {"name": "t", "keywords": [], "examples": [{"input": "2+2?", "target": "4"}]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in [("bigbench-1.0.0/setup.py", setup),
                           ("bigbench-1.0.0/PKG-INFO", "Metadata-Version: 2.1\nName: bigbench\nVersion: 1.0.0\n"),
                           ("bigbench-1.0.0/bigbench/benchmark_tasks/t/task.json", json.dumps(task))]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        archive, style = self.server.archive, self.server.style
        digest = hashlib.sha256(archive).hexdigest()
        self.server.paths.append(self.path)
        if self.path.rstrip("/") == "/simple/bigbench" and style == "json":
            body = json.dumps({"meta": {"api-version": "1.0"}, "name": "bigbench", "files": [
                {"filename": "bigbench-0.0.1.tar.gz", "url": "/files/old.tar.gz", "hashes": {}},
                {"filename": bigbench.SDIST, "url": f"/files/{bigbench.SDIST}", "hashes": {"sha256": digest}}]}).encode()
            kind = "application/vnd.pypi.simple.v1+json"
        elif self.path.rstrip("/") == "/simple/bigbench":
            body = (f'<html><body><a href="../../files/old.tar.gz">bigbench-0.0.1.tar.gz</a><br/>'
                    f'<a href="../../files/{bigbench.SDIST}#sha256={digest}">{bigbench.SDIST}</a></body></html>').encode()
            kind = "text/html"
        elif self.path == f"/files/{bigbench.SDIST}":
            body, kind = archive, "application/octet-stream"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def index(tmp_path, monkeypatch):
    marker = tmp_path / "setup_py_ran"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    server.archive, server.style, server.paths = fake_sdist(marker), "html", []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_port}/simple")
    monkeypatch.setenv("LABELWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LABELWISE_BIGBENCH_SDIST", raising=False)
    monkeypatch.setattr(bigbench, "SHA256", hashlib.sha256(server.archive).hexdigest(), raising=False)
    server.marker = marker
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("style", ["html", "json"])
def test_the_sdist_comes_from_the_simple_page_verified_and_nothing_in_it_runs(index, style):
    index.style = style
    got = bigbench.fetch_sdist(log=lambda *_: None)
    assert got.read_bytes() == index.archive
    assert not index.marker.exists()  # its setup.py was never run
    assert f"/files/{bigbench.SDIST}" in index.paths and "/files/old.tar.gz" not in index.paths
    assert [p.name for p in got.parent.iterdir() if p.name.endswith(".tar.gz") or ".part" in p.name] == [bigbench.SDIST]


def test_an_archive_with_another_sha256_is_refused_and_not_kept(index, monkeypatch):
    monkeypatch.setattr(bigbench, "SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"sha256 [0-9a-f]{64} is not the pinned 0{64}"):
        bigbench.fetch_sdist(log=lambda *_: None)
    assert not any(p.name.startswith("bigbench") for p in bigbench.folder().iterdir())


def test_a_cached_archive_with_another_sha256_is_fetched_again(index):
    bigbench.folder().mkdir(parents=True)
    (bigbench.folder() / bigbench.SDIST).write_bytes(b"truncated or tampered")
    messages = []
    got = bigbench.fetch_sdist(log=messages.append)
    assert got.read_bytes() == index.archive
    assert any("fetching it again" in m for m in messages)
    index.paths.clear()
    assert bigbench.fetch_sdist(log=messages.append) == got and index.paths == []  # verified copy kept


def test_the_pinned_sha256_is_the_registrys_for_bigbench_1_0_0():
    assert bigbench.SDIST == "bigbench-1.0.0.tar.gz"
    assert bigbench.SHA256 == "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
