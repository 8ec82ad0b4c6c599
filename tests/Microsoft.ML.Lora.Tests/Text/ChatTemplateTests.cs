using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>
/// Every built-in template against golden strings written by hand from the model's Jinja template
/// (quoted in ChatTemplateFormats.cs), the assistant spans, and the generation prompt.
/// </summary>
public sealed class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "Be brief."),
        new(ChatRole.User, "Hi"),
        new(ChatRole.Assistant, "Hello!"),
        new(ChatRole.User, "Bye"),
        new(ChatRole.Assistant, "Bye."),
    ];

    public static TheoryData<string, string, string, string> Golden => new()
    {
        {
            "chatml",
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nBye.<|im_end|>\n",
            "<|im_end|>",
            "<|im_end|>"
        },
        {
            "llama3",
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nBye.<|eot_id|>",
            "<|eot_id|>",
            "<|eot_id|>"
        },
        {
            "llama2",
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST] Bye. </s>",
            " </s>",
            " </s>"
        },
        {
            "mistral",
            "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] Bye [/INST]Bye.</s>",
            "</s>",
            "</s>"
        },
        {
            "zephyr",
            "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nBye</s>\n<|assistant|>\nBye.</s>\n",
            "</s>",
            "</s>"
        },
        {
            "phi3",
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\nBye.<|end|>\n<|endoftext|>",
            "<|end|>",
            "<|end|>"
        },
    };

    [Theory]
    [MemberData(nameof(Golden))]
    public void RendersTheGoldenTextAndAssistantSpans(string name, string expected, string firstEnd, string secondEnd)
    {
        var template = ChatTemplate.FromName(name);
        var r = template.Render(Conversation);

        Assert.Equal(name, template.Name);
        Assert.Equal(expected, r.Text);
        Assert.Equal(2, r.AssistantSpans.Count);
        var first = r.AssistantSpans[0];
        var second = r.AssistantSpans[1];
        Assert.Equal(expected.IndexOf("Hello!", StringComparison.Ordinal), first.Start);
        Assert.Equal(6, first.ContentLength);
        Assert.Equal("Hello!" + firstEnd, r.Text.Substring(first.Start, first.Length));
        Assert.Equal(expected.LastIndexOf("Bye.", StringComparison.Ordinal), second.Start);
        Assert.Equal(4, second.ContentLength);
        Assert.Equal("Bye." + secondEnd, r.Text.Substring(second.Start, second.Length));

        // Segments tile the text: prompt, assistant, prompt, assistant (+ trailing prompt where the format has one).
        Assert.Equal(r.Text, string.Concat(r.Segments.Select(s => s.Text)));
        Assert.Equal(r.AssistantSpans.Select(s => r.Text.Substring(s.Start, s.Length)), r.Segments.Where(s => s.IsAssistant).Select(s => s.Text));
        Assert.Equal([false, true, false, true], r.Segments.Take(4).Select(s => s.IsAssistant));
    }

    [Theory]
    [InlineData("chatml", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")]
    [InlineData("llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")]
    [InlineData("zephyr", "<|user|>\nHi</s>\n<|assistant|>\n")]
    [InlineData("phi3", "<|user|>\nHi<|end|>\n<|assistant|>\n")]
    [InlineData("gemma", "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")]
    [InlineData("llama2", "<s>[INST] Hi [/INST]")]
    [InlineData("mistral", "<s>[INST] Hi [/INST]")]
    public void GenerationPromptOpensTheAssistantTurn(string name, string expected)
    {
        var r = ChatTemplate.FromName(name).Render([new ChatMessage(ChatRole.User, "Hi")], addGenerationPrompt: true);
        Assert.Equal(expected, r.Text);
        Assert.Empty(r.AssistantSpans);
        Assert.Single(r.Segments);
    }

    [Fact]
    public void WithoutGenerationPromptTheTextEndsAfterTheLastTurn()
    {
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n", ChatTemplate.FromName("chatml").Render([new ChatMessage(ChatRole.User, "Hi")]).Text);
    }

    [Fact]
    public void Llama3AndLlama2TrimContentAsTheirTemplatesDoChatMlAndMistralKeepIt()
    {
        ChatMessage[] messages = [new(ChatRole.User, " Hi\n"), new(ChatRole.Assistant, "\n Yo \u001F")];

        var llama3 = ChatTemplate.FromName("llama3").Render(messages);
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>", llama3.Text);
        Assert.Equal(2, llama3.AssistantSpans[0].ContentLength);

        Assert.Equal("<s>[INST] Hi [/INST] Yo </s>", ChatTemplate.FromName("llama2").Render(messages).Text);
        Assert.Equal("<s>[INST]  Hi\n [/INST]\n Yo \u001F</s>", ChatTemplate.FromName("mistral").Render(messages).Text);
        Assert.Equal("<|im_start|>user\n Hi\n<|im_end|>\n<|im_start|>assistant\n\n Yo \u001F<|im_end|>\n", ChatTemplate.FromName("chatml").Render(messages).Text);
    }

    [Fact]
    public void Llama2WithoutSystemHasNoSysBlock()
    {
        var r = ChatTemplate.FromName("llama2").Render([new(ChatRole.User, "Hi"), new(ChatRole.Assistant, "Yo")]);
        Assert.Equal("<s>[INST] Hi [/INST] Yo </s>", r.Text);
    }

    [Fact]
    public void AnAssistantTurnAfterAssistantIsItsOwnSpanInChatMl()
    {
        var r = ChatTemplate.FromName("chatml").Render([new(ChatRole.User, "Q"), new(ChatRole.Assistant, "A"), new(ChatRole.Assistant, "B")]);
        Assert.Equal("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>assistant\nB<|im_end|>\n", r.Text);
        Assert.Equal(["A<|im_end|>", "B<|im_end|>"], r.AssistantSpans.Select(s => r.Text.Substring(s.Start, s.Length)));
    }

    [Theory]
    [InlineData("llama2")]
    [InlineData("mistral")]
    public void InstFormatsRequireAlternatingRoles(string name)
    {
        var template = ChatTemplate.FromName(name);
        var e = Assert.Throws<ArgumentException>(() => template.Render([new(ChatRole.Assistant, "A"), new(ChatRole.User, "Q")]));
        Assert.Contains("message 0 is assistant; expected user", e.Message);
        Assert.Contains("alternate", e.Message);

        e = Assert.Throws<ArgumentException>(() => template.Render([new(ChatRole.User, "Q"), new(ChatRole.System, "S")]));
        Assert.Contains("message 1 is system; a system message is allowed only first", e.Message);
    }

    [Fact]
    public void EmptyConversationIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => ChatTemplate.FromName("chatml").Render([]));
        Assert.Contains("at least one message", e.Message);
    }

    [Theory]
    [InlineData("ChatML", "chatml")]
    [InlineData(" qwen ", "chatml")]
    [InlineData("LLAMA3", "llama3")]
    public void NamesAreCaseInsensitiveWithQwenAsAnAlias(string given, string expected)
    {
        Assert.Equal(expected, ChatTemplate.FromName(given).Name);
    }

    [Fact]
    public void UnknownNameListsTheOptionAndTheNames()
    {
        var e = Assert.Throws<ArgumentException>(() => ChatTemplate.FromName("vicuna"));
        Assert.Contains("unknown chat template 'vicuna'; --chat-template must be one of chatml, qwen3, llama3, llama2, mistral, zephyr, gemma, phi3", e.Message);
    }

    [Fact]
    public void RolesParseFromJsonNamesExactly()
    {
        Assert.Equal(ChatRole.Assistant, ChatMessage.TryParseRole("assistant"));
        Assert.Null(ChatMessage.TryParseRole("Assistant"));
        Assert.Null(ChatMessage.TryParseRole("tool"));
    }
}
