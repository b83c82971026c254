// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core;

/// <summary>
/// Locked, page-aligned memory with the physical address of each page: DMA memory for a device in no-IOMMU mode, which
/// sees physical addresses because nothing translates its accesses (DPDK's "IOVA as PA").
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Allocate"/> maps private anonymous memory, marks it <c>MADV_DONTFORK</c> and <c>mlock</c>s it (which faults
/// every page in), then reads each page's frame number from <c>/proc/self/pagemap</c> (Documentation/admin-guide/mm/pagemap.rst:
/// one 64-bit entry per page, bit 63 "page present", bits 0–54 the page frame number). Since Linux 4.2 the frame numbers
/// read as 0 unless the process that opened the file has <c>CAP_SYS_ADMIN</c>; that is a <see cref="VfioDmaException"/>
/// with <see cref="DmaMappingFailure.PhysicalAddressUnavailable"/>, as is a page that is not present.
/// </para>
/// <para>
/// Pages are physically contiguous only where the kernel happened to hand out consecutive frames:
/// <see cref="GetPhysicalAddress"/> resolves any byte, <see cref="GetContiguousLength"/> says how far a device may run from
/// it, and a structure a device reads in one go (a descriptor ring, a DMA transfer) must fit in that length, which a
/// single page always does.
/// </para>
/// <para>
/// <b>What locking does not promise.</b> <c>mlock</c> keeps pages out of swap, and <c>MADV_DONTFORK</c> keeps a fork from
/// making them copy-on-write; neither forbids the kernel's compaction from migrating a locked page
/// (<c>vm.compact_unevictable_allowed</c>, 1 by default). DPDK uses hugetlbfs pages for that reason. A device must not
/// be given addresses of a buffer after it was disposed: the frames return to the kernel.
/// </para>
/// <para>
/// Disposing unmaps the memory, which unlocks it; every failure of <see cref="Allocate"/> unmaps what it mapped and
/// closes the pagemap file.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using PhysicalDmaBuffer ring = PhysicalDmaBuffer.Allocate(LinuxKernel.Instance, 4096);
/// ulong descriptors = ring.GetPhysicalAddress(0);   // what the device is given
/// ring.Memory.Write64(0, bufferPhysicalAddress);    // what the driver writes, through the process address
/// </code>
/// </example>
public sealed class PhysicalDmaBuffer : IDisposable
{
    /// <summary>The file that maps process pages to page frames.</summary>
    public const string PagemapPath = "/proc/self/pagemap";

    private const ulong PagemapPresent = 1UL << 63;
    private const ulong PagemapSwapped = 1UL << 62;
    private const ulong PagemapFrameMask = (1UL << 55) - 1;

    private readonly ulong[] _physical;

    private PhysicalDmaBuffer(MemoryMapping memory, ulong pageSize, ulong[] physical)
    {
        Memory = memory;
        PageSize = pageSize;
        _physical = physical;
    }

    /// <summary>The memory, with volatile little-endian accessors (for rings the device reads and writes).</summary>
    public MemoryMapping Memory { get; }

    /// <summary>The process address of the first byte.</summary>
    public nint Address => Memory.DangerousGetHandle();

    /// <summary>The size in bytes: whole pages.</summary>
    public ulong Size => Memory.Length;

    /// <summary>The page size (the kernel's <c>PAGE_SIZE</c>, the unit of <c>/proc/self/pagemap</c>).</summary>
    public ulong PageSize { get; }

    /// <summary>The number of pages.</summary>
    public int PageCount => _physical.Length;

    /// <summary>The physical address of each page, in process-address order.</summary>
    public IReadOnlyList<ulong> PagePhysicalAddresses => _physical;

    /// <summary>True when the whole buffer is one physically contiguous run.</summary>
    public bool IsContiguous => GetContiguousLength(0) == Size;

    /// <summary>Allocates <paramref name="size"/> bytes (rounded up to whole pages) of locked memory and resolves the
    /// physical address of every page.</summary>
    /// <param name="kernel">The kernel port (<see cref="LinuxKernel.Instance"/>, or a kernel model).</param>
    /// <param name="size">The size in bytes, more than 0.</param>
    /// <returns>The buffer, zero-filled.</returns>
    /// <exception cref="VfioDmaException">Mapping or locking failed (<see cref="DmaMappingFailure.LimitReached"/> for
    /// RLIMIT_MEMLOCK), or the physical addresses could not be read (<see cref="DmaMappingFailure.PhysicalAddressUnavailable"/>).</exception>
    public static PhysicalDmaBuffer Allocate(IKernel kernel, ulong size)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentOutOfRangeException.ThrowIfZero(size);
        ulong pageSize = (ulong)Environment.SystemPageSize;
        ulong length = checked((size + pageSize - 1) & ~(pageSize - 1));
        const string Operation = "allocate physical DMA memory";
        string objectName = $"{length} bytes";

        int rc = kernel.MapAnonymous(length, out MemoryMapping? memory);
        if (rc < 0 || memory is null)
        {
            throw new VfioDmaException(DmaMappingFailure.Kernel, "mmap", objectName,
                $"anonymous memory of {length} bytes could not be mapped", errno: (Errno)(-rc));
        }
        try
        {
            rc = kernel.LockMemory(memory);
            if (rc < 0)
            {
                throw new VfioDmaException(DmaMappingFailure.LimitReached, "mlock", objectName,
                    $"{length} bytes of DMA memory could not be locked",
                    "Raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK= in a systemd unit) or grant CAP_IPC_LOCK.", (Errno)(-rc));
            }
            ulong[] physical = ResolvePages(kernel, memory, pageSize, Operation);
            return new PhysicalDmaBuffer(memory, pageSize, physical);
        }
        catch
        {
            memory.Dispose();
            throw;
        }
    }

    /// <summary>The physical address of the byte at <paramref name="offset"/>: what a no-IOMMU device is given.</summary>
    /// <param name="offset">The byte offset in the buffer.</param>
    public ulong GetPhysicalAddress(ulong offset)
    {
        ObjectDisposedException.ThrowIf(Memory.IsClosed, this);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(offset, Size);
        return _physical[offset / PageSize] + (offset % PageSize);
    }

    /// <summary>How many bytes from <paramref name="offset"/> on are physically contiguous (at least to the end of its
    /// page): the most a device may transfer from <see cref="GetPhysicalAddress"/>(<paramref name="offset"/>) in one run.</summary>
    /// <param name="offset">The byte offset in the buffer.</param>
    public ulong GetContiguousLength(ulong offset)
    {
        ObjectDisposedException.ThrowIf(Memory.IsClosed, this);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(offset, Size);
        int page = (int)(offset / PageSize);
        ulong length = PageSize - (offset % PageSize);
        while (page + 1 < _physical.Length && _physical[page + 1] == _physical[page] + PageSize)
        {
            page++;
            length += PageSize;
        }
        return length;
    }

    /// <summary>The bytes at <paramref name="offset"/>, through the process address. Valid until the buffer is disposed.</summary>
    /// <param name="offset">The byte offset in the buffer.</param>
    /// <param name="length">The number of bytes.</param>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        ObjectDisposedException.ThrowIf(Memory.IsClosed, this);
        return DmaMemorySpan.Get(Memory, offset, length);
    }

    /// <summary>Unmaps (and so unlocks) the memory. A device must not use its physical addresses afterwards.</summary>
    public void Dispose() => Memory.Dispose();

    private static ulong[] ResolvePages(IKernel kernel, MemoryMapping memory, ulong pageSize, string operation)
    {
        int pages = checked((int)(memory.Length / pageSize));
        int rc = kernel.Open(PagemapPath, OpenFlags.ReadOnly, out SafeFileHandle pagemap);
        using (pagemap)
        {
            if (rc < 0)
            {
                throw new VfioDmaException(DmaMappingFailure.PhysicalAddressUnavailable, "open", PagemapPath,
                    "the page frame numbers of DMA memory could not be read",
                    "No-IOMMU DMA needs /proc/self/pagemap (procfs mounted, CONFIG_PROC_PAGE_MONITOR).", (Errno)(-rc));
            }
            byte[] entries = new byte[pages * 8];
            long fileOffset = checked((long)((ulong)memory.DangerousGetHandle() / pageSize * 8));
            int done = 0;
            while (done < entries.Length)
            {
                long n = kernel.PRead(pagemap, entries.AsSpan(done), fileOffset + done);
                if (n <= 0)
                {
                    throw new VfioDmaException(DmaMappingFailure.PhysicalAddressUnavailable, "pread", PagemapPath,
                        n == 0 ? "the pagemap ended before the DMA memory's entries" : "the page frame numbers of DMA memory could not be read",
                        errno: n < 0 ? (Errno)(-n) : Errno.None);
                }
                done += (int)n;
            }
            ulong[] physical = new ulong[pages];
            for (int i = 0; i < pages; i++)
            {
                ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(entries.AsSpan(i * 8));
                ulong address = (ulong)memory.DangerousGetHandle() + ((ulong)i * pageSize);
                if ((entry & PagemapPresent) == 0 || (entry & PagemapSwapped) != 0)
                {
                    throw new VfioDmaException(DmaMappingFailure.PhysicalAddressUnavailable, operation, PagemapPath,
                        $"page {i} (process address 0x{address:x}) of locked DMA memory is not resident (pagemap entry 0x{entry:x16})",
                        "The memory was locked; a page that is not present means the kernel did not honour mlock. Check RLIMIT_MEMLOCK and memory pressure.");
                }
                ulong frame = entry & PagemapFrameMask;
                if (frame == 0)
                {
                    throw new VfioDmaException(DmaMappingFailure.PhysicalAddressUnavailable, operation, PagemapPath,
                        $"/proc/self/pagemap shows page {i} (process address 0x{address:x}) as present but with page frame number 0: the kernel hides physical addresses from a process without CAP_SYS_ADMIN",
                        "Run the process with CAP_SYS_ADMIN (as root, or setcap cap_sys_admin,cap_ipc_lock+ep, or AmbientCapabilities=CAP_SYS_ADMIN in a systemd unit), or use an IOMMU (then DMA goes through DmaSpace mappings and needs no physical addresses).",
                        Errno.EPERM);
                }
                physical[i] = frame * pageSize;
            }
            return physical;
        }
    }
}
