"""The ImageNet tier: the ImageFolder source and the distributed (DDP) random-label run."""
