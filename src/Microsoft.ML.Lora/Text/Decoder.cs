using System.Globalization;
using System.Text;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// A tokenizer.json "decoder": turns token strings back into text. Each step maps the token list to
/// a new list; the results are concatenated. Supported types: Sequence, ByteLevel, Replace,
/// ByteFallback, Fuse, Strip, Metaspace.
/// </summary>
internal abstract class Decoder
{
    public abstract List<string> Decode(List<string> tokens);

    public static Decoder? Parse(TokenizerJson? json)
    {
        if (json is not { } j)
        {
            return null;
        }

        string? type = j.OptionalString("type");
        return type switch
        {
            "Sequence" => new SequenceDecoder(j.ObjectArray("decoders").Select(d => Parse(d)!).ToArray()),
            "ByteLevel" => new ByteLevelDecoder(),
            "Replace" => CreateReplace(j),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => CreateStrip(j),
            "Metaspace" => CreateMetaspace(j),
            _ => throw j.Unsupported("decoder", type),
        };
    }

    private static Decoder CreateReplace(TokenizerJson j)
    {
        var (pattern, isRegex) = j.Pattern("pattern");
        if (isRegex || pattern.Length == 0)
        {
            throw new NotSupportedException($"{j.Source}: decoder '{j.Path}' needs a non-empty String pattern");
        }

        return new ReplaceDecoder(pattern, j.RequiredString("content"));
    }

    private static Decoder CreateStrip(TokenizerJson j)
    {
        string content = j.RequiredString("content");
        return content.Length == 1
            ? new StripDecoder(content[0], j.RequiredInt("start"), j.RequiredInt("stop"))
            : throw new NotSupportedException($"{j.Source}: '{j.Where("content")}' must be one char, got '{content}'");
    }

    private static Decoder CreateMetaspace(TokenizerJson j)
    {
        string replacement = j.OptionalString("replacement") ?? "\u2581";
        string scheme = j.OptionalString("prepend_scheme") ?? (j.OptionalBool("add_prefix_space", true) ? "always" : "never");
        return new MetaspaceDecoder(replacement, scheme != "never");
    }

    private sealed class SequenceDecoder(Decoder[] steps) : Decoder
    {
        public override List<string> Decode(List<string> tokens)
        {
            foreach (Decoder d in steps)
            {
                tokens = d.Decode(tokens);
            }

            return tokens;
        }
    }

    /// <summary>
    /// Chars back to bytes through <see cref="ByteLevelAlphabet"/>, all tokens fused, bytes read as
    /// UTF-8 (invalid sequences become U+FFFD). A token with a char outside the alphabet (an added
    /// token such as "&lt;|im_start|&gt; x") contributes its own UTF-8 bytes.
    /// </summary>
    private sealed class ByteLevelDecoder : Decoder
    {
        public override List<string> Decode(List<string> tokens)
        {
            var bytes = new List<byte>();
            Span<byte> utf8 = stackalloc byte[4];
            foreach (string token in tokens)
            {
                int mark = bytes.Count;
                bool mapped = true;
                foreach (char c in token)
                {
                    int b = ByteLevelAlphabet.CharToByte(c);
                    if (b < 0)
                    {
                        mapped = false;
                        break;
                    }

                    bytes.Add((byte)b);
                }

                if (!mapped)
                {
                    bytes.RemoveRange(mark, bytes.Count - mark);
                    bytes.AddRange(Encoding.UTF8.GetBytes(token));
                }
            }

            return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
        }
    }

    private sealed class ReplaceDecoder(string pattern, string content) : Decoder
    {
        public override List<string> Decode(List<string> tokens) =>
            tokens.ConvertAll(t => t.Replace(pattern, content, StringComparison.Ordinal));
    }

    /// <summary>Runs of "&lt;0xNN&gt;" tokens become the UTF-8 text they encode, or one U+FFFD per byte token when invalid.</summary>
    private sealed class ByteFallbackDecoder : Decoder
    {
        private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

        public override List<string> Decode(List<string> tokens)
        {
            var output = new List<string>(tokens.Count);
            var pending = new List<byte>();
            foreach (string t in tokens)
            {
                if (TryParseByte(t, out byte b))
                {
                    pending.Add(b);
                    continue;
                }

                Flush();
                output.Add(t);
            }

            Flush();
            return output;

            void Flush()
            {
                if (pending.Count == 0)
                {
                    return;
                }

                try
                {
                    output.Add(Strict.GetString(pending.ToArray()));
                }
                catch (DecoderFallbackException)
                {
                    for (int k = 0; k < pending.Count; k++)
                    {
                        output.Add("\uFFFD");
                    }
                }

                pending.Clear();
            }
        }

        private static bool TryParseByte(string t, out byte b)
        {
            b = 0;
            return t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out b);
        }
    }

    private sealed class FuseDecoder : Decoder
    {
        public override List<string> Decode(List<string> tokens) => [string.Concat(tokens)];
    }

    /// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> chars of each token.</summary>
    private sealed class StripDecoder(char content, int start, int stop) : Decoder
    {
        public override List<string> Decode(List<string> tokens) => tokens.ConvertAll(t =>
        {
            int s = 0, e = t.Length;
            while (s < start && s < e && t[s] == content)
            {
                s++;
            }

            int cut = 0;
            while (cut < stop && e > s && t[e - 1] == content)
            {
                e--;
                cut++;
            }

            return t[s..e];
        });
    }

    /// <summary>▁ back to spaces; in the first token, when a ▁ was prepended on encode, ▁ is dropped instead.</summary>
    private sealed class MetaspaceDecoder(string replacement, bool prepended) : Decoder
    {
        public override List<string> Decode(List<string> tokens)
        {
            var output = new List<string>(tokens.Count);
            for (int i = 0; i < tokens.Count; i++)
            {
                output.Add(tokens[i].Replace(replacement, i == 0 && prepended ? string.Empty : " ", StringComparison.Ordinal));
            }

            return output;
        }
    }
}
