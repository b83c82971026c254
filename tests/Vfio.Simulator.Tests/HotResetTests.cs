// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator.Tests;

/// <summary>vfio-pci hot reset through the group path (vfio_pci_ioctl_pci_hot_reset).</summary>
public sealed class HotResetTests
{
    private const int EINVAL = -(int)Errno.EINVAL;

    private static SimulatedTopology Bus1(bool withForeignDevice = false)
    {
        var topology = new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true }
            .AddPci("0000:01:00.0", 0, new MsixTestDevice())
            .AddPci("0000:01:00.1", 0, new EduDevice(ulong.MaxValue));
        if (withForeignDevice)
        {
            topology.AddPci("0000:01:00.2", 0, model: null, driver: "e1000e");
        }
        return topology;
    }

    private static int Info(NoIommuDevice m, byte[] buffer) => m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buffer.AsSpan());

    private static int Reset(NoIommuDevice m, uint flags, uint? argsz, params int[] fds)
    {
        byte[] buffer = new byte[12 + (4 * fds.Length)];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, argsz ?? (uint)buffer.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(8), (uint)fds.Length);
        for (int i = 0; i < fds.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(12 + (4 * i)), fds[i]);
        }
        return m.Kernel.Ioctl(m.Device, VfioUapi.VFIO_DEVICE_PCI_HOT_RESET, buffer.AsSpan());
    }

    private static int Fd(SafeFileHandle h) => (int)h.DangerousGetHandle();

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_pci_hot_reset")]
    public void RootBusDevice_NoBusReset_Enodev()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        byte[] buffer = new byte[64];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, 64);
        Info(m, buffer).ShouldBe(-(int)Errno.ENODEV);
        Reset(m, 0, null, Fd(m.Group)).ShouldBe(-(int)Errno.ENODEV);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_pci_hot_reset")]
    public void HotReset_HeaderChecks_BeforeTopology()
    {
        using var m = NoIommuDevice.Pci(new EduDevice());
        Reset(m, 0, 11, Fd(m.Group)).ShouldBe(EINVAL);
        Reset(m, 1, null, Fd(m.Group)).ShouldBe(EINVAL);
        Reset(m, 0, null).ShouldBe(EINVAL); // group-opened device with count 0
        byte[] small = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(small, 11);
        Info(m, small).ShouldBe(EINVAL);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_pci_hot_reset")]
    public void Info_TwoCallProtocol_EnospcThenEntries()
    {
        using var m = NoIommuDevice.Create(Bus1(), "0000:01:00.0");
        byte[] header = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 12);
        Info(m, header).ShouldBe(-(int)Errno.ENOSPC);
        BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)).ShouldBe(2u);
        byte[] full = new byte[12 + 16];
        BinaryPrimitives.WriteUInt32LittleEndian(full, (uint)full.Length);
        Info(m, full).ShouldBe(0);
        BinaryPrimitives.ReadUInt32LittleEndian(full.AsSpan(4)).ShouldBe(0u);
        BinaryPrimitives.ReadUInt32LittleEndian(full.AsSpan(12)).ShouldBe(0u);  // group noiommu-0
        full[18].ShouldBe((byte)1);                                               // bus
        full[19].ShouldBe((byte)0);                                               // devfn 00.0
        BinaryPrimitives.ReadUInt32LittleEndian(full.AsSpan(20)).ShouldBe(1u);  // group noiommu-1
        full[27].ShouldBe((byte)1);                                               // devfn 00.1
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_pci_hot_reset")]
    public void Info_AffectedDeviceWithoutGroup_Eperm()
    {
        using var m = NoIommuDevice.Create(Bus1(withForeignDevice: true), "0000:01:00.0");
        byte[] full = new byte[12 + 24];
        BinaryPrimitives.WriteUInt32LittleEndian(full, (uint)full.Length);
        Info(m, full).ShouldBe(-(int)Errno.EPERM);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_pci_hot_reset")]
    public void HotReset_AllGroupsGiven_ResetsEveryFunction()
    {
        using var m = NoIommuDevice.Create(Bus1(), "0000:01:00.0");
        using SafeFileHandle second = m.AddGroup("/dev/vfio/noiommu-1");
        m.Write32(0, 0x04, 0x77);
        Reset(m, 0, null, Fd(m.Group)).ShouldBe(EINVAL);              // group 1 not given: not owned
        m.Read32(0, 0x04).ShouldBe(0x77u);
        Reset(m, 0, null, Fd(m.Group), Fd(second)).ShouldBe(0);
        m.Read32(0, 0x04).ShouldBe(0u);
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_pci_hot_reset")]
    public void HotReset_BadFds()
    {
        using var m = NoIommuDevice.Create(Bus1(), "0000:01:00.0");
        Reset(m, 0, null, Fd(m.Group), Fd(m.Group), Fd(m.Group)).ShouldBe(EINVAL); // count > affected devices
        Reset(m, 0, null, 999_999).ShouldBe(-(int)Errno.EBADF);
        m.Kernel.Open("/dev/null", OpenFlags.ReadOnly, out SafeFileHandle devNull).ShouldBe(0);
        using (devNull)
        {
            Reset(m, 0, null, Fd(devNull)).ShouldBe(EINVAL);
        }
    }

    [Fact]
    [Spec("drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_pci_hot_reset")]
    public void HotReset_AffectedDeviceNotOnVfioPci_Einval()
    {
        using var m = NoIommuDevice.Create(Bus1(withForeignDevice: true), "0000:01:00.0");
        using SafeFileHandle second = m.AddGroup("/dev/vfio/noiommu-1");
        Reset(m, 0, null, Fd(m.Group), Fd(second)).ShouldBe(EINVAL);
    }
}
