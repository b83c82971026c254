// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Shouldly;
using Vfio.Core;
using Vfio.Devices.Pci;

namespace Vfio.Conformance;

/// <summary>
/// Makes the device at 00:03.0 send an MSI-X message on vector 0 by itself. QEMU's nvme (class 0x010802, the real
/// kernel's) does it when it completes an admin command: this sets up the admin queues in a DMA buffer, enables the
/// controller and submits Identify Controller, whose completion raises the admin completion queue's vector 0; the
/// simulator's NvmeDevice at that address does the same. Any other device there is taken for the simulator's MSI-X
/// test device, which sends vector n when n is written to its register 0x08.
/// </summary>
internal sealed class MsixMessageSource : IDisposable
{
    private const ulong Cc = 0x14, Csts = 0x1c, Aqa = 0x24, Asq = 0x28, Acq = 0x30, Doorbells = 0x1000;
    private const int Page = DmaBufferPages.PageSize;
    private const ushort CommandIdBase = 0x4000;
    private readonly VfioPciDevice _pci;
    private readonly DmaBuffer? _buffer;
    private readonly ulong _completionDoorbell;
    private int _submitted;

    internal MsixMessageSource(VfioPciDevice pci, DmaSpace space)
    {
        _pci = pci;
        pci.SetMemorySpace(true);
        pci.SetBusMaster(true);
        if (pci.ClassCode != 0x010802)
        {
            return;
        }
        IsNvme = true;
        ulong cap = Read64(0x00);
        _completionDoorbell = Doorbells + (4UL << (int)((cap >> 32) & 0xf));
        TimeSpan ready = TimeSpan.FromMilliseconds(500 * Math.Max(1UL, (cap >> 24) & 0xff));
        Write32(Cc, 0);
        WaitReady(false, ready);
        // Page 0 unused (a fresh space may put the buffer at IOVA 0, and an ASQ of 0 fails the enable, as QEMU checks);
        // then the admin submission queue, completion queue, Identify data.
        _buffer = DmaBufferPages.Allocate(space, 4);
        Write32(Aqa, (1u << 16) | 1u);                // two entries each (zero-based sizes)
        Write64(Asq, _buffer.Iova + Page);
        Write64(Acq, _buffer.Iova + (2 * Page));
        Write32(Cc, 1u | (6u << 16) | (4u << 20));    // enable; 64-byte submission and 16-byte completion entries
        WaitReady(true, ready);
    }

    internal bool IsNvme { get; }

    /// <summary>Makes the device send vector 0 (QEMU's nvme: completes one Identify Controller).</summary>
    internal void SendVector0()
    {
        if (!IsNvme)
        {
            _pci.Device.WriteRegion32(0, 0x08, 0);
            return;
        }
        int slot = _submitted % 2;
        Span<byte> sqe = _buffer!.GetSpan((ulong)(Page + (slot * 64)), 64);
        sqe.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(sqe, 0x06u | ((uint)(CommandIdBase + _submitted) << 16)); // Identify
        BinaryPrimitives.WriteUInt64LittleEndian(sqe[24..], _buffer.Iova + (3 * Page));                     // PRP1
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[40..], 1);                                              // CNS 1: controller
        _submitted++;
        Write32(Doorbells, (uint)(_submitted % 2));
    }

    /// <summary>After vector 0 arrived: checks the completion (command id, phase, success) and releases its entry.</summary>
    internal void Complete()
    {
        if (!IsNvme)
        {
            return;
        }
        int index = _submitted - 1;
        uint dw3 = BinaryPrimitives.ReadUInt32LittleEndian(_buffer!.GetSpan((ulong)((2 * Page) + ((index % 2) * 16) + 12), 4));
        (dw3 & 0xffff).ShouldBe((uint)(CommandIdBase + index), "the completion is the command's");
        ((dw3 >> 16) & 1).ShouldBe((uint)((index / 2) % 2 == 0 ? 1 : 0), "the phase tag of this pass of the queue");
        (dw3 >> 17).ShouldBe(0u, "Identify succeeded");
        BinaryPrimitives.ReadUInt16LittleEndian(_buffer.GetSpan(3 * Page, 2)).ShouldBe(_pci.VendorId, "Identify Controller starts with the PCI vendor ID");
        Write32(_completionDoorbell, (uint)(_submitted % 2));
    }

    public void Dispose()
    {
        if (IsNvme)
        {
            Write32(Cc, 0);
            WaitReady(false, Rig.Timeout);
        }
        _buffer?.Dispose();
    }

    private void WaitReady(bool ready, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (((_pci.Device.ReadRegion32(0, Csts) & 1) != 0) != ready)
        {
            clock.Elapsed.ShouldBeLessThan(timeout, $"CSTS.RDY did not become {(ready ? 1 : 0)}");
            Thread.Sleep(1);
        }
    }

    private ulong Read64(ulong offset) => _pci.Device.ReadRegion32(0, offset) | ((ulong)_pci.Device.ReadRegion32(0, offset + 4) << 32);

    private void Write32(ulong offset, uint value) => _pci.Device.WriteRegion32(0, offset, value);

    private void Write64(ulong offset, ulong value)
    {
        Write32(offset, (uint)value);
        Write32(offset + 4, (uint)(value >> 32));
    }
}
