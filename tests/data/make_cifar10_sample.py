"""How tests/data/cifar10_sample.npz was made: the first 20 CIFAR-10 training images of each of four
classes whose ImageNet counterparts are clear (airplane, dog, ship, truck), with their ids and labels.
Run from the repository root after `make cifar10`: python tests/data/make_cifar10_sample.py"""
import numpy as np, pandas as pd
from PIL import Image
lab = pd.read_csv("data/cifar10/trainLabels.csv")
keep = ["airplane", "dog", "ship", "truck"]
rows = []
for c in keep:
    rows += list(lab[lab.label == c].head(20).index)
rows = sorted(rows)
sub = lab.loc[rows]
images = np.stack([np.asarray(Image.open(f"data/cifar10/train/{i}.jpg").convert("RGB")) for i in sub.id])
np.savez_compressed("tests/data/cifar10_sample.npz", images=images, labels=sub.label.to_numpy().astype(str), ids=sub.id.to_numpy())
