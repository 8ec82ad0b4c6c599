using System.IO.Compression;
using Microsoft.AspNetCore.Http;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>A folder sent as a zip: written to a temporary file first (ZipArchive writes synchronously), deleted once sent.</summary>
internal static class ZipResults
{
    public static IResult Folder(string folder, string downloadName)
    {
        string temp = Path.Combine(Path.GetTempPath(), $"lora-{Guid.NewGuid():N}.zip");
        ZipFile.CreateFromDirectory(folder, temp, CompressionLevel.Fastest, includeBaseDirectory: false);
        var stream = new FileStream(temp, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        return Results.File(stream, "application/zip", downloadName);
    }
}
