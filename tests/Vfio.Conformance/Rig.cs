// SPDX-License-Identifier: MIT
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Backends.SpaprTce;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Conformance;

/// <summary>
/// One case's machine: the kernel (the real one, or a fresh simulated kernel with the testbed's topology for the mode),
/// the mode's backend, and the DMA spaces the case made. Disposing it detaches every device (spaces first, then the
/// backend, then the simulated kernel).
/// </summary>
internal sealed class Rig : IDisposable
{
    private readonly List<DmaSpace> _spaces = [];
    private readonly List<IDisposable> _backends = [];

    private Rig(Mode mode, IKernel kernel, SimulatedKernel? simulator)
    {
        Mode = mode;
        Kernel = kernel;
        Simulator = simulator;
    }

    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    internal Mode Mode { get; }

    internal IKernel Kernel { get; }

    /// <summary>The simulated kernel, or null on the real kernel.</summary>
    internal SimulatedKernel? Simulator { get; }

    internal IIommuBackend Backend { get; private set; } = null!;

    /// <summary>Builds the machine for <paramref name="mode"/> with the mode's backend.</summary>
    /// <param name="mode">The mode.</param>
    /// <param name="machine">How the simulated machine differs from the testbed's default (ignored on the real
    /// kernel, where the testbed shape decides).</param>
    internal static Rig Create(Mode mode, SimulatedMachine? machine = null)
    {
        Target.Modes.ShouldContainMode(mode);
        Rig rig = Target.IsKernel
            ? new Rig(mode, LinuxKernel.Instance, null)
            : SimulatedFor(mode, machine ?? new SimulatedMachine());
        rig.Backend = rig.NewBackend(rig.OptionsFor(mode));
        return rig;
    }

    /// <summary>The options that select the mode on the legacy backend.</summary>
    internal VfioOptions OptionsFor(Mode mode) => mode switch
    {
        Mode.IommuFdCompat => new VfioOptions { IommuFdAsContainer = true },
        Mode.NoIommu or Mode.Platform => new VfioOptions { AllowUnsafeNoIommu = true },
        _ => new VfioOptions(),
    };

    /// <summary>Another backend of the mode's kind on the same kernel (disposed with the rig).</summary>
    internal IIommuBackend NewBackend(VfioOptions options)
    {
        IIommuBackend backend = Mode switch
        {
            Mode.IommuFd => new IommuFdBackend(Kernel, options),
            Mode.SpaprTce => new SpaprTceBackend(Kernel, options),
            _ => new LegacyBackend(Kernel, options),
        };
        _backends.Add((IDisposable)backend);
        return backend;
    }

    internal DmaSpace NewSpace(string name = "dma")
    {
        var space = new DmaSpace(name);
        _spaces.Add(space);
        return space;
    }

    internal AttachedDevice Attach(string name, DmaSpace space) => Backend.AttachDevice(Patterns.Source(Mode, name), space);

    /// <summary>Attaches <paramref name="name"/> to a new space.</summary>
    internal AttachedDevice Attach(string name) => Attach(name, NewSpace());

    public void Dispose()
    {
        ReleaseAll();
        Simulator?.Dispose();
    }

    /// <summary>Disposes the spaces and backends (devices detached, containers released) and keeps the simulated
    /// kernel, so a case can check what is left in it.</summary>
    internal void ReleaseAll()
    {
        foreach (DmaSpace space in _spaces)
        {
            space.Dispose();
        }
        foreach (IDisposable backend in _backends)
        {
            backend.Dispose();
        }
    }

    /// <summary>
    /// Lets VFIO accept a machine without interrupt remapping for the rest of the case, as an administrator does with
    /// <c>vfio_iommu_type1.allow_unsafe_interrupts=1</c> and <c>iommufd.allow_unsafe_interrupts=1</c>: on the real
    /// kernel both module parameters are written (and their old values written back on disposal); on the simulator the
    /// topology's switch.
    /// </summary>
    /// <returns>What puts the parameters back.</returns>
    internal IDisposable AllowUnsafeInterrupts()
    {
        if (Simulator is { } simulator)
        {
            SimulatedTopology topology = simulator.Topology;
            (bool type1, bool iommufd) = (topology.AllowUnsafeInterrupts, topology.IommuFdAllowUnsafeInterrupts);
            (topology.AllowUnsafeInterrupts, topology.IommuFdAllowUnsafeInterrupts) = (true, true);
            return new Restore(() => (topology.AllowUnsafeInterrupts, topology.IommuFdAllowUnsafeInterrupts) = (type1, iommufd));
        }
        string[] parameters = ["/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "/sys/module/iommufd/parameters/allow_unsafe_interrupts"];
        string[] old = [.. parameters.Select(static p => File.ReadAllText(p).Trim())];
        foreach (string parameter in parameters)
        {
            File.WriteAllText(parameter, "Y");
        }
        return new Restore(() =>
        {
            for (int i = 0; i < parameters.Length; i++)
            {
                File.WriteAllText(parameters[i], old[i]);
            }
        });
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }

    /// <summary>The size of the testbed's virtio-blk scratch image (tests/testbed/run-guest.sh, shape platform).</summary>
    internal const int BlkCapacityBytes = 1 << 20;

    /// <summary>The testbed's machine in the simulator (<see cref="SimulatedMachines.Testbed"/>); microvm's rng and
    /// virtio-blk for platform, in no-IOMMU groups 0 and 1 as vfio-platform gives them there. The blk completes a request
    /// during the notifying write, as QEMU's did on the testbed, so the simulator holds its driver to the same wait.</summary>
    private static Rig SimulatedFor(Mode mode, SimulatedMachine machine)
    {
        SimulatedTopology topology = mode == Mode.Platform
            ? new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false, DeviceCdev = false }
                .AddPlatform(Target.SimulatedRng, 0, new VirtioRngDevice())
                .AddPlatform(Target.SimulatedBlk, 1, new VirtioBlkDevice(BlkCapacityBytes) { Latency = TimeSpan.Zero })
            : SimulatedMachines.Testbed(new SimulatedTestbedOptions
            {
                NoIommu = mode == Mode.NoIommu,
                Spapr = mode == Mode.SpaprTce,
                SpaprPlatform = machine.SpaprPlatform,
                InterruptRemapping = machine.InterruptRemapping,
                Edu2Driver = machine.Edu2Driver,
            });
        if (mode == Mode.SpaprTce)
        {
            topology.SpaprTceV1Only = machine.SpaprV1Only;
            topology.SpaprWindows = machine.SpaprWindows;
        }
        var simulator = new SimulatedKernel(topology);
        return new Rig(mode, simulator, simulator);
    }
}

/// <summary>How a case's simulated machine differs from the testbed's default shape.</summary>
/// <param name="InterruptRemapping">False: the IOMMU does not remap interrupts (the testbed shape pci-intremap-off).</param>
/// <param name="Edu2Driver">The driver the second edu (00:04.0) is bound to; empty for none.</param>
/// <param name="SpaprV1Only">sPAPR TCE mode: the host offers only v1.</param>
/// <param name="SpaprWindows">sPAPR TCE mode: the host's window count.</param>
/// <param name="SpaprPlatform">sPAPR TCE mode: the POWER host's platform (PowerNV, with EEH, unless said).</param>
internal sealed record SimulatedMachine(bool InterruptRemapping = true, string Edu2Driver = "vfio-pci", bool SpaprV1Only = false, int SpaprWindows = 2,
    SimulatedSpaprPlatform SpaprPlatform = SimulatedSpaprPlatform.PowerNv);

/// <summary>Assertion helpers shared by the cases.</summary>
internal static class RigAssertions
{
    internal static void ShouldContainMode(this IReadOnlyList<Mode> modes, Mode mode)
    {
        if (!modes.Contains(mode))
        {
            throw new InvalidOperationException($"Mode {mode} is not provided by this target ({string.Join(", ", modes)}).");
        }
    }
}
