namespace Microsoft.ML.Lora.MLNet;

/// <summary>The error of <c>mlContext.Model.Save</c> on a pipeline holding a LoRA transformer.</summary>
internal static class SaveNotSupported
{
    // ML.NET's model zip stores each transformer through its internal ModelSaveContext and loads it back
    // through its internal loadable-class registry; neither is open to components outside ML.NET.
    public static NotSupportedException For(string transformer) => new(
        $"{transformer} cannot be saved into an ML.NET model file (mlContext.Model.Save): ML.NET's model format is only " +
        "open to ML.NET's own components. Save the adapter with SaveAdapter(directory) and load it back with " +
        $"{transformer}.Load(mlContext, directory) (or export the merged model with ExportOnnx); save the rest of the pipeline " +
        "(the steps before and after it) in an ML.NET zip of its own, as docs/mlnet-saving.md shows.");
}
