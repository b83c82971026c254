// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Shouldly;

namespace Vfio.Tests.Shared;

/// <summary>
/// Seeded generators for property tests of parsers of kernel-provided bytes: each input gets its own seed (derived from
/// the run's seed and its number), so a failure names the one seed that reproduces it. The run's seed is
/// <c>VFIO_PROPERTY_SEED</c> when set, else a fixed one; the whole run has a time bound, so a parser that loops fails
/// the test instead of hanging it.
/// </summary>
internal static class Property
{
    internal const int Inputs = 10_000;

    /// <summary>The run's seed: <c>VFIO_PROPERTY_SEED</c>, or <paramref name="fixedSeed"/>.</summary>
    internal static int Seed(int fixedSeed)
        => int.TryParse(Environment.GetEnvironmentVariable("VFIO_PROPERTY_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed) ? seed : fixedSeed;

    /// <summary>Runs <paramref name="check"/> on <see cref="Inputs"/> inputs, each with its own <see cref="Random"/>;
    /// a failure is rethrown naming the property, the input's seed and how to rerun it.</summary>
    internal static async Task RunAsync(string property, int fixedSeed, Action<Random> check, int inputs = Inputs)
    {
        int seed = Seed(fixedSeed);
        long start = Stopwatch.GetTimestamp();
        Task run = Task.Run(() =>
        {
            for (int i = 0; i < inputs; i++)
            {
                int inputSeed = HashCode.Combine(seed, i);
                try
                {
                    check(new Random(inputSeed));
                }
                catch (Exception e)
                {
                    throw new ShouldAssertException(
                        $"{property}: input {i} (seed {inputSeed}; the run's seed {seed}, VFIO_PROPERTY_SEED={seed} reruns it) failed: {e}", e);
                }
            }
        });
        // A parser that loops would never finish: 10,000 parses take well under a second.
        Task finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        finished.ShouldBeSameAs(run, $"{property}: {inputs} inputs did not finish within 30 s (seed {seed}): a parser loops");
        await run;
        TestContext.Current.SendDiagnosticMessage($"{property}: {inputs} inputs, seed {seed}, {Stopwatch.GetElapsedTime(start).TotalMilliseconds:F0} ms");
    }

    internal static uint NextUInt(this Random random) => (uint)random.NextInt64(0, 1L << 32);

    internal static ulong NextULong(this Random random)
    {
        Span<byte> bytes = stackalloc byte[8];
        random.NextBytes(bytes);
        return MemoryMarshal.Read<ulong>(bytes);
    }

    /// <summary>A value from the edges more often than uniform: 0, 1, small, powers of two, the maximum, random.</summary>
    internal static uint Interesting(this Random random) => random.Next(8) switch
    {
        0 => 0,
        1 => 1,
        2 => (uint)random.Next(64),
        3 => 1u << random.Next(32),
        4 => uint.MaxValue,
        5 => int.MaxValue + (uint)random.Next(2),
        _ => random.NextUInt(),
    };

    /// <summary>Mutates <paramref name="bytes"/> one of the ways a buggy or hostile kernel could: flipped bytes, a
    /// truncated copy, a next pointer to itself, backwards, into the fixed part or beyond, a huge count.</summary>
    internal static byte[] Corrupt(this Random random, byte[] bytes, int baseOffset)
    {
        byte[] copy = [.. bytes];
        if (copy.Length == 0)
        {
            return copy;
        }
        switch (random.Next(6))
        {
            case 0:
                for (int n = random.Next(1, 6); n > 0; n--)
                {
                    copy[random.Next(copy.Length)] = (byte)random.Next(256);
                }
                return copy;
            case 1:
                return copy[..random.Next(copy.Length)];
            default:
                // A header's next (at a multiple of 8, +4) or a count (+8) set to an interesting value.
                int at = random.Next((copy.Length + 7) / 8) * 8;
                int field = random.Next(2) == 0 ? 4 : 8;
                if (at + field + 4 <= copy.Length)
                {
                    uint value = random.Next(4) switch
                    {
                        0 => (uint)(baseOffset + at),                      // itself
                        1 => (uint)(baseOffset + random.Next(at + 1)),     // backwards
                        2 => (uint)random.Next(baseOffset),                // into the fixed structure
                        _ => random.Interesting(),
                    };
                    BitConverter.TryWriteBytes(copy.AsSpan(at + field), value);
                }
                return copy;
        }
    }
}
