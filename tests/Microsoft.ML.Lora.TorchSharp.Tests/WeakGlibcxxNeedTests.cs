namespace Microsoft.ML.Lora.TorchSharp.Tests;

/// <summary>
/// The build gives the output copy of libLibTorchSharp.so a weak GLIBCXX_3.4.32 need, changing nothing else and
/// leaving the NuGet cache alone; the ELF reader of its task finds and marks the need, and refuses damaged files.
/// </summary>
public sealed class WeakGlibcxxNeedTests
{
    const string Version = "GLIBCXX_3.4.32";

    [Fact]
    public void OutputCopyNeedsTheVersionWeakly()
    {
        if (!OperatingSystem.IsLinux())
            return; // the build weakens the need only when it builds for Linux
        var need = Assert.Single(LoaderVersionNeeds.Read(NativeLibraryFiles.OutputCopy()), n => n.Name == Version);
        Assert.Equal("libstdc++.so.6", need.File);
        Assert.True(need.IsWeak);
        // Every other need stays as strong as the package made it.
        Assert.All(LoaderVersionNeeds.Read(NativeLibraryFiles.OutputCopy()).Where(n => n.Name != Version), n => Assert.False(n.IsWeak, n.Name));
    }

    [Fact]
    public void OutputCopyDiffersFromThePackageOnlyInThatFlag()
    {
        if (!OperatingSystem.IsLinux())
            return;
        string package = NativeLibraryFiles.PackageCopy();
        Assert.False(Assert.Single(LoaderVersionNeeds.Read(package), n => n.Name == Version).IsWeak);

        byte[] original = File.ReadAllBytes(package);
        byte[] copy = File.ReadAllBytes(NativeLibraryFiles.OutputCopy());
        Assert.Equal(original.Length, copy.Length);
        int[] changed = Enumerable.Range(0, original.Length).Where(i => original[i] != copy[i]).ToArray();
        int at = Assert.Single(changed);
        Assert.Equal(original[at] | 0x2, copy[at]); // the low byte of vna_flags, VER_FLG_WEAK added
    }

    [Fact]
    public void ReaderFindsTheNeedAndMarksItWeakOnce()
    {
        byte[] elf = File.ReadAllBytes(NativeLibraryFiles.PackageCopy());
        ElfVersionNeed need = ElfVersionNeeds.Find(elf, Version)!;
        Assert.NotNull(need);
        Assert.Equal("libstdc++.so.6", need.File);
        Assert.False(need.IsWeak);

        ElfVersionNeeds.MarkWeak(elf, need);
        byte[] once = (byte[])elf.Clone();
        Assert.True(ElfVersionNeeds.Find(elf, Version)!.IsWeak);
        ElfVersionNeeds.MarkWeak(elf, ElfVersionNeeds.Find(elf, Version)!);
        Assert.Equal(once, elf);
    }

    [Fact]
    public void ReaderFindsNothingForAVersionTheFileDoesNotNeed()
    {
        byte[] elf = File.ReadAllBytes(NativeLibraryFiles.PackageCopy());
        Assert.Null(ElfVersionNeeds.Find(elf, "GLIBCXX_9.9.99"));
        Assert.NotNull(ElfVersionNeeds.Find(elf, "GLIBC_2.34")); // libc.so.6's, found as well
    }

    [Fact]
    public void ReaderRefusesFilesThatAreNotLittleEndianElf64()
    {
        Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Find(new byte[4096], Version));
        byte[] elf = File.ReadAllBytes(NativeLibraryFiles.PackageCopy());
        elf[4] = 1; // ELFCLASS32
        Assert.Contains("64-bit", Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Find(elf, Version)).Message);
        elf[4] = 2;
        elf[5] = 2; // big-endian
        Assert.Contains("little-endian", Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Find(elf, Version)).Message);
        elf[5] = 1;
        Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Find(elf.AsSpan(0, 4096).ToArray(), Version)); // truncated
    }

    [Fact]
    public void ReaderRefusesAnUnexpectedVersionNeedsLayout()
    {
        byte[] original = File.ReadAllBytes(NativeLibraryFiles.PackageCopy());
        long flags = ElfVersionNeeds.Find(original, Version)!.FlagsOffset;

        byte[] wrongHash = (byte[])original.Clone();
        wrongHash[flags - 4] ^= 1; // vna_hash sits just before vna_flags
        Assert.Contains("vna_hash", Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Find(wrongHash, Version)).Message);

        byte[] wrongChain = (byte[])original.Clone();
        wrongChain[flags + 8] = 0xff; // vna_next of the entry points far outside the section
        wrongChain[flags + 9] = 0xff;
        Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Find(wrongChain, Version));
    }
}
