namespace Microsoft.ML.Lora.Text;

/// <summary>Text rewrites done by pre-tokenizers, keeping alignment and the piece ranges in step.</summary>
internal static class PreTokenizerRewrite
{
    /// <summary>Replaces every <paramref name="from"/> by <paramref name="to"/> (same length, so pieces stay valid).</summary>
    public static void ReplaceChar(NormalizedString text, char from, char to)
    {
        string t = text.Text;
        if (t.IndexOf(from) < 0)
        {
            return;
        }

        var b = new NormalizedString.Builder(t.Length);
        for (int i = 0; i < t.Length; i++)
        {
            var (os, oe) = text.Original(i, i + 1);
            b.Add(t[i] == from ? to : t[i], os, oe);
        }

        text.Assign(b);
    }

    /// <summary>Inserts <paramref name="prefix"/> (zero-width) at the start of each non-empty piece for which <paramref name="wants"/> holds.</summary>
    public static void PrefixPieces(NormalizedString text, List<(int Start, int End)> pieces, char prefix, Func<NormalizedString, int, bool> wants)
    {
        bool any = false;
        foreach (var (start, end) in pieces)
        {
            any |= end > start && wants(text, start);
        }

        if (!any)
        {
            return;
        }

        string t = text.Text;
        var b = new NormalizedString.Builder(t.Length + pieces.Count);
        int copied = 0;
        for (int k = 0; k < pieces.Count; k++)
        {
            var (start, end) = pieces[k];
            for (; copied < start; copied++)
            {
                text.CopyChar(copied, b);
            }

            int newStart = b.Length;
            if (end > start && wants(text, start))
            {
                text.InsertZeroWidth(start, prefix.ToString(), b);
            }

            for (; copied < end; copied++)
            {
                text.CopyChar(copied, b);
            }

            pieces[k] = (newStart, b.Length);
        }

        for (; copied < t.Length; copied++)
        {
            text.CopyChar(copied, b);
        }

        text.Assign(b);
    }
}
