using System.CommandLine;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Cli;

/// <summary><c>lora merge</c>: base model + PEFT adapter → a complete Hugging Face model folder with W + s·B·A.</summary>
internal static class MergeCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "base Hugging Face model folder", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "PEFT adapter folder", Required = true };
        var outDir = new Option<string>("--out") { Description = "new folder for the merged model (must not exist or be empty)", Required = true };
        var dtype = new Option<string?>("--dtype") { Description = "saved dtype: f32 or bf16 (default: the base's torch_dtype)" };
        var backendOptions = new BackendOptions();
        var command = new Command("merge", "Merge a LoRA adapter into the base weights and write a complete model folder (config, safetensors, tokenizer files).") { model, adapter, outDir, dtype };
        backendOptions.AddTo(command);
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            var backend = backendOptions.Create(parse, Environment.ProcessorCount);

            // Merge in F32 whatever the checkpoint's dtype: W + s·B·A rounded once, on save.
            using var lm = ModelOptions.LoadBase(parse.GetValue(model)!, DType.F32, parse.GetValue(adapter));
            lm.To(backend);
            var saveType = parse.GetValue(dtype) is { } d ? DTypes.Parse(d) : lm.Config.TorchDtype == "bfloat16" ? DType.BF16 : DType.F32;
            var adapters = lm.LoadAdapter(parse.GetValue(adapter)!);
            lm.MergeAndUnload(DType.F32);
            lm.Save(parse.GetValue(outDir)!, saveType);
            output.WriteLine($"merged {adapters.Count} adapted layers into {Path.GetFullPath(parse.GetValue(outDir)!)} ({(saveType == DType.BF16 ? "bf16" : "f32")})");
            return 0;
        }));
        return command;
    }
}
