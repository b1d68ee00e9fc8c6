"""The graphed SGD step: its update equals torch.optim.SGD's; on a GPU the run equals the eager one."""

import pytest
import torch

from harness.core.config import RunConfig
from harness.core.graph_step import sgd_update_

# The graph loop exists only on CUDA; its CPU-checkable parts (the SGD update, the crop) run without one.
CUDA_ONLY = pytest.mark.gpu(reason="the CUDA-graph loop needs a CUDA device (the nightly GPU job runs these)")


@pytest.mark.parametrize("momentum, weight_decay", [(0.9, 0.0), (0.9, 5e-4), (0.0, 0.0), (0.0, 1e-3)])
def test_update_matches_torch_sgd_over_several_steps(momentum, weight_decay):
    """The graph cannot use torch.optim.SGD (its float lr is baked in at capture), so its own update must agree."""
    torch.manual_seed(0)
    reference = [torch.randn(5, 3), torch.randn(7)]
    ours = [p.clone() for p in reference]
    reference = [p.clone().requires_grad_() for p in reference]
    optimizer = torch.optim.SGD(reference, lr=0.05, momentum=momentum, weight_decay=weight_decay)
    buffers = [torch.zeros_like(p) for p in ours]
    for _ in range(4):
        grads = [torch.randn_like(p) for p in ours]
        for p, g in zip(reference, grads):
            p.grad = g.clone()
        optimizer.step()
        sgd_update_(ours, grads, buffers, torch.tensor(0.05), momentum, weight_decay)
        for mine, theirs in zip(ours, reference):
            torch.testing.assert_close(mine, theirs.detach(), rtol=1e-6, atol=1e-7)


def test_graph_loop_is_chosen_only_where_it_applies():
    assert RunConfig(device="cuda").uses_graph
    assert not RunConfig(device="cpu").uses_graph
    assert not RunConfig(device="cuda", optimizer="adam").uses_graph
    assert RunConfig(device="cuda", augment="crop").uses_graph  # the crop is gathered inside the graph
    assert not RunConfig(device="cuda", loop="eager").uses_graph
    with pytest.raises(ValueError, match="loop 'graph' needs"):
        _ = RunConfig(device="cpu", loop="graph").uses_graph


def test_a_crop_is_the_padded_image_cut_at_its_shifts():
    """RandomCrop.crop, the part a CUDA graph captures, against slicing by hand."""
    from harness.core.train import RandomCrop

    images = torch.randn(6, 3, 28, 28)
    crop = RandomCrop(images, torch.Generator().manual_seed(0))
    rows = torch.tensor([4, 0, 5])
    shifts = torch.tensor([[0, 4, 2], [3, 1, 4]])
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    expected = torch.stack([padded[r, :, t : t + 28, l : l + 28] for r, t, l in zip(rows, shifts[0], shifts[1])])
    assert torch.equal(crop.crop(rows, shifts), expected)
    drawn = crop.draw(1000)
    assert drawn.shape == (2, 1000) and drawn.min() == 0 and drawn.max() == 4


@CUDA_ONLY
def test_a_graphed_pass_with_crops_equals_eager_steps_on_the_same_crops(tiny_npz):
    """The graph gathers each batch's crops at the shifts drawn for the pass; eager SGD on those crops agrees."""
    from harness.core.graph_step import GraphedSGDStep
    from harness.core.models import build_model
    from harness.core.prepare import load_raw_cached, prepare
    from harness.core.train import RandomCrop

    config = RunConfig(data=f"npz:{tiny_npz}", model="mlp_1x512", device="cuda", n_train=250, augment="crop")
    data = prepare(config, load_raw_cached(config.data), torch.device("cuda"))
    torch.manual_seed(0)
    graphed_model = build_model("mlp_1x512", in_channels=data.in_channels, num_classes=data.num_classes).cuda()
    eager_model = build_model("mlp_1x512", in_channels=data.in_channels, num_classes=data.num_classes).cuda()
    eager_model.load_state_dict(graphed_model.state_dict())
    graph_crop = RandomCrop(data.train_x, torch.Generator(device="cuda").manual_seed(1))
    eager_crop = RandomCrop(data.train_x, torch.Generator(device="cuda").manual_seed(1))
    step = GraphedSGDStep(
        graphed_model,
        data.train_x,
        data.train_y,
        batch_size=64,
        lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        augment=graph_crop,
    )
    order = torch.randperm(len(data.train_y), device="cuda")
    step.run_pass(order, 0.01)

    optimizer = torch.optim.SGD(eager_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    shifts = eager_crop.draw(len(order))  # what run_pass drew: same generator, same seed
    eager_model.train()
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        loss = torch.nn.functional.cross_entropy(
            eager_model(eager_crop.crop(rows, shifts[:, start : start + 64])), data.train_y[rows]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Four steps. The forward and backward kernels are the same in both; the updates differ
    # in rounding only (foreach update against torch.optim.SGD: a few float32 ulps, 1e-7
    # relative, per step), and cuBLAS may pick another algorithm under capture (gradients
    # then differ by about 1e-6 relative). 1e-4 relative (1e-5 absolute, for weights near
    # zero) is ten times the sum of both over four steps; a misaligned crop or shift slice
    # changes the gradients themselves, by far more.
    for graphed, eager in zip(graphed_model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-5)


@CUDA_ONLY
@pytest.mark.parametrize("model_name", ["mlp_1x512", "inception"])
def test_graphed_run_equals_the_eager_run(tiny_npz, model_name):
    """Same seed, same data order: the graphed and eager loops give the same losses (fp32, to rounding).

    The MLP is compared over three passes. Inception only over its first:
    its cuDNN kernels are not deterministic, and BatchNorm training amplifies
    their last-bit differences, so two eager runs of it differ by up to 0.6%
    in the loss of pass 3 (measured on an H100; graph against eager: the
    same size), while the first pass agrees to about 1e-7.
    """
    from harness.core.train import fit

    base = dict(data=f"npz:{tiny_npz}", model=model_name, device="cuda", max_passes=3, variant="random", n_train=250)
    eager = fit(RunConfig(loop="eager", **base))
    graph = fit(RunConfig(loop="graph", **base))
    assert graph["loop"] == "graph" and eager["loop"] == "eager"
    compared = 3 if model_name == "mlp_1x512" else 1
    torch.testing.assert_close(
        torch.tensor(graph["curves"]["loss"][:compared]),
        torch.tensor(eager["curves"]["loss"][:compared]),
        rtol=2e-3 if compared > 1 else 1e-5,
        atol=1e-4 if compared > 1 else 1e-6,
    )


# Runs in its own process: deterministic=True needs CUBLAS_WORKSPACE_CONFIG before CUDA starts,
# and setting it for the whole session changes the cuBLAS algorithms the other GPU tests were
# measured with (the Inception graph/eager loss gap grows from under 0.2% to 0.27%).
RESUME_CHECK = """
import json, sys
from harness.core.checkpoint import RunCheckpoint
from harness.core.config import RunConfig
from harness.core.train import fit

data, loop, folder = sys.argv[1:]
config = RunConfig(data=f"npz:{data}", model="mlp_1x512", device="cuda", loop=loop, max_passes=6,
                   variant="random", n_train=250, test_every=2, deterministic=True)
uninterrupted, again = fit(config), fit(config)

def stop_at_pass_3(state):
    if state["pass"] == 3:
        raise KeyboardInterrupt

checkpoint = RunCheckpoint(f"{folder}/run.pt", "run-key")
stopped = fit(config, checkpoint=checkpoint, progress=stop_at_pass_3)
resumed = fit(config, checkpoint=checkpoint)
print(json.dumps({"uninterrupted": uninterrupted, "again": again, "stopped": stopped, "resumed": resumed}))
"""


@CUDA_ONLY
@pytest.mark.parametrize("loop", ["graph", "eager"])
def test_a_gpu_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(tiny_npz, tmp_path, loop):
    """On CUDA: the graph loop's momentum buffers, the generators and the weights come back from the checkpoint.

    deterministic=True, so that any difference is the resume's, not the kernels'.
    """
    import json
    import os
    import subprocess
    import sys

    environment = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    done = subprocess.run(
        [sys.executable, "-c", RESUME_CHECK, str(tiny_npz), loop, str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    uninterrupted, resumed = runs["uninterrupted"], runs["resumed"]
    assert runs["again"]["model_sha256"] == uninterrupted["model_sha256"], "deterministic=True runs differ"
    assert runs["stopped"]["outcome"] == "interrupted"
    assert resumed["resumed_from_pass"] == 2 and resumed["loop"] == loop
    for curve in ("loss", "train_accuracy", "test_accuracy", "lr"):
        assert resumed["curves"][curve] == uninterrupted["curves"][curve], curve
    assert resumed["model_sha256"] == uninterrupted["model_sha256"]
