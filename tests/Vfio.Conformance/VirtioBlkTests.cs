// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Devices.Platform;
using static Vfio.Conformance.VirtioBlkDriver;
using static Vfio.Conformance.VirtioMmioDriver;

namespace Vfio.Conformance;

/// <summary>
/// The virtio-mmio block device (the testbed's 1 MiB scratch image; the simulator's RAM disk) through vfio-platform in
/// no-IOMMU mode, driven by <see cref="VirtioBlkDriver"/> on Devices.Platform: real traffic through a split virtqueue in
/// physical memory, completions through the automasked level IRQ.
/// </summary>
public sealed class VirtioBlkTests
{
    private const ulong CapacitySectors = Rig.BlkCapacityBytes / SectorSize;

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_NegotiatesFeatures_AndReadsItsCapacityFromConfigSpace(Mode mode)
    {
        using var blk = new Blk(mode);
        VfioPlatformDevice platform = blk.Driver.Virtio.Platform;
        VfioMmioRegion r = blk.Driver.Virtio.Registers;
        r.Read(MagicValue).ShouldBe(0x74726976u);
        r.Read(MmioVersion).ShouldBe(2u, "virtio-mmio version 2 (modern): QEMU's force-legacy=false");
        r.Read(DeviceId).ShouldBe(BlockDeviceId);
        platform.Regions.Count.ShouldBe(1);
        platform.Irqs.Count.ShouldBe(1);
        platform.GetIrq(0).IsLevelTriggered.ShouldBeTrue();
        VfioPlatformRegion region = platform.GetRegion(0);
        region.Size.ShouldBe(0x200UL);
        region.CanMap.ShouldBeFalse("a virtio-mmio transport is smaller than a page, so vfio-platform offers no mmap");
        Should.Throw<InvalidOperationException>(region.Map).Message.ShouldContain("region 0 cannot be mapped");

        blk.Driver.Virtio.SetStatus(0);
        blk.Driver.Virtio.SetStatus(Acknowledge | Driver);
        ulong offered = blk.Driver.Virtio.ReadDeviceFeatures();
        TestContext.Current.TestOutputHelper?.WriteLine($"device features 0x{offered:x16}");
        (offered & VersionOne).ShouldNotBe(0UL);
        (offered & FeatureBlkSize).ShouldNotBe(0UL);
        (offered & FeatureSegMax).ShouldNotBe(0UL);
        blk.Driver.Virtio.WriteDriverFeatures(VersionOne | FeatureBlkSize | FeatureSegMax);
        blk.Driver.Virtio.SetStatus(Acknowledge | Driver | FeaturesOk);
        (r.Read(Status) & FeaturesOk).ShouldBe(FeaturesOk, "the device accepted the features");

        blk.Driver.Capacity.ShouldBe(CapacitySectors, "the 1 MiB image in 512-byte sectors");
        blk.Driver.Virtio.ReadConfig32(BlkSizeOffset).ShouldBe((uint)SectorSize);
        blk.Driver.Virtio.ReadConfig32(SegMaxOffset).ShouldBeGreaterThanOrEqualTo(2u * MaxDataPages, "a chain of 1 KiB segments fits");
        blk.Driver.Virtio.SetStatus(0);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_WrittenBlocks_ReadBackTheSame(Mode mode)
    {
        using var blk = new Blk(mode);
        blk.Driver.Start();
        byte[] pattern = Patterns.Make(PageSize, seed: 0x3c);

        Completion written = blk.Driver.Write(8, pattern);
        written.ShouldBe(new Completion(StatusOk, Head: 0, UsedLength: 1, Descriptors: 3, IrqCount: 1), "OUT: the device writes only the status byte");

        blk.Driver.DataBuffer(PageSize).Fill(0);
        Completion read = blk.Driver.Read(8, PageSize);
        read.ShouldBe(new Completion(StatusOk, 0, PageSize + 1, 3, 1), "IN: the data and the status byte");
        blk.Driver.DataBuffer(PageSize).ToArray().ShouldBe(pattern);

        // A sector around them is untouched by the write.
        blk.Driver.Read(7, SectorSize).Status.ShouldBe(StatusOk);
        blk.Driver.DataBuffer(SectorSize).ToArray().ShouldNotBe(pattern[..SectorSize]);
        blk.Driver.Interrupts.ShouldBe(3);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_MultiDescriptorRequests_ScatterAndGatherAcrossPages(Mode mode)
    {
        using var blk = new Blk(mode);
        blk.Driver.Start();
        const int Length = PageSize * MaxDataPages;
        byte[] pattern = Patterns.Make(Length, seed: 0x51);

        // 32 KiB in 1 KiB descriptors over 8 pages that are not physically contiguous: 34 descriptors.
        Completion written = blk.Driver.Write(64, pattern, segment: 1024);
        written.Descriptors.ShouldBe(2 + (Length / 1024));
        written.Status.ShouldBe(StatusOk);

        blk.Driver.DataBuffer(Length).Fill(0xee);
        Completion pages = blk.Driver.Read(64, Length);
        pages.ShouldBe(new Completion(StatusOk, 0, Length + 1, 2 + MaxDataPages, 1));
        blk.Driver.DataBuffer(Length).ToArray().ShouldBe(pattern);

        // Half of it again, one sector per descriptor: 34 descriptors, at an offset into the written range.
        blk.Driver.DataBuffer(Length).Fill(0xee);
        Completion sectors = blk.Driver.Read(64 + 8, Length / 2, segment: SectorSize);
        sectors.ShouldBe(new Completion(StatusOk, 0, (Length / 2) + 1, 2 + (Length / 2 / SectorSize), 1));
        blk.Driver.DataBuffer(Length / 2).ToArray().ShouldBe(pattern[(8 * SectorSize)..((8 * SectorSize) + (Length / 2))]);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_RequestsBeyondCapacity_CompleteWithIoError_AndTouchNothing(Mode mode)
    {
        using var blk = new Blk(mode);
        blk.Driver.Start();
        ulong capacity = blk.Driver.Capacity;
        capacity.ShouldBe(CapacitySectors);

        // The last sector is the disk's.
        byte[] last = Patterns.Make(SectorSize, seed: 0x77);
        blk.Driver.Write(capacity - 1, last).Status.ShouldBe(StatusOk);
        blk.Driver.Read(capacity - 1, SectorSize).Status.ShouldBe(StatusOk);
        blk.Driver.DataBuffer(SectorSize).ToArray().ShouldBe(last);

        // Past it: the first sector beyond, a request straddling the end, and a write beyond.
        blk.Driver.DataBuffer(2 * SectorSize).Fill(0x5a);
        Completion beyond = blk.Driver.Read(capacity, SectorSize);
        TestContext.Current.TestOutputHelper?.WriteLine($"read beyond capacity: {beyond}");
        beyond.Status.ShouldBe(StatusIoError);
        beyond.UsedLength.ShouldBe((uint)SectorSize + 1, "the used length counts every device-writable byte, whatever the status");
        blk.Driver.DataBuffer(SectorSize).ToArray().ShouldAllBe(b => b == 0x5a, "the device wrote no data");
        blk.Driver.Read(capacity - 1, 2 * SectorSize).Status.ShouldBe(StatusIoError, "straddling the end");
        blk.Driver.DataBuffer(2 * SectorSize).ToArray().ShouldAllBe(b => b == 0x5a);
        blk.Driver.Write(capacity, last).Status.ShouldBe(StatusIoError);
        blk.Driver.Read(ulong.MaxValue / SectorSize, SectorSize).Status.ShouldBe(StatusIoError, "a sector far beyond");
        blk.Driver.Read(0, 100).Status.ShouldBe(StatusIoError, "not whole sectors");

        // The device is still fine: the last sector was not overwritten by the refused write.
        blk.Driver.Read(capacity - 1, SectorSize).Status.ShouldBe(StatusOk);
        blk.Driver.DataBuffer(SectorSize).ToArray().ShouldBe(last);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_FlushCompletes_AndAnUnknownRequestTypeIsUnsupported(Mode mode)
    {
        using var blk = new Blk(mode);
        blk.Driver.Start(VersionOne | FeatureFlush);
        blk.Driver.Request(TypeFlush, 0, 0).ShouldBe(new Completion(StatusOk, 0, 1, 2, 1));
        blk.Driver.Request(0x100, 0, SectorSize).Status.ShouldBe(StatusUnsupported);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_ManyRequests_OneAutomaskedInterruptEach_UnmaskedByTheUnmaskEventFd(Mode mode)
    {
        using var blk = new Blk(mode);
        blk.Driver.Start();
        blk.Driver.Virtio.Irq.UnmaskMode.ShouldBe(VfioPlatformUnmaskMode.EventFd);
        ManyRequests(blk.Driver, 48);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_ManyRequests_OneAutomaskedInterruptEach_UnmaskedByACallersResampleFd(Mode mode)
    {
        using var blk = new Blk(mode);
        using var resample = new InterruptEvent();
        blk.Driver.Start(resample: resample);
        ManyRequests(blk.Driver, 48);
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Blk_Reset_ForgetsTheQueue_AndTheReinitialisedDeviceServesRequests(Mode mode)
    {
        using var blk = new Blk(mode);
        VfioMmioRegion r = blk.Driver.Virtio.Registers;
        blk.Driver.Start();
        byte[] first = Patterns.Make(2 * SectorSize, seed: 0x19);
        blk.Driver.Write(200, first).Status.ShouldBe(StatusOk);

        blk.Driver.Virtio.SetStatus(0);
        r.Read(Status).ShouldBe(0u);
        r.Write(QueueSel, 0);
        r.Read(QueueReady).ShouldBe(0u, "the reset forgot the queue");
        r.Read(InterruptStatus).ShouldBe(0u);

        blk.Driver.Start();   // a fresh queue: the rings start again at index 0
        (r.Read(Status) & DriverOk).ShouldBe(DriverOk);
        blk.Driver.Read(200, first.Length).ShouldBe(new Completion(StatusOk, 0, (uint)first.Length + 1, 3, 1));
        blk.Driver.DataBuffer(first.Length).ToArray().ShouldBe(first, "the disk kept the blocks across the reset");
        byte[] second = Patterns.Make(SectorSize, seed: 0x2a);
        blk.Driver.Write(201, second).Status.ShouldBe(StatusOk);
        blk.Driver.Read(200, first.Length).Status.ShouldBe(StatusOk);
        blk.Driver.DataBuffer(first.Length).ToArray().ShouldBe([.. first[..SectorSize], .. second]);
        blk.Driver.Virtio.UsedIndex.ShouldBe((ushort)3);
        blk.Driver.Interrupts.ShouldBe(4);
        blk.Driver.Virtio.SetStatus(0);
    }

    /// <summary><paramref name="count"/> requests, writes and read-backs of one sector each at changing sectors: each
    /// completion is one signal of the automasked line (the eventfd counts 1), and the line is quiet afterwards.</summary>
    private static void ManyRequests(VirtioBlkDriver driver, int count)
    {
        for (int i = 0; i < count; i++)
        {
            ulong sector = (ulong)(i * 13 % (int)CapacitySectors);
            if (i % 2 == 0)
            {
                driver.Write(sector, Patterns.Make(SectorSize, seed: i)).ShouldBe(new Completion(StatusOk, 0, 1, 3, 1), $"request {i}");
            }
            else
            {
                driver.Read((ulong)((i - 1) * 13 % (int)CapacitySectors), SectorSize).ShouldBe(new Completion(StatusOk, 0, SectorSize + 1, 3, 1), $"request {i}");
                driver.DataBuffer(SectorSize).ToArray().ShouldBe(Patterns.Make(SectorSize, seed: i - 1), $"request {i}");
            }
        }
        driver.Interrupts.ShouldBe(count, "one interrupt per request");
        driver.Virtio.UsedIndex.ShouldBe((ushort)count);
        driver.Virtio.Registers.Read(InterruptStatus).ShouldBe(0u);
        driver.Virtio.Irq.TryWait(TimeSpan.FromMilliseconds(50), out _).ShouldBeFalse("no interrupt without a request");
    }

    /// <summary>The block device attached in a rig, with its driver; its region touched at once (see DeviceTests: 6.12
    /// iounmap()s every region on close, and an untouched one warns).</summary>
    private sealed class Blk : IDisposable
    {
        private readonly Rig _rig;

        internal Blk(Mode mode)
        {
            _rig = Rig.Create(mode);
            Driver = new VirtioBlkDriver(_rig.Attach(Target.Blk).Device, _rig.Kernel);
            Driver.Virtio.Registers.Read(MagicValue);
        }

        internal VirtioBlkDriver Driver { get; }

        public void Dispose()
        {
            Driver.Dispose();
            _rig.Dispose();
        }
    }
}
