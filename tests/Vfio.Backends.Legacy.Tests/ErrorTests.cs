// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;

namespace Vfio.Backends.Legacy.Tests;

/// <summary>Refusals and kernel failures: each a typed exception with a useful message, and nothing left open.</summary>
public sealed class ErrorTests
{
    [Fact]
    public void GroupNotViable_NamesTheMemberBoundToAHostDriver()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => t.AddPci("0000:00:02.1", iommuGroup: 2, model: null, driver: "e1000e"));
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));
        e.Message.ShouldContain("not viable");
        e.Message.ShouldContain("0000:00:02.1 (bound to e1000e)");
        e.Message.ShouldContain("driver_override");
        kernel.GetState().IsEmpty.ShouldBeTrue();
        space.Containers.ShouldBeEmpty();
    }

    [Fact]
    public void DeviceNotBoundToVfio_NamesItsDriverAndHowToBind()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => t.AddPci("0000:00:05.0", iommuGroup: 5, model: null, driver: "e1000e"));
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(Kit.Source("0000:00:05.0"), space));
        e.Message.ShouldContain("bound to e1000e");
        e.Message.ShouldContain("echo vfio-pci > /sys/bus/pci/devices/0000:00:05.0/driver_override");
        e.Message.ShouldContain("echo 0000:00:05.0 > /sys/bus/pci/devices/0000:00:05.0/driver/unbind");
        e.Message.ShouldContain("echo 0000:00:05.0 > /sys/bus/pci/drivers_probe");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void DeviceWithoutIommuGroup_SaysToEnableTheIommu()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => t.Iommu = SimulatedIommu.None);
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));
        e.Message.ShouldContain("no IOMMU group");
        e.Message.ShouldContain("intel_iommu=on");
        e.Message.ShouldContain("no-IOMMU mode");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void DeviceNameWithSlash_IsRefusedBeforeAnythingOpens()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        Should.Throw<ArgumentException>(() => VfioDeviceSource.Platform("../../devices/x")).Message.ShouldContain("'/'");
        Should.Throw<ArgumentException>(() => VfioDeviceSource.Parse("a/b"));
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void SameDeviceTwice_IsRefused_AndTheFirstStaysAttached()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace("first");
        using var other = new DmaSpace("second");
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        int files = kernel.GetState().OpenFiles;
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), other));
        e.Message.ShouldContain("already attached");
        e.Message.ShouldContain("'first'");
        edu.IsAttached.ShouldBeTrue();
        kernel.GetState().OpenFiles.ShouldBe(files);
        other.Containers.ShouldBeEmpty();
    }

    [Fact]
    public void GroupInTwoSpaces_IsRefused_NamingBoth()
    {
        using SimulatedKernel kernel = new(new SimulatedTopology()
            .AddPci("0000:00:02.0", iommuGroup: 2, Kit.NewEdu())
            .AddPci("0000:00:02.1", iommuGroup: 2, Kit.NewEdu()));
        using var backend = new LegacyBackend(kernel);
        using var one = new DmaSpace("one");
        using var two = new DmaSpace("two");
        using AttachedDevice a = backend.AttachDevice(Kit.Source("0000:00:02.0"), one);
        int files = kernel.GetState().OpenFiles;
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(Kit.Source("0000:00:02.1"), two));
        e.Message.ShouldContain("IOMMU group 2 is already in DMA space 'one'");
        e.Message.ShouldContain("DMA space 'two'");
        kernel.GetState().OpenFiles.ShouldBe(files);

        // The same space is fine: the second device opens through the group already open.
        using AttachedDevice b = backend.AttachDevice(Kit.Source("0000:00:02.1"), one);
        b.Container.ShouldBeSameAs(a.Container);
        kernel.GetState().OpenFiles.ShouldBe(files + 1);
        a.Dispose();
        ((LegacyAttachedDevice)b).GroupFd.IsClosed.ShouldBeFalse();
        b.Dispose();
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void NoIommu_WithoutOptIn_IsRefused()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => { t.Iommu = SimulatedIommu.None; t.UnsafeNoIommuMode = true; });
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioDeviceUnusableException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));
        e.Message.ShouldContain("no-IOMMU");
        e.Message.ShouldContain("Vfio:AllowUnsafeNoIommu");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void NoIommu_WithOptIn_AttachesAndWarns()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => { t.Iommu = SimulatedIommu.None; t.UnsafeNoIommuMode = true; });
        var logger = new ListLogger();
        using var backend = new LegacyBackend(kernel, new VfioOptions { AllowUnsafeNoIommu = true }, logger: logger);
        using var space = new DmaSpace();
        using (AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space))
        {
            var legacy = (LegacyAttachedDevice)edu;
            legacy.IsNoIommu.ShouldBeTrue();
            legacy.LegacyContainer.IommuType.ShouldBe(VfioUapi.VFIO_NOIOMMU_IOMMU);
            edu.Device.Info.IsPci.ShouldBeTrue();
            logger.Entries.ShouldContain(entry => entry.Level == LogLevel.Warning && entry.Message.Contains("no-IOMMU", StringComparison.Ordinal));
        }
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void KernelWithoutLegacyContainer_IsBackendUnavailable()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => t.LegacyContainer = false);
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        var e = Should.Throw<VfioBackendUnavailableException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));
        e.Backend.ShouldBe("legacy");
        e.Message.ShouldContain("CONFIG_VFIO_CONTAINER");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void SpaprOnlyHost_IsBackendUnavailable_PointingToSpaprTce()
    {
        // The simulator models no sPAPR TCE backend; a kernel port answering CHECK_EXTENSION as a POWER host does stands in.
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(new SpaprLikeKernel(kernel));
        using var space = new DmaSpace();
        var e = Should.Throw<VfioBackendUnavailableException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));
        e.Message.ShouldContain("Vfio:Backend=spapr-tce");
        e.Message.ShouldContain("AddSpaprTceBackend()");
        e.MissingFeature.ShouldContain("Type1");
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Fact]
    public void MapDma_EbusyOnce_IsRetriedAfterAnUnmap()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        long maps = kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_MAP_DMA);
        long unmaps = kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_UNMAP_DMA);
        kernel.Faults.FailIoctl(VfioUapi.VFIO_IOMMU_MAP_DMA, 1, Errno.EBUSY);
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x1000);
        kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_MAP_DMA).ShouldBe(maps + 2);
        kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_UNMAP_DMA).ShouldBe(unmaps + 1);
        kernel.GetState().DmaMappings.ShouldBe(1);
    }

    [Fact]
    public void MapDma_OtherErrors_AreKernelFailures_AndNothingStaysMapped()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        kernel.Faults.FailIoctl(VfioUapi.VFIO_IOMMU_MAP_DMA, 1, Errno.EFAULT);
        var e = Should.Throw<VfioDmaException>(() => DmaBuffer.Allocate(space, 0x1000));
        e.Failure.ShouldBe(DmaMappingFailure.Kernel);
        e.Errno.ShouldBe(Errno.EFAULT);
        space.MappingCount.ShouldBe(0);
        edu.Container.DmaMappingsAvailable.ShouldBe(ushort.MaxValue);
    }

    [Fact]
    public void DmaEntryLimit_IsLimitReached_WithTheParameterToRaise()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => t.DmaEntryLimit = 2);
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        edu.Container.DmaMappingsAvailable.ShouldBe(2);
        using DmaBuffer first = DmaBuffer.Allocate(space, 0x1000);
        using DmaBuffer second = DmaBuffer.Allocate(space, 0x1000);
        space.MappingsAvailable.ShouldBe(0);
        var e = Should.Throw<VfioDmaException>(() => DmaBuffer.Allocate(space, 0x1000));
        e.Failure.ShouldBe(DmaMappingFailure.LimitReached);
        e.Errno.ShouldBe(Errno.ENOSPC);
        e.Message.ShouldContain("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit");
        space.MappingCount.ShouldBe(2);
        kernel.GetState().DmaMappings.ShouldBe(2);
    }

    [Fact]
    public void MemlockLimit_IsLimitReached_WithUlimitHint()
    {
        using SimulatedKernel kernel = Kit.TwoEdus(t => t.MemlockLimit = 0x2000);
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        var e = Should.Throw<VfioDmaException>(() => DmaBuffer.Allocate(space, 0x4000));
        e.Failure.ShouldBe(DmaMappingFailure.LimitReached);
        e.Errno.ShouldBe(Errno.ENOMEM);
        e.Message.ShouldContain("ulimit -l");
        e.Message.ShouldContain("LimitMEMLOCK");
        space.MappingCount.ShouldBe(0);
        kernel.GetState().PinnedPages.ShouldBe(0UL);
    }

    public static TheoryData<string> AttachPathIoctls =>
    [
        nameof(VfioUapi.VFIO_GROUP_GET_STATUS),
        nameof(VfioUapi.VFIO_GET_API_VERSION),
        nameof(VfioUapi.VFIO_CHECK_EXTENSION),
        nameof(VfioUapi.VFIO_GROUP_SET_CONTAINER),
        nameof(VfioUapi.VFIO_SET_IOMMU),
        nameof(VfioUapi.VFIO_IOMMU_GET_INFO),
        nameof(VfioUapi.VFIO_IOMMU_MAP_DMA),
        nameof(VfioUapi.VFIO_GROUP_GET_DEVICE_FD),
        nameof(VfioUapi.VFIO_DEVICE_GET_INFO),
    ];

    [Theory]
    [MemberData(nameof(AttachPathIoctls))]
    public void FaultAtEveryIoctlOfTheAttachPath_IsTyped_AndLeavesNothingBehind(string ioctl)
    {
        uint request = (uint)typeof(VfioUapi).GetField(ioctl)!.GetValue(null)!;
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 0x1000); // replayed at attach: MAP_DMA is on the path
        kernel.Faults.FailIoctl(request, 1, Errno.EIO);
        var e = Should.Throw<VfioException>(() => backend.AttachDevice(Kit.Source(Kit.Edu2), space));
        e.Errno.ShouldBe(Errno.EIO);
        e.Message.ShouldContain(ioctl == nameof(VfioUapi.VFIO_IOMMU_MAP_DMA) ? "VFIO_IOMMU_MAP_DMA" : ioctl);
        kernel.GetState().IsEmpty.ShouldBeTrue();
        space.Containers.ShouldBeEmpty();
        space.MappingCount.ShouldBe(1);

        // Nothing is stuck: the same attach works now.
        kernel.Faults.Clear();
        using AttachedDevice edu = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        kernel.GetState().DmaMappings.ShouldBe(1);
    }

    [Fact]
    public void FaultOnSecondGroupsDeviceFd_LeavesTheSharedContainerAndFirstDevice()
    {
        using SimulatedKernel kernel = Kit.TwoEdus();
        using var backend = new LegacyBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice a = backend.AttachDevice(Kit.Source(Kit.Edu2), space);
        int files = kernel.GetState().OpenFiles;
        kernel.Faults.FailIoctl(VfioUapi.VFIO_GROUP_GET_DEVICE_FD, 1, Errno.EIO);
        Should.Throw<VfioException>(() => backend.AttachDevice(Kit.Source(Kit.Edu3), space)).Errno.ShouldBe(Errno.EIO);
        kernel.GetState().OpenFiles.ShouldBe(files);
        ((LegacyContainer)a.Container).Groups.ShouldBe([2]);
        a.Container.IsReleased.ShouldBeFalse();
    }

}
