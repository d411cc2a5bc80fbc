"""Weights in and out: our format, timm, torchvision and efficientnet_pytorch checkpoints.

effnet.save_pretrained(model, "runs/b0")   # config.json + model.safetensors
model = effnet.from_pretrained("runs/b0")   # rebuilt from config.json, eval mode
model = effnet.create_model("efficientnet_b0", pretrained="timm_b0.pth")
model = effnet.create_model("tf_efficientnet_b3", pretrained="tf_b3.safetensors")
load_torchvision(model, torch.load("tv_b0.pth", weights_only=True))
model = effnet.create_model("tf_efficientnet_b0", pretrained="efficientnet-b0-355c32eb.pth")
"""

from effnet.weights.efficientnet_pytorch import map_efficientnet_pytorch
from effnet.weights.foreign import (
    Loaded,
    detect_source,
    load_efficientnet_pytorch,
    load_foreign,
    load_timm,
    load_torchvision,
    map_timm,
    map_torchvision,
)
from effnet.weights.format import from_pretrained, read_config, save_pretrained
from effnet.weights.load import convert, load_pretrained
from effnet.weights.safe import read_state_dict

__all__ = [
    "Loaded",
    "convert",
    "detect_source",
    "from_pretrained",
    "load_efficientnet_pytorch",
    "load_foreign",
    "load_pretrained",
    "load_timm",
    "load_torchvision",
    "map_efficientnet_pytorch",
    "map_timm",
    "map_torchvision",
    "read_config",
    "read_state_dict",
    "save_pretrained",
]
