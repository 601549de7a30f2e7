"""MNIST is fetched from a mirror (here a local HTTP server serving the shared files),
checked against its MD5, cached, and used; a mirror serving other bytes is skipped, and
with none that works the demo trains on the bundled digits and says why."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading

import numpy as np
import pytest

from weightlapse.demos.data import load_digits
from weightlapse.demos.fetch import MNIST_FILES, FetchError, fetch_mnist


@pytest.fixture
def mirror(tmp_path, mnist_dir):
    """A local HTTP mirror with the real test files, and train files made from them with
    their checksums patched in (the real train files are not in the shared data)."""
    root = tmp_path / "www"
    root.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / name, root / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def as_train_files(root, monkeypatch):
    """train-* as copies of t10k-*, their MD5s registered as the expected ones."""
    import hashlib

    files = dict(MNIST_FILES)
    for kind in ("images-idx3", "labels-idx1"):
        data = (root / f"t10k-{kind}-ubyte.gz").read_bytes()
        (root / f"train-{kind}-ubyte.gz").write_bytes(data)
        files[f"train-{kind}-ubyte.gz"] = hashlib.md5(data).hexdigest()
    monkeypatch.setattr("weightlapse.demos.fetch.MNIST_FILES", files)


def test_fetch_checks_caches_and_the_demo_uses_it(mirror, tmp_path, monkeypatch):
    root, url = mirror
    as_train_files(root, monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("WEIGHTLAPSE_MNIST_MIRROR", url)
    monkeypatch.setenv("WEIGHTLAPSE_OFFLINE", "0")
    digits = load_digits(fetch=True)
    assert digits.image_shape == (28, 28) and "MNIST (10,000 train / 10,000 test" in digits.source
    cached = tmp_path / "cache" / "weightlapse" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(MNIST_FILES)
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    assert sorted(np.bincount(digits.y_val).tolist()) == sorted(np.bincount(labels).tolist())
    for name in MNIST_FILES:
        (root / name).unlink()  # the mirror is gone: the cache serves
    assert load_digits(fetch=True).image_shape == (28, 28)


def test_a_mirror_with_wrong_bytes_is_skipped_and_nothing_half_is_kept(mirror, tmp_path):
    root, url = mirror
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in MNIST_FILES:
        (bad / name).write_bytes(b"not mnist")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(bad))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        bad_url = f"http://127.0.0.1:{server.server_address[1]}/"
        with pytest.raises(FetchError, match="checksum") as caught:
            fetch_mnist((bad_url, url), tmp_path / "cache")  # train files: on neither
        assert "404" in str(caught.value)
        cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
        assert cached == []  # the t10k pair is fetched only after train-*; nothing partial
    finally:
        server.shutdown()


def test_offline_the_demo_trains_on_the_digits_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("WEIGHTLAPSE_OFFLINE", "0")
    monkeypatch.setenv("WEIGHTLAPSE_MNIST_MIRROR", "http://127.0.0.1:9/")  # refused
    digits = load_digits(fetch=True)
    assert digits.image_shape == (8, 8)
    assert "MNIST could not be fetched" in digits.source and "127.0.0.1:9" in digits.source
    monkeypatch.setenv("WEIGHTLAPSE_OFFLINE", "1")
    assert "offline" in load_digits(fetch=True).source
