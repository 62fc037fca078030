"""Content-addressed artifact store on the filesystem: a file's name is the sha256 of its bytes.

Layout: ``<root>/sha256/<first two hex digits>/<sha256>``. Writes go to a temporary file in the same
directory and are renamed into place, so a reader never sees a partial artifact and concurrent writers of
the same bytes are harmless. Reads verify the hash, so a file altered on disk is refused, not served.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from services.governance.domain.errors import ArtifactDamaged, UnknownArtifact

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactNotFound(UnknownArtifact, FileNotFoundError):
    """No artifact is stored under that sha256."""


class ArtifactCorrupt(ArtifactDamaged, ValueError):
    """The stored bytes no longer hash to their name."""


class _NotADigest(ArtifactNotFound, ValueError):
    """The name asked for is not a sha256 hex digest."""


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Immutable blobs addressed by their sha256 under one root directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Uses (and creates on first write) ``root``."""
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the artifact with this hash lives (whether or not it exists).

        Raises:
            ArtifactNotFound: If ``sha256`` is not 64 lower-case hex digits (guards against path tricks; such a
                name is never stored). It is a ValueError too.
        """
        if not _SHA256.match(sha256):
            raise _NotADigest(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        """Whether the artifact is stored."""
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Stores ``data`` (idempotent) and returns its sha256."""
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{digest[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        """The artifact's bytes, verified against its name.

        Raises:
            ArtifactNotFound: If nothing is stored under ``sha256``.
            ArtifactCorrupt: If the stored bytes hash to something else.
        """
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {sha256} in {self.root}") from None
        actual = sha256_hex(data)
        if actual != sha256:
            raise ArtifactCorrupt(f"artifact {sha256} in {self.root} is corrupt: its bytes hash to {actual}")
        return data
