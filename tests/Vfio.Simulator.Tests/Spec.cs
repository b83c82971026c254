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

/// <summary>
/// Cites a real kernel's answer that a model test reproduces: where it was observed and what it was, e.g.
/// <c>ppc64le probe: MAP_DMA outside window = -1 ENXIO</c>. The ppc64le probe is tests/testbed/ppc64le (Linux 6.12.118 in
/// a QEMU 10.0.2 pseries guest); its answers are summarised in that folder's README.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class ProbedAttribute(string answer) : Attribute
{
    /// <summary>The observed answer, with the probe that gave it.</summary>
    public string Answer { get; } = answer;
}
