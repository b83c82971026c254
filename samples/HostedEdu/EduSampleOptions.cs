// SPDX-License-Identifier: MIT
namespace Vfio.Samples.HostedEdu;

/// <summary>The sample's own settings (configuration section <c>Sample</c>).</summary>
public sealed class EduSampleOptions
{
    /// <summary>The edu device's PCI address; it must be bound to vfio-pci.</summary>
    public string Device { get; set; } = "0000:00:02.0";

    /// <summary>True to run on the simulator instead of the running kernel (read by Program.cs).</summary>
    public bool Simulate { get; set; }
}
