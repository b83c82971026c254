// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Attributes;
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Benchmarks;

/// <summary>
/// One map + unmap pair of a 4 KiB buffer through <see cref="DmaSpace"/> and each backend, on the simulator: the
/// library's cost per mapping (checks, book-keeping, one ioctl each way) plus the model's. The acceptance is
/// 0 bytes allocated per pair; the time is the simulator's as much as ours (the real kernel is measured in the
/// testbed).
/// </summary>
[MemoryDiagnoser]
public class DmaMapBenchmarks : IDisposable
{
    private const string Edu = "0000:00:02.0";
    private SimulatedKernel? _kernel;
    private IIommuBackend? _backend;
    private DmaSpace? _space;
    private AttachedDevice? _device;
    private DmaBuffer? _buffer;

    /// <summary>The backend under test.</summary>
    [Params("legacy", "iommufd")]
    public string Backend { get; set; } = "legacy";

    [GlobalSetup]
    public void Setup()
    {
        _kernel = new SimulatedKernel(new SimulatedTopology().AddPci(Edu, iommuGroup: 2, new EduDevice()));
        _backend = Backend == "legacy" ? new LegacyBackend(_kernel) : new IommuFdBackend(_kernel);
        _space = new DmaSpace("bench");
        _space.EnsureCapacity(16);
        _device = _backend.AttachDevice(VfioDeviceSource.Pci(Edu), _space);
        // The buffer's pages, mapped and unmapped again at a second IOVA by the benchmark (an IOMMU may alias memory).
        _buffer = DmaBuffer.Allocate(_space, 4096);
    }

    [Benchmark]
    public ulong MapUnmap()
    {
        DmaMapping mapping = _space!.Map(_buffer!.Address, 4096);
        _space.Unmap(mapping.Iova);
        return mapping.Iova;
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _buffer?.Dispose();
        _device?.Dispose();
        _space?.Dispose();
        (_backend as IDisposable)?.Dispose();
        _kernel?.Dispose();
        GC.SuppressFinalize(this);
    }
}
