// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>vfio-platform over the virtio-mmio entropy device in no-IOMMU mode (drivers/vfio/platform; the testbed's platform shape: tests/testbed/README.md).</summary>
public sealed class PlatformTests
{
    private const uint Trigger = VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER;
    private const uint Mask = VfioUapi.VFIO_IRQ_SET_ACTION_MASK;
    private const uint Unmask = VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK;
    private const int EINVAL = -(int)Errno.EINVAL;

    private static NoIommuDevice Rng() => NoIommuDevice.Platform(new VirtioRngDevice());

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void GetInfo_PlatformOneRegionOneIrq()
    {
        using var m = Rng();
        var info = new vfio_device_info { argsz = 24, cap_offset = 0xbeef };
        m.Ioctl(VfioUapi.VFIO_DEVICE_GET_INFO, ref info).ShouldBe(0);
        info.flags.ShouldBe(VfioUapi.VFIO_DEVICE_FLAGS_PLATFORM);
        info.num_regions.ShouldBe(1u);
        info.num_irqs.ShouldBe(1u);
        info.cap_offset.ShouldBe(0xbeefu); // never written
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void GetRegionInfo_0x200ReadWriteNotMappable()
    {
        using var m = Rng();
        m.GetRegion(0, out vfio_region_info info).ShouldBe(0);
        info.size.ShouldBe(0x200ul);
        info.offset.ShouldBe(0ul);
        info.flags.ShouldBe(VfioUapi.VFIO_REGION_INFO_FLAG_READ | VfioUapi.VFIO_REGION_INFO_FLAG_WRITE);
        m.GetRegion(1, out _).ShouldBe(EINVAL);
        var small = new vfio_region_info { argsz = 31 };
        m.Ioctl(VfioUapi.VFIO_DEVICE_GET_REGION_INFO, ref small).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void GetIrqInfo_LevelLine_EventfdMaskableAutomasked()
    {
        using var m = Rng();
        m.GetIrq(0, out vfio_irq_info info).ShouldBe(0);
        info.count.ShouldBe(1u);
        info.flags.ShouldBe(VfioUapi.VFIO_IRQ_INFO_EVENTFD | VfioUapi.VFIO_IRQ_INFO_MASKABLE | VfioUapi.VFIO_IRQ_INFO_AUTOMASKED);
        m.GetIrq(1, out _).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void Registers_MagicVersionDeviceId()
    {
        using var m = Rng();
        m.Read32(0, 0x000).ShouldBe(VirtioRngDevice.MagicValue);
        m.Read32(0, 0x004).ShouldBe(2u);
        m.Read32(0, 0x008).ShouldBe(VirtioRngDevice.EntropyDeviceId);
        m.Read32(0, 0x00c).ShouldBe(0x554d4551u);
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void ReadWrite_BoundsAndTruncation()
    {
        using var m = Rng();
        byte[] b = new byte[16];
        m.Kernel.PRead(m.Device, b, 0x200).ShouldBe(EINVAL);
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(1)).ShouldBe(EINVAL);
        m.Kernel.PRead(m.Device, b, 0x1f8).ShouldBe(8);
        m.Kernel.PRead(m.Device, b.AsSpan(0, 8), 0).ShouldBe(8);
        BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(4)).ShouldBe(2u);
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void Mmap_SubPageRegion_Einval()
    {
        using var m = Rng();
        m.Kernel.Map(m.Device, 0, 4096, MemoryProtection.ReadWrite, out _).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_reset")]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void Reset_NoResetHandler_Einval()
    {
        using var m = Rng();
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_RESET, 0).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_ioctl_device_feature")]
    public void Feature_PlatformHasNoFeatureOp()
    {
        using var m = Rng();
        byte[] buffer = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(4), VfioUapi.VFIO_DEVICE_FEATURE_PROBE | VfioUapi.VFIO_DEVICE_FEATURE_SET | 3);
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_FEATURE, buffer.AsSpan()).ShouldBe(EINVAL);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(4), VfioUapi.VFIO_DEVICE_FEATURE_PROBE | VfioUapi.VFIO_DEVICE_FEATURE_GET | 1);
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_FEATURE, buffer.AsSpan()).ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void SetIrqs_Loopback_AutomasksUntilUnmask()
    {
        using var m = Rng();
        using var e = new InterruptEvent();
        m.SetEventFds(0, 0, e).ShouldBe(0);
        m.Action(0, Trigger).ShouldBe(0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
        m.Action(0, Trigger).ShouldBe(0);
        NoIommuDevice.Quiet(e).ShouldBeTrue();
        m.Action(0, Unmask).ShouldBe(0);
        m.Action(0, Trigger).ShouldBe(0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void SetIrqs_MaskUnmaskValidation()
    {
        using var m = Rng();
        m.Action(0, Mask, 0, 0).ShouldBe(EINVAL);
        m.Action(0, Unmask, 0, 0).ShouldBe(EINVAL);
        m.Action(0, Mask).ShouldBe(0);
        m.Action(0, Unmask).ShouldBe(0);
        m.Action(0, Trigger, 0, 0).ShouldBe(0);              // remove trigger (none installed): fine
        m.Action(0, Mask | Unmask).ShouldBe(-(int)Errno.ENOTTY);
        m.Action(1, Trigger).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void SetIrqs_EventfdMinusOne_RemovesTheTrigger()
    {
        using var m = Rng();
        using var e = new InterruptEvent();
        m.SetEventFds(0, 0, e).ShouldBe(0);
        m.SetEventFds(0, 0, [null]).ShouldBe(0);
        m.Action(0, Trigger).ShouldBe(0); // the handler runs but nothing is signalled
        NoIommuDevice.Quiet(e).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void VirtioRng_Request_CompletesThroughDmaAndIrq()
    {
        var rng = new VirtioRngDevice();
        using var m = NoIommuDevice.Platform(rng);
        using var irq = new InterruptEvent();
        m.SetEventFds(0, 0, irq).ShouldBe(0);
        using var ring = new Vring(m);
        ring.Submit(0, 64);
        NoIommuDevice.Fired(irq, 5000).ShouldBeTrue();
        ring.UsedIndex.ShouldBe((ushort)1);
        ring.UsedElement(0).ShouldBe((0u, 64u));
        ring.Buffer(0, 64).ShouldNotBe(new byte[64]);
        m.Read32(0, 0x060).ShouldBe(1u);
        m.Write32(0, 0x064, 1);
        m.Read32(0, 0x060).ShouldBe(0u);
        m.Action(0, Unmask).ShouldBe(0);
        rng.CompletedRequests.ShouldBe(1);

        // A second request after unmask fires again.
        ring.Submit(1, 32);
        NoIommuDevice.Fired(irq, 5000).ShouldBeTrue();
        ring.UsedIndex.ShouldBe((ushort)2);
        ring.UsedElement(1).ShouldBe((1u, 32u));
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void VirtioRng_WithoutUnmask_SecondInterruptHeldUntilUnmask()
    {
        using var m = Rng();
        using var irq = new InterruptEvent();
        m.SetEventFds(0, 0, irq).ShouldBe(0);
        using var ring = new Vring(m);
        ring.Submit(0, 16);
        NoIommuDevice.Fired(irq, 5000).ShouldBeTrue();
        m.Write32(0, 0x064, 1);
        ring.Submit(1, 16);
        NoIommuDevice.WaitFor(() => ring.UsedIndex == 2);
        NoIommuDevice.Quiet(irq).ShouldBeTrue();          // masked until unmask
        m.Action(0, Unmask).ShouldBe(0);                   // the line is still asserted: fires at once
        NoIommuDevice.Fired(irq).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void VirtioRng_UnmaskIrqfd_StillAssertedLineFiresAgain()
    {
        using var m = Rng();
        using var irq = new InterruptEvent();
        using var unmask = new InterruptEvent();
        using var mask = new InterruptEvent();
        m.SetEventFds(0, 0, irq).ShouldBe(0);
        byte[] fd = BitConverter.GetBytes((int)unmask.Handle.DangerousGetHandle());
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Unmask, 0, 1, fd).ShouldBe(0);
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Unmask, 0, 1, fd).ShouldBe(-(int)Errno.EBUSY);
        byte[] maskFd = BitConverter.GetBytes((int)mask.Handle.DangerousGetHandle());
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Mask, 0, 1, maskFd).ShouldBe(0);
        m.SetIrqs(0, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | Mask, 0, 1, BitConverter.GetBytes(-1)).ShouldBe(0);
        using var ring = new Vring(m);
        ring.Submit(0, 16);
        NoIommuDevice.Fired(irq, 5000).ShouldBeTrue();
        unmask.Signal();                                   // not acknowledged: the level fires again
        NoIommuDevice.Fired(irq).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/platform/vfio_platform_common.c vfio_platform_ioctl")]
    public void VirtioRng_StatusZero_ResetsTheDevice()
    {
        using var m = Rng();
        m.Write32(0, 0x070, 0x7);
        m.Read32(0, 0x070).ShouldBe(7u);
        m.Write32(0, 0x070, 0);
        m.Read32(0, 0x070).ShouldBe(0u);
        m.Read32(0, 0x034).ShouldBe((uint)VirtioRngDevice.QueueSizeMax);
    }

    /// <summary>A split virtqueue of 8 entries in locked memory, driven like a virtio-mmio v2 driver does: the device is
    /// given physical addresses (no IOMMU), the driver writes through the process address.</summary>
    [Fact]
    [Spec("virtio 1.2 §4.2.2 (MMIO registers), §5.2.4 (virtio_blk_config), §2.1 (DEVICE_NEEDS_RESET)")]
    public void VirtioBlk_ConfigSpace_AndAChainWithoutARequestHeaderNeedsReset()
    {
        var blk = new VirtioBlkDevice(64 * 1024, serial: "vfio");
        using var m = NoIommuDevice.Platform(blk);
        m.Read32(0, 0x008).ShouldBe(VirtioBlkDevice.BlockDeviceId);
        m.Read32(0, 0x100).ShouldBe(128u);   // capacity in sectors, low half
        m.Read32(0, 0x104).ShouldBe(0u);
        m.Read32(0, 0x10c).ShouldBe(254u);   // seg_max
        m.Read32(0, 0x114).ShouldBe(512u);   // blk_size
        m.Read32(0, 0x118).ShouldBe(0u);     // past the modelled fields
        m.Write32(0, 0x014, 0);
        (m.Read32(0, 0x010) & ((1u << 2) | (1u << 6) | (1u << 9))).ShouldBe((1u << 2) | (1u << 6) | (1u << 9));

        using var ring = new Vring(m);
        ring.Submit(0, 64);   // one device-writable buffer: no header to read
        DateTime end = DateTime.UtcNow.AddSeconds(5);
        while ((m.Read32(0, 0x070) & 0x40) == 0 && DateTime.UtcNow < end)
        {
            Thread.Sleep(1);
        }
        (m.Read32(0, 0x070) & 0x40).ShouldBe(0x40u, "DEVICE_NEEDS_RESET");
        ring.UsedIndex.ShouldBe((ushort)0);
        blk.CompletedRequests.ShouldBe(0);
        m.Write32(0, 0x070, 0);
        m.Read32(0, 0x070).ShouldBe(0u, "a reset clears it");
    }

    [Fact]
    public void VirtioBlk_BadDiskSizeOrSerial_AreTypedErrors()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new VirtioBlkDevice(100)).Message.ShouldContain("multiple of 512 bytes");
        Should.Throw<ArgumentOutOfRangeException>(() => new VirtioBlkDevice(0)).ParamName.ShouldBe("capacityBytes");
        Should.Throw<ArgumentOutOfRangeException>(() => new VirtioBlkDevice(serial: new string('s', 21))).Message.ShouldContain("at most 20 bytes");
        new VirtioBlkDevice(4096).Capacity.ShouldBe(8UL);
    }

    private sealed class Vring : IDisposable
    {
        private const int Size = 8;
        private const ulong Desc = 0, Avail = 256, Used = 512, Data = 4096;
        private readonly NoIommuDevice _m;
        private readonly PhysicalDmaBuffer _memory;
        private ushort _availIdx;

        internal Vring(NoIommuDevice m)
        {
            _m = m;
            _memory = PhysicalDmaBuffer.Allocate(m.Kernel, 8192);
            m.Write32(0, 0x070, 0);
            m.Write32(0, 0x070, 1 | 2);                  // ACKNOWLEDGE | DRIVER
            m.Write32(0, 0x014, 1);
            (m.Read32(0, 0x010) & 1).ShouldBe(1u);        // VIRTIO_F_VERSION_1
            m.Write32(0, 0x024, 1);
            m.Write32(0, 0x020, 1);
            m.Write32(0, 0x070, 1 | 2 | 8);              // FEATURES_OK
            m.Write32(0, 0x030, 0);
            m.Read32(0, 0x034).ShouldBe((uint)VirtioRngDevice.QueueSizeMax);
            m.Write32(0, 0x038, Size);
            SetAddress(0x080, _memory.GetPhysicalAddress(Desc));
            SetAddress(0x090, _memory.GetPhysicalAddress(Avail));
            SetAddress(0x0a0, _memory.GetPhysicalAddress(Used));
            m.Write32(0, 0x044, 1);
            m.Write32(0, 0x070, 1 | 2 | 8 | 4);          // DRIVER_OK
        }

        internal ushort UsedIndex => _memory.Memory.Read16(Used + 2);

        internal (uint Id, uint Length) UsedElement(int i)
            => (_memory.Memory.Read32(Used + 4 + (8 * (ulong)i)), _memory.Memory.Read32(Used + 8 + (8 * (ulong)i)));

        internal byte[] Buffer(int descriptor, int length) => _memory.GetSpan(Data + (256 * (ulong)descriptor), length).ToArray();

        /// <summary>Puts a device-writable buffer in descriptor <paramref name="descriptor"/>, makes it available, notifies.</summary>
        internal void Submit(int descriptor, int length)
        {
            ulong d = Desc + (16 * (ulong)descriptor);
            _memory.Memory.Write64(d, _memory.GetPhysicalAddress(Data + (256 * (ulong)descriptor)));
            _memory.Memory.Write32(d + 8, (uint)length);
            _memory.Memory.Write16(d + 12, 2);            // VIRTQ_DESC_F_WRITE
            _memory.Memory.Write16(d + 14, 0);
            _memory.Memory.Write16(Avail + 4 + (2 * (ulong)(_availIdx % Size)), (ushort)descriptor);
            _availIdx++;
            _memory.Memory.Write16(Avail + 2, _availIdx);
            _m.Write32(0, 0x050, 0);
        }

        private void SetAddress(ulong register, ulong address)
        {
            _m.Write32(0, register, (uint)address);
            _m.Write32(0, register + 4, (uint)(address >> 32));
        }

        public void Dispose() => _memory.Dispose();
    }
}
