// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>The sPAPR TCE backend of a POWER host (drivers/vfio/vfio_iommu_spapr_tce.c): v1 and v2 containers, windows, pre-registration, EEH.</summary>
public sealed partial class SpaprTceTests
{
    private const int EINVAL = -(int)Errno.EINVAL;
    private const uint V1 = VfioUapi.VFIO_SPAPR_TCE_IOMMU;
    private const uint V2 = VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU;

    private static LegacyMachine Machine(Action<SimulatedTopology>? configure = null) => new(t =>
    {
        t.Iommu = SimulatedIommu.SpaprTce;
        configure?.Invoke(t);
    });

    private static int Register(LegacyMachine m, SafeHandle c, ulong vaddr, ulong size, uint request = SpaprTceDriver.RegisterRequest, uint argsz = 24, uint flags = 0)
    {
        var reg = new vfio_iommu_spapr_register_memory { argsz = argsz, flags = flags, vaddr = vaddr, size = size };
        return m.Ioctl(c, request, ref reg);
    }

    private static int Create(LegacyMachine m, SafeHandle c, uint pageShift, ulong windowSize, uint levels, out ulong start, uint argsz = 40)
    {
        var create = new vfio_iommu_spapr_tce_create { argsz = argsz, page_shift = pageShift, window_size = windowSize, levels = levels, start_addr = 0xdead };
        int rc = m.Ioctl(c, SpaprTceDriver.CreateRequest, ref create);
        start = create.start_addr;
        return rc;
    }

    private static int Remove(LegacyMachine m, SafeHandle c, ulong start)
    {
        var remove = new vfio_iommu_spapr_tce_remove { argsz = 16, start_addr = start };
        return m.Ioctl(c, SpaprTceDriver.RemoveRequest, ref remove);
    }

    private static int Eeh(LegacyMachine m, SafeHandle c, uint op, uint argsz = 40, uint func = 0)
    {
        var pe = new vfio_eeh_pe_op { argsz = argsz, op = op, err = new vfio_eeh_pe_err { func = func } };
        return m.Ioctl(c, SpaprTceDriver.EehPeOpRequest, ref pe);
    }

    [Fact]
    [Spec("drivers/vfio/container.c vfio_container_ioctl_check_extension")]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void Host_OffersSpaprNotType1_NoIommuFdNoCdev()
    {
        using LegacyMachine m = Machine();
        using SafeFileHandle container = m.OpenContainer();
        m.CheckExtension(container, V1).ShouldBe(1);
        m.CheckExtension(container, V2).ShouldBe(1);
        m.CheckExtension(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_EEH).ShouldBe(1, "eeh_enabled() is returned as is, even before SET_IOMMU");
        m.Kernel.Exists("/dev/iommu").ShouldBeFalse();
        m.Kernel.Exists("/dev/vfio/devices").ShouldBeFalse();
        using SafeFileHandle group = m.OpenGroup(2);
        m.SetContainer(group, container).ShouldBe(0);
        m.SetIommu(container, VfioUapi.VFIO_TYPE1v2_IOMMU).ShouldBe(-(int)Errno.ENODEV);
        m.SetIommu(container, V2).ShouldBe(0);
        m.CheckExtension(container, VfioUapi.VFIO_EEH).ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void CheckExtension_Eeh_ZeroWhenEehDisabled()
    {
        using LegacyMachine m = Machine(t => t.Eeh = false);
        using SafeFileHandle container = m.OpenContainer();
        m.CheckExtension(container, VfioUapi.VFIO_EEH).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void GetInfo_V1WithoutDdw_V2WithDdw()
    {
        using LegacyMachine m = Machine();
        (SafeFileHandle c1, SafeFileHandle g1) = m.Ready(V1, groupId: 2);
        (SafeFileHandle c2, SafeFileHandle g2) = m.Ready(V2, groupId: 3);
        using (c1)
        using (g1)
        using (c2)
        using (g2)
        {
            var info = new vfio_iommu_spapr_tce_info { argsz = 32, ddw = new vfio_iommu_spapr_tce_ddw_info { pgsizes = 7 } };
            m.Ioctl(c1, SpaprTceDriver.GetInfoRequest, ref info).ShouldBe(0);
            info.dma32_window_start.ShouldBe(0u);
            info.dma32_window_size.ShouldBe(SpaprTceDriver.PowerNvDma32Size);
            info.flags.ShouldBe(0u);
            info.ddw.pgsizes.ShouldBe(0UL);

            info = new vfio_iommu_spapr_tce_info { argsz = 32 };
            m.Ioctl(c2, SpaprTceDriver.GetInfoRequest, ref info).ShouldBe(0);
            info.flags.ShouldBe(VfioUapi.VFIO_IOMMU_SPAPR_INFO_DDW);
            info.ddw.pgsizes.ShouldBe(SpaprTceDriver.PageSizes);
            info.ddw.max_dynamic_windows_supported.ShouldBe(2u);
            info.ddw.levels.ShouldBe(SpaprTceDriver.MaxLevels);

            info = new vfio_iommu_spapr_tce_info { argsz = 16, ddw = new vfio_iommu_spapr_tce_ddw_info { pgsizes = 7 } };
            m.Ioctl(c2, SpaprTceDriver.GetInfoRequest, ref info).ShouldBe(0);
            info.ddw.pgsizes.ShouldBe(7UL, "only 16 bytes are copied back");
            info = new vfio_iommu_spapr_tce_info { argsz = 15 };
            m.Ioctl(c2, SpaprTceDriver.GetInfoRequest, ref info).ShouldBe(EINVAL);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c struct tce_container")]
    public void V1_OneGroupOnly_SecondEbusy()
    {
        using LegacyMachine m = Machine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V1);
        using (container)
        using (group)
        {
            using SafeFileHandle other = m.OpenGroup(3);
            m.SetContainer(other, container).ShouldBe(-(int)Errno.EBUSY);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c struct tce_container")]
    public void V2_ManyGroups()
    {
        using LegacyMachine m = Machine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            using SafeFileHandle other = m.OpenGroup(3);
            m.SetContainer(other, container).ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c struct tce_container")]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void V1_MapBeforeEnableEperm_EnableAccountsTheWindow_Disable()
    {
        using LegacyMachine m = Machine();
        using var buffer = new ProcessPages(0x2000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V1);
        using (container)
        using (group)
        {
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000).ShouldBe(-(int)Errno.EPERM);
            m.Kernel.Ioctl(container, SpaprTceDriver.EnableRequest, 0).ShouldBe(0);
            m.Kernel.GetState().PinnedPages.ShouldBe((ulong)SpaprTceDriver.PowerNvDma32Size / 4096);
            m.Kernel.Ioctl(container, SpaprTceDriver.EnableRequest, 0).ShouldBe(-(int)Errno.EBUSY);
            m.Map(container, buffer.Vaddr, 0x1000, 0x2000).ShouldBe(0);
            m.Kernel.GetState().DmaMappings.ShouldBe(2);
            m.Kernel.Ioctl(container, SpaprTceDriver.DisableRequest, 0).ShouldBe(0);
            m.Kernel.GetState().PinnedPages.ShouldBe(0UL);
            m.Kernel.Ioctl(container, SpaprTceDriver.DisableRequest, 0).ShouldBe(0, "a no-op when not enabled");
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000).ShouldBe(-(int)Errno.EPERM);
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c struct tce_container")]
    public void V1_V2OnlyIoctlsEnotty_V2_EnableEnotty()
    {
        using LegacyMachine m = Machine();
        (SafeFileHandle c1, SafeFileHandle g1) = m.Ready(V1, groupId: 2);
        (SafeFileHandle c2, SafeFileHandle g2) = m.Ready(V2, groupId: 3);
        using (c1)
        using (g1)
        using (c2)
        using (g2)
        {
            Register(m, c1, 0x10000, 0x1000).ShouldBe(-(int)Errno.ENOTTY);
            Create(m, c1, 12, 1 << 20, 1, out _).ShouldBe(-(int)Errno.ENOTTY);
            Remove(m, c1, 0).ShouldBe(-(int)Errno.ENOTTY);
            m.Kernel.Ioctl(c2, SpaprTceDriver.EnableRequest, 0).ShouldBe(-(int)Errno.ENOTTY);
            m.Kernel.Ioctl(c2, SpaprTceDriver.DisableRequest, 0).ShouldBe(-(int)Errno.ENOTTY);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void Map_WindowChecks_AndTheReturnsOneQuirk()
    {
        using LegacyMachine m = Machine();
        using var buffer = new ProcessPages(0x4000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V1);
        using (container)
        using (group)
        {
            m.Kernel.Ioctl(container, SpaprTceDriver.EnableRequest, 0).ShouldBe(0);
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000, argsz: 31).ShouldBe(EINVAL);
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000, flags: 4).ShouldBe(EINVAL);
            m.Map(container, buffer.Vaddr, SpaprTceDriver.PowerNvDma32Size, 0x1000).ShouldBe(-(int)Errno.ENXIO, "outside every window");
            m.Map(container, buffer.Vaddr, 0x1000, 0x800).ShouldBe(EINVAL, "size not a multiple of the window page");
            m.Map(container, buffer.Vaddr + 0x800, 0x1000, 0x1000).ShouldBe(EINVAL, "vaddr not aligned");
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000, flags: 0).ShouldBe(EINVAL, "neither READ nor WRITE");
            m.Map(container, buffer.Vaddr, 0x1800, 0x1000).ShouldBe(1, "a misaligned iova returns 1 in 6.12");
            m.Map(container, buffer.Vaddr, SpaprTceDriver.PowerNvDma32Size - 0x1000, 0x2000).ShouldBe(EINVAL, "an entry past the window end");
            m.Kernel.GetState().DmaMappings.ShouldBe(0, "entries written by a failed call are cleared");
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000).ShouldBe(0);
            m.Map(container, buffer.Vaddr + 0x1000, 0x1000, 0x1000).ShouldBe(0, "no overlap check: the entry is replaced");
            m.Unmap(container, 0x1800, 0x1000, out _).ShouldBe(1);
            m.Unmap(container, 0x1000, 0x800, out _).ShouldBe(EINVAL);
            m.Unmap(container, 0x1000, 0x1000, out _, flags: 1).ShouldBe(EINVAL);
            m.Unmap(container, SpaprTceDriver.PowerNvDma32Size, 0x1000, out _).ShouldBe(-(int)Errno.ENXIO);
            m.Unmap(container, 0x1000, 0x1000, out _).ShouldBe(0);
            m.Kernel.GetState().DmaMappings.ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c struct tce_container")]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void V2_MapNeedsRegisteredMemory_RegisterEnables()
    {
        using LegacyMachine m = Machine();
        using var buffer = new ProcessPages(0x4000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000).ShouldBe(-(int)Errno.EPERM, "not enabled before a registration");
            Register(m, container, buffer.Vaddr, 0x2000).ShouldBe(0);
            m.Kernel.GetState().PinnedPages.ShouldBe(2UL, "the default window is still pending");
            m.Map(container, buffer.Vaddr + 0x2000, 0x1000, 0x1000).ShouldBe(EINVAL, "not inside a registered region");
            m.Map(container, buffer.Vaddr, 0x1000, 0x2000).ShouldBe(0);
            m.Kernel.GetState().PinnedPages.ShouldBe(2UL + (SpaprTceDriver.TableSize(12, SpaprTceDriver.PowerNvDma32Size, 1) / 4096), "the default window's table is accounted");
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void V2_RegisterRules()
    {
        using LegacyMachine m = Machine();
        using var buffer = new ProcessPages(0x8000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        (SafeFileHandle other, SafeFileHandle otherGroup) = m.Ready(V2, groupId: 3);
        using (container)
        using (group)
        using (other)
        using (otherGroup)
        {
            ulong a = buffer.Vaddr;
            Register(m, container, a, 0x2000, argsz: 23).ShouldBe(EINVAL);
            Register(m, container, a, 0x2000, flags: 1).ShouldBe(EINVAL);
            Register(m, container, a + 0x10, 0x2000).ShouldBe(EINVAL);
            Register(m, container, a, 0x2010).ShouldBe(EINVAL);
            Register(m, container, a, 0x2000).ShouldBe(0);
            Register(m, container, a, 0x2000).ShouldBe(-(int)Errno.EBUSY);
            Register(m, container, a + 0x1000, 0x2000).ShouldBe(EINVAL, "overlaps a registered region");
            Register(m, other, a, 0x2000).ShouldBe(0, "the identical region is shared by another container");
            m.Kernel.GetState().PinnedPages.ShouldBe(2UL, "charged once");
            Register(m, other, a + 0x4000, 0x1000).ShouldBe(0);
            Register(m, container, a + 0x4000, 0x1000, SpaprTceDriver.UnregisterRequest).ShouldBe(-(int)Errno.ENOENT, "registered by the other container only");
            Register(m, container, a, 0x1000, SpaprTceDriver.UnregisterRequest).ShouldBe(-(int)Errno.ENOENT, "no bisecting");
            Register(m, container, a, 0x2000, SpaprTceDriver.UnregisterRequest).ShouldBe(0);
            Register(m, other, a, 0x2000, SpaprTceDriver.UnregisterRequest).ShouldBe(0);
            m.Kernel.GetState().PinnedPages.ShouldBe(1UL);
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void V2_UnregisterWithMappings_ReturnsZero_PagesStayUntilUnmapped()
    {
        using LegacyMachine m = Machine();
        using var buffer = new ProcessPages(0x2000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            Remove(m, container, 0).ShouldBe(0, "cancels the pending default window");
            Create(m, container, 12, 1 << 20, 1, out ulong start).ShouldBe(0);
            start.ShouldBe(0UL);
            Register(m, container, buffer.Vaddr, 0x2000).ShouldBe(0);
            m.Map(container, buffer.Vaddr, 0x1000, 0x1000).ShouldBe(0);
            Register(m, container, buffer.Vaddr, 0x2000, SpaprTceDriver.UnregisterRequest).ShouldBe(0);
            ulong table = SpaprTceDriver.TableSize(12, 1 << 20, 1) / 4096;
            m.Kernel.GetState().PinnedPages.ShouldBe(2UL + table);
            m.Unmap(container, 0x1000, 0x1000, out _).ShouldBe(0);
            Remove(m, container, 0).ShouldBe(0);
            m.Kernel.GetState().PinnedPages.ShouldBe(0UL);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c struct tce_container")]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void V2_CreateRemove_Windows()
    {
        using LegacyMachine m = Machine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            Create(m, container, 16, 1UL << 32, 1, out _, argsz: 39).ShouldBe(EINVAL);
            Create(m, container, 13, 1UL << 32, 1, out _).ShouldBe(EINVAL, "8 KiB is not a platform page size");
            Create(m, container, 16, (1UL << 32) + 0x10000, 1, out _).ShouldBe(EINVAL, "not a power of two");
            Create(m, container, 16, 1UL << 32, 0, out _).ShouldBe(EINVAL);
            Create(m, container, 16, 1UL << 32, SpaprTceDriver.MaxLevels + 1, out _).ShouldBe(EINVAL);
            // The failed CREATEs already created the pending default window (slot 0 at bus address 0).
            Create(m, container, 16, 1UL << 32, 2, out ulong start).ShouldBe(0);
            start.ShouldBe(SpaprTceDriver.SecondWindowStart);
            Create(m, container, 16, 1UL << 32, 1, out _).ShouldBe(-(int)Errno.ENOSPC, "at most two windows");
            Remove(m, container, 0x1234_0000_0000).ShouldBe(EINVAL, "no window there");
            Remove(m, container, 0).ShouldBe(0, "the default window can be removed in v2");
            Create(m, container, 21, 1UL << 30, 1, out start).ShouldBe(0);
            start.ShouldBe(0UL, "the free slot 0 gets bus address 0");
            var remove = new vfio_iommu_spapr_tce_remove { argsz = 16, flags = 1, start_addr = 0 };
            m.Ioctl(container, SpaprTceDriver.RemoveRequest, ref remove).ShouldBe(EINVAL);
        }
        m.Kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void V2_Create_TableOverMemlockLimit_Enomem()
    {
        using LegacyMachine m = Machine(t => t.MemlockLimit = 0x10000);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            Remove(m, container, 0).ShouldBe(0);
            Create(m, container, 12, 1UL << 32, 1, out _).ShouldBe(-(int)Errno.ENOMEM);
            Create(m, container, 16, 1UL << 20, 1, out _).ShouldBe(0);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void V2_MapIntoSecondWindow_WithItsPageSize()
    {
        using LegacyMachine m = Machine();
        using var buffer = new ProcessPages(0x20000);
        ulong aligned = (buffer.Vaddr + 0xFFFF) & ~0xFFFFUL;
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            Create(m, container, 16, 1UL << 32, 1, out ulong start).ShouldBe(0);
            Register(m, container, aligned, 0x10000).ShouldBe(0);
            m.Map(container, aligned, start + 0x10000, 0x1000).ShouldBe(EINVAL, "size must be a multiple of 64 KiB here");
            m.Map(container, aligned, start + 0x10000, 0x10000).ShouldBe(0);
            m.Map(container, aligned, start + 0x1000, 0x10000).ShouldBe(1);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c vfio_spapr_ioctl_eeh_pe_op")]
    public void EehPeOp_States()
    {
        using LegacyMachine m = Machine();
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V2);
        using (container)
        using (group)
        {
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_ENABLE).ShouldBe(0);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE).ShouldBe(VfioUapi.VFIO_EEH_PE_STATE_NORMAL);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_INJECT_ERR, argsz: 39).ShouldBe(EINVAL);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_INJECT_ERR, func: 20).ShouldBe(EINVAL);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_INJECT_ERR, func: 12).ShouldBe(0);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE).ShouldBe(VfioUapi.VFIO_EEH_PE_STATE_STOPPED);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_UNFREEZE_IO).ShouldBe(0);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE).ShouldBe(VfioUapi.VFIO_EEH_PE_STATE_STOPPED_DMA);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_UNFREEZE_DMA).ShouldBe(0);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE).ShouldBe(VfioUapi.VFIO_EEH_PE_STATE_NORMAL);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_RESET_HOT).ShouldBe(0);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE).ShouldBe(VfioUapi.VFIO_EEH_PE_STATE_RESET);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_RESET_DEACTIVATE).ShouldBe(0);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_CONFIGURE).ShouldBe(0);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE).ShouldBe(VfioUapi.VFIO_EEH_PE_STATE_NORMAL);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_DISABLE).ShouldBe(0);
            Eeh(m, container, 10).ShouldBe(EINVAL);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE, argsz: 11).ShouldBe(EINVAL);
            var flagged = new vfio_eeh_pe_op { argsz = 40, flags = 1, op = VfioUapi.VFIO_EEH_PE_GET_STATE };
            m.Ioctl(container, SpaprTceDriver.EehPeOpRequest, ref flagged).ShouldBe(EINVAL);
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c vfio_spapr_ioctl_eeh_pe_op")]
    [Spec("arch/powerpc/kernel/eeh.c eeh_iommu_group_to_pe")]
    [Probed("ppc64le probe: EEH PE_ENABLE, PE_GET_STATE, PE_CONFIGURE, bad op 42, short argsz = -1 ENODEV (v1 and v2, one or two groups)")]
    public void EehPeOp_NoPe_EveryOpEnodevBeforeTheArgument()
    {
        using LegacyMachine m = Machine(t => t.Eeh = false);
        (SafeFileHandle container, SafeFileHandle group) = m.Ready(V1);
        using (container)
        using (group)
        {
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_ENABLE).ShouldBe(-(int)Errno.ENODEV);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE).ShouldBe(-(int)Errno.ENODEV);
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_CONFIGURE).ShouldBe(-(int)Errno.ENODEV);
            Eeh(m, container, 42).ShouldBe(-(int)Errno.ENODEV, "the PE is looked up before the op is read");
            Eeh(m, container, VfioUapi.VFIO_EEH_PE_GET_STATE, argsz: 4).ShouldBe(-(int)Errno.ENODEV, "and before argsz");
        }
    }

    [Fact]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c struct tce_container")]
    [Spec("drivers/vfio/vfio_iommu_spapr_tce.c tce_iommu_ioctl")]
    public void Dma_RoundTripThroughTheTceTable_Edu()
    {
        const string Edu = "0000:00:02.0";
        var topology = new SimulatedTopology { Iommu = SimulatedIommu.SpaprTce }.AddPci(Edu, 2, new EduDevice());
        using var kernel = new SimulatedKernel(topology);
        var m = new LegacyMachineView(kernel);
        using var source = new ProcessPages(0x1000);
        using var target = new ProcessPages(0x1000);
        new Random(7).NextBytes(source.Span);
        using SafeFileHandle container = m.Open("/dev/vfio/vfio");
        using SafeFileHandle group = m.Open("/dev/vfio/2");
        int fd = (int)container.DangerousGetHandle();
        m.Call(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, ref fd).ShouldBe(0);
        kernel.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, (nint)V2).ShouldBe(0);
        var reg = new vfio_iommu_spapr_register_memory { argsz = 24, vaddr = source.Vaddr, size = 0x1000 };
        m.Call(container, SpaprTceDriver.RegisterRequest, ref reg).ShouldBe(0);
        reg.vaddr = target.Vaddr;
        m.Call(container, SpaprTceDriver.RegisterRequest, ref reg).ShouldBe(0);
        var map = new vfio_iommu_type1_dma_map { argsz = 32, flags = VfioUapi.VFIO_DMA_MAP_FLAG_READ, vaddr = source.Vaddr, iova = 0x10000, size = 0x1000 };
        m.Call(container, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map).ShouldBe(0);
        map = new vfio_iommu_type1_dma_map { argsz = 32, flags = VfioUapi.VFIO_DMA_MAP_FLAG_WRITE, vaddr = target.Vaddr, iova = 0x20000, size = 0x1000 };
        m.Call(container, VfioUapi.VFIO_IOMMU_MAP_DMA, ref map).ShouldBe(0);

        int deviceFd = kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, System.Text.Encoding.ASCII.GetBytes(Edu + "\0").AsSpan());
        deviceFd.ShouldBeGreaterThanOrEqualTo(0);
        using var device = new SafeFileHandle(deviceFd, ownsHandle: true);
        Span<byte> command = stackalloc byte[2];
        kernel.PRead(device, command, NoIommuDevice.Offset(VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX, 4)).ShouldBe(2);
        BinaryPrimitives.WriteUInt16LittleEndian(command, (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(command) | 0x6));
        kernel.PWrite(device, command, NoIommuDevice.Offset(VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX, 4)).ShouldBe(2);
        void Write64(ulong offset, ulong value)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(b, value);
            kernel.PWrite(device, b, (long)offset).ShouldBe(8);
        }
        ulong Read64(ulong offset)
        {
            Span<byte> b = stackalloc byte[8];
            kernel.PRead(device, b, (long)offset).ShouldBe(8);
            return BinaryPrimitives.ReadUInt64LittleEndian(b);
        }
        Write64(0x80, 0x10000);
        Write64(0x88, EduDevice.DmaBufferAddress);
        Write64(0x90, 0x1000);
        Write64(0x98, 0x1);
        NoIommuDevice.WaitFor(() => (Read64(0x98) & 1) == 0);
        Write64(0x80, EduDevice.DmaBufferAddress);
        Write64(0x88, 0x20000);
        Write64(0x90, 0x1000);
        Write64(0x98, 0x3);
        NoIommuDevice.WaitFor(() => (Read64(0x98) & 1) == 0);
        target.Span.ToArray().ShouldBe(source.Span.ToArray());
        kernel.DmaFaults.ShouldBeEmpty();

        // A read-only (to-device) TCE refuses a device write.
        Write64(0x88, 0x10000);
        Write64(0x98, 0x3);
        NoIommuDevice.WaitFor(() => (Read64(0x98) & 1) == 0);
        kernel.DmaFaults.Count.ShouldBe(1);
    }

    /// <summary>Plain helpers over a kernel built from a custom topology.</summary>
    private sealed class LegacyMachineView(SimulatedKernel kernel)
    {
        internal SafeFileHandle Open(string path)
        {
            kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle handle).ShouldBe(0);
            return handle;
        }

        internal int Call<T>(SafeHandle fd, uint request, ref T argument)
            where T : unmanaged
            => kernel.Ioctl(fd, request, System.Runtime.InteropServices.MemoryMarshal.AsBytes(new Span<T>(ref argument)));
    }
}
