// SPDX-License-Identifier: MIT

namespace Vfio.Backends.SpaprTce.Tests;

/// <summary>sPAPR TCE v2 on the simulated POWER host: GET_INFO, the default window removed, windows opened per section
/// and removed with their last one, memory pre-registered before its mappings and unregistered after.</summary>
public sealed class SpaprTceV2Tests
{
    private const ulong TwoGiB = 0x8000_0000;

    [Fact]
    public void Attach_PrefersV2_ReadsTheDdwLimits_AndRemovesTheDefaultWindow()
    {
        using var rig = new PowerRig();
        var (_, _, space, edu, container) = rig;

        edu.Container.ShouldBeOfType<SpaprTceContainer>();
        container.IsV2.ShouldBeTrue();
        container.IommuType.ShouldBe(VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU);
        container.Dma32WindowStart.ShouldBe(0UL);
        container.Dma32WindowSize.ShouldBe(TwoGiB);
        container.HostPageSizes.ShouldBe(0x4021_1000UL);
        container.MaxWindows.ShouldBe(2);
        container.MaxLevels.ShouldBe(5);
        container.Windows.ShouldBeEmpty("the default window is removed at once");
        container.IovaRanges.ShouldBeEmpty();
        container.OpensDmaWindows.ShouldBeTrue();
        container.Features.ShouldBe(IommuBackendFeatures.HotResetByGroupFds | IommuBackendFeatures.PassedFds | IommuBackendFeatures.DmaWindows
            | IommuBackendFeatures.MemoryPreRegistration | IommuBackendFeatures.Eeh);
        space.IovaRanges.ShouldBe([new IovaRange(0, (1UL << 59) - 1), IovaRange.FromStartSize(1UL << 59, 1UL << 40)]);
        edu.Backend.Name.ShouldBe("spapr-tce");
    }

    [Fact]
    public void Buffer_OpensAWindowAndPreRegisters_EduRoundTripsThroughTheTceTable_AndUnmapUndoesBoth()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, edu, container) = rig;
        ulong pinnedBefore = kernel.GetState().PinnedPages;

        DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        SpaprDmaWindow window = container.Windows.ShouldHaveSingleItem();
        window.Start.ShouldBe(0UL);
        window.Size.ShouldBe(TwoGiB, "at least the 32-bit window's size, so later buffers fit");
        window.PageSize.ShouldBe((ulong)Environment.SystemPageSize);
        window.Levels.ShouldBe(SpaprTceContainer.EstimateLevels(TwoGiB, 12, 4096));
        window.Mappings.ShouldBe(1);
        container.IovaRanges.ShouldBe([new IovaRange(0, TwoGiB - 1)]);
        container.PreRegisteredRegions.ShouldBe(1);
        container.PreRegisteredBytes.ShouldBe(8192UL);
        kernel.GetState().DmaMappings.ShouldBe(2);
        kernel.GetState().PinnedPages.ShouldBeGreaterThan(pinnedBefore);

        PowerKit.DmaRoundTrip(edu, memory);

        ulong iova = memory.Iova;
        memory.Dispose();
        container.Windows.ShouldBeEmpty("the window went with its last section");
        container.PreRegisteredRegions.ShouldBe(0);
        kernel.GetState().DmaMappings.ShouldBe(0);
        kernel.GetState().PinnedPages.ShouldBe(pinnedBefore);
        kernel.DmaFaults.ShouldBeEmpty();

        using var driver = new EduDriver(edu, useMmap: true);
        driver.EnableBusMaster();
        driver.DmaToDevice(iova, 0, 64, TimeSpan.FromSeconds(10));
        kernel.DmaFaults.ShouldNotBeEmpty("DMA after unmap is blocked by the IOMMU");
        kernel.DmaFaults[0].Iova.ShouldBe(iova);
    }

    [Fact]
    public void Window_IsShared_BySectionsInside_AndStaysUntilTheLastGoes()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, _, container) = rig;

        DmaBuffer a = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        DmaBuffer b = DmaBuffer.Allocate(space, 4096, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        container.Windows.ShouldHaveSingleItem().Mappings.ShouldBe(2);
        container.PreRegisteredRegions.ShouldBe(2);
        a.Dispose();
        container.Windows.ShouldHaveSingleItem().Mappings.ShouldBe(1);
        b.Dispose();
        container.Windows.ShouldBeEmpty();
        kernel.GetState().DmaMappings.ShouldBe(0);
    }

    [Fact]
    public void HighSection_OpensTheSecondWindowAt1Shl59_WhileTheLowOneIsOpen()
    {
        using var rig = new PowerRig();
        var (_, _, space, _, container) = rig;
        using var low = new HostMemory(8192);
        using var high = new HostMemory(1 << 20);

        space.MapAt(0x10_0000, low.Address, 8192, DmaAccess.ReadWrite);
        space.MapAt(1UL << 59, high.Address, 1 << 20, DmaAccess.ReadWrite);

        container.Windows.Count.ShouldBe(2);
        SpaprDmaWindow second = container.Windows[1];
        second.Start.ShouldBe(1UL << 59);
        second.Size.ShouldBe(1UL << 30, "the high window is at least 1 GiB");
        container.IovaRanges.Count.ShouldBe(2);
        space.Unmap(1UL << 59);
        space.Unmap(0x10_0000);
        container.Windows.ShouldBeEmpty();
    }

    [Fact]
    public void LevelsAreRetried_UpToTheHostsMaximum()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, _, container) = rig;
        int estimate = SpaprTceContainer.EstimateLevels(TwoGiB, 12, 4096);
        kernel.Faults.FailIoctl(VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE, 1, Errno.ENOMEM);

        using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);

        container.Windows.ShouldHaveSingleItem().Levels.ShouldBe(estimate + 1);
    }

    [Fact]
    public void HostWithOneLevel_AsPseries_StartsAtItsLimit()
    {
        using var rig = new PowerRig(t => t.SpaprMaxLevels = 1);
        var (_, _, space, edu, container) = rig;
        container.MaxLevels.ShouldBe(1);

        using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);

        container.Windows.ShouldHaveSingleItem().Levels.ShouldBe(1);
        PowerKit.DmaRoundTrip(edu, memory);
    }

    [Fact]
    public void CreateFailingAtEveryLevel_IsATypedError_AndLeavesNothing()
    {
        using var rig = new PowerRig();
        var (kernel, _, space, _, container) = rig;
        long before = kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE);
        kernel.Faults.FailIoctl(VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE, 1, Errno.EINVAL, andAfter: true);

        var e = Should.Throw<VfioDmaException>(() => DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask));

        e.ObjectName.ShouldBe(container.Name);
        e.Message.ShouldContain("up to 5 levels");
        int estimate = SpaprTceContainer.EstimateLevels(TwoGiB, 12, 4096);
        (kernel.Faults.CallCount(VfioUapi.VFIO_IOMMU_SPAPR_TCE_CREATE) - before).ShouldBe(5 - estimate + 1);
        container.Windows.ShouldBeEmpty();
        container.PreRegisteredRegions.ShouldBe(0);
        space.EnumerateMappings().ShouldBeEmpty();
        kernel.GetState().DmaMappings.ShouldBe(0);
    }

    [Theory]
    [InlineData(1UL << 30, 12, 4096, 2)] // 2^18 TCEs: 2 MiB of table = 2^9 pages: 9 / 6 + 1
    [InlineData(1UL << 31, 12, 4096, 2)] // 2^10 pages
    [InlineData(1UL << 40, 12, 4096, 4)] // 2^19 pages
    [InlineData(1UL << 40, 16, 65536, 2)] // 2^24 TCEs: 128 MiB = 2^11 64 KiB pages
    [InlineData(1UL << 22, 12, 4096, 1)] // 2 pages
    [InlineData(1UL << 16, 16, 65536, 1)] // one TCE: at least one page
    public void EstimateLevels_IsQemusFormula(ulong window, int pageShift, ulong basePage, int expected)
        => SpaprTceContainer.EstimateLevels(window, pageShift, basePage).ShouldBe(expected);

    [Fact]
    public void Detach_RemovesWindowsAndRegistrations_NothingLeft()
    {
        using SimulatedKernel kernel = PowerKit.Host();
        using (var backend = new SpaprTceBackend(kernel))
        using (var space = new DmaSpace())
        {
            AttachedDevice edu = backend.AttachDevice(PowerKit.Edu(), space);
            using DmaBuffer memory = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
            backend.DetachDevice(edu);
            space.Containers.ShouldBeEmpty();
            kernel.GetState().DmaMappings.ShouldBe(0);
        }
        PowerKit.ShouldBeClean(kernel);
    }

    /// <summary>Page-aligned process memory outside the GC heap.</summary>
    internal sealed unsafe class HostMemory : IDisposable
    {
        internal HostMemory(int size, int alignment = 4096)
        {
            Size = size;
            Address = (nint)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)size, (nuint)alignment);
            System.Runtime.InteropServices.NativeMemory.Clear((void*)Address, (nuint)size);
        }

        internal nint Address { get; }

        internal int Size { get; }

        public void Dispose() => System.Runtime.InteropServices.NativeMemory.AlignedFree((void*)Address);
    }
}
