// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;

namespace Vfio.Conformance;

/// <summary>An fd a management layer could pass by mistake.</summary>
public enum PassedFdKind
{
    /// <summary>Not open: an fd number never opened, a stored fd its owner closed, a name the launcher did not send.</summary>
    Closed,

    /// <summary>A regular file.</summary>
    RegularFile,

    /// <summary><c>/dev/null</c>: a character device that is not VFIO's.</summary>
    DevNull,

    /// <summary>An eventfd.</summary>
    EventFd,

    /// <summary>A Unix socket.</summary>
    Socket,

    /// <summary>A VFIO group fd: the second edu's group (another device's when a group is expected).</summary>
    Group,

    /// <summary>A legacy container, <c>/dev/vfio/vfio</c>.</summary>
    Container,

    /// <summary>An iommufd, <c>/dev/iommu</c>.</summary>
    IommuFd,

    /// <summary>A VFIO device fd (<c>VFIO_GROUP_GET_DEVICE_FD</c>) of the second edu.</summary>
    Device,

    /// <summary>The second edu's device cdev (another device's when a cdev is expected).</summary>
    Cdev,
}

/// <summary>Where a passed fd is configured.</summary>
public enum FdSetting
{
    /// <summary><c>Vfio:IommuFd</c> on the iommufd backend.</summary>
    IommuFd,

    /// <summary><c>Vfio:ContainerFd</c> on the legacy backend (Type1).</summary>
    ContainerFd,

    /// <summary><c>Vfio:IommuFd</c> with <c>Vfio:IommuFdAsContainer</c> on the legacy backend.</summary>
    CompatIommuFd,

    /// <summary><c>Vfio:GroupFds:N</c> for edu's group, legacy backend.</summary>
    GroupFds,

    /// <summary><c>Vfio:DeviceFds:edu</c>, iommufd backend.</summary>
    DeviceFds,
}

/// <summary>How the fd reaches the library.</summary>
public enum FdDelivery
{
    /// <summary>An inherited fd number.</summary>
    Number,

    /// <summary>A name the application added to the <see cref="VfioFdStore"/>.</summary>
    Name,

    /// <summary>A name received over the fd-passing socket (<see cref="FdPassing"/>).</summary>
    Socket,
}

/// <summary>
/// Every fd kind a management layer could pass by mistake, in every setting that takes an fd, by number, by name and
/// over the fd-passing socket; and through <see cref="VfioDeviceSource.FromDeviceFd"/>, borrowed and handed over. Each
/// is refused before the kernel uses it, with a <see cref="VfioException"/> naming the setting and reference and what to
/// do, and nothing leaks; an owned fd is closed.
/// </summary>
public sealed class BadFdMatrixTests
{
    private const string PassedName = "passed";

    public static TheoryData<Mode, FdSetting, PassedFdKind, FdDelivery> SettingRows()
    {
        var data = new TheoryData<Mode, FdSetting, PassedFdKind, FdDelivery>();
        foreach (FdSetting setting in Enum.GetValues<FdSetting>())
        {
            Mode mode = ModeOf(setting);
            if (!Target.Modes.Contains(mode))
            {
                continue;
            }
            foreach (PassedFdKind kind in Enum.GetValues<PassedFdKind>())
            {
                if (IsRight(setting, kind))
                {
                    continue;
                }
                foreach (FdDelivery delivery in Enum.GetValues<FdDelivery>())
                {
                    data.Add(mode, setting, kind, delivery);
                }
            }
        }
        return data;
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(SettingRows))]
    public void AWrongPassedFd_IsRefused_NamingTheSetting_AndNothingLeaks(Mode mode, FdSetting setting, PassedFdKind kind, FdDelivery delivery)
    {
        using Rig rig = Rig.Create(mode);
        using var fds = new PassedFds(rig);
        using var store = new VfioFdStore(rig.Kernel);
        VfioOptions options = rig.OptionsFor(mode);
        int group = VfioSysfs.GetIommuGroup(rig.Kernel, $"/sys/bus/pci/devices/{Target.Edu}").ShouldNotBeNull();
        string name = setting switch
        {
            FdSetting.IommuFd or FdSetting.CompatIommuFd => "Vfio:IommuFd",
            FdSetting.ContainerFd => "Vfio:ContainerFd",
            FdSetting.GroupFds => "Vfio:GroupFds:" + group.ToString(CultureInfo.InvariantCulture),
            _ => "Vfio:DeviceFds:" + Target.Edu,
        };
        using IDisposable backend = mode == Mode.IommuFd ? new IommuFdBackend(rig.Kernel, options, store) : new LegacyBackend(rig.Kernel, options, store);
        var attach = (IIommuBackend)backend;
        DmaSpace space = rig.NewSpace();
        if (setting is FdSetting.GroupFds or FdSetting.DeviceFds)
        {
            // The backend's own objects (its iommufd) exist before the case: only the refused fd's path is measured.
            attach.AttachDevice(VfioDeviceSource.Pci(Target.Edu2), space).Dispose();
        }
        SafeFileHandle? fd = fds.Make(kind);
        string reference = Deliver(store, fd, kind, delivery);
        switch (setting)
        {
            case FdSetting.IommuFd or FdSetting.CompatIommuFd:
                options.IommuFd = reference;
                break;
            case FdSetting.ContainerFd:
                options.ContainerFd = reference;
                break;
            case FdSetting.GroupFds:
                options.GroupFds[group.ToString(CultureInfo.InvariantCulture)] = reference;
                break;
            default:
                options.DeviceFds[Target.Edu] = reference;
                break;
        }

        // A name the launcher did not send is said by name (it never had a number).
        string said = kind == PassedFdKind.Closed && delivery == FdDelivery.Socket ? $"'{reference}'" : $"({reference})";
        VfioException e = Refusal.Expect<VfioException>(rig, () => attach.AttachDevice(VfioDeviceSource.Pci(Target.Edu), space),
            [name, said]);
        if (kind == PassedFdKind.Closed)
        {
            e.Errno.ShouldBe(delivery == FdDelivery.Socket ? Errno.None : Errno.EBADF, e.Message);
        }
        space.Containers.SelectMany(c => c.Devices).ShouldNotContain(d => d.Name == Target.Edu);
        fd?.IsClosed.ShouldBeFalse("a passed fd is borrowed: the library never closes it");

        // With nothing passed, the device attaches on the rig's own backend.
        store.Dispose();
        rig.Attach(Target.Edu).Dispose();
    }

    public static TheoryData<PassedFdKind, bool> DeviceFdRows()
    {
        var data = new TheoryData<PassedFdKind, bool>();
        if (!Target.Modes.Contains(Mode.IommuFd))
        {
            data.Add(new TheoryDataRow<PassedFdKind, bool>(PassedFdKind.Cdev, false) { Skip = "the target does not provide the iommufd backend" });
            return data;
        }
        foreach (PassedFdKind kind in Enum.GetValues<PassedFdKind>())
        {
            data.Add(kind, false);
            data.Add(kind, true);
        }
        return data;
    }

    /// <summary>A device fd handed through the API: checked for its kind (and, for a cdev, its device) before the bind;
    /// an owned one is closed when refused, a borrowed one is left open.</summary>
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(DeviceFdRows))]
    public void AWrongDeviceFdThroughTheApi_IsRefusedBeforeTheBind(PassedFdKind kind, bool owned)
    {
        using Rig rig = Rig.Create(Mode.IommuFd);
        using var fds = new PassedFds(rig);
        DmaSpace space = rig.NewSpace();
        rig.Attach(Target.Edu2, space).Dispose();   // the backend's iommufd exists before the case
        SafeFileHandle handle = fds.Make(kind) ?? new SafeFileHandle(4000, ownsHandle: false);
        if (kind == PassedFdKind.Closed)
        {
            handle.Dispose();   // a handle the caller closed before passing it
        }
        SafeFileHandle passed = owned && kind != PassedFdKind.Closed ? Refusal.Dup(handle) : handle;

        int closes = owned && kind != PassedFdKind.Closed ? -1 : 0;
        Action attach = () => rig.Backend.AttachDevice(VfioDeviceSource.FromDeviceFd(passed, Target.Edu, ownsHandle: owned), space);
        if (kind == PassedFdKind.Closed)
        {
            // Refused where the source is made: a closed handle has no fd to check.
            Refusal.Expect<ArgumentException>(rig, attach, [Target.Edu, "closed", "keep it open"]);
        }
        else
        {
            Refusal.Expect<VfioException>(rig, attach, [Target.Edu, "FromDeviceFd"], closes);
        }
        passed.IsClosed.ShouldBe(owned || kind == PassedFdKind.Closed, "an owned fd is closed by the refusal, a borrowed one is not");
        rig.Attach(Target.Edu).Dispose();
    }

    private static Mode ModeOf(FdSetting setting) => setting switch
    {
        FdSetting.IommuFd or FdSetting.DeviceFds => Mode.IommuFd,
        FdSetting.CompatIommuFd => Mode.IommuFdCompat,
        _ => Mode.Legacy,
    };

    /// <summary>True when the kind is what the setting takes; the group and cdev kinds are always another device's, so
    /// for the group and device settings they are wrong too.</summary>
    private static bool IsRight(FdSetting setting, PassedFdKind kind) => (setting, kind) switch
    {
        (FdSetting.IommuFd or FdSetting.CompatIommuFd, PassedFdKind.IommuFd) => true,
        (FdSetting.ContainerFd, PassedFdKind.Container) => true,
        _ => false,
    };

    /// <summary>Hands <paramref name="fd"/> to the library the <paramref name="delivery"/> way and returns the reference
    /// a setting names it by. A closed fd is a number never opened, a stored fd whose handle was closed, or a name the
    /// launcher did not send.</summary>
    private static string Deliver(VfioFdStore store, SafeFileHandle? fd, PassedFdKind kind, FdDelivery delivery)
    {
        switch (delivery)
        {
            case FdDelivery.Number:
                return fd is null ? "4000" : ((int)fd.DangerousGetHandle()).ToString(CultureInfo.InvariantCulture);
            case FdDelivery.Name:
                SafeFileHandle copy = kind == PassedFdKind.Closed ? OpenNull() : Refusal.Dup(fd!);
                store.Add(PassedName, copy);
                if (kind == PassedFdKind.Closed)
                {
                    copy.Dispose();
                }
                return PassedName;
            default:
                (Socket a, Socket b) = SocketPair();
                using (a)
                using (b)
                using (SafeFileHandle other = OpenNull())
                {
                    FdPassing.Send(a, kind == PassedFdKind.Closed ? [new NamedFd("other", other)] : [new NamedFd(PassedName, fd!)]);
                    using ReceivedFds received = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
                    store.Add(received);
                }
                return PassedName;
        }
    }

    private static SafeFileHandle OpenNull() => File.OpenHandle("/dev/null", FileMode.Open, FileAccess.ReadWrite);

    internal static (Socket A, Socket B) SocketPair()
    {
        string path = Path.Combine(Path.GetTempPath(), $"badfd-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        try
        {
            var a = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            a.Connect(new UnixDomainSocketEndPoint(path));
            return (a, listener.Accept());
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Makes one fd of each kind for a case and closes what it made at the end.</summary>
    private sealed class PassedFds(Rig rig) : IDisposable
    {
        private readonly List<IDisposable> _made = [];

        /// <summary>A new fd of <paramref name="kind"/>, owned here; null for <see cref="PassedFdKind.Closed"/>.</summary>
        internal SafeFileHandle? Make(PassedFdKind kind)
        {
            string edu2 = $"/sys/bus/pci/devices/{Target.Edu2}";
            switch (kind)
            {
                case PassedFdKind.Closed:
                    return null;
                case PassedFdKind.RegularFile:
                    string file = Path.Combine(Path.GetTempPath(), $"badfd-{Guid.NewGuid():N}");
                    return Keep(File.OpenHandle(file, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose));
                case PassedFdKind.DevNull:
                    return Keep(OpenNull());
                case PassedFdKind.EventFd:
                    var interrupt = new InterruptEvent();
                    _made.Add(interrupt);
                    return Keep(Refusal.Dup(interrupt.Handle));
                case PassedFdKind.Socket:
                    (Socket a, Socket b) = SocketPair();
                    _made.Add(a);
                    _made.Add(b);
                    return Keep(Refusal.Dup(a.SafeHandle));
                case PassedFdKind.Group:
                    int group = VfioSysfs.GetIommuGroup(rig.Kernel, edu2).ShouldNotBeNull();
                    return Open(VfioSysfs.GetGroupNode(rig.Kernel, group, out _).ShouldNotBeNull());
                case PassedFdKind.Container:
                    return Open("/dev/vfio/vfio");
                case PassedFdKind.IommuFd:
                    return Open("/dev/iommu");
                case PassedFdKind.Cdev:
                    return Open(VfioSysfs.GetCdevPath(rig.Kernel, edu2).ShouldNotBeNull());
                default:
                    // A device fd of the second edu, from a legacy backend of its own.
                    var legacy = new LegacyBackend(rig.Kernel);
                    var space = new DmaSpace("device-fd");
                    _made.Add(legacy);
                    _made.Insert(0, space);
                    AttachedDevice device = legacy.AttachDevice(VfioDeviceSource.Pci(Target.Edu2), space);
                    return Keep(Refusal.Dup(device.Device.Handle));
            }
        }

        private SafeFileHandle Open(string path)
        {
            rig.Kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle handle).ShouldBe(0, path);
            return Keep(handle);
        }

        private SafeFileHandle Keep(SafeFileHandle handle)
        {
            _made.Insert(0, handle);
            return handle;
        }

        public void Dispose()
        {
            foreach (IDisposable made in _made)
            {
                made.Dispose();
            }
        }
    }
}
