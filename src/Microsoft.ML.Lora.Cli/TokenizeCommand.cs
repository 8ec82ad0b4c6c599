using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Cli;

/// <summary><c>lora tokenize</c>: token ids of a text with a model folder's tokenizer.json, as a JSON array.</summary>
internal static class TokenizeCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model folder (tokenizer.json, tokenizer_config.json)", Required = true };
        var text = new Option<string?>("--text") { Description = "text to tokenize" };
        var file = new Option<string?>("--file") { Description = "UTF-8 file whose whole content is tokenized" };
        var noSpecial = new Option<bool>("--no-special") { Description = "do not add the tokenizer's special tokens (e.g. BOS)" };
        var command = new Command("tokenize", "Print the token ids of a text as a JSON array.") { model, text, file, noSpecial };
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            string? t = parse.GetValue(text);
            string? f = parse.GetValue(file);
            if ((t is null) == (f is null))
            {
                throw new ArgumentException("give exactly one of --text or --file");
            }

            if (f is not null && Directory.Exists(f))
            {
                throw new ArgumentException($"--file '{Path.GetFullPath(f)}' is a folder; give a text file");
            }

            string input = t ?? File.ReadAllText(f!);
            int[] ids = Tokenizer.Load(parse.GetValue(model)!).Encode(input, addSpecialTokens: !parse.GetValue(noSpecial));
            output.WriteLine("[" + string.Join(",", ids.Select(id => id.ToString(CultureInfo.InvariantCulture))) + "]");
            return 0;
        }));
        return command;
    }
}
