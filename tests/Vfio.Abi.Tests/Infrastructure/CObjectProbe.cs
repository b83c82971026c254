// SPDX-License-Identifier: MIT
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>
/// One initialised object of the generated C file: <c>const &lt;Type&gt; &lt;symbol&gt;[] = &lt;Initializer&gt;;</c>.
/// </summary>
/// <param name="Key">Identifies the item in <see cref="CObjectProbeOutput.CompileErrors"/>, e.g. <c>struct vfio_region_info</c>.</param>
/// <param name="Type">The element type, e.g. <c>unsigned long long</c> or <c>char</c>.</param>
/// <param name="Initializer">A brace list of constant expressions, or a string macro.</param>
internal sealed record CObjectItem(string Key, string Type, string Initializer);

/// <summary>The compiled object, the items that did not compile, and the headers gcc opened.</summary>
internal sealed record CObjectProbeOutput(
    ElfObject Object,
    IReadOnlyDictionary<string, string> Symbols,
    IReadOnlyDictionary<string, string> CompileErrors,
    IReadOnlyList<string> IncludedHeaders);

/// <summary>
/// Compiles a generated C file with <c>-c</c> against the kernel headers and reads the values back from the ELF
/// object: nothing is run, so a cross compiler gives another architecture's values on this host. Each item is one
/// initialised <c>const</c> array named <c>vfio_abi_&lt;n&gt;</c>; when gcc reports errors they are attributed to
/// items by line number, those items are dropped and the rest is compiled again, so that a wrong name fails its own
/// test case with gcc's message instead of every case.
/// </summary>
internal static partial class CObjectProbe
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(2);

    [GeneratedRegex(@"^[^:\n]+\.c:(\d+):(?:\d+:)? (?:fatal )?error:")]
    private static partial Regex ErrorLine();

    [GeneratedRegex(@"^[^:\n]+\.c:(\d+):")]
    private static partial Regex AnyLocatedLine();

    public static CObjectProbeOutput Compile(AbiArch arch, IReadOnlyList<string> includeArgs, string prelude, IReadOnlyList<CObjectItem> items)
    {
        var dir = Directory.CreateTempSubdirectory($"vfio-abi-{arch.Name}-");
        try
        {
            var errors = new Dictionary<string, string>(StringComparer.Ordinal);
            var remaining = items.ToList();
            while (true)
            {
                var (compiled, stderr, ranges, symbols) = CompileOnce(arch, includeArgs, dir.FullName, prelude, remaining);
                if (compiled)
                {
                    var path = Path.Combine(dir.FullName, "abi.o");
                    return new CObjectProbeOutput(new ElfObject(File.ReadAllBytes(path), path), symbols, errors, IncludeTrace(stderr));
                }

                var failed = Attribute(stderr, ranges);
                if (failed.Count == 0)
                {
                    throw new InvalidOperationException($"The generated {arch.Name} probe does not compile:\n{WithoutTrace(stderr)}");
                }

                foreach (var (key, message) in failed)
                {
                    errors[key] = message;
                }

                remaining.RemoveAll(item => failed.ContainsKey(item.Key));
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static (bool Ok, string Stderr, List<(int First, int Last, string Key)> Ranges, Dictionary<string, string> Symbols) CompileOnce(
        AbiArch arch, IReadOnlyList<string> includeArgs, string dir, string prelude, IReadOnlyList<CObjectItem> items)
    {
        var source = new StringBuilder(prelude);
        var ranges = new List<(int First, int Last, string Key)>();
        var symbols = new Dictionary<string, string>(StringComparer.Ordinal);
        var line = prelude.Count(c => c == '\n') + 1;
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var symbol = string.Create(CultureInfo.InvariantCulture, $"vfio_abi_{i}");
            symbols[item.Key] = symbol;
            var text = $"/* {item.Key} */\nconst {item.Type} {symbol}[] =\n{item.Initializer};\n";
            var lines = text.Count(c => c == '\n');
            ranges.Add((line, line + lines - 1, item.Key));
            line += lines;
            source.Append(text);
        }

        var file = Path.Combine(dir, "abi.c");
        File.WriteAllText(file, source.ToString());

        // -H lists the headers gcc opened; -w: the initialisers use kernel idioms such as (1 << 31) on purpose.
        List<string> args = ["-c", "-H", "-std=gnu11", "-ffreestanding", "-w", .. includeArgs, "-o", Path.Combine(dir, "abi.o"), file];
        var (exitCode, stderr) = Execute(arch, args);
        return (exitCode == 0, exitCode == 0 ? stderr : $"{arch.Compiler} {string.Join(' ', args)}\n{stderr}", ranges, symbols);
    }

    /// <summary>Maps gcc's error lines (and the notes that follow them) to the items whose lines they are in.</summary>
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
            else if (current is not null && !AnyLocatedLine().IsMatch(text) && !IsTraceLine(text))
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

    private static (int ExitCode, string Stderr) Execute(AbiArch arch, IReadOnlyList<string> args)
    {
        var info = new ProcessStartInfo(arch.Compiler)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {arch.Compiler}.");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException(
                $"The {arch.Name} compiler {arch.Compiler} could not be started ({e.Message}). " +
                $"Install it: `sudo apt-get install --no-install-recommends {arch.CompilerPackage}` (./test.sh does).", e);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(s_timeout))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{arch.Compiler} did not finish within {s_timeout}.");
            }

            _ = stdout.GetAwaiter().GetResult();
            return (process.ExitCode, stderr.GetAwaiter().GetResult());
        }
    }

    private static bool IsTraceLine(string line) => line.StartsWith('.') && line.TrimStart('.').StartsWith(' ');

    /// <summary>The headers listed by <c>gcc -H</c> (lines of dots followed by a path).</summary>
    private static string[] IncludeTrace(string stderr) =>
        stderr.Split('\n').Select(line => line.TrimEnd()).Where(IsTraceLine).Select(line => line.TrimStart('.').Trim()).ToArray();

    private static string WithoutTrace(string stderr) => string.Join('\n', stderr.Split('\n').Where(line => !IsTraceLine(line)));
}
