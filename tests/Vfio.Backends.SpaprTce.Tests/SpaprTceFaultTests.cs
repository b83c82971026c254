// SPDX-License-Identifier: MIT
using System.Reflection;

namespace Vfio.Backends.SpaprTce.Tests;

/// <summary>A fault injected at every ioctl call of attach and map (each call of each request, one run per call):
/// the failure is a typed error, and after disposal nothing is left in the kernel (fds, TCEs, windows,
/// pre-registrations, locked memory).</summary>
public sealed class SpaprTceFaultTests
{
    private static readonly uint[] s_requests = [.. typeof(VfioUapi).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(static f => f.IsInitOnly && f.FieldType == typeof(uint))
        .Select(static f => (uint)f.GetValue(null)!)
        .Distinct()];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FaultAtEveryIoctlOfAttachAndMap_IsTyped_AndLeavesNothing(bool v1Only)
    {
        Dictionary<uint, long> calls = CountCalls(v1Only);
        calls.Keys.ShouldContain(VfioUapi.VFIO_IOMMU_MAP_DMA);
        if (!v1Only)
        {
            calls.Keys.ShouldContain(VfioUapi.VFIO_IOMMU_SPAPR_REGISTER_MEMORY);
            calls.Keys.ShouldContain(VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE);
            calls.Keys.ShouldContain(VfioUapi.VFIO_IOMMU_SPAPR_TCE_REMOVE);
        }
        else
        {
            calls.Keys.ShouldContain(VfioUapi.VFIO_IOMMU_ENABLE);
        }
        int runs = 0, failures = 0;
        foreach ((uint request, long count) in calls)
        {
            for (int nth = 1; nth <= count; nth++)
            {
                using SimulatedKernel kernel = Machine(v1Only);
                kernel.Faults.FailIoctl(request, nth, Errno.EIO);
                Exception? failure = Record.Exception(() => Scenario(kernel));
                runs++;
                if (failure is not null)
                {
                    failures++;
                    failure.ShouldBeAssignableTo<VfioException>($"request 0x{request:x}, call {nth}: {failure}");
                }
                kernel.GetState().IsEmpty.ShouldBeTrue($"request 0x{request:x}, call {nth}: {kernel.GetState()}");
            }
        }
        runs.ShouldBeGreaterThan(10);
        failures.ShouldBeGreaterThan(runs / 2);
    }

    private static SimulatedKernel Machine(bool v1Only) => PowerKit.Host(t => t.SpaprTceV1Only = v1Only);

    /// <summary>Attach, map a buffer (a window and a pre-registration on v2), unmap, detach.</summary>
    private static void Scenario(SimulatedKernel kernel)
    {
        using var backend = new SpaprTceBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(PowerKit.Edu(), space);
        using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
    }

    private static Dictionary<uint, long> CountCalls(bool v1Only)
    {
        using SimulatedKernel kernel = Machine(v1Only);
        Dictionary<uint, long> before = s_requests.ToDictionary(static r => r, kernel.Faults.CallCount);
        Scenario(kernel);
        kernel.GetState().IsEmpty.ShouldBeTrue();
        return s_requests
            .Select(r => (Request: r, Calls: kernel.Faults.CallCount(r) - before[r]))
            .Where(static p => p.Calls > 0)
            .ToDictionary(static p => p.Request, static p => p.Calls);
    }
}
