"""The featurizer: image reading, preprocessing, the MobileNetV2 runtimes, the worker cache, the PCA."""
