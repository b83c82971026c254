// SPDX-License-Identifier: MIT
namespace Vfio.Samples.FdPassing;

/// <summary>The sample's own settings (configuration section <c>Sample</c>).</summary>
public sealed class FdPassingOptions
{
    /// <summary>The edu device's PCI address; it must be bound to vfio-pci and have a cdev (CONFIG_VFIO_DEVICE_CDEV).</summary>
    public string Device { get; set; } = "0000:00:02.0";

    /// <summary>True to run on the simulator: the worker then runs in the launcher's process (README.md says why).</summary>
    public bool Simulate { get; set; }

    /// <summary>The user id the worker process runs as (65534: nobody).</summary>
    public int WorkerUser { get; set; } = 65534;

    /// <summary>The group id the worker process runs as (65534: nogroup).</summary>
    public int WorkerGroup { get; set; } = 65534;
}
