// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Attributes;
using Vfio.Core;

namespace Vfio.Benchmarks;

/// <summary>
/// H3: what <see cref="DmaSpace"/> itself costs per 4 KiB map + unmap pair, above the container call. The space has one
/// container whose map and unmap do nothing, so <see cref="Space_MapUnmap"/> minus <see cref="Container_MapUnmap"/> is
/// the space's own work (checks, IOVA allocation, book-keeping, lock, metrics hook).
/// </summary>
[MemoryDiagnoser]
[CategoriesColumn]
public class DmaSpaceOverheadBenchmarks : IDisposable
{
    internal const int Pairs = 64;
    private DmaSpace _space = null!;
    private NoOpContainer _container = null!;
    private nint _memory;
    private DmaMapping _fixed;

    [GlobalSetup]
    public void Setup()
    {
        _space = new DmaSpace("bench");
        _container = new NoOpContainer(new NoOpBackend(), _space);
        _space.Join(_container);
        // Any page-aligned address: the no-op container never touches the memory.
        _memory = 0x10_0000;
        _fixed = new DmaMapping(0x20_0000, 4096, _memory, DmaAccess.ReadWrite, DmaSectionKind.Ram);
    }

    /// <summary>The container call alone (what the space adds to): map and unmap of a 4 KiB mapping.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs), BenchmarkCategory("H3")]
    public int Container_MapUnmap()
    {
        NoOpContainer container = _container;
        for (int i = 0; i < Pairs; i++)
        {
            container.MapCore(_fixed);
            container.UnmapCore(_fixed);
        }
        return container.Calls;
    }

    /// <summary>The space's map (IOVA chosen by the space) and unmap.</summary>
    [Benchmark(OperationsPerInvoke = Pairs), BenchmarkCategory("H3")]
    public ulong Space_MapUnmap()
    {
        DmaSpace space = _space;
        ulong sum = 0;
        for (int i = 0; i < Pairs; i++)
        {
            DmaMapping mapping = space.Map(_memory, 4096);
            space.Unmap(mapping.Iova);
            sum += mapping.Iova;
        }
        return sum;
    }

    /// <summary>The space's map at a fixed IOVA and unmap.</summary>
    [Benchmark(OperationsPerInvoke = Pairs), BenchmarkCategory("H3")]
    public ulong Space_MapAtUnmap()
    {
        DmaSpace space = _space;
        ulong sum = 0;
        for (int i = 0; i < Pairs; i++)
        {
            DmaMapping mapping = space.MapAt(0x20_0000, _memory, 4096);
            space.Unmap(mapping.Iova);
            sum += mapping.Iova;
        }
        return sum;
    }

    /// <summary>The space (for the profile loops).</summary>
    internal DmaSpace Space => _space;

    [GlobalCleanup]
    public void Dispose()
    {
        _space?.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A container whose map and unmap only count.</summary>
    internal sealed class NoOpContainer(IIommuBackend backend, DmaSpace space) : DmaContainer(backend, space, "no-op container")
    {
        internal int Calls { get; private set; }

        protected internal override void MapCore(in DmaMapping mapping) => Calls++;

        protected internal override void UnmapCore(in DmaMapping mapping) => Calls++;

        protected internal override void ReleaseCore()
        {
        }
    }

    internal sealed class NoOpBackend : IIommuBackend
    {
        public string Name => "no-op";

        public IommuBackendFeatures Features => IommuBackendFeatures.None;

        public bool IsAvailable(out string reason)
        {
            reason = "benchmark";
            return true;
        }

        public bool CanAttach(VfioDeviceSource device, out string reason)
        {
            reason = "a benchmark backend attaches nothing";
            return false;
        }

        public AttachedDevice AttachDevice(VfioDeviceSource device, DmaSpace space)
            => throw new NotSupportedException("The benchmark backend attaches no device.");

        public void DetachDevice(AttachedDevice device)
            => throw new NotSupportedException("The benchmark backend attaches no device.");
    }
}
