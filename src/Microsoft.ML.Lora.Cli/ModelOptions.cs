using System.CommandLine;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Cli;

/// <summary>The options that say which model to load and how: folder, dtype, NF4 quantization, adapter.</summary>
internal sealed class ModelOptions
{
    public Option<string> Model { get; } = new("--model") { Description = "Hugging Face model folder (config.json + safetensors)", Required = true };

    public Option<string> DType { get; } = new("--dtype") { Description = "base weight dtype: f32 or bf16", DefaultValueFactory = _ => "f32" };

    public Option<string?> Quantize { get; } = new("--quantize") { Description = "nf4: store the decoder's linear weights as NF4 (QLoRA)" };

    public Option<bool> DoubleQuant { get; } = new("--double-quant") { Description = "with --quantize nf4: also quantize the absmax constants (8-bit, block 256)" };

    public Option<string?> Adapter { get; } = new("--adapter") { Description = "PEFT adapter folder (adapter_config.json + adapter_model.safetensors) to apply" };

    /// <summary>Adds the options (all, or without <c>--adapter</c>) to <paramref name="command"/>.</summary>
    public void AddTo(Command command, bool withAdapter = true)
    {
        command.Options.Add(Model);
        command.Options.Add(DType);
        command.Options.Add(Quantize);
        command.Options.Add(DoubleQuant);
        if (withAdapter)
        {
            command.Options.Add(Adapter);
        }
    }

    /// <summary>
    /// Loads a base model for <paramref name="adapter"/>: a sequence-classification adapter (PEFT SEQ_CLS,
    /// with a trained <c>score</c> head) needs the base as a classifier with as many classes, as
    /// <c>AutoModelForSequenceClassification.from_pretrained(base, num_labels=K)</c> builds it; its head
    /// is then replaced by the adapter's.
    /// </summary>
    public static LlamaForCausalLM LoadBase(string directory, DType dtype, string? adapter) =>
        adapter is not null && PeftAdapter.NumLabels(adapter) is int labels
            ? LlamaForCausalLM.LoadForSequenceClassification(directory, labels, dtype)
            : LlamaForCausalLM.Load(directory, dtype);

    /// <summary>
    /// Loads the model as the options say, onto <paramref name="backend"/>: NF4 quantization runs on the host
    /// first, so only the packed weights cross to a device; the adapter is then loaded on the device.
    /// </summary>
    public LlamaForCausalLM Load(ParseResult parse, Backend backend)
    {
        string? quantize = parse.GetValue(Quantize);
        if (quantize is not null && quantize != "nf4")
        {
            throw new ArgumentException($"--quantize takes nf4; got '{quantize}'");
        }

        if (parse.GetValue(DoubleQuant) && quantize is null)
        {
            throw new ArgumentException("--double-quant needs --quantize nf4");
        }

        string? adapter = parse.GetValue(Adapter);
        var model = LoadBase(parse.GetValue(Model)!, DTypes.Parse(parse.GetValue(DType)!), adapter);
        try
        {
            if (quantize is not null)
            {
                model.QuantizeNf4(parse.GetValue(DoubleQuant));
            }

            model.To(backend);
            if (adapter is not null)
            {
                model.LoadAdapter(adapter);
            }

            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
