// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>
/// The sPAPR TCE backend on the pseries platform, answer by answer as the ppc64le probe saw them on Linux 6.12.118 in a
/// QEMU 10.0.2 pseries guest (tests/testbed/ppc64le). The simulated kernel's PAGE_SIZE is 4 KiB where the guest's was
/// 64 KiB: alignment cases use offsets misaligned for both.
/// </summary>
public sealed partial class SpaprTceTests
{
    private const ulong DdwStart = 1UL << 59;
    private const int ENODEV = -(int)Errno.ENODEV;

    private static LegacyMachine PSeries(Action<SimulatedTopology>? configure = null) => Machine(t =>
    {
        t.SpaprPlatform = SimulatedSpaprPlatform.PSeries;
        configure?.Invoke(t);
    });

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    [Spec("drivers/vfio/container.c vfio_ioctl_set_iommu")]
    [Probed("ppc64le probe: CHECK_EXTENSION 1 = 0, 2 = 1, 3 = 0, 5 = 0, 7 = 1, 8 = 0; SET_IOMMU v1 before a group = -1 EINVAL")]
    public void PSeries_Extensions_V1AndV2Only_NoEeh()
    {
        using LegacyMachine m = PSeries();
        using SafeFileHandle container = m.OpenContainer();
        m.CheckExtension(container, VfioUapi.VFIO_TYPE1_IOMMU).ShouldBe(0);
        m.CheckExtension(container, V1).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_EEH).ShouldBe(0);
        m.CheckExtension(container, V2).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_NOIOMMU_IOMMU).ShouldBe(0);
        m.SetIommu(container, V1).ShouldBe(EINVAL, "no group yet");
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    [Probed("ppc64le probe: v1 SPAPR_TCE_GET_INFO argsz 16 = 0, dma32 0x0+0x40000000, the rest unwritten; argsz 32: flags 0x0, pgsizes 0, max_windows 0, levels 0")]
    [Probed("ppc64le probe: v2 SPAPR_TCE_GET_INFO argsz 32: flags 0x1 dma32 0x0+0x40000000 pgsizes 0x1211000 max_windows 2 levels 1")]
    public void PSeries_GetInfo_OneGibWindow_V2Ddw()
    {
        using LegacyMachine m = PSeries();
        (SafeFileHandle c1, SafeFileHandle g1) = m.Ready(V1, groupId: 2);
        (SafeFileHandle c2, SafeFileHandle g2) = m.Ready(V2, groupId: 3);
        using (c1)
        using (g1)
        using (c2)
        using (g2)
        {
            var info = new vfio_iommu_spapr_tce_info { argsz = 16, ddw = new vfio_iommu_spapr_tce_ddw_info { pgsizes = 0xabab, levels = 0xab } };
            m.Ioctl(c1, SpaprTceDriver.GetInfoRequest, ref info).ShouldBe(0);
            (info.dma32_window_start, info.dma32_window_size).ShouldBe((0u, 0x4000_0000u));
            (info.ddw.pgsizes, info.ddw.levels).ShouldBe((0xababUL, 0xabu), "argsz 16 leaves the rest unwritten");
            info = new vfio_iommu_spapr_tce_info { argsz = 32, ddw = new vfio_iommu_spapr_tce_ddw_info { pgsizes = 7, levels = 7, max_dynamic_windows_supported = 7 } };
            m.Ioctl(c1, SpaprTceDriver.GetInfoRequest, ref info).ShouldBe(0);
            (info.flags, info.ddw.pgsizes, info.ddw.max_dynamic_windows_supported, info.ddw.levels).ShouldBe((0u, 0UL, 0u, 0u));

            info = new vfio_iommu_spapr_tce_info { argsz = 32 };
            m.Ioctl(c2, SpaprTceDriver.GetInfoRequest, ref info).ShouldBe(0);
            info.flags.ShouldBe(VfioUapi.VFIO_IOMMU_SPAPR_INFO_DDW);
            (info.dma32_window_start, info.dma32_window_size).ShouldBe((0u, 0x4000_0000u));
            info.ddw.pgsizes.ShouldBe(0x1211000UL, "4K, 64K, 2M and 16M");
            info.ddw.max_dynamic_windows_supported.ShouldBe(2u);
            info.ddw.levels.ShouldBe(1u);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    [Spec("arch/powerpc/platforms/pseries/iommu.c tce_exchange_pseries")]
    [Probed("ppc64le probe: v1 MAP_DMA before ENABLE = -1 EPERM; ENABLE = 0; ENABLE again = -1 EBUSY")]
    [Probed("ppc64le probe: v1 MAP_DMA 4K = 0, 64K = 0, no direction = -1 EINVAL, misaligned vaddr = -1 EINVAL, past window end iova 0x3ffff000 size 0x2000 = -1 errno 4, outside window = -1 ENXIO, over an existing entry = 0")]
    [Probed("ppc64le probe: v1 UNMAP_DMA nothing mapped = 0 (size unchanged), outside window = -1 ENXIO; REGISTER_MEMORY on v1 = -1 ENOTTY")]
    public void PSeries_V1_EnableMapUnmap()
    {
        using LegacyMachine m = PSeries();
        using var buffer = new ProcessPages(0x20000);
        ulong vaddr = (buffer.Vaddr + 0xFFFF) & ~0xFFFFUL;
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V1);
        using (container)
        using (group)
        {
            m.Map(container, vaddr, 0, 0x10000).ShouldBe(-(int)Errno.EPERM);
            m.Kernel.Ioctl(container, SpaprTceDriver.EnableRequest, 0).ShouldBe(0);
            m.Kernel.Ioctl(container, SpaprTceDriver.EnableRequest, 0).ShouldBe(-(int)Errno.EBUSY);
            m.Map(container, vaddr, 0, 0x1000).ShouldBe(0);
            m.Map(container, vaddr, 0x10000, 0x10000).ShouldBe(0);
            m.Map(container, vaddr, 0x20000, 0x1000, flags: 0).ShouldBe(EINVAL);
            m.Map(container, vaddr + 0x800, 0x20000, 0x1000).ShouldBe(EINVAL);
            int before = m.Kernel.GetState().DmaMappings;
            m.Map(container, vaddr, 0x3fff_f000, 0x2000).ShouldBe(SpaprTceDriver.HParameter, "the hypervisor's H_PARAMETER is returned as is: errno 4");
            m.Kernel.GetState().DmaMappings.ShouldBe(before, "the entry written before the refused one is cleared");
            m.Map(container, vaddr, 0x4000_0000, 0x1000).ShouldBe(-(int)Errno.ENXIO);
            m.Map(container, vaddr, 0, 0x1000).ShouldBe(0, "no overlap check");
            m.Unmap(container, 0, 0x1000, out _).ShouldBe(0);
            m.Unmap(container, 0x10000, 0x10000, out _).ShouldBe(0);
            m.Unmap(container, 0x40000, 0x1000, out ulong unmapped).ShouldBe(0, "nothing mapped there");
            unmapped.ShouldBe(0x1000UL, "the size is not written back");
            m.Unmap(container, 0x4000_0000, 0x1000, out _).ShouldBe(-(int)Errno.ENXIO);
            Register(m, container, vaddr, 0x10000).ShouldBe(-(int)Errno.ENOTTY);
            m.Kernel.GetState().DmaMappings.ShouldBe(0);
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_attach_group")]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c vfio_spapr_ioctl_eeh_pe_op")]
    [Probed("ppc64le probe: a second group on a v1 container: GROUP_SET_CONTAINER = -1 EBUSY; on v2 = 0")]
    [Probed("ppc64le probe: v1 CHECK_EXTENSION EEH = 0; EEH PE ops on v1, v2 and v2 with two groups = -1 ENODEV")]
    public void PSeries_Groups_V1OneOnly_EehEnodevEverywhere()
    {
        using LegacyMachine m = PSeries();
        (SafeFileHandle c1, SafeFileHandle g1) = m.Ready(V1, groupId: 2);
        using (c1)
        using (g1)
        {
            m.CheckExtension(c1, VfioUapi.VFIO_EEH).ShouldBe(0);
            Eeh(m, c1, VfioUapi.VFIO_EEH_PE_ENABLE).ShouldBe(ENODEV);
            using SafeFileHandle second = m.OpenGroup(3);
            m.SetContainer(second, c1).ShouldBe(-(int)Errno.EBUSY);
        }
        (SafeFileHandle c2, SafeFileHandle g2) = m.Ready(V2, groupId: 2);
        using (c2)
        using (g2)
        {
            foreach (uint op in new uint[] { 0, 1, 2, 3, 5, 6, 7, 9, 10 })
            {
                Eeh(m, c2, op).ShouldBe(ENODEV);
            }
            using SafeFileHandle second = m.OpenGroup(3);
            m.SetContainer(second, c2).ShouldBe(0);
            Eeh(m, c2, VfioUapi.VFIO_EEH_PE_GET_STATE, argsz: 12).ShouldBe(ENODEV);
            m.UnsetContainer(second).ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_register_pages")]
    [Spec("arch/powerpc/mm/book3s64/iommu_api.c mm_iommu_do_alloc")]
    [Probed("ppc64le probe: v2 ENABLE = -1 ENOTTY; MAP_DMA before REGISTER = -1 EPERM; UNREGISTER before REGISTER = -1 EPERM")]
    [Probed("ppc64le probe: REGISTER_MEMORY misaligned = -1 EINVAL, size 0 = -1 ENOMEM, first half = 0, again = -1 EBUSY, overlapping = -1 EINVAL; UNREGISTER first half = 0, again = -1 ENOENT")]
    [Probed("ppc64le probe: MAP_DMA registered, default window = 0; unregistered half = -1 EINVAL; UNMAP registered = 0")]
    public void PSeries_V2_Registration()
    {
        using LegacyMachine m = PSeries();
        using var buffer = new ProcessPages(0x8000);
        ulong a = buffer.Vaddr;
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            m.Kernel.Ioctl(container, SpaprTceDriver.EnableRequest, 0).ShouldBe(-(int)Errno.ENOTTY);
            m.Map(container, a, 0, 0x1000).ShouldBe(-(int)Errno.EPERM);
            Register(m, container, a, 0x8000, SpaprTceDriver.UnregisterRequest).ShouldBe(-(int)Errno.EPERM);
            Register(m, container, a + 0x800, 0x1000).ShouldBe(EINVAL);
            Register(m, container, a, 0).ShouldBe(-(int)Errno.ENOMEM);
            m.Kernel.GetState().PinnedPages.ShouldBe(0UL, "nothing charged by the refused registrations");
            Register(m, container, a, 0x4000).ShouldBe(0);
            Register(m, container, a, 0x4000).ShouldBe(-(int)Errno.EBUSY);
            Register(m, container, a, 0x8000).ShouldBe(EINVAL);
            m.Kernel.GetState().PinnedPages.ShouldBe(4UL);
            m.Map(container, a, 0, 0x4000).ShouldBe(0);
            m.Map(container, a + 0x4000, 0x4000, 0x4000).ShouldBe(EINVAL);
            m.Unmap(container, 0, 0x4000, out _).ShouldBe(0);
            Register(m, container, a, 0x4000, SpaprTceDriver.UnregisterRequest).ShouldBe(0);
            Register(m, container, a, 0x4000, SpaprTceDriver.UnregisterRequest).ShouldBe(-(int)Errno.ENOENT);
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_create_window")]
    [Spec("arch/powerpc/platforms/pseries/iommu.c spapr_tce_create_table")]
    [Probed("ppc64le probe: TCE_REMOVE start 0x0 = 0, again = -1 EINVAL; MAP_DMA after default window removed = -1 ENXIO")]
    [Probed("ppc64le probe: TCE_CREATE levels 0 and 1 = 0, levels 2 = -1 EINVAL; 4K pages up to 1 GiB at 0x0; 4K pages 2 GiB and 4 GiB, 64K, 2M and 16M pages at 0x800000000000000 (2M and 16M up to 1 TiB); 1G pages and a 0x30000000 window = -1 EINVAL")]
    public void PSeries_V2_CreateRemove_Placement()
    {
        using LegacyMachine m = PSeries();
        using var buffer = new ProcessPages(0x1000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            Register(m, container, buffer.Vaddr, 0x1000).ShouldBe(0);
            m.Map(container, buffer.Vaddr, 0, 0x1000).ShouldBe(0, "the default window opens at 0x0");
            m.Unmap(container, 0, 0x1000, out _).ShouldBe(0);
            Remove(m, container, 0).ShouldBe(0);
            Remove(m, container, 0).ShouldBe(EINVAL);
            m.Map(container, buffer.Vaddr, 0, 0x1000).ShouldBe(-(int)Errno.ENXIO);
            foreach ((uint shift, ulong size, ulong expected) in new (uint, ulong, ulong)[]
            {
                (12, 1UL << 28, 0), (12, 1UL << 30, 0), (12, 1UL << 31, DdwStart), (12, 1UL << 32, DdwStart),
                (16, 1UL << 28, DdwStart), (16, 1UL << 32, DdwStart), (21, 1UL << 40, DdwStart), (24, 1UL << 40, DdwStart),
            })
            {
                for (uint levels = 0; levels <= 2; levels++)
                {
                    int rc = Create(m, container, shift, size, levels, out ulong start);
                    if (levels == 2)
                    {
                        rc.ShouldBe(EINVAL, $"{levels} levels");
                        continue;
                    }
                    rc.ShouldBe(0, $"page shift {shift}, size 0x{size:x}, {levels} levels");
                    start.ShouldBe(expected, $"page shift {shift}, size 0x{size:x}");
                    Remove(m, container, start).ShouldBe(0);
                }
            }
            Create(m, container, 30, 1UL << 30, 1, out _).ShouldBe(EINVAL, "1 GiB pages are not offered");
            Create(m, container, 12, 3UL << 28, 1, out _).ShouldBe(EINVAL, "not a power of two");
            m.Kernel.GetState().PinnedPages.ShouldBe(1UL, "only the registration stays charged");
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("arch/powerpc/platforms/pseries/iommu.c spapr_tce_create_table")]
    [Probed("ppc64le probe: TCE_CREATE 4K 1 GiB = 0 at 0x0, then 64K 1 GiB = 0 at 0x800000000000000 (both slots)")]
    [Probed("ppc64le probe: 64K 1 GiB at 0x800000000000000 first, then 4K 256 MiB = -1 ENODEV (\"Create ddw failed\"); every later TCE_CREATE = -1 ENODEV")]
    [Probed("ppc64le probe: MAP_DMA into the 64K window 64K = 0, 4K = -1 EINVAL")]
    public void PSeries_V2_OneHypervisorWindow_ASecondFailsAndMarksThePe()
    {
        using LegacyMachine m = PSeries();
        using var buffer = new ProcessPages(0x20000);
        ulong aligned = (buffer.Vaddr + 0xFFFF) & ~0xFFFFUL;
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            Remove(m, container, 0).ShouldBe(0, "the pending default window");
            Create(m, container, 12, 1UL << 30, 1, out ulong low).ShouldBe(0);
            low.ShouldBe(0UL);
            Create(m, container, 16, 1UL << 30, 1, out ulong high).ShouldBe(0);
            high.ShouldBe(DdwStart);
            Register(m, container, aligned, 0x10000).ShouldBe(0);
            m.Map(container, aligned, high, 0x10000).ShouldBe(0);
            m.Map(container, aligned, high + 0x10000, 0x1000).ShouldBe(EINVAL);
            m.Unmap(container, high, 0x10000, out _).ShouldBe(0);
            Remove(m, container, high).ShouldBe(0);
            Remove(m, container, low).ShouldBe(0);

            Create(m, container, 16, 1UL << 30, 1, out high).ShouldBe(0);
            high.ShouldBe(DdwStart, "not a default-shaped window: the hypervisor's window even in slot 0");
            Create(m, container, 12, 1UL << 28, 1, out _).ShouldBe(ENODEV, "slot 1 always asks the hypervisor, which has no second window");
            Remove(m, container, high).ShouldBe(0);
            Create(m, container, 16, 1UL << 30, 1, out _).ShouldBe(ENODEV, "the PE is marked failed");
            Create(m, container, 12, 1UL << 28, 1, out _).ShouldBe(ENODEV);
        }
        (SafeFileHandle again, SafeFileHandle sameGroup) = m.Ready(V2);
        using (again)
        using (sameGroup)
        {
            Remove(m, again, 0).ShouldBe(0);
            Create(m, again, 12, 1UL << 28, 1, out _).ShouldBe(ENODEV, "until reboot, in any container");
        }
        (SafeFileHandle other, SafeFileHandle otherGroup) = m.Ready(V2, groupId: 3);
        using (other)
        using (otherGroup)
        {
            Remove(m, other, 0).ShouldBe(0);
            Create(m, other, 16, 1UL << 30, 1, out ulong start).ShouldBe(0, "another PE is not affected");
            start.ShouldBe(DdwStart);
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }
}
