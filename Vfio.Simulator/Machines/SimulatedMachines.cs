// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// Ready-made simulated machines. <see cref="Testbed"/> is the project's QEMU testbed (tests/testbed) in the
/// simulator: what <c>vfioctl --simulate</c>, the samples and the conformance suite run on when there is no VFIO
/// device, so that a program sees the same addresses, groups and devices on the simulator as in the real guest.
/// </summary>
public static class SimulatedMachines
{
    /// <summary>The first edu device (QEMU <c>-device edu,addr=02.0</c>), alone in IOMMU group 2.</summary>
    public const string Edu = "0000:00:02.0";

    /// <summary>The NVMe controller (QEMU <c>-device nvme,addr=03.0,serial=vfiotestbed</c> on a 64 MiB image; the model is
    /// <see cref="NvmeDevice"/>), alone in IOMMU group 3.</summary>
    public const string Nvme = "0000:00:03.0";

    /// <summary>The second edu device (<c>addr=04.0</c>), alone in IOMMU group 4.</summary>
    public const string Edu2 = "0000:00:04.0";

    /// <summary>The conventional PCI bridge (QEMU <c>-device pci-bridge,addr=05.0</c>, bus 01 behind it; 1b36:0001, class
    /// 0x060400), bound to no driver (vfio-pci takes no bridge); with the devices behind it it makes IOMMU group 5.</summary>
    public const string Bridge = "0000:00:05.0";

    /// <summary>The third edu device, behind <see cref="Bridge"/> (<c>bus=br1,addr=01.0</c>), bound to vfio-pci in IOMMU
    /// group 5, which is not viable: <see cref="VirtioRng"/> shares it.</summary>
    public const string EduBehindBridge = "0000:01:01.0";

    /// <summary>The virtio-rng device behind <see cref="Bridge"/> (<c>virtio-rng-pci,bus=br1,addr=02.0</c>), bound to the
    /// host's <c>virtio-pci</c> driver: it keeps IOMMU group 5 from being viable. The simulator only shows it (no model;
    /// sysfs has QEMU's identity, 1af4:1005, class 0x00ff00).</summary>
    public const string VirtioRng = "0000:01:02.0";

    /// <summary>The driver <see cref="VirtioRng"/> is bound to.</summary>
    public const string VirtioRngDriver = "virtio-pci";

    /// <summary>QEMU's pci-testdev (<c>-device pci-testdev,addr=10.0,membar=2M</c>), alone in IOMMU group 7: a memory BAR,
    /// an I/O BAR and a 64-bit prefetchable 2 MiB BAR.</summary>
    public const string PciTestDev = "0000:00:10.0";

    /// <summary>The first PCIe root port (<c>pcie-root-port,addr=11.0</c>, secondary bus 02; 1b36:000c, class 0x060400),
    /// bound to the host's <c>pcieport</c> driver, in IOMMU group 8.</summary>
    public const string RootPort = "0000:00:11.0";

    /// <summary>The edu alone behind <see cref="RootPort"/> (<c>bus=rp1,addr=00.0</c>), in IOMMU group 11, with the option
    /// ROM <see cref="TestbedOptionRom"/>: alone on a non-root bus, so vfio-pci resets it by a bus reset (function reset
    /// and hot reset).</summary>
    public const string EduBehindRootPort = "0000:02:00.0";

    /// <summary>The second PCIe root port (<c>addr=12.0</c>, secondary bus 03), <c>pcieport</c>, IOMMU group 9. (Group 10 is the ICH9 functions at 00:1f, which the simulator does not show.)</summary>
    public const string RootPort2 = "0000:00:12.0";

    /// <summary>Function 0 of the two-function edu behind <see cref="RootPort2"/> (03:00.0), bound to vfio-pci; with its
    /// peer in IOMMU group 12 (functions without ACS share a group).</summary>
    public const string EduWithPeer = "0000:03:00.0";

    /// <summary>Function 1 of that edu (03:00.1), bound to no driver: the group stays viable, and a bus reset of 03:00.0
    /// would reset a device no VFIO user owns.</summary>
    public const string EduPeerWithoutDriver = "0000:03:00.1";

    /// <summary>The multiple-message MSI device of the <c>pci-intremap-off</c> shape only (<see cref="XhciMsiDevice"/>,
    /// QEMU's <c>qemu-xhci,msi=on,msix=off</c>), bound to vfio-pci.</summary>
    public const string MultiMessageMsi = "0000:00:13.0";

    /// <summary>The driver of the root ports.</summary>
    public const string RootPortDriver = "pcieport";

    /// <summary>
    /// The 4 KiB option ROM the testbed gives <see cref="EduBehindRootPort"/> (tests/testbed/run-guest.sh writes the same
    /// bytes): the <c>0x55 0xAA</c> signature, a PCI data structure ("PCIR" at 0x20: edu's IDs and class, one image of
    /// 8 x 512 bytes, code type 3, the last-image bit) and the text "VFIO for .NET option ROM" at 0x40.
    /// </summary>
    /// <returns>A new copy of the image.</returns>
    public static byte[] TestbedOptionRom()
    {
        byte[] rom = new byte[4096];
        rom[0] = 0x55;
        rom[1] = 0xaa;
        rom[0x18] = 0x20;
        byte[] pcir = [(byte)'P', (byte)'C', (byte)'I', (byte)'R', 0x34, 0x12, 0xe8, 0x11, 0, 0, 0x18, 0, 0, 0, 0xff, 0, 0x08, 0, 0, 0, 0x03, 0x80, 0, 0];
        pcir.CopyTo(rom, 0x20);
        System.Text.Encoding.ASCII.GetBytes("VFIO for .NET option ROM").CopyTo(rom, 0x40);
        return rom;
    }

    /// <summary>
    /// The testbed's <c>pci</c> shape: q35 with an emulated VT-d (interrupt remapping on), edu at 00:02.0, an MSI-X
    /// device with 65 vectors at 00:03.0 and a second edu at 00:04.0, all bound to vfio-pci, each alone in its IOMMU
    /// group (2, 3, 4); a conventional PCI bridge at 00:05.0 with a third edu (01:01.0, vfio-pci) and a virtio-rng
    /// (01:02.0, bound to the host's virtio-pci) behind it, all three in IOMMU group 5, which is therefore not viable;
    /// pci-testdev at 00:10.0; a PCIe root port at 00:11.0 with an edu alone behind it (02:00.0, with an option ROM);
    /// and a second root port at 00:12.0 with a two-function edu (03:00.0 on vfio-pci, 03:00.1 without a driver).
    /// iommufd, device cdevs and the legacy container all available. Without interrupt remapping (<see
    /// cref="SimulatedTestbedOptions.InterruptRemapping"/> false, the shape <c>pci-intremap-off</c>) it also has
    /// <see cref="XhciMsiDevice"/> at <see cref="MultiMessageMsi"/> in IOMMU group 10, which moves the devices behind the
    /// root ports to groups 12 and 13, as on the testbed. Without an IOMMU (<see
    /// cref="SimulatedTestbedOptions.NoIommu"/>) there are no real groups: each VFIO device gets its own no-IOMMU group
    /// in the order the testbed binds them (noiommu-0 to noiommu-6).
    /// </summary>
    /// <param name="options">How this machine differs from the default shape; null for the default.</param>
    /// <returns>A new topology; add devices to it or change its kernel features before creating the kernel.</returns>
    public static SimulatedTopology Testbed(SimulatedTestbedOptions? options = null)
    {
        options ??= new SimulatedTestbedOptions();
        SimulatedTopology topology = options.NoIommu
            ? new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, DeviceCdev = false }
            : options.Spapr
            ? new SimulatedTopology { Iommu = SimulatedIommu.SpaprTce, IommuFd = false, DeviceCdev = false, SpaprPlatform = options.SpaprPlatform }
            : new SimulatedTopology { InterruptRemapping = options.InterruptRemapping };
        // No-IOMMU: the testbed gives edu a 64-bit DMA mask (the device sees physical addresses).
        ulong eduMask = options.NoIommu ? ulong.MaxValue : EduDevice.DefaultDmaMask;
        // pci-intremap-off's xhci on bus 0 takes group 10, ahead of the devices behind the root ports (seen: 12 and 13).
        bool xhci = !options.InterruptRemapping && !options.NoIommu && !options.Spapr;
        int behindPort = xhci ? 12 : 11;
        topology
            .AddPci(Edu, iommuGroup: 2, new EduDevice(eduMask) { DmaDelay = options.EduDmaDelay })
            .AddPci(Nvme, iommuGroup: 3, new NvmeDevice())
            .AddPci(Edu2, iommuGroup: 4, new EduDevice(eduMask) { DmaDelay = options.EduDmaDelay }, options.Edu2Driver)
            .AddPci(Bridge, iommuGroup: 5, model: null, driver: string.Empty, identity: SimulatedPciIdentity.QemuPciBridge)
            .AddPci(EduBehindBridge, iommuGroup: 5, new EduDevice(eduMask) { DmaDelay = options.EduDmaDelay }, bridge: Bridge)
            .AddPci(VirtioRng, iommuGroup: 5, model: null, driver: VirtioRngDriver, bridge: Bridge, identity: SimulatedPciIdentity.QemuVirtioRng)
            .AddPci(PciTestDev, iommuGroup: 7, new PciTestDevice())
            .AddPci(RootPort, iommuGroup: 8, model: null, driver: RootPortDriver, identity: SimulatedPciIdentity.QemuPcieRootPort)
            .AddPci(RootPort2, iommuGroup: 9, model: null, driver: RootPortDriver, identity: SimulatedPciIdentity.QemuPcieRootPort)
            .AddPci(EduBehindRootPort, iommuGroup: behindPort, new EduDevice(eduMask) { DmaDelay = options.EduDmaDelay, OptionRom = TestbedOptionRom() }, bridge: RootPort)
            .AddPci(EduWithPeer, iommuGroup: behindPort + 1, new EduDevice(eduMask) { DmaDelay = options.EduDmaDelay }, bridge: RootPort2)
            .AddPci(EduPeerWithoutDriver, iommuGroup: behindPort + 1, model: null, driver: string.Empty, bridge: RootPort2, identity: SimulatedPciIdentity.QemuEdu);
        return xhci ? topology.AddPci(MultiMessageMsi, iommuGroup: 10, new XhciMsiDevice()) : topology;
    }
}

/// <summary>How a <see cref="SimulatedMachines.Testbed"/> machine differs from the testbed's default <c>pci</c> shape.</summary>
public sealed record SimulatedTestbedOptions
{
    /// <summary>True: no IOMMU, vfio's no-IOMMU mode enabled (the testbed shape <c>noiommu</c>).</summary>
    public bool NoIommu { get; init; }

    /// <summary>True: the same devices on a POWER host, whose containers offer sPAPR TCE v1/v2 (with EEH) instead of
    /// Type1, and no iommufd or device cdevs (<see cref="SimulatedIommu.SpaprTce"/>). Ignored with <see cref="NoIommu"/>.</summary>
    public bool Spapr { get; init; }

    /// <summary>With <see cref="Spapr"/>: the POWER host's platform (default <see cref="SimulatedSpaprPlatform.PowerNv"/>,
    /// with EEH; <see cref="SimulatedSpaprPlatform.PSeries"/> is the guest the facts were probed on).</summary>
    public SimulatedSpaprPlatform SpaprPlatform { get; init; }

    /// <summary>False: the IOMMU does not remap interrupts (the testbed shape <c>pci-intremap-off</c>).</summary>
    public bool InterruptRemapping { get; init; } = true;

    /// <summary>The driver the second edu (00:04.0) is bound to; empty for none.</summary>
    public string Edu2Driver { get; init; } = "vfio-pci";

    /// <summary>How long edu's DMA engine takes per transfer (QEMU's edu uses a 100 ms timer; the default here is
    /// 1 ms so that programs and tests do not wait for nothing).</summary>
    public TimeSpan EduDmaDelay { get; init; } = TimeSpan.FromMilliseconds(1);
}
