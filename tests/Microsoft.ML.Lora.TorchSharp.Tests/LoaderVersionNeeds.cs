using System.Buffers.Binary;
using System.Text;

namespace Microsoft.ML.Lora.TorchSharp.Tests;

/// <summary>
/// The version needs of an ELF64 little-endian file as the dynamic loader finds them: through the program
/// headers and the dynamic segment (DT_VERNEED, DT_VERNEEDNUM, DT_STRTAB), not through the section headers the
/// build task reads. A check that shares nothing with the code it checks.
/// </summary>
internal static class LoaderVersionNeeds
{
    public sealed record Need(string File, string Name, ushort Flags)
    {
        public bool IsWeak => (Flags & 0x2) != 0;
    }

    public static IReadOnlyList<Need> Read(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (!elf.AsSpan(0, 4).SequenceEqual("\u007fELF"u8) || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException($"{path} is not a little-endian ELF64 file");

        ulong programHeaders = U64(elf, 0x20);
        int programHeaderSize = U16(elf, 0x36);
        int programHeaderCount = U16(elf, 0x38);
        var loads = new List<(ulong VirtualAddress, ulong Offset, ulong Size)>();
        (ulong Offset, ulong Size)? dynamic = null;
        for (int i = 0; i < programHeaderCount; i++)
        {
            int at = checked((int)programHeaders + i * programHeaderSize);
            uint type = U32(elf, at);
            ulong offset = U64(elf, at + 8), address = U64(elf, at + 16), size = U64(elf, at + 32);
            if (type == 1) // PT_LOAD
                loads.Add((address, offset, size));
            else if (type == 2) // PT_DYNAMIC
                dynamic = (offset, size);
        }
        if (dynamic is null)
            return [];

        ulong strtab = 0, verneed = 0, verneedCount = 0;
        for (ulong at = dynamic.Value.Offset; at < dynamic.Value.Offset + dynamic.Value.Size; at += 16)
        {
            long tag = (long)U64(elf, (int)at);
            ulong value = U64(elf, (int)at + 8);
            if (tag == 0) // DT_NULL
                break;
            switch (tag)
            {
                case 5: strtab = value; break; // DT_STRTAB
                case 0x6ffffffe: verneed = value; break; // DT_VERNEED
                case 0x6fffffff: verneedCount = value; break; // DT_VERNEEDNUM
            }
        }
        if (verneed == 0)
            return [];

        int FileOffset(ulong address)
        {
            foreach (var (virtualAddress, offset, size) in loads)
            {
                if (address >= virtualAddress && address < virtualAddress + size)
                    return checked((int)(address - virtualAddress + offset));
            }
            throw new InvalidDataException($"address 0x{address:x} is in no loaded segment");
        }
        int strings = FileOffset(strtab);
        string Str(uint index)
        {
            ReadOnlySpan<byte> rest = elf.AsSpan(strings + (int)index);
            return Encoding.ASCII.GetString(rest[..rest.IndexOf((byte)0)]);
        }

        var needs = new List<Need>();
        int entry = FileOffset(verneed);
        for (ulong n = 0; n < verneedCount; n++)
        {
            string file = Str(U32(elf, entry + 4));
            int aux = entry + (int)U32(elf, entry + 8);
            for (int k = 0; k < U16(elf, entry + 2); k++)
            {
                needs.Add(new Need(file, Str(U32(elf, aux + 8)), U16(elf, aux + 4)));
                aux += (int)U32(elf, aux + 12);
            }
            entry += (int)U32(elf, entry + 12);
        }
        return needs;
    }

    static ushort U16(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt16LittleEndian(b[at..]);

    static uint U32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);

    static ulong U64(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(b[at..]);
}
