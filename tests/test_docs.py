"""The front page and the guides: links resolve, the README's Python example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to missing {target}"
        assert ROOT in file.parents or file == ROOT, f"{page.name}: {target} leaves the repo"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{page.name}: no heading #{anchor} in {path}"


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) < 13_000
    assert "make run" in text and "make test" in text
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in text, f"README does not link docs/{page.name}"
    assert "/opt/" not in text and "../shared" not in text


def test_no_machine_specific_paths_in_user_docs():
    for page in PAGES:
        text = page.read_text()
        assert "/opt/effnet-reference" not in text and "../shared/" not in text, page.name


def test_readme_python_example_runs_up_to_training(one_thread, tmp_path, monkeypatch):
    """Up to training, with timm's efficientnet_b0.ra_in1k repository in a hub cache the
    test builds (random weights in timm's names) standing in for the download."""
    import json

    from hubfake import write_cache
    from safetensors.torch import save

    from effnet import create_model
    from effnet.weights.foreign import timm_names

    sd = timm_names(create_model("efficientnet_b0").state_dict())
    config = {"architecture": "efficientnet_b0", "num_classes": 1000}
    write_cache(tmp_path, "timm/efficientnet_b0.ra_in1k", {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": save({k: v.contiguous() for k, v in sd.items()}),
    })  # fmt: skip
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    code = block.split("from effnet.data import")[0]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["d"] == pytest.approx(1.44) and scope["bigger"].resolution > 224
    assert scope["hub"].pretrained_cfg["tag"] == "ra_in1k"
