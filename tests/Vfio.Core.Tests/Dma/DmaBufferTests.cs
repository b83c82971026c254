// SPDX-License-Identifier: MIT
using System.Buffers;
using System.Globalization;
using Shouldly;
using Vfio.Core.Tests.DependencyInjection;

namespace Vfio.Core.Tests.Dma;

/// <summary><see cref="DmaBuffer"/>: real process memory (checked in <c>/proc/self/maps</c>), mapped through a recording
/// container. That a device reaches the buffer is shown on the simulator and the real kernel by the conformance suite's DMA
/// round trips, which use it. The class runs alone (the process-wide allocation collection): its leak checks count the
/// process's mappings, which a test running in parallel could change.</summary>
[Collection(typeof(AllocationCollection))]
public sealed class DmaBufferTests
{
    private const ulong Page = 4096;
    private readonly FakeBackend _backend = new("fake");

    private (DmaSpace Space, FakeDmaContainer Container) SpaceWithContainer(ulong pageSizes = Page, IReadOnlyList<IovaRange>? ranges = null) =>
        FakeDmaContainer.JoinNewSpace(_backend, "buffers", pageSizes, ranges);

    [Fact]
    public void Allocate_MapsZeroedWholePages_AtAnIovaInsideTheRangesAndBelowTheMask()
    {
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer(ranges: [new IovaRange(0x10_0000, 0xffff_ffff)]);

        using DmaBuffer buffer = DmaBuffer.Allocate(space, 5000, DmaAccess.ReadWrite, dmaMask: 0x0fff_ffff);

        buffer.Size.ShouldBe(2 * Page);
        buffer.PageSize.ShouldBe(Page);
        buffer.IsHugePages.ShouldBeFalse();
        ((ulong)buffer.Address % Page).ShouldBe(0UL);
        buffer.Iova.ShouldBeGreaterThanOrEqualTo(0x10_0000UL);
        (buffer.Iova + buffer.Size - 1).ShouldBeLessThanOrEqualTo(0x0fff_ffffUL);
        buffer.Mapping.ShouldBe(new DmaMapping(buffer.Iova, 2 * Page, buffer.Address, DmaAccess.ReadWrite, DmaSectionKind.Ram));
        container.MapCalls.ShouldBe([buffer.Mapping]);
        space.MappingCount.ShouldBe(1);
        ProcessMaps.Covers(buffer.Address, buffer.Size).ShouldBeTrue();
        ProcessMaps.VmFlags(buffer.Address).ShouldContain("dc");   // MADV_DONTFORK: a fork does not copy it

        buffer.Span.ToArray().ShouldAllBe(b => b == 0);
        buffer.Memory.Write32(8, 0xdeadbeef);
        BitConverter.ToUInt32(buffer.GetSpan(8, 4)).ShouldBe(0xdeadbeefu);
        buffer.Span[4097] = 0x5a;
        buffer.Memory.Read8(4097).ShouldBe((byte)0x5a);
        Should.Throw<ArgumentOutOfRangeException>(() => buffer.GetSpan(2 * Page - 1, 2));
    }

    [Fact]
    public void Dispose_UnmapsFromTheSpaceFirst_ThenFreesTheMemory_Once()
    {
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer();
        DmaBuffer buffer = DmaBuffer.Allocate(space, 3 * Page);
        nint address = buffer.Address;
        DmaMapping mapping = buffer.Mapping;

        buffer.Dispose();

        container.UnmapCalls.ShouldBe([mapping]);
        space.MappingCount.ShouldBe(0);
        space.MappedBytes.ShouldBe(0UL);
        ProcessMaps.HoldsBufferMemory(address).ShouldBeFalse();
        buffer.IsDisposed.ShouldBeTrue();
        Should.Throw<ObjectDisposedException>(() => buffer.Span.Length);
        Should.Throw<ObjectDisposedException>(() => buffer.AsMemory());
        buffer.Dispose();
        container.UnmapCalls.Count.ShouldBe(1);
    }

    [Fact]
    public void Dispose_RacingWithItself_UnmapsOnce()
    {
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer();
        DmaBuffer buffer = DmaBuffer.Allocate(space, Page);

        Parallel.For(0, 8, _ => buffer.Dispose());

        container.UnmapCalls.Count.ShouldBe(1);
        space.MappingCount.ShouldBe(0);
        buffer.IsDisposed.ShouldBeTrue();
    }

    [Fact]
    public void Dispose_AfterTheSpaceWasDisposed_OnlyFreesTheMemory()
    {
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer();
        DmaBuffer buffer = DmaBuffer.Allocate(space, Page);
        nint address = buffer.Address;
        space.Dispose();
        container.UnmapCalls.ShouldBe([buffer.Mapping]);

        Should.NotThrow(buffer.Dispose);

        container.UnmapCalls.Count.ShouldBe(1);
        ProcessMaps.HoldsBufferMemory(address).ShouldBeFalse();
        Should.Throw<ObjectDisposedException>(() => DmaBuffer.Allocate(space, Page));
    }

    [Fact]
    public void Dispose_AfterTheCallerUnmappedIt_LeavesTheNextMappingAtThatIovaAlone()
    {
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer();
        DmaBuffer buffer = DmaBuffer.Allocate(space, Page);
        using DmaBuffer other = DmaBuffer.Allocate(space, Page);
        space.Unmap(buffer.Mapping);
        DmaMapping reused = space.MapAt(buffer.Iova, other.Address, Page);

        buffer.Dispose();

        space.TryFind(reused.Iova, out DmaMapping found).ShouldBeTrue();
        found.ShouldBe(reused);
        container.Live.ShouldContain(reused.Iova);
    }

    [Fact]
    public void Dispose_WhenTheKernelRefusesTheUnmap_KeepsTheMemory_AndCanBeRepeated()
    {
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer();
        DmaBuffer buffer = DmaBuffer.Allocate(space, Page);
        container.FailUnmap = _ => true;

        Should.Throw<VfioException>(buffer.Dispose);

        buffer.IsDisposed.ShouldBeFalse();
        space.MappingCount.ShouldBe(1);
        ProcessMaps.Covers(buffer.Address, Page).ShouldBeTrue();
        buffer.Span[0] = 1;

        container.FailUnmap = null;
        buffer.Dispose();
        buffer.IsDisposed.ShouldBeTrue();
        space.MappingCount.ShouldBe(0);
    }

    [Fact]
    public void Allocate_WhenTheMapFails_LeavesNoMemoryAndNoMapping()
    {
        // An odd size, so that the buffer's memory is recognisable among the process's mappings.
        const ulong Size = 37 * Page;
        (DmaSpace space, FakeDmaContainer container) = SpaceWithContainer();
        int before = ProcessMaps.CountOfLength(Size);
        using (DmaBuffer control = DmaBuffer.Allocate(space, Size))
        {
            ProcessMaps.CountOfLength(Size).ShouldBe(before + 1);   // the count sees a buffer
        }
        ProcessMaps.CountOfLength(Size).ShouldBe(before);

        container.FailMap = _ => true;
        Should.Throw<VfioException>(() => DmaBuffer.Allocate(space, Size));
        ProcessMaps.CountOfLength(Size).ShouldBe(before);
        space.MappingCount.ShouldBe(0);
        container.Live.ShouldBeEmpty();

        container.FailMap = null;
        VfioDmaException e = Should.Throw<VfioDmaException>(() => DmaBuffer.Allocate(space, Size, dmaMask: 0xffff));
        e.Failure.ShouldBe(DmaMappingFailure.NoFreeIova);
        ProcessMaps.CountOfLength(Size).ShouldBe(before);
        space.MappingCount.ShouldBe(0);
    }

    [Fact]
    public void Allocate_InASpaceWithLargerIommuPages_AlignsAndRoundsToThem()
    {
        (DmaSpace space, _) = SpaceWithContainer(pageSizes: 0x10000);

        using DmaBuffer buffer = DmaBuffer.Allocate(space, Page);

        buffer.PageSize.ShouldBe(0x10000UL);
        buffer.Size.ShouldBe(0x10000UL);
        ((ulong)buffer.Address % 0x10000).ShouldBe(0UL);
        ProcessMaps.Covers(buffer.Address, buffer.Size).ShouldBeTrue();
    }

    [Fact]
    public void RequiredHugePages_WithoutFreeHugePages_IsATypedErrorNamingNrHugepages_AndLeavesNothing()
    {
        (DmaSpace space, _) = SpaceWithContainer();
        (ulong hugePageSize, ulong free) = HugePages.Read();
        if (free == 0)
        {
            int before = ProcessMaps.CountOfLength(hugePageSize);
            VfioDmaException e = Should.Throw<VfioDmaException>(() =>
                DmaBuffer.Allocate(space, Page, options: new DmaBufferOptions { HugePages = HugePagePolicy.Required }));
            e.Failure.ShouldBe(DmaMappingFailure.HugePagesUnavailable);
            e.Message.ShouldContain("/proc/sys/vm/nr_hugepages");
            e.Message.ShouldContain("HugePagePolicy.Preferred");
            ProcessMaps.CountOfLength(hugePageSize).ShouldBe(before);
            space.MappingCount.ShouldBe(0);
        }
        else
        {
            using DmaBuffer buffer = DmaBuffer.Allocate(space, Page, options: new DmaBufferOptions { HugePages = HugePagePolicy.Required });
            buffer.IsHugePages.ShouldBeTrue();
            buffer.Size.ShouldBe(hugePageSize);
            ((ulong)buffer.Address % hugePageSize).ShouldBe(0UL);
        }
    }

    [Fact]
    public void PreferredHugePages_FallBackToNormalPages_WhenNoneAreFree()
    {
        (DmaSpace space, _) = SpaceWithContainer();
        (ulong hugePageSize, ulong free) = HugePages.Read();

        using DmaBuffer buffer = DmaBuffer.Allocate(space, 3 * Page, options: new DmaBufferOptions { HugePages = HugePagePolicy.Preferred });

        buffer.IsHugePages.ShouldBe(free > 0);
        buffer.Size.ShouldBe(free > 0 ? hugePageSize : 3 * Page);
        ProcessMaps.Covers(buffer.Address, buffer.Size).ShouldBeTrue();
        string[] flags = ProcessMaps.VmFlags(buffer.Address);
        flags.ShouldContain("dc");
        if (free > 0)
        {
            flags.ShouldContain("ht");   // hugetlb
        }
        else if (Directory.Exists("/sys/kernel/mm/transparent_hugepage"))
        {
            flags.ShouldContain("hg");   // the MADV_HUGEPAGE hint (a kernel without THP refuses the hint, and the buffer works)
        }
        buffer.Span.Fill(0x33);
        buffer.Memory.Read64(buffer.Size - 8).ShouldBe(0x3333_3333_3333_3333UL);
    }

    [Fact]
    public void AsMemory_IsTheBuffer_AndPinningHoldsTheMapping()
    {
        (DmaSpace space, _) = SpaceWithContainer();
        using DmaBuffer buffer = DmaBuffer.Allocate(space, Page);

        Memory<byte> memory = buffer.AsMemory();
        memory.Length.ShouldBe((int)Page);
        memory.Span[10] = 42;
        buffer.Memory.Read8(10).ShouldBe((byte)42);
        using (MemoryHandle pin = memory.Pin())
        {
            unsafe
            {
                ((nint)pin.Pointer).ShouldBe(buffer.Address);
            }
        }
    }

    [Fact]
    public void Allocate_RejectsBadArguments()
    {
        (DmaSpace space, _) = SpaceWithContainer();
        Should.Throw<ArgumentNullException>(() => DmaBuffer.Allocate(null!, Page));
        Should.Throw<ArgumentOutOfRangeException>(() => DmaBuffer.Allocate(space, 0));
        Should.Throw<ArgumentOutOfRangeException>(() => DmaBuffer.Allocate(space, Page, options: new DmaBufferOptions { HugePages = (HugePagePolicy)7 }));
        Should.Throw<ArgumentOutOfRangeException>(() => DmaBuffer.Allocate(space, Page, access: 0));
        space.MappingCount.ShouldBe(0);
    }

    /// <summary>The process's mappings, from <c>/proc/self/maps</c>.</summary>
    private static class ProcessMaps
    {
        internal static bool Covers(nint address, ulong length)
        {
            ulong start = (ulong)address;
            ulong end = start + length;
            // Adjacent mappings with equal flags may be merged by the kernel, so "covered" is what is asked, not "equal".
            ulong covered = start;
            foreach ((ulong s, ulong e) in Read().OrderBy(r => r.Start))
            {
                if (s <= covered && e > covered)
                {
                    covered = e;
                }
            }
            return covered >= end;
        }

        /// <summary>How many of the process's mappings are <paramref name="length"/> bytes long.</summary>
        /// <remarks>The least of three reads: the runtime's own threads may map and unmap memory of the same length for a
        /// moment (native allocations above malloc's mmap threshold), a leak stays in every read.</remarks>
        internal static int CountOfLength(ulong length)
        {
            int least = int.MaxValue;
            for (int i = 0; i < 3; i++)
            {
                least = Math.Min(least, Read().Count(r => r.End - r.Start == length));
                if (i < 2)
                {
                    Thread.Sleep(5);
                }
            }
            return least;
        }

        /// <summary>Whether a buffer's memory is still mapped at <paramref name="address"/>: a mapping with the
        /// <c>MADV_DONTFORK</c> flag every buffer has. A freed buffer's address may be mapped again at once by the runtime
        /// (its code heap, for one), but never with that flag.</summary>
        internal static bool HoldsBufferMemory(nint address)
            => TryVmFlags(address, out string[] flags) && flags.Contains("dc");

        /// <summary>The <c>VmFlags</c> of the mapping that contains <paramref name="address"/>, from <c>/proc/self/smaps</c>.</summary>
        internal static string[] VmFlags(nint address)
            => TryVmFlags(address, out string[] flags) ? flags : throw new InvalidOperationException($"No mapping contains 0x{address:x}.");

        private static bool TryVmFlags(nint address, out string[] flags)
        {
            bool inside = false;
            foreach (string line in File.ReadLines("/proc/self/smaps"))
            {
                int dash = line.IndexOf('-', StringComparison.Ordinal);
                int space = line.IndexOf(' ', StringComparison.Ordinal);
                if (dash > 0 && space > dash && ulong.TryParse(line[..dash], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong start)
                    && ulong.TryParse(line[(dash + 1)..space], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong end))
                {
                    inside = start <= (ulong)address && (ulong)address < end;
                }
                else if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
                {
                    flags = line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return true;
                }
            }
            flags = [];
            return false;
        }

        private static List<(ulong Start, ulong End)> Read()
        {
            var list = new List<(ulong, ulong)>();
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                string range = line[..line.IndexOf(' ', StringComparison.Ordinal)];
                int dash = range.IndexOf('-', StringComparison.Ordinal);
                list.Add((ulong.Parse(range[..dash], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    ulong.Parse(range[(dash + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
            }
            return list;
        }
    }

    /// <summary>The default huge page size and how many the kernel can give (free reserved ones, from <c>/proc/meminfo</c>,
    /// plus the surplus it may allocate, <c>/proc/sys/vm/nr_overcommit_hugepages</c>).</summary>
    private static class HugePages
    {
        internal static (ulong Size, ulong Free) Read()
        {
            ulong size = 0;
            ulong free = 0;
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts[0] == "Hugepagesize:")
                {
                    size = ulong.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
                }
                else if (parts[0] == "HugePages_Free:")
                {
                    free = ulong.Parse(parts[1], CultureInfo.InvariantCulture);
                }
            }
            string overcommit = "/proc/sys/vm/nr_overcommit_hugepages";
            if (File.Exists(overcommit))
            {
                free += ulong.Parse(File.ReadAllText(overcommit).Trim(), CultureInfo.InvariantCulture);
            }
            return (size, free);
        }
    }
}
