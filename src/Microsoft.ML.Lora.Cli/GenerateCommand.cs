using System.CommandLine;
using System.Text.Json;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Cli;

/// <summary><c>lora generate</c>: text in, text out, streamed as tokens are chosen.</summary>
internal static class GenerateCommand
{
    // End-of-turn markers of the chat formats: generation stops at whichever the vocabulary has.
    private static readonly string[] TurnEnds = ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>"];

    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new ModelOptions();
        var backendOptions = new BackendOptions();
        var prompt = new Option<string?>("--prompt") { Description = "prompt text (raw; with --chat-template it becomes one user message)" };
        var messages = new Option<string?>("--messages") { Description = "JSON file: [{\"role\": \"system|user|assistant\", \"content\": \"...\"}, ...]" };
        var template = new Option<string?>(ChatTemplate.OptionName) { Description = $"chat format: {string.Join(", ", ChatTemplate.Names)} (default with --messages: detected from tokenizer_config.json)" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "tokens to generate at most", DefaultValueFactory = _ => 128 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0 };
        var topK = new Option<int>("--top-k") { Description = "sample among the k most likely (0 = off)", DefaultValueFactory = _ => 0 };
        var topP = new Option<double>("--top-p") { Description = "nucleus sampling mass (1 = off)", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "sampler seed", DefaultValueFactory = _ => 0 };
        var stop = new Option<string[]>("--stop") { Description = "extra stop token(s), as tokens of the vocabulary", AllowMultipleArgumentsPerToken = true };
        var noCache = new Option<bool>("--no-cache") { Description = "recompute the whole sequence per token instead of using the KV cache" };
        var threads = new Option<int>("--threads") { Description = "CPU threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("generate", "Generate text from a prompt or a chat, with the KV cache, greedy or sampled, streamed to stdout.")
        {
            prompt, messages, template, maxNew, temperature, topK, topP, seed, stop, noCache, threads,
        };
        model.AddTo(command);
        backendOptions.AddTo(command);
        command.SetAction((parse, cancellationToken) => Task.FromResult(CommandErrors.Guard(error, () =>
        {
            var backend = backendOptions.Create(parse, parse.GetValue(threads));
            string dir = parse.GetValue(model.Model)!;
            if ((parse.GetValue(prompt) is null) == (parse.GetValue(messages) is null))
            {
                throw new ArgumentException("give exactly one of --prompt TEXT or --messages FILE");
            }

            if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
            {
                throw new FileNotFoundException($"'{dir}' has no tokenizer.json; generate needs the model's tokenizer");
            }

            var tokenizer = Tokenizer.Load(dir);
            var chat = parse.GetValue(template) is { } name ? ChatTemplate.FromName(name) : null;
            int[] ids;
            if (parse.GetValue(messages) is { } file)
            {
                chat ??= ChatTemplate.Resolve(null, dir);
                ids = tokenizer.Encode(chat.Render(ReadMessages(file), addGenerationPrompt: true).Text, addSpecialTokens: false);
            }
            else if (chat is not null)
            {
                ids = tokenizer.Encode(chat.Render([new ChatMessage(ChatRole.User, parse.GetValue(prompt)!)], addGenerationPrompt: true).Text, addSpecialTokens: false);
            }
            else
            {
                ids = tokenizer.Encode(parse.GetValue(prompt)!, addSpecialTokens: true);
            }

            var stops = new List<int>();
            if (tokenizer.EosTokenId is int eos)
            {
                stops.Add(eos);
            }

            foreach (string token in (chat is null ? [] : TurnEnds).Concat(parse.GetValue(stop) ?? []))
            {
                if (tokenizer.TokenToId(token) is int id)
                {
                    stops.Add(id);
                }
                else if (!TurnEnds.Contains(token))
                {
                    throw new ArgumentException($"--stop '{token}' is not a token of this vocabulary");
                }
            }

            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                Seed = parse.GetValue(seed),
                StopTokenIds = stops,
                UseCache = !parse.GetValue(noCache),
            };
            using var lm = model.Load(parse, backend);
            var generated = new List<int>();
            string shown = string.Empty;
            foreach (int token in Generator.Generate(lm, ids, options, cancellationToken))
            {
                generated.Add(token);

                // Decode everything so far and print the new suffix: a character split over tokens appears whole.
                string text = tokenizer.Decode(generated.Where(t => !stops.Contains(t)).ToArray(), skipSpecialTokens: true);
                if (text.StartsWith(shown, StringComparison.Ordinal) && !text.EndsWith('\uFFFD'))
                {
                    output.Write(text[shown.Length..]);
                    output.Flush();
                    shown = text;
                }
            }

            output.WriteLine();
            return 0;
        })));
        return command;
    }

    private static List<ChatMessage> ReadMessages(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(file));
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException($"{file}: expected a JSON array of {{\"role\", \"content\"}} objects");
        }

        var result = new List<ChatMessage>();
        int i = 0;
        foreach (var m in doc.RootElement.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String
                || !m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
            {
                throw new InvalidDataException($"{file}: message {i} needs string \"role\" and \"content\"");
            }

            var parsed = ChatMessage.TryParseRole(role.GetString()!) ?? throw new InvalidDataException($"{file}: message {i} has role '{role.GetString()}'; expected system, user or assistant");
            result.Add(new ChatMessage(parsed, content.GetString()!));
            i++;
        }

        return result;
    }
}
