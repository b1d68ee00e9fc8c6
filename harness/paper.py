"""The paper's reported numbers (Table 1, CIFAR-10), in one place.

Percentages as printed in Zhang et al. (ICLR 2017), Table 1, for the runs
with no explicit regularisation.
"""

# Random labels: training accuracy (C1) and test accuracy (C2).
RANDOM_LABELS_TRAIN_ACCURACY = {
    "inception": 100.0,
    "inception_no_bn": 100.0,
    "alexnet": 99.82,
    "mlp_3x512": 100.0,
    "mlp_1x512": 99.34,
}
RANDOM_LABELS_TEST_ACCURACY = {
    "inception": 9.78,
    "inception_no_bn": 10.12,
    "alexnet": 9.86,
    "mlp_3x512": 10.48,
    "mlp_1x512": 10.61,
}
# True labels, no weight decay, no augmentation: test accuracy.
TRUE_LABELS_TEST_ACCURACY = {
    "inception": 85.75,
    "inception_no_bn": 82.00,
    "alexnet": 76.07,
    "mlp_3x512": 52.39,
    "mlp_1x512": 50.51,
}
