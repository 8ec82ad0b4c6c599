namespace Microsoft.ML.Lora.Text;

/// <summary>Who wrote a chat message.</summary>
public enum ChatRole
{
    /// <summary>Instructions for the assistant (<c>"system"</c>).</summary>
    System,

    /// <summary>The person (<c>"user"</c>).</summary>
    User,

    /// <summary>The model (<c>"assistant"</c>); the tokens it must learn to write.</summary>
    Assistant,
}

/// <summary>One message of a conversation, as in the OpenAI / Hugging Face <c>messages</c> list.</summary>
public sealed class ChatMessage
{
    /// <summary>Creates a message; <paramref name="content"/> may be empty but not null.</summary>
    public ChatMessage(ChatRole role, string content)
    {
        ArgumentNullException.ThrowIfNull(content);
        if (!Enum.IsDefined(role))
        {
            throw new ArgumentOutOfRangeException(nameof(role), role, "role must be System, User or Assistant");
        }

        Role = role;
        Content = content;
    }

    /// <summary>Who wrote it.</summary>
    public ChatRole Role { get; }

    /// <summary>The text.</summary>
    public string Content { get; }

    /// <summary>The role as chat templates and JSON write it: system, user, assistant.</summary>
    public static string RoleName(ChatRole role) => role switch
    {
        ChatRole.System => "system",
        ChatRole.User => "user",
        ChatRole.Assistant => "assistant",
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "unknown role"),
    };

    /// <summary>Parses a JSON role name (exact, lower case); null when it is not system, user or assistant.</summary>
    public static ChatRole? TryParseRole(string role) => role switch
    {
        "system" => ChatRole.System,
        "user" => ChatRole.User,
        "assistant" => ChatRole.Assistant,
        _ => null,
    };

    /// <inheritdoc/>
    public override string ToString() => $"{RoleName(Role)}: {Content}";
}
