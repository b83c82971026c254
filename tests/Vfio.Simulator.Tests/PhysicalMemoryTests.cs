// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>
/// The simulated machine's physical memory: anonymous memory mapped and locked through the kernel port, its page frames
/// as <c>/proc/self/pagemap</c> reports them (Documentation/admin-guide/mm/pagemap.rst: one little-endian u64 per page,
/// bit 63 present, bit 62 swapped, bit 56 exclusively mapped, bits 0–54 the page frame number, which reads as 0 without
/// CAP_SYS_ADMIN since Linux 4.2; fs/proc/task_mmu.c pagemap_read: offset and count multiples of 8, else EINVAL), and
/// no-IOMMU DMA, which reaches exactly those frames. mm/mlock.c do_mlock: EPERM with RLIMIT_MEMLOCK 0, ENOMEM beyond it.
/// </summary>
public sealed class PhysicalMemoryTests
{
    private const ulong Page = 4096;
    private const ulong Present = 1UL << 63;
    private const ulong FrameMask = (1UL << 55) - 1;

    private static ulong[] ReadPagemap(SimulatedKernel kernel, nint address, int pages)
    {
        kernel.Open(PhysicalDmaBuffer.PagemapPath, OpenFlags.ReadOnly, out SafeFileHandle pagemap).ShouldBe(0);
        using (pagemap)
        {
            byte[] bytes = new byte[pages * 8];
            kernel.PRead(pagemap, bytes, (long)((ulong)address / Page * 8)).ShouldBe(bytes.Length);
            return [.. Enumerable.Range(0, pages).Select(i => BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i * 8)))];
        }
    }

    [Fact]
    [Spec("Documentation/admin-guide/mm/pagemap.rst")]
    public void Pagemap_LockedPages_ArePresentWithDistinctFrames_NotTheProcessAddress()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology());
        kernel.MapAnonymous(3 * Page, out MemoryMapping? mapped).ShouldBe(0);
        MemoryMapping mapping = mapped.ShouldNotBeNull();
        using (mapping)
        {
            ReadPagemap(kernel, mapping.DangerousGetHandle(), 3).ShouldAllBe(e => e == 0, "mapped, not yet locked: not present");
            kernel.LockMemory(mapping).ShouldBe(0);
            ulong[] entries = ReadPagemap(kernel, mapping.DangerousGetHandle(), 3);
            entries.ShouldAllBe(e => (e & Present) != 0 && (e & (1UL << 56)) != 0 && (e & FrameMask) != 0);
            ulong[] frames = [.. entries.Select(e => e & FrameMask)];
            frames.Distinct().Count().ShouldBe(3);
            ulong virtualPage = (ulong)mapping.DangerousGetHandle() / Page;
            frames.ShouldNotContain(virtualPage);
            kernel.PhysicalFrameCount.ShouldBe(3);
            kernel.LockMemory(mapping).ShouldBe(0, "locking again changes nothing");
            kernel.PhysicalFrameCount.ShouldBe(3);
            kernel.GetState().PinnedPages.ShouldBe(3UL);
        }
        kernel.PhysicalFrameCount.ShouldBe(0, "munmap returns the frames");
        kernel.GetState().PinnedPages.ShouldBe(0UL, "and the lock charge");
    }

    [Fact]
    [Spec("Documentation/admin-guide/mm/pagemap.rst")]
    public void Pagemap_WithoutCapSysAdmin_FramesReadAsZero_PresentStays()
    {
        var topology = new SimulatedTopology();
        using var kernel = new SimulatedKernel(topology);
        using PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(kernel, Page);
        topology.CapSysAdmin = false;
        ulong entry = ReadPagemap(kernel, buffer.Address, 1)[0];
        (entry & Present).ShouldNotBe(0UL);
        (entry & FrameMask).ShouldBe(0UL);
    }

    [Fact]
    [Spec("Documentation/admin-guide/mm/pagemap.rst")]
    public void Pagemap_OpenedWithCapSysAdmin_KeepsShowingFrames()
    {
        // The capability is the opener's (file_ns_capable on the file's credentials), not the reader's.
        var topology = new SimulatedTopology();
        using var kernel = new SimulatedKernel(topology);
        using PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(kernel, Page);
        kernel.Open(PhysicalDmaBuffer.PagemapPath, OpenFlags.ReadOnly, out SafeFileHandle pagemap).ShouldBe(0);
        using (pagemap)
        {
            topology.CapSysAdmin = false;
            byte[] entry = new byte[8];
            kernel.PRead(pagemap, entry, (long)((ulong)buffer.Address / Page * 8)).ShouldBe(8);
            (BinaryPrimitives.ReadUInt64LittleEndian(entry) & FrameMask).ShouldBe(buffer.GetPhysicalAddress(0) / Page);
        }
    }

    [Theory]
    [InlineData(4L, 8)]
    [InlineData(8L, 12)]
    [Spec("Documentation/admin-guide/mm/pagemap.rst")]
    public void Pagemap_OffsetOrCountNotAMultipleOf8_Einval(long offset, int count)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology());
        kernel.Open(PhysicalDmaBuffer.PagemapPath, OpenFlags.ReadOnly, out SafeFileHandle pagemap).ShouldBe(0);
        using (pagemap)
        {
            kernel.PRead(pagemap, new byte[count], offset).ShouldBe(-(long)Errno.EINVAL);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PhysicalDmaBuffer_PerPageAddresses_ContiguityWhereItHappens(bool scattered)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { ScatteredPhysicalPages = scattered });
        using PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(kernel, 2 * Page + 1);
        buffer.Size.ShouldBe(3 * Page);
        buffer.PageCount.ShouldBe(3);
        buffer.PagePhysicalAddresses.ShouldAllBe(a => a % Page == 0 && a != 0);
        buffer.GetPhysicalAddress(Page + 5).ShouldBe(buffer.PagePhysicalAddresses[1] + 5);
        // A fresh lock gets consecutive frames (as on the testbed); a fragmented machine gives none.
        buffer.IsContiguous.ShouldBe(!scattered);
        buffer.GetContiguousLength(10).ShouldBe(scattered ? Page - 10 : (3 * Page) - 10);
        buffer.GetContiguousLength(Page).ShouldBe(scattered ? Page : 2 * Page);
        buffer.GetSpan(0, (int)buffer.Size).ToArray().ShouldAllBe(b => b == 0);
        Should.Throw<ArgumentOutOfRangeException>(() => buffer.GetPhysicalAddress(3 * Page));
    }

    [Fact]
    public void PhysicalDmaBuffer_FreedFramesAreReused_InOrder()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology());
        ulong[] first;
        using (PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(kernel, 2 * Page))
        {
            first = [.. buffer.PagePhysicalAddresses];
        }
        using PhysicalDmaBuffer again = PhysicalDmaBuffer.Allocate(kernel, 2 * Page);
        again.PagePhysicalAddresses.ShouldBe(first);
    }

    [Fact]
    [Spec("Documentation/admin-guide/mm/pagemap.rst")]
    public void PhysicalDmaBuffer_WithoutCapSysAdmin_TypedError_NothingLeaked()
    {
        var topology = new SimulatedTopology { CapSysAdmin = false };
        using var kernel = new SimulatedKernel(topology);
        VfioDmaException e = Should.Throw<VfioDmaException>(() => PhysicalDmaBuffer.Allocate(kernel, 2 * Page));
        e.Failure.ShouldBe(DmaMappingFailure.PhysicalAddressUnavailable);
        e.Errno.ShouldBe(Errno.EPERM);
        e.Message.ShouldContain("CAP_SYS_ADMIN");
        kernel.PhysicalFrameCount.ShouldBe(0);
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Theory]
    [InlineData(0UL, Errno.EPERM)]
    [InlineData(Page, Errno.ENOMEM)]
    [Spec("mm/mlock.c")]
    public void PhysicalDmaBuffer_OverRlimitMemlock_LimitReached_NothingLeaked(ulong limit, Errno errno)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { MemlockLimit = limit });
        VfioDmaException e = Should.Throw<VfioDmaException>(() => PhysicalDmaBuffer.Allocate(kernel, 2 * Page));
        e.Failure.ShouldBe(DmaMappingFailure.LimitReached);
        e.Errno.ShouldBe(errno);
        kernel.PhysicalFrameCount.ShouldBe(0);
        kernel.GetState().IsEmpty.ShouldBeTrue();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    [Spec("drivers/vfio/group.c vfio_noiommu_group_alloc")]
    public void NoIommuDma_ReachesLockedFrames_RefusedElsewhereAndOnceFreed(bool scattered)
    {
        using NoIommuDevice m = NoIommuDevice.Create(
            new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, ScatteredPhysicalPages = scattered }
                .AddPci("0000:00:02.0", 0, new EduDevice()), "0000:00:02.0");
        SimDevice device = m.Kernel.FindDevice("0000:00:02.0")!;
        PhysicalDmaBuffer buffer = PhysicalDmaBuffer.Allocate(m.Kernel, 2 * Page);
        ulong endOfFirst = buffer.GetPhysicalAddress(Page - 2);
        device.DmaWrite(endOfFirst, [1, 2]).ShouldBeTrue();
        buffer.GetSpan(Page - 2, 2).ToArray().ShouldBe(new byte[] { 1, 2 });
        // Physically, the byte after page 0 is page 1's only when their frames are consecutive.
        device.DmaWrite(endOfFirst, [1, 2, 3]).ShouldBe(!scattered);
        buffer.GetSpan(Page, 1)[0].ShouldBe(scattered ? (byte)0 : (byte)3);
        device.DmaWrite(buffer.GetPhysicalAddress((2 * Page) - 1), [4, 5]).ShouldBeFalse("no frame after the buffer's last");
        buffer.Dispose();
        device.DmaWrite(endOfFirst, [9]).ShouldBeFalse("the frame went back to the kernel");
        m.Kernel.DmaFaults.Count.ShouldBe(scattered ? 3 : 2);
        m.Kernel.DmaFaults[^1].Reason.ShouldContain("physical address");
    }
}
