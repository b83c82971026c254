// SPDX-License-Identifier: MIT
// samples/Nvme: a user-space NVMe driver on Devices.Pci (see README.md).
//   dotnet run --project samples/Nvme -- [device] [--backend auto|legacy|iommufd] [--simulate]
// Exit code 0 when the controller identified itself and the blocks written were read back intact, 1 otherwise,
// 2 for a bad command line.
using Vfio.Backends.IommuFd;
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Samples.Nvme;
using Vfio.Simulator;

string device = SimulatedMachines.Nvme;   // the testbed's nvme, 0000:00:03.0
string backend = "auto";
bool simulate = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--simulate":
            simulate = true;
            break;
        case "--backend" when i + 1 < args.Length:
            backend = args[++i];
            break;
        case "-h" or "--help":
            Console.WriteLine("usage: Vfio.Samples.Nvme [device] [--backend auto|legacy|iommufd] [--simulate]");
            return 0;
        case string a when !a.StartsWith('-'):
            device = a;
            break;
        default:
            Console.Error.WriteLine($"nvme sample: unknown argument '{args[i]}'; usage: [device] [--backend auto|legacy|iommufd] [--simulate]");
            return 2;
    }
}
if (backend is not ("auto" or "legacy" or "iommufd"))
{
    Console.Error.WriteLine($"nvme sample: unknown backend '{backend}'; use auto, legacy or iommufd.");
    return 2;
}

// The machine's kernel, or the simulator's model of the testbed (the nvme at 00:03.0 is its NvmeDevice) when asked
// or when this machine has no VFIO device to drive, as vfioctl's demo does.
string? why = simulate ? "--simulate was given" : NoVfio(LinuxKernel.Instance);
using SimulatedKernel? simulator = why is null ? null : new SimulatedKernel(SimulatedMachines.Testbed());
IKernel kernel = simulator ?? (IKernel)LinuxKernel.Instance;
Console.WriteLine($"Driving NVMe at {device} on {(simulator is null ? "the running kernel" : $"the simulator ({why})")}");

var options = new VfioOptions { Backend = backend };
using var legacy = new LegacyBackend(kernel, options);
using var iommufd = new IommuFdBackend(kernel, options);
using var vfio = new VfioManager(options, [iommufd, legacy]);
using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
try
{
    using DmaSpace space = vfio.CreateDmaSpace("nvme");
    using AttachedDevice attached = vfio.AttachDevice(device, space);
    Console.WriteLine($"Attached {attached.Name} through the {attached.Backend.Name} backend ({attached.Container.Name})");

    await using NvmeController nvme = NvmeController.Open(attached);
    Console.WriteLine($"Controller enabled: NVMe {nvme.Version >> 16}.{(nvme.Version >> 8) & 0xff}, ready timeout {nvme.ReadyTimeout.TotalSeconds:0.#} s, MSI-X vectors {nvme.Pci.Msix.VectorCount}");
    NvmeControllerInfo info = await nvme.IdentifyControllerAsync(cancel.Token);
    Console.WriteLine($"Identify Controller: model '{info.Model}', serial '{info.Serial}', firmware '{info.Firmware}', {info.NamespaceCount} namespace(s)");
    NvmeNamespaceInfo ns = await nvme.IdentifyNamespaceAsync(1, cancel.Token);
    Console.WriteLine($"Namespace 1: {ns.Blocks} blocks of {ns.BlockSize} bytes ({ns.Bytes / (1024 * 1024)} MiB)");

    await nvme.CreateIoQueuesAsync(cancel.Token);
    // 16 KiB (a PRP list: more than two pages) written from one DMA buffer and read back into another, at the
    // namespace's last blocks.
    const int bytes = 16 * 1024;
    int blocks = bytes / ns.BlockSize;
    ulong lba = ns.Blocks - (ulong)blocks;
    using DmaBuffer source = DmaBuffer.Allocate(space, bytes);
    using DmaBuffer target = DmaBuffer.Allocate(space, bytes);
    Random.Shared.NextBytes(source.Span);
    target.Span.Clear();
    await nvme.WriteAsync(ns, lba, blocks, source, cancellationToken: cancel.Token);
    await nvme.FlushAsync(ns, cancel.Token);
    await nvme.ReadAsync(ns, lba, blocks, target, cancellationToken: cancel.Token);
    bool intact = target.Span.SequenceEqual(source.Span);
    Console.WriteLine($"Wrote {blocks} blocks at LBA {lba}, flushed, read them back: {(intact ? "verified" : "MISMATCH")}");

    await nvme.ShutdownAsync(cancel.Token);
    Console.WriteLine("Shut down: I/O queues deleted, controller disabled");
    Console.WriteLine(intact ? "nvme sample passed" : "nvme sample failed: the data read back differs");
    return intact ? 0 : 1;
}
catch (Exception e) when (e is VfioException or NvmeCommandException or NvmeControllerException or TimeoutException or OperationCanceledException or InvalidOperationException)
{
    Console.Error.WriteLine($"nvme sample failed: {e.Message}");
    return 1;
}

// Why this machine has no VFIO device to drive, or null when it has one.
static string? NoVfio(IKernel kernel)
{
    if (!kernel.Exists("/dev/vfio/vfio") && !kernel.Exists("/dev/iommu"))
    {
        return "this machine has no VFIO device (neither /dev/vfio/vfio nor /dev/iommu exists)";
    }
    return VfioSysfs.ListDevices(kernel).Any(static d => d.IsBoundToVfio) ? null : "this machine has no VFIO device (no device is bound to vfio-pci or vfio-platform)";
}
