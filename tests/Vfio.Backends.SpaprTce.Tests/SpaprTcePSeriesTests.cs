// SPDX-License-Identifier: MIT

namespace Vfio.Backends.SpaprTce.Tests;

/// <summary>The backend on the simulated pseries host, whose facts were probed on Linux 6.12 in a QEMU pseries guest:
/// a 1 GiB 32-bit window, one level, a window at 0x0 only for 4 KiB TCEs up to that size, one hypervisor window at
/// 1&lt;&lt;59 (a second one fails and marks the PE), no EEH PE for an emulated device.</summary>
public sealed class SpaprTcePSeriesTests
{
    private const ulong OneGiB = 0x4000_0000;
    private const ulong High = 1UL << 59;

    private static PowerRig PSeries() => new(t => t.SpaprPlatform = SimulatedSpaprPlatform.PSeries);

    [Fact]
    public void Attach_ReadsThePSeriesLimits_AndOffersNoEeh()
    {
        using PowerRig rig = PSeries();
        var (_, _, _, _, container) = rig;

        container.IsV2.ShouldBeTrue();
        container.Dma32WindowSize.ShouldBe(OneGiB);
        container.HostPageSizes.ShouldBe(0x1211000UL);
        container.MaxWindows.ShouldBe(2);
        container.MaxLevels.ShouldBe(1);
        (container.Features & IommuBackendFeatures.Eeh).ShouldBe(IommuBackendFeatures.None);
        container.EehAvailable.ShouldBeFalse();
        var e = Should.Throw<VfioException>(() => container.GetEehState());
        e.ObjectName.ShouldBe(container.Name);
        e.Hint.ShouldNotBeNull().ShouldContain("pseries");
    }

    [Fact]
    public void LowAndHighWindows_OpenAtTheirAddresses_EduRoundTrips_AndEverythingGoes()
    {
        using PowerRig rig = PSeries();
        var (kernel, _, space, edu, container) = rig;
        ulong pinned = kernel.GetState().PinnedPages;
        using var high = new SpaprTceV2Tests.HostMemory(8192);

        using (DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask))
        {
            SpaprDmaWindow low = container.Windows.ShouldHaveSingleItem();
            (low.Start, low.Size, low.PageSize, low.Levels).ShouldBe((0UL, OneGiB, 4096UL, 1));
            space.MapAt(High, high.Address, 8192);
            container.Windows.Select(static w => w.Start).ShouldBe([0UL, High]);
            PowerKit.DmaRoundTrip(edu, memory);
            space.Unmap(High);
        }

        container.Windows.ShouldBeEmpty();
        container.PreRegisteredRegions.ShouldBe(0);
        kernel.GetState().PinnedPages.ShouldBe(pinned);
        kernel.DmaFaults.ShouldBeEmpty();
    }

    [Fact]
    public void LowWindowAfterTheHighOne_IsRefusedBeforeTheKernel_SoThePeIsNotMarkedFailed()
    {
        using PowerRig rig = PSeries();
        var (kernel, _, space, _, container) = rig;
        using var low = new SpaprTceV2Tests.HostMemory(8192);
        using var high = new SpaprTceV2Tests.HostMemory(8192);
        space.MapAt(High, high.Address, 8192);
        container.Windows.ShouldHaveSingleItem().Start.ShouldBe(High, "not a default-shaped window: the hypervisor's, even in the first slot");

        var e = Should.Throw<VfioDmaException>(() => space.MapAt(0x10_0000, low.Address, 8192));

        e.Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        e.ObjectName.ShouldBe(container.Name);
        e.Message.ShouldContain("first window slot");
        e.Hint.ShouldNotBeNull().ShouldContain("unmap the window at 1<<59");
        container.Windows.ShouldHaveSingleItem();
        container.PreRegisteredRegions.ShouldBe(1);

        space.Unmap(High);
        space.MapAt(0x10_0000, low.Address, 8192);
        container.Windows.ShouldHaveSingleItem().Start.ShouldBe(0UL, "the PE still creates windows");
        space.MapAt(High, high.Address, 8192);
        container.Windows.Count.ShouldBe(2);
        kernel.GetState().DmaMappings.ShouldBe(4);
    }

    [Fact]
    public void LowWindowLargerThanThe32BitWindow_IsATypedError_AndLeavesNothing()
    {
        using PowerRig rig = PSeries();
        var (kernel, _, space, _, container) = rig;
        using var memory = new SpaprTceV2Tests.HostMemory(8192);
        ulong pinned = kernel.GetState().PinnedPages;

        var e = Should.Throw<VfioDmaException>(() => space.MapAt(OneGiB, memory.Address, 8192));

        e.Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        e.ObjectName.ShouldBe(container.Name);
        e.Message.ShouldContain("pseries places a first window at 0x0 only up to the 32-bit window's size 0x40000000");
        container.Windows.ShouldBeEmpty();
        container.PreRegisteredRegions.ShouldBe(0);
        kernel.GetState().PinnedPages.ShouldBe(pinned);
        kernel.GetState().DmaMappings.ShouldBe(0);
    }
}
