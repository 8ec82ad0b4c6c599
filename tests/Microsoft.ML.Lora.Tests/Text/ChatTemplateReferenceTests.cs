using System.Text.Json;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>
/// Built-in templates against the model's own Jinja chat_template run by transformers.js
/// (tests/fixtures/chat, written by tests/reference/tokenizer/make_chat_template_fixtures.mjs).
/// </summary>
public sealed class ChatTemplateReferenceTests
{
    [Theory]
    [InlineData("qwen3", "qwen3", "<|im_start|>assistant\n", "<|im_end|>")]
    [InlineData("gemma3", "gemma", "<start_of_turn>model\n", "<end_of_turn>")]
    public void RendersWhatTheModelsJinjaTemplateRenders(string model, string name, string header, string endOfTurn)
    {
        string path = Path.Combine(TokenizerTestFiles.RepoRoot, "tests", "fixtures", "chat", model + ".json");
        using var fixture = JsonDocument.Parse(File.ReadAllText(path));
        var template = ChatTemplate.FromName(name);
        int checkedCases = 0;
        foreach (var c in fixture.RootElement.GetProperty("cases").EnumerateArray())
        {
            var messages = c.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(ChatMessage.TryParseRole(m.GetProperty("role").GetString()!)!.Value, m.GetProperty("content").GetString()!))
                .ToList();
            bool generationPrompt = c.GetProperty("add_generation_prompt").GetBoolean();
            var rendering = template.Render(messages, generationPrompt);
            Assert.Equal(c.GetProperty("text").GetString(), rendering.Text);

            // Each trained span is one whole reply: it follows the assistant header and ends at the end-of-turn marker.
            Assert.Equal(messages.Count(static m => m.Role == ChatRole.Assistant), rendering.AssistantSpans.Count);
            foreach (var span in rendering.AssistantSpans)
            {
                Assert.EndsWith(header, rendering.Text[..span.Start], StringComparison.Ordinal);
                Assert.EndsWith(endOfTurn, rendering.Text.Substring(span.Start, span.Length), StringComparison.Ordinal);
            }

            checkedCases++;
        }

        Assert.True(checkedCases >= 5, $"{path}: only {checkedCases} cases");
    }

    [Theory]
    [InlineData(TokenizerTestFiles.Qwen3, "qwen3")]
    [InlineData(TokenizerTestFiles.Gemma3, "gemma")]
    public void TheModelsTokenizerConfigSelectsItsTemplate(string model, string expected)
    {
        string config = Path.Combine(TokenizerTestFiles.ModelFolder(model), "tokenizer_config.json");
        Assert.Equal(expected, ChatTemplate.FromTokenizerConfig(config).Name);
    }
}
