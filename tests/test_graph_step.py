"""The graphed SGD step: its update equals torch.optim.SGD's; on a GPU the run equals the eager one."""

import pytest
import torch

from harness.config import RunConfig
from harness.graph_step import sgd_update_


@pytest.mark.parametrize("momentum, weight_decay", [(0.9, 0.0), (0.9, 5e-4), (0.0, 0.0), (0.0, 1e-3)])
def test_update_matches_torch_sgd_over_several_steps(momentum, weight_decay):
    """The graph cannot use torch.optim.SGD (its float lr is baked in at capture), so its own update must agree."""
    torch.manual_seed(0)
    reference = [torch.randn(5, 3), torch.randn(7)]
    ours = [p.clone() for p in reference]
    reference = [p.clone().requires_grad_() for p in reference]
    optimizer = torch.optim.SGD(reference, lr=0.05, momentum=momentum, weight_decay=weight_decay)
    buffers = [torch.zeros_like(p) for p in ours]
    for step in range(4):
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
    assert not RunConfig(device="cuda", augment="crop").uses_graph
    assert not RunConfig(device="cuda", loop="eager").uses_graph
    with pytest.raises(ValueError, match="loop 'graph' needs"):
        RunConfig(device="cpu", loop="graph").uses_graph


@pytest.mark.gpu
@pytest.mark.parametrize("model_name", ["mlp_1x512", "inception"])
def test_graphed_run_equals_the_eager_run(tiny_npz, model_name):
    """Same seed, same data order: the graphed and eager loops give the same losses (fp32, to rounding)."""
    from harness.train import fit

    base = dict(data=f"npz:{tiny_npz}", model=model_name, device="cuda", max_passes=3, variant="random", n_train=250)
    eager = fit(RunConfig(loop="eager", **base))
    graph = fit(RunConfig(loop="graph", **base))
    assert graph["loop"] == "graph" and eager["loop"] == "eager"
    torch.testing.assert_close(
        torch.tensor(graph["curves"]["loss"]), torch.tensor(eager["curves"]["loss"]), rtol=2e-3, atol=1e-4
    )
