"""The whole training step as one CUDA graph, for the paper's SGD.

At batch 128 a GPU is mostly idle: launch overhead, not arithmetic, sets the
pace (measured on an H100: Inception at 6% of peak). Capturing gather,
forward, backward and the SGD update as one graph and replaying it removes
that overhead. What it takes:

- static inputs: the batch is gathered inside the graph from the resident
  training set by an index tensor that is refilled before each replay;
- a learning rate held in a device tensor, so the schedule can change it
  without re-capture (torch.optim.SGD reads a float lr, or calls .item() on
  a tensor one, which cannot be captured), hence the update below, which is
  torch.optim.SGD's with momentum and weight decay, written with foreach ops;
- warm-up steps before capture (lazy initialisation in cuBLAS/cuDNN and
  autograd), after which parameters, buffers and momentum are restored, so
  the run is the same run as without the graph (with random crops: the
  same computation on different crops, drawn per pass instead of per batch;
  the run key names the loop, so neither reuses the other's records).

Only CUDA; used for the built-in optimizers whose entry in
harness.core.optim.BUILTIN_OPTIMIZERS sets graph_step (the SGDs). Random crops (augment) are
gathered inside the graph too: their shifts for the whole pass are drawn
before the pass from the run's generator (a draw cannot be captured), and
each replay reads its batch's slice, as it reads its rows. The remainder
batch (n not a multiple of the batch size) gets a graph of its own.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F


@torch.no_grad()
def sgd_update_(params, grads, buffers, lr: torch.Tensor, momentum: float, weight_decay: float) -> None:
    """torch.optim.SGD's step (dampening 0, no Nesterov), with lr as a tensor.

    d = g + wd * p;  b = momentum * b + d;  p = p - lr * b.  With b starting
    at zero the first step gives b = d, as torch.optim.SGD's first step does.
    """
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum:
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(buffers, grads)
        direction = buffers
    else:
        direction = grads
    torch._foreach_add_(params, torch._foreach_mul(direction, -lr))


class GraphedSGDStep:
    """Replays one captured training step per batch; see the module docstring."""

    WARMUP_STEPS = 3

    def __init__(
        self, model, images, labels, *, batch_size, lr, momentum, weight_decay, autocast_dtype=None, augment=None
    ):
        """augment: None, or harness.core.train.RandomCrop (its crop(rows, shifts) is captured, its draw is not)."""
        self.model, self.images, self.labels = model, images, labels
        self.augment = augment
        self.batch_size = batch_size
        self.momentum, self.weight_decay = momentum, weight_decay
        device = images.device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.buffers = [torch.zeros_like(p) for p in self.params]
        self.lr = torch.tensor(float(lr), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.autocast = (
            torch.autocast("cuda", dtype=autocast_dtype, cache_enabled=False) if autocast_dtype else nullcontext()
        )
        n = len(labels)
        sizes = [batch_size] + ([n % batch_size] if n % batch_size else [])
        initial = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        self.graphs = {size: self._capture(size) for size in sizes}
        with torch.no_grad():  # restore: warm-up and capture must not count as training
            for name, tensor in model.state_dict().items():
                tensor.copy_(initial[name])
            for buffer in self.buffers:
                buffer.zero_()
            self.loss_sum.zero_()

    def _step(self, rows: torch.Tensor, shifts: torch.Tensor | None) -> None:
        batch = self.images.index_select(0, rows) if self.augment is None else self.augment.crop(rows, shifts)
        with self.autocast:
            loss = F.cross_entropy(self.model(batch), self.labels.index_select(0, rows))
        loss.backward()
        sgd_update_(self.params, [p.grad for p in self.params], self.buffers, self.lr, self.momentum, self.weight_decay)
        self.loss_sum.add_(loss.detach().float() * rows.numel())

    def _capture(self, size: int):
        rows = torch.arange(size, device=self.images.device)
        shifts = None if self.augment is None else torch.zeros((2, size), dtype=torch.long, device=self.images.device)
        self.model.train()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_STEPS):
                for p in self.params:
                    p.grad = None
                self._step(rows, shifts)
        torch.cuda.current_stream().wait_stream(side)
        for p in self.params:
            p.grad = None  # the captured backward allocates the grads it writes (no accumulation)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step(rows, shifts)
        return graph, rows, shifts

    def run_pass(self, order: torch.Tensor, lr: float) -> torch.Tensor:
        """One pass over the training set in the given order; returns the summed loss (on the device)."""
        self.lr.fill_(lr)
        self.loss_sum.zero_()
        self.model.train()
        pass_shifts = None if self.augment is None else self.augment.draw(len(order))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            graph, rows, shifts = self.graphs[len(batch)]
            rows.copy_(batch)
            if shifts is not None:
                shifts.copy_(pass_shifts[:, start : start + self.batch_size])
            graph.replay()
        return self.loss_sum
