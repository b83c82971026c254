// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;

namespace Vfio.Backends.Legacy.Tests;

/// <summary>The legacy hot-reset proof: the group fds the backend holds, from which a caller that knows only
/// <see cref="AttachedDevice"/> builds a <c>VFIO_DEVICE_PCI_HOT_RESET</c> the kernel accepts.</summary>
public sealed class HotResetProofTests
{
    private const string First = "0000:01:00.0";
    private const string Second = "0000:01:00.1";

    /// <summary>Two edus on bus 1 (a bus reset reaches both), in IOMMU groups 4 and 5, a legacy backend and a space.</summary>
    private sealed class BusOfTwo : IDisposable
    {
        internal SimulatedKernel Kernel { get; } = new(new SimulatedTopology()
            .AddPci(First, iommuGroup: 4, Kit.NewEdu())
            .AddPci(Second, iommuGroup: 5, Kit.NewEdu()));

        internal DmaSpace Space { get; } = new();

        internal LegacyBackend Backend => field ??= new LegacyBackend(Kernel);

        internal AttachedDevice Attach(string name) => Backend.AttachDevice(Kit.Source(name), Space);

        public void Dispose()
        {
            Space.Dispose();
            Backend.Dispose();
            Kernel.Dispose();
        }
    }

    /// <summary>The group numbers VFIO_DEVICE_GET_PCI_HOT_RESET_INFO reports for the device's reset.</summary>
    private static int[] AffectedGroups(IKernel kernel, AttachedDevice device)
    {
        byte[] info = new byte[12 + (8 * 4)];
        BinaryPrimitives.WriteUInt32LittleEndian(info, (uint)info.Length);
        kernel.Ioctl(device.Device.Handle, VfioUapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info.AsSpan()).ShouldBe(0);
        BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(4)).ShouldBe(0u, "the group path reports group ids");
        int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(8));
        return [.. Enumerable.Range(0, count).Select(i => (int)BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(12 + (8 * i))))];
    }

    private static int Reset(IKernel kernel, AttachedDevice device, int[] groupFds)
    {
        byte[] reset = new byte[12 + (4 * groupFds.Length)];
        BinaryPrimitives.WriteUInt32LittleEndian(reset, (uint)reset.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(reset.AsSpan(8), (uint)groupFds.Length);
        for (int i = 0; i < groupFds.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(reset.AsSpan(12 + (4 * i)), groupFds[i]);
        }
        return kernel.Ioctl(device.Device.Handle, VfioUapi.VFIO_DEVICE_PCI_HOT_RESET, reset.AsSpan());
    }

    [Fact]
    public void ProofOfEitherDevice_GivesTheAffectedGroupsFds_AndTheKernelAcceptsTheReset()
    {
        using var bus = new BusOfTwo();
        IKernel kernel = bus.Kernel;
        AttachedDevice first = bus.Attach(First);
        AttachedDevice second = bus.Attach(Second);

        HotResetProof proof = first.GetHotResetProof();

        proof.UsesDeviceIds.ShouldBeFalse();
        proof.DeviceId.ShouldBeNull();
        proof.Groups.Select(static g => g.Number).Order().ShouldBe([4, 5]);
        int[] affected = AffectedGroups(kernel, first);
        affected.Order().ShouldBe([4, 5]);
        int[] fds = proof.SelectGroupFds(affected);
        fds.Length.ShouldBe(2);
        Reset(kernel, first, fds).ShouldBe(0);
        Reset(kernel, second, second.GetHotResetProof().SelectGroupFds([.. affected, .. affected])).ShouldBe(0);
        Reset(kernel, first, fds[..1]).ShouldBe(-(int)Errno.EINVAL, "the kernel wants the fd of every affected group");
    }

    [Fact]
    public void AffectedGroupNotOpen_IsRefusedBeforeTheKernel_NamingTheGroup()
    {
        using var bus = new BusOfTwo();
        AttachedDevice first = bus.Attach(First);

        HotResetProof proof = first.GetHotResetProof();
        VfioDeviceUnusableException e = Should.Throw<VfioDeviceUnusableException>(() => proof.SelectGroupFds(AffectedGroups(bus.Kernel, first)));

        e.Message.ShouldContain("IOMMU group 5");
        e.Hint.ShouldNotBeNull().ShouldContain("Attach a device of IOMMU group 5");
    }

    [Fact]
    public void DetachedDevice_GivesNoProof()
    {
        using var bus = new BusOfTwo();
        AttachedDevice first = bus.Attach(First);
        first.Dispose();

        Should.Throw<ObjectDisposedException>(() => first.GetHotResetProof());
    }
}
