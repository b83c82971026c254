// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Kernel.Tests;

/// <summary>
/// <see cref="VfioDevice"/> against the real 6.12 kernel in the testbed guest: edu (0000:00:02.0, conventional PCI,
/// INTx + one MSI) and QEMU's nvme (0000:00:03.0, PCIe, 65 MSI-X vectors), each in its own IOMMU group, attached
/// through a legacy Type1 v2 container.
/// </summary>
public sealed class VfioDeviceKernelTests
{
    private const int Bar0 = 0;
    private const int Config = 7;
    private const int Intx = 0;
    private const int Msi = 1;
    private const int Msix = 2;
    private const int Err = 3;
    private const int Req = 4;
    private static readonly TimeSpan s_interruptTimeout = TimeSpan.FromSeconds(10);

    private static string NvmeAddress => Environment.GetEnvironmentVariable("VFIO_TEST_NVME") ?? "0000:00:03.0";

    // ---- edu ----

    [Fact]
    public void Edu_Info_IsPciWithNineRegionsAndFiveIrqIndexes()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDeviceInfo info = edu.Device.Info;
        info.Flags.ShouldBe(VfioDeviceFlags.Pci);   // the testbed's kernel: flags 0x2, no RESET, no capability chain
        info.IsPci.ShouldBeTrue();
        info.SupportsReset.ShouldBeFalse();
        info.RegionCount.ShouldBe(9);
        info.IrqCount.ShouldBe(5);
        info.Capabilities.ShouldBeEmpty();
    }

    [Fact]
    public void Edu_Regions_ConfigBar0AbsentBarsRomAndVga()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;

        VfioRegionInfo config = device.GetRegion(Config);
        config.Offset.ShouldBe(7UL << 40);
        config.Size.ShouldBe(256UL);   // conventional PCI
        config.Flags.ShouldBe(VfioRegionFlags.Read | VfioRegionFlags.Write);

        VfioRegionInfo bar0 = device.GetRegion(Bar0);
        bar0.Offset.ShouldBe(0UL);
        bar0.Size.ShouldBe(1UL << 20);
        bar0.Flags.ShouldBe(VfioRegionFlags.Read | VfioRegionFlags.Write | VfioRegionFlags.Mmap);
        bar0.Capabilities.ShouldBeEmpty();   // no MSI-X, so no MSIX_MAPPABLE
        bar0.SparseMmapAreas.ShouldBeNull();

        for (int index = 1; index <= 6; index++)
        {
            VfioRegionInfo absent = device.GetRegion(index);   // BAR1-5 and the ROM: size 0, flags 0
            absent.Size.ShouldBe(0UL, $"region {index}");
            absent.Flags.ShouldBe(VfioRegionFlags.None, $"region {index}");
            absent.Offset.ShouldBe((ulong)index << 40);
        }

        VfioException vga = Should.Throw<VfioException>(() => device.GetRegion(8));
        vga.Errno.ShouldBe(Errno.EINVAL);
        vga.Operation.ShouldBe("VFIO_DEVICE_GET_REGION_INFO");
        vga.ObjectName.ShouldBe($"{Guest.EduAddress} region 8");
        Should.Throw<VfioException>(() => device.GetRegion(9)).Errno.ShouldBe(Errno.EINVAL);
        Should.Throw<InvalidOperationException>(() => device.MapRegion(Config));
    }

    [Fact]
    public void Edu_ConfigSpace_ThroughPreadAtEveryWidth()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        device.ReadRegion32(Config, 0).ShouldBe(0x11e81234u);
        device.ReadRegion16(Config, 0).ShouldBe((ushort)0x1234);
        device.ReadRegion16(Config, 2).ShouldBe((ushort)0x11e8);
        device.ReadRegion8(Config, 0).ShouldBe((byte)0x34);
        (device.ReadRegion64(Config, 0) & 0xFFFF_FFFF).ShouldBe(0x11e81234UL);
        Span<byte> ids = stackalloc byte[4];
        device.ReadRegion(Config, 0, ids);
        ids.ToArray().ShouldBe(new byte[] { 0x34, 0x12, 0xe8, 0x11 });
        Should.Throw<ArgumentOutOfRangeException>(() => device.ReadRegion32(Config, 0xFE));
        Should.Throw<ArgumentOutOfRangeException>(() => device.ReadRegion32(1, 0));   // BAR1 is 0 bytes
    }

    [Fact]
    public void Edu_Bar0_IdentificationLivenessAndFactorial_ThroughMappingAndPread()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        using VfioRegionMapping bar0 = device.MapRegion(Bar0);
        bar0.Areas.ShouldHaveSingleItem().Size.ShouldBe(1UL << 20);

        bar0.Read32(0x00).ShouldBe(0x010000edu);
        device.ReadRegion32(Bar0, 0x00).ShouldBe(0x010000edu);

        bar0.Write32(0x04, 0x12345678);
        bar0.Read32(0x04).ShouldBe(~0x12345678u);
        device.ReadRegion32(Bar0, 0x04).ShouldBe(~0x12345678u);
        device.WriteRegion32(Bar0, 0x04, 0x0F0F0F0F);
        bar0.Read32(0x04).ShouldBe(0xF0F0F0F0u);

        Factorial(n => bar0.Write32(0x08, n), () => bar0.Read32(0x20), () => bar0.Read32(0x08), 5).ShouldBe(120u);
        Factorial(n => device.WriteRegion32(Bar0, 0x08, n), () => device.ReadRegion32(Bar0, 0x20), () => device.ReadRegion32(Bar0, 0x08), 10).ShouldBe(3628800u);
    }

    [Fact]
    public void Edu_IrqInfo_AsTheTestbedSawIt()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        device.GetIrq(Intx).ShouldBe(new VfioIrqInfo(Intx, VfioIrqFlags.EventFd | VfioIrqFlags.Maskable | VfioIrqFlags.Automasked, 1));
        device.GetIrq(Msi).ShouldBe(new VfioIrqInfo(Msi, VfioIrqFlags.EventFd | VfioIrqFlags.NoResize, 1));
        device.GetIrq(Msix).ShouldBe(new VfioIrqInfo(Msix, VfioIrqFlags.EventFd | VfioIrqFlags.NoResize, 0));
        VfioException err = Should.Throw<VfioException>(() => device.GetIrq(Err));   // not PCIe
        err.Errno.ShouldBe(Errno.EINVAL);
        err.ObjectName.ShouldBe($"{Guest.EduAddress} IRQ index 3");
        device.GetIrq(Req).ShouldBe(new VfioIrqInfo(Req, VfioIrqFlags.EventFd | VfioIrqFlags.NoResize, 1));
        Should.Throw<VfioException>(() => device.GetIrq(5)).Errno.ShouldBe(Errno.EINVAL);
    }

    [Fact]
    public void Edu_Msi_RaiseAckLoopbackAndDisable()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        using VfioRegionMapping bar0 = device.MapRegion(Bar0);
        EnableBusMaster(device);   // an MSI is a memory write by the device
        using var msi = new InterruptEvent();
        device.SetIrqEventFds(Msi, 0, [msi]);
        try
        {
            ulong received = 0;
            const int Interrupts = 20;
            for (int i = 0; i < Interrupts; i++)
            {
                bar0.Write32(0x60, 1);
                msi.TryWait(s_interruptTimeout, out ulong count).ShouldBeTrue($"interrupt {i}");
                received += count;
                bar0.Write32(0x64, 1);
            }
            received.ShouldBe((ulong)Interrupts);
            msi.TryWait(TimeSpan.FromMilliseconds(100), out _).ShouldBeFalse();

            device.TriggerIrq(Msi);   // loopback
            msi.TryWait(s_interruptTimeout, out ulong looped).ShouldBeTrue();
            looped.ShouldBe(1UL);

            // Growing a NORESIZE MSI index beyond what was enabled: EINVAL (one vector only anyway).
            Should.Throw<VfioException>(() => device.SetIrqEventFds(Msi, 1, [msi])).Errno.ShouldBe(Errno.EINVAL);
            // MASK is not an MSI action: ENOTTY.
            Should.Throw<VfioException>(() => device.MaskIrq(Msi)).Errno.ShouldBe(Errno.ENOTTY);
            // INTx cannot be enabled while MSI is.
            Should.Throw<VfioException>(() => device.SetIrqEventFds(Intx, 0, [msi])).Errno.ShouldBe(Errno.EINVAL);
        }
        finally
        {
            device.DisableIrq(Msi);
        }
        // Disabling an index that is not enabled: EINVAL.
        Should.Throw<VfioException>(() => device.DisableIrq(Msi)).Errno.ShouldBe(Errno.EINVAL);
    }

    [Fact]
    public void Edu_Intx_IsAutomaskedUntilUnmasked()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        using VfioRegionMapping bar0 = device.MapRegion(Bar0);
        using var intx = new InterruptEvent();
        device.SetIrqEventFds(Intx, 0, [intx]);
        try
        {
            bar0.Write32(0x60, 1);
            intx.TryWait(s_interruptTimeout, out ulong first).ShouldBeTrue();
            first.ShouldBe(1UL);
            bar0.Write32(0x64, 1);
            device.UnmaskIrq(Intx);
            bar0.Write32(0x60, 1);
            intx.TryWait(s_interruptTimeout, out ulong second).ShouldBeTrue("the second interrupt after unmask");
            second.ShouldBe(1UL);

            // Acknowledged at the device but not unmasked: the next raise stays masked...
            bar0.Write32(0x64, 1);
            bar0.Write32(0x60, 1);
            intx.TryWait(TimeSpan.FromMilliseconds(300), out _).ShouldBeFalse("INTx is automasked until UNMASK");
            // ...and UNMASK with the line still asserted signals it at once.
            device.UnmaskIrq(Intx);
            intx.TryWait(s_interruptTimeout, out _).ShouldBeTrue("UNMASK re-signals a pending INTx");
            bar0.Write32(0x64, 1);
            device.UnmaskIrq(Intx);
            intx.TryWait(TimeSpan.FromMilliseconds(100), out _).ShouldBeFalse();

            // MASK then loopback TRIGGER, and an unmask eventfd (the irqfd resample path).
            device.MaskIrq(Intx);
            device.TriggerIrq(Intx);
            intx.TryWait(s_interruptTimeout, out _).ShouldBeTrue("loopback signals the eventfd");
            device.UnmaskIrq(Intx);
            using var resample = new InterruptEvent();
            device.SetIrqUnmaskEventFd(Intx, resample);
            Should.Throw<VfioException>(() => device.SetIrqUnmaskEventFd(Intx, resample)).Errno.ShouldBe(Errno.EBUSY);
            device.SetIrqUnmaskEventFd(Intx, null);
            // A mask eventfd is not implemented for vfio-pci INTx.
            Should.Throw<VfioException>(() => device.SetIrqMaskEventFd(Intx, resample)).Errno.ShouldBe(Errno.ENOTTY);
        }
        finally
        {
            device.DisableIrq(Intx);
        }
    }

    [Fact]
    public void Edu_Req_RegisterLoopbackUnregister()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        using var req = new InterruptEvent();
        device.SetIrqEventFds(Req, 0, [req]);
        device.TriggerIrq(Req);
        req.TryWait(s_interruptTimeout, out _).ShouldBeTrue();
        device.SetIrqEventFds(Req, 0, [null]);   // fd -1 unregisters
        Should.Throw<VfioException>(() => device.TriggerIrq(Req)).Errno.ShouldBe(Errno.EINVAL);
    }

    [Fact]
    public void Edu_Reset_WithoutTheResetFlag_IsTheKernelsEinvalWithAHint()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioException e = Should.Throw<VfioException>(edu.Device.Reset);
        e.Errno.ShouldBe(Errno.EINVAL);
        e.Operation.ShouldBe("VFIO_DEVICE_RESET");
        e.Hint!.ShouldContain("VFIO_DEVICE_FLAGS_RESET is clear");
    }

    [Fact]
    public void Edu_Features_NoneImplemented()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        device.ProbeFeature(VfioUapi.VFIO_DEVICE_FEATURE_MIGRATION, VfioFeatureAccess.Get).ShouldBeFalse();   // ENOTTY
        device.ProbeFeature(VfioUapi.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, VfioFeatureAccess.Set).ShouldBeFalse(); // not an SR-IOV PF
        device.ProbeFeature(VfioUapi.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, VfioFeatureAccess.Set).ShouldBeTrue();
        device.ProbeFeature(VfioUapi.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, VfioFeatureAccess.Get).ShouldBeFalse(); // SET only: EINVAL
        device.ProbeFeature(VfioUapi.VFIO_DEVICE_FEATURE_BUS_MASTER, VfioFeatureAccess.Set).ShouldBeFalse();   // CDX only
        VfioException e = Should.Throw<VfioException>(() => device.GetFeature(VfioUapi.VFIO_DEVICE_FEATURE_MIGRATION, new byte[8]));
        e.Errno.ShouldBe(Errno.ENOTTY);
        device.SetFeature(VfioUapi.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, []);   // always 0
    }

    [Fact]
    public void Edu_RegionAccess_AllocatesNothing()
    {
        using var edu = AttachedDevice.Open(Guest.EduAddress);
        VfioDevice device = edu.Device;
        using VfioRegionMapping bar0 = device.MapRegion(Bar0);
        using var msi = new InterruptEvent();
        EnableBusMaster(device);
        // Warm up past tiered compilation's call-count threshold (30), whose one-time work may allocate on this thread.
        for (int i = 0; i < 50; i++)
        {
            device.ReadRegion32(Bar0, 0);
            bar0.Read32(0);
            device.SetIrqEventFds(Msi, 0, [msi]);
            device.DisableIrq(Msi);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            device.WriteRegion32(Bar0, 0x04, (uint)i);
            device.ReadRegion32(Bar0, 0x04);
        }
        long byPread = GC.GetAllocatedBytesForCurrentThread() - before;
        for (int i = 0; i < 1000; i++)
        {
            bar0.Write32(0x04, (uint)i);
            bar0.Read32(0x04);
        }
        long byMapping = GC.GetAllocatedBytesForCurrentThread() - before - byPread;
        for (int i = 0; i < 100; i++)
        {
            device.SetIrqEventFds(Msi, 0, [msi]);
            device.DisableIrq(Msi);
        }
        long byIrqs = GC.GetAllocatedBytesForCurrentThread() - before - byPread - byMapping;
        (byPread, byMapping, byIrqs).ShouldBe((0L, 0L, 0L), "bytes allocated by pread/pwrite, by the mapping, by SET_IRQS");
    }

    // ---- nvme ----

    [Fact]
    public void Nvme_InfoBar0CapsRegistersAndIrqs()
    {
        using var nvme = AttachedDevice.Open(NvmeAddress);
        VfioDevice device = nvme.Device;
        device.Info.Flags.ShouldBe(VfioDeviceFlags.Pci | VfioDeviceFlags.Reset);
        device.Info.RegionCount.ShouldBe(9);
        device.Info.IrqCount.ShouldBe(5);
        device.GetRegion(Config).Size.ShouldBe(0x1000UL);   // PCIe

        VfioRegionInfo bar0 = device.GetRegion(Bar0);
        bar0.Size.ShouldBe(0x4000UL);
        bar0.Flags.ShouldBe(VfioRegionFlags.Read | VfioRegionFlags.Write | VfioRegionFlags.Mmap | VfioRegionFlags.Capabilities);
        // vfio-pci 6.12 does not emit SPARSE_MMAP; the MSI-X table in BAR0 may be mapped (isolated MSI).
        bar0.SparseMmapAreas.ShouldBeNull();
        bar0.IsMsixMappable.ShouldBeTrue();
        bar0.Type.ShouldBeNull();
        VfioCapability cap = bar0.Capabilities.ShouldHaveSingleItem();
        cap.Id.ShouldBe(VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
        cap.Version.ShouldBe((ushort)1);
        cap.Offset.ShouldBe(32);
        cap.Bytes.Length.ShouldBe(8);

        using VfioRegionMapping mapping = device.MapRegion(Bar0);
        mapping.Areas.ShouldHaveSingleItem().Size.ShouldBe(0x4000UL);
        mapping.Read32(0x00).ShouldBe(0x0f0107ffu);   // CAP (low half)
        mapping.Read32(0x08).ShouldBe(0x00010400u);   // VS 1.4
        device.ReadRegion32(Bar0, 0x08).ShouldBe(0x00010400u);

        device.GetIrq(Msix).ShouldBe(new VfioIrqInfo(Msix, VfioIrqFlags.EventFd, 65));   // x86 allocates MSI-X dynamically: no NORESIZE
        device.GetIrq(Err).ShouldBe(new VfioIrqInfo(Err, VfioIrqFlags.EventFd | VfioIrqFlags.NoResize, 1));
        device.GetIrq(Msi).Count.ShouldBe(0);
        device.GetIrq(Intx).ShouldBe(new VfioIrqInfo(Intx, VfioIrqFlags.EventFd | VfioIrqFlags.Maskable | VfioIrqFlags.Automasked, 1));
    }

    [Fact]
    public unsafe void Nvme_RegionInfoArgszProtocol_AsTheKernelAnswers()
    {
        // The raw two-call protocol under VfioDevice.GetRegion: a 32-byte first call succeeds with CAPS set, argsz
        // raised to 40 (32 + the 8-byte MSIX_MAPPABLE header) and cap_offset 0.
        using var nvme = AttachedDevice.Open(NvmeAddress);
        var info = new vfio_region_info { argsz = (uint)sizeof(vfio_region_info), index = Bar0 };
        Guest.Kernel.Ioctl(nvme.Device.Handle, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, &info).ShouldBe(0);
        (info.flags & VfioUapi.VFIO_REGION_INFO_FLAG_CAPS).ShouldNotBe(0u);
        info.argsz.ShouldBe(40u);
        info.cap_offset.ShouldBe(0u);
        info.size.ShouldBe(0x4000UL);

        Span<byte> full = stackalloc byte[64];
        full.Fill(0xAA);
        ref vfio_region_info header = ref MemoryMarshal.AsRef<vfio_region_info>(full);
        header = new vfio_region_info { argsz = 64, index = Bar0 };
        Guest.Kernel.Ioctl(nvme.Device.Handle, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, full).ShouldBe(0);
        header.argsz.ShouldBe(64u);   // left as given when the caps fit
        header.cap_offset.ShouldBe(32u);
        BitConverter.ToUInt16(full[32..]).ShouldBe(VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
        BitConverter.ToUInt32(full[36..]).ShouldBe(0u);   // next
        full[40].ShouldBe((byte)0xAA);   // nothing written past the chain
    }

    [Fact]
    public void Nvme_MsixAllVectors_PooledSetIrqs_LoopbackAndDisable()
    {
        using var nvme = AttachedDevice.Open(NvmeAddress);
        VfioDevice device = nvme.Device;
        var events = new InterruptEvent?[65];
        try
        {
            for (int i = 0; i < events.Length; i++)
            {
                events[i] = i == 10 ? null : new InterruptEvent();   // vector 10 left unwired
            }
            // 65 vectors: more than the 64 built on the stack.
            device.TrySetIrqEventFds(Msix, 0, events, out int available).ShouldBeTrue($"the kernel could allocate {available}");
            device.TriggerIrq(Msix, 64, 1);
            events[64]!.TryWait(s_interruptTimeout, out _).ShouldBeTrue();
            device.TriggerIrq(Msix, 0, 65);   // the unwired vector is skipped
            for (int i = 0; i < events.Length; i++)
            {
                if (events[i] is { } e)
                {
                    e.TryWait(s_interruptTimeout, out ulong count).ShouldBeTrue($"vector {i}");
                    count.ShouldBe(1UL);
                }
            }
            // Wire vector 10 on the enabled index (a distinct eventfd: wiring one eventfd to two vectors works but
            // the kernel logs "irq bypass producer (token ...) registration fails: -16").
            using var late = new InterruptEvent();
            device.SetIrqEventFds(Msix, 10, [late]);
            device.TriggerIrq(Msix, 10, 1);
            late.TryWait(s_interruptTimeout, out _).ShouldBeTrue();
            device.DisableIrq(Msix);
            Should.Throw<VfioException>(() => device.TriggerIrq(Msix)).Errno.ShouldBe(Errno.EINVAL);
        }
        finally
        {
            foreach (InterruptEvent? e in events)
            {
                e?.Dispose();
            }
        }
    }

    [Fact]
    public void Nvme_ErrEventFd_LoopbackAndResetKeepsTheMapping()
    {
        using var nvme = AttachedDevice.Open(NvmeAddress);
        VfioDevice device = nvme.Device;
        using var err = new InterruptEvent();
        device.SetIrqEventFds(Err, 0, [err]);
        device.TriggerIrq(Err);
        err.TryWait(s_interruptTimeout, out _).ShouldBeTrue();
        device.SetIrqEventFds(Err, 0, [null]);

        using VfioRegionMapping bar0 = device.MapRegion(Bar0);
        bar0.Read32(0x08).ShouldBe(0x00010400u);
        device.Reset();   // zaps the BAR mapping; it faults back in
        bar0.Read32(0x08).ShouldBe(0x00010400u);
        device.ReadRegion32(Bar0, 0x00).ShouldBe(0x0f0107ffu);
    }

    // ---- helpers ----

    private static uint Factorial(Action<uint> write, Func<uint> status, Func<uint> read, uint n)
    {
        write(n);
        var deadline = DateTime.UtcNow + s_interruptTimeout;
        while ((status() & 1) != 0)
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline, "factorial still busy");
            Thread.Sleep(1);
        }
        return read();
    }

    /// <summary>Sets Bus Master Enable (bit 2) of the command register (config offset 4).</summary>
    private static void EnableBusMaster(VfioDevice device)
        => device.WriteRegion16(Config, 4, (ushort)(device.ReadRegion16(Config, 4) | 0x4));

    /// <summary>A device attached through its own Type1 v2 container: container, group and <see cref="VfioDevice"/>,
    /// released device first.</summary>
    private sealed class AttachedDevice : IDisposable
    {
        private readonly SafeFileHandle _container;
        private readonly SafeFileHandle _group;

        private AttachedDevice(SafeFileHandle container, SafeFileHandle group, VfioDevice device)
        {
            _container = container;
            _group = group;
            Device = device;
        }

        public VfioDevice Device { get; }

        public static unsafe AttachedDevice Open(string address)
        {
            IKernel kernel = Guest.Kernel;
            kernel.ReadLink($"/sys/bus/pci/devices/{address}/iommu_group", out string groupLink).ShouldBe(0);
            SafeFileHandle container = Guest.Open("/dev/vfio/vfio");
            SafeFileHandle? group = null;
            try
            {
                group = Guest.Open($"/dev/vfio/{Path.GetFileName(groupLink)}");
                int containerFd = (int)container.DangerousGetHandle();
                VfioException.ThrowIfFailed(kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, &containerFd), "VFIO_GROUP_SET_CONTAINER", address);
                VfioException.ThrowIfFailed(kernel.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_TYPE1v2_IOMMU), "VFIO_SET_IOMMU", address);
                byte[] name = System.Text.Encoding.ASCII.GetBytes(address + "\0");
                int fd = VfioException.ThrowIfFailed(kernel.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, name), "VFIO_GROUP_GET_DEVICE_FD", address);
                var device = new VfioDevice(kernel, new SafeFileHandle(fd, ownsHandle: true), address, ownsHandle: true);
                return new AttachedDevice(container, group, device);
            }
            catch
            {
                group?.Dispose();
                container.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            Device.Dispose();
            _group.Dispose();
            _container.Dispose();
        }
    }
}
