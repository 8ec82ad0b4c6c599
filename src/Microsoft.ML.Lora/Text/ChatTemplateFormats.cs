namespace Microsoft.ML.Lora.Text;

/// <summary>
/// ChatML, used by Qwen 1.5–3, SmolLM2 and many fine-tunes:
/// <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c> per message; generation prompt
/// <c>&lt;|im_start|&gt;assistant\n</c>. No BOS, content not trimmed.
/// </summary>
/// <remarks>
/// Source: the template in Qwen's tokenizer_config.json,
/// <c>{{'&lt;|im_start|&gt;' + message['role'] + '\n' + message['content'] + '&lt;|im_end|&gt;' + '\n'}}</c>.
/// Qwen2.5's template also inserts a default system message when none is given ("You are Qwen, created
/// by Alibaba Cloud…"); this class inserts nothing, so pass the system message you want to train with.
/// </remarks>
internal sealed class ChatMlTemplate : ChatTemplate
{
    public override string Name => "chatml";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        foreach (var m in messages)
        {
            output.Prompt($"<|im_start|>{ChatMessage.RoleName(m.Role)}\n");
            if (m.Role == ChatRole.Assistant)
            {
                output.Assistant(m.Content, "<|im_end|>");
                output.Prompt("\n");
            }
            else
            {
                output.Prompt($"{m.Content}<|im_end|>\n");
            }
        }

        if (addGenerationPrompt)
        {
            output.Prompt("<|im_start|>assistant\n");
        }
    }
}

/// <summary>
/// Qwen3: ChatML with a thinking block. An assistant turn after the last user message is written
/// <c>&lt;|im_start|&gt;assistant\n&lt;think&gt;\n{reasoning}\n&lt;/think&gt;\n\n{content}&lt;|im_end|&gt;\n</c> (the last
/// turn always, even with empty reasoning; an earlier one only when it has reasoning); other assistant turns
/// keep only the answer. Reasoning is what a message's content holds between <c>&lt;think&gt;</c> and
/// <c>&lt;/think&gt;</c>. The generation prompt is <c>&lt;|im_start|&gt;assistant\n</c> (thinking on).
/// </summary>
/// <remarks>
/// Source: the chat_template of Qwen3's tokenizer_config.json (without tools): the split on
/// <c>'&lt;/think&gt;'</c>, <c>loop.index0 &gt; ns.last_query_index</c> and <c>reasoning_content.strip('\n')</c>.
/// The trained span of a turn is everything after <c>&lt;|im_start|&gt;assistant\n</c>, think block included,
/// so a model trained on answers without reasoning learns to write the empty block itself, as the
/// template renders them. <c>enable_thinking=false</c> (an empty block in the generation prompt) is not
/// offered.
/// </remarks>
internal sealed class Qwen3Template : ChatTemplate
{
    public override string Name => "qwen3";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        int lastQuery = -1;
        for (int i = messages.Count - 1; i >= 0; i--)
        {
            if (messages[i].Role == ChatRole.User)
            {
                lastQuery = i;
                break;
            }
        }

        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m.Role != ChatRole.Assistant)
            {
                output.Prompt($"<|im_start|>{ChatMessage.RoleName(m.Role)}\n{m.Content}<|im_end|>\n");
                continue;
            }

            string content = m.Content, reasoning = string.Empty;
            int close = content.LastIndexOf("</think>", StringComparison.Ordinal);
            if (close >= 0)
            {
                string before = content[..content.IndexOf("</think>", StringComparison.Ordinal)];
                content = content[(close + "</think>".Length)..].TrimStart('\n');
                int open = before.LastIndexOf("<think>", StringComparison.Ordinal);
                reasoning = (open >= 0 ? before[(open + "<think>".Length)..] : before).TrimEnd('\n').TrimStart('\n');
            }

            string reply = i > lastQuery && (i == messages.Count - 1 || reasoning.Length > 0)
                ? $"<think>\n{reasoning.Trim('\n')}\n</think>\n\n{content.TrimStart('\n')}"
                : content;
            output.Prompt("<|im_start|>assistant\n");
            output.Assistant(reply, "<|im_end|>");
            output.Prompt("\n");
        }

        if (addGenerationPrompt)
        {
            output.Prompt("<|im_start|>assistant\n");
        }
    }
}

/// <summary>
/// Llama 3 / 3.1 / 3.2 Instruct: <c>&lt;|begin_of_text|&gt;</c>, then per message
/// <c>&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content | trim}&lt;|eot_id|&gt;</c>; generation
/// prompt <c>&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n</c>.
/// </summary>
/// <remarks>
/// Source: Meta-Llama-3-8B-Instruct tokenizer_config.json,
/// <c>'&lt;|start_header_id|&gt;' + message['role'] + '&lt;|end_header_id|&gt;\n\n'+ message['content'] | trim + '&lt;|eot_id|&gt;'</c>
/// with <c>bos_token</c> before the first message. Llama 3.1's template adds a "Cutting Knowledge Date"
/// system preamble and tool blocks; those are not written here.
/// </remarks>
internal sealed class Llama3Template : ChatTemplate
{
    public override string Name => "llama3";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        output.Prompt("<|begin_of_text|>");
        foreach (var m in messages)
        {
            output.Prompt($"<|start_header_id|>{ChatMessage.RoleName(m.Role)}<|end_header_id|>\n\n");
            string content = JinjaText.Trim(m.Content);
            if (m.Role == ChatRole.Assistant)
            {
                output.Assistant(content, "<|eot_id|>");
            }
            else
            {
                output.Prompt(content + "<|eot_id|>");
            }
        }

        if (addGenerationPrompt)
        {
            output.Prompt("<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
    }
}

/// <summary>
/// Llama 2 Chat: <c>&lt;s&gt;[INST] {user} [/INST] {assistant} &lt;/s&gt;</c> per exchange; a system message goes
/// into the first user turn as <c>&lt;&lt;SYS&gt;&gt;\n{system}\n&lt;&lt;/SYS&gt;&gt;\n\n{user}</c>. Turns are
/// stripped; roles must alternate user/assistant after an optional system message.
/// </summary>
/// <remarks>
/// Source: Llama-2-7b-chat-hf tokenizer_config.json:
/// <c>bos_token + '[INST] ' + content.strip() + ' [/INST]'</c> for user and
/// <c>' ' + content.strip() + ' ' + eos_token</c> for assistant, with
/// <c>'&lt;&lt;SYS&gt;&gt;\n' + system_message + '\n&lt;&lt;/SYS&gt;&gt;\n\n'</c> before the first user content.
/// The generation prompt is empty. The assistant span covers <c>{assistant} &lt;/s&gt;</c>.
/// </remarks>
internal sealed class Llama2Template : ChatTemplate
{
    public override string Name => "llama2";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        RequireAlternation(messages);
        string? system = messages[0].Role == ChatRole.System ? messages[0].Content : null;
        bool first = true;
        foreach (var m in messages.Skip(system is null ? 0 : 1))
        {
            if (m.Role == ChatRole.User)
            {
                string content = first && system is not null ? $"<<SYS>>\n{system}\n<</SYS>>\n\n{m.Content}" : m.Content;
                output.Prompt($"<s>[INST] {JinjaText.Trim(content)} [/INST]");
                first = false;
            }
            else
            {
                output.Prompt(" ");
                output.Assistant(JinjaText.Trim(m.Content), " </s>");
            }
        }
    }
}

/// <summary>
/// Mistral Instruct v0.1/v0.2: <c>&lt;s&gt;</c> once, then <c>[INST] {user} [/INST]</c> and
/// <c>{assistant}&lt;/s&gt;</c>; roles alternate user/assistant. The templates reject system messages;
/// here a system message is folded into the first user turn as <c>{system}\n\n{user}</c>, which is what
/// mistral-common does for its V1 tokenizer. Contents are not stripped; no generation prompt.
/// </summary>
/// <remarks>
/// Source: Mistral-7B-Instruct-v0.1 tokenizer_config.json:
/// <c>{{ bos_token }}</c>, <c>'[INST] ' + message['content'] + ' [/INST]'</c>, <c>message['content'] + eos_token</c>.
/// v0.3's template instead puts the system message before the last user turn; for single-turn rows both agree.
/// </remarks>
internal sealed class MistralTemplate : ChatTemplate
{
    public override string Name => "mistral";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        RequireAlternation(messages);
        string? system = messages[0].Role == ChatRole.System ? messages[0].Content : null;
        bool first = true;
        output.Prompt("<s>");
        foreach (var m in messages.Skip(system is null ? 0 : 1))
        {
            if (m.Role == ChatRole.User)
            {
                string content = first && system is not null ? $"{system}\n\n{m.Content}" : m.Content;
                output.Prompt($"[INST] {content} [/INST]");
                first = false;
            }
            else
            {
                output.Assistant(m.Content, "</s>");
            }
        }
    }
}

/// <summary>
/// Gemma (2 and 3): <c>&lt;bos&gt;</c>, then per turn <c>&lt;start_of_turn&gt;{user|model}\n{content | trim}&lt;end_of_turn&gt;\n</c>;
/// generation prompt <c>&lt;start_of_turn&gt;model\n</c>. Turns alternate user/model; a system message becomes the
/// first user turn's prefix, <c>{system}\n\n</c>, as Gemma 3's template writes it (Gemma 2's template refuses
/// system messages instead).
/// </summary>
/// <remarks>Source: the chat_template of Gemma 3's tokenizer_config.json (text content).</remarks>
internal sealed class GemmaTemplate : ChatTemplate
{
    public override string Name => "gemma";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        RequireAlternation(messages);
        string prefix = messages[0].Role == ChatRole.System ? messages[0].Content + "\n\n" : string.Empty;
        output.Prompt("<bos>");
        bool first = true;
        foreach (var m in messages.Skip(messages[0].Role == ChatRole.System ? 1 : 0))
        {
            string content = (first ? prefix : string.Empty) + JinjaText.Trim(m.Content);
            first = false;
            if (m.Role == ChatRole.Assistant)
            {
                output.Prompt("<start_of_turn>model\n");
                output.Assistant(content, "<end_of_turn>");
                output.Prompt("\n");
            }
            else
            {
                output.Prompt($"<start_of_turn>user\n{content}<end_of_turn>\n");
            }
        }

        if (addGenerationPrompt)
        {
            output.Prompt("<start_of_turn>model\n");
        }
    }
}

/// <summary>
/// Phi-3 Instruct: <c>&lt;|{role}|&gt;\n{content}&lt;|end|&gt;\n</c> per message (system, user, assistant, any order,
/// content kept); then <c>&lt;|assistant|&gt;\n</c> as the generation prompt, or <c>&lt;|endoftext|&gt;</c> without one.
/// </summary>
/// <remarks>
/// Source: Phi-3-mini-4k-instruct tokenizer_config.json, <c>{{'&lt;|user|&gt;\n' + message['content'] + '&lt;|end|&gt;\n'}}</c>
/// per role and <c>{% if add_generation_prompt %}{{ '&lt;|assistant|&gt;\n' }}{% else %}{{ eos_token }}{% endif %}</c>.
/// </remarks>
internal sealed class Phi3Template : ChatTemplate
{
    public override string Name => "phi3";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        foreach (var m in messages)
        {
            output.Prompt($"<|{ChatMessage.RoleName(m.Role)}|>\n");
            if (m.Role == ChatRole.Assistant)
            {
                output.Assistant(m.Content, "<|end|>");
                output.Prompt("\n");
            }
            else
            {
                output.Prompt($"{m.Content}<|end|>\n");
            }
        }

        output.Prompt(addGenerationPrompt ? "<|assistant|>\n" : "<|endoftext|>");
    }
}

/// <summary>
/// Zephyr (HuggingFaceH4/zephyr-7b-beta, TinyLlama-Chat): <c>&lt;|{role}|&gt;\n{content}&lt;/s&gt;\n</c> per
/// message; generation prompt <c>&lt;|assistant|&gt;\n</c>. Any role order; content not stripped.
/// </summary>
/// <remarks>
/// Source: zephyr-7b-beta tokenizer_config.json, <c>{{ '&lt;|user|&gt;\n' + message['content'] + eos_token }}</c>
/// on its own line (the Jinja newline after <c>}}</c> is kept, the ones after <c>%}</c> are trimmed), and
/// <c>{{ '&lt;|assistant|&gt;' }}</c> + newline when <c>add_generation_prompt</c>.
/// </remarks>
internal sealed class ZephyrTemplate : ChatTemplate
{
    public override string Name => "zephyr";

    private protected override void RenderCore(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, ChatTextBuilder output)
    {
        foreach (var m in messages)
        {
            output.Prompt($"<|{ChatMessage.RoleName(m.Role)}|>\n");
            if (m.Role == ChatRole.Assistant)
            {
                output.Assistant(m.Content, "</s>");
                output.Prompt("\n");
            }
            else
            {
                output.Prompt($"{m.Content}</s>\n");
            }
        }

        if (addGenerationPrompt)
        {
            output.Prompt("<|assistant|>\n");
        }
    }
}

/// <summary>Jinja's <c>trim</c> filter and Python's <c>str.strip()</c>.</summary>
internal static class JinjaText
{
    /// <summary>Strips what Python's <c>str.isspace</c> calls whitespace: .NET's set plus U+001C–U+001F.</summary>
    public static string Trim(string s)
    {
        static bool Space(char c) => char.IsWhiteSpace(c) || (c >= '\u001C' && c <= '\u001F');
        int start = 0, end = s.Length;
        while (start < end && Space(s[start]))
        {
            start++;
        }

        while (end > start && Space(s[end - 1]))
        {
            end--;
        }

        return s[start..end];
    }
}
