// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>Why a DMA mapping request was refused.</summary>
public enum DmaMappingFailure
{
    /// <summary>The kernel refused it (see <see cref="VfioException.Errno"/>).</summary>
    Kernel,

    /// <summary>The IOVA, size or host address is not a multiple of the space's page size.</summary>
    Misaligned,

    /// <summary>The range overlaps an existing mapping of the space.</summary>
    Overlap,

    /// <summary>The range lies (partly) outside the IOVA ranges every container of the space can translate.</summary>
    OutsideIovaRanges,

    /// <summary>No mapping starts at the IOVA given to unmap.</summary>
    NotMapped,

    /// <summary>No free IOVA block of the size fits below the DMA mask.</summary>
    NoFreeIova,

    /// <summary>The kernel's limit on mappings (Type1's <c>dma_entry_limit</c>) or on locked memory was reached.</summary>
    LimitReached,

    /// <summary>The physical address of memory for a no-IOMMU device could not be resolved: <c>/proc/self/pagemap</c> hides
    /// page frame numbers from a process without <c>CAP_SYS_ADMIN</c>, or a page was not resident
    /// (<see cref="PhysicalDmaBuffer"/>).</summary>
    PhysicalAddressUnavailable,

    /// <summary>A <see cref="DmaBuffer"/> required huge pages (<see cref="HugePagePolicy.Required"/>) and the kernel had none
    /// free to give (none reserved in <c>/proc/sys/vm/nr_hugepages</c>, all in use, or no hugetlb support).</summary>
    HugePagesUnavailable,
}

/// <summary>
/// A DMA map or unmap request was refused, by the library's checks (the same on every backend) or by the kernel;
/// <see cref="Failure"/> says which rule, the message names the range and the space, and the hint says what to do.
/// </summary>
public class VfioDmaException : VfioException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="failure">Which rule refused the request.</param>
    /// <param name="operation">The operation, e.g. <c>map DMA</c> or the ioctl name.</param>
    /// <param name="objectName">The DMA space or container.</param>
    /// <param name="detail">What was refused and why, with the range.</param>
    /// <param name="hint">What to do about it.</param>
    /// <param name="errno">The kernel's errno when <paramref name="failure"/> is <see cref="DmaMappingFailure.Kernel"/>
    /// or <see cref="DmaMappingFailure.LimitReached"/>.</param>
    /// <param name="innerException">The kernel's failure, if any.</param>
    public VfioDmaException(DmaMappingFailure failure, string operation, string objectName, string detail, string? hint = null,
        Errno errno = Errno.None, Exception? innerException = null)
        : base(errno, operation, objectName, hint, detail, innerException)
    {
        Failure = failure;
    }

    /// <summary>Which rule refused the request.</summary>
    public DmaMappingFailure Failure { get; }
}
