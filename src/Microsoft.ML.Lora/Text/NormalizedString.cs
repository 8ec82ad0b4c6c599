using System.Text;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// Text after normalization, with the span of the original input each char came from, so that token
/// offsets can be reported in the caller's string. Alignment arrays are only materialized once a
/// normalizer changes the text; until then char i came from original char <c>Base + i</c>.
/// </summary>
internal sealed class NormalizedString
{
    private int[]? _starts;
    private int[]? _ends;

    public NormalizedString(string text, int baseOffset)
    {
        Text = text;
        Base = baseOffset;
    }

    private NormalizedString(string text, int[] starts, int[] ends)
    {
        Text = text;
        _starts = starts;
        _ends = ends;
    }

    public string Text { get; private set; }

    /// <summary>Original offset of char 0 while the text is unchanged.</summary>
    public int Base { get; }

    /// <summary>The original [start, end) that normalized chars [start, end) came from.</summary>
    public (int Start, int End) Original(int start, int end)
    {
        if (_starts is null)
        {
            return (Base + start, Base + end);
        }

        if (start >= end)
        {
            int at = start < Text.Length ? _starts[start] : (Text.Length == 0 ? Base : _ends![Text.Length - 1]);
            return (at, at);
        }

        int lo = int.MaxValue, hi = int.MinValue;
        for (int i = start; i < end; i++)
        {
            lo = Math.Min(lo, _starts[i]);
            hi = Math.Max(hi, _ends![i]);
        }

        return (lo, hi);
    }

    /// <summary>A copy of normalized chars [start, end) with their alignment.</summary>
    public NormalizedString Slice(int start, int end)
    {
        var b = new Builder(end - start);
        for (int i = start; i < end; i++)
        {
            var (s, e) = Original(i, i + 1);
            b.Add(Text[i], s, e);
        }

        return b.Build();
    }

    /// <summary>Replaces the text with the builder's content (each char with its original span).</summary>
    public void Assign(Builder builder)
    {
        Text = builder.ToString();
        (_starts, _ends) = builder.TakeAlignment();
    }

    /// <summary>Appends char i with its original span to <paramref name="b"/>.</summary>
    public void CopyChar(int i, Builder b)
    {
        var (s, e) = Original(i, i + 1);
        b.Add(Text[i], s, e);
    }

    /// <summary>Inserts <paramref name="s"/> before char <paramref name="at"/> as zero-width text at that char's original start.</summary>
    public void InsertZeroWidth(int at, string s, Builder b)
    {
        var (o, _) = Original(at, at);
        foreach (char c in s)
        {
            b.Add(c, o, o);
        }
    }

    /// <summary>Accumulates chars with their original spans.</summary>
    internal sealed class Builder(int capacity)
    {
        private readonly StringBuilder _text = new(capacity);
        private int[] _starts = new int[Math.Max(capacity, 4)];
        private int[] _ends = new int[Math.Max(capacity, 4)];

        public int Length => _text.Length;

        public void Add(char c, int originalStart, int originalEnd)
        {
            if (_text.Length == _starts.Length)
            {
                Array.Resize(ref _starts, _starts.Length * 2);
                Array.Resize(ref _ends, _ends.Length * 2);
            }

            _starts[_text.Length] = originalStart;
            _ends[_text.Length] = originalEnd;
            _text.Append(c);
        }

        public override string ToString() => _text.ToString();

        public (int[] Starts, int[] Ends) TakeAlignment() => (_starts, _ends);

        public NormalizedString Build() => new(_text.ToString(), _starts, _ends);
    }
}
