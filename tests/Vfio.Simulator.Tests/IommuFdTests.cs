// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using static Vfio.Simulator.Tests.IommuFdTestKit;

namespace Vfio.Simulator.Tests;

/// <summary>The iommufd model (/dev/iommu): size convention, objects, IOAS map/unmap/copy, HWPTs, dirty tracking.</summary>
public sealed class IommuFdTests
{
    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_fops_ioctl")]
    public void Ioctl_SizeBelowMinimum_Einval()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        var alloc = new iommu_ioas_alloc { size = 8 };
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOC, ref alloc).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_fops_ioctl")]
    public void Ioctl_LargerStructWithNonZeroTail_E2big_ZeroTailAccepted()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        byte[] buffer = new byte[24];
        BitConverter.TryWriteBytes(buffer.AsSpan(0, 4), 24u);
        buffer[20] = 1;
        kernel.Ioctl(iommufd, IommuUapi.IOMMU_IOAS_ALLOC, buffer).ShouldBe(-(int)Errno.E2BIG);
        buffer[20] = 0;
        kernel.Ioctl(iommufd, IommuUapi.IOMMU_IOAS_ALLOC, buffer).ShouldBe(0);
        BitConverter.ToUInt32(buffer, 8).ShouldBe(1u);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_fops_ioctl")]
    public void Ioctl_NullArgument_Efault_UnknownCommands_Enotty()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        kernel.Ioctl(iommufd, IommuUapi.IOMMU_IOAS_ALLOC, 0).ShouldBe(-(int)Errno.EFAULT);
        kernel.Ioctl(iommufd, IoctlEncoding.Io(0x8F), 0).ShouldBe(-(int)Errno.ENOTTY); // IOMMU_IOAS_MAP_FILE is 6.13+
        kernel.Ioctl(iommufd, IoctlEncoding.Io(0x90), 0).ShouldBe(-(int)Errno.ENOTTY);
        kernel.Ioctl(iommufd, IommuUapi.IOMMU_IOAS_ALLOC | 0x40000000, 0).ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_alloc_ioctl")]
    public void IoasAlloc_FlagsSet_Eopnotsupp()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        var alloc = new iommu_ioas_alloc { size = 12, flags = 1 };
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOC, ref alloc).ShouldBe(-(int)Errno.EOPNOTSUPP);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c _iommufd_object_alloc")]
    [Spec("drivers/iommu/iommufd/main.c iommufd_destroy")]
    public void Ids_LowestFreeIsReused_AfterDestroy()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        IoasAlloc(kernel, iommufd).ShouldBe(1u);
        IoasAlloc(kernel, iommufd).ShouldBe(2u);
        IoasAlloc(kernel, iommufd).ShouldBe(3u);
        var destroy = new iommu_destroy { size = 8, id = 2 };
        Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(0);
        IoasAlloc(kernel, iommufd).ShouldBe(2u);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_destroy")]
    public void Destroy_UnknownOrZeroId_Enoent()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        var destroy = new iommu_destroy { size = 8, id = 0 };
        Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(-(int)Errno.ENOENT);
        destroy.id = 9;
        Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(-(int)Errno.ENOENT);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_object_remove")]
    [Spec("drivers/iommu/iommufd/main.c iommufd_destroy")]
    public void Destroy_DeviceIoasWithHwptAndAttachedHwpt_Ebusy()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, uint devid, uint ioas, uint hwpt) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            foreach (uint id in new[] { devid, ioas, hwpt })
            {
                var destroy = new iommu_destroy { size = 8, id = id };
                Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(-(int)Errno.EBUSY);
            }
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_iova_ranges")]
    public void IovaRanges_FreshIoas_OneFullRange_ProbeEmsgsize()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        uint ioas = IoasAlloc(kernel, iommufd);
        var probe = new iommu_ioas_iova_ranges { size = 32, ioas_id = ioas };
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_IOVA_RANGES, ref probe).ShouldBe(-(int)Errno.EMSGSIZE);
        probe.num_iovas.ShouldBe(1u);
        probe.out_iova_alignment.ShouldBe(1ul);
        IovaRanges(kernel, iommufd, ioas, out iommu_iova_range[] ranges, out _).ShouldBe(0);
        ranges.Length.ShouldBe(1);
        ranges[0].start.ShouldBe(0ul);
        ranges[0].last.ShouldBe(ulong.MaxValue);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_iova_ranges")]
    public void IovaRanges_ReservedSetOrUnknownIoas_EopnotsuppEnoent()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        var query = new iommu_ioas_iova_ranges { size = 32, ioas_id = 1, __reserved = 1 };
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_IOVA_RANGES, ref query).ShouldBe(-(int)Errno.EOPNOTSUPP);
        query.__reserved = 0;
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_IOVA_RANGES, ref query).ShouldBe(-(int)Errno.ENOENT);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_iova_ranges")]
    [Spec("drivers/iommu/iommufd/device.c iommufd_device_attach")]
    public void IovaRanges_AfterAttach_MatchRealVtd_DetachWidensAgain()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            IovaRanges(kernel, iommufd, ioas, out iommu_iova_range[] ranges, out ulong alignment).ShouldBe(0);
            ranges.Select(r => (r.start, r.last)).ShouldBe([(0x0ul, 0xfedffffful), (0xfef00000ul, 0xfffffffffffful)]);
            alignment.ShouldBe(4096ul);
            Detach(kernel, cdev).ShouldBe(0);
            IovaRanges(kernel, iommufd, ioas, out ranges, out alignment).ShouldBe(0);
            ranges.Length.ShouldBe(1);
            alignment.ShouldBe(1ul);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    public void Map_Checks_InTableOrder()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using var memory = new ProcessPages(4 * ProcessPages.PageSize);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong iova = 0x100000;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref iova, Fixed | 8).ShouldBe(-(int)Errno.EOPNOTSUPP);
        Map(kernel, iommufd, ioas, memory.Address, ulong.MaxValue, ref iova, Fixed).ShouldBe(-(int)Errno.EOVERFLOW);
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref iova, IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA).ShouldBe(-(int)Errno.EINVAL);
        Map(kernel, iommufd, 99, memory.Address, 4096, ref iova, Fixed).ShouldBe(-(int)Errno.ENOENT);
        Map(kernel, iommufd, ioas, memory.Address, 0, ref iova, Fixed).ShouldBe(-(int)Errno.EINVAL);
        Map(kernel, iommufd, ioas, -4096, 8192, ref iova, Fixed).ShouldBe(-(int)Errno.EOVERFLOW);
        ulong top = ulong.MaxValue - 4095;
        Map(kernel, iommufd, ioas, memory.Address, 8192, ref top, Fixed).ShouldBe(-(int)Errno.EOVERFLOW);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    public void Map_FixedOverlap_Eexist_NoDomainAlignmentIsOne()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using var memory = new ProcessPages(4 * ProcessPages.PageSize);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong iova = 0x10001; // alignment 1 without a domain
        Map(kernel, iommufd, ioas, memory.Address, 0x1000, ref iova, Fixed).ShouldBe(0);
        ulong overlap = 0x10800;
        Map(kernel, iommufd, ioas, memory.Address, 0x1000, ref overlap, Fixed).ShouldBe(-(int)Errno.EEXIST);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    public void Map_NoDomain_InvalidUserVaAccepted_ErrorAppearsAtAttach()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out _).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong iova = 0x100000;
        Map(kernel, iommufd, ioas, 0, 4096, ref iova, Fixed).ShouldBe(0);
        Attach(kernel, cdev, ioas, out _).ShouldBe(-(int)Errno.EFAULT);
        kernel.FindDevice(Dev0)!.Dma.ShouldBeNull();
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    public void Map_AutoIova_NeverZero_AlignedToLength_CappedAtHugePage()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using var memory = new ProcessPages(16 * ProcessPages.PageSize);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong first = 0, second = 0;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref first, ReadWrite).ShouldBe(0);
        first.ShouldBe(4096ul);
        Map(kernel, iommufd, ioas, memory.Address, 16384, ref second, ReadWrite).ShouldBe(0);
        ulong expected = Math.Min(16384ul, 1ul << System.Numerics.BitOperations.TrailingZeroCount((ulong)memory.Address));
        (second % expected).ShouldBe(0ul);
        second.ShouldBeGreaterThan(first);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_allow_iovas")]
    public void Map_AutoIova_TakenFromAllowedRanges_FixedIgnoresThem()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using var memory = new ProcessPages(2 * ProcessPages.PageSize);
        uint ioas = IoasAlloc(kernel, iommufd);
        iommu_iova_range[] allowed = GC.AllocateArray<iommu_iova_range>(1, pinned: true);
        allowed[0] = new iommu_iova_range { start = 0x40000000, last = 0x4000ffff };
        var allow = new iommu_ioas_allow_iovas { size = 24, ioas_id = ioas, num_iovas = 1, allowed_iovas = (ulong)Marshal.UnsafeAddrOfPinnedArrayElement(allowed, 0) };
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOW_IOVAS, ref allow).ShouldBe(0);
        ulong iova = 0;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref iova, ReadWrite).ShouldBe(0);
        iova.ShouldBe(0x40000000ul);
        ulong outside = 0x1000;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref outside, Fixed).ShouldBe(0);
        ulong tooBig = 0;
        Map(kernel, iommufd, ioas, memory.Address, 0x20000, ref tooBig, ReadWrite).ShouldBe(-(int)Errno.ENOSPC);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_allow_iovas")]
    public void AllowIovas_BadRanges_EinvalAndReserved_Eaddrinuse()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            iommu_iova_range[] ranges = GC.AllocateArray<iommu_iova_range>(2, pinned: true);
            var allow = new iommu_ioas_allow_iovas { size = 24, ioas_id = ioas, num_iovas = 1, allowed_iovas = (ulong)Marshal.UnsafeAddrOfPinnedArrayElement(ranges, 0) };
            ranges[0] = new iommu_iova_range { start = 0x1000, last = 0x1000 };
            Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOW_IOVAS, ref allow).ShouldBe(-(int)Errno.EINVAL);
            ranges[0] = new iommu_iova_range { start = 0x1000, last = 0x1fff };
            ranges[1] = new iommu_iova_range { start = 0x1800, last = 0x2fff };
            allow.num_iovas = 2;
            Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOW_IOVAS, ref allow).ShouldBe(-(int)Errno.EINVAL);
            ranges[1] = new iommu_iova_range { start = 0xfee00000, last = 0xfee00fff };
            Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOW_IOVAS, ref allow).ShouldBe(-(int)Errno.EADDRINUSE);
            allow.__reserved = 1;
            Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_ALLOW_IOVAS, ref allow).ShouldBe(-(int)Errno.EOPNOTSUPP);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    [Spec("drivers/iommu/iommufd/device.c iommufd_device_attach")]
    public void Map_WithDomain_ReservedMsiWindow_Einval_UnalignedLength_Einval()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        using (var memory = new ProcessPages(1 * ProcessPages.PageSize))
        {
            ulong msi = 0xfee00000;
            Map(kernel, iommufd, ioas, memory.Address, 4096, ref msi, Fixed).ShouldBe(-(int)Errno.EINVAL);
            ulong iova = 0x100000;
            Map(kernel, iommufd, ioas, memory.Address, 0x800, ref iova, Fixed).ShouldBe(-(int)Errno.EINVAL);
            ulong misaligned = 0x100800;
            Map(kernel, iommufd, ioas, memory.Address, 4096, ref misaligned, Fixed).ShouldBe(-(int)Errno.EINVAL);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/device.c iommufd_device_attach")]
    public void Attach_ExistingMappingInMsiWindow_Eaddrinuse_UnalignedMapping_Eaddrinuse()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        using var memory = new ProcessPages(1 * ProcessPages.PageSize);
        Bind(kernel, cdev, iommufd, out _).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong msi = 0xfee01000;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref msi, Fixed).ShouldBe(0);
        Attach(kernel, cdev, ioas, out _).ShouldBe(-(int)Errno.EADDRINUSE);
        Unmap(kernel, iommufd, ioas, 0, ulong.MaxValue, out _).ShouldBe(0);
        ulong odd = 0x100;
        Map(kernel, iommufd, ioas, memory.Address, 0x100, ref odd, Fixed).ShouldBe(0);
        Attach(kernel, cdev, ioas, out _).ShouldBe(-(int)Errno.EADDRINUSE);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_unmap")]
    public void Unmap_CuttingARange_Enoent_EarlierWholeAreasAlreadyRemoved()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using var memory = new ProcessPages(4 * ProcessPages.PageSize);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong a = 0x10000, b = 0x20000;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref a, Fixed).ShouldBe(0);
        Map(kernel, iommufd, ioas, memory.Address + 4096, 8192, ref b, Fixed).ShouldBe(0);
        Unmap(kernel, iommufd, ioas, 0x10000, 0x11000, out _).ShouldBe(-(int)Errno.ENOENT);
        // The first area went; the second (cut) stays, so a second identical unmap now finds only it.
        ulong again = 0x10000;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref again, Fixed).ShouldBe(0);
        Unmap(kernel, iommufd, ioas, 0x20000, 0x2000, out ulong unmapped).ShouldBe(0);
        unmapped.ShouldBe(0x2000ul);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_unmap")]
    public void Unmap_Checks_NothingMappedEnoent_UnmapAllOnEmptySucceeds()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        uint ioas = IoasAlloc(kernel, iommufd);
        Unmap(kernel, iommufd, 99, 0, 4096, out _).ShouldBe(-(int)Errno.ENOENT);
        Unmap(kernel, iommufd, ioas, 0, ulong.MaxValue, out ulong unmapped).ShouldBe(0);
        unmapped.ShouldBe(0ul);
        Unmap(kernel, iommufd, ioas, ulong.MaxValue, 1, out _).ShouldBe(-(int)Errno.EOVERFLOW);
        Unmap(kernel, iommufd, ioas, 0x1000, 0, out _).ShouldBe(-(int)Errno.EINVAL);
        Unmap(kernel, iommufd, ioas, ulong.MaxValue - 10, 100, out _).ShouldBe(-(int)Errno.EOVERFLOW);
        Unmap(kernel, iommufd, ioas, 0x1000, 0x1000, out _).ShouldBe(-(int)Errno.ENOENT);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_copy")]
    public void Copy_SharesPages_DeviceSeesSourceMemoryThroughDestination()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint dst, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        using (var memory = new ProcessPages(2 * ProcessPages.PageSize))
        {
            uint src = IoasAlloc(kernel, iommufd);
            ulong srcIova = 0x10000;
            Map(kernel, iommufd, src, memory.Address, 8192, ref srcIova, Fixed).ShouldBe(0);
            var copy = new iommu_ioas_copy { size = 40, flags = Fixed, dst_ioas_id = dst, src_ioas_id = src, length = 4096, dst_iova = 0x500000, src_iova = 0x11000 };
            Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_COPY, ref copy).ShouldBe(0);
            kernel.FindDevice(Dev0)!.DmaWrite(0x500000, [1, 2, 3]).ShouldBeTrue();
            memory.Read(4096, 3).ShouldBe(new byte[] { 1, 2, 3 });
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_copy")]
    public void Copy_Checks_UnmappedSourceEnoent_ReadOnlySourceWritableEperm()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using var memory = new ProcessPages(1 * ProcessPages.PageSize);
        uint src = IoasAlloc(kernel, iommufd), dst = IoasAlloc(kernel, iommufd);
        ulong iova = 0x10000;
        Map(kernel, iommufd, src, memory.Address, 4096, ref iova, IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA | IommuUapi.IOMMU_IOAS_MAP_READABLE).ShouldBe(0);
        var copy = new iommu_ioas_copy { size = 40, flags = Fixed, dst_ioas_id = dst, src_ioas_id = src, length = 4096, dst_iova = 0x10000, src_iova = 0x20000 };
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_COPY, ref copy).ShouldBe(-(int)Errno.ENOENT);
        copy.src_iova = 0x10000;
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_COPY, ref copy).ShouldBe(-(int)Errno.EPERM);
        copy.flags = IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA | IommuUapi.IOMMU_IOAS_MAP_READABLE;
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_COPY, ref copy).ShouldBe(0);
        copy.flags = 1u << 5;
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_COPY, ref copy).ShouldBe(-(int)Errno.EOPNOTSUPP);
        copy.flags = IommuUapi.IOMMU_IOAS_MAP_FIXED_IOVA;
        Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_COPY, ref copy).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_option")]
    public void Option_HugePages_GetSetAndRlimitMode()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        var option = new iommu_option { size = 24, option_id = IommuUapi.IOMMU_OPTION_RLIMIT_MODE, op = IommuUapi.IOMMU_OPTION_OP_GET, val64 = 7 };
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(0);
        option.val64.ShouldBe(0ul); // /dev/iommu: per-user accounting
        option = new iommu_option { size = 24, option_id = IommuUapi.IOMMU_OPTION_RLIMIT_MODE, op = IommuUapi.IOMMU_OPTION_OP_SET, val64 = 1 };
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(-(int)Errno.EBUSY);
        option = new iommu_option { size = 24, option_id = IommuUapi.IOMMU_OPTION_HUGE_PAGES, op = IommuUapi.IOMMU_OPTION_OP_SET, object_id = ioas, val64 = 0 };
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(0);
        IovaRanges(kernel, iommufd, ioas, out _, out ulong alignment).ShouldBe(0);
        alignment.ShouldBe(4096ul);
        option.op = IommuUapi.IOMMU_OPTION_OP_GET;
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(0);
        option.val64.ShouldBe(0ul);
        option = new iommu_option { size = 24, option_id = 7 };
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(-(int)Errno.EOPNOTSUPP);
        option = new iommu_option { size = 24, option_id = IommuUapi.IOMMU_OPTION_HUGE_PAGES, object_id = 42, op = IommuUapi.IOMMU_OPTION_OP_GET };
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(-(int)Errno.ENOENT);
        option = new iommu_option { size = 24, option_id = IommuUapi.IOMMU_OPTION_HUGE_PAGES, object_id = ioas, op = IommuUapi.IOMMU_OPTION_OP_SET, val64 = 2 };
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(-(int)Errno.EINVAL);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_option")]
    public void Option_RlimitSetUnprivileged_Eperm()
    {
        using SimulatedKernel kernel = Machine(configure: t => t.Privileged = false);
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        var option = new iommu_option { size = 24, option_id = IommuUapi.IOMMU_OPTION_RLIMIT_MODE, op = IommuUapi.IOMMU_OPTION_OP_SET, val64 = 1 };
        Call(kernel, iommufd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(-(int)Errno.EPERM);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/vfio_compat.c iommufd_vfio_ioas")]
    public void VfioIoas_GetSetClear()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        var cmd = new iommu_vfio_ioas { size = 12, op = IommuUapi.IOMMU_VFIO_IOAS_GET };
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(-(int)Errno.ENODEV);
        uint ioas = IoasAlloc(kernel, iommufd);
        cmd = new iommu_vfio_ioas { size = 12, op = IommuUapi.IOMMU_VFIO_IOAS_SET, ioas_id = 5 };
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(-(int)Errno.ENOENT);
        cmd.ioas_id = ioas;
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(0);
        cmd = new iommu_vfio_ioas { size = 12, op = IommuUapi.IOMMU_VFIO_IOAS_GET };
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(0);
        cmd.ioas_id.ShouldBe(ioas);
        cmd = new iommu_vfio_ioas { size = 12, op = IommuUapi.IOMMU_VFIO_IOAS_CLEAR };
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(0);
        cmd = new iommu_vfio_ioas { size = 12, op = 3 };
        Call(kernel, iommufd, IommuUapi.IOMMU_VFIO_IOAS, ref cmd).ShouldBe(-(int)Errno.EOPNOTSUPP);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/hw_pagetable.c iommufd_hwpt_alloc")]
    public void HwptAlloc_Checks_InTableOrder()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out uint devid).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        var alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = ioas, __reserved = 1 };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EOPNOTSUPP);
        alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = ioas, data_len = 24 };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EINVAL);
        alloc = new iommu_hwpt_alloc { size = 48, dev_id = ioas, pt_id = ioas };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.ENOENT);
        alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = 77 };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EINVAL);
        alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = devid };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EINVAL);
        alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = ioas, flags = IommuUapi.IOMMU_HWPT_FAULT_ID_VALID };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EOPNOTSUPP);
        alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = ioas, flags = IommuUapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EOPNOTSUPP); // QEMU VT-d: no SSADS
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/hw_pagetable.c iommufd_hwpt_alloc")]
    public void HwptAlloc_Manual_NotAttached_NarrowsApertureOnly_DestroyableWhenUnused()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out uint devid).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        var alloc = new iommu_hwpt_alloc { size = 24, dev_id = devid, pt_id = ioas };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(0);
        alloc.out_hwpt_id.ShouldBe(3u);
        kernel.FindDevice(Dev0)!.Dma.ShouldBeNull();
        IovaRanges(kernel, iommufd, ioas, out iommu_iova_range[] ranges, out _).ShouldBe(0);
        ranges.Select(r => (r.start, r.last)).ShouldBe([(0ul, 0xfffffffffffful)]);
        Attach(kernel, cdev, alloc.out_hwpt_id, out uint attached).ShouldBe(0);
        attached.ShouldBe(alloc.out_hwpt_id);
        var destroy = new iommu_destroy { size = 8, id = alloc.out_hwpt_id };
        Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(-(int)Errno.EBUSY);
        Detach(kernel, cdev).ShouldBe(0);
        Call(kernel, iommufd, IommuUapi.IOMMU_DESTROY, ref destroy).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/hw_pagetable.c iommufd_hwpt_alloc")]
    public void HwptAlloc_NestedOnPagingParent_NotNestParent_Einval()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, uint devid, _, uint hwpt) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            var alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = hwpt, data_type = IommuUapi.IOMMU_HWPT_DATA_VTD_S1, data_len = 24, data_uptr = 8 };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EINVAL);
            alloc.flags = IommuUapi.IOMMU_HWPT_ALLOC_NEST_PARENT;
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(-(int)Errno.EOPNOTSUPP);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/device.c iommufd_get_hw_info")]
    public void GetHwInfo_IntelVtd_TwoCallLength_ZeroFillsTail()
    {
        using SimulatedKernel kernel = Machine();
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out uint devid).ShouldBe(0);
        devid.ShouldBe(1u);
        var info = new iommu_hw_info { size = 40, dev_id = devid };
        Call(kernel, iommufd, IommuUapi.IOMMU_GET_HW_INFO, ref info).ShouldBe(0);
        info.out_data_type.ShouldBe(IommuUapi.IOMMU_HW_INFO_TYPE_INTEL_VTD);
        info.data_len.ShouldBe(24u);
        info.out_capabilities.ShouldBe(0ul);
        byte[] buffer = GC.AllocateArray<byte>(32, pinned: true);
        buffer.AsSpan().Fill(0xAA);
        info = new iommu_hw_info { size = 40, dev_id = devid, data_len = 32, data_uptr = (ulong)Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0) };
        Call(kernel, iommufd, IommuUapi.IOMMU_GET_HW_INFO, ref info).ShouldBe(0);
        BitConverter.ToUInt64(buffer, 8).ShouldBe(0xd2008c222f0606ul);
        buffer.AsSpan(24).ToArray().ShouldAllBe(b => b == 0);
        info = new iommu_hw_info { size = 40, dev_id = 9 };
        Call(kernel, iommufd, IommuUapi.IOMMU_GET_HW_INFO, ref info).ShouldBe(-(int)Errno.ENOENT);
        info = new iommu_hw_info { size = 40, dev_id = devid, flags = 1 };
        Call(kernel, iommufd, IommuUapi.IOMMU_GET_HW_INFO, ref info).ShouldBe(-(int)Errno.EOPNOTSUPP);
    }

    private static (SafeFileHandle IommuFd, SafeFileHandle Cdev, uint Ioas, uint Hwpt) DirtyHwpt(SimulatedKernel kernel)
    {
        kernel.IommuDirtyTracking = true;
        SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out uint devid).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        var alloc = new iommu_hwpt_alloc { size = 48, dev_id = devid, pt_id = ioas, flags = IommuUapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING };
        Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_ALLOC, ref alloc).ShouldBe(0);
        Attach(kernel, cdev, alloc.out_hwpt_id, out _).ShouldBe(0);
        return (iommufd, cdev, ioas, alloc.out_hwpt_id);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/hw_pagetable.c iommufd_hwpt_get_dirty_bitmap")]
    public void DirtyTracking_DeviceWritesMarkPages_ReadClearsUnlessNoClear()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, uint ioas, uint hwpt) = DirtyHwpt(kernel);
        using (iommufd)
        using (cdev)
        using (var memory = new ProcessPages(4 * ProcessPages.PageSize))
        {
            ulong iova = 0x100000;
            Map(kernel, iommufd, ioas, memory.Address, 4 * 4096, ref iova, Fixed).ShouldBe(0);
            var set = new iommu_hwpt_set_dirty_tracking { size = 16, flags = IommuUapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE, hwpt_id = hwpt };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_SET_DIRTY_TRACKING, ref set).ShouldBe(0);
            kernel.FindDevice(Dev0)!.DmaWrite(0x102010, [9]).ShouldBeTrue();
            ulong[] bitmap = GC.AllocateArray<ulong>(1, pinned: true);
            var get = new iommu_hwpt_get_dirty_bitmap
            {
                size = 48, hwpt_id = hwpt, flags = IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, iova = 0x100000, length = 4 * 4096,
                page_size = 4096, data = (ulong)Marshal.UnsafeAddrOfPinnedArrayElement(bitmap, 0),
            };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, ref get).ShouldBe(0);
            bitmap[0].ShouldBe(0b100ul);
            bitmap[0] = 0;
            get.flags = 0;
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, ref get).ShouldBe(0);
            bitmap[0].ShouldBe(0b100ul);
            bitmap[0] = 0;
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, ref get).ShouldBe(0);
            bitmap[0].ShouldBe(0ul);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/hw_pagetable.c iommufd_hwpt_get_dirty_bitmap")]
    public void DirtyTracking_Checks_AutoDomainEopnotsupp_BadRangeEinval()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint hwpt) = DirtyHwpt(kernel);
        using (iommufd)
        using (cdev)
        {
            var set = new iommu_hwpt_set_dirty_tracking { size = 16, flags = 2, hwpt_id = hwpt };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_SET_DIRTY_TRACKING, ref set).ShouldBe(-(int)Errno.EOPNOTSUPP);
            set = new iommu_hwpt_set_dirty_tracking { size = 16, flags = 1, hwpt_id = 1 };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_SET_DIRTY_TRACKING, ref set).ShouldBe(-(int)Errno.ENOENT);
            var get = new iommu_hwpt_get_dirty_bitmap { size = 48, hwpt_id = hwpt, iova = 0x1000, length = 0, page_size = 4096 };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, ref get).ShouldBe(-(int)Errno.EINVAL);
            get.length = 0x800;
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, ref get).ShouldBe(-(int)Errno.EINVAL);
            get.length = 0x1000;
            get.page_size = 0;
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, ref get).ShouldBe(-(int)Errno.EINVAL);
            get.__reserved = 1;
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_GET_DIRTY_BITMAP, ref get).ShouldBe(-(int)Errno.EOPNOTSUPP);
        }
        using SimulatedKernel plain = Machine();
        (SafeFileHandle fd, SafeFileHandle dev, _, _, uint auto) = Attached(plain);
        using (fd)
        using (dev)
        {
            var set = new iommu_hwpt_set_dirty_tracking { size = 16, flags = 1, hwpt_id = auto };
            Call(plain, fd, IommuUapi.IOMMU_HWPT_SET_DIRTY_TRACKING, ref set).ShouldBe(-(int)Errno.EOPNOTSUPP);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/hw_pagetable.c iommufd_hwpt_invalidate")]
    public void HwptInvalidate_NoNestedHwpt_Enoent_EntryNumWrittenBack()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, _, uint hwpt) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            var inv = new iommu_hwpt_invalidate { size = 32, hwpt_id = hwpt, entry_num = 3, entry_len = 24 };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_INVALIDATE, ref inv).ShouldBe(-(int)Errno.EINVAL);
            inv.entry_num.ShouldBe(0u);
            inv = new iommu_hwpt_invalidate { size = 32, hwpt_id = hwpt };
            Call(kernel, iommufd, IommuUapi.IOMMU_HWPT_INVALIDATE, ref inv).ShouldBe(-(int)Errno.ENOENT);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_fops_release")]
    public void ClosingIommufd_WhileDeviceBound_KeepsMappingsAlive()
    {
        using SimulatedKernel kernel = Machine();
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using var memory = new ProcessPages(1 * ProcessPages.PageSize);
        ulong iova = 0x100000;
        Map(kernel, iommufd, ioas, memory.Address, 4096, ref iova, Fixed).ShouldBe(0);
        iommufd.Dispose();
        kernel.OpenFileCount.ShouldBe(1);
        kernel.FindDevice(Dev0)!.DmaWrite(0x100000, [5]).ShouldBeTrue();
        memory.Read(0, 1)[0].ShouldBe((byte)5);
        cdev.Dispose();
        kernel.OpenFileCount.ShouldBe(0);
        kernel.FindDevice(Dev0)!.Dma.ShouldBeNull();
    }
}
