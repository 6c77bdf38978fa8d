"""What identifies an input's content in the record (and what `evalkit run --resume` compares): files, folders
(landmarks, frame images) and the frame lists an image folder is read through."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from evalkit.config.dataset import image_folder_video
from evalkit.errors import UserError
from evalkit.record.environment import content_sha256
from evalkit.run import check_unchanged


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_is_its_sha256(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF-not-really")
    assert content_sha256(path) == sha(b"RIFF-not-really")


def test_a_folder_is_its_files_names_and_hashes_in_name_order(tmp_path):
    folder = tmp_path / "landmarks"
    folder.mkdir()
    (folder / "1.lms").write_text("1 2\n")
    (folder / "0.lms").write_text("3 4\n")
    (folder / "sub").mkdir()  # folders inside are not part of it
    first, second = sha(b"3 4\n"), sha(b"1 2\n")
    expected = sha(f"0.lms {first}\n1.lms {second}".encode())
    assert content_sha256(folder) == expected
    (folder / "1.lms").write_text("1 3\n")  # one coordinate moved
    assert content_sha256(folder) != expected


def test_a_frame_list_changes_with_its_images_content(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2
    import numpy as np

    for i in range(3):  # real pictures: the folder's frames are read (their sizes) as a video's
        cv2.imwrite(str(frames / f"{i}.jpg"), np.full((8, 8, 3), 40 * i, np.uint8))
    listing = image_folder_video(frames)
    before = content_sha256(listing)
    assert before != sha(listing.read_bytes())  # not the list's own text alone
    cv2.imwrite(str(frames / "1.jpg"), np.full((8, 8, 3), 200, np.uint8))  # same names: the list's text is unchanged
    assert image_folder_video(frames) == listing and content_sha256(listing) != before


def test_resume_refuses_changed_landmarks(tmp_path):
    def head(digest: str) -> dict:
        return {"models": {}, "inputs": {"th": {"landmarks": {"path": "/data/lms", "sha256": digest},
                                               "video_frames": 10}}}

    state = {"run_id": "r1", **head("a" * 64)}
    check_unchanged(tmp_path, state, head("a" * 64))  # the same folder: nothing to say
    with pytest.raises(UserError, match=r"input 'th': landmarks /data/lms changed since run r1 started"):
        check_unchanged(tmp_path, state, head("b" * 64))
    old = {"run_id": "r1", "models": {}, "inputs": {"th": {"landmarks": "/data/lms"}}}  # a path alone: older runs
    with pytest.raises(UserError, match="changed since"):
        check_unchanged(tmp_path, old, head("a" * 64))


def test_source_sha256_names_the_code_that_ran(tmp_path):
    """Hand-computed on a two-file package; compiled caches do not count, an edit or a new file does."""
    import hashlib

    from evalkit.record.environment import source_sha256

    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "t.j2").write_text("{{ x }}")
    digest = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in (("a", "x = 1\n"), ("t", "{{ x }}"))}
    expected = hashlib.sha256(f"a.py {digest['a']}\nsub/t.j2 {digest['t']}".encode()).hexdigest()
    assert source_sha256(package) == expected
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"compiled")
    (package / "sub" / "b.pyc").write_bytes(b"compiled")
    assert source_sha256(package) == expected
    (package / "a.py").write_text("x = 2\n")
    assert source_sha256(package) != expected
