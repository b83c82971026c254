// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;

namespace Vfio.Conformance;

/// <summary>Bad input a new user gives: each gets a typed error that names the object and the fix, the same on both
/// kernels, and loses nothing.</summary>
public sealed class BadInputTests
{
    private const string Missing = "0000:00:1e.7";

    // Regression: a missing device had errno None through a manager under auto (no backend "could attach" it) and
    // ENOENT through a backend; now both say ENOENT and name the device.
    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void AMissingDevice_IsEnoent_ThroughTheBackend_AndThroughAManager(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        VfioDeviceUnusableException direct = Should.Throw<VfioDeviceUnusableException>(() => rig.Attach(Missing, rig.NewSpace()));
        using var manager = new VfioManager(rig.OptionsFor(mode), [rig.Backend]);
        VfioDeviceUnusableException managed = Should.Throw<VfioDeviceUnusableException>(
            () => manager.AttachDevice(Missing, rig.NewSpace()));
        foreach (VfioDeviceUnusableException e in new[] { direct, managed })
        {
            e.Errno.ShouldBe(Errno.ENOENT);
            e.Message.ShouldContain(Missing);
            e.Hint.ShouldNotBeNullOrWhiteSpace();
        }
    }

    // Regression: an iommufd fd reference that is not open named only "fd N", not the setting it came from.
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void AClosedPassedFd_NamesTheSettingItCameFrom_ByNumberAndByName(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        const int closedNumber = 4000;   // never open in a test process
        // The iommufd backend and the legacy one on iommufd's compat container take Vfio:IommuFd; Type1, Vfio:ContainerFd.
        bool iommufdSetting = mode is Mode.IommuFd or Mode.IommuFdCompat;
        string setting = iommufdSetting ? "Vfio:IommuFd" : "Vfio:ContainerFd";

        using var store = new VfioFdStore(rig.Kernel);
        string path = iommufdSetting ? "/dev/iommu" : "/dev/vfio/vfio";
        rig.Kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle named).ShouldBe(0);
        store.Add("ctx", named);
        named.Dispose();   // closed while the store still names it

        foreach (string reference in new[] { closedNumber.ToString(System.Globalization.CultureInfo.InvariantCulture), "ctx" })
        {
            VfioOptions options = rig.OptionsFor(mode);
            if (iommufdSetting)
            {
                options.IommuFd = reference;
            }
            else
            {
                options.ContainerFd = reference;
            }
            IIommuBackend backend = mode == Mode.IommuFd ? new IommuFdBackend(rig.Kernel, options, store) : new LegacyBackend(rig.Kernel, options, store);
            using var disposeBackend = (IDisposable)backend;
            VfioException e = Should.Throw<VfioException>(() => backend.AttachDevice(Patterns.Source(mode, Target.Edu), rig.NewSpace()));
            e.Errno.ShouldBe(Errno.EBADF, e.Message);
            e.Message.ShouldContain(setting);
            e.Message.ShouldContain($"({reference})");
            e.Hint.ShouldNotBeNull().ShouldContain("open");
        }
        // Nothing was left behind: the device attaches normally.
        rig.Attach(Target.Edu).Dispose();
    }

    // Regression: a device fd passed through the API reached the bind ioctl unchecked (ENOTTY or EBADF came back), and
    // the legacy backend left an owned one open when it refused it.
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.VtdModes), MemberType = typeof(Target))]
    public void APassedDeviceFdOfTheWrongKind_IsRefusedBeforeTheKernel_AndAnOwnedOneIsClosed(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        rig.Kernel.Open("/dev/iommu", OpenFlags.ReadWrite, out SafeFileHandle notADevice).ShouldBe(0);
        VfioDeviceSource source = VfioDeviceSource.FromDeviceFd(notADevice, Target.Edu, ownsHandle: true);

        VfioException e = Should.Throw<VfioException>(() => rig.Backend.AttachDevice(source, rig.NewSpace()));
        if (mode == Mode.IommuFd)
        {
            e.Message.ShouldContain("FromDeviceFd");
            e.Message.ShouldContain("expected a VFIO device cdev");
        }
        else
        {
            e.ShouldBeOfType<VfioDeviceUnusableException>().Message.ShouldContain("only the iommufd backend");
        }
        notADevice.IsClosed.ShouldBeTrue("an owned fd is the library's: a refused attach closes it");
        rig.Attach(Target.Edu).Dispose();
    }

    // Regression: the legacy backend's group open while iommufd held a device of the group blamed another opener.
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(LegacyModesWithCdevs))]
    public void AGroupWhoseDeviceIsBoundToAnIommufd_IsBusy_AndTheErrorSaysSo(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var iommufd = new IommuFdBackend(rig.Kernel);
        using DmaSpace other = new("iommufd-space");
        using AttachedDevice held = iommufd.AttachDevice(VfioDeviceSource.Pci(Target.Edu), other);

        VfioDeviceUnusableException e = Should.Throw<VfioDeviceUnusableException>(() => rig.Attach(Target.Edu, rig.NewSpace()));
        e.Errno.ShouldBe(Errno.EBUSY);
        e.Message.ShouldContain("group 2");
        e.Message.ShouldContain("iommufd");
        e.Hint.ShouldNotBeNull().ShouldContain("one backend for every device of a group");

        held.Dispose();
        rig.Attach(Target.Edu, rig.NewSpace()).Dispose();
    }

    public static TheoryData<Mode> LegacyModesWithCdevs()
    {
        var data = new TheoryData<Mode>();
        foreach (Mode mode in Target.Modes)
        {
            if (mode is Mode.Legacy or Mode.IommuFdCompat)
            {
                data.Add(mode);
            }
        }
        return data;
    }

    // Regression: a host address the process has not mapped came back as a bare EFAULT.
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.VtdModes), MemberType = typeof(Target))]
    public void AHostAddressOutsideTheProcess_IsEfault_WithAHint_AndNothingIsMapped(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice edu = rig.Attach(Target.Edu);
        // Above x86-64's user address space (TASK_SIZE is 0x7ffffffff000): never this process's memory.
        nint beyondUserSpace = unchecked((nint)0x0000_8000_0000_0000);
        VfioException e = Should.Throw<VfioException>(() => edu.Space.MapAt(0x10_0000, beyondUserSpace, 0x1000));
        e.Errno.ShouldBe(Errno.EFAULT);
        e.Hint.ShouldNotBeNull().ShouldContain("not memory this process has mapped");
        edu.Space.EnumerateMappings().ShouldBeEmpty();
        using DmaBuffer buffer = DmaBufferPages.Allocate(edu.Space, 1);
        buffer.Mapping.Size.ShouldBe(4096UL);
    }
}
