// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Devices.Pci;

public sealed partial class VfioPciDevice
{
    /// <summary>The command bits a reset quiesces: I/O and memory decoding, bus mastering, and INTx disable (put in a
    /// known state).</summary>
    public const PciCommand QuiescedBits = PciCommand.IoSpace | PciCommand.MemorySpace | PciCommand.BusMaster | PciCommand.InterruptDisable;

    private const uint DevIdNotOwned = 0xFFFF_FFFF;

    /// <summary>
    /// Resets the function (<c>VFIO_DEVICE_RESET</c>) the way QEMU's vfio-pci does: first the device is quiesced
    /// (I/O, memory and bus master cleared in the command register, INTx disable cleared), then reset. vfio-pci saves
    /// and restores the configuration around the reset, so afterwards the command register holds the quiesced value:
    /// enable memory and bus mastering again before using the device. BAR mappings stay valid (the kernel zaps and
    /// refaults them).
    /// </summary>
    /// <exception cref="PciResetUnavailableException">The device has no function reset
    /// (<see cref="SupportsReset"/> is false); nothing was changed.</exception>
    /// <exception cref="VfioException">The reset failed.</exception>
    public void Reset()
    {
        ThrowIfDisposed();
        if (!SupportsReset)
        {
            throw new PciResetUnavailableException("VFIO_DEVICE_RESET", Name,
                "the device has no function reset (vfio-pci found no FLR, PM or device-specific reset, and it does not sit alone on a resettable bus; VFIO_DEVICE_FLAGS_RESET is clear)",
                "Use HotReset() if GetHotResetInfo() shows a slot or bus reset you own; otherwise the device cannot be reset from user space.");
        }
        Quiesce();
        Device.Reset();
        AfterReset();
    }

    /// <summary>
    /// Asks the kernel what a PCI hot reset (slot or secondary bus reset) of this device would reset
    /// (<c>VFIO_DEVICE_GET_PCI_HOT_RESET_INFO</c>), and whether this process owns each device through its backend's
    /// proof (<see cref="AttachedDevice.GetHotResetProof"/>).
    /// </summary>
    /// <returns>The affected devices.</returns>
    /// <exception cref="PciResetUnavailableException">Neither the device's slot nor its bus can be reset
    /// (<c>ENODEV</c>: e.g. a device on the root bus).</exception>
    /// <exception cref="VfioException">The kernel refused otherwise.</exception>
    public PciHotResetInfo GetHotResetInfo() => GetHotResetInfo(Attached.GetHotResetProof());

    private PciHotResetInfo GetHotResetInfo(HotResetProof proof)
    {
        ThrowIfDisposed();
        int headerSize = vfio_pci_hot_reset_info.devices_offset;
        int entrySize = Unsafe.SizeOf<vfio_pci_dependent_device>();
        int capacity = 8;
        for (int attempt = 0; ; attempt++)
        {
            byte[] buffer = new byte[headerSize + (capacity * entrySize)];
            MemoryMarshal.Write(buffer, new vfio_pci_hot_reset_info { argsz = (uint)buffer.Length });
            int rc = Device.Kernel.Ioctl(Device.Handle, VfioUapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buffer.AsSpan());
            vfio_pci_hot_reset_info header = MemoryMarshal.Read<vfio_pci_hot_reset_info>(buffer);
            if (rc == -(int)Errno.ENOSPC && attempt < 3 && header.count > (uint)capacity && header.count <= 4096)
            {
                capacity = (int)header.count;
                continue;
            }
            if (rc == -(int)Errno.ENODEV)
            {
                throw NoHotReset();
            }
            VfioException.ThrowIfFailed(rc, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", Name);
            bool byDeviceId = (header.flags & VfioUapi.VFIO_PCI_HOT_RESET_FLAG_DEV_ID) != 0;
            var devices = new PciHotResetDevice[Math.Min(header.count, (uint)capacity)];
            for (int i = 0; i < devices.Length; i++)
            {
                vfio_pci_dependent_device entry = MemoryMarshal.Read<vfio_pci_dependent_device>(buffer.AsSpan(headerSize + (i * entrySize)));
                string address = string.Create(CultureInfo.InvariantCulture, $"{entry.segment:x4}:{entry.bus:x2}:{entry.devfn >> 3:x2}.{entry.devfn & 7:x}");
                devices[i] = byDeviceId
                    ? new PciHotResetDevice(address, null, entry.devid is 0 or DevIdNotOwned ? null : entry.devid, entry.devid != DevIdNotOwned && proof.UsesDeviceIds)
                    : new PciHotResetDevice(address, (int)entry.group_id, null, !proof.UsesDeviceIds && proof.Groups.Any(g => g.Number == (int)entry.group_id));
            }
            return new PciHotResetInfo(devices, byDeviceId);
        }
    }

    /// <summary>
    /// Resets the device's slot or secondary bus (<c>VFIO_DEVICE_PCI_HOT_RESET</c>), with the ownership proof of the
    /// device's backend (<see cref="AttachedDevice.GetHotResetProof"/>): the group fds of the affected IOMMU groups
    /// (legacy containers, iommufd as a container) or the device-id form with no fds (iommufd). This device is
    /// quiesced first as for <see cref="Reset"/>; the other affected devices are reset as they are.
    /// </summary>
    /// <returns>What was reset.</returns>
    /// <exception cref="PciResetUnavailableException">Neither the slot nor the bus can be reset.</exception>
    /// <exception cref="PciHotResetOwnershipException">An affected device is not covered by the proof, or is not bound
    /// to a VFIO driver (named in the exception); nothing was reset.</exception>
    /// <exception cref="VfioException">The kernel refused the reset.</exception>
    public PciHotResetInfo HotReset() => HotReset(Attached.GetHotResetProof());

    /// <summary>
    /// Resets the device's slot or secondary bus with an ownership proof given by the caller, e.g. one gathered from
    /// another attached device of the same backend (the group-fd form must hold every affected group).
    /// </summary>
    /// <param name="proof">The proof; its form must be the device's (group fds for a group-opened device, device ids
    /// for a cdev-opened one).</param>
    /// <returns>What was reset.</returns>
    /// <exception cref="ArgumentException">The proof's form is not the device's.</exception>
    /// <exception cref="PciResetUnavailableException">Neither the slot nor the bus can be reset.</exception>
    /// <exception cref="PciHotResetOwnershipException">An affected device is not covered by the proof, or is not bound
    /// to a VFIO driver (named in the exception); nothing was reset.</exception>
    /// <exception cref="VfioException">The kernel refused the reset.</exception>
    public PciHotResetInfo HotReset(HotResetProof proof)
    {
        ArgumentNullException.ThrowIfNull(proof);
        PciHotResetInfo info = GetHotResetInfo(proof);
        if (info.UsesDeviceIds != proof.UsesDeviceIds)
        {
            throw new ArgumentException(info.UsesDeviceIds
                ? $"{Name} was opened through its cdev (iommufd): its hot reset takes the device-id proof, not group fds. Use the proof of a device attached by the iommufd backend."
                : $"{Name} was opened through its IOMMU group: its hot reset takes group fds, not the device-id proof. Use the proof of a device attached by the legacy backend.", nameof(proof));
        }
        foreach (PciHotResetDevice device in info.Devices)
        {
            if (!device.IsOwned)
            {
                throw NotOwned(device, info.UsesDeviceIds);
            }
            string? driver = VfioSysfs.GetDriver(Device.Kernel, "/sys/bus/pci/devices/" + device.Address);
            if (!VfioSysfs.IsVfioDriver(driver))
            {
                throw new PciHotResetOwnershipException(Name, device.Address,
                    $"the hot reset affects {device.Address}, which is {(driver is null ? "bound to no driver" : "bound to " + driver)}: the kernel resets only functions bound to vfio-pci, and no proof can cover another driver's device",
                    $"Bind {device.Address} to vfio-pci (and attach it through the same backend), or reset a device whose slot or bus holds only devices you own.");
            }
        }
        int[] fds = proof.SelectGroupFds(info.UsesDeviceIds ? [] : info.Devices.Select(d => d.IommuGroup!.Value));
        int headerSize = vfio_pci_hot_reset_info.devices_offset;
        byte[] buffer = new byte[headerSize + (fds.Length * sizeof(int))];
        MemoryMarshal.Write(buffer, new vfio_pci_hot_reset { argsz = (uint)buffer.Length, count = (uint)fds.Length });
        for (int i = 0; i < fds.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(headerSize + (i * sizeof(int))), fds[i]);
        }
        Quiesce();
        int rc = Device.Kernel.Ioctl(Device.Handle, VfioUapi.VFIO_DEVICE_PCI_HOT_RESET, buffer.AsSpan());
        GC.KeepAlive(proof);
        if (rc == -(int)Errno.ENODEV)
        {
            throw NoHotReset();
        }
        if (rc < 0)
        {
            string? hint = rc == -(int)Errno.EINVAL
                ? "Every affected device must be bound to vfio-pci and owned by this process (GetHotResetInfo lists them): attach each through the same backend."
                : null;
            throw new VfioException((Errno)(-rc), "VFIO_DEVICE_PCI_HOT_RESET", Name, hint);
        }
        AfterReset();
        return info;
    }

    /// <summary>Hook for the interrupt part of this class: called before a reset quiesces the device (QEMU disables
    /// the device's interrupts first).</summary>
    partial void BeforeResetInterrupts();

    /// <summary>Hook for the interrupt part of this class: called after a successful reset (QEMU re-arms INTx).</summary>
    partial void AfterResetInterrupts();

    private void Quiesce()
    {
        BeforeResetInterrupts();
        UpdateCommand(PciCommand.None, QuiescedBits);
    }

    private void AfterReset() => AfterResetInterrupts();

    private PciResetUnavailableException NoHotReset() => new("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", Name,
        "neither the device's slot nor its bus can be reset (ENODEV): it sits on the root bus, or its bus has a device that cannot take a bus reset",
        SupportsReset ? "Use Reset() (the device has a function reset)." : "The device cannot be reset from user space; place it behind a PCIe root port or bridge of its own to get a bus reset.",
        Errno.ENODEV);

    private PciHotResetOwnershipException NotOwned(PciHotResetDevice device, bool byDeviceId)
    {
        string detail = byDeviceId
            ? $"the hot reset affects {device.Address}, which is not bound to this process's iommufd (nor is any device of its IOMMU group), so the device-id proof does not cover it"
            : $"the hot reset affects {device.Address} in IOMMU group {device.IommuGroup}, which this process's backend has not opened, so the group-fd proof does not cover it";
        string hint = $"Attach {device.Address} through the same backend before the reset (bind it to vfio-pci first if another driver has it), or reset a device whose slot or bus holds only devices you own.";
        return new PciHotResetOwnershipException(Name, device.Address, detail, hint);
    }
}
