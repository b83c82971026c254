// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;

namespace Vfio.Simulator.Tests;

/// <summary>The host facts a preflight check reads (module parameters, the IOMMU's class device, the process's
/// RLIMIT_MEMLOCK and capabilities) follow the topology, in the kernel's formats; and the library's sysfs discovery
/// (<see cref="VfioSysfs.ListDevices"/>) reads them back.</summary>
public sealed class HostFactsTests
{
    [Fact]
    [Spec("§5.1")]
    public void ModuleParameters_FollowTheTopology_InTheKernelsFormat()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { DmaEntryLimit = 77, AllowUnsafeInterrupts = true });
        Read(kernel, "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit").ShouldBe("77");
        Read(kernel, "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts").ShouldBe("Y");
        Read(kernel, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").ShouldBe("N");
        Read(kernel, "/sys/module/iommufd/parameters/allow_unsafe_interrupts").ShouldBe("N");
    }

    [Fact]
    [Spec("§4.8")]
    public void NoIommuMachine_HasNoIommuClassDevice_NorType1Parameters_AndNoIommuModeOn()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false });
        kernel.ListDirectory("/sys/class/iommu", out string[] iommus).ShouldBe(0);
        iommus.ShouldBeEmpty();
        kernel.Exists("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit").ShouldBeFalse();
        Read(kernel, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").ShouldBe("Y");
    }

    [Theory]
    [Spec("§5.6")]
    [InlineData(true, "f00f4a")]
    [InlineData(false, "f00f42")]
    public void VtdEcap_HasTheInterruptRemappingBit_OnlyWithRemapping(bool remapping, string ecap)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { InterruptRemapping = remapping });
        kernel.ListDirectory("/sys/class/iommu", out string[] iommus).ShouldBe(0);
        iommus.ShouldBe(["dmar0"]);
        Read(kernel, "/sys/class/iommu/dmar0/intel-iommu/ecap").ShouldBe(ecap);
        Read(kernel, "/sys/class/iommu/dmar0/intel-iommu/cap").ShouldBe("d2008c222f0606");
    }

    [Fact]
    [Spec("§5.3")]
    public void ProcLimits_ShowsTheTopologysMemlockLimit_AndKeepsTheOtherLimits()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { MemlockLimit = 65536 });
        string limits = Read(kernel, "/proc/self/limits");
        limits.Split('\n').ShouldContain("Max locked memory         65536                65536                bytes     ");
        limits.ShouldContain("Max open files");
        using var unlimited = new SimulatedKernel(new SimulatedTopology());
        Read(unlimited, "/proc/self/limits").ShouldContain("Max locked memory         unlimited            unlimited");
    }

    [Theory]
    [Spec("§4.8")]
    [InlineData(true, "000001ffffffbfff")]
    [InlineData(false, "0000000000000000")]
    public void ProcStatus_CapEff_NeverHasIpcLock_AndFollowsPrivileged(bool privileged, string capEff)
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { Privileged = privileged });
        string status = Read(kernel, "/proc/self/status");
        status.Split('\n').ShouldContain("CapEff:\t" + capEff);
        status.ShouldContain("Pid:");
    }

    [Fact]
    [Spec("§4.3")]
    public void ListDevices_NamesIdsDriversGroupsCdevs_AndTheDevicesThatBlockAGroup()
    {
        var topology = new SimulatedTopology()
            .AddPci("0000:00:02.0", iommuGroup: 2, new EduDevice())
            .AddPci("0000:00:05.0", iommuGroup: 5, new EduDevice())
            .AddPci("0000:00:05.1", iommuGroup: 5, model: null, driver: "e1000e")
            .AddPci("0000:00:06.0", iommuGroup: 6, model: null, driver: "pcieport");
        using var kernel = new SimulatedKernel(topology);

        IReadOnlyList<VfioDeviceEntry> devices = VfioSysfs.ListDevices(kernel);

        devices.Select(d => d.Name).ShouldBe(["0000:00:02.0", "0000:00:05.0", "0000:00:05.1", "0000:00:06.0"]);
        VfioDeviceEntry edu = devices[0];
        (edu.VendorId, edu.DeviceId, edu.Driver, edu.IommuGroup, edu.GroupNode, edu.CdevPath)
            .ShouldBe(((ushort?)0x1234, (ushort?)0x11e8, "vfio-pci", 2, "/dev/vfio/2", "/dev/vfio/devices/vfio0"));
        edu.IsBoundToVfio.ShouldBeTrue();
        edu.IsGroupViable.ShouldBeTrue();
        edu.Bus.ShouldBe(VfioBus.Pci);

        VfioDeviceEntry blocked = devices[1];
        blocked.IsGroupViable.ShouldBeFalse();
        blocked.GroupBlockers.ShouldBe([new VfioGroupMember("0000:00:05.1", "e1000e")]);
        blocked.GroupMembers.Count.ShouldBe(2);
        VfioSysfs.GetHostDriverMembers(kernel, 5).ShouldBe(blocked.GroupBlockers);

        devices[2].CdevPath.ShouldBeNull();
        devices[2].VendorId.ShouldBeNull();
        devices[3].IsGroupViable.ShouldBeTrue();   // pcieport keeps a group viable
        devices[3].GroupNode.ShouldBeNull();
    }

    [Fact]
    [Spec("§4.8")]
    public void ListDevices_NoIommu_ListsOnlyVfioBoundDevices_InNoIommuGroups()
    {
        var topology = new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false, DeviceCdev = false }
            .AddPci("0000:00:02.0", iommuGroup: 0, new EduDevice())
            .AddPci("0000:00:03.0", iommuGroup: 0, model: null, driver: "e1000e");
        using var kernel = new SimulatedKernel(topology);

        VfioDeviceEntry device = VfioSysfs.ListDevices(kernel).ShouldHaveSingleItem();

        device.Name.ShouldBe("0000:00:02.0");
        device.IsNoIommuGroup.ShouldBeTrue();
        device.GroupNode.ShouldBe("/dev/vfio/noiommu-0");
    }

    private static string Read(SimulatedKernel kernel, string path)
    {
        kernel.ReadText(path, out string text).ShouldBe(0, path);
        return text;
    }
}
