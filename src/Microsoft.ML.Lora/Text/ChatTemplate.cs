using System.Text.Json;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// Turns a conversation into the exact text a chat model was trained on. Five formats are built in
/// (see <see cref="Names"/>); each is written out in C# from the model's own Jinja <c>chat_template</c>
/// (quoted in each class's remarks) rather than by running Jinja, so rendering also yields where the
/// assistant replies are. Pick one by name (<see cref="FromName"/>) or detect it from a
/// <c>tokenizer_config.json</c> (<see cref="FromTokenizerConfig"/>).
/// </summary>
public abstract class ChatTemplate
{
    /// <summary>The command-line option that selects a template, named in errors.</summary>
    public const string OptionName = "--chat-template";

    private protected ChatTemplate()
    {
    }

    /// <summary>The names <see cref="FromName"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["chatml", "qwen3", "llama3", "llama2", "mistral", "zephyr", "gemma", "phi3"];

    /// <summary>The template's name (one of <see cref="Names"/>).</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Renders <paramref name="messages"/>. With <paramref name="addGenerationPrompt"/> the text ends with
    /// the header that asks the model for the next assistant reply (for inference; Llama 2 and Mistral have
    /// none: their user turn already ends with <c>[/INST]</c>).
    /// </summary>
    /// <exception cref="ArgumentException">The messages break a rule of the format (e.g. roles must alternate).</exception>
    public ChatRendering Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = false)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0)
        {
            throw new ArgumentException("a conversation needs at least one message", nameof(messages));
        }

        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i] is null)
            {
                throw new ArgumentException($"message {i} is null", nameof(messages));
            }
        }

        var builder = new ChatTextBuilder();
        RenderCore(messages, addGenerationPrompt, builder);
        return builder.Build();
    }

    /// <summary>The built-in template called <paramref name="name"/> (case-insensitive; <c>qwen</c> is an alias of <c>chatml</c>).</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static ChatTemplate FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "chatml" or "qwen" => new ChatMlTemplate(),
            "qwen3" => new Qwen3Template(),
            "llama3" => new Llama3Template(),
            "llama2" => new Llama2Template(),
            "mistral" => new MistralTemplate(),
            "zephyr" => new ZephyrTemplate(),
            "gemma" => new GemmaTemplate(),
            "phi3" => new Phi3Template(),
            _ => throw new ArgumentException($"unknown chat template '{name}'; {OptionName} must be one of {string.Join(", ", Names)}", nameof(name)),
        };
    }

    /// <summary>
    /// Recognises a Jinja <c>chat_template</c> by the markers that only its format writes; null when none
    /// matches. Checked in this order (the first hit wins):
    /// <c>&lt;|start_header_id|&gt;</c> → llama3; <c>&lt;start_of_turn&gt;</c> → gemma; <c>&lt;|im_start|&gt;</c> with <c>&lt;/think&gt;</c> → qwen3; <c>&lt;|im_start|&gt;</c> → chatml;
    /// <c>&lt;&lt;SYS&gt;&gt;</c> → llama2; <c>[SYSTEM_PROMPT]</c> → none (Mistral's newer Tekken format, not built in);
    /// <c>[INST]</c> → mistral; <c>&lt;|user|&gt;</c> and <c>&lt;|assistant|&gt;</c> → phi3 with <c>&lt;|end|&gt;</c> (Phi-3's
    /// turn end), else zephyr.
    /// </summary>
    public static ChatTemplate? TryDetect(string jinja)
    {
        ArgumentNullException.ThrowIfNull(jinja);
        bool Has(string marker) => jinja.Contains(marker, StringComparison.Ordinal);
        if (Has("<|start_header_id|>"))
        {
            return new Llama3Template();
        }

        if (Has("<start_of_turn>"))
        {
            return new GemmaTemplate();
        }

        if (Has("<|im_start|>"))
        {
            return Has("</think>") ? new Qwen3Template() : new ChatMlTemplate();
        }

        if (Has("<<SYS>>"))
        {
            return new Llama2Template();
        }

        if (Has("[SYSTEM_PROMPT]"))
        {
            return null;
        }

        if (Has("[INST]"))
        {
            return new MistralTemplate();
        }

        if (Has("<|user|>") && Has("<|assistant|>"))
        {
            return Has("<|end|>") ? new Phi3Template() : new ZephyrTemplate();
        }

        return null;
    }

    /// <summary>Like <see cref="TryDetect"/>, but an unrecognised template is an error naming <paramref name="source"/> and the option to set.</summary>
    public static ChatTemplate Detect(string jinja, string source)
    {
        return TryDetect(jinja)
            ?? throw new InvalidDataException($"{source}: the chat_template is not one of the built-in formats ({string.Join(", ", Names)}); it starts with \"{Excerpt(jinja)}\". Set {OptionName} to the format the model was trained with");
    }

    /// <summary>
    /// Detects the template of a Hugging Face <c>tokenizer_config.json</c> from its <c>chat_template</c>: a
    /// string, or a list of <c>{"name", "template"}</c> objects (the one named <c>default</c> is used).
    /// </summary>
    public static ChatTemplate FromTokenizerConfig(string tokenizerConfigPath)
    {
        ArgumentNullException.ThrowIfNull(tokenizerConfigPath);
        if (!File.Exists(tokenizerConfigPath))
        {
            throw new FileNotFoundException($"'{tokenizerConfigPath}' not found; set {OptionName} instead", tokenizerConfigPath);
        }

        return FromTokenizerConfigJson(File.ReadAllText(tokenizerConfigPath), tokenizerConfigPath);
    }

    /// <summary><see cref="FromTokenizerConfig"/> on JSON text; <paramref name="source"/> names it in errors.</summary>
    public static ChatTemplate FromTokenizerConfigJson(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON ({e.Message})", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var template) || template.ValueKind == JsonValueKind.Null)
            {
                throw new InvalidDataException($"{source} has no \"chat_template\"; set {OptionName} to one of {string.Join(", ", Names)}");
            }

            string? jinja = template.ValueKind switch
            {
                JsonValueKind.String => template.GetString(),
                JsonValueKind.Array => template.EnumerateArray()
                    .Where(static t => t.ValueKind == JsonValueKind.Object && t.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() == "default")
                    .Select(static t => t.TryGetProperty("template", out var j) && j.ValueKind == JsonValueKind.String ? j.GetString() : null)
                    .FirstOrDefault(),
                _ => null,
            };

            if (jinja is null)
            {
                throw new InvalidDataException($"{source}: \"chat_template\" is {template.ValueKind}, expected a string or a list with an entry named \"default\"; set {OptionName} instead");
            }

            return Detect(jinja, source);
        }
    }

    /// <summary>
    /// The template to use for a run: <paramref name="name"/> when given (the option wins), else the one
    /// detected from <c>chat_template.jinja</c> or <c>tokenizer_config.json</c> in <paramref name="modelDirectory"/>.
    /// </summary>
    public static ChatTemplate Resolve(string? name, string? modelDirectory)
    {
        if (!string.IsNullOrWhiteSpace(name))
        {
            return FromName(name);
        }

        if (modelDirectory is not null)
        {
            string jinjaFile = Path.Combine(modelDirectory, "chat_template.jinja");
            if (File.Exists(jinjaFile))
            {
                return Detect(File.ReadAllText(jinjaFile), jinjaFile);
            }

            string config = Path.Combine(modelDirectory, "tokenizer_config.json");
            if (File.Exists(config))
            {
                return FromTokenizerConfig(config);
            }
        }

        throw new InvalidDataException($"no chat template: the model folder '{modelDirectory}' has neither chat_template.jinja nor tokenizer_config.json; set {OptionName} to one of {string.Join(", ", Names)}");
    }

    /// <inheritdoc/>
    public override string ToString() => Name;

    private protected abstract void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output);

    /// <summary>Checks user/assistant alternation after an optional leading system message (Llama 2, Mistral).</summary>
    private protected void RequireAlternation(IReadOnlyList<ChatMessage> messages)
    {
        int first = messages[0].Role == ChatRole.System ? 1 : 0;
        for (int i = first; i < messages.Count; i++)
        {
            var expected = (i - first) % 2 == 0 ? ChatRole.User : ChatRole.Assistant;
            if (messages[i].Role != expected)
            {
                string what = messages[i].Role == ChatRole.System ? "a system message is allowed only first" : $"expected {ChatMessage.RoleName(expected)}";
                throw new ArgumentException($"{Name} chat template: message {i} is {ChatMessage.RoleName(messages[i].Role)}; {what}: after an optional system message, roles must alternate user/assistant/user/…");
            }
        }
    }

    private static string Excerpt(string s)
    {
        string flat = s.ReplaceLineEndings(" ");
        return flat.Length <= 80 ? flat : flat[..80] + "…";
    }
}
