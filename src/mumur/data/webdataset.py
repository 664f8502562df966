"""WebDataset tar shards as media input (the format img2dataset and video2dataset write).

A shard is a plain tar whose members are grouped into samples by key (the name up to the first
dot of its basename): `000123.mp4`, `000123.json`, `000123.txt` form sample `000123`. A sample's
media is its first member with an image or video extension; the other members (captions,
metadata) are left alone. A sample is named `<tar path>#<member name>`, which is the feature-store
key and the id reported for it.

Members are read in place: listing records each member's byte offset and size (one pass over
the tar headers), and decoding copies just those bytes into a temporary file with the member's
extension (PyAV and Pillow need a seekable file), so a decode worker never unpacks a shard.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError
from ..media.decode import media_type_of

__all__ = ["TarMember", "list_tar_media", "member_file"]


@dataclass(frozen=True)
class TarMember:
    """One sample's media file inside a tar shard.

    Attributes:
        tar: the shard's path.
        name: the member's name in the tar.
        offset: byte offset of the member's data in the tar.
        size: the member's size in bytes.
    """

    tar: str
    name: str
    offset: int
    size: int

    def __str__(self) -> str:
        return f"{self.tar}#{self.name}"

    @property
    def suffix(self) -> str:
        """The member's extension (lower case, with the dot)."""
        return Path(self.name).suffix.lower()


def _sample_key(name: str) -> str:
    folder, base = os.path.split(name)
    return os.path.join(folder, base.split(".", 1)[0])


def list_tar_media(tars: Sequence[str | os.PathLike]) -> list[TarMember]:
    """The media member of every sample of the given tar shards, in shard then tar order.

    Args:
        tars: tar shard paths (uncompressed tar, as img2dataset / video2dataset write).

    Returns:
        one `TarMember` per sample that has an image or video member.

    Raises:
        DatasetError: a shard that is missing or not a readable tar.
    """
    out = []
    for tar in tars:
        path = os.path.abspath(os.fspath(tar))
        seen: set[str] = set()
        try:
            with tarfile.open(path, mode="r:") as archive:
                for info in archive:
                    key = _sample_key(info.name)
                    if info.isfile() and key not in seen and media_type_of(info.name):
                        seen.add(key)
                        out.append(TarMember(path, info.name, info.offset_data, info.size))
        except (OSError, tarfile.TarError) as exc:
            raise DatasetError(f"{path}: not a readable tar shard ({exc})") from None
    return out


@contextlib.contextmanager
def member_file(member: TarMember) -> Iterator[Path]:
    """A temporary file holding the member's bytes (with its extension), removed afterwards.

    Raises:
        OSError: the shard cannot be read.
    """
    with open(member.tar, "rb") as f:
        f.seek(member.offset)
        data = f.read(member.size)
    fd, name = tempfile.mkstemp(suffix=member.suffix, prefix="mumur-wds-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield Path(name)
    finally:
        os.unlink(name)
