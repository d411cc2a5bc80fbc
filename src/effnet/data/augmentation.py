"""The train augmentation as data: the crops a recipe can declare, and the one line that
names an augmentation in run folders and reports. No torch here (recipes are plain data);
``effnet.data.augment`` applies it."""

from __future__ import annotations

CROPS = ("resized", "pad", "none", "auto")  # "auto": runs made before 2026-12-08 only


def describe_augmentation(
    crop: str,
    scale: tuple[float, float],
    ratio: tuple[float, ...],
    padding: float,
    hflip: bool,
    randaugment: tuple[int, float] | None,
    erasing: float,
) -> str:
    """One line naming every train augmentation and its values."""
    crops = {
        "resized": f"random-resized crop, scale ({scale[0]:g}, {scale[1]:g}), ratio "
        f"({ratio[0]:.3g}, {ratio[1]:.3g}), in source px",
        "pad": f"pad-and-crop {padding:g} of the side" if padding > 0 else "no crop",
        "none": "no crop",
        "auto": "the rule before 2026-12-08 (resized crop only below the source size)",
    }
    ra = f"RandAugment {randaugment[0]} ops, magnitude {randaugment[1]:g}" if randaugment else None
    parts = [crops[crop], "flip" if hflip else "no flip", ra or "no RandAugment",
             f"random erasing p {erasing:g}" if erasing > 0 else "no erasing"]  # fmt: skip
    return "; ".join(parts) + "; antialiased resize (train and eval alike)"
