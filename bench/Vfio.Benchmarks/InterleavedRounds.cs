// SPDX-License-Identifier: MIT
using System.Globalization;

namespace Vfio.Benchmarks;

/// <summary>
/// C against the library, interleaved in rounds (ABBA order) on the same fds and buffers: the per-round ratio's
/// median and a bootstrap 95% interval of that median. For operations whose cost is a wake-up or a kernel call,
/// where side-by-side rounds are more honest than separate runs.
/// </summary>
internal static class InterleavedRounds
{
    /// <summary>One goal's outcome. Times are per operation in ns (medians over rounds).</summary>
    internal sealed record Outcome(string Goal, double C, double Library, double Ratio, double Low, double High, double MaxRatio, long LibraryBytes, string What)
    {
        internal bool Ok => Ratio <= MaxRatio && LibraryBytes == 0;

        internal string Line() => string.Create(CultureInfo.InvariantCulture,
            $"{Goal.Replace(' ', '-')} ratio={Ratio:0.00} goal<={MaxRatio:0.00} {Verdict(Ratio <= MaxRatio, Low <= MaxRatio, LibraryBytes)} (C {C:0.#} ns, library {Library:0.#} ns, interval {Low:0.00}–{High:0.00}, {LibraryBytes} B/op)");

        internal string Row(string load) => string.Create(CultureInfo.InvariantCulture,
            $"| {Goal}: {What} | {Format(C)} | {Format(Library)} | {Ratio:0.00} | {Low:0.00}–{High:0.00} | {Verdict(Ratio <= MaxRatio, Low <= MaxRatio, LibraryBytes)} (goal <={MaxRatio:0.00}, {LibraryBytes} B/op) | {load} |");
    }

    /// <summary>ok when the median meets the goal; inconclusive when it does not but the interval reaches the goal
    /// (the spread, e.g. from other load on the machine, is wider than the miss); miss otherwise, or when the library
    /// allocates.</summary>
    internal static string Verdict(bool met, bool intervalReachesGoal, long bytes)
        => bytes != 0 ? "miss" : met ? "ok" : intervalReachesGoal ? "inconclusive" : "miss";

    internal static string Format(double ns) => ns >= 10_000
        ? string.Create(CultureInfo.InvariantCulture, $"{ns / 1000:0.##} µs")
        : string.Create(CultureInfo.InvariantCulture, $"{ns:0.#} ns");

    /// <summary>Runs <paramref name="rounds"/> rounds of each side (ABBA), each side returning its per-operation time
    /// in ns for one block; returns (C medians, library medians, per-round ratios).</summary>
    internal static (double[] C, double[] Library) Run(int rounds, Func<double> c, Func<double> library)
    {
        var cs = new double[rounds];
        var ls = new double[rounds];
        for (int round = 0; round < rounds; round++)
        {
            if (round % 2 == 0)
            {
                cs[round] = c();
                ls[round] = library();
            }
            else
            {
                ls[round] = library();
                cs[round] = c();
            }
        }
        return (cs, ls);
    }

    /// <summary>Median of the per-round ratios library/C and its bootstrap 95% interval (2,000 resamples, fixed seed).</summary>
    internal static (double Ratio, double Low, double High) Ratio(double[] c, double[] library)
    {
        double[] ratios = c.Select((value, i) => library[i] / value).ToArray();
        double median = Median(ratios);
        var random = new Random(11);
        var medians = new double[2000];
        var sample = new double[ratios.Length];
        for (int b = 0; b < medians.Length; b++)
        {
            for (int i = 0; i < sample.Length; i++)
            {
                sample[i] = ratios[random.Next(ratios.Length)];
            }
            medians[b] = Median(sample);
        }
        Array.Sort(medians);
        return (median, medians[(int)(0.025 * medians.Length)], medians[(int)(0.975 * medians.Length) - 1]);
    }

    internal static double Median(double[] values) => Percentile(values, 0.5);

    internal static double Percentile(double[] values, double p)
    {
        double[] sorted = (double[])values.Clone();
        Array.Sort(sorted);
        double index = p * (sorted.Length - 1);
        int low = (int)Math.Floor(index);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + ((sorted[high] - sorted[low]) * (index - low));
    }
}
