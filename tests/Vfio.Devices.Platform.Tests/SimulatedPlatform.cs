// SPDX-License-Identifier: MIT
using Vfio.Backends.Legacy;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Devices.Platform.Tests;

/// <summary>A simulated no-IOMMU machine with one platform device (vfio-platform) attached through the legacy backend.</summary>
internal sealed class SimulatedPlatform : IDisposable
{
    internal const string Name = "PLAT0001:00";
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly SimulatedKernel _kernel;
    private readonly LegacyBackend _backend;
    private readonly DmaSpace _space = new("platform");

    internal SimulatedPlatform(EmulatedPlatformDevice? model = null)
    {
        _kernel = new SimulatedKernel(new SimulatedTopology { Iommu = SimulatedIommu.None, UnsafeNoIommuMode = true, IommuFd = false, DeviceCdev = false }
            .AddPlatform(Name, 0, model ?? new PlatformTestDevice()));
        _backend = new LegacyBackend(_kernel, new VfioOptions { AllowUnsafeNoIommu = true });
        Device = _backend.AttachDevice(VfioDeviceSource.Platform(Name), _space).Device;
        Platform = new VfioPlatformDevice(Device);
    }

    internal VfioDevice Device { get; }

    internal VfioPlatformDevice Platform { get; }

    /// <summary>Region 0's registers of <see cref="PlatformTestDevice"/>, written past Devices.Platform.</summary>
    internal void Raise(int line) => Device.WriteRegion32(0, PlatformTestDevice.AssertRegister, 1u << line);

    internal void Lower(int line) => Device.WriteRegion32(0, PlatformTestDevice.DeassertRegister, 1u << line);

    public void Dispose()
    {
        Platform.Dispose();
        _space.Dispose();
        _backend.Dispose();
        _kernel.Dispose();
    }
}
