// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Shouldly;
using Vfio.Backends.IommuFd;
using Vfio.Core;
using Vfio.Samples.Nvme;

namespace Vfio.Simulator.Tests;

/// <summary>
/// The NVMe controller model (NvmeDevice) where the real kernel cannot show it: DMA the IOMMU blocks, PRP lists that
/// chain across list pages, what the namespace holds, a raw admin queue of two entries, and reset. Driven by
/// samples/Nvme's driver over the iommufd backend; the conformance suite runs the same driver on QEMU's nvme.
/// </summary>
public sealed class NvmeDeviceTests
{
    private const string Address = "0000:00:03.0";

    [Fact]
    public async Task Write_FromUnmappedMemory_IsADataTransferError_AndTheNamespaceIsUntouched()
    {
        using var machine = new Machine();
        await using NvmeController nvme = await machine.OpenAsync();
        NvmeNamespaceInfo ns = await nvme.IdentifyNamespaceAsync(1, Cancel);
        ulong unmapped = 0x7000_0000;   // no mapping of the space is there

        NvmeCommandException e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteIoAsync(
            new NvmeCommand("Write", 0x01) { NamespaceId = 1, Prp1 = unmapped, Cdw10 = 10, Cdw12 = 0 }, Cancel));
        (e.StatusCodeType, e.StatusCode, e.DoNotRetry).ShouldBe((0, (byte)0x04, true));
        e.Message.ShouldContain("Data Transfer Error");
        byte[] disk = new byte[512];
        machine.Model.ReadNamespace(10 * 512, disk);
        disk.ShouldAllBe(b => b == 0);
        machine.Kernel.DmaFaults.ShouldContain(f => f.Iova == unmapped && !f.Write);

        e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteIoAsync(
            new NvmeCommand("Read", 0x02) { NamespaceId = 1, Prp1 = unmapped }, Cancel));
        e.StatusCode.ShouldBe((byte)0x04);
        await nvme.FlushAsync(ns, Cancel);   // the queue still works
    }

    [Fact]
    public async Task PrpList_WithAnOffset_ChainsToTheNextListPage()
    {
        using var machine = new Machine();
        await using NvmeController nvme = await machine.OpenAsync();
        using DmaBuffer data = DmaBuffer.Allocate(machine.Space, 4 * 4096);
        using DmaBuffer lists = DmaBuffer.Allocate(machine.Space, 2 * 4096);
        Random.Shared.NextBytes(data.Span);
        // 4 pages: PRP1 the first; the list starts 16 bytes before the end of its page, so it holds one data page and
        // then the pointer to the next list page, which holds the last two.
        ulong listStart = lists.Iova + 4096 - 16;
        BinaryPrimitives.WriteUInt64LittleEndian(lists.GetSpan(4096 - 16, 8), data.Iova + 4096);
        BinaryPrimitives.WriteUInt64LittleEndian(lists.GetSpan(4096 - 8, 8), lists.Iova + 4096);
        BinaryPrimitives.WriteUInt64LittleEndian(lists.GetSpan(4096, 8), data.Iova + (2 * 4096));
        BinaryPrimitives.WriteUInt64LittleEndian(lists.GetSpan(4096 + 8, 8), data.Iova + (3 * 4096));

        await nvme.ExecuteIoAsync(new NvmeCommand("Write", 0x01) { NamespaceId = 1, Prp1 = data.Iova, Prp2 = listStart, Cdw10 = 64, Cdw12 = 31 }, Cancel);

        byte[] disk = new byte[4 * 4096];
        machine.Model.ReadNamespace(64 * 512, disk);
        disk.ShouldBe(data.Span.ToArray());
    }

    [Fact]
    public async Task PrpEntry_NotPageAligned_IsInvalidPrpOffset()
    {
        using var machine = new Machine();
        await using NvmeController nvme = await machine.OpenAsync();
        using DmaBuffer data = DmaBuffer.Allocate(machine.Space, 2 * 4096);

        NvmeCommandException e = await Should.ThrowAsync<NvmeCommandException>(() => nvme.ExecuteIoAsync(
            new NvmeCommand("Read", 0x02) { NamespaceId = 1, Prp1 = data.Iova, Prp2 = data.Iova + 4096 + 512, Cdw12 = 15 }, Cancel));
        (e.StatusCodeType, e.StatusCode).ShouldBe((0, (byte)0x13));
        e.Message.ShouldContain("PRP Offset Invalid");
    }

    [Fact]
    public async Task Reset_DeletesTheQueues_KeepsTheNamespace_AndFunctionResetClearsTheAdminRegisters()
    {
        using var machine = new Machine();
        NvmeController nvme = await machine.OpenAsync();
        NvmeNamespaceInfo ns = await nvme.IdentifyNamespaceAsync(1, Cancel);
        using DmaBuffer data = DmaBuffer.Allocate(machine.Space, 4096);
        data.Span.Fill(0x5a);
        await nvme.WriteAsync(ns, 3, 8, data, 0, Cancel);
        nvme.Dispose();   // CC.EN=0 without deleting the queues

        byte[] disk = new byte[4096];
        machine.Model.ReadNamespace(3 * 512, disk);
        disk.ShouldAllBe(b => b == 0x5a);
        VfioDevice device = machine.Attached.Device;
        device.ReadRegion32(VfioPciRegion.Bar0, 0x1c).ShouldBe(0u, "CSTS after CC.EN=0");
        device.ReadRegion64(VfioPciRegion.Bar0, 0x28).ShouldNotBe(0UL, "ASQ survives a controller reset");
        device.Reset();
        device.ReadRegion64(VfioPciRegion.Bar0, 0x28).ShouldBe(0UL, "a function reset clears ASQ");
        device.ReadRegion32(VfioPciRegion.Bar0, 0x24).ShouldBe(0u, "and AQA");
        machine.Model.GuestErrors.ShouldBeEmpty();
    }

    [Fact]
    public async Task BadEnable_SetsCfs_AndDoorbellsOfAStoppedControllerAreLogged()
    {
        using var machine = new Machine();
        VfioDevice device = machine.Attached.Device;
        ushort command = device.ReadRegion16(VfioPciRegion.Config, 0x04);
        device.WriteRegion16(VfioPciRegion.Config, 0x04, (ushort)(command | 0x6));
        device.WriteRegion32(VfioPciRegion.Bar0, 0x1000, 1);   // SQ 0 tail while disabled
        device.WriteRegion32(VfioPciRegion.Bar0, 0x14, 1 | (6u << 16) | (4u << 20));   // EN without ASQ/ACQ
        device.ReadRegion32(VfioPciRegion.Bar0, 0x1c).ShouldBe(2u, "CSTS.CFS, not RDY");
        machine.Model.GuestErrors.ShouldBe(["nvme: doorbell write at 0x1000 ignored (controller not ready)", "nvme: controller start failed: ASQ is zero"]);
        await Task.CompletedTask;
    }

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    /// <summary>A simulated machine with only the NVMe controller, attached through iommufd.</summary>
    private sealed class Machine : IDisposable
    {
        private readonly IommuFdBackend _backend;

        internal Machine()
        {
            Model = new NvmeDevice();
            Kernel = new SimulatedKernel(new SimulatedTopology().AddPci(Address, iommuGroup: 3, Model));
            _backend = new IommuFdBackend(Kernel);
            Space = new DmaSpace("nvme");
            Attached = _backend.AttachDevice(VfioDeviceSource.Pci(Address), Space);
        }

        internal NvmeDevice Model { get; }

        internal SimulatedKernel Kernel { get; }

        internal DmaSpace Space { get; }

        internal AttachedDevice Attached { get; }

        internal async Task<NvmeController> OpenAsync()
        {
            NvmeController nvme = NvmeController.Open(Attached);
            await nvme.CreateIoQueuesAsync(Cancel);
            return nvme;
        }

        public void Dispose()
        {
            Space.Dispose();
            _backend.Dispose();
            Kernel.Dispose();
        }
    }
}
