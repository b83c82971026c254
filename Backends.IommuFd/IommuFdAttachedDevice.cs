// SPDX-License-Identifier: MIT
using System.Globalization;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;

namespace Vfio.Backends.IommuFd;

/// <summary>
/// A device the iommufd backend attached: its cdev is bound to the backend's iommufd (<see cref="DeviceId"/>) and
/// attached to a hardware page table (<see cref="HwptId"/>) of its DMA space's IOAS.
/// </summary>
public sealed class IommuFdAttachedDevice : AttachedDevice
{
    internal IommuFdAttachedDevice(IommuFdBackend backend, IommuFdContainer container, VfioDevice device, VfioDeviceSource source,
        SafeFileHandle cdevFd, uint deviceId, uint hwptId, int? iommuGroup, IommuHardwareInfo hardwareInfo)
        : base(backend, container, device, source)
    {
        CdevFd = cdevFd ?? throw new ArgumentNullException(nameof(cdevFd));
        DeviceId = deviceId;
        HwptId = hwptId;
        IommuGroup = iommuGroup;
        HardwareInfo = hardwareInfo;
    }

    /// <summary>The device's object id in the iommufd (<c>VFIO_DEVICE_BIND_IOMMUFD</c>'s <c>out_devid</c>); a PCI hot
    /// reset proves ownership with it.</summary>
    public uint DeviceId { get; }

    /// <summary>The hardware page table the device is attached to.</summary>
    public uint HwptId { get; }

    /// <inheritdoc/>
    public override int? IommuGroup { get; }

    /// <summary>What <c>IOMMU_GET_HW_INFO</c> reported about the device's IOMMU.</summary>
    public IommuHardwareInfo HardwareInfo { get; }

    /// <summary>The IOAS container the device is in.</summary>
    public IommuFdContainer IommuFdContainer => (IommuFdContainer)Container;

    internal SafeFileHandle CdevFd { get; }

    /// <inheritdoc/>
    protected override string AttachmentDetails
        => $"devid {DeviceId.ToString(CultureInfo.InvariantCulture)}, HWPT {HwptId.ToString(CultureInfo.InvariantCulture)}, IOMMU {HardwareInfo}";

    /// <summary>The iommufd proof: the device-id form (the kernel checks that every device the reset affects is bound
    /// to this device's iommufd).</summary>
    /// <returns>The proof.</returns>
    protected override HotResetProof CreateHotResetProof() => DeviceIdProof(DeviceId);
}
