// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Samples.Edu;

// A VFIO group can be opened once at a time: on the real kernel the cases must take turns, and the simulator runs them
// the same way so that both targets see the same order of events.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Vfio.Conformance;

/// <summary>How a case reaches its devices: a backend and the kind of IOMMU behind it.</summary>
public enum Mode
{
    /// <summary>The legacy backend with a Type1 v2 container (<c>/dev/vfio/vfio</c>).</summary>
    Legacy,

    /// <summary>The iommufd backend (device cdevs, one IOAS per DMA space).</summary>
    IommuFd,

    /// <summary>The legacy backend with <c>/dev/iommu</c> as its container (<c>Vfio:IommuFdAsContainer</c>).</summary>
    IommuFdCompat,

    /// <summary>The legacy backend on no-IOMMU groups (<c>Vfio:AllowUnsafeNoIommu</c>), PCI devices.</summary>
    NoIommu,

    /// <summary>The legacy backend on no-IOMMU vfio-platform devices (virtio-mmio rng and block device).</summary>
    Platform,

    /// <summary>The sPAPR TCE backend (v2: windows per section, pre-registration; EEH) on a POWER host. Simulator only:
    /// the testbed has no POWER guest, so the real-kernel target never lists it.</summary>
    SpaprTce,
}

/// <summary>
/// The kernel the suite runs against, chosen by the environment: <c>VFIO_CONFORMANCE_TARGET=kernel</c> is the real
/// kernel in the testbed guest (tests/testbed), whose shape (<c>VFIO_TESTBED_SHAPE</c>) decides the modes; anything
/// else is unset or <c>simulator</c>, which provides every mode. A case's theory data lists only the modes the target
/// provides, so no case skips itself.
/// </summary>
public static class Target
{
    private static readonly Lazy<KernelDevices?> s_kernel = new(ReadKernelDevices);

    /// <summary>True when running against the real kernel.</summary>
    internal static bool IsKernel
    {
        get
        {
            string? target = Environment.GetEnvironmentVariable("VFIO_CONFORMANCE_TARGET");
            return target switch
            {
                null or "" or "simulator" => false,
                "kernel" => true,
                _ => throw new InvalidOperationException(
                    $"VFIO_CONFORMANCE_TARGET='{target}': use 'kernel' (inside the testbed guest) or 'simulator' (the default)."),
            };
        }
    }

    /// <summary>The testbed shape (real kernel only).</summary>
    internal static string Shape => Environment.GetEnvironmentVariable("VFIO_TESTBED_SHAPE")
        ?? throw new InvalidOperationException("VFIO_CONFORMANCE_TARGET=kernel needs the testbed guest (VFIO_TESTBED_SHAPE is not set).");

    /// <summary>The modes this target provides.</summary>
    internal static IReadOnlyList<Mode> Modes
        => !IsKernel
            ? [Mode.Legacy, Mode.IommuFd, Mode.IommuFdCompat, Mode.NoIommu, Mode.Platform, Mode.SpaprTce]
            : Shape switch
            {
                "pci" => [Mode.Legacy, Mode.IommuFd, Mode.IommuFdCompat],
                "pci-intremap-off" => [Mode.Legacy, Mode.IommuFd],
                "noiommu" => [Mode.NoIommu],
                "platform" => [Mode.Platform],
                string other => throw new InvalidOperationException($"The conformance suite has no modes for the testbed shape '{other}'."),
            };

    /// <summary>True when the IOMMU does not remap interrupts: the testbed shape <c>pci-intremap-off</c> on the real
    /// kernel; always on the simulator, whose cases build such a machine (<c>SimulatedTopology.InterruptRemapping</c>).</summary>
    internal static bool ProvidesInterruptRemappingOff => !IsKernel || Shape == "pci-intremap-off";

    /// <summary>Edu at 00:02.0, alone in its IOMMU group.</summary>
    internal static string Edu => Devices.Edu;

    /// <summary>The second edu at 00:04.0, alone in its IOMMU group.</summary>
    internal static string Edu2 => Devices.Edu2;

    /// <summary>The third edu at 01:01.0, behind the conventional PCI bridge at 00:05.0, bound to vfio-pci; its IOMMU
    /// group (the bridge's) is not viable because <see cref="VirtioRng"/> shares it.</summary>
    internal static string EduBehindBridge => Devices.EduBehindBridge;

    /// <summary>The virtio-rng device at 01:02.0 behind the same bridge, left on the host's virtio-pci driver.</summary>
    internal const string VirtioRng = Vfio.Simulator.SimulatedMachines.VirtioRng;

    /// <summary>The driver <see cref="VirtioRng"/> is bound to.</summary>
    internal const string VirtioRngDriver = Vfio.Simulator.SimulatedMachines.VirtioRngDriver;

    /// <summary>The conventional PCI bridge at 00:05.0 (no driver).</summary>
    internal const string Bridge = Vfio.Simulator.SimulatedMachines.Bridge;

    /// <summary>The device with a 16-vector MSI capability at 00:13.0 (QEMU's <c>qemu-xhci,msi=on,msix=off</c>; the simulator's
    /// model of it), in the <c>pci-intremap-off</c> shape only.</summary>
    internal const string MultiMessageMsi = Vfio.Simulator.SimulatedMachines.MultiMessageMsi;

    /// <summary>QEMU's nvme at 00:03.0 on the real kernel; the simulator's NvmeDevice there.</summary>
    internal static string Nvme => Devices.Nvme;

    /// <summary>QEMU's pci-testdev at 00:10.0 (a memory, an I/O and a 64-bit prefetchable BAR), alone in its IOMMU group.</summary>
    internal static string PciTestDev => Devices.PciTestDev;

    /// <summary>The edu alone behind the PCIe root port at 00:11.0 (02:00.0), with an option ROM: the kernel allows its
    /// bus to be reset.</summary>
    internal static string EduBehindRootPort => Devices.EduBehindRootPort;

    /// <summary>Function 0 of the two-function edu behind the root port at 00:12.0 (03:00.0), bound to vfio-pci; a bus
    /// reset also resets <see cref="EduPeerWithoutDriver"/>.</summary>
    internal static string EduWithPeer => Devices.EduWithPeer;

    /// <summary>Function 1 of that edu (03:00.1), left without a driver.</summary>
    internal const string EduPeerWithoutDriver = Vfio.Simulator.SimulatedMachines.EduPeerWithoutDriver;

    /// <summary>The virtio-mmio rng platform device's name.</summary>
    internal static string Rng => Devices.Rng ?? throw new InvalidOperationException("No virtio-mmio rng device is bound for VFIO in this guest.");

    /// <summary>The virtio-mmio block device's name (the testbed's 1 MiB scratch disk).</summary>
    internal static string Blk => Devices.Blk ?? throw new InvalidOperationException("No virtio-mmio block device is bound for VFIO in this guest (--bind virtio-mmio:2).");

    /// <summary>The simulator's name for the rng: the ACPI name of its virtio-mmio transport on the testbed's microvm,
    /// after the two 9p transports.</summary>
    internal const string SimulatedRng = "LNRO0005:02";

    /// <summary>The simulator's name for the block device: the transport after the rng's, as on the testbed.</summary>
    internal const string SimulatedBlk = "LNRO0005:03";

    private static KernelDevices Devices => IsKernel
        ? s_kernel.Value ?? throw new InvalidOperationException("/run/results/testbed/bound is missing: not in the testbed guest?")
        : new KernelDevices("0000:00:02.0", "0000:00:04.0", "0000:00:03.0", Vfio.Simulator.SimulatedMachines.EduBehindBridge, SimulatedRng, SimulatedBlk,
            Vfio.Simulator.SimulatedMachines.PciTestDev, Vfio.Simulator.SimulatedMachines.EduBehindRootPort, Vfio.Simulator.SimulatedMachines.EduWithPeer);

    /// <summary>The IOMMU modes: DMA through an IOMMU (Type1, iommufd, iommufd as a Type1 container).</summary>
    public static TheoryData<Mode> IommuModes() => Data(IsIommu);

    /// <summary>The backends whose hot-reset proof is group fds: legacy Type1 and iommufd as a container.</summary>
    public static TheoryData<Mode> GroupFdModes() => Data(m => m is Mode.Legacy or Mode.IommuFdCompat);

    /// <summary>The iommufd backend only.</summary>
    public static TheoryData<Mode> IommuFdModes() => Data(m => m is Mode.IommuFd);

    /// <summary>The modes with the PCI devices (edu, nvme): the IOMMU modes and no-IOMMU.</summary>
    public static TheoryData<Mode> PciModes() => Data(m => m is not Mode.Platform);

    /// <summary>No-IOMMU on PCI only.</summary>
    public static TheoryData<Mode> NoIommuModes() => Data(m => m is Mode.NoIommu);

    /// <summary>The platform device.</summary>
    public static TheoryData<Mode> PlatformModes() => Data(m => m is Mode.Platform);

    /// <summary>The backends on an IOMMU without interrupt remapping (Type1 and iommufd): only where interrupt
    /// remapping is off (<see cref="ProvidesInterruptRemappingOff"/>), else one skipped row.</summary>
    public static TheoryData<Mode> IntremapOffModes()
    {
        var data = new TheoryData<Mode>();
        if (!ProvidesInterruptRemappingOff)
        {
            data.Add(new TheoryDataRow<Mode>(Mode.Legacy) { Skip = $"interrupt remapping is on in this target (kernel, testbed shape {Shape}); the shape pci-intremap-off provides this case" });
            return data;
        }
        foreach (Mode mode in Modes.Where(m => m is Mode.Legacy or Mode.IommuFd))
        {
            data.Add(new TheoryDataRow<Mode>(mode));
        }
        return data;
    }

    /// <summary>The PCI modes, each with false and true (pread/pwrite or mmap; sync or async).</summary>
    public static TheoryData<Mode, bool> PciModesTwice()
    {
        var data = new TheoryData<Mode, bool>();
        foreach ((Mode mode, string? skip) in Rows(m => m is not Mode.Platform))
        {
            data.Add(new TheoryDataRow<Mode, bool>(mode, false) { Skip = skip });
            data.Add(new TheoryDataRow<Mode, bool>(mode, true) { Skip = skip });
        }
        return data;
    }

    /// <summary>The IOMMU modes, each with every value of <typeparamref name="T"/>.</summary>
    public static TheoryData<Mode, T> IommuModesTimes<T>()
        where T : struct, Enum
    {
        var data = new TheoryData<Mode, T>();
        foreach ((Mode mode, string? skip) in Rows(IsIommu))
        {
            foreach (T value in Enum.GetValues<T>())
            {
                data.Add(new TheoryDataRow<Mode, T>(mode, value) { Skip = skip });
            }
        }
        return data;
    }

    /// <summary>The IOMMU modes of the x86 testbed (VT-d behind Type1, iommufd and iommufd as a Type1 container): cases
    /// about VT-d's page sizes and ranges or device cdevs, which a POWER host does not have.</summary>
    public static TheoryData<Mode> VtdModes() => Data(m => m is Mode.Legacy or Mode.IommuFd or Mode.IommuFdCompat);

    /// <summary>The sPAPR TCE mode (simulator only).</summary>
    public static TheoryData<Mode> SpaprTceModes() => Data(m => m is Mode.SpaprTce);

    private static bool IsIommu(Mode mode) => mode is Mode.Legacy or Mode.IommuFd or Mode.IommuFdCompat or Mode.SpaprTce;

    private static TheoryData<Mode> Data(Func<Mode, bool> filter)
    {
        var data = new TheoryData<Mode>();
        foreach ((Mode mode, string? skip) in Rows(filter))
        {
            data.Add(new TheoryDataRow<Mode>(mode) { Skip = skip });
        }
        return data;
    }

    /// <summary>The provided modes that pass <paramref name="filter"/>. When there are none (a testbed shape without
    /// them), one row of the first such mode, skipped with the reason: xunit fails a theory without rows, and a case
    /// that does not apply says so instead of vanishing.</summary>
    private static IEnumerable<(Mode Mode, string? Skip)> Rows(Func<Mode, bool> filter)
    {
        Mode[] provided = [.. Modes.Where(filter)];
        if (provided.Length > 0)
        {
            return provided.Select(m => (m, (string?)null));
        }
        Mode first = Enum.GetValues<Mode>().First(filter);
        return [(first, $"the target (kernel, testbed shape {Shape}) does not provide this case's modes ({string.Join(", ", Enum.GetValues<Mode>().Where(filter))})")];
    }

    /// <summary>Reads what the testbed's init bound: <c>&lt;device&gt; &lt;driver&gt; &lt;group node&gt; [&lt;cdev&gt;]</c>,
    /// one line per bind spec of <c>testbed/bind</c>, in its order; a virtio-mmio transport is known by its spec
    /// (<c>virtio-mmio:4</c> the rng, <c>virtio-mmio:2</c> the block device).</summary>
    private static KernelDevices? ReadKernelDevices()
    {
        const string Bound = "/run/results/testbed/bound", Bind = "/run/results/testbed/bind";
        if (!File.Exists(Bound))
        {
            return null;
        }
        string[][] lines = [.. File.ReadAllLines(Bound).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length >= 3)];
        string[] specs = File.Exists(Bind)
            ? [.. File.ReadAllText(Bind).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Where(b => b != "none")]
            : [];
        string? Pci(string address) => lines.Any(f => f[0] == address && f[1] == "vfio-pci") ? address : null;
        string? VirtioMmio(int id)
        {
            int i = Array.IndexOf(specs, $"virtio-mmio:{id}");
            return i >= 0 && specs.Length == lines.Length && lines[i][1] == "vfio-platform" ? lines[i][0] : null;
        }
        return new KernelDevices(
            Pci("0000:00:02.0") ?? "(edu 0000:00:02.0 not bound)",
            Pci("0000:00:04.0") ?? "(edu 0000:00:04.0 not bound)",
            Pci("0000:00:03.0") ?? "(nvme 0000:00:03.0 not bound)",
            Pci("0000:01:01.0") ?? "(edu 0000:01:01.0 not bound)",
            VirtioMmio(4),
            VirtioMmio(2),
            Pci("0000:00:10.0") ?? "(pci-testdev 0000:00:10.0 not bound)",
            Pci("0000:02:00.0") ?? "(edu 0000:02:00.0 not bound)",
            Pci("0000:03:00.0") ?? "(edu 0000:03:00.0 not bound)");
    }

    private sealed record KernelDevices(string Edu, string Edu2, string Nvme, string EduBehindBridge, string? Rng, string? Blk,
        string PciTestDev, string EduBehindRootPort, string EduWithPeer);
}

/// <summary>Pages of a <see cref="DmaBuffer"/> (Core's DMA memory, allocated and mapped in one call).</summary>
internal static class DmaBufferPages
{
    internal const int PageSize = 4096;

    /// <summary>A buffer of <paramref name="pages"/> pages mapped below edu's DMA mask.</summary>
    internal static DmaBuffer Allocate(DmaSpace space, int pages) =>
        DmaBuffer.Allocate(space, (ulong)(pages * PageSize), DmaAccess.ReadWrite, Vfio.Samples.Edu.EduDriver.DefaultDmaMask);

    internal static Span<byte> Page(this DmaBuffer buffer, int index) => buffer.GetSpan((ulong)(index * PageSize), PageSize);
}

/// <summary>Device-independent helpers.</summary>
internal static class Patterns
{
    internal static byte[] Make(int length, int seed)
    {
        byte[] pattern = new byte[length];
        for (int i = 0; i < pattern.Length; i++)
        {
            pattern[i] = (byte)((i * 7) + seed);
        }
        return pattern;
    }

    /// <summary>The device source for a name on the mode's bus.</summary>
    internal static VfioDeviceSource Source(Mode mode, string name)
        => mode == Mode.Platform ? VfioDeviceSource.Platform(name) : VfioDeviceSource.Pci(name);
}
