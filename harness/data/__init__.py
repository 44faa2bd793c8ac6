"""Datasets and the video data path: manifests, decoding, clip sampling, augmentation, torch datasets."""
