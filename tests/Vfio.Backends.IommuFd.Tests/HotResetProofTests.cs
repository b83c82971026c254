// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;
using static System.Buffers.Binary.BinaryPrimitives;

namespace Vfio.Backends.IommuFd.Tests;

/// <summary>The iommufd hot-reset proof: the device-id form, an empty group-fd array the kernel accepts because every
/// affected device is bound to the same iommufd.</summary>
public sealed class HotResetProofTests
{
    [Fact]
    public void ProofIsTheDeviceIdForm_AndTheKernelAcceptsAResetWithNoGroupFds()
    {
        using SimulatedKernel kernel = TestKit.Machine(t => t
            .AddPci("0000:01:00.0", iommuGroup: 4, new EduDevice())
            .AddPci("0000:01:00.1", iommuGroup: 5, new EduDevice()));
        using var backend = new IommuFdBackend(kernel);
        using var space = new DmaSpace();
        using AttachedDevice first = backend.AttachDevice(VfioDeviceSource.Pci("0000:01:00.0"), space);
        using AttachedDevice second = backend.AttachDevice(VfioDeviceSource.Pci("0000:01:00.1"), space);

        HotResetProof proof = first.GetHotResetProof();

        proof.UsesDeviceIds.ShouldBeTrue();
        proof.DeviceId.ShouldBe(((IommuFdAttachedDevice)first).DeviceId);
        proof.Groups.ShouldBeEmpty();
        byte[] info = new byte[12 + (8 * 4)];
        WriteUInt32LittleEndian(info, (uint)info.Length);
        kernel.Ioctl(first.Device.Handle, VfioUapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info.AsSpan()).ShouldBe(0);
        uint flags = ReadUInt32LittleEndian(info.AsSpan(4));
        (flags & VfioUapi.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED).ShouldNotBe(0u, "both devices are bound to this iommufd");
        uint[] ids = [ReadUInt32LittleEndian(info.AsSpan(12)), ReadUInt32LittleEndian(info.AsSpan(20))];
        ids.ShouldContain(proof.DeviceId!.Value);
        int[] fds = proof.SelectGroupFds([4, 5]);
        fds.ShouldBeEmpty();

        byte[] reset = new byte[12];
        WriteUInt32LittleEndian(reset, (uint)reset.Length);
        WriteUInt32LittleEndian(reset.AsSpan(8), (uint)fds.Length);
        kernel.Ioctl(first.Device.Handle, VfioUapi.VFIO_DEVICE_PCI_HOT_RESET, reset.AsSpan()).ShouldBe(0);
        second.GetHotResetProof().DeviceId.ShouldBe(((IommuFdAttachedDevice)second).DeviceId);
    }
}
