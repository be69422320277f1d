"""The released Spark-TTS-0.5B configurations (docs/spark_tts_reference.md), as plain mappings.

What ``BiCodec/config.yaml``, ``LLM/config.json`` and ``wav2vec2-large-xlsr-53/config.json`` of
the official model folder hold, for code that builds the full-size architecture without the
weights: the key-manifest tests and the benchmarks (random weights of the real shapes).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BICODEC_CONFIG", "LLM_CONFIG", "WAV2VEC2_CONFIG"]

_VOCOS = {"vocos_dim": 384, "vocos_intermediate_dim": 2048}

BICODEC_CONFIG: dict[str, Any] = {
    "audio_tokenizer": {
        "mel_params": {"sample_rate": 16000, "n_fft": 1024, "win_length": 640, "hop_length": 320,
                       "mel_fmin": 10, "mel_fmax": None, "num_mels": 128},
        "encoder": {"input_channels": 1024, **_VOCOS, "vocos_num_layers": 12, "out_channels": 1024,
                    "sample_ratios": [1, 1]},
        "decoder": {"input_channel": 1024, "channels": 1536, "rates": [8, 5, 4, 2], "kernel_sizes": [16, 11, 8, 4]},
        "quantizer": {"input_dim": 1024, "codebook_size": 8192, "codebook_dim": 8, "commitment": 0.25,
                      "codebook_loss_weight": 2.0, "use_l2_normlize": True, "threshold_ema_dead_code": 0.2},
        "speaker_encoder": {"input_dim": 128, "out_dim": 1024, "latent_dim": 128, "token_num": 32,
                            "fsq_levels": [4, 4, 4, 4, 4, 4], "fsq_num_quantizers": 1},
        "prenet": {"input_channels": 1024, **_VOCOS, "vocos_num_layers": 12, "out_channels": 1024,
                   "condition_dim": 1024, "sample_ratios": [1, 1], "use_tanh_at_final": False},
        "postnet": {"input_channels": 1024, **_VOCOS, "vocos_num_layers": 6, "out_channels": 1024,
                    "use_tanh_at_final": False},
    }
}  # fmt: skip

# The Qwen2 fields of LLM/config.json (docs/spark_tts_reference.md).
LLM_CONFIG: dict[str, Any] = {
    "vocab_size": 166000, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1e6,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "use_sliding_window": False, "hidden_act": "silu",
    "max_window_layers": 24,
}  # fmt: skip

# The architecture fields of wav2vec2-large-xlsr-53/config.json.
WAV2VEC2_CONFIG: dict[str, Any] = {
    "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
    "conv_bias": True, "feat_extract_norm": "layer", "do_stable_layer_norm": True, "layer_norm_eps": 1e-5,
}  # fmt: skip
