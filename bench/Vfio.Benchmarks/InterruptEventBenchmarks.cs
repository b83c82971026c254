// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Attributes;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Benchmarks;

/// <summary>
/// The per-wait cost of <see cref="InterruptEvent"/>: the library's waits against the bare eventfd syscalls they
/// are made of (the floor), on one thread and across threads (where the wake-up dominates).
/// </summary>
[MemoryDiagnoser]
public class InterruptEventBenchmarks
{
    private InterruptEvent _event = null!;
    private InterruptEvent _echoRequest = null!;
    private InterruptEvent _echoReply = null!;
    private SafeFileHandle _raw = null!;
    private Thread _echo = null!;
    private volatile bool _stop;

    [GlobalSetup]
    public void Setup()
    {
        _event = new InterruptEvent();
        _raw = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        _echoRequest = new InterruptEvent();
        _echoReply = new InterruptEvent();
        // The "device": answers each request with one interrupt.
        _echo = new Thread(() =>
        {
            while (!_stop)
            {
                if (_echoRequest.TryWait(TimeSpan.FromMilliseconds(100), out _) && !_stop)
                {
                    _echoReply.Signal();
                }
            }
        }) { IsBackground = true };
        _echo.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _echo.Join();
        _event.Dispose();
        _echoRequest.Dispose();
        _echoReply.Dispose();
        _raw.Dispose();
    }

    /// <summary>Floor: eventfd write + read as bare syscalls.</summary>
    [Benchmark(Baseline = true)]
    public unsafe ulong RawEventfdWriteRead()
    {
        ulong value = 1;
        _ = Libc.write(_raw, (byte*)&value, sizeof(ulong));
        _ = Libc.read(_raw, (byte*)&value, sizeof(ulong));
        return value;
    }

    /// <summary>Signal then synchronous wait on one thread (the count is pending, so no blocking).</summary>
    [Benchmark]
    public ulong SignalThenWait()
    {
        _event.Signal();
        return _event.Wait();
    }

    /// <summary>Signal then asynchronous wait on one thread (completes synchronously).</summary>
    [Benchmark]
    public ulong SignalThenWaitAsyncCompleted()
    {
        _event.Signal();
        return _event.WaitAsync().GetAwaiter().GetResult();
    }

    /// <summary>Round trip through another thread with a blocking wait: request, then wait for its interrupt.</summary>
    [Benchmark]
    public ulong CrossThreadRoundTripSync()
    {
        _echoRequest.Signal();
        return _echoReply.Wait();
    }

    private const int AsyncBatch = 1000;

    /// <summary>Round trip through another thread with an asynchronous wait (epoll thread + thread-pool hop). A batch
    /// per invocation, so the async method's own state machine (allocated once per call) does not count per wait.</summary>
    [Benchmark(OperationsPerInvoke = AsyncBatch)]
    public async Task<ulong> CrossThreadRoundTripAsync()
    {
        ulong total = 0;
        for (int i = 0; i < AsyncBatch; i++)
        {
            _echoRequest.Signal();
            total += await _echoReply.WaitAsync().ConfigureAwait(false);
        }
        return total;
    }
}
