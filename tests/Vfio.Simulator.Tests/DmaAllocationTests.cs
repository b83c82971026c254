// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>
/// The kernel port's contract (IKernel): <c>Ioctl</c> does not allocate. After warm-up (pools and lists grown), raw
/// MAP/UNMAP pairs through the simulator leave <see cref="GC.GetAllocatedBytesForCurrentThread"/> unchanged, for
/// Type1 v1 and v2 and for an IOAS with and without an attached device (memlock accounting included).
/// </summary>
public sealed class DmaAllocationTests
{
    private const int Pairs = 1000;
    private const string Edu = "0000:00:02.0";

    [Theory]
    [InlineData(VfioUapi.VFIO_TYPE1v2_IOMMU)]
    [InlineData(VfioUapi.VFIO_TYPE1_IOMMU)]
    public void Type1_MapUnmapPairs_AllocateNothing(uint type)
    {
        using var m = new LegacyMachine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(type);
        using (container)
        using (group)
        using (var buffer = new ProcessPages(0x4000))
        {
            // A resident mapping below, so each pair inserts into and removes from a non-empty interval list.
            m.Map(container, buffer.Vaddr, 0x10_0000, 0x1000).ShouldBe(0);
            var map = new vfio_iommu_type1_dma_map
            {
                argsz = 32,
                flags = LegacyMachine.ReadWrite,
                vaddr = buffer.Vaddr + 0x1000,
                iova = 0x20_0000,
                size = 0x3000,
            };
            var unmap = new vfio_iommu_type1_dma_unmap { argsz = 24, iova = 0x20_0000, size = 0x3000 };
            ulong locked = m.Kernel.LockedVmPages;
            long allocated = Measure(() =>
            {
                Expect(m.Ioctl(container, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map) == 0);
                unmap.size = 0x3000;
                Expect(m.Ioctl(container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, ref unmap) == 0 && unmap.size == 0x3000);
            });
            allocated.ShouldBe(0);
            m.Kernel.LockedVmPages.ShouldBe(locked);
            m.Type1(container).MappingCount.ShouldBe(1);
        }
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void Ioas_MapUnmapPairs_AllocateNothing(bool attachedEdu, bool fixedIova)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology().AddPci(Edu, iommuGroup: 2, new EduDevice()));
        using SafeFileHandle iommufd = IommuFdTestKit.OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = IommuFdTestKit.OpenOk(kernel, "/dev/vfio/devices/vfio0");
        IommuFdTestKit.Bind(kernel, cdev, iommufd, out _).ShouldBe(0);
        uint ioas = IommuFdTestKit.IoasAlloc(kernel, iommufd);
        if (attachedEdu)
        {
            IommuFdTestKit.Attach(kernel, cdev, ioas, out _).ShouldBe(0);
        }
        using var pages = new ProcessPages(4 * ProcessPages.PageSize);
        ulong resident = 0x10_0000;
        IommuFdTestKit.Map(kernel, iommufd, ioas, pages.Address, 0x1000, ref resident, IommuFdTestKit.Fixed).ShouldBe(0);
        var map = new iommu_ioas_map
        {
            size = 40,
            flags = fixedIova ? IommuFdTestKit.Fixed : IommuFdTestKit.ReadWrite,
            ioas_id = ioas,
            user_va = (ulong)pages.Address + 0x1000,
            length = 0x3000,
        };
        var unmap = new iommu_ioas_unmap { size = 24, ioas_id = ioas, length = 0x3000 };
        ulong locked = kernel.LockedVmPages + kernel.UserLockedVmPages;
        long allocated = Measure(() =>
        {
            map.iova = 0x20_0000;
            Expect(IommuFdTestKit.Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_MAP, ref map) == 0);
            unmap.iova = map.iova;
            unmap.length = 0x3000;
            Expect(IommuFdTestKit.Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_UNMAP, ref unmap) == 0 && unmap.length == 0x3000);
        });
        allocated.ShouldBe(0);
        (kernel.LockedVmPages + kernel.UserLockedVmPages).ShouldBe(locked);
        kernel.GetState().DmaMappings.ShouldBe(1);
    }

    /// <summary>An assertion that allocates nothing when it holds (Shouldly's do), for the measured loops.</summary>
    private static void Expect(bool condition)
    {
        if (!condition)
        {
            throw new InvalidOperationException("a MAP/UNMAP pair failed");
        }
    }

    /// <summary>Runs <paramref name="pair"/> to warm up, then <see cref="Pairs"/> times, returning the bytes the
    /// measured runs allocated on this thread.</summary>
    private static long Measure(Action pair)
    {
        for (int i = 0; i < 100; i++)
        {
            pair();
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Pairs; i++)
        {
            pair();
        }
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }
}
