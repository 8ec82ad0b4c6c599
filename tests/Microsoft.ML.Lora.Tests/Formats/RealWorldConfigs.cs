namespace Microsoft.ML.Lora.Tests.Formats;

/// <summary>config.json texts modeled on the public Hugging Face configs of small Llama-family models.</summary>
internal static class RealWorldConfigs
{
    public const string TinyLlama = """
        {
          "architectures": ["LlamaForCausalLM"],
          "attention_bias": false,
          "bos_token_id": 1,
          "eos_token_id": 2,
          "hidden_act": "silu",
          "hidden_size": 2048,
          "initializer_range": 0.02,
          "intermediate_size": 5632,
          "max_position_embeddings": 2048,
          "model_type": "llama",
          "num_attention_heads": 32,
          "num_hidden_layers": 22,
          "num_key_value_heads": 4,
          "pretraining_tp": 1,
          "rms_norm_eps": 1e-05,
          "rope_scaling": null,
          "rope_theta": 10000.0,
          "tie_word_embeddings": false,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.35.0",
          "use_cache": true,
          "vocab_size": 32000
        }
        """;

    public const string SmolLM135M = """
        {
          "architectures": ["LlamaForCausalLM"],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "bos_token_id": 0,
          "eos_token_id": 0,
          "hidden_act": "silu",
          "hidden_size": 576,
          "initializer_range": 0.02,
          "intermediate_size": 1536,
          "max_position_embeddings": 2048,
          "model_type": "llama",
          "num_attention_heads": 9,
          "num_hidden_layers": 30,
          "num_key_value_heads": 3,
          "pretraining_tp": 1,
          "rms_norm_eps": 1e-05,
          "rope_scaling": null,
          "rope_theta": 10000.0,
          "tie_word_embeddings": true,
          "torch_dtype": "float32",
          "transformers_version": "4.39.3",
          "use_cache": true,
          "vocab_size": 49152
        }
        """;

    public const string Qwen2_05B = """
        {
          "architectures": ["Qwen2ForCausalLM"],
          "attention_dropout": 0.0,
          "bos_token_id": 151643,
          "eos_token_id": 151643,
          "hidden_act": "silu",
          "hidden_size": 896,
          "initializer_range": 0.02,
          "intermediate_size": 4864,
          "max_position_embeddings": 131072,
          "max_window_layers": 24,
          "model_type": "qwen2",
          "num_attention_heads": 14,
          "num_hidden_layers": 24,
          "num_key_value_heads": 2,
          "rms_norm_eps": 1e-06,
          "rope_theta": 1000000.0,
          "sliding_window": 131072,
          "tie_word_embeddings": true,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.40.1",
          "use_cache": true,
          "use_sliding_window": false,
          "vocab_size": 151936
        }
        """;

    public const string Mistral7B = """
        {
          "architectures": ["MistralForCausalLM"],
          "bos_token_id": 1,
          "eos_token_id": 2,
          "hidden_act": "silu",
          "hidden_size": 4096,
          "initializer_range": 0.02,
          "intermediate_size": 14336,
          "max_position_embeddings": 32768,
          "model_type": "mistral",
          "num_attention_heads": 32,
          "num_hidden_layers": 32,
          "num_key_value_heads": 8,
          "rms_norm_eps": 1e-05,
          "rope_theta": 10000.0,
          "sliding_window": 4096,
          "tie_word_embeddings": false,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.34.0.dev0",
          "use_cache": true,
          "vocab_size": 32000
        }
        """;

    public const string Llama32_1B = """
        {
          "architectures": ["LlamaForCausalLM"],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "bos_token_id": 128000,
          "eos_token_id": 128001,
          "head_dim": 64,
          "hidden_act": "silu",
          "hidden_size": 2048,
          "initializer_range": 0.02,
          "intermediate_size": 8192,
          "max_position_embeddings": 131072,
          "mlp_bias": false,
          "model_type": "llama",
          "num_attention_heads": 32,
          "num_hidden_layers": 16,
          "num_key_value_heads": 8,
          "pretraining_tp": 1,
          "rms_norm_eps": 1e-05,
          "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3"
          },
          "rope_theta": 500000.0,
          "tie_word_embeddings": true,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.45.0.dev0",
          "use_cache": true,
          "vocab_size": 128256
        }
        """;

    /// <summary>Qwen/Qwen3-0.6B: q_norm/k_norm, head_dim 128 with hidden 1024 and 16 heads.</summary>
    public const string Qwen3_06B = """
        {
          "architectures": ["Qwen3ForCausalLM"],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "bos_token_id": 151643,
          "eos_token_id": 151645,
          "head_dim": 128,
          "hidden_act": "silu",
          "hidden_size": 1024,
          "initializer_range": 0.02,
          "intermediate_size": 3072,
          "max_position_embeddings": 40960,
          "max_window_layers": 28,
          "model_type": "qwen3",
          "num_attention_heads": 16,
          "num_hidden_layers": 28,
          "num_key_value_heads": 8,
          "rms_norm_eps": 1e-06,
          "rope_scaling": null,
          "rope_theta": 1000000,
          "sliding_window": null,
          "tie_word_embeddings": true,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.51.0",
          "use_cache": true,
          "use_sliding_window": false,
          "vocab_size": 151936
        }
        """;

    /// <summary>microsoft/Phi-3-mini-4k-instruct: fused qkv_proj and gate_up_proj, sliding_window 2047.</summary>
    public const string Phi3Mini4k = """
        {
          "_name_or_path": "Phi-3-mini-4k-instruct",
          "architectures": ["Phi3ForCausalLM"],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "auto_map": {
            "AutoConfig": "configuration_phi3.Phi3Config",
            "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"
          },
          "bos_token_id": 1,
          "embd_pdrop": 0.0,
          "eos_token_id": 32000,
          "hidden_act": "silu",
          "hidden_size": 3072,
          "initializer_range": 0.02,
          "intermediate_size": 8192,
          "max_position_embeddings": 4096,
          "model_type": "phi3",
          "num_attention_heads": 32,
          "num_hidden_layers": 32,
          "num_key_value_heads": 32,
          "original_max_position_embeddings": 4096,
          "pad_token_id": 32000,
          "resid_pdrop": 0.0,
          "rms_norm_eps": 1e-05,
          "rope_scaling": null,
          "rope_theta": 10000.0,
          "sliding_window": 2047,
          "tie_word_embeddings": false,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.40.2",
          "use_cache": true,
          "vocab_size": 32064
        }
        """;

    /// <summary>google/gemma-2-2b: soft-capping, sandwich norms, sliding window on even layers.</summary>
    public const string Gemma2_2B = """
        {
          "architectures": ["Gemma2ForCausalLM"],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "attn_logit_softcapping": 50.0,
          "bos_token_id": 2,
          "cache_implementation": "hybrid",
          "eos_token_id": 1,
          "final_logit_softcapping": 30.0,
          "head_dim": 256,
          "hidden_act": "gelu_pytorch_tanh",
          "hidden_activation": "gelu_pytorch_tanh",
          "hidden_size": 2304,
          "initializer_range": 0.02,
          "intermediate_size": 9216,
          "max_position_embeddings": 8192,
          "model_type": "gemma2",
          "num_attention_heads": 8,
          "num_hidden_layers": 26,
          "num_key_value_heads": 4,
          "pad_token_id": 0,
          "query_pre_attn_scalar": 256,
          "rms_norm_eps": 1e-06,
          "rope_theta": 10000.0,
          "sliding_window": 4096,
          "torch_dtype": "float32",
          "transformers_version": "4.42.4",
          "use_cache": true,
          "vocab_size": 256000
        }
        """;

    /// <summary>google/gemma-3-1b-it: the Gemma 3 text model, q/k norms, local RoPE base, 5 sliding layers per global one.</summary>
    public const string Gemma3_1B = """
        {
          "architectures": ["Gemma3ForCausalLM"],
          "attention_bias": false,
          "attention_dropout": 0.0,
          "attn_logit_softcapping": null,
          "bos_token_id": 2,
          "cache_implementation": "hybrid",
          "eos_token_id": [1, 106],
          "final_logit_softcapping": null,
          "head_dim": 256,
          "hidden_activation": "gelu_pytorch_tanh",
          "hidden_size": 1152,
          "initializer_range": 0.02,
          "intermediate_size": 6912,
          "max_position_embeddings": 32768,
          "model_type": "gemma3_text",
          "num_attention_heads": 4,
          "num_hidden_layers": 26,
          "num_key_value_heads": 1,
          "pad_token_id": 0,
          "query_pre_attn_scalar": 256,
          "rms_norm_eps": 1e-06,
          "rope_local_base_freq": 10000,
          "rope_scaling": null,
          "rope_theta": 1000000,
          "sliding_window": 512,
          "sliding_window_pattern": 6,
          "torch_dtype": "bfloat16",
          "transformers_version": "4.50.0.dev0",
          "use_cache": true,
          "vocab_size": 262144
        }
        """;

    public static IEnumerable<string> All => [TinyLlama, SmolLM135M, Qwen2_05B, Mistral7B, Llama32_1B, Qwen3_06B, Phi3Mini4k, Gemma2_2B, Gemma3_1B];
}
