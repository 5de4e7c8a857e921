"""Small CNNs trained from scratch, sized for 8-64 px inputs with any number of channels.

Importing this package registers them: vgg_small, alexnet_small, resnet_small, resnet9, airbench.
Every net downsamples only while its feature map is at least 2 px wide and ends in a pooled
head, so one definition serves every image size from 8 px up.
"""

from . import airbench, resnet, vgg  # noqa: F401  (each module registers its nets)
