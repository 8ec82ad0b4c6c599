namespace Microsoft.ML.Lora.Text;

/// <summary>
/// GPT-2's reversible byte → char map used by byte-level BPE vocabularies: printable Latin-1 bytes
/// (0x21–0x7E, 0xA1–0xAC, 0xAE–0xFF) stand for themselves, the other 68 bytes are assigned U+0100,
/// U+0101, … in byte order (so the space 0x20 is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A).
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>Char for each byte.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    // Char → byte + 1 (0 = not in the alphabet), for chars below U+0144.
    private static readonly short[] CharToBytePlusOne = BuildCharToByte();

    /// <summary>The byte <paramref name="c"/> stands for, or -1 when it is not in the alphabet.</summary>
    public static int CharToByte(char c) => c < CharToBytePlusOne.Length ? CharToBytePlusOne[c] - 1 : -1;

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }

    private static short[] BuildCharToByte()
    {
        var inverse = new short[0x144];
        for (int b = 0; b < 256; b++)
        {
            inverse[ByteToChar[b]] = (short)(b + 1);
        }

        return inverse;
    }
}
