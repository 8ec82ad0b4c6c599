using System.IO.Compression;
using Microsoft.AspNetCore.Http;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>
/// A folder's files sent as a zip: written to a temporary file first (ZipArchive writes synchronously), deleted
/// once sent. Only the regular files directly in the folder go in (an adapter or an export is flat): a symbolic
/// link or a subfolder that appeared there would otherwise carry files from elsewhere into the download.
/// </summary>
internal static class ZipResults
{
    public static IResult Folder(string folder, string downloadName)
    {
        string temp = Path.Combine(Path.GetTempPath(), $"lora-{Guid.NewGuid():N}.zip");
        try
        {
            using (var zip = ZipFile.Open(temp, ZipArchiveMode.Create))
            {
                foreach (var file in new DirectoryInfo(folder).EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
                {
                    if (file.LinkTarget is null)
                    {
                        zip.CreateEntryFromFile(file.FullName, file.Name, CompressionLevel.Fastest);
                    }
                }
            }

            var stream = new FileStream(temp, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            return Results.File(stream, "application/zip", downloadName);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
