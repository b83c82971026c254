// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

public sealed partial class SimulatedKernel
{
    private readonly List<SimulatedAnonymousMapping> _anonymous = [];

    /// <summary>The machine's RAM as no-IOMMU devices see it.</summary>
    internal SimulatedPhysicalMemory PhysicalMemory => _physicalMemory ??= new SimulatedPhysicalMemory(Topology.ScatteredPhysicalPages);

    private SimulatedPhysicalMemory? _physicalMemory;

    /// <summary>The number of page frames given to locked anonymous memory (what <c>/proc/self/pagemap</c> can show and
    /// no-IOMMU devices can reach); 0 once every such mapping was unmapped.</summary>
    public int PhysicalFrameCount
    {
        get
        {
            lock (_lock)
            {
                return PhysicalMemory.FrameCount;
            }
        }
    }

    /// <inheritdoc/>
    /// <remarks>Real process memory, remembered by the model so that <see cref="LockMemory"/> can give it page frames.</remarks>
    public int MapAnonymous(ulong length, out MemoryMapping? mapping)
    {
        ArgumentOutOfRangeException.ThrowIfZero(length);
        mapping = null;
        if (length % SimulatedPhysicalMemory.PageSize != 0)
        {
            // mmap rounds a length up; the model keeps whole pages only and asks callers for whole pages.
            return -(int)Errno.EINVAL;
        }
        lock (_lock)
        {
            Enter();
            int rc = Libc.MapAnonymous((nuint)length, out nint address);
            if (rc < 0)
            {
                return rc;
            }
            var anonymous = new SimulatedAnonymousMapping(this, address, length);
            _anonymous.Add(anonymous);
            mapping = anonymous;
            return 0;
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// For memory mapped by <see cref="MapAnonymous"/>: charges the pages to <c>mm-&gt;locked_vm</c> against RLIMIT_MEMLOCK
    /// (mm/mlock.c do_mlock: <c>-EPERM</c> when the limit is 0, <c>-ENOMEM</c> when it would be exceeded; the model has no
    /// CAP_IPC_LOCK, as for Type1) and gives every page a frame of <see cref="PhysicalMemory"/>. Locking a locked mapping
    /// again changes nothing, as in Linux. The real memory is not mlocked: the model's frames stand for it.
    /// Other memory goes to the real kernel.
    /// </remarks>
    public int LockMemory(MemoryMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        if (mapping is not SimulatedAnonymousMapping anonymous || !ReferenceEquals(anonymous.Kernel, this))
        {
            return _real.LockMemory(mapping);
        }
        lock (_lock)
        {
            Enter();
            if (anonymous.IsClosed)
            {
                return -(int)Errno.ENOMEM;   // the range is no longer mapped
            }
            if (anonymous.Locked)
            {
                return 0;
            }
            if (Topology.MemlockLimit == 0)
            {
                return -(int)Errno.EPERM;
            }
            ulong pages = (ulong)anonymous.Frames.Length;
            if (!TryChargeLockedVm(pages))
            {
                return -(int)Errno.ENOMEM;
            }
            if (!PhysicalMemory.TryAssign(anonymous.Address, anonymous.Frames.Length, anonymous.Frames))
            {
                UnchargeLockedVm(pages);
                return -(int)Errno.EAGAIN;
            }
            anonymous.Locked = true;
            return 0;
        }
    }

    /// <summary>open of <c>/proc/self/pagemap</c>: the file remembers whether its opener could see frame numbers.</summary>
    private int OpenPagemap(out SafeFileHandle handle)
    {
        lock (_lock)
        {
            Enter();
            return _fds.Install(new PagemapFile(this, Topology.CapSysAdmin), out handle);
        }
    }

    /// <summary>munmap of a mapping from <see cref="MapAnonymous"/>: its frames are free again and its lock charge returned.</summary>
    internal void ReleaseAnonymous(SimulatedAnonymousMapping mapping)
    {
        lock (_lock)
        {
            _anonymous.Remove(mapping);
            if (mapping.Locked)
            {
                PhysicalMemory.Release(mapping.Frames);
                UnchargeLockedVm((ulong)mapping.Frames.Length);
                mapping.Locked = false;
            }
        }
    }

    /// <summary>The pagemap entry of the page at <paramref name="address"/> (Documentation/admin-guide/mm/pagemap.rst):
    /// bit 63 present, bit 56 exclusively mapped, bits 0–54 the frame number (0 when <paramref name="showFrame"/> is false).
    /// Only pages of locked anonymous mappings are present in the model; any other page reads as 0 (not present).</summary>
    private ulong PagemapEntry(ulong address, bool showFrame)
    {
        foreach (SimulatedAnonymousMapping mapping in _anonymous)
        {
            ulong start = (ulong)mapping.Address;
            if (mapping.Locked && address >= start && address - start < mapping.Length)
            {
                ulong frame = mapping.Frames[(int)((address - start) / SimulatedPhysicalMemory.PageSize)];
                return PagemapFile.Present | PagemapFile.ExclusivelyMapped | (showFrame ? frame : 0);
            }
        }
        return 0;
    }

    /// <summary><c>/proc/self/pagemap</c> (fs/proc/task_mmu.c), opened by <see cref="Open"/>.</summary>
    private sealed class PagemapFile(SimulatedKernel kernel, bool showFrame) : SimFile
    {
        internal const ulong Present = 1UL << 63;
        internal const ulong ExclusivelyMapped = 1UL << 56;
        private const int EntryBytes = 8;

        internal override FileType Type => FileType.Regular;

        internal override string ProcLink => $"/proc/{Environment.ProcessId}/pagemap";

        /// <summary>pagemap_read: the offset and count must be multiples of 8 (<c>-EINVAL</c>); entry i describes the page
        /// at virtual address (offset / 8 + i) * PAGE_SIZE. Called under the kernel lock.</summary>
        internal override long Read(Span<byte> buffer, long offset)
        {
            if (offset < 0 || offset % EntryBytes != 0 || buffer.Length % EntryBytes != 0)
            {
                return -(int)Errno.EINVAL;
            }
            ulong firstPage = (ulong)offset / EntryBytes;
            for (int i = 0; i < buffer.Length / EntryBytes; i++)
            {
                ulong entry = kernel.PagemapEntry((firstPage + (ulong)i) * SimulatedPhysicalMemory.PageSize, showFrame);
                BinaryPrimitives.WriteUInt64LittleEndian(buffer[(i * EntryBytes)..], entry);
            }
            return buffer.Length;
        }
    }
}
