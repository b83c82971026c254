// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>
/// A no-IOMMU machine with one VFIO device, opened the legacy way (container, noiommu group, SET_IOMMU(8),
/// GET_DEVICE_FD), with helpers that issue the real uAPI structs through the public <see cref="IKernel"/>.
/// </summary>
internal sealed class NoIommuDevice : IDisposable
{
    private readonly SafeFileHandle _container;
    private readonly SafeFileHandle _group;

    private NoIommuDevice(SimulatedTopology topology, string name)
    {
        Kernel = new SimulatedKernel(topology);
        Kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out _container).ShouldBe(0);
        Kernel.Open("/dev/vfio/noiommu-0", OpenFlags.ReadWrite, out _group).ShouldBe(0);
        int fd = (int)_container.DangerousGetHandle();
        Kernel.Ioctl(_group, VfioUapi.VFIO_GROUP_SET_CONTAINER, MemoryMarshal.AsBytes(new Span<int>(ref fd))).ShouldBe(0);
        Kernel.Ioctl(_container, VfioUapi.VFIO_SET_IOMMU, (nint)VfioUapi.VFIO_NOIOMMU_IOMMU).ShouldBe(0);
        Device = OpenDevice(name);
    }

    internal SimulatedKernel Kernel { get; }

    internal SafeFileHandle Device { get; private set; }

    internal static NoIommuDevice Create(SimulatedTopology topology, string name) => new(topology, name);

    /// <summary>Opens another no-IOMMU group node and attaches it to the same container.</summary>
    internal SafeFileHandle AddGroup(string node)
    {
        Kernel.Open(node, OpenFlags.ReadWrite, out SafeFileHandle group).ShouldBe(0);
        int fd = (int)_container.DangerousGetHandle();
        Kernel.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, MemoryMarshal.AsBytes(new Span<int>(ref fd))).ShouldBe(0);
        return group;
    }

    internal SafeFileHandle Group => _group;

    internal static NoIommuDevice Pci(EmulatedPciDevice model, string address = "0000:00:02.0")
        => new(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true }.AddPci(address, 0, model), address);

    internal static NoIommuDevice Platform(EmulatedPlatformDevice model, string name = "LNRO0005:00")
        => new(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true }.AddPlatform(name, 0, model), name);

    internal SafeFileHandle OpenDevice(string name)
    {
        byte[] text = Encoding.ASCII.GetBytes(name + "\0");
        int rc = Kernel.Ioctl(_group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, text.AsSpan());
        rc.ShouldBeGreaterThanOrEqualTo(0);
        return new SafeFileHandle(rc, ownsHandle: true);
    }

    /// <summary>Closes the device fd (the last one: the driver's close_device runs) and opens a new one.</summary>
    internal void Reopen(string name)
    {
        Device.Dispose();
        Device = OpenDevice(name);
    }

    internal int Ioctl<T>(uint request, ref T value)
        where T : unmanaged
        => Kernel.Ioctl(Device, request, MemoryMarshal.AsBytes(new Span<T>(ref value)));

    internal int GetInfo(out vfio_device_info info)
    {
        info = new vfio_device_info { argsz = 24 };
        return Ioctl(VfioUapi.VFIO_DEVICE_GET_INFO, ref info);
    }

    internal int GetRegion(uint index, out vfio_region_info info)
    {
        info = new vfio_region_info { argsz = 32, index = index };
        return Ioctl(VfioUapi.VFIO_DEVICE_GET_REGION_INFO, ref info);
    }

    internal int GetIrq(uint index, out vfio_irq_info info)
    {
        info = new vfio_irq_info { argsz = 16, index = index };
        return Ioctl(VfioUapi.VFIO_DEVICE_GET_IRQ_INFO, ref info);
    }

    /// <summary>SET_IRQS with a header and a data tail.</summary>
    internal int SetIrqs(uint index, uint flags, uint start, uint count, ReadOnlySpan<byte> data, uint? argsz = null)
    {
        byte[] buffer = new byte[20 + data.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, argsz ?? (uint)buffer.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(8), index);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(12), start);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(16), count);
        data.CopyTo(buffer.AsSpan(20));
        return Kernel.Ioctl(Device, VfioUapi.VFIO_DEVICE_SET_IRQS, buffer.AsSpan());
    }

    internal int SetEventFds(uint index, uint start, params InterruptEvent?[] events)
    {
        byte[] fds = new byte[4 * events.Length];
        for (int i = 0; i < events.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(fds.AsSpan(4 * i), events[i] is { } e ? (int)e.Handle.DangerousGetHandle() : -1);
        }
        return SetIrqs(index, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER, start, (uint)events.Length, fds);
    }

    internal int Action(uint index, uint action, uint start = 0, uint count = 1)
        => SetIrqs(index, VfioUapi.VFIO_IRQ_SET_DATA_NONE | action, start, count, default);

    internal static long Offset(uint index, ulong offset = 0) => (long)(((ulong)index << 40) + offset);

    internal uint Read32(uint index, ulong offset)
    {
        Span<byte> b = stackalloc byte[4];
        Kernel.PRead(Device, b, Offset(index, offset)).ShouldBe(4);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    internal void Write32(uint index, ulong offset, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Kernel.PWrite(Device, b, Offset(index, offset)).ShouldBe(4);
    }

    internal ulong Read64(uint index, ulong offset)
    {
        Span<byte> b = stackalloc byte[8];
        Kernel.PRead(Device, b, Offset(index, offset)).ShouldBe(8);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    internal void Write64(uint index, ulong offset, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        Kernel.PWrite(Device, b, Offset(index, offset)).ShouldBe(8);
    }

    internal ushort ReadConfig16(int offset)
    {
        Span<byte> b = stackalloc byte[2];
        Kernel.PRead(Device, b, Offset(VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX, (ulong)offset)).ShouldBe(2);
        return BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    internal void WriteConfig16(int offset, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Kernel.PWrite(Device, b, Offset(VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX, (ulong)offset)).ShouldBe(2);
    }

    /// <summary>Sets COMMAND.Bus Master (and keeps memory decoding on).</summary>
    internal void EnableBusMaster() => WriteConfig16(0x04, (ushort)(ReadConfig16(0x04) | 0x6));

    /// <summary>Polls until <paramref name="done"/> holds (device work runs on timers).</summary>
    internal static void WaitFor(Func<bool> done)
    {
        DateTime limit = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!done())
        {
            DateTime.UtcNow.ShouldBeLessThan(limit, "the device did not finish in time");
            Thread.Sleep(2);
        }
    }

    internal static bool Fired(InterruptEvent e, int milliseconds = 2000) => e.TryWait(TimeSpan.FromMilliseconds(milliseconds), out _);

    internal static bool Quiet(InterruptEvent e) => !e.TryWait(out _);

    public void Dispose()
    {
        Device.Dispose();
        _group.Dispose();
        _container.Dispose();
        Kernel.Dispose();
    }
}

/// <summary>The vfio-pci core over emulated devices: GET_INFO, regions, config space, IRQs, features, reset (drivers/vfio/vfio_main.c, drivers/vfio/pci).</summary>
public sealed class VfioPciTests
{
    private const uint Config = VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX;
    private const uint Trigger = VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER;
    private const uint DataNone = VfioUapi.VFIO_IRQ_SET_DATA_NONE;
    private const uint DataBool = VfioUapi.VFIO_IRQ_SET_DATA_BOOL;
    private const uint DataEventFd = VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD;
    private const int EINVAL = -(int)Errno.EINVAL;

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_info")]
    public void GetInfo_Edu_PciFlagsNineRegionsFiveIrqs()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.GetInfo(out vfio_device_info info).ShouldBe(0);
        info.flags.ShouldBe(VfioUapi.VFIO_DEVICE_FLAGS_PCI);
        info.num_regions.ShouldBe(9u);
        info.num_irqs.ShouldBe(5u);
        info.cap_offset.ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_info")]
    public void GetInfo_DeviceWithFlr_ReportsReset()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.GetInfo(out vfio_device_info info).ShouldBe(0);
        info.flags.ShouldBe(VfioUapi.VFIO_DEVICE_FLAGS_PCI | VfioUapi.VFIO_DEVICE_FLAGS_RESET);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_info")]
    public void GetInfo_ArgszBelow16_Einval()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        var info = new vfio_device_info { argsz = 15 };
        m.Ioctl(VfioUapi.VFIO_DEVICE_GET_INFO, ref info).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_info")]
    public void GetInfo_Argsz16_WritesOnlyTheMandatoryPart()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        var info = new vfio_device_info { argsz = 16, cap_offset = 0xdead };
        m.Ioctl(VfioUapi.VFIO_DEVICE_GET_INFO, ref info).ShouldBe(0);
        info.num_irqs.ShouldBe(5u);
        info.cap_offset.ShouldBe(0xdeadu);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_device_fops_unl_ioctl")]
    public void UnknownIoctl_Enotty()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_GET_API_VERSION + 0x30, 0).ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void GetRegionInfo_Edu_Bar0IsOneMiBMappable()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.GetRegion(0, out vfio_region_info info).ShouldBe(0);
        info.size.ShouldBe(0x100000ul);
        info.offset.ShouldBe(0ul);
        info.flags.ShouldBe(VfioUapi.VFIO_REGION_INFO_FLAG_READ | VfioUapi.VFIO_REGION_INFO_FLAG_WRITE | VfioUapi.VFIO_REGION_INFO_FLAG_MMAP);
        info.cap_offset.ShouldBe(0u);
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(5u)]
    [InlineData(6u)]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void GetRegionInfo_UnimplementedBarOrRom_SizeZeroFlagsZero(uint index)
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.GetRegion(index, out vfio_region_info info).ShouldBe(0);
        info.size.ShouldBe(0ul);
        info.flags.ShouldBe(0u);
        info.offset.ShouldBe((ulong)index << 40);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void GetRegionInfo_Config_At7Shl40_256Bytes()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.GetRegion(Config, out vfio_region_info info).ShouldBe(0);
        info.offset.ShouldBe(0x70000000000ul);
        info.size.ShouldBe(256ul);
        info.flags.ShouldBe(VfioUapi.VFIO_REGION_INFO_FLAG_READ | VfioUapi.VFIO_REGION_INFO_FLAG_WRITE);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void GetRegionInfo_PcieConfig_4096Bytes()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.GetRegion(Config, out vfio_region_info info).ShouldBe(0);
        info.size.ShouldBe(4096ul);
    }

    [Theory]
    [InlineData(8u)]
    [InlineData(9u)]
    [InlineData(100u)]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void GetRegionInfo_VgaOrBeyond_Einval(uint index)
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.GetRegion(index, out _).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_region_info")]
    public void GetRegionInfo_ArgszBelow32_Einval()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        var info = new vfio_region_info { argsz = 31 };
        m.Ioctl(VfioUapi.VFIO_DEVICE_GET_REGION_INFO, ref info).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_info_cap_add")]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_region_info")]
    public void GetRegionInfo_MsixBarShortArgsz_SucceedsWithRequiredSizeAndNoCaps()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.GetRegion(0, out vfio_region_info info).ShouldBe(0);
        (info.flags & VfioUapi.VFIO_REGION_INFO_FLAG_CAPS).ShouldNotBe(0u);
        info.cap_offset.ShouldBe(0u);
        // sparse header 16 + 2 areas × 16, then the 8-byte MSIX_MAPPABLE header.
        info.argsz.ShouldBe(32u + 48u + 8u);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_info_cap_add")]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void GetRegionInfo_MsixBar_SparseMmapExcludesTableThenMsixMappable()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        byte[] buffer = new byte[32 + 56];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)buffer.Length);
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, buffer.AsSpan()).ShouldBe(0);
        uint capOffset = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(12));
        capOffset.ShouldBe(32u);
        BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(16)).ShouldBe(0x4000ul);
        BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(32)).ShouldBe(VfioUapi.VFIO_REGION_INFO_CAP_SPARSE_MMAP);
        uint next = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(36));
        BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(40)).ShouldBe(2u);
        BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(48)).ShouldBe(0ul);
        BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(56)).ShouldBe((ulong)MsixTestDevice.TableOffset);
        BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(64)).ShouldBe((ulong)MsixTestDevice.PbaOffset);
        BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(72)).ShouldBe(0x1000ul);
        next.ShouldBe(80u);
        BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(80)).ShouldBe(VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
        BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(84)).ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void GetRegionInfo_PlainVfioPciMsixBar_OnlyMsixMappable()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice(sparseMmap: false));
        byte[] buffer = new byte[64];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, 64);
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, buffer.AsSpan()).ShouldBe(0);
        BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(12)).ShouldBe(32u);
        BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(32)).ShouldBe(VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
        BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(36)).ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Mmap_SparseArea_AllowedOutsideAndRefusedOverTheTable()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.Kernel.Map(m.Device, 0, 0x2000, MemoryProtection.ReadWrite, out MemoryMapping? low).ShouldBe(0);
        using (low)
        {
            low!.Read32(0).ShouldBe(MsixTestDevice.Identification);
        }
        m.Kernel.Map(m.Device, 0x3000, 0x1000, MemoryProtection.ReadWrite, out MemoryMapping? pba).ShouldBe(0);
        pba!.Dispose();
        m.Kernel.Map(m.Device, 0, 0x4000, MemoryProtection.ReadWrite, out _).ShouldBe(EINVAL);
        m.Kernel.Map(m.Device, 0x2000, 0x1000, MemoryProtection.ReadWrite, out _).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Mmap_ConfigRomOrBeyondBar_Einval()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.Map(m.Device, NoIommuDevice.Offset(Config), 4096, MemoryProtection.Read, out _).ShouldBe(EINVAL);
        m.Kernel.Map(m.Device, NoIommuDevice.Offset(6), 4096, MemoryProtection.Read, out _).ShouldBe(EINVAL);
        m.Kernel.Map(m.Device, NoIommuDevice.Offset(1), 4096, MemoryProtection.Read, out _).ShouldBe(EINVAL);
        m.Kernel.Map(m.Device, 0, 0x100000 + 4096, MemoryProtection.Read, out _).ShouldBe(EINVAL);
        m.Kernel.Map(m.Device, 0xff000, 0x1000, MemoryProtection.Read, out MemoryMapping? last).ShouldBe(0);
        last!.Dispose();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void PRead_MsixTableRange_ReadsAllOnesAndWritesAreDropped()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.Read32(0, MsixTestDevice.TableOffset).ShouldBe(0xffffffffu);
        m.Write32(0, MsixTestDevice.TableOffset + 4, 0x12345678);
        m.Read32(0, MsixTestDevice.TableOffset + 4).ShouldBe(0xffffffffu);
        m.Read32(0, 0).ShouldBe(MsixTestDevice.Identification);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void PRead_BeyondBarOrUnimplementedBar_EinvalAndCountTruncated()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        byte[] b = new byte[8];
        m.Kernel.PRead(m.Device, b, 0x100000).ShouldBe(EINVAL);
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(1)).ShouldBe(EINVAL);
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(6)).ShouldBe(EINVAL);
        m.Kernel.PWrite(m.Device, b, NoIommuDevice.Offset(6)).ShouldBe(EINVAL);
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(9)).ShouldBe(EINVAL);
        m.Kernel.PRead(m.Device, b, 0x100000 - 4).ShouldBe(4);
        m.Kernel.PRead(m.Device, Span<byte>.Empty, NoIommuDevice.Offset(20)).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void PRead_MemoryDecodeDisabled_Eio()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        (m.ReadConfig16(0x04) & 0x2).ShouldBe(2);
        m.WriteConfig16(0x04, 0);
        byte[] b = new byte[4];
        m.Kernel.PRead(m.Device, b, 0).ShouldBe(-(int)Errno.EIO);
        m.WriteConfig16(0x04, 0x2);
        m.Read32(0, 0).ShouldBe(0x010000edu);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void PRead_ConfigBeyondSize_Efault()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        byte[] b = new byte[4];
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(Config, 254)).ShouldBe(-(int)Errno.EFAULT);
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(Config, 256)).ShouldBe(-(int)Errno.EFAULT);
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(Config, 252)).ShouldBe(4);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_Ids_VirtualizedReadOnly()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Read32(Config, 0).ShouldBe(0x11e81234u);
        m.Write32(Config, 0, 0xffffffff);
        m.Read32(Config, 0).ShouldBe(0x11e81234u);
        m.Read32(Config, 8).ShouldBe(0x00ff0010u); // class 00ff00, revision 0x10
        m.ReadConfig16(0x2c).ShouldBe((ushort)0x1af4);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_BarSizing_ReadsBackSizeMaskWithTypeBits()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Write32(Config, 0x10, 0xffffffff);
        m.Read32(Config, 0x10).ShouldBe(0xfff00000u);
        m.Write32(Config, 0x14, 0xffffffff);
        m.Read32(Config, 0x14).ShouldBe(0u);
        m.Write32(Config, 0x30, 0xffffffff);
        m.Read32(Config, 0x30).ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_Bar64Sizing_UpperHalfMasked()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.Write32(Config, 0x10, 0xffffffff);
        m.Write32(Config, 0x14, 0xffffffff);
        m.Read32(Config, 0x10).ShouldBe(0xffffc004u);
        m.Read32(Config, 0x14).ShouldBe(0xffffffffu);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_CapabilityList_EduHasMsiAt0x40()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        (m.ReadConfig16(0x06) & 0x10).ShouldBe(0x10);
        byte[] b = new byte[1];
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(Config, 0x34)).ShouldBe(1);
        b[0].ShouldBe((byte)0x40);
        m.ReadConfig16(0x40).ShouldBe((ushort)0x0005); // MSI, end of list
        (m.ReadConfig16(0x42) & 0x0e).ShouldBe(0);     // one vector
        m.Kernel.PRead(m.Device, b, NoIommuDevice.Offset(Config, 0x3d)).ShouldBe(1);
        b[0].ShouldBe((byte)1);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_PcieChain_MsiXAfterExpress_ExtendedSpaceReadsZero()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice(vectors: 8));
        m.ReadConfig16(0x40).ShouldBe((ushort)0x7c10); // PCIe, next 0x7c
        m.ReadConfig16(0x7c).ShouldBe((ushort)0x0011); // MSI-X, end
        m.ReadConfig16(0x7e).ShouldBe((ushort)7);       // table size - 1
        m.Read32(Config, 0x80).ShouldBe(MsixTestDevice.TableOffset);
        m.Read32(Config, 0x100).ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_MsiEnableBit_OnlySticksWhileMsiIsEnabledThroughSetIrqs()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.WriteConfig16(0x42, 0x0001);
        (m.ReadConfig16(0x42) & 1).ShouldBe(0);
        using var msi = new InterruptEvent();
        m.SetEventFds(1, 0, msi).ShouldBe(0);
        m.WriteConfig16(0x42, 0x0001);
        (m.ReadConfig16(0x42) & 1).ShouldBe(1);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_MsixEnableBit_ReflectsSetIrqs()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        (m.ReadConfig16(0x7e) & 0x8000).ShouldBe(0);
        m.WriteConfig16(0x7e, 0x8000);
        (m.ReadConfig16(0x7e) & 0x8000).ShouldBe(0); // read-only: config writes have no effect
        using var v = new InterruptEvent();
        m.SetEventFds(2, 0, v).ShouldBe(0);
        (m.ReadConfig16(0x7e) & 0x8000).ShouldBe(0x8000);
        m.Action(2, Trigger, 0, 0).ShouldBe(0);
        (m.ReadConfig16(0x7e) & 0x8000).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_UnassignedBytes_RawReadWrite()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Write32(Config, 0xf0, 0xcafef00d);
        m.Read32(Config, 0xf0).ShouldBe(0xcafef00du);
    }

    [Theory]
    [InlineData(0u, 1u, 7u)]
    [InlineData(1u, 1u, 9u)]
    [InlineData(2u, 0u, 1u)]
    [InlineData(4u, 1u, 9u)]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_get_irq_count")]
    public void GetIrqInfo_Edu_MatchesTheTestbed(uint index, uint count, uint flags)
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.GetIrq(index, out vfio_irq_info info).ShouldBe(0);
        info.count.ShouldBe(count);
        info.flags.ShouldBe(flags);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_get_irq_count")]
    public void GetIrqInfo_ErrOnConventionalPci_Einval_OnPcie_One()
    {
        using (var edu = NoIommuDevice.Pci(new EduDevice()))
        {
            edu.GetIrq(3, out _).ShouldBe(EINVAL);
            edu.GetIrq(5, out _).ShouldBe(EINVAL);
        }
        using var pcie = NoIommuDevice.Pci(new MsixTestDevice(vectors: 65));
        pcie.GetIrq(3, out vfio_irq_info err).ShouldBe(0);
        err.count.ShouldBe(1u);
        err.flags.ShouldBe(VfioUapi.VFIO_IRQ_INFO_EVENTFD | VfioUapi.VFIO_IRQ_INFO_NORESIZE);
        pcie.GetIrq(2, out vfio_irq_info msix).ShouldBe(0);
        msix.count.ShouldBe(65u);
        msix.flags.ShouldBe(VfioUapi.VFIO_IRQ_INFO_EVENTFD);
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_set_irqs_validate_and_prepare")]
    public void SetIrqs_CoreValidation_InOrder()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.SetIrqs(0, DataNone | Trigger, 0, 1, default, argsz: 19).ShouldBe(EINVAL);
        m.SetIrqs(5, DataNone | Trigger, 0, 1, default).ShouldBe(EINVAL);
        m.SetIrqs(0, DataNone | Trigger, 1, uint.MaxValue - 1, default).ShouldBe(EINVAL);
        m.SetIrqs(0, DataNone | Trigger | 0x40, 0, 1, default).ShouldBe(EINVAL);
        m.SetIrqs(0, DataNone | Trigger, 1, 0, default).ShouldBe(EINVAL);  // start ≥ N
        m.SetIrqs(2, DataNone | Trigger, 0, 0, default).ShouldBe(EINVAL);  // MSI-X has 0 IRQs
        m.SetIrqs(0, DataNone | DataBool | Trigger, 0, 1, new byte[1]).ShouldBe(EINVAL);
        m.SetIrqs(0, DataEventFd | Trigger, 0, 1, new byte[3]).ShouldBe(EINVAL); // data shorter than count × 4
        m.SetIrqs(0, DataNone | VfioUapi.VFIO_IRQ_SET_ACTION_MASK | VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, default)
            .ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_MaskOnMsi_Enotty()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Action(1, VfioUapi.VFIO_IRQ_SET_ACTION_MASK).ShouldBe(-(int)Errno.ENOTTY);
        m.Action(1, VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK).ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_IntxEventfd_BadFdEbadf_NotAnEventfdEinval()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        byte[] data = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(data, 999_999);
        m.SetIrqs(0, DataEventFd | Trigger, 0, 1, data).ShouldBe(-(int)Errno.EBADF);
        m.Kernel.Open("/dev/null", OpenFlags.ReadOnly, out SafeFileHandle devNull).ShouldBe(0);
        using (devNull)
        {
            BinaryPrimitives.WriteInt32LittleEndian(data, (int)devNull.DangerousGetHandle());
            m.SetIrqs(0, DataEventFd | Trigger, 0, 1, data).ShouldBe(EINVAL);
        }
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_UnmaskOrLoopbackWithoutIntxEnabled_Einval()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Action(0, VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK).ShouldBe(EINVAL);
        m.Action(0, VfioUapi.VFIO_IRQ_SET_ACTION_MASK).ShouldBe(EINVAL);
        m.Action(0, Trigger).ShouldBe(EINVAL);
        m.Action(0, Trigger, 0, 0).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_IntxLoopback_SignalsTheEventfd()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        m.SetEventFds(0, 0, e).ShouldBe(0);
        m.Action(0, Trigger).ShouldBe(0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
        m.SetIrqs(0, DataBool | Trigger, 0, 1, new byte[] { 0 }).ShouldBe(0);
        NoIommuDevice.Quiet(e).ShouldBeTrue();
        m.SetIrqs(0, DataBool | Trigger, 0, 1, new byte[] { 1 }).ShouldBe(0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_OnlyOneInterruptTypeAtATime()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        m.SetEventFds(0, 0, e).ShouldBe(0);
        m.SetEventFds(1, 0, e).ShouldBe(EINVAL);
        m.Action(0, Trigger, 0, 0).ShouldBe(0); // disable INTx
        m.SetEventFds(1, 0, e).ShouldBe(0);
        m.SetEventFds(0, 0, e).ShouldBe(EINVAL);
        m.Action(1, Trigger, 0, 0).ShouldBe(0);
        m.Action(1, Trigger, 0, 0).ShouldBe(EINVAL); // not enabled any more
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_MsixVectors_EachVectorSignalsItsOwnEventfd()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice(vectors: 8));
        m.EnableBusMaster();
        var events = Enumerable.Range(0, 8).Select(_ => new InterruptEvent()).ToArray();
        try
        {
            m.SetEventFds(2, 0, events).ShouldBe(0);
            for (uint v = 0; v < 8; v++)
            {
                m.Write32(0, 0x08, v);
            }
            foreach (InterruptEvent e in events)
            {
                e.TryWait(out ulong count).ShouldBeTrue();
                count.ShouldBe(1ul);
            }
            m.Write32(0, 0x08, 3);
            NoIommuDevice.Fired(events[3]).ShouldBeTrue();
            NoIommuDevice.Quiet(events[2]).ShouldBeTrue();
        }
        finally
        {
            foreach (InterruptEvent e in events)
            {
                e.Dispose();
            }
        }
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_MsixWithoutBusMaster_MessageLost()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        using var e = new InterruptEvent();
        m.SetEventFds(2, 0, e).ShouldBe(0);
        m.Write32(0, 0x08, 0);
        NoIommuDevice.Quiet(e).ShouldBeTrue();
        m.EnableBusMaster();
        m.Write32(0, 0x08, 0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_MsixRewire_DynamicAllocationAndUnwire()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice(vectors: 8));
        m.EnableBusMaster();
        using var a = new InterruptEvent();
        using var b = new InterruptEvent();
        m.SetEventFds(2, 0, a).ShouldBe(0);
        m.SetEventFds(2, 5, b).ShouldBe(0); // vector 5 allocated on demand
        m.Write32(0, 0x08, 5);
        NoIommuDevice.Fired(b).ShouldBeTrue();
        m.SetEventFds(2, 5, [null]).ShouldBe(0); // -1 unwires
        m.Write32(0, 0x08, 5);
        NoIommuDevice.Quiet(b).ShouldBeTrue();
        m.SetIrqs(2, DataBool | Trigger, 0, 1, new byte[] { 1 }).ShouldBe(0); // loopback
        NoIommuDevice.Fired(a).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_msi_enable")]
    public void SetIrqs_HostCannotAllocateAll_ReturnsPositiveCountAndEnablesNothing()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice(vectors: 8, hostVectorLimit: 3));
        using var e = new InterruptEvent();
        m.SetEventFds(2, 0, e, e, e, e).ShouldBe(3);
        (m.ReadConfig16(0x7e) & 0x8000).ShouldBe(0);
        m.Action(2, Trigger, 0, 0).ShouldBe(EINVAL); // not enabled
        m.SetEventFds(2, 0, e, e, e).ShouldBe(0);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_MsixBadFd_RollsBackAndDisables()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        using var e = new InterruptEvent();
        byte[] data = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(data, (int)e.Handle.DangerousGetHandle());
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(4), 999_999);
        m.SetIrqs(2, DataEventFd | Trigger, 0, 2, data).ShouldBe(-(int)Errno.EBADF);
        (m.ReadConfig16(0x7e) & 0x8000).ShouldBe(0);
        m.Action(2, Trigger, 0, 0).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_ErrAndReq_RegisterSignalUnregister()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        using var e = new InterruptEvent();
        m.Action(4, Trigger).ShouldBe(EINVAL);            // NONE with nothing registered
        m.SetEventFds(4, 0, e).ShouldBe(0);
        m.Action(4, Trigger).ShouldBe(0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
        m.Action(4, Trigger, 0, 0).ShouldBe(0);           // unregister
        m.Action(4, Trigger, 0, 0).ShouldBe(EINVAL);
        m.SetEventFds(3, 0, e).ShouldBe(0);
        m.SetIrqs(3, DataBool | Trigger, 0, 1, new byte[] { 1 }).ShouldBe(0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
        m.SetIrqs(3, DataEventFd | Trigger, 0, 0, default).ShouldBe(EINVAL);
        byte[] bad = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bad, -2);
        m.SetIrqs(3, DataEventFd | Trigger, 0, 1, bad).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void SetIrqs_ErrOnConventionalPci_EinvalFromZeroCount()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        using var e = new InterruptEvent();
        m.SetEventFds(3, 0, e).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void CloseDevice_DisablesInterrupts()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        using var e = new InterruptEvent();
        m.EnableBusMaster();
        m.SetEventFds(2, 0, e).ShouldBe(0);
        m.Reopen("0000:00:02.0");
        m.EnableBusMaster();
        m.Write32(0, 0x08, 0);
        NoIommuDevice.Quiet(e).ShouldBeTrue();
        m.Action(2, Trigger, 0, 0).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Intx_CommandIntxDisable_MasksAndClearingUnmasksWithPendingResignal()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        using var e = new InterruptEvent();
        m.SetEventFds(0, 0, e).ShouldBe(0);
        m.WriteConfig16(0x04, 0x0402); // INTx disable
        m.Write32(0, 0x0c, 1);
        NoIommuDevice.Quiet(e).ShouldBeTrue();
        m.WriteConfig16(0x04, 0x0002); // clear: the pending level is signalled
        NoIommuDevice.Fired(e).ShouldBeTrue();
        m.Write32(0, 0x0c, 0);
        m.Action(0, VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK).ShouldBe(0);
        m.Write32(0, 0x0c, 1);
        NoIommuDevice.Fired(e).ShouldBeTrue();
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_intrs.c vfio_pci_set_irqs_ioctl")]
    public void Intx_MaskAction_HoldsTheInterruptUntilUnmask()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        using var e = new InterruptEvent();
        m.SetEventFds(0, 0, e).ShouldBe(0);
        m.Action(0, VfioUapi.VFIO_IRQ_SET_ACTION_MASK).ShouldBe(0);
        m.Write32(0, 0x0c, 1);
        NoIommuDevice.Quiet(e).ShouldBeTrue();
        m.Action(0, VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK).ShouldBe(0);
        NoIommuDevice.Fired(e).ShouldBeTrue();
        m.SetIrqs(0, DataEventFd | VfioUapi.VFIO_IRQ_SET_ACTION_MASK, 0, 1, new byte[4]).ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_reset")]
    public void Reset_EduWithoutFlr_Einval()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_RESET, 0).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_reset")]
    public void Reset_WithFlr_ResetsTheDeviceState()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.Write32(0, 0x04, 0x1234);
        m.Read32(0, 0x04).ShouldBe(0x1234u);
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_RESET, 0).ShouldBe(0);
        m.Read32(0, 0x04).ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void Config_PcieFlrBit_ResetsAndReadsBackZero()
    {
        using var m = NoIommuDevice.Pci(new MsixTestDevice());
        m.Write32(0, 0x04, 0x55);
        m.WriteConfig16(0x48, 0x8000);
        m.ReadConfig16(0x48).ShouldBe((ushort)0);
        m.Read32(0, 0x04).ShouldBe(0u);
    }

    private int Feature(NoIommuDevice m, uint flags, int dataSize = 0, uint? argsz = null)
    {
        byte[] buffer = new byte[8 + dataSize];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, argsz ?? (uint)buffer.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(4), flags);
        return m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_FEATURE, buffer.AsSpan());
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_ioctl_device_feature")]
    public void Feature_ValidationOrder()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_PROBE | 3, argsz: 7).ShouldBe(EINVAL);
        Feature(m, (1u << 19) | 3).ShouldBe(EINVAL);
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_GET | VfioUapi.VFIO_DEVICE_FEATURE_SET | 3).ShouldBe(EINVAL);
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_PROBE | VfioUapi.VFIO_DEVICE_FEATURE_GET | 1).ShouldBe(-(int)Errno.ENOTTY); // no migration
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_PROBE | VfioUapi.VFIO_DEVICE_FEATURE_SET | 0).ShouldBe(-(int)Errno.ENOTTY); // not an SR-IOV PF
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_PROBE | VfioUapi.VFIO_DEVICE_FEATURE_SET | 10).ShouldBe(-(int)Errno.ENOTTY); // CDX only
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_PROBE | VfioUapi.VFIO_DEVICE_FEATURE_GET | 3).ShouldBe(EINVAL);
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_PROBE | VfioUapi.VFIO_DEVICE_FEATURE_SET | 3).ShouldBe(0);
        Feature(m, 3).ShouldBe(EINVAL);
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_SET | 4, dataSize: 4).ShouldBe(EINVAL); // data shorter than 8
    }

    [Fact]
    [Spec("drivers/vfio/vfio_main.c vfio_ioctl_device_feature")]
    public void Feature_LowPowerEntryExit_StateMachine()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_SET | 3).ShouldBe(0);
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_SET | 3).ShouldBe(EINVAL);
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_SET | 5).ShouldBe(0);
        Feature(m, VfioUapi.VFIO_DEVICE_FEATURE_SET | 5).ShouldBe(0);
        byte[] buffer = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, 16);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(4), VfioUapi.VFIO_DEVICE_FEATURE_SET | 4);
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(8), -1);
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_FEATURE, buffer.AsSpan()).ShouldBe(EINVAL);
        using var wake = new InterruptEvent();
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(8), (int)wake.Handle.DangerousGetHandle());
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_FEATURE, buffer.AsSpan()).ShouldBe(0);
        m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_FEATURE, buffer.AsSpan()).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw")]
    public void Mmap_AccessWhileMemoryDisabled_FaultsLikeSigbus()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.Map(m.Device, 0, 4096, MemoryProtection.ReadWrite, out MemoryMapping? bar).ShouldBe(0);
        using (bar)
        {
            bar!.Read32(0).ShouldBe(0x010000edu);
            m.WriteConfig16(0x04, 0);
            Should.Throw<InvalidOperationException>(() => bar.Read32(0));
        }
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_config.c vfio_config_do_rw")]
    public void SysfsAttributes_EduIdentity()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        m.Kernel.ReadText("/sys/bus/pci/devices/0000:00:02.0/vendor", out string vendor).ShouldBe(0);
        vendor.ShouldBe("0x1234");
        m.Kernel.ReadText("/sys/bus/pci/devices/0000:00:02.0/device", out string device).ShouldBe(0);
        device.ShouldBe("0x11e8");
        m.Kernel.ReadText("/sys/bus/pci/devices/0000:00:02.0/class", out string cls).ShouldBe(0);
        cls.ShouldBe("0x00ff00");
    }
}
