// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Running;
using Vfio.Benchmarks;

// ./bench.sh [--quick]                      the host hot-path goals (issue 11) against C; see bench.sh
// dotnet run -c Release --project bench/Vfio.Benchmarks -- --filter '*' [--job short]   any benchmark
if (args.Length > 0 && args[0] == "--hotpath-smoke")
{
    return HotPathGoals.Smoke();
}
if (args.Length > 0 && args[0] == "--guest-goals")
{
    // Inside the testbed guest (bench.sh, test.sh's kernel-pci tier): --guest-goals [--quick|--smoke] [--rows FILE] [-xml FILE]
    int rows = Array.IndexOf(args, "--rows");
    int xml = Array.IndexOf(args, "-xml");
    return GuestGoals.Run(args.Contains("--quick"), args.Contains("--smoke"), rows >= 0 ? args[rows + 1] : null, xml >= 0 ? args[xml + 1] : null);
}
if (args.Length > 0 && args[0] == "--nvme-goals")
{
    // Inside the testbed guest (bench.sh): N1, samples/Nvme against the kernel's nvme driver:
    // --nvme-goals --reader NVMEREAD [--quick] [--rows FILE]
    int reader = Array.IndexOf(args, "--reader");
    int rows = Array.IndexOf(args, "--rows");
    if (reader < 0 || reader + 1 >= args.Length)
    {
        Console.Error.WriteLine("--nvme-goals needs --reader PATH (bench/native/nvmeread.c, built statically by bench.sh)");
        return 2;
    }
    return NvmeGoals.Run(args.Contains("--quick"), args[reader + 1], rows >= 0 ? args[rows + 1] : null);
}
if (args.Length > 0 && args[0] == "--interrupt-goals")
{
    // The H4 round trips alone (what bench.sh runs after the BenchmarkDotNet part), for iterating on the wait paths.
    var failures = new List<string>();
    foreach (InterleavedRounds.Outcome outcome in InterruptGoals.Run(args.Contains("--quick"), smoke: false, failures))
    {
        Console.WriteLine(outcome.Line());
    }
    failures.ForEach(f => Console.WriteLine($"H4 error: {f}"));
    return failures.Count == 0 ? 0 : 1;
}
if (args.Length > 0 && args[0] == "--cpu-goals")
{
    // H3 and H5 alone (what bench.sh runs after the BenchmarkDotNet part).
    foreach (CpuTimeGoals.Result result in CpuTimeGoals.Run(args.Contains("--quick"), HotPathGoals.LoadAverage(HotPathGoals.ReadFirstLine("/proc/loadavg"))))
    {
        Console.WriteLine(result.Line);
    }
    return 0;
}
if (args.Length > 0 && args[0] == "--loop")
{
    // A plain timing loop over one benchmark (no BenchmarkDotNet), for profiling: --loop h3|h3-container|h5-<op>-<n> seconds
    return ProfileLoop.Run(args[1], args.Length > 2 ? double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 3);
}
if (args.Length > 0 && args[0] == "--hotpath-rounds")
{
    // H1 and H2, C and the library in interleaved rounds (side by side under the same load): informational lines.
    return HotPathRounds.Run(args.Contains("--quick"));
}
if (args.Length > 0 && args[0] == "--hotpath-goals")
{
    bool quick = args.Contains("--quick");
    int docs = Array.IndexOf(args, "--docs");
    int artifacts = Array.IndexOf(args, "--artifacts");
    int guestRows = Array.IndexOf(args, "--guest-rows");
    return HotPathGoals.Run(
        quick,
        docs >= 0 ? args[docs + 1] : null,
        guestRows >= 0 ? args[guestRows + 1] : null,
        artifacts >= 0 ? args[artifacts + 1] : Path.Combine(Environment.CurrentDirectory, "BenchmarkDotNet.Artifacts"));
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
