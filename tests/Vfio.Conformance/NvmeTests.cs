// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Samples.Nvme;

namespace Vfio.Conformance;

/// <summary>
/// samples/Nvme's user-space driver on the NVMe controller at 00:03.0: QEMU's nvme on the real kernel (a 64 MiB
/// scratch image, serial "vfiotestbed"), the simulator's NvmeDevice otherwise. Controller enable and disable, the
/// admin queue, Identify, one I/O queue pair on an MSI-X vector with many commands in flight, writes read back through PRP1, PRP2 and a PRP list,
/// the controller's error statuses as typed errors, and completion waits that end (timeout, cancellation) without a
/// hang. It needs an IOMMU: its queues and buffers are IOVAs.
/// </summary>
public sealed class NvmeTests
{
    private const string Serial = "vfiotestbed";
    private const ulong NamespaceBytes = 64UL << 20;

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public async Task Driver_IdentifiesTheControllerAndNamespace(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        await using NvmeController nvme = NvmeController.Open(rig.Attach(Target.Nvme, space));

        nvme.Version.ShouldBeGreaterThanOrEqualTo(0x0001_0200u, "QEMU's nvme is NVMe 1.2 or later");
        nvme.ReadyTimeout.ShouldBeGreaterThan(TimeSpan.Zero);
        NvmeControllerInfo info = await nvme.IdentifyControllerAsync(Cancel);
        info.VendorId.ShouldBe(nvme.Pci.VendorId);
        info.Serial.ShouldBe(Serial);
        info.Model.ShouldBe("QEMU NVMe Ctrl");
        info.NamespaceCount.ShouldBeGreaterThanOrEqualTo(1u);
        info.MaxTransferPages.ShouldBe(128, "QEMU's default MDTS is 7");
        NvmeNamespaceInfo ns = await nvme.IdentifyNamespaceAsync(1, Cancel);
        (ns.Id, ns.BlockSize, ns.Bytes).ShouldBe((1u, 512, NamespaceBytes));
        await nvme.ShutdownAsync(Cancel);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public async Task Driver_WritesAndReadsBack_OnePageTwoPagesAndAPrpList(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        await using NvmeController nvme = NvmeController.Open(rig.Attach(Target.Nvme, space));
        await nvme.IdentifyControllerAsync(Cancel);
        NvmeNamespaceInfo ns = await nvme.IdentifyNamespaceAsync(1, Cancel);
        await nvme.CreateIoQueuesAsync(Cancel);
        nvme.HasIoQueues.ShouldBeTrue();

        using DmaBuffer source = DmaBuffer.Allocate(space, (128 * 1024) + 4096);
        using DmaBuffer target = DmaBuffer.Allocate(space, (128 * 1024) + 4096);
        // (blocks, buffer offset, LBA): one block; 8 KiB (PRP1 and PRP2 a page); 8 KiB from mid-page (PRP1 with an
        // offset, then a list of two); 16 KiB (a list); 128 KiB, the transfer limit (a list of 31 entries); the last
        // blocks of the namespace.
        (int Blocks, ulong Offset, ulong Lba)[] cases = [(1, 0, 0), (16, 0, 50), (16, 2048, 100), (32, 0, 1000), (256, 0, 4096), (8, 0, ns.Blocks - 8)];
        int seed = 1;
        foreach ((int blocks, ulong offset, ulong lba) in cases)
        {
            int length = blocks * ns.BlockSize;
            byte[] pattern = Patterns.Make(length, seed++);
            pattern.CopyTo(source.GetSpan(offset, length));
            target.Span.Fill(0xee);
            await nvme.WriteAsync(ns, lba, blocks, source, offset, Cancel);
            await nvme.ReadAsync(ns, lba, blocks, target, offset, Cancel);
            target.GetSpan(offset, length).SequenceEqual(pattern).ShouldBeTrue($"{blocks} block(s) at LBA {lba} from offset {offset}");
            target.GetSpan(offset + (ulong)length, 4).ToArray().ShouldAllBe(b => b == 0xee, "nothing after the transfer");
        }
        await nvme.FlushAsync(ns, Cancel);
        // The first write is still there after the others.
        await nvme.ReadAsync(ns, 0, 1, target, 0, Cancel);
        target.GetSpan(0, 512).SequenceEqual(Patterns.Make(512, 1)).ShouldBeTrue("LBA 0 kept its data");
        await nvme.ShutdownAsync(Cancel);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public async Task ManyCommandsInFlight_CompleteWithTheirOwnData_AndMoreThanTheDepthWait(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        (NvmeController opened, NvmeNamespaceInfo ns) = await OpenWithIoQueuesAsync(rig, space);
        await using NvmeController nvme = opened;
        // 100 commands of 16 KiB (each with its own PRP list) at once: 63 in flight, the rest wait for a slot.
        const int Commands = 100, Blocks = 32, Bytes = Blocks * 512;
        NvmeController.IoQueueDepth.ShouldBe(63);
        using DmaBuffer source = DmaBuffer.Allocate(space, Commands * Bytes);
        using DmaBuffer target = DmaBuffer.Allocate(space, Commands * Bytes);
        for (int i = 0; i < Commands; i++)
        {
            Patterns.Make(Bytes, 100 + i).CopyTo(source.GetSpan((ulong)(i * Bytes), Bytes));
        }
        target.Span.Fill(0xee);

        await Task.WhenAll(Enumerable.Range(0, Commands).Select(i => nvme.WriteAsync(ns, (ulong)(i * Blocks), Blocks, source, (ulong)(i * Bytes), Cancel)));
        // Reads in reverse order of LBA, each into its own place.
        await Task.WhenAll(Enumerable.Range(0, Commands).Select(i => nvme.ReadAsync(ns, (ulong)((Commands - 1 - i) * Blocks), Blocks, target, (ulong)(i * Bytes), Cancel)));
        for (int i = 0; i < Commands; i++)
        {
            target.GetSpan((ulong)(i * Bytes), Bytes).SequenceEqual(Patterns.Make(Bytes, 100 + Commands - 1 - i)).ShouldBeTrue($"read {i} (LBA {(Commands - 1 - i) * Blocks})");
        }

        // An error among many in flight fails only its own command.
        Task[] mixed = [.. Enumerable.Range(0, 40).Select(i => i == 20
            ? nvme.ReadAsync(ns, ns.Blocks, 1, target, 0, Cancel)
            : nvme.ReadAsync(ns, (ulong)i, 1, target, (ulong)(i * 512), Cancel))];
        await Should.ThrowAsync<NvmeCommandException>(() => Task.WhenAll(mixed));
        mixed.Count(t => t.IsFaulted).ShouldBe(1);
        await nvme.ShutdownAsync(Cancel);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public async Task ErrorStatuses_AreTypedNamingTheCommandAndTheStatus(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        (NvmeController opened, NvmeNamespaceInfo ns) = await OpenWithIoQueuesAsync(rig, space);
        await using NvmeController nvme = opened;
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 4096);

        NvmeCommandException e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ReadAsync(ns, ns.Blocks, 1, buffer, 0, Cancel));
        (e.StatusCodeType, e.StatusCode, e.DoNotRetry, e.QueueId).ShouldBe((0, (byte)0x80, true, 1));
        e.Message.ShouldContain($"NVMe Read (opcode 0x02, I/O queue 1) on {Target.Nvme} failed: LBA Out of Range");

        e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteIoAsync(new NvmeCommand("Read", 0x02) { NamespaceId = 0, Prp1 = buffer.Iova }, Cancel));
        (e.StatusCodeType, e.StatusCode).ShouldBe((0, (byte)0x0b), e.Message);
        e.Message.ShouldContain("Invalid Namespace or Format");

        e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteIoAsync(new NvmeCommand("Vendor 0x7f", 0x7f) { NamespaceId = 1 }, Cancel));
        (e.StatusCodeType, e.StatusCode).ShouldBe((0, (byte)0x01), e.Message);

        e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteAdminAsync(new NvmeCommand("Identify CNS 0xff", 0x06) { Prp1 = buffer.Iova, Cdw10 = 0xff }, Cancel));
        (e.StatusCodeType, e.StatusCode, e.QueueId).ShouldBe((0, (byte)0x02, 0), e.Message);
        e.Message.ShouldContain("(opcode 0x06, admin queue)");

        e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteAdminAsync(new NvmeCommand("Create I/O Completion Queue", 0x05) { Prp1 = buffer.Iova, Cdw10 = (1u << 16) | 1, Cdw11 = 1 }, Cancel));
        (e.StatusCodeType, e.StatusCode).ShouldBe((1, (byte)0x01), "queue 1 exists: " + e.Message);
        e.Message.ShouldContain("Invalid Queue Identifier");

        e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteAdminAsync(new NvmeCommand("Delete I/O Completion Queue", 0x04) { Cdw10 = 1 }, Cancel));
        (e.StatusCodeType, e.StatusCode).ShouldBe((1, (byte)0x0c), "its submission queue still exists: " + e.Message);
        e.Message.ShouldContain("Invalid Queue Deletion");

        e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteAdminAsync(new NvmeCommand("Create I/O Submission Queue", 0x01) { Prp1 = buffer.Iova, Cdw10 = (1u << 16) | 2, Cdw11 = (9u << 16) | 1 }, Cancel));
        (e.StatusCodeType, e.StatusCode).ShouldBe((1, (byte)0x00), "completion queue 9 does not exist: " + e.Message);

        // Every error left the queues working.
        await nvme.WriteAsync(ns, 7, 1, buffer, 0, Cancel);
        await nvme.ShutdownAsync(Cancel);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public async Task CompletionWaits_EndByTimeoutOrCancellation_AndTheQueueStaysUsable(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        await using NvmeController nvme = NvmeController.Open(rig.Attach(Target.Nvme, space), commandTimeout: TimeSpan.FromMilliseconds(500));

        // An Asynchronous Event Request completes only when the controller has an event: none comes.
        var aer = new NvmeCommand("Asynchronous Event Request", 0x0c);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        NvmeTimeoutException timeout = await Should.ThrowAsync<NvmeTimeoutException>(() => nvme.ExecuteAdminAsync(aer, Cancel));
        clock.Elapsed.ShouldBeLessThan(Rig.Timeout);
        timeout.Message.ShouldContain($"NVMe Asynchronous Event Request on {Target.Nvme} did not complete within 0.5 s");

        using (var cancel = CancellationTokenSource.CreateLinkedTokenSource(Cancel))
        {
            cancel.CancelAfter(TimeSpan.FromMilliseconds(50));
            await Should.ThrowAsync<OperationCanceledException>(() => nvme.ExecuteAdminAsync(aer, cancel.Token));
        }

        NvmeControllerInfo info = await nvme.IdentifyControllerAsync(Cancel);   // the admin queue still works
        info.Serial.ShouldBe(Serial);
        await nvme.ShutdownAsync(Cancel);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public async Task Controller_ReEnabledAfterAReset_KeepsTheNamespaceData(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        using DmaBuffer buffer = DmaBuffer.Allocate(space, 4096);
        byte[] pattern = Patterns.Make(4096, 42);
        AttachedDevice attached = rig.Attach(Target.Nvme, space);
        NvmeNamespaceInfo ns;
        using (NvmeController first = NvmeController.Open(attached))
        {
            ns = await first.IdentifyNamespaceAsync(1, Cancel);
            await first.CreateIoQueuesAsync(Cancel);
            pattern.CopyTo(buffer.Span);
            await first.WriteAsync(ns, 2048, 8, buffer, 0, Cancel);
        }   // disposed without deleting the queues: CC.EN=0 resets the controller

        await using NvmeController second = NvmeController.Open(attached);
        (await second.IdentifyNamespaceAsync(1, Cancel)).ShouldBe(ns);
        await second.CreateIoQueuesAsync(Cancel);   // queue 1 again: the reset deleted the old one
        buffer.Span.Clear();
        await second.ReadAsync(ns, 2048, 8, buffer, 0, Cancel);
        buffer.Span.SequenceEqual(pattern).ShouldBeTrue();
        await second.ShutdownAsync(Cancel);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void Open_DeviceThatIsNotNvme_IsTypedAndLeavesItUsable(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        AttachedDevice edu = rig.Attach(Target.Edu, space);

        NvmeControllerException e = Should.Throw<NvmeControllerException>(() => NvmeController.Open(edu));
        e.Message.ShouldContain($"NVMe controller {Target.Edu}: class code 0x00ff00 is not an NVMe controller's");
        edu.Device.ReadRegion16(VfioPciRegion.Config, 0).ShouldBe((ushort)0x1234);
    }

    /// <summary>The controller on <see cref="Target.Nvme"/> with namespace 1 identified and the I/O queue pair created.</summary>
    private static async Task<(NvmeController Nvme, NvmeNamespaceInfo Ns)> OpenWithIoQueuesAsync(Rig rig, DmaSpace space)
    {
        NvmeController nvme = NvmeController.Open(rig.Attach(Target.Nvme, space));
        try
        {
            NvmeNamespaceInfo ns = await nvme.IdentifyNamespaceAsync(1, Cancel);
            await nvme.CreateIoQueuesAsync(Cancel);
            return (nvme, ns);
        }
        catch
        {
            nvme.Dispose();
            throw;
        }
    }

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;
}
