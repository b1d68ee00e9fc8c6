"""An optimizer factory whose own default learning rate diverges: the case tuning must bracket well."""

import torch


def momentum_sgd(params, lr=1.0, momentum=0.9, weight_decay=0.0):
    """SGD with momentum 0.9 and a default lr of 1.0, which diverges on the tuning scale's MLP 1x512."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
