using System.CommandLine;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Cli;

/// <summary>
/// <c>lora export-adapter</c>: a PEFT adapter as an ONNX Runtime LoRA adapter file (<c>.onnx_adapter</c>) for the
/// <c>export-onnx --adapters-as-inputs</c> export of the same base.
/// </summary>
internal static class ExportAdapterCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "base Hugging Face model folder the adapter was trained on", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "PEFT adapter folder", Required = true };
        var outFile = new Option<string>("--out") { Description = "the .onnx_adapter file to write", Required = true };
        var command = new Command("export-adapter", "Write a PEFT adapter as an ONNX Runtime LoRA adapter file (.onnx_adapter) whose parameters feed an export-onnx --adapters-as-inputs base.") { model, adapter, outFile };
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            string path = Path.GetFullPath(parse.GetValue(outFile)!);
            if (!path.EndsWith(OnnxAdapterFile.Extension, StringComparison.Ordinal))
            {
                throw new ArgumentException($"--out {path}: an ONNX Runtime adapter file ends in {OnnxAdapterFile.Extension} (GenAI and ORT look for it)");
            }

            // Loading the adapter onto the base checks that its modules and shapes fit that base.
            using var lm = ModelOptions.LoadBase(parse.GetValue(model)!, DType.F32, parse.GetValue(adapter));
            var adapted = lm.LoadAdapter(parse.GetValue(adapter)!);
            LlamaOnnxExporter.ExportAdapter(lm, path);
            output.WriteLine($"wrote {path} ({adapted.Count} adapted layers, {new FileInfo(path).Length / 1024.0:F1} KB)");
            return 0;
        }));
        return command;
    }
}
