"""Frame lists: a folder of frame images read as a video, without re-encoding them.

A frame list is a concat list in ffmpeg's ``ffconcat`` format that names the images in natural numeric order
(0, 1, 2, ..., 10, never 0, 1, 10, 100, 2), each shown for 1/fps seconds; every stage that reads video through
ffmpeg reads it as it reads a video file, one image at a time. The list lives in a cache folder
(``$EVALKIT_CACHE``, else ``<system temp>/evalkit-datasets``) beside a link to the image folder (ffmpeg's concat
demuxer, in its default safe mode, only accepts relative plain names), so the user's folder is never written to.
``config.dataset`` makes them for SyncTalk_2D dataset folders and for folders given as a video.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from evalkit.errors import UserError
from evalkit.files import write_text_atomic

CACHE_ENV = "EVALKIT_CACHE"  # where frame lists go (default: <system temp>/evalkit-datasets)
_LIST_NAME = "frames.ffconcat"
FRAME_LIST_HEADER = b"ffconcat version 1.0"  # a frame list's first line
_LINK_NAME = "frames"


def natural_key(path: Path | str) -> tuple:
    """Sort key that orders numbers by value: '2.jpg' < '10.jpg' < '100.jpg' (and 'a2' < 'a10')."""
    name = Path(path).name
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def _cache_root() -> Path:
    chosen = os.environ.get(CACHE_ENV)
    return Path(chosen) if chosen else Path(tempfile.gettempdir()) / "evalkit-datasets"


def is_frame_list(path: Path | None) -> bool:
    """A file ``write_frame_list`` wrote (an ffconcat list): how a folder of frame images is read as a video."""
    if path is None or not Path(path).is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(FRAME_LIST_HEADER)) == FRAME_LIST_HEADER


def frame_list_files(listing: Path) -> list[str]:
    """The frames a frame list (``write_frame_list``) names, as paths relative to the list's folder, in order."""
    return [line[5:].strip() for line in Path(listing).read_text().splitlines() if line.startswith("file ")]


def frame_list_folder(listing: Path) -> Path:
    """The image folder a frame list (``write_frame_list``) reads its frames from: the user's folder, where the
    list itself lives in evalkit's cache. Where the list's folder holds the frames themselves (a copy of it:
    shipped to a Ray worker), that folder."""
    link = Path(listing).parent / _LINK_NAME
    return Path(os.readlink(link)) if link.is_symlink() else link


def write_frame_list(frames_dir: Path, frames: tuple[Path, ...], fps: float) -> Path:
    """An ffconcat list of ``frames`` (all inside ``frames_dir``), each shown 1/fps s; the same folder and
    frames always give the same path, so a suite loaded twice names the same list."""
    frames_dir = Path(frames_dir).resolve()
    lines = [FRAME_LIST_HEADER.decode()]
    duration = repr(1.0 / fps)
    for path in frames:
        lines += [f"file {_LINK_NAME}/{path.name}", f"duration {duration}"]
    text = "\n".join(lines) + "\n"
    key = hashlib.sha256(f"{frames_dir}\n{text}".encode()).hexdigest()[:20]
    folder = _cache_root() / key
    folder.mkdir(parents=True, exist_ok=True)
    link, listing = folder / _LINK_NAME, folder / _LIST_NAME
    if not (link.is_symlink() and Path(os.readlink(link)) == frames_dir):
        tmp_link = folder / f".{_LINK_NAME}.{os.getpid()}"
        if tmp_link.is_symlink():
            tmp_link.unlink()
        try:
            os.symlink(frames_dir, tmp_link, target_is_directory=True)
        except OSError as exc:
            raise UserError(f"cannot link {frames_dir} into {folder} ({exc.strerror}); set {CACHE_ENV} to a "
                            "folder on a file system that allows symbolic links") from None
        os.replace(tmp_link, link)
    if not listing.is_file() or listing.read_text() != text:
        write_text_atomic(listing, text)
    return listing
