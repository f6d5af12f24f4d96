"""The study: experiment configs and their cached records, sweeps, analysis and plotting, as the
notebooks use them. Importing it loads no builder code (``mwanda.build``)."""
