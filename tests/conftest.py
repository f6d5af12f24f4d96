"""Tiny random-weight decoders of every supported layout, and calibration sets for them."""

from __future__ import annotations

import os

# No test reaches the network: Hub look-ups read the local cache or fail at once (set before
# transformers / huggingface_hub are imported, which read it on import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from mwanda.core.calibration import CalibrationSet  # noqa: E402

VOCAB = 128

# Small but not trivial: d_in of 32..128 makes per-row counts and N:M groups meaningful.
ARCH_CONFIGS = {
    "llama": dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2),
    "qwen2": dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2),
    "mistral": dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2),
    "gemma": dict(
        hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=8
    ),
    "opt": dict(hidden_size=32, ffn_dim=64, num_attention_heads=4, word_embed_proj_dim=32),
    "bloom": dict(hidden_size=32, n_head=4),
    "gpt2": dict(n_embd=32, n_head=4, bos_token_id=1, eos_token_id=2),  # Conv1D linears
    # Gemma 3: sliding-window and global layers with their own rotary tables and masks (below)
    "gemma3_text": dict(head_dim=8, query_pre_attn_scalar=8),
}
# Layouts with sliding-window layers: the window is shorter than tiny_calib's 16 tokens, so that
# the sliding and global masks differ.
WINDOWED = dict(
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    sliding_window=6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
ARCH_CONFIGS["gemma3_text"] |= WINDOWED
ARCHS = tuple(ARCH_CONFIGS)
# Further layouts whose blocks differ in their calls (masks, rotary tables), for the replay tests.
WINDOWED_CONFIGS = {
    "gemma2": dict(ARCH_CONFIGS["gemma3_text"]),
    "cohere2": dict(WINDOWED),
    "qwen2": dict(ARCH_CONFIGS["qwen2"], use_sliding_window=True, sliding_window=6, max_window_layers=1),
}
# Layouts told block by block which attention each layer has: alternate sliding and global.
MIXED_LAYERS = ("gemma3_text", "gemma2", "cohere2")


def tiny_model(
    arch: str = "llama",
    layers: int = 3,
    seed: int = 0,
    dtype=torch.float32,
    windowed: bool = False,
    **overrides,
):
    """A random-weight causal LM of ``arch`` with ``layers`` blocks, in eval mode (``windowed``:
    the layout of ``WINDOWED_CONFIGS``)."""
    kw = dict((WINDOWED_CONFIGS if windowed else ARCH_CONFIGS)[arch], vocab_size=VOCAB) | overrides
    kw["n_layer" if arch in ("bloom", "gpt2") else "num_hidden_layers"] = layers
    if arch in MIXED_LAYERS:
        kw.setdefault("layer_types", [("sliding_attention", "full_attention")[i % 2] for i in range(layers)])
    cfg = AutoConfig.for_model(arch, **kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).to(dtype)
    # Random init puts biases at 0 and norms at 1; perturb so every parameter matters.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def tiny_calib(
    n_per_lang: int = 4, seqlen: int = 16, langs=("en", "de", "fr"), seed: int = 0
) -> CalibrationSet:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n_per_lang * len(langs), seqlen), generator=gen)
    return CalibrationSet(ids, tuple(lang for lang in langs for _ in range(n_per_lang)))


@pytest.fixture
def calib() -> CalibrationSet:
    return tiny_calib()


def byte_bpe_tokenizer(texts: list[str], vocab_size: int, byte_level: bool = True):
    """A small BPE trained on ``texts``, with <unk>, <s> (BOS) and </s> (EOS). Byte-level (every
    text encodes; needs vocab_size >= 259 for the 256 bytes) or, with ``byte_level=False``, split
    on whitespace: small enough for the tiny models' vocabulary of VOCAB ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    else:
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=alphabet
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
