using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Xunit.Sdk;

namespace Microsoft.ML.Lora.GpuCheck;

/// <summary>
/// Runs the golden tests compiled into this program (the <c>[Fact]</c> and <c>[Theory]</c> methods of
/// <c>Microsoft.ML.Lora.Tests.*</c>) without a test host: one new instance of the class per case, data from
/// the method's data attributes, skips honoured. Prints one line per case and the closing
/// "golden: N passed, N failed, N skipped" line; returns the number failed.
/// </summary>
internal static class GoldenRunner
{
    public static int Run(TextWriter output, string? filter)
    {
        int passed = 0, failed = 0, skipped = 0;
        var methods = typeof(GoldenRunner).Assembly.GetTypes()
            .Where(static t => t.IsClass && t.IsPublic && t.Namespace?.StartsWith("Microsoft.ML.Lora.Tests", StringComparison.Ordinal) == true)
            .OrderBy(static t => t.FullName, StringComparer.Ordinal)
            .SelectMany(static t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static).Select(m => (Type: t, Method: m)))
            .Where(static x => x.Method.GetCustomAttribute<FactAttribute>() is not null);
        foreach (var (type, method) in methods)
        {
            var fact = method.GetCustomAttribute<FactAttribute>()!;
            string name = $"{type.Name}.{method.Name}";
            if (filter is not null && !name.Contains(filter, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (fact.Skip is { Length: > 0 } reason)
            {
                output.WriteLine($"SKIP {name}: {reason}");
                skipped++;
                continue;
            }

            List<object?[]> rows;
            try
            {
                rows = fact is TheoryAttribute
                    ? method.GetCustomAttributes<DataAttribute>().SelectMany(d => d.GetData(method)).ToList()
                    : [[]];
            }
            catch (Exception e)
            {
                output.WriteLine($"FAIL {name}: its data could not be read: {Innermost(e).Message}");
                failed++;
                continue;
            }

            if (rows.Count == 0)
            {
                output.WriteLine($"FAIL {name}: a theory with no data");
                failed++;
                continue;
            }

            foreach (var args in rows)
            {
                string label = args.Length == 0 ? name : $"{name}({string.Join(", ", args.Select(static a => Convert.ToString(a, CultureInfo.InvariantCulture)))})";
                var clock = Stopwatch.StartNew();
                try
                {
                    Invoke(type, method, args);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"PASS {label} ({clock.Elapsed.TotalMilliseconds:F0} ms)"));
                    passed++;
                }
                catch (Exception e)
                {
                    var inner = Innermost(e);
                    output.WriteLine($"FAIL {label}: {inner.GetType().Name}: {inner.Message}");
                    if (inner is not XunitException)
                    {
                        output.WriteLine(inner.StackTrace);
                    }

                    failed++;
                }
            }
        }

        output.WriteLine($"golden: {passed} passed, {failed} failed, {skipped} skipped");
        return failed;
    }

    // A type initializer's or reflection call's own exception, not its wrapper.
    private static Exception Innermost(Exception e)
    {
        while (e is TargetInvocationException or TypeInitializationException && e.InnerException is not null)
        {
            e = e.InnerException!;
        }

        return e;
    }

    private static void Invoke(Type type, MethodInfo method, object?[] args)
    {
        object? instance = method.IsStatic ? null : Activator.CreateInstance(type);
        try
        {
            object? result = method.Invoke(instance, args);
            if (result is Task task)
            {
                task.GetAwaiter().GetResult();
            }
        }
        finally
        {
            (instance as IDisposable)?.Dispose();
        }
    }
}
