// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Simulator;

/// <summary>
/// What the simulated IOMMU driver reports to iommufd: QEMU's emulated Intel VT-d as the testbed shows it
/// (QEMU 10, the testbed's: IOVA ranges 0x0–0xfedfffff and 0xfef00000–0xffffffffffff, page sizes 0x40201000, hw-info
/// type 1; an end of 0x7fffffffff (39 bits) was QEMU 7.2's default aw-bits, QEMU 9.2 raised it to 48).
/// </summary>
internal static class SimulatedVtd
{
    internal const ulong PageSize = 4096;

    /// <summary>The host's huge page size (x86-64 THP): the cap of automatic IOVA alignment.</summary>
    internal const ulong HugePageSize = 2 * 1024 * 1024;

    /// <summary>4 KiB, 2 MiB and 1 GiB (second-level page sizes with SLLPS = 3).</summary>
    internal const ulong PageSizes = 0x40201000;

    /// <summary>The last IOVA of a domain: 48-bit address width (QEMU 10's default aw-bits; the real kernel in the
    /// testbed reports 0xfef00000–0xffffffffffff, conformance suite).</summary>
    internal const ulong ApertureEnd = 0xFFFF_FFFF_FFFF;

    /// <summary>The interrupt (MSI) window every device reserves.</summary>
    internal const ulong MsiStart = 0xFEE0_0000;

    internal const ulong MsiLast = 0xFEEF_FFFF;

    /// <summary>QEMU 10 intel-iommu's capability register (as the testbed's kernel logs it: "cap d2008c222f0606").</summary>
    internal const ulong CapReg = 0xd2008c222f0606;

    /// <summary>QEMU 10 intel-iommu's extended capability register ("ecap f00f4a").</summary>
    internal const ulong EcapReg = 0xf00f4a;

    /// <summary>Whether a device access passes a mapping's permissions. A write needs write permission; a read passes a
    /// readable mapping and also a write-only one: Linux 6.12 on QEMU's VT-d lets a device read through a mapping made
    /// with only the write flag, without a fault (measured on the testbed, conformance suite), so the model does too.</summary>
    internal static bool Allows(bool write, bool readable, bool writable) => write ? writable : readable || writable;
}
