"""A SyncTalk_2D dataset folder as an input: frames, landmarks and speech found by their conventional names.

    DIR/full_body_img/0.jpg ... N-1.jpg   the frames (template video and ground truth), numbered from 0
    DIR/landmarks/0.lms ... N-1.lms       one file per frame, one 'x y' line per landmark point
    DIR/aud.wav                           the speech the frames were recorded with

The frames become a "video" without re-encoding them: a concat list (ffmpeg's
``ffconcat`` format) names the images in natural numeric order (0, 1, 2, ...,
10, never 0, 1, 10, 100, 2), each shown for 1/fps seconds. Every stage that
reads video through ffmpeg (``probe_video``, ``FrameReader``, the ground-truth
reader, the report) reads that list as it reads a video file, decoding one
image at a time, so the pipeline keeps streaming and nothing else changes.
The list lives in a cache folder beside a link to ``full_body_img`` (ffmpeg's
concat demuxer, in its default safe mode, only accepts relative plain names),
so the user's dataset folder is never written to (``media.frame_list``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import UserError
from evalkit.media.frame_list import (CACHE_ENV, FRAME_LIST_HEADER, frame_list_files,  # noqa: F401 (re-exported)
                                      frame_list_folder, is_frame_list, natural_key, write_frame_list)

FRAMES_DIR = "full_body_img"
LANDMARKS_DIR = "landmarks"
AUDIO_FILE = "aud.wav"
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
# SyncTalk_2D's preprocessing converts every video to 25 fps before it extracts the frames; an image
# folder carries no rate of its own, so its frames are read at this one.
DATASET_FPS = 25.0


@dataclass(frozen=True)
class DatasetFolder:
    """A checked dataset folder: its frame images in order, its landmark folder and its speech (if present)."""

    root: Path
    frames: tuple[Path, ...]
    landmarks: Path
    audio: Path | None

    def frame_list(self, fps: float = DATASET_FPS) -> Path:
        """The frames as a video ffmpeg reads: a concat list in a cache folder (written once, reused)."""
        return write_frame_list(self.root / FRAMES_DIR, self.frames, fps)


def check_dataset(root: Path) -> DatasetFolder:
    """Check ``root`` against the SyncTalk_2D layout; a UserError names the first thing missing and how to fix it."""
    root = Path(root)
    where = f"dataset {root}"
    if not root.is_dir():
        raise UserError(f"{where}: folder not found (expected a SyncTalk_2D dataset folder with {FRAMES_DIR}/, "
                        f"{LANDMARKS_DIR}/ and {AUDIO_FILE})")
    frames_dir, landmarks_dir = root / FRAMES_DIR, root / LANDMARKS_DIR
    if not frames_dir.is_dir():
        raise UserError(f"{where}: no {FRAMES_DIR}/ folder (expected {FRAMES_DIR}/0.jpg ... one image per frame)")
    images = [p for p in frames_dir.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
    if not images:
        raise UserError(f"{where}: {FRAMES_DIR}/ holds no images (expected {FRAMES_DIR}/0.jpg ... one per frame)")
    odd = sorted((p.name for p in images if not p.stem.isdigit()), key=natural_key)
    if odd:
        raise UserError(f"{where}: {FRAMES_DIR}/{odd[0]} is not named by its frame number (expected 0.jpg, 1.jpg, "
                        f"...; {len(odd)} such files): rename or move them")
    suffixes = sorted({p.suffix for p in images})
    if len(suffixes) > 1:
        raise UserError(f"{where}: {FRAMES_DIR}/ mixes image types {suffixes}; keep one (SyncTalk_2D writes .jpg)")
    by_number = {int(p.stem): p for p in images}
    if len(by_number) != len(images):
        raise UserError(f"{where}: {FRAMES_DIR}/ has two images with the same frame number (e.g. 1.jpg and "
                        "01.jpg); keep one per frame")
    n = len(by_number)
    missing = next((i for i in range(n) if i not in by_number), None)
    if missing is not None:
        raise UserError(f"{where}: {FRAMES_DIR}/{missing}{suffixes[0]} is missing (frames must be numbered 0 ... "
                        f"{n - 1} without gaps; the highest is {max(by_number)})")
    if not landmarks_dir.is_dir():
        raise UserError(f"{where}: no {LANDMARKS_DIR}/ folder (expected {LANDMARKS_DIR}/0.lms ... one per frame)")
    lms = next((i for i in range(n) if not (landmarks_dir / f"{i}.lms").is_file()), None)
    if lms is not None:
        raise UserError(f"{where}: {LANDMARKS_DIR}/{lms}.lms is missing (expected {LANDMARKS_DIR}/0.lms ... "
                        f"{n - 1}.lms, one per frame of {FRAMES_DIR}/)")
    frames = tuple(by_number[i] for i in range(n))
    check_frame_sizes(frames, f"{where}: {FRAMES_DIR}/")
    audio = root / AUDIO_FILE
    return DatasetFolder(root=root, frames=frames, landmarks=landmarks_dir,
                         audio=audio if audio.is_file() else None)


def image_folder_video(folder: Path, fps: float = DATASET_FPS) -> Path:
    """A folder of frame images (any names; natural numeric order) as a video ffmpeg reads: a concat list."""
    folder = Path(folder)
    images = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES),
                    key=natural_key)
    if not images:
        raise UserError(f"{folder}: a folder given as a video must hold frame images "
                        f"({', '.join(FRAME_SUFFIXES)}), read in numeric order; it holds none")
    check_frame_sizes(tuple(images), f"{folder}/")
    return write_frame_list(folder, tuple(images), fps)


def check_frame_sizes(images: tuple[Path, ...], where: str) -> tuple[int, int]:
    """Every image of a frame folder is the first one's size (read from the headers, not decoded); returns it.

    Read as a video, a frame of another size would be rescaled to the first one's without a word (ffmpeg's
    concat demuxer scales to the first frame's size), so a stray 320x240 frame among 640x480 ones is refused,
    naming the file and both sizes."""
    from PIL import Image, UnidentifiedImageError

    first = None
    for path in images:
        try:
            with Image.open(path) as image:
                size = image.size
        except (UnidentifiedImageError, OSError, ValueError):
            raise UserError(f"{where}{path.name}: not a readable image (expected a {path.suffix} frame); replace "
                            "or remove it") from None
        if first is None:
            first = size
        elif size != first:
            raise UserError(f"{where}{path.name} is {size[0]}x{size[1]}, {images[0].name} is {first[0]}x{first[1]}: "
                            "every frame of the folder must be the same size (resize or replace that frame)")
    return first
