// SPDX-License-Identifier: MIT
namespace Vfio.Simulator.Tests;

/// <summary>
/// Names the Linux 6.12 source a model test checks the behaviour of: a file of the kernel tree and, after a space,
/// the function (or struct) that implements it, e.g. <c>drivers/vfio/vfio_iommu_type1.c vfio_dma_do_map</c>. Every
/// model test carries one, so a reader can find the rule in the kernel and a change of the kernel finds its tests.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class SpecAttribute(string source) : Attribute
{
    /// <summary>The kernel source file and function, e.g. <c>drivers/vfio/group.c vfio_group_fops_open</c>.</summary>
    public string Source { get; } = source;
}
