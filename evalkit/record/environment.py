"""Facts about the machine and the software a run used, for the run record."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from evalkit import __version__
from evalkit.media.ffmpeg import ffmpeg_exe, ffmpeg_version

PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "opencv-python-headless", "librosa", "soundfile",
            "soxr", "scikit-image")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """What identifies an input's content, whatever its form:

    - a file: its SHA-256;
    - a folder (landmarks, frame images): the SHA-256 of its files' ``name sha256`` lines, in name order;
    - a frame list (an image folder read as a video, config.dataset.write_frame_list): the SHA-256 of the list
      and of each frame it names, in order, so that a changed image changes it, not only a changed name.
    """
    path = Path(path)
    if path.is_dir():
        lines = [f"{p.name} {sha256_file(p)}" for p in sorted(path.iterdir(), key=lambda p: p.name) if p.is_file()]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    from evalkit.media.frame_list import frame_list_files, is_frame_list

    if not is_frame_list(path):
        return sha256_file(path)
    lines = [sha256_file(path)] + [f"{name} {sha256_file(path.parent / name)}" for name in frame_list_files(path)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """NVIDIA GPU names from nvidia-smi, when there is one."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_info() -> dict:
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_names(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }


def source_sha256(package: Path | None = None) -> str:
    """What identifies the evalkit code that ran: the SHA-256 of its package files' ``path sha256`` lines, in
    path order (Python sources and report templates; compiled caches left out). The version number stays the
    same between releases; this changes with any edit, so a record says which exact code made it."""
    root = Path(package or Path(__file__).resolve().parent.parent)
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix not in (".pyc", ".pyo"))
    lines = [f"{p.relative_to(root).as_posix()} {sha256_file(p)}" for p in files]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def versions() -> dict:
    found = {"evalkit": __version__, "evalkit_source_sha256": source_sha256()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    found["ffmpeg"] = ffmpeg_version()
    found["ffmpeg_path"] = ffmpeg_exe()
    return found
