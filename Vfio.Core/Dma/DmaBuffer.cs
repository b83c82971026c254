// SPDX-License-Identifier: MIT
using System.Buffers;
using System.Globalization;
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>
/// DMA memory for devices behind an IOMMU: whole pages of the process's own memory, allocated and mapped into a
/// <see cref="DmaSpace"/> in one call (<see cref="Allocate"/>), reached by the devices at <see cref="Iova"/>, and unmapped
/// and freed by <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// <para>
/// <b>The memory</b> is a private anonymous <c>mmap</c> of whole pages, zero-filled, marked <c>MADV_DONTFORK</c>: a child
/// process forked while the buffer lives (<c>Process.Start</c> forks) must not make the pages copy-on-write, or the
/// parent's next write would move them to new frames while the IOMMU still points the device at the old ones. The size is
/// rounded up to the page size actually used (<see cref="PageSize"/>: the host's, a huge page's with
/// <see cref="HugePagePolicy"/>, or the space's IOMMU page size when that is larger), and the address is aligned to it.
/// The IOMMU map pins the pages; nothing else locks them.
/// </para>
/// <para>
/// <b>Disposal</b> unmaps the buffer from its space first and frees the memory only then, so a device is never left
/// with an IOVA that leads to freed memory. A buffer whose mapping is already gone (the space was disposed, which unmaps
/// everything, or the caller unmapped <see cref="Mapping"/> itself) just frees its memory. When the kernel refuses the
/// unmap, <see cref="Dispose"/> throws, keeps the memory (the device may still reach it) and may be called again. A buffer
/// that is never disposed keeps its memory until the process exits: it is not freed by a finalizer while a space may
/// still map it.
/// </para>
/// <para>
/// Thread-safe: <see cref="Dispose"/> is idempotent and may race with itself. The volatile accessors of
/// <see cref="Memory"/> hold the memory for the length of an access; spans do not, so they must not outlive the buffer.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using DmaBuffer buffer = DmaBuffer.Allocate(space, 8192, DmaAccess.ReadWrite, dmaMask: 0x0fff_ffff);
/// buffer.Span[..4].Fill(0xAB);          // the CPU's view
/// edu.DmaToDevice(buffer.Iova, 0, 4);    // the device's view
/// </code>
/// </example>
public sealed class DmaBuffer : IDisposable
{
    private const string Operation = "allocate DMA buffer";
    private const int Live = 0;
    private const int Disposing = 1;
    private const int Disposed = 2;

    private static readonly Lazy<ulong> s_hugePageSize = new(ReadDefaultHugePageSize);

    private readonly Manager _manager;
    private int _state;

    private DmaBuffer(DmaSpace space, MemoryMapping memory, DmaMapping mapping, ulong pageSize, bool hugePages)
    {
        Space = space;
        Memory = memory;
        Mapping = mapping;
        PageSize = pageSize;
        IsHugePages = hugePages;
        _manager = new Manager(this);
    }

    /// <summary>The space the buffer is mapped in.</summary>
    public DmaSpace Space { get; }

    /// <summary>The buffer's mapping in <see cref="Space"/>.</summary>
    public DmaMapping Mapping { get; }

    /// <summary>The address devices of the space use for the first byte: what a device is given.</summary>
    public ulong Iova => Mapping.Iova;

    /// <summary>The size in bytes: the size asked for, rounded up to whole pages of <see cref="PageSize"/>.</summary>
    public ulong Size => Mapping.Size;

    /// <summary>The process address of the first byte.</summary>
    public nint Address => Mapping.HostAddress;

    /// <summary>The size and alignment the buffer comes in: the host's page size, the huge page size, or the space's
    /// IOMMU page size when that is larger.</summary>
    public ulong PageSize { get; }

    /// <summary>True when huge pages (<c>MAP_HUGETLB</c>) back the buffer.</summary>
    public bool IsHugePages { get; }

    /// <summary>The memory, with volatile little-endian accessors (for rings and descriptors the device reads and writes).</summary>
    public MemoryMapping Memory { get; }

    /// <summary>The whole buffer as a span (at most <see cref="int.MaxValue"/> bytes; use <see cref="GetSpan"/> beyond).
    /// Valid until the buffer is disposed.</summary>
    /// <exception cref="ObjectDisposedException">The buffer is disposed.</exception>
    public Span<byte> Span => GetSpan(0, Size <= int.MaxValue ? (int)Size : throw new InvalidOperationException(
        string.Create(CultureInfo.InvariantCulture, $"The 0x{Size:x}-byte DMA buffer is larger than a span; use GetSpan(offset, length).")));

    /// <summary>True once the buffer is disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref _state) == Disposed;

    /// <summary>Allocates <paramref name="size"/> bytes of page-aligned, zero-filled memory and maps it into
    /// <paramref name="space"/> at the lowest free IOVA at or below <paramref name="dmaMask"/>.</summary>
    /// <param name="space">The space whose devices will reach the buffer.</param>
    /// <param name="size">The size in bytes, more than 0; rounded up to whole pages.</param>
    /// <param name="access">Which way devices may move data.</param>
    /// <param name="dmaMask">The highest IOVA the device can reach, e.g. <c>0x0fff_ffff</c> for edu's 28-bit mask.</param>
    /// <param name="options">Huge pages and other choices; null for the defaults (normal pages).</param>
    /// <returns>The mapped buffer; dispose it to unmap and free it.</returns>
    /// <exception cref="VfioDmaException">No memory (<see cref="DmaMappingFailure.Kernel"/>), no huge pages when they are
    /// required (<see cref="DmaMappingFailure.HugePagesUnavailable"/>), or the space refused the mapping (no free IOVA
    /// below the mask, the kernel's limits): nothing stays allocated or mapped.</exception>
    /// <exception cref="ObjectDisposedException">The space is disposed.</exception>
    public static DmaBuffer Allocate(DmaSpace space, ulong size, DmaAccess access = DmaAccess.ReadWrite,
        ulong dmaMask = ulong.MaxValue, DmaBufferOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(space);
        ArgumentOutOfRangeException.ThrowIfZero(size);
        ObjectDisposedException.ThrowIf(space.IsDisposed, space);
        options ??= DmaBufferOptions.Default;
        if (options.HugePages is not (HugePagePolicy.None or HugePagePolicy.Preferred or HugePagePolicy.Required))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.HugePages, "The huge page policy is None, Preferred or Required.");
        }

        ulong spacePage = space.PageSize;
        MemoryMapping? memory = null;
        ulong pageSize = 0;
        bool huge = false;
        if (options.HugePages != HugePagePolicy.None)
        {
            memory = TryMapHugePages(size, spacePage, options.HugePages == HugePagePolicy.Required, out pageSize);
            huge = memory is not null;
        }
        if (memory is null)
        {
            pageSize = Math.Max(DmaSpace.HostPageSize, spacePage);
            memory = MapPages(size, pageSize, 0, out int errno) ?? throw new VfioDmaException(DmaMappingFailure.Kernel, "mmap",
                Describe(size), string.Create(CultureInfo.InvariantCulture, $"anonymous memory of {RoundUp(size, pageSize)} bytes could not be mapped"),
                "Free memory or raise the process's address-space limit (ulimit -v).", (Errno)errno);
            if (options.HugePages == HugePagePolicy.Preferred)
            {
                // A hint only: transparent huge pages may be disabled ("never"), then EINVAL; the buffer works either way.
                _ = Libc.madvise(memory.DangerousGetHandle(), (nuint)memory.Length, Libc.MADV_HUGEPAGE);
            }
        }

        try
        {
            nint address = memory.DangerousGetHandle();
            if (Libc.madvise(address, (nuint)memory.Length, Libc.MADV_DONTFORK) != 0)
            {
                throw new VfioDmaException(DmaMappingFailure.Kernel, "madvise(MADV_DONTFORK)", Describe(size),
                    "the DMA memory could not be kept out of forked children", errno: (Errno)Libc.LastErrno);
            }
            DmaMapping mapping = space.Map(address, memory.Length, access, dmaMask);
            try
            {
                var buffer = new DmaBuffer(space, memory, mapping, pageSize, huge);
                // The space maps the memory now: no finalizer may unmap it behind the space's back.
                GC.SuppressFinalize(memory);
                return buffer;
            }
            catch
            {
                space.UnmapBuffer(mapping);
                throw;
            }
        }
        catch
        {
            memory.Dispose();
            throw;
        }
    }

    /// <summary>The bytes at <paramref name="offset"/>, through the process address. Valid until the buffer is disposed.</summary>
    /// <param name="offset">The byte offset in the buffer.</param>
    /// <param name="length">The number of bytes.</param>
    /// <exception cref="ObjectDisposedException">The buffer is disposed.</exception>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        ObjectDisposedException.ThrowIf(Memory.IsClosed, this);
        return DmaMemorySpan.Get(Memory, offset, length);
    }

    /// <summary>The whole buffer as <see cref="Memory{T}"/> (for APIs that take one, e.g. stream reads), at most
    /// <see cref="int.MaxValue"/> bytes. Pinning it holds the memory until unpinned.</summary>
    /// <returns>The memory.</returns>
    /// <exception cref="ObjectDisposedException">The buffer is disposed.</exception>
    public Memory<byte> AsMemory()
    {
        ObjectDisposedException.ThrowIf(Memory.IsClosed, this);
        return _manager.Memory;
    }

    /// <summary>Unmaps the buffer from its space (unless that already happened) and then frees the memory.</summary>
    /// <exception cref="VfioException">The kernel refused the unmap; the memory is kept and the call may be repeated.</exception>
    public void Dispose()
    {
        if (Interlocked.CompareExchange(ref _state, Disposing, Live) != Live)
        {
            return;
        }
        try
        {
            Space.UnmapBuffer(Mapping);
        }
        catch
        {
            Volatile.Write(ref _state, Live);
            throw;
        }
        Memory.Dispose();
        Volatile.Write(ref _state, Disposed);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"DMA buffer of 0x{Size:x} bytes at IOVA 0x{Iova:x} in {Space}");

    private static string Describe(ulong size) => string.Create(CultureInfo.InvariantCulture, $"DMA buffer of {size} bytes");

    private static ulong RoundUp(ulong size, ulong page) => checked((size + page - 1) & ~(page - 1));

    private static MemoryMapping? TryMapHugePages(ulong size, ulong spacePage, bool required, out ulong pageSize)
    {
        pageSize = s_hugePageSize.Value;
        if (pageSize != 0)
        {
            pageSize = Math.Max(pageSize, spacePage);
            MemoryMapping? memory = MapPages(size, pageSize, Libc.MAP_HUGETLB, out int errno);
            if (memory is not null || !required)
            {
                return memory;
            }
            throw new VfioDmaException(DmaMappingFailure.HugePagesUnavailable, "mmap(MAP_HUGETLB)", Describe(size),
                string.Create(CultureInfo.InvariantCulture,
                    $"{RoundUp(size, pageSize) / s_hugePageSize.Value} huge pages of {s_hugePageSize.Value / 1024} KiB could not be mapped: not enough are reserved and free (HugePages_Free in /proc/meminfo)"),
                string.Create(CultureInfo.InvariantCulture,
                    $"Reserve huge pages as root: echo N > /proc/sys/vm/nr_hugepages (vm.nr_hugepages=N in /etc/sysctl.d/ to keep it, or hugepages=N on the kernel command line), or allocate with HugePagePolicy.Preferred to fall back to normal pages."),
                (Errno)errno);
        }
        if (!required)
        {
            return null;
        }
        throw new VfioDmaException(DmaMappingFailure.HugePagesUnavailable, "mmap(MAP_HUGETLB)", Describe(size),
            "the kernel offers no huge pages (no Hugepagesize in /proc/meminfo)",
            "Use a kernel built with CONFIG_HUGETLBFS, or allocate with HugePagePolicy.Preferred to fall back to normal pages.",
            Errno.EOPNOTSUPP);
    }

    /// <summary>Maps <paramref name="size"/> bytes rounded up to <paramref name="alignment"/>, at an address aligned to it
    /// (over-mapping and trimming when the alignment is above the page size mmap guarantees); null and the errno on failure.</summary>
    private static MemoryMapping? MapPages(ulong size, ulong alignment, int flags, out int errno)
    {
        ulong length = RoundUp(size, alignment);
        ulong mmapPage = (flags & Libc.MAP_HUGETLB) != 0 ? s_hugePageSize.Value : DmaSpace.HostPageSize;
        ulong extra = alignment > mmapPage ? alignment - mmapPage : 0;
        // Create the owner first so the memory is never unowned.
        var owner = new LinuxKernel.LinuxMemoryMapping();
        nint raw = Libc.mmap(0, checked((nuint)(length + extra)), Libc.PROT_READ | Libc.PROT_WRITE,
            Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | flags, -1, 0);
        if (raw == Libc.MAP_FAILED)
        {
            errno = Libc.LastErrno;
            owner.Dispose();
            return null;
        }
        ulong start = RoundUp((ulong)raw, alignment);
        ulong head = start - (ulong)raw;
        ulong tail = extra - head;
        // Trimming whole pages of a fresh private mapping cannot fail for a reason the caller could act on.
        if (head != 0)
        {
            _ = Libc.munmap(raw, (nuint)head);
        }
        if (tail != 0)
        {
            _ = Libc.munmap((nint)(start + length), (nuint)tail);
        }
        owner.Attach((nint)start, length, 0);
        errno = 0;
        return owner;
    }

    /// <summary>The default huge page size from <c>/proc/meminfo</c> (<c>Hugepagesize: 2048 kB</c>); 0 without hugetlb.</summary>
    private static ulong ReadDefaultHugePageSize()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("Hugepagesize:", StringComparison.Ordinal))
                {
                    string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return parts.Length >= 2 && ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong kib)
                        ? kib * 1024 : 0;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return 0;
    }

    /// <summary>The buffer as <see cref="Memory{T}"/>; pinning holds a reference on the mapping.</summary>
    private sealed class Manager(DmaBuffer buffer) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => buffer.Span;

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThan((ulong)elementIndex, buffer.Size);
            bool added = false;
            buffer.Memory.DangerousAddRef(ref added);
            return new MemoryHandle((byte*)buffer.Memory.DangerousGetHandle() + elementIndex, default, this);
        }

        public override void Unpin() => buffer.Memory.DangerousRelease();

        protected override void Dispose(bool disposing)
        {
        }
    }
}
