"""Where data files live, fetching them, and checking them.

Data root: ``--data-dir``, else $MINICNN_DATA, else ~/.cache/minicnn/data
(XDG_CACHE_HOME respected); each dataset in ``<root>/<name>/``.  Missing files
are downloaded from a dataset's mirrors in turn, atomically.  Every file,
local or downloaded, is verified by the SHA-256 of its *decompressed* content
the first time it is read; a small stamp (beside the file, or in the cache
folder where the data folder is read-only) remembers the verified size and
modification time, so later runs skip the hash.
"""
import gzip
import hashlib
import json
import os
import sys
import urllib.request
import zlib
from pathlib import Path

from ..paths import cache_root, default_data_root
from ..results.files import atomic_open


class DataError(RuntimeError):
    """The data cannot be found, fetched or read; the message says what to do."""


def data_root(data_dir=None) -> Path:
    """The data root: ``data_dir``, else $MINICNN_DATA, else the cache's data folder."""
    return Path(data_dir).expanduser() if data_dir else default_data_root()


def dataset_dir(name, data_dir=None) -> Path:
    """The folder of dataset ``name``: <root>/<name>/, or the root itself when it is that
    folder already (``--data-dir .../mnist``, a common slip).  Raises DataError where the
    root is a file."""
    root = data_root(data_dir)
    if root.exists() and not root.is_dir():
        raise DataError(f"the data root {root} is a file, not a folder; point --data-dir "
                        f"(or MINICNN_DATA) at the folder that holds {name}/")
    if root.name == name and not (root / name).is_dir():
        return root
    return root / name


def find(filename, folders):
    """An existing copy of ``filename`` (as named, or without its .gz) in the first folder
    that has one, else None."""
    for folder in folders:
        for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    return None


def decompressed(data, name):
    """``data``, gunzipped if it is gzip (detected by its magic bytes); DataError if corrupt."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: corrupt or truncated gzip data ({exc}); "
                        "delete the file so it is downloaded again") from None


def download(url, dest, expected_sha256, progress):
    """Fetch url to dest atomically, verified: the SHA-256 of the decompressed content must be
    ``expected_sha256``; the file's stamp is written, so it is not hashed again on reading."""
    with urllib.request.urlopen(url, timeout=30) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks, done = [], 0
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            done += len(chunk)
            if progress:
                pct = f"{100 * done // total:3d}%" if total else f"{done >> 10} KiB"
                print(f"\r  {dest.name}: {pct}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    data = b"".join(chunks)
    if expected_sha256 and sha256(decompressed(data, url)) != expected_sha256:
        raise DataError(f"checksum mismatch for {url}")
    with atomic_open(dest) as f:
        f.write(data)
    if expected_sha256:
        _write_stamp(dest, expected_sha256)


def fetch_missing(name, filenames, folder, mirrors, sha256s, progress):
    """Download each of ``filenames`` into ``folder`` from the first mirror that serves it;
    {filename: path}.  Stops at the first file no mirror serves (the others would fail too,
    and may each time out); raises DataError naming the files to put in place by hand."""
    paths, errors = {}, []
    for filename in filenames:
        for mirror in mirrors:
            try:
                if progress:
                    print(f"downloading {mirror}{filename}", file=sys.stderr)
                download(mirror + filename, folder / filename, sha256s.get(filename), progress)
                paths[filename] = folder / filename
                break
            except Exception as exc:      # network, HTTP, gzip or checksum: next mirror
                errors.append(f"{mirror}{filename}: {exc}")
        if filename not in paths:
            missing = [f for f in filenames if f not in paths]
            raise DataError(
                f"could not download {name} ({errors[-1] if errors else 'no mirror'}). "
                f"Put {', '.join(missing)} in {folder}/ (or point --data-dir / MINICNN_DATA "
                f"at a folder that has them in a '{name}' subfolder)")
    return paths


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def _stamp_path(path):
    """Where the stamp of a verified file lives: beside it, or in the cache if it is read-only."""
    if os.access(path.parent, os.W_OK):
        return path.with_name(path.name + ".verified")
    key = sha256(str(path.resolve()).encode())[:24]
    return cache_root() / "verified" / f"{key}.json"


def _file_state(path, expected_sha256):
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": expected_sha256}


def _write_stamp(path, expected_sha256):
    try:
        with atomic_open(_stamp_path(path), "w") as f:
            f.write(json.dumps(_file_state(path, expected_sha256)))
    except OSError:
        pass                        # no stamp: the file is hashed again next time


def read_verified(path, expected_sha256):
    """The decompressed bytes of a data file, checked against the published SHA-256 unless a
    stamp says this very file (same size and modification time) was checked before."""
    path = Path(path)
    data = decompressed(path.read_bytes(), str(path))
    if not expected_sha256:
        return data
    try:
        if json.loads(_stamp_path(path).read_text()) == _file_state(path, expected_sha256):
            return data
    except (OSError, ValueError):
        pass
    actual = sha256(data)
    if actual != expected_sha256:
        raise DataError(f"{path} is corrupt: the SHA-256 of its content is {actual[:16]}..., "
                        f"expected {expected_sha256[:16]}...; delete it so it is downloaded "
                        "again, or replace it with the original file")
    _write_stamp(path, expected_sha256)
    return data
