// SPDX-License-Identifier: MIT
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;

namespace Vfio.Simulator.Tests;

/// <summary>The simulated kernel's plumbing: /dev and /sys, real fd numbers, release on last close, fault injection.</summary>
public sealed class SimulatedKernelCoreTests
{
    private static SimulatedKernel NoIommuMachine(params string[] devices)
    {
        var topology = new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false, DeviceCdev = false };
        foreach (string device in devices)
        {
            topology.AddPci(device, iommuGroup: 0, model: null, driver: "e1000e");
        }
        return new SimulatedKernel(topology);
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops")]
    public void Open_ContainerNode_IsARealFdIdentifiedAsContainerThroughSysfs()
    {
        using var kernel = NoIommuMachine();
        kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle container).ShouldBe(0);
        using (container)
        {
            container.IsInvalid.ShouldBeFalse();
            kernel.GetStatus(container, out FileStatus status).ShouldBe(0);
            status.Type.ShouldBe(FileType.CharacterDevice);
            status.DeviceNumber.ShouldBe("10:196");
            VfioFdValidator.Expect(kernel, container, VfioFdKind.Container, "container").Name.ShouldBe("vfio");
            kernel.ReadLink($"/proc/self/fd/{container.DangerousGetHandle()}", out string link).ShouldBe(0);
            link.ShouldBe("/dev/vfio/vfio");
        }
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_fops")]
    public void Open_MissingNode_Enoent_IommuFdAbsentWithoutConfig()
    {
        using var kernel = NoIommuMachine();
        kernel.Open("/dev/iommu", OpenFlags.ReadWrite, out SafeFileHandle h).ShouldBe(-(int)Errno.ENOENT);
        h.Dispose();
        kernel.Open("/dev/vfio/7", OpenFlags.ReadWrite, out h).ShouldBe(-(int)Errno.ENOENT);
        h.Dispose();
        kernel.Exists("/dev/iommu").ShouldBeFalse();
        kernel.Exists("/dev/vfio/vfio").ShouldBeTrue();
    }

    [Fact]
    public void DenyDeviceNodes_OpenFailsWithEacces()
    {
        using var kernel = NoIommuMachine();
        kernel.DenyDeviceNodes = true;
        kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle h).ShouldBe(-(int)Errno.EACCES);
        h.Dispose();
    }

    [Fact]
    public void RealPaths_GoToTheRealKernel()
    {
        using var kernel = NoIommuMachine();
        kernel.Open("/dev/null", OpenFlags.ReadOnly, out SafeFileHandle devNull).ShouldBe(0);
        using (devNull)
        {
            kernel.GetStatus(devNull, out FileStatus status).ShouldBe(0);
            status.DeviceNumber.ShouldBe("1:3");
            kernel.Ioctl(devNull, Vfio.Core.Interop.VfioUapi.VFIO_GET_API_VERSION, 0).ShouldBe(-(int)Errno.ENOTTY);
        }
    }

    [Fact]
    public void Release_RunsOnLastClose_AcrossDupAndScmRights()
    {
        using var kernel = NoIommuMachine();
        kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle container).ShouldBe(0);
        kernel.OpenFileCount.ShouldBe(1);

        // Pass it over a socket: the received fd is another reference to the same open file.
        string path = Path.Combine(Path.GetTempPath(), $"sim-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        using var a = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        a.Connect(new UnixDomainSocketEndPoint(path));
        using Socket b = listener.Accept();
        File.Delete(path);
        FdPassing.Send(a, [new NamedFd("container", container)]);
        using ReceivedFds received = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
        SafeFileHandle copy = received.Take("container");

        container.Dispose();
        kernel.OpenFileCount.ShouldBe(1);
        // The copy still works: same open file.
        kernel.Ioctl(copy, Vfio.Core.Interop.VfioUapi.VFIO_GET_API_VERSION, 0).ShouldBe(0);
        copy.Dispose();
        kernel.OpenFileCount.ShouldBe(0);
    }

    [Fact]
    public void Faults_NthIoctl_FailsWithChosenErrno()
    {
        using var kernel = NoIommuMachine();
        kernel.Open("/dev/vfio/vfio", OpenFlags.ReadWrite, out SafeFileHandle container).ShouldBe(0);
        using (container)
        {
            uint version = Vfio.Core.Interop.VfioUapi.VFIO_GET_API_VERSION;
            kernel.Faults.FailIoctl(version, nth: 2, Errno.EIO);
            kernel.Ioctl(container, version, 0).ShouldBe(0);
            kernel.Ioctl(container, version, 0).ShouldBe(-(int)Errno.EIO);
            kernel.Ioctl(container, version, 0).ShouldBe(0);
            kernel.Faults.CallCount(version).ShouldBe(3);
            kernel.Faults.FailIoctl(version, nth: 1, Errno.ENOMEM, andAfter: true);
            kernel.Ioctl(container, version, 0).ShouldBe(-(int)Errno.ENOMEM);
            kernel.Ioctl(container, version, 0).ShouldBe(-(int)Errno.ENOMEM);
            kernel.Faults.Clear();
            kernel.Ioctl(container, version, 0).ShouldBe(0);
        }
    }

    [Fact]
    public void Sysfs_PciDeviceOfAnotherDriver_LinksResolveAsOnLinux()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology().AddPci("0000:00:03.0", iommuGroup: 3, model: null, driver: "nvme"));
        kernel.ReadLink("/sys/bus/pci/devices/0000:00:03.0", out string device).ShouldBe(0);
        device.ShouldBe("../../../devices/pci0000:00/0000:00:03.0");
        kernel.ReadLink("/sys/bus/pci/devices/0000:00:03.0/iommu_group", out string group).ShouldBe(0);
        group.ShouldBe("../../../kernel/iommu_groups/3");
        kernel.ReadLink("/sys/bus/pci/devices/0000:00:03.0/driver", out string driver).ShouldBe(0);
        Path.GetFileName(driver).ShouldBe("nvme");
        kernel.ListDirectory("/sys/kernel/iommu_groups/3/devices", out string[] members).ShouldBe(0);
        members.ShouldBe(["0000:00:03.0"]);
        // Through links in the middle of a path.
        kernel.ListDirectory("/sys/bus/pci/devices/0000:00:03.0/iommu_group/devices", out members).ShouldBe(0);
        members.ShouldBe(["0000:00:03.0"]);
        // No VFIO driver: no group node.
        kernel.Exists("/dev/vfio/3").ShouldBeFalse();
        kernel.ReadText("/sys/bus/pci/devices/0000:00:03.0/missing", out _).ShouldBe(-(int)Errno.ENOENT);
        kernel.ReadText("/sys/bus/pci/devices/0000:00:03.0/driver/0000:00:03.0/iommu_group/type", out string type).ShouldBe(0);
        type.ShouldBe("DMA-FQ");   // as the testbed guest (Linux 6.12, CONFIG_IOMMU_DEFAULT_DMA_LAZY)
    }

    /// <summary>The testbed machine's bridge group as the real guest shows it (Linux 6.12, q35, pci-bridge at 00:05.0):
    /// the devices behind the bridge live in its sysfs folder, their links climb one level more, and the bridge, the edu
    /// on vfio-pci and the virtio-rng on virtio-pci are the members of group 5.</summary>
    [Fact]
    public void Sysfs_TestbedBridgeGroup_MatchesTheRealGuest()
    {
        using var kernel = new SimulatedKernel(SimulatedMachines.Testbed());
        kernel.ReadLink("/sys/bus/pci/devices/0000:01:01.0", out string device).ShouldBe(0);
        device.ShouldBe("../../../devices/pci0000:00/0000:00:05.0/0000:01:01.0");
        kernel.ReadLink("/sys/bus/pci/devices/0000:01:01.0/iommu_group", out string group).ShouldBe(0);
        group.ShouldBe("../../../../kernel/iommu_groups/5");
        kernel.ReadLink("/sys/bus/pci/devices/0000:01:01.0/driver", out string driver).ShouldBe(0);
        driver.ShouldBe("../../../../bus/pci/drivers/vfio-pci");
        kernel.ReadLink("/sys/bus/pci/devices/0000:01:02.0/driver", out driver).ShouldBe(0);
        driver.ShouldBe("../../../../bus/pci/drivers/virtio-pci");
        kernel.ReadLink("/sys/bus/pci/devices/0000:00:05.0/driver", out _).ShouldBe(-(int)Errno.ENOENT);
        kernel.ReadLink("/sys/bus/pci/devices/0000:00:05.0/iommu_group", out group).ShouldBe(0);
        group.ShouldBe("../../../kernel/iommu_groups/5");
        kernel.ListDirectory("/sys/kernel/iommu_groups/5/devices", out string[] members).ShouldBe(0);
        members.Order(StringComparer.Ordinal).ShouldBe(["0000:00:05.0", "0000:01:01.0", "0000:01:02.0"]);
        kernel.ListDirectory("/sys/bus/pci/devices/0000:01:01.0/vfio-dev", out string[] cdevs).ShouldBe(0);
        cdevs.ShouldBe(["vfio3"]);   // bound last of the four
        kernel.Exists("/dev/vfio/5").ShouldBeTrue();
        kernel.ReadText("/sys/bus/pci/devices/0000:01:01.0/iommu_group/type", out string type).ShouldBe(0);
        type.ShouldBe("DMA-FQ");   // as the testbed guest (Linux 6.12, CONFIG_IOMMU_DEFAULT_DMA_LAZY)
        // The bridge and the virtio-rng have no model, yet sysfs gives their identity as QEMU 10 does in the guest.
        string[] identity = ["vendor", "device", "class", "revision", "subsystem_vendor", "subsystem_device"];
        identity.Select(a => Read(kernel, "/sys/bus/pci/devices/0000:00:05.0/" + a))
            .ShouldBe(["0x1b36", "0x0001", "0x060400", "0x00", "0x0000", "0x0000"]);
        identity.Select(a => Read(kernel, "/sys/bus/pci/devices/0000:01:02.0/" + a))
            .ShouldBe(["0x1af4", "0x1005", "0x00ff00", "0x00", "0x1af4", "0x0004"]);
        identity.Select(a => Read(kernel, "/sys/bus/pci/devices/0000:01:01.0/" + a))
            .ShouldBe(["0x1234", "0x11e8", "0x00ff00", "0x10", "0x1af4", "0x1100"]);
        // The devices on the root bus keep their groups of one.
        for (int g = 2; g <= 4; g++)
        {
            kernel.ListDirectory($"/sys/kernel/iommu_groups/{g}/devices", out members).ShouldBe(0);
            members.ShouldBe([$"0000:00:0{g}.0"]);
        }
    }

    [Fact]
    public void Topology_IdentityIsForADeviceWithoutAModel_OneWithoutEitherHasNone()
    {
        Should.Throw<ArgumentException>(() => new SimulatedTopology().AddPci("0000:00:02.0", 2, new EduDevice(), identity: SimulatedPciIdentity.QemuPciBridge))
            .ParamName.ShouldBe("identity");
        using var kernel = new SimulatedKernel(new SimulatedTopology().AddPci("0000:00:03.0", iommuGroup: 3, model: null, driver: "nvme"));
        kernel.ReadText("/sys/bus/pci/devices/0000:00:03.0/vendor", out _).ShouldBe(-(int)Errno.ENOENT);
    }

    [Fact]
    public void Topology_BridgeMustBeAPciDeviceAddedBefore()
    {
        Should.Throw<ArgumentException>(() => new SimulatedTopology().AddPci("0000:01:00.0", 1, model: null, driver: "", bridge: "0000:00:05.0"))
            .Message.ShouldContain("0000:00:05.0");
    }

    private static string Read(SimulatedKernel kernel, string path)
    {
        kernel.ReadText(path, out string text).ShouldBe(0, path);
        return text;
    }
}
