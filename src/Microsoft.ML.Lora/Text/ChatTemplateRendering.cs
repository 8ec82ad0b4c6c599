using System.Text;

namespace Microsoft.ML.Lora.Text;

/// <summary>One piece of a rendered conversation: text the model reads (prompt) or writes (assistant).</summary>
/// <param name="Text">The characters of the piece.</param>
/// <param name="IsAssistant">True for an assistant reply plus its end-of-turn marker.</param>
public readonly record struct ChatSegment(string Text, bool IsAssistant);

/// <summary>
/// Where one assistant reply sits in <see cref="ChatRendering.Text"/>: the content is
/// <c>Text[Start..(Start + ContentLength)]</c>; <c>Text[Start..(Start + Length)]</c> also covers the
/// end-of-turn marker that follows it (<c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, <c>&lt;/s&gt;</c>), which
/// the loss includes so that the model learns to stop.
/// </summary>
public readonly record struct AssistantSpan(int Start, int Length, int ContentLength);

/// <summary>A conversation rendered by a <see cref="ChatTemplate"/>.</summary>
public sealed class ChatRendering
{
    internal ChatRendering(IReadOnlyList<ChatSegment> segments, IReadOnlyList<AssistantSpan> assistantSpans)
    {
        Segments = segments;
        AssistantSpans = assistantSpans;
        Text = string.Concat(segments.Select(static s => s.Text));
    }

    /// <summary>The whole prompt text, exactly as the model's chat template writes it.</summary>
    public string Text { get; }

    /// <summary>
    /// <see cref="Text"/> cut into alternating prompt and assistant pieces, in order; their concatenation is
    /// <see cref="Text"/>. Adjacent prompt pieces are merged, so a tokenizer sees each prompt run whole.
    /// </summary>
    public IReadOnlyList<ChatSegment> Segments { get; }

    /// <summary>Character spans of the assistant replies (content + end-of-turn marker), in order.</summary>
    public IReadOnlyList<AssistantSpan> AssistantSpans { get; }
}

/// <summary>Collects the pieces of a rendering and the assistant spans while a template writes them.</summary>
internal sealed class ChatTextBuilder
{
    private readonly List<ChatSegment> segments = [];
    private readonly List<AssistantSpan> spans = [];
    private readonly StringBuilder prompt = new();
    private int length;

    /// <summary>Text the model reads.</summary>
    public void Prompt(string text)
    {
        prompt.Append(text);
        length += text.Length;
    }

    /// <summary>An assistant reply followed by the end-of-turn marker the model must learn to write.</summary>
    public void Assistant(string content, string endOfTurn)
    {
        FlushPrompt();
        spans.Add(new AssistantSpan(length, content.Length + endOfTurn.Length, content.Length));
        segments.Add(new ChatSegment(content + endOfTurn, IsAssistant: true));
        length += content.Length + endOfTurn.Length;
    }

    public ChatRendering Build()
    {
        FlushPrompt();
        return new ChatRendering(segments, spans);
    }

    private void FlushPrompt()
    {
        if (prompt.Length > 0)
        {
            segments.Add(new ChatSegment(prompt.ToString(), IsAssistant: false));
            prompt.Clear();
        }
    }
}
