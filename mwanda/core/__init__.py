"""The pruning core: configuration, calibration, statistics, scores, allocation and the one
sequential driver. Needs torch and transformers only; reads no corpus and runs no evaluation."""
