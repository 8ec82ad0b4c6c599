// The build task of Microsoft.ML.Lora.TorchSharp.targets, compiled by MSBuild's RoslynCodeTaskFactory against
// netstandard 2.0 (so: no spans, no File.Move overwrite). The tests compile the ELF part alone, with
// LORA_ELF_VERSION_NEEDS_ONLY defined, to check it on real and damaged files.
#nullable enable
using System;
using System.IO;
using System.Text;
#if !LORA_ELF_VERSION_NEEDS_ONLY
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// For each input ELF file that needs <see cref="VersionName"/> strongly, writes a copy under
/// <see cref="OutputDirectory"/> (plus the item's DestinationSubDirectory) in which that need is marked weak
/// (VER_FLG_WEAK), and returns the copy in place of the item, with the item's metadata. A file that does not
/// need the version, or needs it weakly already, comes back unchanged. The input file is never written.
/// </summary>
public sealed class WeakenElfVersionNeed : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    [Required] public string VersionName { get; set; } = "";

    [Required] public string OutputDirectory { get; set; } = "";

    [Output] public ITaskItem[] Result { get; set; } = Array.Empty<ITaskItem>();

    public override bool Execute()
    {
        var result = new ITaskItem[Files.Length];
        for (int i = 0; i < Files.Length; i++)
        {
            ITaskItem item = Files[i];
            result[i] = item;
            string source = item.GetMetadata("FullPath");
            byte[] bytes;
            ElfVersionNeed? need;
            try
            {
                bytes = File.ReadAllBytes(source);
                need = ElfVersionNeeds.Find(bytes, VersionName);
            }
            catch (Exception e) when (e is InvalidDataException || e is IOException || e is UnauthorizedAccessException)
            {
                Log.LogError("Cannot mark the {0} version need of '{1}' weak: {2}", VersionName, source, e.Message);
                continue;
            }
            if (need == null)
            {
                Log.LogMessage(MessageImportance.Low, "'{0}' does not need {1}; copied as it is.", source, VersionName);
                continue;
            }
            if (need.IsWeak)
            {
                Log.LogMessage(MessageImportance.Low, "'{0}' already needs {1} weakly; copied as it is.", source, VersionName);
                continue;
            }

            ElfVersionNeeds.MarkWeak(bytes, need);
            string destination = Path.GetFullPath(Path.Combine(
                OutputDirectory, item.GetMetadata("DestinationSubDirectory"), Path.GetFileName(source)));
            try
            {
                if (!SameContent(destination, bytes))
                {
                    WriteAtomically(source, destination, bytes);
                    Log.LogMessage(MessageImportance.Normal,
                        "Wrote '{0}': a copy of '{1}' whose {2} need (of {3}) is weak, so that an older libstdc++ loads it.",
                        destination, source, VersionName, need.File);
                }
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException)
            {
                Log.LogError("Cannot write the copy of '{0}' with a weak {1} need to '{2}': {3}", source, VersionName, destination, e.Message);
                continue;
            }
            var patched = new TaskItem(destination);
            item.CopyMetadataTo(patched);
            patched.SetMetadata("WeakenedFrom", source);
            result[i] = patched;
        }
        Result = result;
        return !Log.HasLoggedErrors;
    }

    static bool SameContent(string path, byte[] expected)
    {
        if (!File.Exists(path) || new FileInfo(path).Length != expected.Length)
            return false;
        byte[] actual = File.ReadAllBytes(path);
        for (int i = 0; i < actual.Length; i++)
        {
            if (actual[i] != expected[i])
                return false;
        }
        return true;
    }

    // A temporary file beside the destination, renamed over it: a reader never sees half a library.
    static void WriteAtomically(string source, string destination, byte[] bytes)
    {
        string directory = Path.GetDirectoryName(destination)!;
        Directory.CreateDirectory(directory);
        string temporary = Path.Combine(directory, "." + Path.GetFileName(destination) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            // Copying first keeps the source's permission bits; then the whole content is written over it.
            File.Copy(source, temporary, overwrite: true);
            using (var stream = new FileStream(temporary, FileMode.Open, FileAccess.Write, FileShare.None))
            {
                stream.SetLength(0);
                stream.Write(bytes, 0, bytes.Length);
                stream.Flush(flushToDisk: true);
            }
            if (File.Exists(destination))
                File.Replace(temporary, destination, destinationBackupFileName: null);
            else
                File.Move(temporary, destination);
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
    }
}
#endif

/// <summary>One Elf64_Vernaux entry of .gnu.version_r: a version a file needs from one of its libraries.</summary>
internal sealed class ElfVersionNeed
{
    public ElfVersionNeed(string file, string name, long flagsOffset, ushort flags)
    {
        File = file;
        Name = name;
        FlagsOffset = flagsOffset;
        Flags = flags;
    }

    /// <summary>The library the version is needed from (vn_file), e.g. libstdc++.so.6.</summary>
    public string File { get; }

    public string Name { get; }

    /// <summary>Where vna_flags lies in the file.</summary>
    public long FlagsOffset { get; }

    public ushort Flags { get; }

    public bool IsWeak => (Flags & ElfVersionNeeds.VerFlagWeak) != 0;
}

/// <summary>
/// Reads the version needs (.gnu.version_r) of a little-endian ELF64 file through its section headers, and
/// marks one weak. glibc's loader reports a missing weak version only in verbose mode (LD_VERBOSE / ldd -v)
/// instead of refusing to load the file.
/// </summary>
internal static class ElfVersionNeeds
{
    public const ushort VerFlagWeak = 0x2;
    const uint ShtStrtab = 3;
    const uint ShtGnuVerneed = 0x6ffffffe;
    const int SectionHeaderSize = 64;
    const int VerneedSize = 16;
    const int VernauxSize = 16;

    /// <summary>
    /// The need for version <paramref name="name"/>, or null when the file has no version needs or none of
    /// that name. Throws <see cref="InvalidDataException"/> when the file is not a little-endian ELF64 file or
    /// its version needs are not laid out as the ELF specification says.
    /// </summary>
    public static ElfVersionNeed? Find(byte[] elf, string name)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2)
            throw new InvalidDataException("not a 64-bit ELF file (EI_CLASS " + elf[4] + ")");
        if (elf[5] != 1)
            throw new InvalidDataException("not a little-endian ELF file (EI_DATA " + elf[5] + ")");

        long sectionHeaders = Offset(elf, U64(elf, 0x28), "e_shoff");
        int sectionHeaderSize = U16(elf, 0x3A);
        long sectionCount = U16(elf, 0x3C);
        if (sectionHeaders == 0)
            return null; // no section headers at all: nothing to find them by
        if (sectionHeaderSize != SectionHeaderSize)
            throw new InvalidDataException("section header size " + sectionHeaderSize + ", expected " + SectionHeaderSize);
        Need(elf, sectionHeaders, SectionHeaderSize, "section header 0");
        if (sectionCount == 0)
            sectionCount = (long)U64(elf, sectionHeaders + 32); // extended numbering: sh_size of section 0
        Need(elf, sectionHeaders, sectionCount * SectionHeaderSize, "section headers");
        // The section is found by its type, SHT_GNU_verneed, as the loader's tools do; ".gnu.version_r" is its usual name.

        long verneedHeader = -1;
        for (long i = 0; i < sectionCount; i++)
        {
            long header = sectionHeaders + i * SectionHeaderSize;
            if (U32(elf, header + 4) != ShtGnuVerneed)
                continue;
            if (verneedHeader >= 0)
                throw new InvalidDataException("more than one version-needs section");
            verneedHeader = header;
        }
        if (verneedHeader < 0)
            return null;

        long sectionOffset = Offset(elf, U64(elf, verneedHeader + 24), ".gnu.version_r sh_offset");
        long sectionSize = Offset(elf, U64(elf, verneedHeader + 32), ".gnu.version_r sh_size");
        uint stringsIndex = U32(elf, verneedHeader + 40);
        uint entryCount = U32(elf, verneedHeader + 44);
        Need(elf, sectionOffset, sectionSize, ".gnu.version_r");
        if (stringsIndex == 0 || stringsIndex >= sectionCount)
            throw new InvalidDataException(".gnu.version_r links to section " + stringsIndex + ", which does not exist");
        long stringsHeader = sectionHeaders + stringsIndex * SectionHeaderSize;
        if (U32(elf, stringsHeader + 4) != ShtStrtab)
            throw new InvalidDataException(".gnu.version_r links to section " + stringsIndex + ", which is not a string table");
        long stringsOffset = Offset(elf, U64(elf, stringsHeader + 24), ".dynstr sh_offset");
        long stringsSize = Offset(elf, U64(elf, stringsHeader + 32), ".dynstr sh_size");
        Need(elf, stringsOffset, stringsSize, ".dynstr");

        ElfVersionNeed? found = null;
        long verneed = 0; // offset within the section
        for (uint n = 0; n < entryCount; n++)
        {
            if (verneed < 0 || verneed > sectionSize - VerneedSize)
                throw new InvalidDataException("Elf64_Verneed " + n + " lies outside .gnu.version_r");
            long at = sectionOffset + verneed;
            ushort version = U16(elf, at);
            if (version != 1)
                throw new InvalidDataException("Elf64_Verneed " + n + " has vn_version " + version + ", expected 1");
            int auxCount = U16(elf, at + 2);
            string file = String(elf, stringsOffset, stringsSize, U32(elf, at + 4));
            long aux = verneed + U32(elf, at + 8);
            for (int k = 0; k < auxCount; k++)
            {
                if (aux < 0 || aux > sectionSize - VernauxSize)
                    throw new InvalidDataException("Elf64_Vernaux " + k + " of " + file + " lies outside .gnu.version_r");
                long auxAt = sectionOffset + aux;
                uint hash = U32(elf, auxAt);
                ushort flags = U16(elf, auxAt + 4);
                string auxName = String(elf, stringsOffset, stringsSize, U32(elf, auxAt + 8));
                if (auxName == name)
                {
                    if (hash != ElfHash(auxName))
                        throw new InvalidDataException("the vna_hash of " + name + " (of " + file + ") does not match its name");
                    if (found != null)
                        throw new InvalidDataException(name + " is needed twice (of " + found.File + " and of " + file + ")");
                    found = new ElfVersionNeed(file, auxName, auxAt + 4, flags);
                }
                uint nextAux = U32(elf, auxAt + 12);
                if (nextAux == 0)
                {
                    if (k != auxCount - 1)
                        throw new InvalidDataException("the Elf64_Vernaux chain of " + file + " ends after " + (k + 1) + " of " + auxCount + " entries");
                    break;
                }
                aux += nextAux;
            }
            uint next = U32(elf, at + 12);
            if (next == 0)
            {
                if (n != entryCount - 1)
                    throw new InvalidDataException("the Elf64_Verneed chain ends after " + (n + 1) + " of " + entryCount + " entries");
                break;
            }
            verneed += next;
        }
        return found;
    }

    /// <summary>Sets VER_FLG_WEAK in the need's vna_flags; the need must have been found in these bytes.</summary>
    public static void MarkWeak(byte[] elf, ElfVersionNeed need)
    {
        ushort flags = (ushort)(U16(elf, need.FlagsOffset) | VerFlagWeak);
        elf[need.FlagsOffset] = (byte)flags;
        elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
    }

    /// <summary>The System V ELF hash, which vna_hash holds for vna_name.</summary>
    public static uint ElfHash(string name)
    {
        uint h = 0;
        foreach (byte c in Encoding.ASCII.GetBytes(name))
        {
            h = (h << 4) + c;
            uint g = h & 0xf0000000;
            if (g != 0)
                h ^= g >> 24;
            h &= ~g;
        }
        return h;
    }

    static string String(byte[] elf, long tableOffset, long tableSize, uint index)
    {
        if (index >= tableSize)
            throw new InvalidDataException("string " + index + " lies outside .dynstr");
        long start = tableOffset + index;
        long end = start;
        while (end < tableOffset + tableSize && elf[end] != 0)
            end++;
        if (end == tableOffset + tableSize)
            throw new InvalidDataException("string " + index + " of .dynstr is not terminated");
        return Encoding.ASCII.GetString(elf, (int)start, (int)(end - start));
    }

    static long Offset(byte[] elf, ulong value, string what)
    {
        if (value > (ulong)elf.Length)
            throw new InvalidDataException(what + " (" + value + ") lies beyond the end of the file");
        return (long)value;
    }

    static void Need(byte[] elf, long offset, long size, string what)
    {
        if (offset < 0 || size < 0 || offset > elf.Length - size)
            throw new InvalidDataException(what + " lies beyond the end of the file");
    }

    static ushort U16(byte[] b, long at)
    {
        Need(b, at, 2, "a field");
        return (ushort)(b[at] | b[at + 1] << 8);
    }

    static uint U32(byte[] b, long at)
    {
        Need(b, at, 4, "a field");
        return (uint)(b[at] | b[at + 1] << 8 | b[at + 2] << 16 | b[at + 3] << 24);
    }

    static ulong U64(byte[] b, long at) => U32(b, at) | (ulong)U32(b, at + 4) << 32;
}
