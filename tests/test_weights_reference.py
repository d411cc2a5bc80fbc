"""Full-size B0-B7 against the real timm and torchvision (reference environment only).

The reference python (timm 1.0.31, torchvision 0.28) builds each model with random
weights and randomised batch-norm statistics, writes its state dict and its output on a
random 64x64 batch (tools/make_weight_fixtures.py full); ours loads the state dict by
name (``create_model(name, pretrained=FILE)``) and must reproduce the output. Runs in a
subprocess because that environment's torch is not ours. Slow (several minutes on two
shared cores): ``pytest -m reference tests/test_weights_reference.py``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from effnet import create_model
from effnet.weights.safe import read_safetensors

REFERENCE = Path(os.environ.get("EFFNET_REFERENCE_ENV", "/opt/effnet-reference"))
TOOL = Path(__file__).resolve().parent.parent / "tools" / "make_weight_fixtures.py"
RES = 64
MODELS = (
    [f"timm/efficientnet_b{i}" for i in range(8)]
    + [f"timm/tf_efficientnet_b{i}" for i in range(8)]
    + [f"torchvision/efficientnet_b{i}" for i in range(8)]
    + [f"timm/tf_efficientnetv2_{s}" for s in "sml"]
    + [f"torchvision/efficientnet_v2_{s}" for s in "sml"]
)
OURS = {f"efficientnet_v2_{s}": f"efficientnetv2_{s}" for s in "sml"}  # torchvision's names

pytestmark = [
    pytest.mark.reference,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REFERENCE / "bin" / "python").exists(), reason="no reference environment"
    ),
]


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory):
    if "reference" not in (request.config.option.markexpr or ""):
        pytest.skip("several minutes: run with -m reference")
    return tmp_path_factory.mktemp("reference")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", MODELS)
def test_full_size_outputs_match_reference(workdir, spec):
    torch.set_num_threads(2)
    source, name = spec.split("/")
    cmd = [str(REFERENCE / "bin" / "python"), str(TOOL), "full", str(workdir), str(RES), spec]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    weights = workdir / f"{source}_{name}.safetensors"
    model = create_model(OURS.get(name, name), pretrained=weights).eval()
    io, _ = read_safetensors(workdir / f"{source}_{name}.io.safetensors")
    weights.unlink()
    with torch.no_grad():
        diff = (model(io["input"]) - io["output"]).abs().max().item()
    print(f"{spec}: max abs difference {diff:.3g}", file=sys.stderr)
    assert diff < 1e-4
