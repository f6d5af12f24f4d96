"""Evaluation of a (pruned) model in memory: per-language perplexity / bits per byte, and
lm-evaluation-harness tasks (the task table and the adapter that hands lm-eval the model)."""
