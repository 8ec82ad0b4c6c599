using System.CommandLine;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.Cli;

/// <summary><c>lora export-onnx</c>: the model (with its adapter merged) as an ONNX file that ONNX Runtime runs.</summary>
internal static class ExportOnnxCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new ModelOptions();
        var backendOptions = new BackendOptions();
        var outFile = new Option<string>("--out") { Description = "the .onnx file to write (with --genai: the new folder)", Required = true };
        var gqa = new Option<bool>("--gqa") { Description = "with --kv-cache or --genai: attention as ONNX Runtime's fused GroupQueryAttention with a shared KV buffer (GenAI's own layout; faster decoding)" };
        var genai = new Option<bool>("--genai") { Description = "write an ONNX Runtime GenAI folder at --out: model.onnx (KV cache), genai_config.json and the tokenizer files" };
        var external = new Option<bool>("--external-data") { Description = "store weights in <out>.data beside the model (automatic past 2 GB)" };
        var kvCache = new Option<bool>("--kv-cache") { Description = "add position_ids, past_key_values.N.key/value inputs and present.N.key/value outputs (ONNX Runtime GenAI layout)" };
        var fp16 = new Option<bool>("--fp16") { Description = "store weights as float16 (half the file; arithmetic stays F32)" };
        var adaptersAsInputs = new Option<bool>("--adapters-as-inputs") { Description = "keep base weights unmerged; the --adapter's layers read lora_A/lora_B/lora_scale from graph inputs" };
        var int4 = new Option<bool>("--int4") { Description = "decoder Linear weights as ONNX Runtime's 4-bit MatMulNBits (com.microsoft, block --int4-block)" };
        var int4Block = new Option<int>("--int4-block") { Description = "elements per 4-bit block: 32 or 64", DefaultValueFactory = _ => 32 };
        var command = new Command("export-onnx", "Export to ONNX (opset 17, F32): inputs input_ids and attention_mask, output logits; an --adapter is merged into the weights.") { outFile, genai, gqa, external, kvCache, fp16, adaptersAsInputs, int4, int4Block };
        model.AddTo(command);
        backendOptions.AddTo(command);
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            if (parse.GetValue(model.Quantize) is not null)
            {
                throw new ArgumentException("export-onnx dequantizes nothing itself: load the model without --quantize (use --int4 for 4-bit weights in the file)");
            }

            if (parse.GetValue(int4Block) is not (32 or 64))
            {
                throw new ArgumentException($"--int4-block must be 32 or 64; got {parse.GetValue(int4Block)}");
            }

            if (parse.GetValue(int4) && parse.GetValue(adaptersAsInputs))
            {
                throw new ArgumentException("--int4 and --adapters-as-inputs cannot be combined yet: 4-bit layers take no adapter inputs");
            }

            var backend = backendOptions.Create(parse, Environment.ProcessorCount);
            using var lm = model.Load(parse, backend);
            string path = Path.GetFullPath(parse.GetValue(outFile)!);
            var options = new OnnxExportOptions { ExternalData = parse.GetValue(external), KvCache = parse.GetValue(kvCache), Float16Weights = parse.GetValue(fp16), AdaptersAsInputs = parse.GetValue(adaptersAsInputs), Int4 = parse.GetValue(int4), Int4BlockSize = parse.GetValue(int4Block), GroupQueryAttention = parse.GetValue(gqa) };
            if (parse.GetValue(gqa) && !parse.GetValue(genai) && !parse.GetValue(kvCache))
            {
                throw new ArgumentException("--gqa is a KV-cache layout: add --kv-cache or --genai");
            }

            if (parse.GetValue(genai))
            {
                GenAiFolderExporter.Export(lm, path, options);
                long total = Directory.EnumerateFiles(path).Sum(static f => new FileInfo(f).Length);
                output.WriteLine($"wrote {path}{Path.DirectorySeparatorChar} ({string.Join(", ", Directory.EnumerateFiles(path).Select(Path.GetFileName).Order(StringComparer.Ordinal))}; {total / 1048576.0:F1} MB)");
                return 0;
            }

            LlamaOnnxExporter.Export(lm, path, options);
            long bytes = new FileInfo(path).Length + (File.Exists(path + ".data") ? new FileInfo(path + ".data").Length : 0);
            output.WriteLine($"wrote {path} ({bytes / 1048576.0:F1} MB)");
            return 0;
        }));
        return command;
    }
}
