"""Data for training and evaluation: Fashion-MNIST, ImageFolder trees, batch augmentation.

spec = DataSpec("fashion-mnist", minival=5000)
splits = load_splits(spec)                  # train / minival / test, uint8 images
to_input = BatchTransform(32, MEAN, STD, train=True)  # on the device, per batch
"""

from effnet.data.augment import BatchTransform
from effnet.data.fashion_mnist import CLASS_NAMES as FASHION_MNIST_CLASSES
from effnet.data.fashion_mnist import MEAN as FASHION_MNIST_MEAN
from effnet.data.fashion_mnist import STD as FASHION_MNIST_STD
from effnet.data.load import Splits, TensorImages, in_memory, make_loader, targets_of
from effnet.data.sources import load_splits
from effnet.data.spec import DataSpec
from effnet.data.split import stratified_pick, stratified_split

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "BatchTransform",
    "DataSpec",
    "Splits",
    "TensorImages",
    "in_memory",
    "load_splits",
    "make_loader",
    "stratified_pick",
    "stratified_split",
    "targets_of",
]
