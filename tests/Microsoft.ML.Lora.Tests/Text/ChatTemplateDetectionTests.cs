using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>
/// Detection from tokenizer_config.json: each snippet is the model's chat_template as its
/// tokenizer_config.json writes it (JSON-escaped), shortened only where noted.
/// </summary>
public sealed class ChatTemplateDetectionTests : IDisposable
{
    // Qwen2-7B-Instruct.
    private const string Qwen2 = """
        {"bos_token": null, "chat_template": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}", "eos_token": "<|im_end|>"}
        """;

    // Meta-Llama-3-8B-Instruct.
    private const string Llama3 = """
        {"bos_token": "<|begin_of_text|>", "chat_template": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}", "eos_token": "<|eot_id|>"}
        """;

    // Llama-2-7b-chat-hf (the system-message branch shortened).
    private const string Llama2 = """
        {"chat_template": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"}
        """;

    // Mistral-7B-Instruct-v0.1.
    private const string Mistral = """
        {"chat_template": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"}
        """;

    // zephyr-7b-beta.
    private const string Zephyr = """
        {"chat_template": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"}
        """;

    // Phi-3-mini-4k-instruct: <|user|>/<|assistant|> like Zephyr but turns end with <|end|>.
    private const string Phi3 = """
        {"chat_template": "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"}
        """;

    // vicuna-7b-v1.5 style ("USER: … ASSISTANT:"), a format that is not built in.
    private const string Vicuna = """
        {"chat_template": "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"}
        """;

    // gemma-2b-it (shortened).
    private const string Gemma = """
        {"chat_template": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"}
        """;

    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-chat-template-tests", Guid.NewGuid().ToString("N"));

    public ChatTemplateDetectionTests() => Directory.CreateDirectory(root);

    public static TheoryData<string, string> Known => new()
    {
        { Qwen2, "chatml" },
        { Llama3, "llama3" },
        { Llama2, "llama2" },
        { Mistral, "mistral" },
        { Zephyr, "zephyr" },
        { Gemma, "gemma" },
        { Phi3, "phi3" },
    };

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Theory]
    [MemberData(nameof(Known))]
    public void DetectsTheFormatFromTokenizerConfig(string json, string expected)
    {
        Assert.Equal(expected, ChatTemplate.FromTokenizerConfigJson(json, "tokenizer_config.json").Name);
    }

    [Theory]
    [InlineData(Vicuna)]
    public void OtherFormatsAreAnErrorNamingTheOption(string json)
    {
        var e = Assert.Throws<InvalidDataException>(() => ChatTemplate.FromTokenizerConfigJson(json, "models/x/tokenizer_config.json"));
        Assert.StartsWith("models/x/tokenizer_config.json: the chat_template is not one of the built-in formats (chatml, qwen3, llama3, llama2, mistral, zephyr, gemma, phi3)", e.Message);
        Assert.Contains("Set --chat-template", e.Message);
    }

    [Fact]
    public void TekkenSystemPromptMarkerIsNotMistakenForV1()
    {
        Assert.Null(ChatTemplate.TryDetect("{{ bos_token }}{% if system_message %}{{ '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}{% endif %}{{ '[INST]' + content + '[/INST]' }}"));
    }

    [Fact]
    public void AListOfTemplatesUsesTheOneNamedDefault()
    {
        const string json = """
            {"chat_template": [{"name": "tool_use", "template": "{{ '<|start_header_id|>' }}"}, {"name": "default", "template": "{{'<|im_start|>' + message['role'] + '\n'}}"}]}
            """;
        Assert.Equal("chatml", ChatTemplate.FromTokenizerConfigJson(json, "c.json").Name);
    }

    [Fact]
    public void MissingChatTemplateNamesTheFileAndTheOption()
    {
        var e = Assert.Throws<InvalidDataException>(() => ChatTemplate.FromTokenizerConfigJson("""{"bos_token": "<s>"}""", "base/tokenizer_config.json"));
        Assert.Equal("base/tokenizer_config.json has no \"chat_template\"; set --chat-template to one of chatml, qwen3, llama3, llama2, mistral, zephyr, gemma, phi3", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ChatTemplate.FromTokenizerConfigJson("""{"chat_template": 3}""", "c.json"));
        Assert.Contains("\"chat_template\" is Number", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ChatTemplate.FromTokenizerConfigJson("{", "c.json"));
        Assert.StartsWith("c.json: not valid JSON", e.Message);
    }

    [Fact]
    public void ResolvePrefersTheNameThenChatTemplateJinjaThenTokenizerConfig()
    {
        File.WriteAllText(Path.Combine(root, "tokenizer_config.json"), Zephyr);
        Assert.Equal("zephyr", ChatTemplate.Resolve(null, root).Name);
        Assert.Equal("zephyr", ChatTemplate.FromTokenizerConfig(Path.Combine(root, "tokenizer_config.json")).Name);

        File.WriteAllText(Path.Combine(root, "chat_template.jinja"), "{{ '<|im_start|>' + message['role'] }}");
        Assert.Equal("chatml", ChatTemplate.Resolve(null, root).Name);
        Assert.Equal("llama3", ChatTemplate.Resolve("llama3", root).Name);
    }

    [Fact]
    public void ResolveWithNothingToGoOnNamesTheOption()
    {
        var e = Assert.Throws<InvalidDataException>(() => ChatTemplate.Resolve(null, root));
        Assert.Contains("set --chat-template to one of chatml", e.Message);
    }
}
