// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Attributes;
using Vfio.Core;

namespace Vfio.Benchmarks;

/// <summary>
/// The cost of <see cref="IovaAllocator"/> operations against the number of live allocations, each followed by a
/// one-page free block so the free-block tree is as large as the allocation tree (fragmented, as after churn).
/// The goal (performance.md H5) is O(log n): t(65536) / t(16) ≤ 5, and 0 B/op.
/// </summary>
[MemoryDiagnoser]
public class IovaAllocatorBenchmarks
{
    private const ulong Page = 0x1000;
    private const ulong EduDmaMask = 0x0fff_ffff;
    private const int ProbeMask = 4095;

    private IovaAllocator _iovas = null!;
    private ulong[] _probes = null!;
    private int _next;

    /// <summary>Live allocations (and as many free blocks between them).</summary>
    [Params(16, 1024, 65536)]
    public int LiveRanges { get; set; }

    /// <summary>Builds the fragmented space: 2n one-page allocations, every other one freed.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _iovas = new IovaAllocator(
            [new IovaRange(0, 0xfedf_ffff), new IovaRange(0xfef0_0000, 0x7f_ffff_ffff)],
            [IovaAllocator.X86MsiWindow]);
        _iovas.EnsureCapacity(2 * LiveRanges + 16);
        var all = new ulong[2 * LiveRanges];
        for (int i = 0; i < all.Length; i++)
        {
            all[i] = _iovas.Allocate(Page);
        }
        for (int i = 1; i < all.Length; i += 2)
        {
            _iovas.Free(all[i]);
        }
        // Addresses inside random live allocations, so look-ups do not walk one cached path.
        var random = new Random(42);
        _probes = new ulong[ProbeMask + 1];
        for (int i = 0; i < _probes.Length; i++)
        {
            _probes[i] = all[2 * random.Next(LiveRanges)] + (ulong)random.Next((int)Page);
        }
    }

    /// <summary>Allocate and free one page: it lands in the lowest one-page hole and coalesces back on free.</summary>
    [Benchmark]
    public ulong AllocateFreePage()
    {
        ulong iova = _iovas.Allocate(Page);
        _iovas.Free(iova);
        return iova;
    }

    /// <summary>Allocate and free 64 KiB aligned to 64 KiB: no hole fits, so the search goes past every allocation.</summary>
    [Benchmark]
    public ulong AllocateFreeAligned64K()
    {
        ulong iova = _iovas.Allocate(0x1_0000, alignment: 0x1_0000);
        _iovas.Free(iova);
        return iova;
    }

    /// <summary>Allocate and free one page below edu's 28-bit DMA mask.</summary>
    [Benchmark]
    public ulong AllocateFreeEduMask()
    {
        ulong iova = _iovas.Allocate(Page, dmaMask: EduDmaMask);
        _iovas.Free(iova);
        return iova;
    }

    /// <summary>Find the allocation containing an address inside a random live allocation.</summary>
    [Benchmark]
    public bool TryFind()
    {
        ulong probe = _probes[_next++ & ProbeMask];
        return _iovas.TryFind(probe, out _);
    }
}
