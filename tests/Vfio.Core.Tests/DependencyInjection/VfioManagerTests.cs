// SPDX-License-Identifier: MIT
using Shouldly;

namespace Vfio.Core.Tests.DependencyInjection;

public sealed class VfioManagerTests
{
    private static readonly VfioDeviceSource s_edu = VfioDeviceSource.Pci("0000:00:02.0");

    [Fact]
    public void NoDi_Auto_AsksInTheOrderGiven()
    {
        var first = new FakeBackend("legacy", canAttach: true);
        var second = new FakeBackend("iommufd", canAttach: true);
        using var manager = new VfioManager(new VfioOptions(), [first, second]);

        manager.Backends.ShouldBe([first, second]);
        manager.SelectBackend(s_edu).ShouldBeSameAs(first);
        second.Calls.ShouldBeEmpty();
    }

    [Fact]
    public void NoDi_Explicit_PicksByName_WithoutAskingCanAttach()
    {
        var legacy = new FakeBackend("legacy", canAttach: false);
        var iommufd = new FakeBackend("iommufd", canAttach: false);
        using var manager = new VfioManager(new VfioOptions { Backend = "iommufd" }, [legacy, iommufd]);

        manager.SelectBackend(s_edu).ShouldBeSameAs(iommufd);
        manager.SelectDefaultBackend().ShouldBeSameAs(iommufd);
        iommufd.Calls.ShouldBeEmpty();
    }

    [Fact]
    public void NoDi_SelectDefaultBackend_UnderAuto_AsksEachBackendWhetherItIsAvailable()
    {
        var withIommu = new FakeMachineKernel("/dev/iommu");
        var without = new FakeMachineKernel();
        var legacy = new FakeBackend("legacy");
        var iommufd = new FakeBackend("iommufd") { Machine = withIommu, Node = "/dev/iommu" };
        using (var manager = new VfioManager(new VfioOptions(), [iommufd, legacy]))
        {
            manager.SelectDefaultBackend().ShouldBeSameAs(iommufd);
        }
        var missing = new FakeBackend("iommufd") { Machine = without, Node = "/dev/iommu" };
        using (var manager = new VfioManager(new VfioOptions(), [missing, legacy]))
        {
            manager.SelectDefaultBackend().ShouldBeSameAs(legacy);
        }
        // The answer is the backend's, whatever its name: no backend's node is special to the manager.
        var custom = new FakeBackend("custom") { Machine = without, Node = "/dev/custom" };
        using (var manager = new VfioManager(new VfioOptions(), [custom, legacy]))
        {
            manager.SelectDefaultBackend().ShouldBeSameAs(legacy);
        }
        using var onlyIommufd = new VfioManager(new VfioOptions(), [missing]);
        Should.Throw<VfioBackendUnavailableException>(() => onlyIommufd.SelectDefaultBackend()).Message.ShouldContain("iommufd: /dev/iommu does not exist");
    }

    [Fact]
    public void NoDi_InvalidOptionsOrDuplicateBackends_AreRefused()
    {
        Should.Throw<ArgumentException>(() => new VfioManager(new VfioOptions { Backend = "vfio" }, [new FakeBackend("legacy")]))
            .Message.ShouldContain("valid values are: auto, legacy, iommufd, spapr-tce");
        Should.Throw<ArgumentException>(() => new VfioManager(new VfioOptions { Backend = "iommufd", ContainerFd = "3" }, []));
        Should.Throw<ArgumentException>(() => new VfioManager(new VfioOptions(), [new FakeBackend("legacy"), new FakeBackend("legacy")]));
    }

    [Fact]
    public void NoDi_Dispose_DetachesAndDisposesSpaces_ButLeavesTheCallersBackends()
    {
        var legacy = new FakeBackend("legacy");
        var manager = new VfioManager(new VfioOptions(), [legacy]);
        DmaSpace space = manager.CreateDmaSpace();
        AttachedDevice device = manager.AttachDevice(s_edu, space);
        legacy.Calls.ShouldBe(["CanAttach 0000:00:02.0", "Attach 0000:00:02.0"]);

        manager.Dispose();

        device.IsAttached.ShouldBeFalse();
        space.IsDisposed.ShouldBeTrue();
        legacy.DisposeCalls.ShouldBe(0);
        Should.Throw<ObjectDisposedException>(() => manager.SelectBackend(s_edu));
    }

    [Fact]
    public void AttachDevice_FromText_ParsesIt()
    {
        var legacy = new FakeBackend("legacy");
        using var manager = new VfioManager(new VfioOptions { Backend = "legacy" }, [legacy]);
        using DmaSpace space = manager.CreateDmaSpace("s");
        using AttachedDevice device = manager.AttachDevice("/sys/bus/pci/devices/0000:00:03.0", space);
        device.Source.Bus.ShouldBe(VfioBus.Pci);
        device.Name.ShouldBe("0000:00:03.0");
        Should.Throw<ArgumentException>(() => manager.AttachDevice("../x/y", space));
    }
}
