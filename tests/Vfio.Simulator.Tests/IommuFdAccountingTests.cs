// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using static Vfio.Simulator.Tests.IommuFdTestKit;

namespace Vfio.Simulator.Tests;

/// <summary>iommufd's RLIMIT_MEMLOCK accounting (pages.c): pages are charged when they get pinned — at MAP with a
/// domain, or when the first domain arrives for existing areas — and uncharged when nothing pins them any more.</summary>
public sealed class IommuFdAccountingTests
{
    private static ulong Pinned(SimulatedKernel kernel) => kernel.GetState().PinnedPages;

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    [Spec("drivers/iommu/iommufd/io_pagetable.c iopt_table_add_domain")]
    public void Map_WithoutDomain_PinsNothing_AttachPinsExistingAreas()
    {
        using SimulatedKernel kernel = Machine();
        using var buffer = new ProcessPages(4 * ProcessPages.PageSize);
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out _).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong iova = 0x100000;
        Map(kernel, iommufd, ioas, buffer.Address, 0x4000, ref iova, Fixed).ShouldBe(0);
        Pinned(kernel).ShouldBe(0UL);
        Attach(kernel, cdev, ioas, out _).ShouldBe(0);
        Pinned(kernel).ShouldBe(4UL);
        Detach(kernel, cdev).ShouldBe(0);
        Pinned(kernel).ShouldBe(0UL, "the auto domain went with its last device: nothing pins the pages");
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    public void Map_WithDomain_Charges_UnmapUncharges()
    {
        using SimulatedKernel kernel = Machine();
        using var buffer = new ProcessPages(4 * ProcessPages.PageSize);
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            ulong iova = 0x100000;
            Map(kernel, iommufd, ioas, buffer.Address, 0x3000, ref iova, Fixed).ShouldBe(0);
            Pinned(kernel).ShouldBe(3UL);
            Unmap(kernel, iommufd, ioas, 0x100000, 0x3000, out _).ShouldBe(0);
            Pinned(kernel).ShouldBe(0UL);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_map")]
    [Spec("drivers/iommu/iommufd/pages.c incr_user_locked_vm")]
    public void Map_OverMemlockLimit_Enomem_NothingMapped()
    {
        using SimulatedKernel kernel = Machine(configure: t => t.MemlockLimit = 0x3000);
        using var buffer = new ProcessPages(4 * ProcessPages.PageSize);
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            ulong iova = 0x100000;
            Map(kernel, iommufd, ioas, buffer.Address, 0x4000, ref iova, Fixed).ShouldBe(-(int)Errno.ENOMEM);
            kernel.GetState().DmaMappings.ShouldBe(0);
            Pinned(kernel).ShouldBe(0UL);
            Map(kernel, iommufd, ioas, buffer.Address, 0x3000, ref iova, Fixed).ShouldBe(0);
            Pinned(kernel).ShouldBe(3UL);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/device.c iommufd_device_attach")]
    public void Attach_ExistingAreasOverLimit_Enomem_NothingPinned()
    {
        using SimulatedKernel kernel = Machine(configure: t => t.MemlockLimit = 0x2000);
        using var buffer = new ProcessPages(4 * ProcessPages.PageSize);
        using SafeFileHandle iommufd = OpenOk(kernel, "/dev/iommu");
        using SafeFileHandle cdev = OpenOk(kernel, "/dev/vfio/devices/vfio0");
        Bind(kernel, cdev, iommufd, out _).ShouldBe(0);
        uint ioas = IoasAlloc(kernel, iommufd);
        ulong iova = 0x100000;
        Map(kernel, iommufd, ioas, buffer.Address, 0x4000, ref iova, Fixed).ShouldBe(0);
        Attach(kernel, cdev, ioas, out _).ShouldBe(-(int)Errno.ENOMEM);
        Pinned(kernel).ShouldBe(0UL);
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/ioas.c iommufd_ioas_copy")]
    public void Copy_SharesThePages_NoSecondCharge()
    {
        // Not in the reference: COPY shares the source's iopt_pages, and a page pinned for several areas is charged
        // once (pages.c npinned/last_npinned). Two MAPs of the same memory are two iopt_pages and charge twice.
        using SimulatedKernel kernel = Machine();
        using var buffer = new ProcessPages(2 * ProcessPages.PageSize);
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        using (iommufd)
        using (cdev)
        {
            ulong iova = 0x100000;
            Map(kernel, iommufd, ioas, buffer.Address, 0x2000, ref iova, Fixed).ShouldBe(0);
            var copy = new iommu_ioas_copy { size = 40, flags = Fixed, dst_ioas_id = ioas, src_ioas_id = ioas, length = 0x2000, dst_iova = 0x200000, src_iova = 0x100000 };
            Call(kernel, iommufd, IommuUapi.IOMMU_IOAS_COPY, ref copy).ShouldBe(0);
            Pinned(kernel).ShouldBe(2UL);
            iova = 0x300000;
            Map(kernel, iommufd, ioas, buffer.Address, 0x2000, ref iova, Fixed).ShouldBe(0);
            Pinned(kernel).ShouldBe(4UL);
            Unmap(kernel, iommufd, ioas, 0x100000, 0x2000, out _).ShouldBe(0);
            Pinned(kernel).ShouldBe(4UL, "the copy still pins the first map's pages");
            Unmap(kernel, iommufd, ioas, 0x200000, 0x2000, out _).ShouldBe(0);
            Pinned(kernel).ShouldBe(2UL);
        }
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_option")]
    public void PerUserAndPerProcessCounters_AreSeparate_EachAgainstTheLimit()
    {
        // /dev/iommu defaults to per-user accounting (user->locked_vm); RLIMIT_MODE 1 switches to the process's
        // mm->locked_vm, the counter Type1 uses. Both are checked against the same RLIMIT_MEMLOCK.
        using SimulatedKernel kernel = Machine(configure: t => t.MemlockLimit = 0x2000);
        using var buffer = new ProcessPages(2 * ProcessPages.PageSize);
        (SafeFileHandle userFd, SafeFileHandle cdev0, _, uint ioas0, _) = Attached(kernel, "/dev/vfio/devices/vfio0");
        using SafeFileHandle processFd = OpenOk(kernel, "/dev/iommu");
        var option = new iommu_option { size = 24, option_id = IommuUapi.IOMMU_OPTION_RLIMIT_MODE, op = IommuUapi.IOMMU_OPTION_OP_SET, val64 = 1 };
        Call(kernel, processFd, IommuUapi.IOMMU_OPTION, ref option).ShouldBe(0);
        using SafeFileHandle cdev1 = OpenOk(kernel, "/dev/vfio/devices/vfio1");
        Bind(kernel, cdev1, processFd, out _).ShouldBe(0);
        uint ioas1 = IoasAlloc(kernel, processFd);
        Attach(kernel, cdev1, ioas1, out _).ShouldBe(0);
        using (userFd)
        using (cdev0)
        {
            ulong iova = 0x100000;
            Map(kernel, userFd, ioas0, buffer.Address, 0x2000, ref iova, Fixed).ShouldBe(0);
            Map(kernel, processFd, ioas1, buffer.Address, 0x2000, ref iova, Fixed).ShouldBe(0, "a separate counter");
            Pinned(kernel).ShouldBe(4UL);
            iova = 0x200000;
            Map(kernel, processFd, ioas1, buffer.Address, 0x1000, ref iova, Fixed).ShouldBe(-(int)Errno.ENOMEM);
        }
        cdev1.Dispose();
        processFd.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/iommu/iommufd/main.c iommufd_fops_release")]
    public void CloseEverything_PinnedReturnsToZero()
    {
        using SimulatedKernel kernel = Machine();
        using var buffer = new ProcessPages(4 * ProcessPages.PageSize);
        (SafeFileHandle iommufd, SafeFileHandle cdev, _, uint ioas, _) = Attached(kernel);
        ulong iova = 0x100000;
        Map(kernel, iommufd, ioas, buffer.Address, 0x4000, ref iova, Fixed).ShouldBe(0);
        Pinned(kernel).ShouldBe(4UL);
        iommufd.Dispose();
        Pinned(kernel).ShouldBe(4UL, "the bound device keeps the context alive");
        cdev.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }
}
