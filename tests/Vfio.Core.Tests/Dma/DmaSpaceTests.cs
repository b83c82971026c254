// SPDX-License-Identifier: MIT
using System.Diagnostics.Metrics;
using Shouldly;
using Vfio.Core.Tests.DependencyInjection;

namespace Vfio.Core.Tests.Dma;

public sealed class DmaSpaceTests
{
    private const ulong Page = 4096;
    private static readonly nint s_host = unchecked((nint)0x7f00_0000_0000);
    private readonly FakeBackend _backend = new("fake");

    private (DmaSpace Space, FakeDmaContainer Container) SpaceWithContainer(ulong pageSizes = Page, IReadOnlyList<IovaRange>? ranges = null) =>
        FakeDmaContainer.JoinNewSpace(_backend, "test", pageSizes, ranges);

    [Fact]
    public void Map_ReachesEveryContainer_AndUnmapRemovesItFromEach()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        var c2 = new FakeDmaContainer(_backend, space, "c2");
        space.Join(c2);

        DmaMapping m = space.Map(s_host, 2 * Page, DmaAccess.ReadWrite, dmaMask: 0xffff_ffff);

        c1.MapCalls.ShouldBe([m]);
        c2.MapCalls.ShouldBe([m]);
        space.MappingCount.ShouldBe(1);
        space.MappedBytes.ShouldBe(2 * Page);
        space.TryFind(m.Iova + Page, out DmaMapping found).ShouldBeTrue();
        found.ShouldBe(m);

        space.Unmap(m.Iova);
        c1.UnmapCalls.ShouldBe([m]);
        c2.UnmapCalls.ShouldBe([m]);
        space.MappingCount.ShouldBe(0);
        space.MappedBytes.ShouldBe(0UL);
    }

    [Fact]
    public void MapUnmapMapAgain_SameIova_TheBookHoldsTheNewMappingsHostAddressAccessAndKind()
    {
        // The allocator's map-then-unmap fast path hands the same IOVA back; the mapping data kept with the allocation
        // must be the new mapping's, not the freed one's.
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer();
        DmaMapping first = space.Map(s_host, Page, DmaAccess.Read);
        space.Unmap(first.Iova);
        DmaMapping second = space.Map(s_host + 0x1000, Page, DmaAccess.Write);
        second.Iova.ShouldBe(first.Iova);
        space.TryFind(second.Iova, out DmaMapping found).ShouldBeTrue();
        found.ShouldBe(second);
        space.Unmap(second.Iova);

        DmaMapping fixedRam = space.MapAt(0x40_0000, s_host, Page, DmaAccess.ReadWrite);
        space.Unmap(fixedRam.Iova);
        DmaMapping fixedDevice = space.MapAt(0x40_0000, s_host + 0x2000, Page, DmaAccess.Read, DmaSectionKind.DeviceMemory);
        space.EnumerateMappings().ShouldBe([fixedDevice]);
        space.Unmap(fixedDevice.Iova);

        container.UnmapCalls.ShouldBe([first, second, fixedRam, fixedDevice]);
        space.MappingCount.ShouldBe(0);
        space.MappedBytes.ShouldBe(0UL);
    }

    [Fact]
    public void Join_ReplaysExistingMappingsInIovaOrder()
    {
        var space = new DmaSpace("test");
        DmaMapping high = space.MapAt(0x10_0000, s_host, Page);
        DmaMapping low = space.MapAt(0x1000, s_host + 0x1000, Page);

        var late = new FakeDmaContainer(_backend, space, "late");
        space.Join(late);

        late.MapCalls.ShouldBe([low, high]);
        space.Containers.ShouldBe([late]);
    }

    [Fact]
    public void Join_WhenTheKernelRefusesAReplay_UnmapsWhatItReplayedAndDoesNotAdd()
    {
        var space = new DmaSpace("test");
        space.MapAt(0x1000, s_host, Page);
        DmaMapping second = space.MapAt(0x2000, s_host + 0x1000, Page);
        var late = new FakeDmaContainer(_backend, space, "late") { FailMap = m => m.Iova == second.Iova };

        Should.Throw<VfioException>(() => space.Join(late));

        late.Live.ShouldBeEmpty();
        late.UnmapCalls.Select(m => m.Iova).ShouldBe([0x1000UL]);
        space.Containers.ShouldBeEmpty();
        space.MappingCount.ShouldBe(2);
    }

    [Fact]
    public void Join_ContainerWithLargerPages_RefusesMisalignedExistingMappings()
    {
        var space = new DmaSpace("test");
        space.MapAt(0x1000, s_host, Page);
        var big = new FakeDmaContainer(_backend, space, "big", pageSizes: 0x10000);

        VfioDmaException e = Should.Throw<VfioDmaException>(() => space.Join(big));
        e.Failure.ShouldBe(DmaMappingFailure.Misaligned);
        big.MapCalls.ShouldBeEmpty();
    }

    [Fact]
    public void Join_ContainerSharingNoRange_IsRefused()
    {
        (DmaSpace space, _) = SpaceWithContainer(ranges: [new IovaRange(0, 0xffff_ffff)]);
        var other = new FakeDmaContainer(_backend, space, "other", ranges: [new IovaRange(0x1_0000_0000, 0x1_ffff_ffff)]);

        Should.Throw<VfioDmaException>(() => space.Join(other)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
    }

    [Fact]
    public void Join_ForeignOrTwice_Throws()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        Should.Throw<ArgumentException>(() => space.Join(c1));
        var foreign = new FakeDmaContainer(_backend, new DmaSpace("other"), "foreign");
        Should.Throw<ArgumentException>(() => space.Join(foreign));
    }

    [Fact]
    public void Leave_UnmapsEverythingFromThatContainerAndReleasesIt_TheSpaceKeepsItsMappings()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        var c2 = new FakeDmaContainer(_backend, space, "c2");
        space.Join(c2);
        DmaMapping a = space.MapAt(0x1000, s_host, Page);
        DmaMapping b = space.MapAt(0x4000, s_host + 0x1000, 2 * Page);

        space.Leave(c2);

        c2.Live.ShouldBeEmpty();
        c2.UnmapCalls.OrderBy(m => m.Iova).ShouldBe([a, b]);
        c2.ReleaseCalls.ShouldBe(1);
        c2.IsReleased.ShouldBeTrue();
        space.Containers.ShouldBe([c1]);
        space.MappingCount.ShouldBe(2);
        c1.Live.Count.ShouldBe(2);

        DmaMapping c = space.MapAt(0x10000, s_host, Page);
        c1.MapCalls.ShouldContain(c);
        c2.MapCalls.ShouldNotContain(c);
        Should.Throw<ArgumentException>(() => space.Join(c2)); // released containers are never reused
    }

    [Fact]
    public void Leave_WhenAnUnmapFails_StillReleasesAndThrows()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        space.MapAt(0x1000, s_host, Page);
        c1.FailUnmap = _ => true;

        Should.Throw<VfioException>(() => space.Leave(c1));
        c1.ReleaseCalls.ShouldBe(1);
        space.Containers.ShouldBeEmpty();
    }

    [Fact]
    public void Leave_WidensTheSpaceToTheRemainingContainers()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        var narrow = new FakeDmaContainer(_backend, space, "narrow", pageSizes: 0x10000, ranges: [new IovaRange(0, 0xffff_ffff)]);
        space.Join(narrow);
        space.PageSize.ShouldBe(0x10000UL);
        space.IovaRanges.ShouldBe([new IovaRange(0, 0xffff_ffff)]);

        space.Leave(narrow);

        space.PageSize.ShouldBe(DmaSpace.HostPageSize);
        space.IovaRanges.ShouldBe(c1.IovaRanges);
    }

    [Fact]
    public void SetLimits_AfterJoin_NarrowsTheSpace()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        c1.ChangeLimits(0, [new IovaRange(0x1000, 0xfff_ffff)]);
        space.IovaRanges.ShouldBe([new IovaRange(0x1000, 0xfff_ffff)]);
        Should.Throw<VfioDmaException>(() => space.MapAt(0, s_host, Page)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
    }

    [Fact]
    public void MapAt_Overlapping_IsRefused()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        space.MapAt(0x2000, s_host, 2 * Page);

        VfioDmaException e = Should.Throw<VfioDmaException>(() => space.MapAt(0x3000, s_host, 2 * Page));
        e.Failure.ShouldBe(DmaMappingFailure.Overlap);
        e.Message.ShouldContain("overlaps");
        c1.MapCalls.Count.ShouldBe(1);
    }

    [Theory]
    [InlineData(0x1001UL, 0x1000L, 0x1000UL)] // IOVA
    [InlineData(0x1000UL, 0x1008L, 0x1000UL)] // host address
    [InlineData(0x1000UL, 0x1000L, 0x0800UL)] // size
    [InlineData(0x1000UL, 0x1000L, 0UL)] // empty
    public void MapAt_Misaligned_IsRefused(ulong iova, long host, ulong size)
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        Should.Throw<VfioDmaException>(() => space.MapAt(iova, (nint)host, size)).Failure.ShouldBe(DmaMappingFailure.Misaligned);
        c1.MapCalls.ShouldBeEmpty();
    }

    [Fact]
    public void MapAt_OutsideTheRanges_IsRefused()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer(ranges: [new IovaRange(0, 0xffff_ffff)]);
        Should.Throw<VfioDmaException>(() => space.MapAt(0xffff_f000, s_host, 2 * Page)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        Should.Throw<VfioDmaException>(() => space.MapAt(ulong.MaxValue - 0xfff, s_host, 2 * Page)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        c1.MapCalls.ShouldBeEmpty();
    }

    [Fact]
    public void Map_RespectsTheDmaMask_AndReportsNoFreeIova()
    {
        (DmaSpace space, _) = SpaceWithContainer();
        DmaMapping m = space.Map(s_host, Page, dmaMask: 0x1fff);
        (m.Iova + m.Size - 1).ShouldBeLessThanOrEqualTo(0x1fffUL);
        space.Map(s_host, Page, dmaMask: 0x1fff);
        Should.Throw<VfioDmaException>(() => space.Map(s_host, Page, dmaMask: 0x1fff)).Failure.ShouldBe(DmaMappingFailure.NoFreeIova);
    }

    [Fact]
    public void Unmap_NotMapped_IsRefused()
    {
        (DmaSpace space, _) = SpaceWithContainer();
        DmaMapping m = space.MapAt(0x2000, s_host, 2 * Page);
        Should.Throw<VfioDmaException>(() => space.Unmap(0x3000)).Failure.ShouldBe(DmaMappingFailure.NotMapped);
        space.Unmap(m);
        Should.Throw<VfioDmaException>(() => space.Unmap(m.Iova)).Failure.ShouldBe(DmaMappingFailure.NotMapped);
    }

    [Fact]
    public void Unmap_WhenTheKernelRefuses_KeepsTheMappingSoItCanBeRepeated()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        DmaMapping m = space.MapAt(0x2000, s_host, Page);
        c1.FailUnmap = _ => true;
        Should.Throw<VfioDmaException>(() => space.Unmap(m.Iova)).Failure.ShouldBe(DmaMappingFailure.Kernel);
        space.MappingCount.ShouldBe(1);
        c1.FailUnmap = null;
        space.Unmap(m.Iova);
        c1.Live.ShouldBeEmpty();
    }

    [Fact]
    public void Map_WhenTheSecondContainerRefuses_RollsBackTheFirstAndFreesTheIova()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        var c2 = new FakeDmaContainer(_backend, space, "c2") { FailMap = _ => true };
        space.Join(c2);

        Should.Throw<VfioException>(() => space.MapAt(0x2000, s_host, Page));

        c1.MapCalls.Count.ShouldBe(1);
        c1.UnmapCalls.Count.ShouldBe(1);
        c1.Live.ShouldBeEmpty();
        c2.Live.ShouldBeEmpty();
        space.MappingCount.ShouldBe(0);
        space.MappedBytes.ShouldBe(0UL);

        Should.Throw<VfioException>(() => space.Map(s_host, Page, dmaMask: 0xffff));
        c1.Live.ShouldBeEmpty();

        c2.FailMap = null;
        DmaMapping again = space.MapAt(0x2000, s_host, Page); // the IOVA was freed
        c1.Live.ShouldBe([again.Iova]);
        c2.Live.ShouldBe([again.Iova]);
    }

    [Fact]
    public void AddSection_ShrinksInwardToPages_AndRemoveSectionShrinksTheSameWay()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();

        space.AddSection(0x1800, s_host + 0x800, 0x3000, DmaAccess.Read, DmaSectionKind.Ram, out DmaMapping m).ShouldBeTrue();

        m.Iova.ShouldBe(0x2000UL);
        m.Size.ShouldBe(0x2000UL);
        m.HostAddress.ShouldBe(s_host + 0x1000);
        m.Access.ShouldBe(DmaAccess.Read);
        c1.MapCalls.ShouldBe([m]);

        space.RemoveSection(0x1800, 0x3000).ShouldBeTrue();
        c1.UnmapCalls.ShouldBe([m]);
    }

    [Fact]
    public void AddSection_WithNoWholePage_IsSkipped()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        space.AddSection(0x1800, s_host + 0x800, 0x1000, DmaAccess.ReadWrite, DmaSectionKind.Ram, out _).ShouldBeFalse();
        space.RemoveSection(0x1800, 0x1000).ShouldBeFalse();
        // The IOVA and host address disagree within the page: no page-aligned mapping can keep them together.
        space.AddSection(0x1000, s_host + 0x800, 0x4000, DmaAccess.ReadWrite, DmaSectionKind.Ram, out _).ShouldBeFalse();
        c1.MapCalls.ShouldBeEmpty();
    }

    [Fact]
    public void DeviceMemory_AContainerCannotMap_IsSkippedThereAndNeverUnmapped()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        var c2 = new FakeDmaContainer(_backend, space, "c2") { FailMap = m => m.Kind == DmaSectionKind.DeviceMemory };
        space.Join(c2);

        DmaMapping bar = space.MapAt(0x10000, s_host, Page, kind: DmaSectionKind.DeviceMemory);
        c1.Live.ShouldBe([bar.Iova]);
        c2.Live.ShouldBeEmpty();

        space.Unmap(bar.Iova);
        c1.UnmapCalls.ShouldBe([bar]);
        c2.UnmapCalls.ShouldBeEmpty();

        // RAM a container cannot map is an error, not a skip.
        c2.FailMap = _ => true;
        Should.Throw<VfioException>(() => space.MapAt(0x20000, s_host, Page));
        c1.Live.ShouldBeEmpty();
    }

    [Fact]
    public void DefaultMapping_ToString_DoesNotThrow()
    {
        // AddSection hands out default for a skipped section; printing it (a log, a debugger) must work.
        default(DmaMapping).ToString().ShouldContain("Size = 0");
        new DmaMapping(0x1000, 0x2000, 0, DmaAccess.Read, DmaSectionKind.Ram).ToString().ShouldContain("Range");
    }

    [Fact]
    public void Dispose_ReleasesContainers_AndLaterCallsThrowObjectDisposed()
    {
        (DmaSpace space, FakeDmaContainer c1) = SpaceWithContainer();
        space.MapAt(0x1000, s_host, Page);
        space.Dispose();
        c1.IsReleased.ShouldBeTrue();
        c1.Live.ShouldBeEmpty();
        space.IsDisposed.ShouldBeTrue();
        Should.Throw<ObjectDisposedException>(() => space.MapAt(0x1000, s_host, Page));
        space.Dispose();
    }

    [Fact]
    public void Metrics_SeeMappedBytesAndMappingsChange()
    {
        using var metrics = new VfioMetrics();
        long bytes = 0, mappings = 0, durations = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, metrics.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "vfio.dma.memory.usage")
            {
                bytes += value;
            }
            else if (instrument.Name == "vfio.dma.mapping.count")
            {
                mappings += value;
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, _, _, _) => durations++);
        listener.Start();

        using var space = new DmaSpace("metered", metrics: metrics);
        var container = new FakeDmaContainer(_backend, space, "c1");
        space.Join(container);
        DmaMapping a = space.MapAt(0x1000, s_host, 2 * Page);
        space.Map(s_host, Page);
        bytes.ShouldBe((long)(3 * Page));
        mappings.ShouldBe(2);

        space.Unmap(a);
        bytes.ShouldBe((long)Page);
        mappings.ShouldBe(1);
        durations.ShouldBe(3);
    }
}
