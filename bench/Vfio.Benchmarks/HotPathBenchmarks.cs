// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Attributes;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Benchmarks;

/// <summary>
/// Issue 11's host hot paths against C baselines in the same process. H1: 32-bit MMIO reads and writes of every word
/// of an anonymous page through a <see cref="VfioRegionMapping"/> (the scoped <see cref="MmioWindow"/>, the per-call
/// accessors, a raw C# pointer loop, and a C volatile loop). H2: pread of 4 bytes from /dev/zero and an ioctl that
/// fails with ENOTTY on an eventfd, through <see cref="LinuxKernel"/>, the bare LibraryImport, and C; an eventfd write
/// and read through <see cref="InterruptEvent"/> and C.
/// Benchmarks named <c>C_*</c> are the baselines; bench.sh turns the medians into docs/performance.md.
/// </summary>
[MemoryDiagnoser]
[CategoriesColumn]
public unsafe class HotPathBenchmarks : IDisposable
{
    internal const ulong PageSize = 4096;
    internal const int Words = (int)(PageSize / 4);
    internal const int Rounds = 16;
    internal const int MmioOps = Words * Rounds;
    internal const int SyscallOps = 64;
    internal const nuint Tcgets = 0x5401;   // not an eventfd ioctl: ENOTTY

    private VfioRegionMapping _bar = null!;
    private uint* _page;
    private SafeFileHandle _zero = null!;
    private SafeFileHandle _eventfd = null!;
    private byte* _buffer;
    private InterruptEvent _interrupt = null!;

    /// <summary>The page the H1 loops access.</summary>
    internal Span<uint> Page => new(_page, Words);

    [GlobalSetup]
    public void Setup()
    {
        int rc = Libc.MapAnonymous((nuint)PageSize, out nint address);
        if (rc < 0)
        {
            throw new InvalidOperationException($"mmap of one anonymous page failed: errno {-rc}.");
        }
        var mapping = new LinuxKernel.LinuxMemoryMapping();
        mapping.Attach(address, PageSize, 0);
        _bar = new VfioRegionMapping(0, PageSize, [new VfioMappedArea(0, PageSize, mapping)], "bench page");
        _page = (uint*)address;
        for (int i = 0; i < Words; i++)
        {
            _page[i] = (uint)(i * 0x9E3779B9);
        }
        _zero = Libc.open("/dev/zero", Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        _eventfd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (_zero.IsInvalid || _eventfd.IsInvalid)
        {
            throw new InvalidOperationException("Opening /dev/zero or an eventfd failed.");
        }
        _buffer = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(16);
        _interrupt = new InterruptEvent();
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _bar?.Dispose();
        _zero?.Dispose();
        _eventfd?.Dispose();
        _interrupt?.Dispose();
        System.Runtime.InteropServices.NativeMemory.Free(_buffer);
        _buffer = null;
        GC.SuppressFinalize(this);
    }

    // ---- H1: 32-bit MMIO read ----

    /// <summary>C baseline: a volatile read loop over the page.</summary>
    [Benchmark(OperationsPerInvoke = MmioOps), BenchmarkCategory("H1-read")]
    public uint C_Read32() => HotPathNative.Read32Loop(_page, Words, Rounds);

    /// <summary>The library's hot path: one window, then one volatile load per access.</summary>
    [Benchmark(OperationsPerInvoke = MmioOps), BenchmarkCategory("H1-read")]
    public uint Window_Read32()
    {
        using MmioWindow window = _bar.Acquire(0, PageSize);
        uint sum = 0;
        for (int r = 0; r < Rounds; r++)
        {
            for (ulong offset = 0; offset < PageSize; offset += 4)
            {
                sum += window.Read32(offset);
            }
        }
        return sum;
    }

    /// <summary>Reference: the per-call accessor (checks, reference count, area routing and a virtual call each).</summary>
    [Benchmark(OperationsPerInvoke = MmioOps), BenchmarkCategory("H1-read")]
    public uint Accessor_Read32()
    {
        uint sum = 0;
        for (int r = 0; r < Rounds; r++)
        {
            for (ulong offset = 0; offset < PageSize; offset += 4)
            {
                sum += _bar.Read32(offset);
            }
        }
        return sum;
    }

    /// <summary>Reference: the same loop on a raw pointer in C#.</summary>
    [Benchmark(OperationsPerInvoke = MmioOps), BenchmarkCategory("H1-read")]
    public uint Raw_Read32()
    {
        uint* page = _page;
        uint sum = 0;
        for (int r = 0; r < Rounds; r++)
        {
            for (int i = 0; i < Words; i++)
            {
                sum += Volatile.Read(ref page[i]);
            }
        }
        return sum;
    }

    // ---- H1: 32-bit MMIO write ----

    /// <summary>C baseline: a volatile write loop over the page.</summary>
    [Benchmark(OperationsPerInvoke = MmioOps), BenchmarkCategory("H1-write")]
    public void C_Write32() => HotPathNative.Write32Loop(_page, Words, Rounds, 7);

    /// <summary>The library's hot path: one window, then one volatile store per access.</summary>
    [Benchmark(OperationsPerInvoke = MmioOps), BenchmarkCategory("H1-write")]
    public void Window_Write32()
    {
        using MmioWindow window = _bar.Acquire(0, PageSize);
        for (int r = 0; r < Rounds; r++)
        {
            uint value = 7;
            for (ulong offset = 0; offset < PageSize; offset += 4)
            {
                window.Write32(offset, value++);
            }
        }
    }

    /// <summary>Reference: the per-call accessor.</summary>
    [Benchmark(OperationsPerInvoke = MmioOps), BenchmarkCategory("H1-write")]
    public void Accessor_Write32()
    {
        for (int r = 0; r < Rounds; r++)
        {
            uint value = 7;
            for (ulong offset = 0; offset < PageSize; offset += 4)
            {
                _bar.Write32(offset, value++);
            }
        }
    }

    // ---- H2: syscall wrappers ----

    /// <summary>C baseline: pread of 4 bytes from /dev/zero (EINTR retried).</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-pread")]
    public long C_PRead() => HotPathNative.PReadLoop((int)_zero.DangerousGetHandle(), _buffer, 4, SyscallOps);

    /// <summary>The library: <see cref="LinuxKernel.PRead"/>.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-pread")]
    public long Kernel_PRead()
    {
        LinuxKernel kernel = LinuxKernel.Instance;
        var buffer = new Span<byte>(_buffer, 4);
        long total = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            total += kernel.PRead(_zero, buffer, 0);
        }
        return total;
    }

    /// <summary>Reference: the bare LibraryImport (SafeHandle marshalling and SetLastError, no EINTR loop).</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-pread")]
    public long Libc_PRead()
    {
        long total = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            total += Libc.pread(_zero, _buffer, 4, 0);
        }
        return total;
    }

    /// <summary>Reference: a raw fd with SetLastError (no SafeHandle reference count).</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-pread")]
    public long RawFd_PRead()
    {
        int fd = (int)_zero.DangerousGetHandle();
        long total = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            total += BareLibc.PReadLastError(fd, _buffer, 4, 0);
        }
        return total;
    }

    /// <summary>Reference: a raw fd without SetLastError: the bare transition.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-pread")]
    public long Bare_PRead()
    {
        int fd = (int)_zero.DangerousGetHandle();
        long total = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            total += BareLibc.PRead(fd, _buffer, 4, 0);
        }
        return total;
    }

    /// <summary>C baseline: an ioctl that fails with ENOTTY on an eventfd.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-ioctl")]
    public long C_Ioctl() => HotPathNative.IoctlLoop((int)_eventfd.DangerousGetHandle(), Tcgets, SyscallOps, (int)Errno.ENOTTY);

    /// <summary>The library: <see cref="LinuxKernel.Ioctl(System.Runtime.InteropServices.SafeHandle, uint, nint)"/>.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-ioctl")]
    public long Kernel_Ioctl()
    {
        LinuxKernel kernel = LinuxKernel.Instance;
        long matched = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            if (kernel.Ioctl(_eventfd, (uint)Tcgets, 0) == -(int)Errno.ENOTTY)
            {
                matched++;
            }
        }
        return matched;
    }

    /// <summary>Reference: the bare LibraryImport.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-ioctl")]
    public long Libc_Ioctl()
    {
        long matched = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            if (Libc.ioctl(_eventfd, Tcgets, 0) < 0)
            {
                matched++;
            }
        }
        return matched;
    }

    /// <summary>Reference: a raw fd with SetLastError.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-ioctl")]
    public long RawFd_Ioctl()
    {
        int fd = (int)_eventfd.DangerousGetHandle();
        long matched = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            if (BareLibc.IoctlLastError(fd, Tcgets, 0) < 0)
            {
                matched++;
            }
        }
        return matched;
    }

    /// <summary>Reference: a raw fd without SetLastError (errno not read): the bare transition.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-ioctl")]
    public long Bare_Ioctl()
    {
        int fd = (int)_eventfd.DangerousGetHandle();
        long matched = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            if (BareLibc.Ioctl(fd, Tcgets, 0) < 0)
            {
                matched++;
            }
        }
        return matched;
    }

    // ---- H2: eventfd write + read (an interrupt's signal and its non-blocking collection) ----

    /// <summary>C baseline: write 1 then read the counter back, on a non-blocking eventfd.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-eventfd")]
    public long C_EventFd() => HotPathNative.EventFdLoop((int)_interrupt.Handle.DangerousGetHandle(), SyscallOps);

    /// <summary>The library: <see cref="InterruptEvent.Signal"/> then <see cref="InterruptEvent.TryWait(out ulong)"/>.</summary>
    [Benchmark(OperationsPerInvoke = SyscallOps), BenchmarkCategory("H2-eventfd")]
    public long Library_EventFd()
    {
        InterruptEvent interrupt = _interrupt;
        long total = 0;
        for (int i = 0; i < SyscallOps; i++)
        {
            interrupt.Signal();
            _ = interrupt.TryWait(out ulong count);
            total += (long)count;
        }
        return total;
    }
}
