"""Builders of the committed artifacts: the embedded corpus, the proxy tasks and the tiny model.
Only ``mwanda build corpus|tasks|model`` (``make corpus|tasks|model``) runs them."""
