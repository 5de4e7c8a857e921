import pytest
import torch

from kit.errors import RecipeError
from kit.models import create_model, list_models


@pytest.mark.parametrize("name", ["vgg_small", "resnet_small"])
@pytest.mark.parametrize("size, chans", [(8, 1), (32, 3)])
def test_scratch_nets_run_forward_and_backward(name, size, chans):
    model = create_model(name, num_classes=7, in_chans=chans, image_size=size, widths=[8, 16])
    out = model(torch.randn(4, chans, size, size))
    assert out.shape == (4, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_arch_lists_known_names_and_timm_hint():
    with pytest.raises(RecipeError) as err:
        create_model("vgg_smal", num_classes=10, in_chans=1, image_size=8)
    message = str(err.value)
    assert "did you mean 'vgg_small'" in message
    assert all(name in message for name in list_models())
    assert "timm/" in message


def test_unknown_parameter_is_named():
    with pytest.raises(RecipeError, match="model.params.widht: 'vgg_small' takes no such parameter .*did you mean 'widths'"):
        create_model("vgg_small", num_classes=10, in_chans=1, image_size=8, widht=[8])
