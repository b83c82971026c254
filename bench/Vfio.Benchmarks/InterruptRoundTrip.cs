// SPDX-License-Identifier: MIT
using System.Diagnostics;
using Vfio.Core;

namespace Vfio.Benchmarks;

/// <summary>
/// H4: the interrupt round trip on the host. A "device" thread in C (bench/native) answers each doorbell eventfd
/// write with one write to the interrupt eventfd; the waiter rings the doorbell and waits for the interrupt. C waits
/// with poll + read; the library with <see cref="InterruptEvent.Wait()"/> or <see cref="InterruptEvent.WaitAsync"/>.
/// Both use the same two eventfds (the library's) and the same device thread, in interleaved rounds.
/// </summary>
internal sealed class InterruptRoundTrip : IRoundTrip
{
    private readonly InterruptEvent _doorbell = new();
    private readonly InterruptEvent _irq = new();
    private readonly nint _device;

    /// <summary>Starts the device thread, pinned to <paramref name="deviceCpu"/> (-1: not pinned).</summary>
    internal unsafe InterruptRoundTrip(int deviceCpu)
    {
        _device = HotPathNative.DeviceStart(Fd(_doorbell), Fd(_irq), deviceCpu);
        if (_device == 0)
        {
            throw new InvalidOperationException("The C device thread did not start.");
        }
    }

    private static int Fd(InterruptEvent e) => (int)e.Handle.DangerousGetHandle();

    /// <inheritdoc/>
    public unsafe long C(long[] ns)
    {
        fixed (long* p = ns)
        {
            return HotPathNative.RoundTripLoop(Fd(_doorbell), Fd(_irq), (nuint)ns.Length, p);
        }
    }

    /// <inheritdoc/>
    public long Sync(long[] ns)
    {
        long total = 0;
        for (int i = 0; i < ns.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            _doorbell.Signal();
            total += (long)_irq.Wait();
            ns[i] = Stopwatch.GetTimestamp() - start;
        }
        ToNs(ns);
        return total;
    }

    /// <inheritdoc/>
    public async Task<long> Async(long[] ns)
    {
        long total = 0;
        for (int i = 0; i < ns.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            _doorbell.Signal();
            total += (long)await _irq.WaitAsync().ConfigureAwait(false);
            ns[i] = Stopwatch.GetTimestamp() - start;
        }
        ToNs(ns);
        return total;
    }

    internal static void ToNs(long[] ticks)
    {
        for (int i = 0; i < ticks.Length; i++)
        {
            ticks[i] = (long)(ticks[i] * (1e9 / Stopwatch.Frequency));
        }
    }

    public unsafe void Dispose()
    {
        HotPathNative.DeviceStop(_device);
        _doorbell.Dispose();
        _irq.Dispose();
    }
}

/// <summary>An interrupt round trip measured by C and by the library's waits on the same eventfds.</summary>
internal interface IRoundTrip : IDisposable
{
    /// <summary>C: <paramref name="ns"/>.Length round trips, each timed (ns). Returns the interrupts counted.</summary>
    long C(long[] ns);

    /// <summary>The library, synchronous wait.</summary>
    long Sync(long[] ns);

    /// <summary>The library, asynchronous wait (one async method for the whole block).</summary>
    Task<long> Async(long[] ns);
}
