// SPDX-License-Identifier: MIT
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;

// A VFIO group can be opened once: the cases take turns.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Vfio.Kernel.Tests;

/// <summary>The testbed guest's devices (tests/testbed: q35 + VT-d, edu at 00:02.0 bound to vfio-pci).</summary>
internal static class Guest
{
    internal static readonly IKernel Kernel = LinuxKernel.Instance;

    internal static string EduAddress => Environment.GetEnvironmentVariable("VFIO_TEST_EDU") ?? "0000:00:02.0";

    internal static SafeFileHandle Open(string path)
    {
        VfioException.ThrowIfFailed(Kernel.Open(path, OpenFlags.ReadWrite, out SafeFileHandle handle), "open", path);
        return handle;
    }

    /// <summary>The edu device's IOMMU group number, from its sysfs iommu_group link.</summary>
    internal static string EduGroup()
    {
        Kernel.ReadLink($"/sys/bus/pci/devices/{EduAddress}/iommu_group", out string target).ShouldBe(0);
        return Path.GetFileName(target);
    }

    /// <summary>The edu device's cdev name (vfioN), from sysfs.</summary>
    internal static string EduCdev()
    {
        Kernel.ListDirectory($"/sys/bus/pci/devices/{EduAddress}/vfio-dev", out string[] entries).ShouldBe(0);
        return entries.ShouldHaveSingleItem();
    }
}
