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
    [Spec("drivers/vfio/vfio_iommu_type1.c struct vfio_iommu")]
    public void ModuleParameters_FollowTheTopology_InTheKernelsFormat()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { DmaEntryLimit = 77, AllowUnsafeInterrupts = true });
        Read(kernel, "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit").ShouldBe("77");
        Read(kernel, "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts").ShouldBe("Y");
        Read(kernel, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").ShouldBe("N");
        Read(kernel, "/sys/module/iommufd/parameters/allow_unsafe_interrupts").ShouldBe("N");
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_noiommu_group_alloc")]
    public void NoIommuMachine_HasNoIommuClassDevice_NorType1Parameters_AndNoIommuModeOn()
    {
        using var kernel = new SimulatedKernel(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false });
        kernel.ListDirectory("/sys/class/iommu", out string[] iommus).ShouldBe(0);
        iommus.ShouldBeEmpty();
        kernel.Exists("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit").ShouldBeFalse();
        Read(kernel, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode").ShouldBe("Y");
    }

    [Theory]
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_iommu_type1_attach_group")]
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
    [Spec("drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map")]
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
    [Spec("drivers/vfio/group.c vfio_noiommu_group_alloc")]
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
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_status")]
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

    /// <summary>The class from sysfs <c>class</c>, and which classes are the bridges vfio-pci refuses (type 1/2 headers):
    /// the real guest's host bridge (0x060000) and ISA bridge (0x060100) have normal headers and are not among them.</summary>
    [Fact]
    [Spec("drivers/vfio/group.c vfio_group_ioctl_get_status")]
    public void ListDevices_GivesThePciClass_AndTellsTheBridgesVfioPciRefuses()
    {
        var topology = SimulatedMachines.Testbed()
            .AddPci("0000:00:00.0", iommuGroup: 0, model: null, driver: "", identity: new SimulatedPciIdentity(0x8086, 0x29c0, 0x060000))
            .AddPci("0000:00:1f.0", iommuGroup: 7, model: null, driver: "", identity: new SimulatedPciIdentity(0x8086, 0x2918, 0x060100))
            .AddPci("0000:00:1e.0", iommuGroup: 8, model: null, driver: "", identity: new SimulatedPciIdentity(0x8086, 0x244e, 0x060401))
            .AddPci("0000:00:1c.0", iommuGroup: 9, model: null, driver: "", identity: new SimulatedPciIdentity(0x104c, 0xac56, 0x060700))
            .AddPci("0000:00:1d.0", iommuGroup: 10, model: null, driver: "e1000e");
        using var kernel = new SimulatedKernel(topology);

        Dictionary<string, VfioDeviceEntry> devices = VfioSysfs.ListDevices(kernel).ToDictionary(d => d.Name);

        VfioDeviceEntry bridge = devices[SimulatedMachines.Bridge];
        (bridge.VendorId, bridge.DeviceId, bridge.PciClass, bridge.IsPciBridge).ShouldBe(((ushort?)0x1b36, (ushort?)0x0001, (uint?)0x060400, true));
        VfioDeviceEntry rng = devices[SimulatedMachines.VirtioRng];
        (rng.VendorId, rng.DeviceId, rng.PciClass, rng.IsPciBridge).ShouldBe(((ushort?)0x1af4, (ushort?)0x1005, (uint?)0x00ff00, false));
        (devices[SimulatedMachines.Edu].PciClass, devices[SimulatedMachines.Edu].IsPciBridge).ShouldBe(((uint?)0x00ff00, false));
        devices["0000:00:00.0"].IsPciBridge.ShouldBeFalse();   // host bridge
        devices["0000:00:1f.0"].IsPciBridge.ShouldBeFalse();   // ISA bridge
        devices["0000:00:1e.0"].IsPciBridge.ShouldBeTrue();    // subtractive-decode PCI-to-PCI bridge
        devices["0000:00:1c.0"].IsPciBridge.ShouldBeTrue();    // CardBus bridge
        (devices["0000:00:1d.0"].PciClass, devices["0000:00:1d.0"].IsPciBridge).ShouldBe((null, false));   // no class file
    }

    [Fact]
    [Spec("drivers/vfio/group.c vfio_noiommu_group_alloc")]
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
