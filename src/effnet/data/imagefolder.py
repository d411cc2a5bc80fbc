"""Users' own images: one folder per class, decoded with Pillow in DataLoader workers.

A bad file never kills a run. Files that are not images at all (empty, text, unknown
format) are dropped when the tree is scanned; files that only fail when decoded (a
truncated JPEG) are replaced by the next good sample and appended to a journal that every
worker process shares, so the run can list all of them at the end.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from effnet.errors import EffnetError
from effnet.images import check_image_size, to_mode

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_DECODE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    MemoryError,
)


def subfolders(root: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``root``; an unreadable one is an error."""
    if not root.is_dir():
        raise EffnetError(f"image folder {root} does not exist")
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise EffnetError(f"cannot read image folder {root}: {e.strerror}") from None


def class_folders(root: Path) -> list[str]:
    """Sorted class names: the sub-folders of ``root`` (hidden ones ignored); at least two."""
    names = subfolders(root)
    if not names:
        raise EffnetError(f"image folder {root} has no class sub-folders")
    if len(names) < 2:
        raise EffnetError(
            f"image folder {root} has one class ({names[0]}): a classifier needs at least two"
        )
    return names


def _readable(path: Path) -> bool:
    """Cheap scan-time check: the header names a known image format of a sane size."""
    try:
        with Image.open(path) as img:
            check_image_size(img.size, path)
        return True
    except (*_DECODE_ERRORS, EffnetError):
        return False


def _raise(e: OSError) -> None:
    raise EffnetError(f"cannot read image folder {e.filename}: {e.strerror}")


def _files(folder: Path, root: Path) -> list[Path]:
    """Image files under the class folder ``folder`` of ``root``, following links to folders
    elsewhere (data kept on another disk) but never into a loop, twice, or back into the tree.

    A link to a folder already walked (a loop, or two links to one folder) is skipped, so
    each real folder counts once; so is a link into ``root`` outside ``folder`` (another
    class, or the root itself), whose images would get this class's label.
    """
    real_root, real_class = root.resolve(), folder.resolve()
    seen: set[tuple[int, int]] = set()
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=_raise):
        st, real = os.stat(dirpath), Path(dirpath).resolve()
        inside_other = real.is_relative_to(real_root) and not real.is_relative_to(real_class)
        if (st.st_dev, st.st_ino) in seen or inside_other:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for file in sorted(filenames):
            path = Path(dirpath) / file
            if not file.startswith(".") and path.suffix.lower() in EXTENSIONS:
                out.append(path)
    return out


def scan(root: Path, classes: list[str]) -> tuple[list[tuple[str, int]], list[str]]:
    """(samples as (path, class index), unreadable files) for the class folders of ``root``.

    A file reached twice (links) is counted once, under the first class that reaches it.
    """
    index = {name: i for i, name in enumerate(classes)}
    samples, bad = [], []
    files_seen: set[tuple[int, int]] = set()
    for name in subfolders(root):
        if name not in index:
            raise EffnetError(f"class folder {root / name} is not among the training classes")
        for path in _files(root / name, root):
            try:
                st = path.stat()
            except OSError:  # a dangling link
                bad.append(str(path))
                continue
            if (st.st_dev, st.st_ino) in files_seen:
                continue
            files_seen.add((st.st_dev, st.st_ino))
            if _readable(path):
                samples.append((str(path), index[name]))
            else:
                bad.append(str(path))
    return samples, bad


def decode(path: str, size: int) -> torch.Tensor:
    """RGB uint8 [3, size, size]: shorter side resized to ``size``, then centre-cropped."""
    with Image.open(path) as img:
        check_image_size(img.size, path)
        img.draft("RGB", (size, size))
        img = to_mode(img, "RGB")  # EXIF orientation, bit depth, alpha: as every reader
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
        array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class ImageFolder(Dataset):
    """Samples of a class-per-folder tree as (uint8 [3, size, size], label)."""

    def __init__(
        self, root: str | Path, size: int, classes: list[str] | None = None,
        every_class: bool = False, allow_empty: bool = False,
    ) -> None:  # fmt: skip
        """``every_class``: this folder defines the classes (``train/``), so a class folder
        without a readable image is an error naming it, as torchvision's ImageFolder
        refuses, unless ``allow_empty`` (then a warning on stderr)."""
        self.root = Path(root)
        self.size = size
        self.classes = classes if classes is not None else class_folders(self.root)
        self.samples, self.scan_bad = scan(self.root, self.classes)
        if not self.samples:
            raise EffnetError(f"image folder {self.root} holds no readable images")
        if every_class:
            seen = {label for _, label in self.samples}
            empty = [c for i, c in enumerate(self.classes) if i not in seen]
            if empty and not allow_empty:
                raise EffnetError(
                    f"class folder {self.root / empty[0]} holds no readable image"
                    + (f" (nor do {len(empty) - 1} more)" if len(empty) > 1 else "")
                    + ": remove it, add images, or pass --allow-empty-classes to keep it as a class"
                )
            if empty:
                print(f"effnet: warning: {len(empty)} empty class folder(s) kept as classes: "
                      f"{', '.join(empty)}", file=sys.stderr)  # fmt: skip
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)
        fd, journal = tempfile.mkstemp(prefix="effnet-bad-files-", suffix=".txt")
        os.close(fd)
        self.journal = journal
        self._owner_pid = os.getpid()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self.samples) <= index < len(self.samples):
            raise IndexError(f"image {index} of {len(self.samples)}")
        for attempt in range(len(self.samples)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                return decode(path, self.size), label
            except (*_DECODE_ERRORS, EffnetError):
                self._record(path)
        raise EffnetError(f"no image in {self.root} can be decoded")

    def _record(self, path: str) -> None:
        """Append one line; O_APPEND keeps lines whole across worker processes."""
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (path + "\n").encode())
        finally:
            os.close(fd)

    @property
    def bad_files(self) -> list[str]:
        """Every file skipped so far: unreadable at scan time or failing to decode."""
        try:
            decoded_bad = Path(self.journal).read_text().splitlines()
        except OSError:
            decoded_bad = []
        return sorted(set(self.scan_bad) | set(decoded_bad))

    def __del__(self) -> None:
        if getattr(self, "_owner_pid", None) != os.getpid():
            return
        try:
            os.unlink(self.journal)
        except (OSError, TypeError):
            pass
