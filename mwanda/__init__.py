"""mwanda: language-aware one-shot pruning of multilingual LLMs (M-Wanda reproduction).

Layers, from the bottom: ``mwanda.core`` (the pruning core), ``mwanda.evaluation``,
``mwanda.study`` (experiments, results, sweeps, analysis, plots for the notebooks) and
``mwanda.build`` (builders of the committed corpus, tasks and tiny model). See the README.
"""

from pathlib import Path

__version__ = "0.1.0"
# The checkout's root: the embedded data, results cache and figures resolve from here, never from
# the working directory.
REPO_ROOT = Path(__file__).resolve().parent.parent
