// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// What the simulated IOMMU driver reports to iommufd: QEMU's emulated Intel VT-d as the testbed shows it
/// (testbed.md: IOVA ranges 0x0–0xfedfffff and 0xfef00000–0x7fffffffff, page sizes 0x40201000, hw-info type 1).
/// </summary>
internal static class SimulatedVtd
{
    internal const ulong PageSize = 4096;

    /// <summary>The host's huge page size (x86-64 THP): the cap of automatic IOVA alignment.</summary>
    internal const ulong HugePageSize = 2 * 1024 * 1024;

    /// <summary>4 KiB, 2 MiB and 1 GiB (second-level page sizes with SLLPS = 3).</summary>
    internal const ulong PageSizes = 0x40201000;

    /// <summary>The last IOVA of a domain: 39-bit address width (QEMU's default aw-bits).</summary>
    internal const ulong ApertureEnd = 0x7F_FFFF_FFFF;

    /// <summary>The interrupt (MSI) window every device reserves.</summary>
    internal const ulong MsiStart = 0xFEE0_0000;

    internal const ulong MsiLast = 0xFEEF_FFFF;

    /// <summary>QEMU intel-iommu's capability register (as Linux logs it: "cap 12008c22260286").</summary>
    internal const ulong CapReg = 0x12008c22260286;

    /// <summary>QEMU intel-iommu's extended capability register ("ecap f00f5e").</summary>
    internal const ulong EcapReg = 0xf00f5e;

    /// <summary>Size of struct iommu_hw_info_vtd.</summary>
    internal const int HwInfoLength = 24;
}

/// <summary>errno values iommufd uses that <see cref="Errno"/> does not list.</summary>
internal static class IommuFdErrno
{
    internal const int EMSGSIZE = 90;
    internal const int EADDRINUSE = 98;
}
