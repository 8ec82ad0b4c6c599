using System.CommandLine;

namespace Microsoft.ML.Lora.Cli;

/// <summary>The <c>lora</c> command.</summary>
public static class Program
{
    /// <summary>Process entry point.</summary>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command line with the given writers (tests call this in-process).</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("Fine-tune, evaluate and benchmark Llama-family language models with LoRA.")
        {
            EvalCommand.Create(output, error),
            BenchCommand.Create(output, error),
            AdviseCommand.Create(output, error),
            TrainCommand.Create(output, error),
            TrainCommand.CreateDpo(output, error),
            TrainCommand.CreateGrpo(output, error),
            MergeCommand.Create(output, error),
            GenerateCommand.Create(output, error),
            TokenizeCommand.Create(output, error),
            ExportOnnxCommand.Create(output, error),
            ExportAdapterCommand.Create(output, error),
            ServeCommand.Create(output, error),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && args.Length > 0)
        {
            // A flag that does not parse (a number out of range, an unknown option): one error line each, as for
            // every other bad input, and where to read the options, instead of the whole help text.
            foreach (var e in parse.Errors)
            {
                error.WriteLine($"error: {e.Message.ReplaceLineEndings(" ")}");
            }

            var command = parse.CommandResult.Command;
            error.WriteLine($"(lora {(command == root ? string.Empty : command.Name + " ")}--help lists the options)");
            return CommandErrors.BadInput;
        }

        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        if (parse.CommandResult.Command.Name == "serve")
        {
            // The web host handles Ctrl+C and SIGTERM itself and gives running jobs its shutdown timeout to
            // checkpoint; the parser's own handler would end the process after 2 seconds.
            configuration.ProcessTerminationTimeout = null;
        }

        return parse.Invoke(configuration);
    }
}
