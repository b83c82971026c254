// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core.Interop;
using Vfio.Core.Tests.DependencyInjection;

namespace Vfio.Core.Tests.Dma;

/// <summary>The DMA-window seam: a container that opens host windows on demand (sPAPR TCE v2) joins on the ranges it
/// could open, gets a window before each mapping reaches it and loses it with the window's last mapping.</summary>
public sealed class DmaWindowTests
{
    private const ulong Page = 4096;
    private const ulong Gib = WindowedDmaContainer.WindowSize;
    private static readonly nint s_host = unchecked((nint)0x7f00_0000_0000);
    private readonly FakeBackend _backend = new("fake");

    [Fact]
    public void ContainerWithNoWindowOpen_JoinsOnTheRangesItCouldOpen()
    {
        using var space = new DmaSpace("windows");
        var container = new WindowedDmaContainer(_backend, space);
        container.IovaRanges.ShouldBeEmpty();

        container.Join();

        space.Containers.ShouldHaveSingleItem().ShouldBeSameAs(container);
        space.IovaRanges.ShouldBe([new IovaRange(0, (4 * Gib) - 1)]);
        container.Events.ShouldBeEmpty();
    }

    [Fact]
    public void Map_OpensAWindowBeforeTheMapping_AndTheLastUnmapClosesIt()
    {
        using var space = new DmaSpace("windows");
        var container = new WindowedDmaContainer(_backend, space);
        container.Join();

        space.MapAt(Gib + Page, s_host, Page);
        space.MapAt(Gib + (2 * Page), s_host + (nint)Page, Page);
        container.IovaRanges.ShouldBe([new IovaRange(Gib, (2 * Gib) - 1)]);
        space.Unmap(Gib + Page);
        container.IovaRanges.ShouldNotBeEmpty();
        space.Unmap(Gib + (2 * Page));

        container.Events.ShouldBe([
            "open 0x40000000", "map 0x40001000", "map 0x40002000", "unmap 0x40001000", "unmap 0x40002000", "close 0x40000000"]);
        container.IovaRanges.ShouldBeEmpty();
        space.IovaRanges.ShouldBe([new IovaRange(0, (4 * Gib) - 1)]);
    }

    [Fact]
    public void Map_OutsideTheRangesAWindowCouldCover_IsRefusedBeforeAnyWindowOpens()
    {
        using var space = new DmaSpace("windows");
        var container = new WindowedDmaContainer(_backend, space);
        container.Join();

        Should.Throw<VfioDmaException>(() => space.MapAt(5 * Gib, s_host, Page)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);

        container.Events.ShouldBeEmpty();
        space.MappingCount.ShouldBe(0);
    }

    [Fact]
    public void WindowThatCannotOpen_FailsTheMap_NothingMapped_AndTheIovaIsFreeAgain()
    {
        using var space = new DmaSpace("windows");
        var container = new WindowedDmaContainer(_backend, space, maxWindows: 1);
        container.Join();
        space.MapAt(0, s_host, Page);

        VfioException e = Should.Throw<VfioException>(() => space.MapAt(2 * Gib, s_host, Page));

        e.Errno.ShouldBe(Errno.ENOSPC);
        space.MappingCount.ShouldBe(1);
        container.Events.ShouldBe(["open 0x0", "map 0x0"]);
        space.Unmap(0);
        space.MapAt(2 * Gib, s_host, Page).Iova.ShouldBe(2 * Gib); // the window of 0 went with its mapping
        container.Events.ShouldBe(["open 0x0", "map 0x0", "unmap 0x0", "close 0x0", "open 0x80000000", "map 0x80000000"]);
    }

    [Fact]
    public void MapThatFailsAfterItsWindowOpened_ClosesTheWindowAgain()
    {
        using var space = new DmaSpace("windows");
        var container = new WindowedDmaContainer(_backend, space) { FailMap = _ => true };
        container.Join();

        Should.Throw<VfioException>(() => space.MapAt(Page, s_host, Page));

        container.Events.ShouldBe(["open 0x0", "close 0x0"]);
        container.IovaRanges.ShouldBeEmpty();
        space.MappingCount.ShouldBe(0);
    }

    [Fact]
    public void ContainerJoiningLater_OpensWindowsForTheMappingsItIsReplayed()
    {
        using var space = new DmaSpace("windows");
        space.MapAt(Page, s_host, Page);
        space.MapAt((3 * Gib) + Page, s_host, Page);
        var container = new WindowedDmaContainer(_backend, space);

        container.Join();

        container.Events.ShouldBe(["open 0x0", "map 0x1000", "open 0xc0000000", "map 0xc0001000"]);
        container.IovaRanges.Count.ShouldBe(2);
    }

    [Fact]
    public void SpaceWithAWindowedAndAFixedContainer_ChecksAgainstTheIntersection()
    {
        using var space = new DmaSpace("windows");
        var fixedRanges = new FakeDmaContainer(_backend, space, "fixed", ranges: [new IovaRange(Gib, (8 * Gib) - 1)]);
        space.Join(fixedRanges);
        var windowed = new WindowedDmaContainer(_backend, space);
        windowed.Join();

        space.IovaRanges.ShouldBe([new IovaRange(Gib, (4 * Gib) - 1)]);
        Should.Throw<VfioDmaException>(() => space.MapAt(Page, s_host, Page)).Failure.ShouldBe(DmaMappingFailure.OutsideIovaRanges);
        space.MapAt(Gib, s_host, Page);
        fixedRanges.Live.ShouldBe([Gib]);
        windowed.Events.ShouldBe(["open 0x40000000", "map 0x40000000"]);
    }
}
