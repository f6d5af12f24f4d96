"""Model resolution: local directories vs Hub ids, whatever the working directory."""

from __future__ import annotations

import re

import pytest

from mwanda.core.models import REPO_ROOT, ModelLoadError, hub_revision, resolve_model


def test_local_directories_resolve_from_any_working_directory(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("mine") == tmp_path / "mine"
    assert resolve_model("./mine") == tmp_path / "mine"
    assert resolve_model("data/models/tiny-ml-llama") == REPO_ROOT / "data/models/tiny-ml-llama"
    monkeypatch.chdir("/")
    assert resolve_model(tmp_path / "mine") == tmp_path / "mine"


@pytest.mark.parametrize("name", ["./typo", "data/models/tiny-ml-lama", "a/b/c", "~/nope-model-dir"])
def test_missing_local_paths_never_go_to_the_hub(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(name)


@pytest.mark.parametrize(
    "error, message",
    [
        ("GatedRepoError", "org/tiny is gated: run `huggingface-cli login` and accept its licence"),
        ("RevisionNotFoundError", "org/tiny has no revision 'v9'; set model_revision"),
        ("RepositoryNotFoundError", "org/tiny is neither a local directory nor a Hub model"),
    ],
)
def test_hub_errors_name_the_fix_before_anything_loads(monkeypatch, error, message):
    """Gated, unknown revision, unknown model: one ModelLoadError each (the Hub's answers are faked)."""
    import huggingface_hub
    import huggingface_hub.utils as hf_utils

    def model_info(self, repo_id, revision=None):
        cls = getattr(hf_utils, error)
        raise cls.__new__(cls)  # the Hub's error types need an HTTP response to be built normally

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    with pytest.raises(ModelLoadError, match=re.escape(message)):
        hub_revision("org/tiny", "v9")


def test_hub_ids_stay_names():
    assert resolve_model("meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"


def test_hub_revision_is_read_from_the_cache_offline(tmp_path, monkeypatch):
    """A Hub model's fingerprint is the commit its name resolves to (here: from the local cache)."""
    import huggingface_hub.constants as hf_constants

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    (repo / "snapshots" / sha).mkdir(parents=True)
    (repo / "snapshots" / sha / "config.json").write_text("{}")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    assert hub_revision("org/tiny") == sha
    with pytest.raises(ModelLoadError, match="cannot resolve the revision of Hub model org/other"):
        hub_revision("org/other")
