// SPDX-License-Identifier: MIT
namespace Vfio.Benchmarks;

/// <summary>
/// H4 goals (the host counterpart of the guest's G7): round-trip latency p50 and p99 of the library's synchronous and
/// asynchronous interrupt waits against C's poll + read, the device thread on the other CPU and on the waiter's CPU.
/// </summary>
internal static class InterruptGoals
{
    private sealed record Scenario(string Goal, bool Async, int DeviceCpu, string Where);

    /// <summary>Runs the scenarios; <paramref name="smoke"/> runs one short round and only checks the counts.</summary>
    internal static List<InterleavedRounds.Outcome> Run(bool quick, bool smoke, List<string> failures)
    {
        var outcomes = new List<InterleavedRounds.Outcome>();
        bool twoCpus = Environment.ProcessorCount >= 2;
        Scenario[] scenarios =
        [
            new("H4 sync", false, twoCpus ? 1 : -1, "device thread on the other CPU"),
            new("H4 async", true, twoCpus ? 1 : -1, "device thread on the other CPU"),
            new("H4 sync same-CPU", false, 0, "device thread on the waiter's CPU"),
            new("H4 async same-CPU", true, 0, "device thread on the waiter's CPU"),
        ];
        int rounds = smoke ? 1 : quick ? 7 : 15;
        int ops = smoke ? 200 : quick ? 1000 : 3000;
        // The whole process (the waiter, the library's poller threads, the thread pool) runs on CPU 0; the C device
        // thread on CPU 1 ("the other CPU": each interrupt is a cross-CPU wake-up) or on CPU 0 too. Threads started
        // later inherit the pinning.
        PinProcessToFirstCpu();
        var thread = new Thread(() =>
        {
            foreach (Scenario scenario in scenarios)
            {
                Measure(scenario, rounds, ops, smoke, outcomes, failures);
            }
        });
        thread.Start();
        thread.Join();
        return outcomes;
    }

    private static void Measure(Scenario s, int rounds, int ops, bool smoke, List<InterleavedRounds.Outcome> outcomes, List<string> failures)
    {
        using var trip = new InterruptRoundTrip(s.DeviceCpu);
        Measure(trip, s.Goal, s.Async, s.Where, "eventfd doorbell → C device thread → interrupt eventfd round trip", rounds, ops, smoke, outcomes, failures);
    }

    /// <summary>Interleaved rounds (ABBA) of <paramref name="trip"/>'s C loop and the library's synchronous or
    /// asynchronous loop: the p50 ratio with its bootstrap interval, and for the synchronous wait the p99 ratio over
    /// all rounds; every round must count exactly one interrupt per round trip. Shared with the guest's G7.</summary>
    internal static void Measure(IRoundTrip trip, string goal, bool async, string where, string what, int rounds, int ops, bool smoke,
        List<InterleavedRounds.Outcome> outcomes, List<string> failures)
    {
        var cNs = new long[ops];
        var lNs = new long[ops];
        var cP50 = new double[rounds];
        var lP50 = new double[rounds];
        var cAll = new List<double>();
        var lAll = new List<double>();

        // Warm-up (JIT, thread pool, poller threads) until the JIT is done with the library's loop.
        _ = trip.C(cNs);
        if (smoke)
        {
            _ = Library(trip, async, lNs);   // no timing: the counts and the allocations do not depend on the JIT's tier
        }
        else
        {
            WarmUp(trip, async, lNs);
        }
        for (int round = 0; round < rounds; round++)
        {
            for (int side = 0; side < 2; side++)
            {
                bool c = (side == 0) == (round % 2 == 0);
                if (c)
                {
                    long total = trip.C(cNs);
                    Count(failures, goal + " C", total, ops);
                    cP50[round] = InterleavedRounds.Median(Array.ConvertAll(cNs, v => (double)v));
                    cAll.AddRange(Array.ConvertAll(cNs, v => (double)v));
                }
                else
                {
                    long total = Library(trip, async, lNs);
                    Count(failures, goal + " library", total, ops);
                    lP50[round] = InterleavedRounds.Median(Array.ConvertAll(lNs, v => (double)v));
                    lAll.AddRange(Array.ConvertAll(lNs, v => (double)v));
                }
            }
        }
        long perOp = WaitBytes(trip, async, failures, goal, ops) / ops;   // less than one byte per wait: no wait allocated
        if (smoke)
        {
            if (perOp != 0)
            {
                failures.Add($"{goal}: {perOp} B allocated per wait");
            }
            return;
        }
        (double ratio, double low, double high) = InterleavedRounds.Ratio(cP50, lP50);
        outcomes.Add(new($"{goal} p50", InterleavedRounds.Median(cP50), InterleavedRounds.Median(lP50), ratio, low, high,
            async ? 1.5 : 1.10, perOp, $"{what}, {where}, p50"));
        if (!async)
        {
            double c99 = InterleavedRounds.Percentile([.. cAll], 0.99), l99 = InterleavedRounds.Percentile([.. lAll], 0.99);
            outcomes.Add(new($"{goal} p99", c99, l99, l99 / c99, l99 / c99, l99 / c99, 1.25, perOp,
                $"the same round trip, {where}, p99 over all rounds (no interval)"));
        }
    }

    // One warm-up block left the guest's G7 rounds timing tier-0 code (measured: same-CPU sync p50 1.35-1.57x C with
    // one block, 0.89x with DOTNET_TieredCompilation=0): settle tiering as G6 does, so the rounds time the code a
    // long-running driver runs.
    private static void WarmUp(IRoundTrip trip, bool async, long[] ns)
        => GuestGoals.SettleTiering(() => Library(trip, async, ns));

    private static unsafe void PinProcessToFirstCpu() => _ = HotPathNative.PinProcess(0);

    // What `ops` waits allocate: a block of twice the waits less a block of `ops`, so that what a block costs once (the
    // asynchronous block's async-method box, allocated at its first wait that suspends) cancels out. The synchronous
    // waits run on this thread and are counted on it; the asynchronous ones continue on the library's poller threads
    // and are counted process-wide, where the runtime allocates now and then on its own: the least of three tries.
    private static long WaitBytes(IRoundTrip trip, bool async, List<string> failures, string goal, int ops)
    {
        var once = new long[ops];
        var twice = new long[2 * ops];
        long least = long.MaxValue;
        for (int attempt = 0; attempt < 3 && least > 0; attempt++)
        {
            long before = Allocated(async);
            Count(failures, goal + " library", Library(trip, async, once), ops);
            long middle = Allocated(async);
            Count(failures, goal + " library", Library(trip, async, twice), 2 * ops);
            least = Math.Min(least, Math.Max(Allocated(async) - middle - (middle - before), 0));
        }
        return least;
    }

    private static long Allocated(bool processWide)
        => processWide ? GC.GetTotalAllocatedBytes(precise: true) : GC.GetAllocatedBytesForCurrentThread();

    private static long Library(IRoundTrip trip, bool async, long[] ns)
        => async ? trip.Async(ns).GetAwaiter().GetResult() : trip.Sync(ns);

    private static void Count(List<string> failures, string what, long total, int ops)
    {
        if (total != ops)
        {
            failures.Add($"{what}: {total} interrupts counted for {ops} doorbells (lost or extra events)");
        }
    }
}
