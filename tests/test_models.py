"""The model registry: scratch nets, timm models by name, weights files, input sizes, and their errors."""

import json

import pytest
import timm
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from kit.cli import app
from kit.errors import RecipeError
from kit.models import create_model, list_models, model_description, resolve_input
from kit.recipe import ModelConfig, load_recipe
from tests.conftest import write_recipe

SCRATCH = ["airbench", "alexnet_small", "resnet9", "resnet_small", "vgg_small"]
TINY_TIMM = "test_resnet"  # timm's own 0.47M-parameter test net: fast on two CPU cores


def test_the_scratch_nets_are_registered_each_saying_where_it_comes_from():
    assert list_models() == SCRATCH
    for name in SCRATCH:
        description = model_description(name)
        assert len(description) > 30 and "\n" not in description
        assert any(ch.isdigit() for ch in description)  # a year or a paper: where it comes from


@pytest.mark.parametrize("name", SCRATCH)
def test_every_scratch_net_runs_forward_and_backward_at_8_28_32_64_px_with_1_and_3_channels(name):
    for size in (8, 28, 32, 64):
        for chans in (1, 3):
            torch.manual_seed(0)
            model = create_model(name, num_classes=7, in_chans=chans, image_size=size).train()
            out = model(torch.randn(2, chans, size, size))
            assert out.shape == (2, 7), (size, chans)
            out.sum().backward()
            trainable = [p for p in model.parameters() if p.requires_grad]
            assert trainable and all(p.grad is not None for p in trainable), (size, chans)


def test_airbench_whitens_its_stem_from_the_first_training_batch_and_keeps_it():
    model = create_model("airbench", num_classes=10, in_chans=3, image_size=32)
    stem = model.stem[0]
    assert not stem.weight.requires_grad and not bool(stem.whitened)
    x = torch.randn(64, 3, 32, 32) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    model.train()(x)
    filters = stem.weight.detach().clone()
    assert bool(stem.whitened)
    # half the filters whiten the 2x2 patches: their outputs have (close to) identity covariance
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12)
    white = patches @ filters[:12].reshape(12, -1).T
    assert torch.allclose(torch.cov(white.T), torch.eye(12), atol=0.05)
    model(torch.randn(64, 3, 32, 32))
    assert torch.equal(stem.weight, filters)  # fixed after the first batch
    copy = create_model("airbench", num_classes=10, in_chans=3, image_size=32)
    copy.load_state_dict(model.state_dict())
    copy.train()(torch.randn(8, 3, 32, 32))
    assert torch.equal(copy.stem[0].weight, filters)  # loaded weights are not re-whitened


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


def test_bad_parameter_values_are_refused():
    with pytest.raises(RecipeError, match=r"model.params: 'resnet9' cannot be built .*widths must list 4 stage widths"):
        create_model("resnet9", num_classes=10, in_chans=1, image_size=8, widths=[8, 16])


@pytest.mark.parametrize("name, fragment", [
    ("timm/resnet5o", "model.arch: timm has no model 'resnet5o' (did you mean 'resnet50'?); `kit zoo --timm"),
    ("timm/resnet18.nope_in1k", "model.arch: timm has no pretrained tag 'nope_in1k' for 'resnet18'"),
])
def test_unknown_timm_names_say_how_to_list_timm_models(name, fragment):
    with pytest.raises(RecipeError) as err:
        create_model(name, num_classes=10, in_chans=3, image_size=32)
    assert fragment in str(err.value)


def test_timm_parameters_pass_through_and_unknown_ones_are_refused():
    model = create_model(f"timm/{TINY_TIMM}", num_classes=5, in_chans=1, image_size=32, drop_rate=0.3)
    assert model.drop_rate == 0.3
    with pytest.raises(RecipeError, match=f"model.params.dropp_rate: timm/{TINY_TIMM} takes no such parameter "
                                          r"\(did you mean 'drop_rate'\?\)"):
        create_model(f"timm/{TINY_TIMM}", num_classes=5, in_chans=1, image_size=32, dropp_rate=0.3)


def test_a_tiny_timm_model_trains_one_step_at_32px_on_grayscale():
    torch.manual_seed(0)
    model = create_model(f"timm/{TINY_TIMM}", num_classes=10, in_chans=1, image_size=32).train()
    assert model.get_classifier().out_features == 10
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 32, 32)), torch.arange(4))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
    """A randomly initialised timm model saved as .pth and .safetensors, with ImageNet's 1000-class classifier."""
    torch.manual_seed(1)
    source = timm.create_model(TINY_TIMM, num_classes=1000)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    folder = tmp_path_factory.mktemp("weights")
    torch.save(state, folder / "test_resnet.pth")
    save_file(state, folder / "test_resnet.safetensors")
    torch.save(timm.create_model("test_efficientnet").state_dict(), folder / "other_arch.pth")
    return folder, state


@pytest.mark.parametrize("suffix", ["pth", "safetensors"])
@pytest.mark.parametrize("chans", [3, 1])
def test_pretrained_file_loads_the_backbone_exactly_and_rebuilds_the_classifier(weights_files, suffix, chans):
    folder, state = weights_files
    model = create_model(f"timm/{TINY_TIMM}", num_classes=7, in_chans=chans, image_size=32,
                         pretrained=str(folder / f"test_resnet.{suffix}"))
    loaded = model.state_dict()
    assert loaded["fc.weight"].shape == (7, state["fc.weight"].shape[1])
    first_conv = "conv1.0.weight"
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        if key == first_conv and chans == 1:
            # timm's in_chans adaptation: one gray channel gets the sum of the RGB filters
            assert torch.allclose(loaded[key], value.sum(1, keepdim=True))
        else:
            assert torch.equal(loaded[key], value), key
    assert set(loaded) == set(state)


def test_a_scratch_net_loads_its_own_weights_file_without_the_classifier(tmp_path):
    source = create_model("resnet_small", num_classes=10, in_chans=1, image_size=8, widths=[8, 16])
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    model = create_model("resnet_small", num_classes=3, in_chans=1, image_size=8, widths=[8, 16],
                         pretrained=str(tmp_path / "weights.pt"))
    for key, value in source.state_dict().items():
        if not key.startswith("head.fc."):
            assert torch.equal(model.state_dict()[key], value), key
    assert model.get_classifier().out_features == 3


def test_weights_of_another_architecture_name_the_mismatched_keys(weights_files, tmp_path):
    folder, _ = weights_files
    with pytest.raises(RecipeError) as err:
        create_model(f"timm/{TINY_TIMM}", num_classes=7, in_chans=3, image_size=32,
                     pretrained=str(folder / "other_arch.pth"))
    message = str(err.value)
    assert message.startswith(f"model.pretrained: {folder / 'other_arch.pth'} does not fit timm/{TINY_TIMM}: ")
    # another architecture's keys: mapped by order, refused at the first tensor whose shape differs
    assert "tensor 'conv_stem.weight' (for 'conv1.0.weight') has shape [24, 3, 3, 3] where " in message
    assert "\n" not in message
    small = create_model("vgg_small", num_classes=10, in_chans=1, image_size=8, widths=[8])
    torch.save(small.state_dict(), tmp_path / "vgg.pt")
    with pytest.raises(RecipeError, match=r"does not fit vgg_small: 10 shapes differ \(stage1.0.weight file \[8, 1, 3, 3\] "
                                          r"vs model \[16, 1, 3, 3\]"):
        create_model("vgg_small", num_classes=10, in_chans=1, image_size=8, widths=[16],
                     pretrained=str(tmp_path / "vgg.pt"))


def test_missing_or_unreadable_weights_files_are_named(tmp_path):
    with pytest.raises(RecipeError, match="model.pretrained: no such weights file 'nope.pth'"):
        create_model(f"timm/{TINY_TIMM}", num_classes=7, in_chans=3, image_size=32, pretrained="nope.pth")
    (tmp_path / "junk.pth").write_text("not weights")
    with pytest.raises(RecipeError, match="junk.pth: not a readable weights file"):
        create_model(f"timm/{TINY_TIMM}", num_classes=7, in_chans=3, image_size=32, pretrained=str(tmp_path / "junk.pth"))


def test_pretrained_true_offline_says_how_to_supply_a_file(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as on a machine without internet
    with pytest.raises(RecipeError) as err:
        create_model(f"timm/{TINY_TIMM}", num_classes=7, in_chans=1, image_size=32, pretrained=True)
    message = str(err.value)
    assert message.startswith(f"model.pretrained: could not download timm/{TINY_TIMM}'s weights")
    assert "pretrained: path/to/test_resnet.pth" in message and "\n" not in message


def test_pretrained_true_on_a_scratch_net_is_refused():
    with pytest.raises(RecipeError, match="'resnet9' is a scratch net and has no published weights"):
        create_model("resnet9", num_classes=7, in_chans=1, image_size=32, pretrained=True)


def test_an_image_size_below_the_backbones_minimum_says_the_minimum():
    with pytest.raises(RecipeError, match="image_size: 16 px is too small for timm/test_convnext: it needs at least 32 px"):
        create_model("timm/test_convnext", num_classes=7, in_chans=1, image_size=16)
    with pytest.raises(RecipeError, match="image_size: 1 px is too small for airbench: it needs at least 2 px"):
        create_model("airbench", num_classes=7, in_chans=1, image_size=1)


def test_input_size_and_normalisation_follow_the_pretrained_config(weights_files):
    folder, _ = weights_files
    pretrained = ModelConfig(arch=f"timm/{TINY_TIMM}", pretrained=str(folder / "test_resnet.pth"))
    spec = resolve_input(pretrained, None, native_size=8, in_chans=1)
    cfg = timm.models.get_pretrained_cfg(TINY_TIMM)
    assert spec.size == cfg.input_size[-1]  # 160: the pretrained input size
    assert spec.mean == [pytest.approx(sum(cfg.mean) / 3)] and spec.std == [pytest.approx(sum(cfg.std) / 3)]
    assert resolve_input(pretrained, 48, native_size=8, in_chans=3).size == 48
    assert resolve_input(pretrained, 48, native_size=8, in_chans=3).mean == list(cfg.mean)
    scratch = resolve_input(ModelConfig(arch="resnet9"), None, native_size=8, in_chans=1)
    assert (scratch.size, scratch.mean) == (8, None)  # the competition's size, the data's own statistics
    too_small = resolve_input(ModelConfig(arch="timm/test_convnext"), None, native_size=8, in_chans=1)
    assert too_small.size == 32 and "smallest size" in too_small.reason


def test_recipes_in_the_repository_load():
    from pathlib import Path

    recipes = sorted(Path(__file__).parent.parent.joinpath("recipes").rglob("*.yaml"))
    assert len(recipes) >= 6
    for path in recipes:
        if not path.name.startswith("competition"):  # competition files sit beside the recipes that use them
            assert load_recipe(path).model.arch


def test_zoo_lists_scratch_nets_and_points_to_timm():
    runner = CliRunner()
    result = runner.invoke(app, ["zoo"])
    assert result.exit_code == 0, result.output
    for name in SCRATCH:
        assert name in result.output
    assert "timm/<name>" in result.output and "kit zoo --timm" in result.output
    result = runner.invoke(app, ["zoo", "--timm", "resnet1*t"])
    assert result.exit_code == 0 and "timm/resnet10t" in result.output and "timm/resnet14t" in result.output


@pytest.mark.parametrize("changes, fragment", [
    ({"model": {"arch": "timm/resnet5o"}}, "model.arch: timm has no model 'resnet5o' (did you mean 'resnet50'?)"),
    ({"model": {"arch": "vgg_small", "pretrained": "missing.pth"}}, "model.pretrained: no such weights file 'missing.pth'"),
    ({"model": {"arch": "timm/test_convnext"}, "image_size": 16}, "image_size: 16 px is too small for timm/test_convnext: it needs at least 32 px"),
    ({"train__finetune": {"mode": "probe"}}, "train.finetune.mode: 'probe' is not one of full, linear_probe"),
])
def test_bad_model_input_is_one_red_line_with_exit_code_2(workdir, changes, fragment):
    result = CliRunner().invoke(app, ["train", str(write_recipe(workdir / "recipes", "r", **changes))])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "r.yaml: " in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (workdir / "store").exists()  # refused before anything was written


def test_a_pretrained_timm_recipe_trains_from_a_weights_file(workdir, weights_files):
    from kit.store import Store
    from kit.train import train_recipe

    folder, _ = weights_files
    path = write_recipe(workdir / "recipes", "finetuned", image_size=16,
                        model={"arch": f"timm/{TINY_TIMM}", "pretrained": str(folder / "test_resnet.safetensors")},
                        train__finetune={"mode": "freeze_then_unfreeze", "freeze_epochs": 1})
    summary = train_recipe(load_recipe(path), Store(workdir / "store"))
    assert summary.folds_trained == 2 and summary.cv["accuracy"] > 0.1
    manifest = json.loads((summary.model_dir / "model.json").read_text())
    assert manifest["image_size"] == 16


def test_a_weights_file_that_does_not_fit_fails_before_anything_is_written(workdir, weights_files):
    folder, _ = weights_files
    path = write_recipe(workdir / "recipes", "r", image_size=16,
                        model={"arch": f"timm/{TINY_TIMM}", "pretrained": str(folder / "other_arch.pth")})
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 2, result.output
    # the weights are read when training starts, before anything is written: one line naming the recipe
    (error,) = result.output.strip().splitlines()
    assert error.startswith(f"error: {path}: model.pretrained: {folder / 'other_arch.pth'} does not fit timm/test_resnet: ")
    assert "tensor 'conv_stem.weight' (for 'conv1.0.weight')" in error and "Traceback" not in result.output
    assert not (workdir / "store").exists()
