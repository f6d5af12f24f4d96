"""mwanda: language-aware one-shot pruning of multilingual LLMs (M-Wanda reproduction)."""

__version__ = "0.1.0"
