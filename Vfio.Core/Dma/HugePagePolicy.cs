// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>Whether a <see cref="DmaBuffer"/> is backed by huge pages.</summary>
public enum HugePagePolicy
{
    /// <summary>Normal pages of the host's page size.</summary>
    None,

    /// <summary>Huge pages of the kernel's default huge page size (<c>Hugepagesize</c> in <c>/proc/meminfo</c>) when the
    /// kernel has reserved pages free (<c>MAP_HUGETLB</c>); otherwise normal pages with <c>MADV_HUGEPAGE</c>, a hint that
    /// lets transparent huge pages back the buffer where the kernel can.</summary>
    Preferred,

    /// <summary>Huge pages or nothing: when no reserved huge page is free, allocation fails with
    /// <see cref="DmaMappingFailure.HugePagesUnavailable"/>, naming how to reserve them.</summary>
    Required,
}
