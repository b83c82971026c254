// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>One unit of the generated C program: C statements that print tab-separated records.</summary>
/// <param name="Key">Identifies the item in <see cref="CProbeOutput.CompileErrors"/>, e.g. <c>struct vfio_region_info</c>.</param>
/// <param name="Statements">C statements placed in <c>main</c>.</param>
internal sealed record CProbeItem(string Key, string Statements);

/// <summary>What the compiled probe printed, plus the items that did not compile.</summary>
internal sealed record CProbeOutput(
    IReadOnlyList<string[]> Records,
    IReadOnlyDictionary<string, string> CompileErrors,
    IReadOnlyList<string> IncludedHeaders);

/// <summary>
/// Compiles and runs a generated C program against the kernel headers. Each item sits in its own block of
/// <c>main</c>; when gcc reports errors, they are attributed to items by line number, those items are dropped and
/// the rest is compiled again, so that a wrong name fails its own test case with gcc's message instead of every case.
/// </summary>
internal static partial class CProbe
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(2);

    [GeneratedRegex(@"^[^:\n]+\.c:(\d+):(?:\d+:)? (?:fatal )?error:")]
    private static partial Regex ErrorLine();

    [GeneratedRegex(@"^[^:\n]+\.c:(\d+):")]
    private static partial Regex AnyLocatedLine();

    public static CProbeOutput Run(string compiler, IReadOnlyList<string> includeArgs, string prelude, IReadOnlyList<CProbeItem> items)
    {
        var dir = Directory.CreateTempSubdirectory("vfio-abi-");
        try
        {
            var errors = new Dictionary<string, string>(StringComparer.Ordinal);
            var remaining = items.ToList();
            string stderr;
            while (true)
            {
                var (compiled, output, ranges) = Compile(compiler, includeArgs, dir.FullName, prelude, remaining);
                stderr = output;
                if (compiled)
                {
                    break;
                }

                var failed = Attribute(output, ranges);
                if (failed.Count == 0)
                {
                    throw new InvalidOperationException($"The generated probe does not compile:\n{WithoutTrace(output)}");
                }

                foreach (var (key, message) in failed)
                {
                    errors[key] = message;
                }

                remaining.RemoveAll(item => failed.ContainsKey(item.Key));
            }

            var (exitCode, stdout, runError) = Execute(Path.Combine(dir.FullName, "probe"), []);
            if (exitCode != 0)
            {
                throw new InvalidOperationException($"The generated probe exited with {exitCode}:\n{runError}");
            }

            var records = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split('\t')).ToArray();
            return new CProbeOutput(records, errors, IncludeTrace(stderr));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static (bool Ok, string Stderr, List<(int First, int Last, string Key)> Ranges) Compile(
        string compiler, IReadOnlyList<string> includeArgs, string dir, string prelude, IReadOnlyList<CProbeItem> items)
    {
        var source = new StringBuilder(prelude);
        source.Append("int main(void)\n{\n");
        var ranges = new List<(int First, int Last, string Key)>();
        var line = prelude.Count(c => c == '\n') + 3;
        foreach (var item in items)
        {
            var block = $"    /* {item.Key} */\n    {{\n{item.Statements}    }}\n";
            var lines = block.Count(c => c == '\n');
            ranges.Add((line, line + lines - 1, item.Key));
            line += lines;
            source.Append(block);
        }

        source.Append("    return 0;\n}\n");
        var file = Path.Combine(dir, "probe.c");
        File.WriteAllText(file, source.ToString());

        // -H lists the headers gcc opened; -w: the probe prints kernel idioms such as (1 << 31) on purpose.
        List<string> args = ["-H", "-std=gnu11", "-w", .. includeArgs, "-o", Path.Combine(dir, "probe"), file];
        var (exitCode, _, stderr) = Execute(compiler, args);
        return (exitCode == 0, exitCode == 0 ? stderr : $"{compiler} {string.Join(' ', args)}\n{stderr}", ranges);
    }

    /// <summary>Maps gcc's error lines (and the notes that follow them) to the items whose blocks they are in.</summary>
    private static Dictionary<string, string> Attribute(string stderr, List<(int First, int Last, string Key)> ranges)
    {
        var messages = new Dictionary<string, StringBuilder>(StringComparer.Ordinal);
        StringBuilder? current = null;
        foreach (var text in stderr.Split('\n'))
        {
            var error = ErrorLine().Match(text);
            if (error.Success)
            {
                var number = int.Parse(error.Groups[1].Value, CultureInfo.InvariantCulture);
                var range = ranges.FirstOrDefault(r => r.First <= number && number <= r.Last);
                if (range.Key is null)
                {
                    return [];
                }

                current = messages.TryGetValue(range.Key, out var existing) ? existing : messages[range.Key] = new StringBuilder();
                current.AppendLine(text);
            }
            else if (current is not null && !AnyLocatedLine().IsMatch(text) && !(text.StartsWith('.') && text.TrimStart('.').StartsWith(' ')))
            {
                current.AppendLine(text);
            }
            else
            {
                current = null;
            }
        }

        return messages.ToDictionary(m => m.Key, m => m.Value.ToString().TrimEnd(), StringComparer.Ordinal);
    }

    private static (int ExitCode, string Stdout, string Stderr) Execute(string program, IReadOnlyList<string> args)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {program}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(s_timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} did not finish within {s_timeout}.");
        }

        return (process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }

    /// <summary>The headers listed by <c>gcc -H</c> (lines of dots followed by a path).</summary>
    private static string[] IncludeTrace(string stderr) =>
        stderr.Split('\n')
            .Select(line => line.TrimEnd())
            .Where(line => line.StartsWith('.') && line.TrimStart('.').StartsWith(' '))
            .Select(line => line.TrimStart('.').Trim())
            .ToArray();

    private static string WithoutTrace(string stderr) =>
        string.Join('\n', stderr.Split('\n').Where(line => !(line.StartsWith('.') && line.TrimStart('.').StartsWith(' '))));
}
