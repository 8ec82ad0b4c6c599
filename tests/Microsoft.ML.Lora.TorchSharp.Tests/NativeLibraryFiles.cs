using System.Reflection;

namespace Microsoft.ML.Lora.TorchSharp.Tests;

/// <summary>Where TorchSharp's native library is: the copy the build put beside the tests, and the NuGet cache's.</summary>
internal static class NativeLibraryFiles
{
    public const string LibraryName = "libLibTorchSharp.so";

    /// <summary>The output copy: flat when the tests build for a runtime identifier, under runtimes/ otherwise.</summary>
    public static string OutputCopy()
    {
        string flat = Path.Combine(AppContext.BaseDirectory, LibraryName);
        string portable = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", LibraryName);
        if (File.Exists(flat))
            return flat;
        Assert.True(File.Exists(portable), $"neither {flat} nor {portable} exists");
        return portable;
    }

    /// <summary>The package's own file, which the build must leave as it is.</summary>
    public static string PackageCopy()
    {
        string root = typeof(NativeLibraryFiles).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "NuGetPackageRoot").Value!;
        Version version = typeof(torch).Assembly.GetName().Version!;
        string path = Path.Combine(root, "torchsharp", $"{version.Major}.{version.Minor}.{version.Build}",
            "runtimes", "linux-x64", "native", LibraryName);
        Assert.True(File.Exists(path), $"{path} does not exist");
        return path;
    }
}
